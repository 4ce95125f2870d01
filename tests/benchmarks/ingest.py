"""Ingestion throughput: coffea NanoEvents (through the runner) against plain ``uproot.arrays``.

``python -m tests.benchmarks.ingest --repeat 3 results/samples/ttbar/ttbar_*.root``

Both paths read exactly the same branches — jets, their tracks through ``Jet.tracks`` and the
photons — in the same process, alternately, ``--repeat`` times; the median rate per core is
reported. The NanoEvents path also builds the jet → track cross-reference and computes a
trivial per-jet quantity (tracks with S(d0) > 3), as any analysis processor would.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from typing import Any

import awkward as ak
import numpy as np
import uproot
from coffea import processor

from analysis.core.config import RunnerConfig
from analysis.io.runner import run_processor
from tests.benchmarks.script import run_module_main

BRANCHES = [
    "nJet", "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass",
    "nTrack", "Track_pt", "Track_eta", "Track_phi", "Track_d0", "Track_d0Err", "Track_jetIdx",
    "nPhoton", "Photon_pt", "Photon_eta", "Photon_phi",
]


class JetTrackProcessor(processor.ProcessorABC):
    """Reads the benchmark branches through NanoEvents and counts displaced tracks per jet."""

    def process(self, events: Any) -> dict[str, Any]:
        jets = events.Jet
        trk = jets.tracks
        sig = np.abs(trk.d0) / trk.d0Err
        n_disp = ak.sum(sig > 3, axis=2)
        photons = events.Photon
        return {
            "events": len(events),
            "jets": int(ak.sum(ak.num(jets))),
            "displaced": int(ak.sum(n_disp)),
            "photon_pt": float(ak.sum(photons.pt)),
            "jet_mass": float(ak.sum(jets.mass)),
        }

    def postprocess(self, accumulator: Any) -> Any:
        return accumulator


def plain_read(files: list[str]) -> tuple[int, int, float]:
    """(events, bytes read, seconds) of ``uproot.arrays`` of :data:`BRANCHES` over ``files``."""
    n = 0
    nbytes = 0
    t0 = time.perf_counter()
    for path in files:
        with uproot.open(path) as f:
            tree = f["Events"]
            arrays = tree.arrays(BRANCHES, library="ak")
            n += len(arrays)
            nbytes += sum(tree[b].compressed_bytes for b in BRANCHES)
    return n, nbytes, time.perf_counter() - t0


def nanoevents_run(files: list[str], executor: str, workers: int, chunksize: int) -> dict[str, Any]:
    cfg = RunnerConfig.validated({"executor": executor, "workers": workers, "chunksize": chunksize})
    result = run_processor(JetTrackProcessor(), {"bench": {"files": {f: "Events" for f in files}}}, cfg,
                           format="hepline")
    return result.metrics | {"output": result.output}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunksize", type=int, default=100_000)
    parser.add_argument("--output", help="JSON results")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    nanoevents_run(args.files, "iterative", 1, args.chunksize)  # warm-up (imports, numba, OS cache)
    plain_read(args.files)
    plain, nano = [], []
    for _ in range(args.repeat):
        n, nbytes, dt = plain_read(args.files)
        plain.append(n / dt)
        m = nanoevents_run(args.files, "iterative", 1, args.chunksize)
        nano.append(m["events"] / m["wall_time_s"])
    result = {
        "files": args.files,
        "events": n,
        "compressed_bytes_read": nbytes,
        "bytes_per_event_read": nbytes / n,
        "branches": BRANCHES,
        "uproot_arrays_events_per_s": float(np.median(plain)),
        "nanoevents_events_per_s_per_core": float(np.median(nano)),
        "ratio_nanoevents_over_uproot": float(np.median(nano) / np.median(plain)),
        "repeat": args.repeat,
        "all_uproot": plain,
        "all_nanoevents": nano,
    }
    print(json.dumps(result, indent=2))
    if args.output:
        from analysis.core.atomic import write_json

        write_json(args.output, result)
    return 0


if __name__ == "__main__":  # the importable module's main (its processor pickles by reference)
    run_module_main("tests.benchmarks.ingest")
