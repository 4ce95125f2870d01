"""selections.hh_yybb.processor: cutflow and categories on a constructed event set with known answers,
histogram filling and systematics, the working-point interface, NanoAOD mapping, bad input."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
import yaml

from analysis.cli import main as hepline
from analysis.core.config import Config, SelectionConfig, config_from_dict, config_hash, load_config
from analysis.core.provenance import read_provenance
from analysis.io.ingest import InputFileError
from analysis.stats import histograms as H
from selections.hh_yybb import btag as B
from selections.hh_yybb import compiled as CP
from selections.hh_yybb import cuts as C
from selections.hh_yybb import kernel as K
from selections.hh_yybb import processor as S
from selections.hh_yybb.smearing import hash_normals
from tests.fixtures import hh_yybb as F
from tests.fixtures.files import write_hepline_fixture, write_nanoaod_fixture
from tests.fixtures.hh_yybb import gam, jet, lep

HALF_PI = math.pi / 2

# WP file for the tests: D > 0.8 is the 60 % WP, D > 0.6 the 70 % WP (made-up numbers with known answers)
WP_FILE_CONTENT = {
    "taggers": {
        "dl1": {
            "variable": "Jet_btag_dl1",
            "fc": 0.08,
            "working_points": {
                "60": {"cut": 0.8, "b_efficiency": 0.60, "light_rejection": 100.0, "c_rejection": 10.0},
                "70": {"cut": 0.6, "b_efficiency": 0.70, "light_rejection": 30.0, "c_rejection": 4.0},
                "77": {"cut": 0.4, "b_efficiency": 0.77, "light_rejection": 10.0, "c_rejection": 2.5},
                "85": {"cut": 0.2, "b_efficiency": 0.85, "light_rejection": 3.0, "c_rejection": 1.5},
            },
        },
        "mv2": {"variable": "Jet_btag_mv2", "fc": None, "working_points": {
            "70": {"cut": 0.5, "b_efficiency": 0.7, "light_rejection": 20.0, "c_rejection": 3.0}}},
    },
    "provenance": {"test": True},
}
WPS = B.WorkingPoints.from_dict(WP_FILE_CONTENT)
BASE_CONFIG = {"seed": 1, "runner": {"executor": "iterative"},
               "generation": {"samples": {"x300": {"process": "x_hh_yybb", "mass_gev": 300, "xsec_pb": 1.0,
                                                   "shards": 1, "events_per_shard": 1}}}}


def make_config(*, selection: dict | None = None, runner: dict | None = None) -> Config:
    """A validated config for the tests: iterative runner, the ``selection`` (and ``runner``)
    settings given, defaults elsewhere."""
    return config_from_dict({**BASE_CONFIG, "runner": {**BASE_CONFIG["runner"], **(runner or {})},
                             "selection": selection or {}})


GOOD = [gam(62.5, 0.0, 0.0), gam(62.5, 0.0, math.pi)]          # m_yy = 125
B60 = [jet(60, 0.0, HALF_PI, 0.9), jet(60, 0.0, -HALF_PI, 0.7)]   # m_bb = 120, 2-tag, m* = 250

EVENTS = [
    {},                                                                      # 0 no photon
    {"ph": [gam(62.5, 0, 0), gam(62.5, 0, math.pi, tight=False)], "j": B60},       # 1 non-tight
    {"ph": [gam(62.5, 0, 0), gam(62.5, 1.45, math.pi)], "j": B60},                 # 2 crack
    {"ph": [gam(62.5, 0, 0, iso_calo=6.3), gam(62.5, 0, math.pi)], "j": B60},       # 3 calo isolation
    {"ph": [gam(150, 0, 0), gam(26, 0, math.pi)], "j": B60},                        # 4 E_T/m_yy
    {"ph": [gam(50, 0, 0), gam(50, 0, math.pi)], "j": B60},                         # 5 m_yy = 100
    {"ph": GOOD, "j": B60, "e": [lep(30, 0.5, 1.2)]},                                  # 6 electron veto
    {"ph": GOOD, "j": [jet(60, 0, HALF_PI, 0.9)], "e": [lep(30, 0.1, 0.1)]},           # 7 e near photon removed; 1 jet
    {"ph": GOOD, "j": [jet(60, 0, HALF_PI, 0.9), jet(60, 0.05, 0.05, 0.9)]},        # 8 jet removed near photon
    {"ph": GOOD, "j": [jet(30, 0.0, f, 0.1, flav=0) for f in (0.8, 1.2, 1.6, 2.0, -0.8, -1.6)]},  # 9 six jets
    {"ph": GOOD, "j": [jet(60, 0, HALF_PI, 0.1, 0), jet(60, 0, -HALF_PI, 0.1, 0)]},  # 10 no tag
    {"ph": GOOD, "j": B60},                                                         # 11 2tag loose low, res
    {"ph": GOOD, "j": [jet(60, 2.0, HALF_PI, 0.7), jet(60, 2.0, -HALF_PI, 0.7)]},   # 12 2tag loose high, res
    {"ph": GOOD, "j": [jet(60, 0, HALF_PI, 0.9), jet(60, 0, -HALF_PI, 0.3, 4)]},    # 13 1tag loose low, res
    {"ph": GOOD, "j": [jet(110, 0, HALF_PI, 0.95), jet(35, 0, -HALF_PI, 0.65)]},    # 14 2tag loose+tight low, res
    {"ph": GOOD, "j": [jet(80, 0, HALF_PI, 0.1, 0), jet(50, 0, -HALF_PI, 0.85),
                     jet(40, 0, math.pi / 4, 0.2, 0)]},                           # 15 1tag: tagged + leading other
    {"ph": [gam(70, 0, 0), gam(70, 0, math.pi)], "j": B60},                         # 16 m_yy = 140: not res
    {"ph": GOOD, "j": B60, "mu": [lep(20, -1.0, 2.0)]},                                # 17 muon veto
    {"ph": GOOD, "j": B60, "mu": [lep(20, -1.0, 2.0, iso=10.0)]},                      # 18 non-isolated muon kept
]
WEIGHTS = np.array([1.0 + 0.1 * i for i in range(len(EVENTS))])

EXPECTED = {
    "all": range(19), "two_photons": range(4, 19), "photon_pt_over_myy": range(5, 19),
    "myy_window": range(6, 19), "lepton_veto": [7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18],
    "two_jets": [9, 10, 11, 12, 13, 14, 15, 16, 18], "max_central_jets": [10, 11, 12, 13, 14, 15, 16, 18],
    "btag_1or2": [11, 12, 13, 14, 15, 16, 18], "2tag": [11, 12, 14, 16, 18], "1tag": [13, 15],
    "2tag_loose_lowmstar": [11, 14, 16, 18], "2tag_loose_highmstar": [12], "2tag_tight_lowmstar": [14],
    "2tag_tight_highmstar": [], "1tag_loose_lowmstar": [13, 15], "1tag_loose_highmstar": [],
    "1tag_tight_lowmstar": [], "1tag_tight_highmstar": [], "res_2tag_loose": [11, 12, 14, 18],
    "res_2tag_tight": [14], "res_1tag_loose": [13, 15], "res_1tag_tight": [],
}


def write_hepline_events(path: Path, *, sample: str = "hhtest", xsec_pb: float = 0.5, drop_btag: bool = False,
                         events: list | None = None, weights: np.ndarray | None = None) -> Path:
    """The constructed :data:`EVENTS` (or ``events`` with ``weights``) in a complete hepline ntuple."""
    return F.write_hepline_events(path, EVENTS if events is None else events, WEIGHTS if weights is None else weights,
                                  sample=sample, xsec_pb=xsec_pb, drop_btag=drop_btag)


def write_nanoaod_events(path: Path, era: str = "v9") -> Path:
    """The constructed :data:`EVENTS` in the CMS NanoAOD layout of ``era``."""
    return F.write_nanoaod_events(path, EVENTS, WEIGHTS, era=era)


#: the generic NanoAOD fixture (tests.fixtures.files) has no era signature: it is read as v9
NANO_V9 = {"objects": {"nanoaod": {"version": "v9"}}}
#: working points for v15's DeepJet, which has none by default (the fixture's scores are 0.05, 0.5, 0.9)
V15_WPS = {"objects": {"nanoaod": {"eras": {"v15": {"photon_id": {"field": "cutBased", "min": 3}, "btag": {
    "variable": "btagDeepFlavB", "working_points": {"loose": 0.1, "medium": 0.3, "tight": 0.7}}}}}}}


@pytest.fixture(scope="module")
def wp_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("wp") / "working_points.json"
    p.write_text(json.dumps(WP_FILE_CONTENT))
    return p


@pytest.fixture(scope="module")
def hepline_events(tmp_path_factory) -> Path:
    return write_hepline_events(tmp_path_factory.mktemp("hh") / "hhtest_0.root")


@pytest.fixture(scope="module")
def config() -> Config:
    return make_config()


@pytest.fixture(scope="module")
def selected(hepline_events, wp_file, config):
    return S.run_selection([hepline_events], config, wp_file)


def _rows(histset, sample="hhtest"):
    cf = histset.samples[sample].cutflow
    return dict(zip(cf.steps, zip(cf.raw, cf.sumw, strict=True), strict=True))


def test_cutflow_known_answers(selected):
    rows = _rows(selected.histset)
    assert list(rows) == list(C.CUTFLOW_STEPS)
    w32 = WEIGHTS.astype(np.float32).astype(float)
    for step, events in EXPECTED.items():
        raw, sumw = rows[step]
        assert raw == len(list(events)), step
        assert sumw == pytest.approx(w32[list(events)].sum()), step  # nominal SF = 1: weights = genWeight


def test_cutflow_report_is_normalised_markdown_and_json(selected):
    table, md = S.cutflow_report(selected.histset)
    k = 0.5 * 1000 * 139.0 / float(WEIGHTS.astype(np.float32).sum())
    w = table.samples["hhtest"].weighted
    assert w[0] == pytest.approx(0.5 * 1000 * 139.0, rel=1e-6)           # all events: sigma x L
    assert w[table.steps.index("1tag")] == pytest.approx(k * (WEIGHTS[13] + WEIGHTS[15]), rel=1e-6)
    assert "| btag_1or2 | 7 |" in md and "Weighted (events in 139 fb⁻¹)" in md
    json.dumps(table.to_dict())


def test_histograms_hold_the_selected_events(selected):
    h = selected.histset.samples["hhtest"].hists
    myy = h["m_yy"][{"region": "2tag_loose_lowmstar", "variation": "nominal"}]
    w32 = WEIGHTS.astype(np.float32).astype(float)
    assert myy.values().sum() == pytest.approx(w32[[11, 14, 16, 18]].sum())
    assert myy.variances().sum() == pytest.approx(np.square(w32[[11, 14, 16, 18]]).sum())
    def near(h1, x):  # content of the bins next to x (values on bin edges, float32 inputs)
        c = h1.axes[0].centers
        return h1.values()[np.abs(c - x) < 0.75 * h1.axes[0].widths[0]].sum()

    assert near(myy, 125.0) == pytest.approx(w32[[11, 14, 18]].sum())
    assert near(myy, 140.0) == pytest.approx(w32[16])
    mbb = h["m_bb"][{"region": "1tag_loose_lowmstar", "variation": "nominal"}]
    # event 15: the tagged 50 GeV jet pairs with the leading untagged 80 GeV jet: m_bb = 2 sqrt(80 * 50)
    assert near(mbb, 2 * math.sqrt(80 * 50)) == pytest.approx(w32[15])
    assert near(mbb, 120.0) == pytest.approx(w32[13])
    mstar = h["m_star"][{"region": "2tag_loose_highmstar", "variation": "nominal"}]
    assert mstar.values().sum() == pytest.approx(w32[12])
    # every (region, variation) exists even where empty
    assert list(h["m_yy"].axes["variation"]) == H.variation_names(H.SYSTEMATICS)
    assert h["m_yy"][{"region": "res_1tag_tight", "variation": "jet_scaleUp"}].values().sum() == 0


def test_systematic_variations(selected):
    h = selected.histset.samples["hhtest"].hists["m_yy"]
    nom = h[{"region": "diphoton", "variation": "nominal"}]
    up = h[{"region": "diphoton", "variation": "photon_scaleUp"}]
    # diphoton region: events 6..18, m_yy = 125 except event 16 (140); photon scale +0.5 %
    w32 = WEIGHTS.astype(np.float32).astype(float)
    ev = np.arange(6, 19)
    m_up = np.where(ev == 16, 140.0, 125.0) * 1.005
    expected, _ = np.histogram(m_up, bins=up.axes[0].edges, weights=w32[ev])
    assert up.values() == pytest.approx(expected)
    assert nom.values().sum() == pytest.approx(w32[ev].sum())
    # b-tag SF weight systematics: event 11 has two b jets (tagged 60 % and 70 %): weight x 1.03^2
    b_up = h[{"region": "2tag_loose_lowmstar", "variation": "btag_bUp"}].values().sum()
    # events 11, 14, 16, 18 each hold two tagged b jets
    assert b_up == pytest.approx(1.03**2 * w32[[11, 14, 16, 18]].sum())
    light_up = h[{"region": "2tag_loose_lowmstar", "variation": "btag_lightUp"}].values().sum()
    assert light_up == pytest.approx(w32[[11, 14, 16, 18]].sum())  # no light jets there
    # resolution: Down mirrors Up about nominal
    r_up = h[{"region": "diphoton", "variation": "photon_resolutionUp"}].values()
    r_dn = h[{"region": "diphoton", "variation": "photon_resolutionDown"}].values()
    assert np.allclose(r_dn, np.clip(2 * nom.values() - r_up, 0, None))
    assert not np.allclose(r_up, nom.values())  # the smearing moved something
    # jet energy scale down 2 %: event 14's 35 GeV jet stays above 30 and m_bb 121.6 stays inside the windows
    j_dn = h[{"region": "2tag_tight_lowmstar", "variation": "jet_scaleDown"}].values().sum()
    assert j_dn == pytest.approx(w32[14])


def test_nanoevents_and_preload_reading_agree(hepline_events, wp_file, config):
    cfg = make_config(selection={"hh_yybb": {"read_mode": "nanoevents"}})
    lazy = S.run_selection([hepline_events], cfg, wp_file)
    a = _rows(lazy.histset)
    b = _rows(S.run_selection([hepline_events], config, wp_file).histset)
    assert a == b


def test_stage_chunksize_is_used_and_does_not_change_results(hepline_events, wp_file, config):
    whole = S.run_selection([hepline_events], config, wp_file)
    cfg = make_config(runner={"chunksize": 1000}, selection={"hh_yybb": {"chunksize": 3}})
    small = S.run_selection([hepline_events], cfg, wp_file)
    assert small.metrics.config["chunksize"] == 3 == small.metrics.chunksize  # the stage's setting wins
    assert small.metrics.chunks > 1
    assert _rows(small.histset) == _rows(whole.histset)
    assert small.histset.samples["hhtest"].cutflow == whole.histset.samples["hhtest"].cutflow
    cfg_runner = make_config(runner={"chunksize": 3}, selection={"hh_yybb": {"chunksize": None}})
    assert S.run_selection([hepline_events], cfg_runner, wp_file).metrics.config["chunksize"] == 3
    assert S.selection_runner(cfg_runner) is cfg_runner.runner


def test_numba_and_numpy_engines_agree(hepline_events, wp_file, config):
    ref = S.run_selection([hepline_events], make_config(selection={"hh_yybb": {"engine": "numpy"}}),
                          wp_file).histset.samples["hhtest"]
    fast = S.run_selection([hepline_events], make_config(selection={"hh_yybb": {"engine": "numba"}}),
                           wp_file).histset.samples["hhtest"]
    assert fast.cutflow == ref.cutflow
    for obs, h in fast.hists.items():
        # per region and variation (the constructed events put masses exactly on bin edges,
        # where libm and numpy's vectorised trigonometry may round to different bins)
        a, b = h.view(flow=True), ref.hists[obs].view(flow=True)
        for f in ("value", "variance"):
            assert np.allclose(a[f].sum(axis=-1), b[f].sum(axis=-1)), (obs, f)
        assert a["value"].sum() > 0


@pytest.mark.parametrize("truth", [False, True])
def test_compiled_shifted_passes_equal_the_pass_by_pass_reference(tmp_path, wp_file, config, truth):
    """The five shifted passes in one compiled call (selections.hh_yybb.shifted) against the
    numpy engine's pass-by-pass selection and fill, on 3000 random events with photons and
    jets near every threshold a shift moves; SFs away from 1 and efficiency maps off."""
    rng = np.random.default_rng(11)
    events = F.random_diphoton_events(rng, 3000)
    weights = rng.uniform(-0.2, 1.0, len(events))
    path = write_hepline_events(tmp_path / "hhrand_0.root", sample="hhrand", events=events, weights=weights)
    btag = {"scale_factors": {"b": {"nominal": 0.95, "uncertainty": 0.03},
                              "c": {"nominal": 1.1, "uncertainty": 0.1},
                              "light": {"nominal": 1.3, "uncertainty": 0.2}},
            "truth_tag_samples": ["hhrand"] if truth else []}
    out = {}
    for engine in ("numpy", "numba"):
        cfg = make_config(selection={"hh_yybb": {"engine": engine, "btag": btag}})
        out[engine] = S.run_selection([path], cfg, wp_file).histset.samples["hhrand"]
    assert out["numba"].cutflow.raw == out["numpy"].cutflow.raw
    assert np.allclose(out["numba"].cutflow.sumw, out["numpy"].cutflow.sumw, rtol=1e-12, atol=0)
    shifted = ["photon_scaleUp", "photon_scaleDown", "photon_resolutionUp", "jet_scaleUp", "jet_scaleDown"]
    for obs, h in out["numba"].hists.items():
        ref = out["numpy"].hists[obs]
        for v in shifted:
            a, b = h[:, v, :].view(flow=True), ref[:, v, :].view(flow=True)
            assert b["value"].sum() != 0, (obs, v)
            # the event b-tag weight is an exact product here and exp(Σ log) in numpy
            assert np.allclose(a["value"], b["value"], rtol=1e-12, atol=1e-12), (obs, v)
            assert np.allclose(a["variance"], b["variance"], rtol=1e-12, atol=1e-12), (obs, v)
    # the shifts move events across the thresholds: the variations differ from the nominal
    h = out["numba"].hists["m_yy"]
    for v in shifted[:3]:
        assert not np.array_equal(h[:, v, :].values(flow=True), h[:, "nominal", :].values(flow=True)), v


def test_shifted_passes_take_the_nominal_pairs_angle(tmp_path, wp_file, config, monkeypatch):
    """The photon passes take the nominal pair's cosh Δη − cos Δφ from the nominal pass: the
    entries are those computed without it, and a tampered angle changes them (so it is used)."""
    from selections.hh_yybb import shifted as KS
    rng = np.random.default_rng(12)
    path = write_hepline_events(tmp_path / "hhrand_0.root", sample="hhrand", events=F.random_diphoton_events(rng, 1500),
                                weights=np.ones(1500))
    calls = []
    real = KS.shifted_entries

    def spy(passes, **kw):
        calls.append((passes, kw))
        return real(passes, **kw)

    monkeypatch.setattr(KS, "shifted_entries", spy)
    S.run_selection([path], make_config(selection={"hh_yybb": {"engine": "numba"}}), wp_file)
    passes, kw = calls[0]
    nominal = kw["nominal"]
    angle = np.asarray(nominal["angle"])
    has_pair = np.asarray(nominal["i2"]) >= 0
    assert np.isfinite(angle[has_pair]).all() and np.isnan(angle[~has_pair]).all()
    seeded = real(passes, **kw)
    unseeded = real(passes, **{**kw, "nominal": {k: v for k, v in nominal.items() if k != "angle"}})
    tampered = real(passes, **{**kw, "nominal": {**nominal, "angle": angle * 1.01}})
    for k in ("bits", "obs", "variation", "weight"):
        assert np.array_equal(seeded[k], unseeded[k], equal_nan=True), k  # m_bb, m*: NaN without jets
    assert len(seeded["bits"]) > 100
    # m_γγ of the photon passes' entries moves with the angle (×√1.01), or entries move across cuts
    photon = np.isin(seeded["variation"], [p[2] for p in passes[:3]])
    photon_t = np.isin(tampered["variation"], [p[2] for p in passes[:3]])
    assert not np.array_equal(tampered["obs"][0][photon_t], seeded["obs"][0][photon])

def test_engine_auto_uses_numba_only_where_it_pays(wp_file, monkeypatch):
    sel = SelectionConfig.validated({"hh_yybb": {"engine": "auto", "numba_min_events": 1000}})
    proc = CP.CompiledProcessor(sel, "hepline", B.btag_spec(sel, "hepline", wp_file))
    monkeypatch.setattr(K, "kernel_loaded", lambda: False)
    proc._choose_engine({"n_events": 999})
    assert proc._event_arrays is K.event_arrays_numpy
    proc._choose_engine({"n_events": 1000})
    assert proc._event_arrays is K.event_arrays
    monkeypatch.setattr(K, "kernel_loaded", lambda: True)  # loaded anyway: use it
    proc._choose_engine({})
    assert proc._event_arrays is K.event_arrays
    fixed = CP.CompiledProcessor(SelectionConfig.validated({"hh_yybb": {"engine": "numpy"}}), "hepline",
                              B.btag_spec(sel, "hepline", wp_file))
    fixed._choose_engine({"n_events": 10**9})
    assert fixed._event_arrays is K.event_arrays_numpy


@pytest.mark.parametrize("era", ["v5", "v9", "v12", "v15"])
def test_nanoaod_mapping_on_constructed_events(tmp_path, era):
    """The known answers in every NanoAOD era: the era detected from the branches, its photon
    ID (v5: the bitmap), jet ID (v15: computed from its inputs) and b-tagging cuts applied."""
    path = write_nanoaod_events(tmp_path / "nano" / "nano.root", era)
    cfg = make_config(selection=V15_WPS if era == "v15" else None)
    res = S.run_selection([path], cfg, None, dataset="nanotest", sample_metadata={"nanotest": {"xsec_pb": 1.0}})
    prov = res.histset.provenance
    assert prov["format"] == "nanoaod" and prov["nanoaod_era"] == era and "is_data" not in prov
    assert prov["btag"]["branch"] == "Jet_btagDeepFlavB"
    assert ("Photon_cutBasedBitmap" in prov["branches"]) == (era == "v5")
    assert ("Jet_jetId" in prov["branches"]) == (era != "v15") and ("Jet_neHEF" in prov["branches"]) == (era == "v15")
    rows = _rows(res.histset, "nanotest")
    for step, events in EXPECTED.items():
        assert rows[step][0] == len(list(events)), step
    sample = res.histset.samples["nanotest"]
    assert sample.sumw == pytest.approx(float(WEIGHTS.astype(np.float32).sum()))  # the Runs tree (v5: genEventSumw_)


def test_nanoaod_fixture_has_the_fields_and_runs(tmp_path):
    path = write_nanoaod_fixture(tmp_path / "fixture" / "nano.root", 2500, np.random.default_rng(11))
    res = S.run_selection([path], make_config(selection=NANO_V9), None, sample_metadata={"fixture": {"xsec_pb": 1.0}})
    rows = _rows(res.histset, "fixture")
    # independent count of events with >= 2 photons passing the CMS tight ID + acceptance
    with uproot.open(path) as f:
        a = f["Events"].arrays(["Photon_pt", "Photon_eta", "Photon_cutBased", "Photon_electronVeto"])
    aeta = abs(a.Photon_eta)
    good = ((a.Photon_pt > 25) & (aeta < 2.37) & ~((aeta >= 1.37) & (aeta <= 1.52))
            & (a.Photon_cutBased >= 3) & a.Photon_electronVeto)
    n_two = int(ak.sum(ak.sum(good, axis=1) >= 2))
    assert n_two > 0
    assert rows["two_photons"][0] == n_two
    assert rows["all"][0] == 2500
    raws = [rows[s][0] for s in C.SEQUENTIAL_STEPS]
    assert raws == sorted(raws, reverse=True)



def test_nanoaod_fixture_compiled_shifted_passes_equal_the_reference(tmp_path, config):
    """The compiled shifted passes on the CMS mapping (jet ID, no relative photon isolation)."""
    path = write_nanoaod_fixture(tmp_path / "fixture" / "nano.root", 2500, np.random.default_rng(11))
    out = {}
    for engine in ("numpy", "numba"):
        cfg = make_config(selection={"hh_yybb": {"engine": engine}, **NANO_V9})
        out[engine] = S.run_selection([path], cfg, None, sample_metadata={"fixture": {"xsec_pb": 1.0}}
                                      ).histset.samples["fixture"]
    assert out["numba"].cutflow.raw == out["numpy"].cutflow.raw
    filled = 0.0
    for obs, h in out["numba"].hists.items():
        a, b = h.view(flow=True), out["numpy"].hists[obs].view(flow=True)
        for f in ("value", "variance"):
            assert np.allclose(a[f], b[f], rtol=1e-12, atol=1e-12), (obs, f)
        filled += float(np.abs(h[:, "jet_scaleUp", :].values(flow=True)).sum())
    assert filled > 0

# ---------------------------------------------------------------------------------------
# working points and bad input
# ---------------------------------------------------------------------------------------
def test_working_point_file_is_the_source_of_cuts(wp_file):
    spec = B.btag_spec(SelectionConfig.default(), "hepline", wp_file)
    assert spec.cuts == {"70": 0.6, "60": 0.8}
    assert spec.branch == "Jet_btag_dl1" and spec.field == "btag_dl1"
    assert spec.efficiencies["60"] == pytest.approx({"b": 0.6, "c": 0.1, "light": 0.01})
    assert spec.ordered_wps == ["70", "60"]


@pytest.mark.parametrize(
    ("section", "content", "match"),
    [
        ({"tagger": "rnnip"}, WP_FILE_CONTENT, r"wp\.json: taggers has no tagger 'rnnip' \(it has: dl1, mv2\)"),
        ({"tagger": "mv2", "one_tag_wp": "60"}, WP_FILE_CONTENT,
         r"wp\.json: taggers\.mv2\.working_points has no working point '60'"),
        ({}, {"taggers": {"dl1": {**WP_FILE_CONTENT["taggers"]["dl1"], "variable": "Jet_btag_mv2"}}},
         r"wp\.json: taggers\.dl1\.variable is 'Jet_btag_mv2', expected 'Jet_btag_dl1'"),
        ({}, {"no_taggers": 1}, r"wp\.json: no 'taggers'"),
        ({}, {"taggers": {"dl1": {**WP_FILE_CONTENT["taggers"]["dl1"], "working_points": {
            "70": {"cut": 0.6, "b_efficiency": 0.7, "light_rejection": None, "c_rejection": 4.0},
            "60": WP_FILE_CONTENT["taggers"]["dl1"]["working_points"]["60"]}}}},
         r"wp\.json: taggers\.dl1\.working_points\.70\.light_rejection: expected a number, got None"),
        ({}, {"taggers": {"dl1": {**WP_FILE_CONTENT["taggers"]["dl1"], "working_points": {
            "70": {"cut": 0.6, "b_efficiency": 0.7, "light_rejection": 0, "c_rejection": 4.0},
            "60": WP_FILE_CONTENT["taggers"]["dl1"]["working_points"]["60"]}}}},
         r"taggers\.dl1\.working_points\.70\.light_rejection: must not be 0"),
        ({}, None, "needs the taggers stage's working-point file"),
    ],
)
def test_mismatched_working_points_raise(tmp_path, section, content, match):
    path = None
    if content is not None:
        path = tmp_path / "wp.json"
        path.write_text(json.dumps(content))
    cfg = SelectionConfig.validated({"hh_yybb": {"btag": section}})
    with pytest.raises(B.WorkingPointError, match=match) as err:
        B.btag_spec(cfg, "hepline", path)
    assert "\n" not in str(err.value)  # one line


def test_working_points_are_typed_and_checked_when_used(tmp_path):
    wps = WPS
    assert wps.source == "<in-memory working points>" and sorted(wps.taggers) == ["dl1", "mv2"]
    dl1 = wps.tagger("dl1")
    assert dl1.variable == "Jet_btag_dl1" and dl1.efficiency_vs_pt is None
    point = dl1.point("70")
    assert point == B.WorkingPoint(cut=0.6, b_efficiency=0.7, c_rejection=4.0, light_rejection=30.0)
    assert point.efficiencies == {"b": 0.7, "c": 0.25, "light": pytest.approx(1 / 30)}
    path = tmp_path / "wp.json"
    path.write_text(json.dumps(WP_FILE_CONTENT))
    read = B.load_working_points(path)
    assert read.source == str(path) and read.tagger("mv2").point("70").cut == 0.5
    with pytest.raises(B.WorkingPointError, match=r"missing\.json: working-point file not found"):
        B.load_working_points(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(B.WorkingPointError, match=r"bad\.json: working-point file is not valid JSON"):
        B.load_working_points(tmp_path / "bad.json")


def test_input_without_the_tagger_branch(tmp_path, wp_file, config):
    # an undecorated hepline ntuple: no Jet_btag_dl1
    path = write_hepline_fixture(tmp_path / "plain.root", 20, np.random.default_rng(3), sample="plain")
    with pytest.raises(B.WorkingPointError, match="no branch 'Jet_btag_dl1'"):
        S.run_selection([path], config, wp_file)


def test_object_mapping_naming_a_missing_branch(tmp_path, wp_file, config):
    path = write_hepline_events(tmp_path / "ev.root")
    cfg = make_config(selection={"objects": {"hepline": {"photon": {"id": {"field": "isLoose"}}}}})
    with pytest.raises(Exception, match="Photon_isLoose"):
        S.run_selection([path], cfg, wp_file)


@pytest.mark.parametrize("engine", ["numba", "numpy"])
@pytest.mark.parametrize("photons", [{"pt_min": 1000.0}, {"crack": [0.0, 5.0]}])  # the second: no candidate at all
def test_no_event_passes_gives_empty_histograms_and_a_cutflow(tmp_path, wp_file, config, engine, photons):
    path = write_hepline_events(tmp_path / "ev.root", sample="empty")
    cfg = make_config(selection={"hh_yybb": {"photons": photons, "engine": engine}})
    res = S.run_selection([path], cfg, wp_file)
    rows = _rows(res.histset, "empty")
    assert rows["all"][0] == 19 and rows["two_photons"][0] == 0
    assert all(h.values().sum() == 0 for h in res.histset.samples["empty"].hists.values())


def test_per_smearing_is_deterministic():
    keys = np.arange(200000, dtype=np.uint64)
    z = hash_normals(keys, 5)
    assert np.array_equal(z, hash_normals(keys, 5))
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert not np.array_equal(z, hash_normals(keys, 6))


# ---------------------------------------------------------------------------------------
# truth tagging
# ---------------------------------------------------------------------------------------
def _cut_based_categories(flav, bins, e2, e1):
    """Exact enumeration over every tag-bin configuration of one event's jets (pT-ordered):
    {(kind, c0, c1): probability} with the cut-based rule of the processor."""
    import itertools

    out: dict = {}
    n = len(flav)
    for conf in itertools.product((0, 1, 2), repeat=n):  # 0 untagged, 1 2-tag WP only, 2 also 1-tag WP
        p = 1.0
        for f, b in zip(flav, conf, strict=True):
            p *= (1 - e2[f], e2[f] - e1[f], e1[f])[b]
        two = [i for i, b in enumerate(conf) if b >= 1]
        one = [i for i, b in enumerate(conf) if b >= 2]
        if len(two) >= 2:
            key = (2, two[0], two[1])
        elif one:
            other = [i for i in range(n) if i != one[0]][0]
            key = (1, one[0], other)
        else:
            continue
        out[key] = out.get(key, 0.0) + p
    return out


def test_truth_tag_rows_match_exact_enumeration():
    rng = np.random.default_rng(5)
    counts = np.array([2, 3, 0, 5, 4, 1, 3])
    n = counts.sum()
    jets = CP.FlatCollection(counts, {"pt": np.ones(n), "flavour_class": rng.integers(0, 3, n).astype(np.int8)})
    jet_mask = rng.random(n) > 0.15
    event_mask = np.array([True, True, True, True, True, True, False])
    e2 = np.array([0.04, 0.3, 0.72])
    e1 = np.array([0.01, 0.1, 0.61])
    rows = B.truth_tag_rows(jets.evt, jets.n_events, jets["flavour_class"], jet_mask, event_mask,
                            {"nominal": (e2, e1), "up": (e2 * 1.1, e1 * 1.1)})
    got: dict = {}
    for ev, k, a, b, p in zip(rows["evt"], rows["kind"], rows["c0"], rows["c1"], rows["p"]["nominal"], strict=True):
        got[(int(ev), int(k), int(a), int(b))] = p
    expected: dict = {}
    for ev in range(len(counts)):
        if not event_mask[ev]:
            continue
        idx = [i for i in range(jets.offsets[ev], jets.offsets[ev + 1]) if jet_mask[i]]
        if len(idx) < 2:
            continue  # the selection requires two jets before b-tagging
        for (k, a, b), p in _cut_based_categories([jets["flavour_class"][i] for i in idx], None, e2, e1).items():
            expected[(ev, k, idx[a], idx[b])] = p
    # events with one selected jet give 1-tag rows without a second candidate: none here
    assert set(got) == set(expected)
    for key, p in expected.items():
        assert got[key] == pytest.approx(p, rel=1e-12), key
    # the SF-shifted efficiencies change the probabilities
    assert not np.allclose(rows["p"]["up"], rows["p"]["nominal"])


def test_truth_tagging_in_the_selection(hepline_events, wp_file, config):
    cut = S.run_selection([hepline_events], config, wp_file)
    cfg = make_config(selection={"hh_yybb": {"btag": {"truth_tag_samples": ["hhtest"]}}})
    truth = S.run_selection([hepline_events], cfg, wp_file)
    rc, rt = _rows(cut.histset), _rows(truth.histset)
    pre = C.SEQUENTIAL_STEPS[:-1]
    for step in pre:  # nothing before b-tagging changes
        assert rt[step] == rc[step], step
    # every event after the jet cuts contributes, with total probability < 1
    assert rt["btag_1or2"][0] == rc["max_central_jets"][0]
    assert 0 < rt["btag_1or2"][1] < rc["max_central_jets"][1]
    assert rt["btag_1or2"][1] == pytest.approx(rt["2tag"][1] + rt["1tag"][1])
    # histograms hold exactly the cutflow's weighted yields
    h = truth.histset.samples["hhtest"].hists["m_yy"]
    for region in ("2tag_loose_lowmstar", "res_1tag_loose"):
        total = h[{"region": region, "variation": "nominal"}].sum(flow=True).value
        assert total == pytest.approx(rt[region][1], rel=1e-9, abs=1e-12)
    # b-tag SF variations move the truth-tagged yields
    up = h[{"region": "2tag_loose_lowmstar", "variation": "btag_bUp"}].sum(flow=True).value
    nom = h[{"region": "2tag_loose_lowmstar", "variation": "nominal"}].sum(flow=True).value
    if nom > 0:
        assert up != pytest.approx(nom)


def test_truth_tagging_needs_truth_flavour(config):
    sel = SelectionConfig.validated({"objects": {"hepline": {"jet": {"flavour": None}}},
                                     "hh_yybb": {"btag": {"truth_tag_samples": ["x"]}}})
    with pytest.raises(B.WorkingPointError, match="truth flavour"):
        B.btag_spec(sel, "hepline", WPS)


def test_cli_select_writes_the_outputs_with_overrides(hepline_events, wp_file, tmp_path, capsys):
    """``hepline select``: --set overrides validated on the typed config (the record hashes the
    overridden config), the outputs as select() writes them, one-line errors naming the key."""
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(yaml.safe_dump({
        "seed": 1, "runner": {"executor": "iterative"},
        "generation": {"samples": {"x300": {"process": "x_hh_yybb", "mass_gev": 300, "xsec_pb": 1.0,
                                            "shards": 1, "events_per_shard": 1}}}}))
    common = ["select", "--config", str(cfg_path), "--working-points", str(wp_file)]
    out = tmp_path / "sel.pkl"
    assert hepline([*common, "--output", str(out), "--cutflow-json", str(tmp_path / "cf.json"),
                    "--cutflow-md", str(tmp_path / "cf.md"), "--metrics", str(tmp_path / "m.json"),
                    "--set", "selection.hh_yybb.engine=numpy", "--set", "selection.hh_yybb.numba_min_events=5",
                    str(hepline_events)]) == 0
    base = load_config(cfg_path)
    expected = base.replace(selection=base.selection.replace(
        hh_yybb=base.selection.hh_yybb.replace(engine="numpy", numba_min_events=5)))
    rec = read_provenance(out)
    assert rec["config_hash"] == config_hash(expected) != config_hash(base)
    assert rec["stage"] == "hh_yybb.select" and rec["seeds"] == {"smearing": 20211123}
    hs = H.HistSet.read(out)
    table, md = S.cutflow_report(hs)
    assert json.loads((tmp_path / "cf.json").read_text()) == table.to_dict()
    assert (tmp_path / "cf.md").read_text() == md
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["events"] == len(EVENTS) and metrics["stage"] == "run_processor"
    assert hs.provenance["selection_config_hash"] == config_hash(expected.selection)
    capsys.readouterr()
    for bad, match in (("selection.hh_yybb.engine=fast", "selection.hh_yybb.engine"),
                       ("selection.hh_yybb.read_mode=fast", "selection.hh_yybb.read_mode"),
                       ("no-equals-sign", "--set 'no-equals-sign': expected KEY=VALUE"),
                       ("seed.x=1", "--set seed.x: seed is not a mapping")):
        assert hepline([*common, "--output", str(tmp_path / "x.pkl"), "--set", bad, str(hepline_events)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("hepline: error: ") and match in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.pkl").exists()


# ---------------------------------------------------------------------------------------
# pT-dependent efficiency maps
# ---------------------------------------------------------------------------------------
def _with_maps(maps_for, edges=(20.0, 50.0, 100.0, 500.0), jets=None) -> B.WorkingPoints:
    """WP_FILE_CONTENT plus an efficiency_vs_pt block: maps_for(wp, flavour) -> per-bin list
    (``jets``: the per-bin test-jet counts of every WP and flavour)."""
    content = copy.deepcopy(WP_FILE_CONTENT)
    dl1 = content["taggers"]["dl1"]
    dl1["efficiency_vs_pt"] = {
        "pt_edges_gev": list(edges),
        "working_points": {wp: {fl: maps_for(wp, fl) for fl in ("b", "c", "light")} for wp in dl1["working_points"]},
    }
    if jets is not None:
        dl1["efficiency_vs_pt"]["jets"] = {wp: {fl: list(jets) for fl in ("b", "c", "light")}
                                           for wp in dl1["working_points"]}
    return B.WorkingPoints.from_dict(content)


def test_efficiency_maps_are_read_and_looked_up():
    content = _with_maps(lambda wp, fl: [0.1, None, 0.3])
    spec = B.btag_spec(SelectionConfig.default(), "hepline", content)
    assert spec.pt_edges == (20.0, 50.0, 100.0, 500.0)
    # the empty middle bin takes the inclusive efficiency (light at 70 %: 1/30)
    assert spec.efficiency_maps["70"]["light"] == (0.1, pytest.approx(1 / 30), 0.3)
    # outside the edges: the nearest bin
    assert spec.pt_bin(np.array([5.0, 20.0, 49.9, 50.0, 120.0, 900.0])).tolist() == [0, 0, 0, 1, 2, 2]
    table = spec.efficiency_table(spec.ordered_wps)
    assert table.shape == (3, 2, 3)  # pT bins, used WPs (70, 60), flavour classes
    # bins with fewer than efficiency_map_min_tagged (10) tagged test jets: the inclusive value
    counted = _with_maps(lambda wp, fl: [0.1, 0.2, 0.0], jets=[1000, 40, 5000])
    thin = B.btag_spec(SelectionConfig.default(), "hepline", counted)
    assert thin.efficiency_maps["70"]["light"] == (0.1, pytest.approx(1 / 30), pytest.approx(1 / 30))  # 8 and 0 tagged
    loose = B.btag_spec(SelectionConfig.validated({"hh_yybb": {"btag": {"efficiency_map_min_tagged": 0}}}), "hepline",
                        counted)
    assert loose.efficiency_maps["70"]["light"] == (0.1, 0.2, 0.0)
    off = B.btag_spec(SelectionConfig.validated({"hh_yybb": {"btag": {"efficiency_maps": False}}}), "hepline", content)
    assert off.efficiency_maps is None and off.efficiency_table(off.ordered_wps).shape == (1, 2, 3)


@pytest.mark.parametrize("maps_for, match", [
    (lambda wp, fl: [0.1, 0.2], r"taggers\.dl1\.efficiency_vs_pt\.working_points\.70\.light: needs 3 values"),
    (lambda wp, fl: [0.1, 1.5, 0.2], r"efficiency_vs_pt\.working_points\.70\.light: bin 1 has 1\.5"),
])
def test_bad_efficiency_maps_name_what_is_wrong(maps_for, match):
    with pytest.raises(B.WorkingPointError, match=match):
        B.btag_spec(SelectionConfig.default(), "hepline", _with_maps(maps_for))
    with pytest.raises(B.WorkingPointError, match=r"efficiency_vs_pt\.pt_edges_gev: must increase"):
        B.btag_spec(SelectionConfig.default(), "hepline", _with_maps(lambda wp, fl: [0.1, 0.2, 0.3],
                                                                       edges=(20.0, 10.0, 30.0, 40.0)))


def test_efficiency_maps_drive_truth_tagging(hepline_events, config):
    """Flat maps equal to the inclusive efficiencies change nothing (truth tagging and the
    SF weights of cut-based tagging); lower efficiencies above 50 GeV lower the truth-tagged
    2-tag yield."""
    truth_cfg = make_config(selection={"hh_yybb": {"btag": {"truth_tag_samples": ["hhtest"]}}})
    inclusive = WP_FILE_CONTENT["taggers"]["dl1"]["working_points"]

    def eff(wp, fl):
        w = inclusive[wp]
        return w["b_efficiency"] if fl == "b" else 1.0 / w[f"{fl}_rejection"]

    base = _rows(S.run_selection([hepline_events], truth_cfg, WPS).histset)
    flat = _rows(S.run_selection([hepline_events], truth_cfg, _with_maps(lambda wp, fl: [eff(wp, fl)] * 3)).histset)
    for step in C.CUTFLOW_STEPS:
        assert flat[step][1] == pytest.approx(base[step][1], rel=1e-12), step
    h_base = S.run_selection([hepline_events], config, WPS).histset.samples["hhtest"].hists
    h_flat = S.run_selection([hepline_events], config, _with_maps(lambda wp, fl: [eff(wp, fl)] * 3)
                             ).histset.samples["hhtest"].hists
    assert np.allclose(h_flat["m_yy"].values(flow=True), h_base["m_yy"].values(flow=True), rtol=1e-12)
    # a map with lower efficiencies for jets above 50 GeV lowers the 2-tag yield
    low = _rows(S.run_selection([hepline_events], truth_cfg,
                                _with_maps(lambda wp, fl: [eff(wp, fl), 0.5 * eff(wp, fl), 0.5 * eff(wp, fl)])).histset)
    assert 0 < low["2tag"][1] < base["2tag"][1]
    assert low["max_central_jets"] == base["max_central_jets"]  # nothing before b-tagging moves


def test_selection_of_a_hadd_merged_file_equals_that_of_its_shards(tmp_path, wp_file, config):
    from analysis.generation.hadd import hadd

    shards = [write_hepline_events(tmp_path / f"hhtest_{i}.root") for i in range(2)]
    merged = tmp_path / "hhtest_merged.root"
    hadd(shards, merged, basket_events=4)
    a = S.run_selection(shards, config, wp_file).histset.samples["hhtest"]
    b = S.run_selection([merged], config, wp_file).histset.samples["hhtest"]
    assert a.cutflow.raw == b.cutflow.raw
    assert np.allclose(a.cutflow.sumw, b.cutflow.sumw, rtol=1e-12)
    assert a.cutflow.raw[0] == 2 * len(EVENTS)
    for key in ("sumw", "xsec_pb"):
        assert getattr(a, key) == pytest.approx(getattr(b, key), rel=1e-12), key
    for obs, h in a.hists.items():
        va, vb = h.view(flow=True), b.hists[obs].view(flow=True)
        assert np.allclose(va["value"], vb["value"], rtol=1e-12, atol=0) and va["value"].sum() > 0, obs
        assert np.allclose(va["variance"], vb["variance"], rtol=1e-12, atol=0), obs


def test_distinct_count_in_order_equals_unique():
    rng = np.random.default_rng(4)
    for n in (0, 1, 2, 50, 1000):
        v = np.sort(rng.integers(0, max(n // 3, 1), n))
        assert B.distinct_count(v, in_order=True) == B.distinct_count(v) == np.unique(v).size
        shuffled = rng.permutation(v)
        assert B.distinct_count(shuffled) == np.unique(v).size


@pytest.mark.parametrize("fmt", ["hepline", "nanoaod"])
def test_preloaded_columns_equal_the_layout_columns(fmt, hepline_events, wp_file, config, tmp_path, monkeypatch):
    path = hepline_events if fmt == "hepline" else write_nanoaod_fixture(
        tmp_path / "nano" / "nano.root", 600, np.random.default_rng(3))
    seen = []
    make = CP.CompiledProcessor._source

    def recording(events):
        src = make(events)
        seen.append(src)
        return src

    monkeypatch.setattr(CP.CompiledProcessor, "_source", staticmethod(recording))
    S.run_selection([str(path)], make_config(selection={"hh_yybb": {"engine": "numpy"}, **NANO_V9}), wp_file)
    assert seen
    for src in seen:
        assert src.preloaded  # the bulk-read arrays were found: the fast path is taken
        layout_only = CP._ColumnSource(src.events)
        layout_only.preloaded = {}
        names = [b for b in src.preloaded if not b.startswith("n")]
        assert len(names) > 10
        for branch in names:
            coll, _, field = branch.partition("_")
            key = (coll, field) if field and coll in {"Photon", "Jet", "Electron", "Muon"} else (None, branch)
            np.testing.assert_array_equal(src.column(*key), layout_only.column(*key), err_msg=branch)
            if key[0] is not None:
                np.testing.assert_array_equal(src.offsets(coll), layout_only.offsets(coll), err_msg=branch)
                np.testing.assert_array_equal(src.counts(coll), layout_only.counts(coll), err_msg=branch)


def test_preloaded_branches_of_one_collection_must_hold_the_same_objects():
    from types import SimpleNamespace

    events = SimpleNamespace(metadata={"filename": "broken.root", "entrystart": 0, "entrystop": 2}, layout=None,
                             attrs={})
    src = CP._ColumnSource(events)
    assert src.preloaded == {}  # no factory behind these events
    src.preloaded = {"Photon_pt": ak.Array([[50.0, 40.0], [30.0]]), "Photon_eta": ak.Array([[0.1], [0.2]]),
                     "Photon_phi": ak.Array([[0.1, 0.2], [0.3]]), "genWeight": ak.Array([1.0, 2.0])}
    assert src.column("Photon", "pt").tolist() == [50.0, 40.0, 30.0]
    assert src.counts("Photon").tolist() == [2, 1] and src.offsets("Photon").tolist() == [0, 2, 3]
    assert src.column("Photon", "phi").tolist() == [0.1, 0.2, 0.3]
    assert src.column(None, "genWeight").tolist() == [1.0, 2.0]
    with pytest.raises(InputFileError, match=r"broken\.root.*Photon_eta holds 2 objects.*other Photon branches hold 3"):
        src.column("Photon", "eta")


def test_working_points_of_another_training_are_refused(tmp_path):
    """The decorated ntuples record the models' SHA-256 and the prepared dataset; working
    points of another training (changed cuts, silently: issue 21) are an error naming both."""
    decorated = {"files": {"dl1": {"path": "models/dl1.pt", "sha256": "a" * 64}}, "dataset_id": "ds1"}
    path = F.write_hepline_events(tmp_path / "hhtest_0.root", EVENTS, WEIGHTS, decorated_by=decorated)

    def wp(sha: str, dataset: str) -> Path:
        p = tmp_path / f"wp_{sha[0]}_{dataset}.json"
        p.write_text(json.dumps({**WP_FILE_CONTENT, "provenance": {
            "models": {"dl1": {"path": "models/dl1.pt", "sha256": sha}}, "dataset_id": dataset}}))
        return p

    same = S.run_selection([path], make_config(), wp("a" * 64, "ds1")).histset.samples["hhtest"]
    plain = B.WorkingPoints.from_dict(WP_FILE_CONTENT)  # no provenance: nothing to compare
    assert same.cutflow.raw == S.run_selection([path], make_config(), plain).histset.samples["hhtest"].cutflow.raw
    with pytest.raises(B.WorkingPointError) as err:
        S.run_selection([path], make_config(), wp("b" * 64, "ds1"))
    assert "bbbbbbbbbbbb" in str(err.value) and "aaaaaaaaaaaa" in str(err.value) and str(path) in str(err.value)
    with pytest.raises(B.WorkingPointError, match="dataset ds2.*dataset ds1"):
        S.run_selection([path], make_config(), wp("a" * 64, "ds2"))
