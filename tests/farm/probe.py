"""Where did the coffea chunks run? A processor that says, and a runner for it.

:class:`WhereProcessor` is :class:`~analysis.io.runner.SummaryProcessor` plus, per dataset,
the ``SLURM_JOB_ID`` and host of every process that handled a chunk (empty strings outside
a Slurm job). Run as a module it runs one config's ``runner`` section twice over the same
files, iteratively and as configured (e.g. ``runner.dask.jobqueue``: workers as Slurm
jobs), and writes both outputs as JSON::

    python -m tests.farm.probe CONFIG.yaml OUT.json FILE [FILE ...]

The workers import this module by name, so run it from the repository root.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from typing import Any

import numpy as np

from analysis.core.config import load_config
from analysis.io.runner import SummaryProcessor, run_processor

__all__ = ["WhereProcessor", "main", "plain"]


class WhereProcessor(SummaryProcessor):
    """:class:`SummaryProcessor` whose output also holds, per dataset, the sets
    ``slurm_job_ids`` and ``hosts`` of the processes that handled its chunks."""

    #: the branches it reads (the files are validated for these, not for the whole format:
    #: the probe asks where chunks run, not whether an ntuple is complete)
    BRANCHES = ("Jet_pt", "Jet_eta", "genWeight")

    def process(self, events: Any) -> dict[str, Any]:
        out = super().process(events)
        for entry in out.values():
            entry["slurm_job_ids"] = {os.environ.get("SLURM_JOB_ID", "")}
            entry["hosts"] = {socket.gethostname()}
        return out


def plain(output: Any) -> Any:
    """The processor output as JSON-ready values (sets sorted, arrays as lists)."""
    if isinstance(output, dict):
        return {k: plain(v) for k, v in output.items()}
    if isinstance(output, set):
        return sorted(output)
    if isinstance(output, np.ndarray):
        return output.tolist()
    if isinstance(output, np.generic):
        return output.item()
    return output


def main(argv: list[str] | None = None) -> int:
    """Run the files iteratively and with the config's runner; write both as JSON."""
    parser = argparse.ArgumentParser(prog="python -m tests.farm.probe", description=__doc__)
    parser.add_argument("config")
    parser.add_argument("output")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    results = {}
    for name, runner in (("iterative", cfg.runner.replace(executor="iterative")),
                         ("configured", cfg.runner)):
        res = run_processor(WhereProcessor(), args.files, runner,
                            required_branches=WhereProcessor.BRANCHES)
        results[name] = {"output": plain(res.output), "metrics": res.metrics.to_dict()}
    with open(args.output, "w") as fh:
        json.dump(results, fh, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
