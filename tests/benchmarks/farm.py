"""The batch farm in numbers (docs/benchmarks.md, "Batch farm")::

    python -m tests.benchmarks.farm latency [--jobs 20]
    python -m tests.benchmarks.farm workflow [--config workflows/config/default.yaml] [--workdir DIR]
    python -m tests.benchmarks.farm xrootd --files results/decorated/yy/*.root \\
        --working-points results/taggers/working_points.json [--repeats 3]

``latency``: submission to start of a trivial Slurm job, one job at a time on the idle
cluster (each submitted once the previous one has completed): the time from just before
``sbatch`` to the job's first command (``date +%s.%N`` on the node, the same clock here).
``workflow``: the workflow's wall time with ``--profile workflows/profiles/local --cores 2``
and with ``--profile workflows/profiles/slurm``, one after the other on the same machine,
into two temporary output folders (the config, plus ``site.max_threads`` = the node's CPUs
for Slurm).
``xrootd``: the HH selection (``selections.hh_yybb.processor.run_selection``, iterative)
over the same files read from local disk and over ``root://`` from the XRootD test server,
alternating, ``--repeats`` times each: events/s, and bytes read per event.

Needs the services of tests/farm (slurm.sh, xrootd.sh). Every scheduler call has a hard
timeout (tests.farm.scheduler).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from tests.farm import XROOTD_ROOT, scheduler, serve
from tests.fixtures.paths import REPO

__all__ = ["latency", "main", "workflow", "xrootd"]


def latency(jobs: int = 20, timeout: float = 60.0) -> dict[str, Any]:
    """Submission-to-start latency (s) of ``jobs`` trivial Slurm jobs, submitted one by one."""
    values = []
    with tempfile.TemporaryDirectory(prefix="hepline-latency-") as tmp:
        for k in range(jobs):
            stamp = Path(tmp) / f"{k}.start"
            t0 = time.time()
            job_id = scheduler("sbatch", "--parsable", "-J", "hepline-latency", "-o", "/dev/null",
                               "--wrap", f"date +%s.%N > {stamp}").strip().split(";")[0]
            deadline = time.monotonic() + timeout
            while not (stamp.exists() and stamp.read_text().strip()):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"job {k} did not start within {timeout} s")
                time.sleep(0.01)
            values.append(float(stamp.read_text()) - t0)
            # the next job only once this one has released the node (a job without --mem
            # holds all of the node's memory until it has completed)
            while scheduler("squeue", "-h", "-j", job_id, "-o", "%T").strip() not in ("", "COMPLETED"):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"job {k} did not end within {timeout} s")
                time.sleep(0.05)
    return {"jobs": jobs, "median_s": statistics.median(values), "min_s": min(values),
            "max_s": max(values), "values_s": values}


def _node_cpus() -> int:
    return max(int(c.rstrip("+")) for c in scheduler("sinfo", "-h", "-o", "%c").split())


def workflow(config: Path, workdir: Path | None = None, timeout: float = 3600.0) -> dict[str, Any]:
    """Wall time (s) of the whole workflow, local profile (--cores 2) against Slurm profile,
    in ``workdir/local`` and ``workdir/slurm`` (kept; default: a temporary folder)."""
    raw = yaml.safe_load(config.read_text())
    out: dict[str, Any] = {"config": str(config)}
    with tempfile.TemporaryDirectory(prefix="hepline-farm-") as tmp_dir:
        tmp = workdir or Path(tmp_dir)
        for profile in ("local", "slurm"):
            work = Path(tmp) / profile
            work.mkdir(parents=True)
            cfg = {**raw, "output_dir": str(work / "out"),
                   "site": {**raw.get("site", {}), "max_threads": _node_cpus()}}
            (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
            cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                   "--directory", str(work), "--profile", str(REPO / "workflows" / "profiles" / profile),
                   "--configfile", str(work / "config.yaml")]
            if profile == "local":
                cmd += ["--cores", "2"]
            env = {**os.environ, "CONDOR_CONFIG": os.environ.get("CONDOR_CONFIG", "/dev/null")}
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=timeout,
                                  check=False)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                raise RuntimeError(f"{profile} run failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
            jobs = proc.stdout.count("has been submitted with SLURM jobid") + \
                proc.stderr.count("has been submitted with SLURM jobid")
            out[profile] = {"wall_s": wall, "slurm_jobs": jobs}
    out["ratio_slurm_over_local"] = out["slurm"]["wall_s"] / out["local"]["wall_s"]
    return out


def xrootd(files: list[Path], working_points: Path, config: Path, repeats: int = 3) -> dict[str, Any]:
    """HH-selection throughput reading ``files`` locally and over root://, in one process."""
    from analysis.core.config import load_config
    from selections.hh_yybb.processor import run_selection

    cfg = load_config(config)
    urls = serve(files)
    sources = {"local": [str(f) for f in files], "root": urls}
    runs: dict[str, list[dict[str, float]]] = {"local": [], "root": []}
    run_selection(sources["local"], cfg, working_points)  # warm-up: numba, imports, page cache
    for _ in range(repeats):
        for name, inputs in sources.items():
            m = run_selection(inputs, cfg, working_points).metrics
            runs[name].append({"wall_s": m.wall_time_s, "events": m.events, "bytes_read": m.bytes_read or 0,
                               "events_per_s": m.events_per_s or 0.0})
    summary: dict[str, Any] = {"files": [str(f) for f in files], "repeats": repeats}
    for name, rows in runs.items():
        summary[name] = {
            "events": rows[0]["events"],
            "events_per_s_median": statistics.median(r["events_per_s"] for r in rows),
            "bytes_per_event": rows[0]["bytes_read"] / rows[0]["events"] if rows[0]["events"] else None,
            "runs": rows,
        }
    shutil.rmtree(XROOTD_ROOT / urls[0].split("//")[2].split("/")[0], ignore_errors=True)
    summary["ratio_root_over_local"] = (summary["root"]["events_per_s_median"]
                                        / summary["local"]["events_per_s_median"])
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.farm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("latency")
    p.add_argument("--jobs", type=int, default=20)
    p = sub.add_parser("workflow")
    p.add_argument("--config", type=Path, default=REPO / "workflows" / "config" / "default.yaml")
    p.add_argument("--workdir", type=Path, default=None, help="keep both runs' folders here")
    p = sub.add_parser("xrootd")
    p.add_argument("--files", type=Path, nargs="+", required=True)
    p.add_argument("--working-points", type=Path, required=True)
    p.add_argument("--config", type=Path, default=REPO / "workflows" / "config" / "default.yaml")
    p.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.what == "latency":
        res = latency(args.jobs)
    elif args.what == "workflow":
        res = workflow(args.config, args.workdir)
    else:
        res = xrootd(args.files, args.working_points, args.config, args.repeats)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
