"""HH → γγbb̄ selection throughput against the coffea executor and its number of workers.

Runs :func:`selections.hh_yybb.processor.run_selection` with each ``executor:workers`` pair (after one
warm-up run each) and reports the median wall time, events/s and the compressed bytes read
per event::

    python -m tests.benchmarks.hh_yybb_scaling --config workflows/config/default.yaml \\
        --working-points results_full/taggers/working_points.json --chunksize 40000 \\
        --runs iterative:1 futures:2 dask:1 dask:2 --output scaling.json files*.root

Wall times include starting the process pool or dask cluster, as a user would see them.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from collections.abc import Sequence
from typing import Any

from analysis.core.atomic import write_json
from analysis.core.config import Config, load_config
from selections.hh_yybb import processor as S

log = logging.getLogger(__name__)


def parse_runs(specs: Sequence[str]) -> list[tuple[str, int]]:
    """``["dask:2", ...]`` → ``[("dask", 2), ...]`` (a ValueError names a bad entry)."""
    out = []
    for spec in specs:
        kind, _, workers = spec.partition(":")
        if kind not in ("iterative", "futures", "dask") or not workers.isdigit() or int(workers) < 1:
            raise ValueError(f"bad run {spec!r}: expected executor:workers, e.g. dask:2")
        out.append((kind, int(workers)))
    return out


def scaling(files: Sequence[str], config: Config, working_points: Any, runs: Sequence[tuple[str, int]],
            chunksize: int = 40000, repeat: int = 3, sample_metadata: Any = None) -> list[dict[str, Any]]:
    """One row per (executor, workers): median wall time over ``repeat`` runs and rates
    (``chunksize``: ``selection.hh_yybb.chunksize`` of every run)."""
    rows = []
    hh = config.selection.hh_yybb.replace(chunksize=chunksize)
    for executor, workers in runs:
        cfg = config.replace(runner=config.runner.replace(executor=executor, workers=workers),
                             selection=config.selection.replace(hh_yybb=hh))
        S.run_selection(files, cfg, working_points, sample_metadata=sample_metadata)  # warm-up
        walls, metrics = [], None
        for _ in range(repeat):
            t0 = time.perf_counter()
            res = S.run_selection(files, cfg, working_points, sample_metadata=sample_metadata)
            walls.append(time.perf_counter() - t0)
            metrics = res.metrics
        wall = statistics.median(walls)
        assert metrics is not None
        events, nbytes = metrics.events, metrics.bytes_read
        row = {"executor": executor, "workers": workers, "cores": metrics.cores, "events": events,
               "chunks": metrics.chunks, "wall_s": wall, "wall_s_runs": walls,
               "events_per_s": events / wall, "bytes_read": nbytes,
               "bytes_per_event": nbytes / events if nbytes else None, "load_average": os.getloadavg()}
        log.info("%s:%d  %.2f s  %.0f events/s", executor, workers, wall, events / wall)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--working-points", required=True)
    parser.add_argument("--sample-metadata", nargs="*", default=None)
    parser.add_argument("--runs", nargs="+", default=["iterative:1", "futures:2", "dask:1", "dask:2"])
    parser.add_argument("--chunksize", type=int, default=40000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--output", help="write the rows as JSON here")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    rows = scaling(args.files, load_config(args.config), args.working_points, parse_runs(args.runs),
                   chunksize=args.chunksize, repeat=args.repeat, sample_metadata=args.sample_metadata)
    if args.output:
        write_json(args.output, rows)
    for r in rows:
        print(f"{r['executor']:9s} {r['workers']}  {r['wall_s']:6.2f} s  {r['events_per_s']:9.0f} events/s")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
