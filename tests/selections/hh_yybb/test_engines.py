"""The compiled engine (selections.hh_yybb.compiled) gives exactly the reference's histograms
and cutflows (selections.hh_yybb.reference), and is only used while it was verified against
the reference as it is now.

The events are drawn on and around every threshold of the selection
(:func:`tests.fixtures.hh_yybb.near_threshold_events`), in hepline and NanoAOD layout, with
scale factors away from 1, pT-dependent efficiency maps, truth tagging and every systematic
variation: a kernel that decides one cut differently from the reference fails here.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import uproot

from analysis.core.config import SelectionConfig
from analysis.core.errors import ConfigError, NonFiniteInputError
from selections.hh_yybb import btag as B
from selections.hh_yybb import compiled as CP
from selections.hh_yybb import processor as S
from selections.hh_yybb.reference import HHyybbProcessor
from tests.fixtures import hh_yybb as F
from tests.selections.hh_yybb.test_processor import WP_FILE_CONTENT, make_config

N_EVENTS = 4000
ENGINES = ("reference", "numpy", "numba")
SCALE_FACTORS = {"b": {"nominal": 0.95, "uncertainty": 0.03}, "c": {"nominal": 1.1, "uncertainty": 0.1},
                 "light": {"nominal": 1.3, "uncertainty": 0.2}}


def _wp_with_maps() -> dict:
    """The tests' working points with pT-dependent efficiencies (three bins, one empty)."""
    wp = copy.deepcopy(WP_FILE_CONTENT)
    wp["taggers"]["dl1"]["efficiency_vs_pt"] = {
        "pt_edges_gev": [20.0, 40.0, 80.0, 1000.0],
        "working_points": {
            "60": {"b": [0.5, 0.62, 0.65], "c": [0.08, 0.1, None], "light": [0.005, 0.01, 0.02]},
            "70": {"b": [0.6, 0.72, 0.75], "c": [0.2, 0.25, 0.3], "light": [0.02, 0.03, 0.05]},
        },
    }
    return wp


@pytest.fixture(scope="module")
def near_threshold(tmp_path_factory) -> dict[str, Path]:
    rng = np.random.default_rng(2026)
    events = F.near_threshold_events(rng, N_EVENTS)
    weights = rng.uniform(-0.3, 1.5, N_EVENTS)
    base = tmp_path_factory.mktemp("engines")
    wp = base / "working_points.json"
    wp.write_text(json.dumps(_wp_with_maps()))
    return {
        "hepline": F.write_hepline_events(base / "edge_0.root", events, weights, sample="edge"),
        "nanoaod": F.write_nanoaod_events(base / "nano" / "edge.root", events, weights),
        "wp": wp,
    }


@pytest.fixture
def verified(monkeypatch):
    """The compiled engine usable whatever the fingerprint: these tests are the verification."""
    monkeypatch.setattr(CP, "VERIFIED_REFERENCE", CP.reference_fingerprint())


def _run(engine: str, fmt: str, files: dict[str, Path], *, truth: bool = False, maps: bool = True):
    cfg = make_config(selection={"hh_yybb": {"engine": engine, "btag": {
        "scale_factors": SCALE_FACTORS, "truth_tag_samples": ["edge"] if truth else [],
        "efficiency_maps": maps}}})
    if fmt == "hepline":
        res = S.run_selection([files["hepline"]], cfg, files["wp"])
    else:
        res = S.run_selection([files["nanoaod"]], cfg, None, dataset="edge", sample_metadata={"edge": {"xsec_pb": 1.0}})
    assert res.histset.provenance["format"] == fmt
    return res.histset.samples["edge"]


def _assert_equal(a, b, what: str) -> None:
    assert a.cutflow.steps == b.cutflow.steps
    assert a.cutflow.raw == b.cutflow.raw, what
    assert a.cutflow.sumw == b.cutflow.sumw, what
    assert a.cutflow.sumw2 == b.cutflow.sumw2, what
    assert a.n_events == b.n_events == N_EVENTS
    for obs, h in a.hists.items():
        ha, hb = h.view(flow=True), b.hists[obs].view(flow=True)
        for f in ("value", "variance"):
            diff = ha[f] != hb[f]
            assert not diff.any(), (what, obs, f, [tuple(x) for x in np.argwhere(diff)[:5]])


@pytest.mark.parametrize(("fmt", "truth"), [("hepline", False), ("hepline", True), ("nanoaod", False)])
def test_engines_equal_the_reference_near_every_threshold(near_threshold, verified, fmt, truth):
    out = {engine: _run(engine, fmt, near_threshold, truth=truth) for engine in ENGINES}
    ref = out["reference"]
    rows = dict(zip(ref.cutflow.steps, ref.cutflow.raw, strict=True))
    # the events reach every region, so that every cut decides something here
    assert rows["btag_1or2"] > 100 and rows["2tag_tight_highmstar"] > 0 and rows["res_1tag_tight"] > 0, rows
    for engine in ENGINES[1:]:
        _assert_equal(out[engine], ref, f"{engine} vs reference ({fmt}, truth tagging {truth})")
    # every systematic variation moved something (they are compared, not only the nominal)
    h = ref.hists["m_yy"]
    for v in h.axes["variation"]:
        if v != "nominal":
            assert not np.array_equal(h[:, v, :].values(flow=True), h[:, "nominal", :].values(flow=True)), v


