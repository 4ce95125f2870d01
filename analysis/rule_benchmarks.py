"""Per-rule time of a workflow run, from Snakemake's ``benchmark:`` files.

Every rule of the workflow writes ``<output_dir>/benchmarks/<rule>/<wildcards>.tsv`` (one
Snakemake benchmark row per job: wall ``s``, ``cpu_time``, ``max_rss`` ...). This module
sums them per rule::

    python -m analysis.rule_benchmarks results/benchmarks            # markdown table
    python -m analysis.rule_benchmarks results/benchmarks --json     # rows as JSON

The sum of job wall times exceeds the workflow's wall time when jobs ran side by side
(``--cores 2``); the table says so with the total.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["markdown", "read_benchmark", "summarise"]


def read_benchmark(path: str | os.PathLike[str]) -> dict[str, float]:
    """The (first) row of one Snakemake benchmark TSV as numbers; ``s`` must be present."""
    p = Path(path)
    with p.open(newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    if not rows or "s" not in rows[0]:
        raise ValueError(f"{p}: not a Snakemake benchmark file (no 's' column or no row)")
    out = {}
    for key, value in rows[0].items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue  # 'h:m:s' and the like
    return out


def summarise(benchmark_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """``[{"rule", "jobs", "wall_s", "cpu_s", "max_wall_s", "max_rss_mb"}]``, slowest first."""
    root = Path(benchmark_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"no benchmark folder {root}")
    per_rule: dict[str, dict[str, Any]] = {}
    for path in sorted(root.glob("*/*.tsv")):
        row = read_benchmark(path)
        r = per_rule.setdefault(path.parent.name, {"rule": path.parent.name, "jobs": 0, "wall_s": 0.0,
                                                   "cpu_s": 0.0, "max_wall_s": 0.0, "max_rss_mb": 0.0})
        r["jobs"] += 1
        r["wall_s"] += row["s"]
        r["cpu_s"] += row.get("cpu_time", 0.0)
        r["max_wall_s"] = max(r["max_wall_s"], row["s"])
        r["max_rss_mb"] = max(r["max_rss_mb"], row.get("max_rss", 0.0))
    if not per_rule:
        raise ValueError(f"{root}: no <rule>/<job>.tsv benchmark files")
    return sorted(per_rule.values(), key=lambda r: -r["wall_s"])


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    """A markdown table of :func:`summarise` rows with the totals."""
    lines = ["| rule | jobs | Σ wall [s] | Σ CPU [s] | slowest job [s] | max RSS [MB] |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['rule']} | {r['jobs']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
                     f"{r['max_wall_s']:.1f} | {r['max_rss_mb']:.0f} |")
    jobs = sum(r["jobs"] for r in rows)
    wall = sum(r["wall_s"] for r in rows)
    cpu = sum(r["cpu_s"] for r in rows)
    lines.append(f"| **all benchmarked jobs** | {jobs} | {wall:.1f} | {cpu:.1f} | | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmark_dir", help="the workflow's <output_dir>/benchmarks")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    rows = summarise(args.benchmark_dir)
    print(json.dumps(rows, indent=2) if args.json else markdown(rows), end="")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
