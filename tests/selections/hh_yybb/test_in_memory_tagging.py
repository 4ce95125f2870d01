"""run_selection(..., models=...): the processor tags the jets of undecorated ntuples itself,
with the same histograms and cutflow as the selection of the decorated ntuples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analysis.core.config import load_config
from selections.hh_yybb import btag as B
from selections.hh_yybb import processor as S
from selections.hh_yybb.cuts import CUTFLOW_STEPS
from taggers.decorate import decorate_file
from taggers.models import load_models
from tests.selections.hh_yybb.test_processor import make_config
from tests.taggers.test_pipeline import small_pipeline


@pytest.fixture(scope="module")
def tagged(ttbar_file: Path, xhh_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The small tagger chain's models and working points, and a decorated copy of the
    generated X -> HH sample."""
    pipe = small_pipeline(ttbar_file, tmp_path_factory)
    cfg = load_config(pipe["config"])
    models = load_models(pipe["models"], cfg.taggers, taggers=["dl1"])
    decorated = tmp_path_factory.mktemp("decorated") / xhh_file.name
    decorate_file(xhh_file, decorated, models, cfg)
    return {"models": models, "wps": B.load_working_points(pipe["out"] / "working_points.json"),
            "raw": xhh_file, "decorated": decorated}


@pytest.mark.parametrize("engine", ["reference", "numba", "numpy"])
def test_in_memory_tagging_equals_the_decorated_ntuple(tagged: dict, engine: str) -> None:
    cfg = make_config(selection={"hh_yybb": {"engine": engine}})
    ref = S.run_selection([tagged["decorated"]], cfg, tagged["wps"])
    got = S.run_selection([tagged["raw"]], cfg, tagged["wps"], models=tagged["models"])
    assert got.summary.taggers_in_memory == ("dl1",) and ref.summary.taggers_in_memory == ()
    assert got.histset.provenance["taggers_in_memory"] == ["dl1"]
    assert "Jet_btag_dl1" not in got.summary.branches and "Jet_btag_dl1" in ref.summary.branches
    (name,) = ref.histset.samples
    a, b = ref.histset.samples[name], got.histset.samples[name]
    assert a.cutflow == b.cutflow
    assert a.cutflow.raw[CUTFLOW_STEPS.index("max_central_jets")] > 0  # events reach the b-tagging
    for obs, h in a.hists.items():
        for what in ("values", "variances"):
            assert np.array_equal(getattr(h, what)(flow=True), getattr(b.hists[obs], what)(flow=True)), (obs, what)
    assert sum(h.values(flow=True).sum() for h in a.hists.values()) > 0


def test_in_memory_tagging_needs_the_selected_tagger(tagged: dict) -> None:
    cfg = make_config(selection={"hh_yybb": {"btag": {"tagger": "mv2"}}})
    with pytest.raises(B.WorkingPointError, match="taggers given hold dl1, not selection.hh_yybb.btag.tagger 'mv2'"):
        S.run_selection([tagged["raw"]], cfg, tagged["wps"], models=tagged["models"])
    with pytest.raises(B.WorkingPointError, match="no branch 'Jet_btag_dl1'"):  # undecorated, no models
        S.run_selection([tagged["raw"]], make_config(), tagged["wps"])
