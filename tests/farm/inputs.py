"""Inputs of the HH → γγbb̄ selection for the farm tests: decorated hepline ntuples of
constructed diphoton events, a working-points file, a config, and a comparison of two
selection outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from analysis.stats.histograms import HistSet
from tests.fixtures.hh_yybb import random_diphoton_events, write_hepline_events

__all__ = ["BRANCHES", "SAMPLE", "WORKING_POINTS", "assert_same_selection", "hh_config", "hh_inputs"]

SAMPLE = "hhfarm"
#: the branches a farm test validates the files for, where it validates them itself: the
#: tests ask where and how files are read, not whether an ntuple holds the whole format
#: (the format grows with the generation; ``hepline select`` checks the branches it reads)
BRANCHES = ("Jet_pt", "Jet_eta", "Photon_pt", "genWeight")
# D > 0.8: the 60 % working point, D > 0.6 the 70 % one (made-up numbers with known answers)
WORKING_POINTS = {
    "taggers": {
        "dl1": {"variable": "Jet_btag_dl1", "fc": 0.08, "working_points": {
            "60": {"cut": 0.8, "b_efficiency": 0.60, "light_rejection": 100.0, "c_rejection": 10.0},
            "70": {"cut": 0.6, "b_efficiency": 0.70, "light_rejection": 30.0, "c_rejection": 4.0},
            "77": {"cut": 0.4, "b_efficiency": 0.77, "light_rejection": 10.0, "c_rejection": 2.5},
            "85": {"cut": 0.2, "b_efficiency": 0.85, "light_rejection": 3.0, "c_rejection": 1.5}}},
    },
    "provenance": {"test": True},
}


def hh_inputs(folder: Path, *, n_files: int = 2, n_events: int = 3000,
              seed: int = 5) -> tuple[list[Path], Path]:
    """``n_files`` decorated hepline ntuples of sample :data:`SAMPLE` (``n_events`` each)
    and its working-points file, written into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    files = [write_hepline_events(folder / f"{SAMPLE}_{k}.root", random_diphoton_events(rng, n_events),
                                  rng.uniform(0.5, 1.5, n_events), sample=SAMPLE, xsec_pb=0.2)
             for k in range(n_files)]
    wp = folder / "working_points.json"
    wp.write_text(json.dumps(WORKING_POINTS))
    return files, wp


def hh_config(path: Path, runner: dict[str, Any] | None = None) -> Path:
    """A config of the selection for :data:`SAMPLE` with ``runner`` (default: iterative,
    one chunk per file), written to ``path``."""
    cfg = {"seed": 1,
           "runner": runner or {"executor": "iterative", "chunksize": 1_000_000},
           "generation": {"samples": {SAMPLE: {"process": "x_hh_yybb", "mass_gev": 300, "xsec_pb": 0.2,
                                               "shards": 1, "events_per_shard": 1}}}}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def assert_same_selection(a: HistSet, b: HistSet) -> None:
    """Every histogram (axes, contents, variances with flow), cutflow, event count and Σw of
    two selection outputs are equal, exactly; the input names (``files``) may differ."""
    assert sorted(a.samples) == sorted(b.samples) and a.samples
    assert (a.observables, a.regions, a.variations) == (b.observables, b.regions, b.variations)
    filled = 0.0
    for name, sa in a.samples.items():
        sb = b.samples[name]
        assert (sa.n_events, sa.sumw, sa.xsec_pb) == (sb.n_events, sb.sumw, sb.xsec_pb), name
        assert sa.cutflow is not None and sb.cutflow is not None, name
        assert sa.cutflow.to_dict() == sb.cutflow.to_dict(), name
        assert sorted(sa.hists) == sorted(sb.hists), name
        for obs, ha in sa.hists.items():
            hb = sb.hists[obs]
            assert ha.axes == hb.axes, (name, obs)
            np.testing.assert_array_equal(ha.values(flow=True), hb.values(flow=True), err_msg=f"{name} {obs}")
            np.testing.assert_array_equal(ha.variances(flow=True), hb.variances(flow=True),
                                          err_msg=f"{name} {obs}")
            filled += float(ha.values(flow=True).sum())
    assert filled > 0  # not an empty-against-empty comparison
