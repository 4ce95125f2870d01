"""HH → γγbb̄ selection throughput against a plain ``uproot.arrays`` of exactly its branches.

A measurement tool (it was ``python -m selections.hh_yybb.processor --benchmark N``)::

    python -m tests.benchmarks.hh_yybb_throughput --config workflows/config/default.yaml \\
        --working-points results_full/taggers/working_points.json --sample-metadata yy_240k.json \\
        --set selection.hh_yybb.engine=numba --benchmark 21 --metrics bench.json yy_240k.root

Alternates :func:`selections.hh_yybb.processor.run_selection` and the plain read ``--benchmark``
times in one process (after one warm-up of each) and prints the medians of the rates per
core and per CPU second and their ratios (:func:`benchmark`) as JSON; ``--metrics`` also
writes them, with the ``hh_yybb.select`` provenance record. As ``hepline select`` does, the
start-up objects are frozen first (``--no-gc-freeze``: not), the compiled kernel loaded
before when it will run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
from collections.abc import Sequence
from typing import Any

from analysis.core.atomic import write_json
from analysis.core.config import Config
from analysis.core.provenance import provenance_record
from selections.cli import SMEARING_SEED, select_setup
from selections.hh_yybb import processor as S
from tests.benchmarks.script import run_module_main

log = logging.getLogger(__name__)

__all__ = ["benchmark", "main", "plain_read"]


def plain_read(files: Sequence[str], branches: Sequence[str]) -> tuple[int, float, float]:
    """(events, wall s, CPU s) of ``uproot`` ``arrays(branches)`` over ``files``."""
    import uproot

    n = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for p in files:
        with uproot.open(p) as f:
            arr = f["Events"].arrays(list(branches))
            n += len(arr)
    return n, time.perf_counter() - t0, time.process_time() - c0


def benchmark(files: Sequence[str], config: Config, working_points: Any, repeat: int = 3,
              sample_metadata: Any = None) -> dict[str, Any]:
    """Selection rate per core against a plain ``uproot.arrays`` of exactly its branches.

    Alternates the two ``repeat`` times in this process (after one warm-up of each) and
    reports medians of both the wall-clock rate and the rate per CPU second (process CPU
    time, uproot's decompression threads included: robust against other jobs sharing the
    cores). The selection is timed around :func:`~selections.hh_yybb.processor.run_selection`
    as a whole (fileset building, validation, coffea preprocessing and the processor); the
    runner must be ``iterative`` (one core) for a per-core number. The first run in the
    process (which also opens every file to validate it and loads the compiled kernel) is
    reported separately as ``first_run_*``; later runs find the unchanged files' validation
    remembered (:func:`analysis.io.ingest.validate_files`). ``ratio_cpu_best`` compares the
    fastest run of each (the least disturbed by other load on a shared machine);
    ``ratio_cpu_paired`` is the median over the runs of the read's CPU time over that of the
    selection run just before it (the two of a pair see the same machine state, so slow
    drifts of a noisy machine cancel).
    """
    hh = config.selection.hh_yybb
    sel_runs, read_runs = [], []
    c0 = time.process_time()
    res = S.run_selection(files, config, working_points, sample_metadata=sample_metadata)
    first_cpu = time.process_time() - c0
    branches = res.summary.branches
    plain_read(files, branches)
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        r = S.run_selection(files, config, working_points, sample_metadata=sample_metadata)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        m = r.metrics
        sel_runs.append({"events": m.events, "wall_s": wall, "cpu_s": cpu, "cores": m.cores,
                         "runner_wall_s": m.wall_time_s, "process_s": m.process_time_s,
                         "read_s": r.summary.read_s, "select_fill_s": r.summary.select_fill_s})
        n, dt, cpu_r = plain_read(files, branches)
        read_runs.append({"events": n, "wall_s": dt, "cpu_s": cpu_r})
    sel_rate = statistics.median(r["events"] / r["wall_s"] / r["cores"] for r in sel_runs)
    read_rate = statistics.median(r["events"] / r["wall_s"] for r in read_runs)
    sel_cpu = statistics.median(r["events"] / r["cpu_s"] for r in sel_runs)
    read_cpu = statistics.median(r["events"] / r["cpu_s"] for r in read_runs)
    return {
        "files": list(files),
        "events": sel_runs[0]["events"],
        "branches": branches,
        "columns_read_by_coffea": res.metrics.columns_read,
        "read_mode": hh.read_mode,
        "selection_events_per_s_per_core": sel_rate,
        "plain_read_events_per_s": read_rate,
        "ratio": sel_rate / read_rate,
        "selection_events_per_cpu_s": sel_cpu,
        "plain_read_events_per_cpu_s": read_cpu,
        "ratio_cpu": sel_cpu / read_cpu,
        "ratio_cpu_best": min(r["cpu_s"] for r in read_runs) / min(r["cpu_s"] for r in sel_runs),
        "ratio_cpu_paired": statistics.median(
            (r["cpu_s"] / r["events"]) / (s["cpu_s"] / s["events"]) for s, r in zip(sel_runs, read_runs, strict=True)),
        "first_run_events_per_cpu_s": res.metrics.events / first_cpu,
        "first_run_ratio_cpu": res.metrics.events / first_cpu / read_cpu,
        "systematics": hh.systematics.enabled,
        "engine": hh.engine,
        "processor_events_per_s": statistics.median(r["events"] / r["process_s"] for r in sel_runs),
        "processor_read_events_per_s": statistics.median(r["events"] / r["read_s"] for r in sel_runs),
        "processor_select_fill_events_per_s": statistics.median(r["events"] / r["select_fill_s"] for r in sel_runs),
        "selection_runs": sel_runs,
        "read_runs": read_runs,
        "repeat": repeat,
        "load_average": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--working-points", default=None, help="the taggers stage's working_points.json")
    parser.add_argument("--sample-metadata", nargs="*", default=None,
                        help="merged <sample>.json files of the generation stage (sigma per sample)")
    parser.add_argument("--benchmark", "--repeat", dest="repeat", type=int, metavar="REPEAT", default=3,
                        help="timed runs of each (after one warm-up)")
    parser.add_argument("--metrics", help="write the result as JSON here (with the select stage's provenance)")
    parser.add_argument("--seed", type=int, default=None,
                        help=f"override the photon-resolution smearing seed ({'.'.join(SMEARING_SEED)})")
    parser.add_argument("--workers", type=int, default=None, help="override runner.workers")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key (dotted path, YAML value; validated), as for hepline select")
    parser.add_argument("--no-gc-freeze", action="store_true",
                        help="leave the start-up objects to the garbage collector (for comparison)")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    cfg = select_setup(args)  # as hepline select starts
    rec = provenance_record(
        stage=S.STAGE, config=cfg, seeds={"smearing": cfg.selection.hh_yybb.systematics.photon_energy_resolution.seed},
        inputs=[*(f for f in args.files if "://" not in f), *([args.working_points] if args.working_points else []),
                *(args.sample_metadata or [])],
        extra={"format": "auto", "dataset": None},
    )
    out = benchmark(args.files, cfg, args.working_points, args.repeat, sample_metadata=args.sample_metadata)
    log.info("selection %.0f ev/s/core, plain uproot read %.0f ev/s, ratio %.2f (per CPU second: "
             "%.0f vs %.0f, ratio %.2f)", out["selection_events_per_s_per_core"],
             out["plain_read_events_per_s"], out["ratio"], out["selection_events_per_cpu_s"],
             out["plain_read_events_per_cpu_s"], out["ratio_cpu"])
    if args.metrics:
        write_json(args.metrics, out, provenance=rec)
    print(json.dumps({k: v for k, v in out.items() if k not in ("branches", "files")}, indent=1))  # noqa: T201
    return 0


if __name__ == "__main__":  # the importable module's main (its processor pickles by reference)
    run_module_main("tests.benchmarks.hh_yybb_throughput")