def test_engines_equal_without_efficiency_maps(near_threshold, verified):
    ref = _run("reference", "hepline", near_threshold, maps=False)
    _assert_equal(_run("numba", "hepline", near_threshold, maps=False), ref, "numba, no maps")


def test_the_compiled_engine_is_verified_against_the_reference_as_it_is():
    """Fails when cuts.py, inputs.py or reference.py change: the workflow then runs the
    reference (slower, same definition) until the tests above pass and the fingerprint is pinned."""
    current = CP.reference_fingerprint()
    assert current == CP.VERIFIED_REFERENCE, (
        f"the reference selection changed: if the engine tests in this file pass, set "
        f"selections.hh_yybb.compiled.VERIFIED_REFERENCE = {current!r}; if not, update the compiled kernels")


def test_engine_choice(monkeypatch, caplog):
    sel = SelectionConfig.validated({})
    spec = B.btag_spec(sel, "hepline", B.WorkingPoints.from_dict(WP_FILE_CONTENT))

    def pick(engine: str, fmt: str = "hepline"):
        s = SelectionConfig.validated({"hh_yybb": {"engine": engine}})
        return S.make_processor(s, fmt, spec)

    assert sel.hh_yybb.engine == "reference"  # the readable processor unless a config opts in
    assert isinstance(pick("reference"), HHyybbProcessor)
    monkeypatch.setattr(CP, "VERIFIED_REFERENCE", CP.reference_fingerprint())
    for engine in ("auto", "numba", "numpy"):
        assert isinstance(pick(engine), CP.CompiledProcessor), engine
    # the reference changed since the kernels were verified: auto falls back, the others refuse
    monkeypatch.setattr(CP, "VERIFIED_REFERENCE", "0" * 16)
    with caplog.at_level(logging.WARNING, logger="selections.hh_yybb.processor"):
        assert isinstance(pick("auto"), HHyybbProcessor)
    assert "reference selection changed" in caplog.text and "running the reference engine" in caplog.text
    for engine in ("numba", "numpy"):
        with pytest.raises(ConfigError, match=rf"selection.hh_yybb.engine {engine}: the reference selection changed"):
            pick(engine)


def test_the_fingerprint_follows_the_reference_source(tmp_path, monkeypatch):
    here = Path(CP.__file__).parent.parent
    for name in CP._REFERENCE_FILES:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text((here / name).read_text())
    monkeypatch.setattr(CP, "__file__", str(tmp_path / "hh_yybb" / "compiled.py"))
    same = CP.reference_fingerprint()
    for name in CP._REFERENCE_FILES:
        text = (tmp_path / name).read_text()
        (tmp_path / name).write_text(text + "\n# a change\n")
        assert CP.reference_fingerprint() != same, name
        (tmp_path / name).write_text(text)
    assert CP.reference_fingerprint() == same


GOOD_EVENT = {"ph": [F.gam(62.5, 0.0, 0.0), F.gam(62.5, 0.0, 3.14159)],
              "j": [F.jet(60, 0.0, 1.5708, 0.9), F.jet(60, 0.0, -1.5708, 0.7)]}


@pytest.mark.parametrize(("collection", "index", "field", "branch"), [
    ("ph", 1, "eta", "Photon_eta"),      # would silently fail the photon's acceptance
    ("ph", 0, "pt", "Photon_pt"),
    ("j", 0, "btag_dl1", "Jet_btag_dl1"),  # would silently be untagged
    ("j", 1, "pt", "Jet_pt"),
])
def test_non_finite_inputs_are_an_error_naming_file_branch_and_event(tmp_path, verified, collection, index,
                                                                      field, branch):
    """hepline's non-finite policy in both engines: NaN/inf where a cut reads is a one-line
    error naming the file, the branch and the event number, never a silent drop (issue 21)."""
    events = [copy.deepcopy(GOOD_EVENT) for _ in range(5)]
    events[3][collection][index][field] = float("nan") if field != "pt" else float("inf")
    path = F.write_hepline_events(tmp_path / "bad_0.root", events, np.ones(5), sample="bad")
    wp = tmp_path / "wp.json"
    wp.write_text(json.dumps(WP_FILE_CONTENT))
    with uproot.open(path) as f:  # the error names the event by its number
        number = int(f["Events"]["event"].array(library="np")[3])
    for engine in ENGINES:
        cfg = make_config(selection={"hh_yybb": {"engine": engine}})
        with pytest.raises(NonFiniteInputError) as err:
            S.run_selection([path], cfg, wp)
        msg = str(err.value)
        assert str(path) in msg and branch in msg and f"event {number}" in msg and "\n" not in msg, (engine, msg)
