"""The evaluation's outputs for the FTAG tools and for analyses: ``test_scores.h5`` read by
ftag and puma with no glue, their rejections equal to hepline's, the correctionlib set, puma's
figures, and external discriminants (NanoAOD, decorated hepline) whose working-point file the
HH selection reads."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from analysis.cli import main
from analysis.core.config import load_config
from taggers import TAGGERS
from taggers.correctionlib_export import CORRECTIONLIB_FILE, FLAVOR_CODES
from taggers.evaluate import (
    PUMA_PLOT_DIR,
    SCORES_FILE,
    SELECTION_BTAG_FILE,
    WP_FILE,
    evaluate_external,
)
from taggers.export import read_split
from taggers.external import NANOAOD_BTAG_KEY, selection_btag_config
from tests.fixtures.files import write_nanoaod_fixture
from tests.fixtures.paths import DEFAULT_CONFIG, REPO
from tests.taggers.test_pipeline import small_pipeline

NANO_V12 = REPO / "tests" / "data" / "nano_tt_v12.root"
NANO_V15 = REPO / "tests" / "data" / "nano_tt_v15.root"


def load_working_points(path: Path):
    """The HH selection's reader of working-point files (selections.hh_yybb)."""
    try:
        from selections.hh_yybb.btag import load_working_points as load
    except ImportError:  # before the b-tagging code had its own module
        from selections.hh_yybb.processor import load_working_points as load
    return load(path)


@pytest.fixture(scope="module")
def pipeline(tagger_ttbar_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return small_pipeline(tagger_ttbar_file, tmp_path_factory)


def test_scores_file_in_the_ftag_conventions(pipeline) -> None:
    """Every tagger's four probabilities (MV2: its discriminant), mcEventWeight, the labels, MeV:
    ftag's reader loads it, the standard MeV cut keeps every jet."""
    ftag = pytest.importorskip("ftag")
    from ftag.hdf5 import H5Reader

    out = pipeline["out"]
    test = read_split(out / "test.h5")
    names = [f"{t}_{p}" for t in TAGGERS if t != "mv2" for p in ("pb", "pc", "pu", "ptau")]
    jets = H5Reader(out / SCORES_FILE, shuffle=False).load(
        {"jets": ["pt", "HadronConeExclTruthLabelID", "mcEventWeight", "eventNumber", "mv2_discriminant", *names]},
        cuts=ftag.Cuts.from_list(["pt > 20000"]),
    )["jets"]
    assert len(jets) == len(test)
    assert np.array_equal(jets["HadronConeExclTruthLabelID"], test.jets["label"])
    assert np.array_equal(jets["eventNumber"], test.jets["event"])
    assert np.array_equal(jets["pt"], test.jets["pt"].astype(np.float64) * 1000)
    assert np.all(jets["mcEventWeight"] == test.jets["mc_event_weight"])
    for t in ("ip2d", "ip3d", "rnnip", "dl1"):
        total = sum(jets[f"{t}_{p}"].astype(np.float64) for p in ("pb", "pc", "pu", "ptau"))
        assert np.allclose(total, 1.0, atol=1e-5), t
    assert np.all(jets["ip3d_ptau"] == 0) and np.array_equal(jets["ip3d_pb"], test.jets["ip3d_pb"])
    with h5py.File(out / SCORES_FILE) as f:
        assert "tracks" in f and f["tracks"].dtype["valid"] == bool
        assert json.loads(f.attrs["metadata"])["taggers"] == list(TAGGERS)


def test_puma_loads_the_taggers_with_its_defaults(pipeline) -> None:
    """puma's Results/Tagger with their defaults (four probabilities per tagger, pT in MeV
    converted by puma): no jet falls below the 20 GeV of the pT plots."""
    pytest.importorskip("puma")
    from puma.hlplots import Results, Tagger

    out = pipeline["out"]
    results = Results(signal="bjets", sample="ttbar")
    taggers = [Tagger(t) for t in ("ip2d", "ip3d", "rnnip", "dl1")]
    results.load_taggers_from_file(taggers, out / SCORES_FILE)
    test = read_split(out / "test.h5")
    for tg in taggers:
        assert len(tg.scores) == len(test)
        pt = np.sort(tg.perf_vars["pt"])
        assert pt[0] > 20.0 and np.allclose(pt, np.sort(test.jets["pt"]), rtol=1e-6)  # GeV again
        # puma's default fractions name fc and fb only: b-tagging needs the background's
        assert np.all(np.isfinite(tg.discriminant("bjets", fxs={"fc": 0.05, "fu": 0.95, "ftau": 0.0})))


def test_ftag_and_puma_rejections_equal_heplines(pipeline, tmp_path: Path) -> None:
    pytest.importorskip("ftag")
    from taggers.crosscheck import crosscheck

    out = pipeline["out"]
    res = crosscheck(out / SCORES_FILE, out / WP_FILE, output=tmp_path / "check.json")
    wp = json.loads((out / WP_FILE).read_text())
    assert len(res.rows) == len(TAGGERS) * len(wp["taggers"]["dl1"]["working_points"]) * 2
    assert res.equal_at_cut, res.table()
    with_puma = [r for r in res.rows if r.puma_at_cut is not None]
    if "puma" in res.versions:
        assert {r.tagger for r in with_puma} == set(TAGGERS) - {"mv2"}
    for r in res.rows:  # at hepline's own cut the numbers are the same, not just printed alike
        if not r.lower_limit:
            assert r.ftag_at_cut == pytest.approx(r.hepline, rel=1e-12), r
    assert json.loads((tmp_path / "check.json").read_text())["equal_at_cut"] is True
    assert main(["taggers", "crosscheck", "--scores", str(out / SCORES_FILE), "--working-points",
                 str(out / WP_FILE)]) == 0


def test_correctionlib_set_has_the_working_points(pipeline) -> None:
    import correctionlib

    out = pipeline["out"]
    wp = json.loads((out / WP_FILE).read_text())
    assert wp["format"] == "hepline-working-points/1" and wp["files"]["correctionlib"] == CORRECTIONLIB_FILE
    cset = correctionlib.CorrectionSet.from_file(str(out / CORRECTIONLIB_FILE))
    sf_cfg = load_config(pipeline["config"]).selection.hh_yybb.btag.scale_factors
    for t, entry in wp["taggers"].items():
        maps = entry["efficiency_vs_pt"]
        edges = maps["pt_edges_gev"]
        for name, point in entry["working_points"].items():
            # the file holds the cut's shortest repr; correctionlib's parser may land 1 ulp off
            assert cset[f"{t}_cut"].evaluate(name) == pytest.approx(point["cut"], rel=1e-15, abs=0)
            # the efficiencies per WP are in the documented file too (0 where the rejection is
            # the lower limit N: no jet passes)
            limit = point["light_rejection_lower_limit"]
            assert point["light_efficiency"] == (0.0 if limit else pytest.approx(1 / point["light_rejection"]))
            for fl, code in FLAVOR_CODES.items():
                for k in range(len(edges) - 1):
                    centre = 0.5 * (edges[k] + edges[k + 1])
                    value = maps["working_points"][name][fl][k]
                    inclusive = point["b_efficiency_measured"] if fl == "b" else point[f"{fl}_efficiency"]
                    want = inclusive if value is None else value
                    assert cset[f"{t}_mc_eff"].evaluate(name, code, centre) == pytest.approx(want), (t, name, fl, k)
                # pT beyond the edges: the nearest bin
                assert cset[f"{t}_mc_eff"].evaluate(name, code, 5000.0) == cset[f"{t}_mc_eff"].evaluate(
                    name, code, edges[-1] - 1.0)
            for fl, code in FLAVOR_CODES.items():
                s = getattr(sf_cfg, "c" if fl == "tau" else fl)
                sf = cset[f"{t}_sf"]
                assert sf.evaluate("central", name, code, 50.0) == s.nominal
                assert sf.evaluate("up", name, code, 50.0) == pytest.approx(s.nominal + s.uncertainty)
                assert sf.evaluate("down", name, code, 50.0) == pytest.approx(s.nominal - s.uncertainty)


def test_puma_figures(pipeline) -> None:
    from taggers.puma_plots import PUMA_PLOT_FILES, available

    if not available():
        pytest.skip("puma is not installed (the ftag extra)")
    res = json.loads((pipeline["out"] / "results.json").read_text())
    assert set(res["plots_puma"]) == set(PUMA_PLOT_FILES)
    for name in PUMA_PLOT_FILES.values():
        png = pipeline["out"] / PUMA_PLOT_DIR / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- external discriminants


def _select(cfg: Path, wp: Path, out: Path, files: list[Path]) -> int:
    return main(["select", "--config", str(cfg), "--working-points", str(wp), "--output", str(out),
                 *map(str, files)])


def test_hh_selection_reads_the_new_working_point_files(pipeline, tmp_path: Path) -> None:
    """``hepline select`` runs with the evaluation's working_points.json (new keys added), and
    with the file of an external evaluation of the decorated ``Jet_btag_dl1``."""
    out, decorated = pipeline["out"], pipeline["decorated"]
    wps = load_working_points(out / WP_FILE)
    assert wps.tagger("dl1").point("70").cut == json.loads((out / WP_FILE).read_text())["taggers"]["dl1"][
        "working_points"]["70"]["cut"]
    assert _select(pipeline["config"], out / WP_FILE, tmp_path / "sel.pkl", [decorated]) == 0
    ext = tmp_path / "external"
    assert main(["taggers", "evaluate", "--config", str(pipeline["config"]), "--discriminant", "Jet_btag_dl1",
                 "--label", "Jet_hadronConeExclTruthLabelID", "--input", str(decorated), "--output-dir",
                 str(ext), "--no-plots"]) == 0
    data = json.loads((ext / WP_FILE).read_text())
    assert set(data["taggers"]) == {"dl1"} and data["taggers"]["dl1"]["variable"] == "Jet_btag_dl1"
    assert data["provenance"]["external"]["label"] == "Jet_hadronConeExclTruthLabelID"
    entry = load_working_points(ext / WP_FILE).tagger("dl1")
    assert entry.variable == "Jet_btag_dl1" and 0 < entry.point("70").light_rejection
    assert _select(pipeline["config"], ext / WP_FILE, tmp_path / "sel_ext.pkl", [decorated]) == 0
    assert (tmp_path / "sel_ext.pkl").is_file()
    assert not (ext / SELECTION_BTAG_FILE).exists()  # hepline ntuples: the working-point file is read


def _check_external(out: Path, name: str, variable: str, disc: np.ndarray, label: np.ndarray) -> None:
    """The WP file of an external evaluation against a computation by hand."""
    data = json.loads((out / WP_FILE).read_text())
    entry = data["taggers"][name]
    assert entry["variable"] == variable and entry["fc"] is None
    is_b = label == 5
    for wp, point in entry["working_points"].items():
        tagged = disc > point["cut"]
        assert point["b_efficiency_measured"] == pytest.approx(tagged[is_b].mean())
        assert abs(point["b_efficiency_measured"] - int(wp) / 100) < 0.02
        assert point["light_efficiency"] == pytest.approx(tagged[label == 0].mean())
        assert point["c_efficiency"] == pytest.approx(tagged[label == 4].mean())
    assert set(entry["efficiency_vs_pt"]["working_points"]) == set(entry["working_points"])


def test_external_nanoaod_discriminant(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``Jet_btagDeepFlavB`` and ``Jet_hadronFlavour`` of a NanoAOD file (the fixture writer)."""
    import correctionlib
    import uproot

    files = [write_nanoaod_fixture(tmp_path / f"nano_{k}.root", 1500, np.random.default_rng(k)) for k in (1, 2)]
    cfg = load_config(DEFAULT_CONFIG)
    out = tmp_path / "deepflav"
    perf = evaluate_external(cfg, files, "Jet_btagDeepFlavB", "Jet_hadronFlavour", out, plots=False)
    assert list(perf.taggers) == ["btagDeepFlavB"]
    disc, label = [], []
    for f in files:
        with uproot.open(f) as r:
            ev = r["Events"].arrays(["Jet_pt", "Jet_eta", "Jet_btagDeepFlavB", "Jet_hadronFlavour"], library="ak")
        import awkward as ak

        sel = (ev.Jet_pt > 20) & (abs(ev.Jet_eta) < 2.5)
        disc.append(ak.to_numpy(ak.flatten(ev.Jet_btagDeepFlavB[sel])).astype(np.float32).astype(np.float64))
        label.append(ak.to_numpy(ak.flatten(ev.Jet_hadronFlavour[sel])).astype(np.int32))
    d, lab = np.concatenate(disc), np.concatenate(label)
    assert perf.sample.jets == d.size
    _check_external(out, "btagDeepFlavB", "Jet_btagDeepFlavB", d, lab)
    wps = load_working_points(out / WP_FILE)
    point = wps.tagger("btagDeepFlavB").point("70")
    cset = correctionlib.CorrectionSet.from_file(str(out / CORRECTIONLIB_FILE))
    assert cset["btagDeepFlavB_cut"].evaluate("70") == pytest.approx(point.cut, rel=1e-15, abs=0)
    res = json.loads((out / "results.json").read_text())
    assert res["provenance"]["external"]["discriminant"] == "Jet_btagDeepFlavB"
    assert res["taggers"]["btagDeepFlavB"]["variable"] == "Jet_btagDeepFlavB"
    # through the command line, with its plots
    assert main(["taggers", "evaluate", "--config", str(DEFAULT_CONFIG), "--discriminant", "Jet_btagDeepFlavB",
                 "--label", "Jet_hadronFlavour", "--name", "deepjet", "--input", *map(str, files),
                 "--output-dir", str(tmp_path / "cli")]) == 0
    assert "deepjet" in json.loads((tmp_path / "cli" / WP_FILE).read_text())["taggers"]
    assert (tmp_path / "cli" / "plots" / "roc_light.png").is_file()
    # bad input: one line naming the file and the branch
    capsys.readouterr()
    assert main(["taggers", "evaluate", "--config", str(DEFAULT_CONFIG), "--discriminant", "Jet_btagNope",
                 "--label", "Jet_hadronFlavour", "--input", str(files[0]), "--output-dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(files[0]) in err[0] and "Jet_btagNope" in err[0]
    assert main(["taggers", "evaluate", "--config", str(DEFAULT_CONFIG), "--discriminant", "Jet_btagDeepFlavB",
                 "--output-dir", str(tmp_path / "x")]) == 2
    assert "--label" in capsys.readouterr().err


@pytest.mark.skipif(not NANO_V12.is_file(), reason=f"{NANO_V12} not present (real NanoAOD test file)")
def test_external_real_nanoaod_v12(tmp_path: Path) -> None:
    """The real NanoAOD v12 ttbar file: DeepJet's working points from its own jets."""
    import awkward as ak
    import uproot

    cfg = load_config(DEFAULT_CONFIG)
    evaluate_external(cfg, [NANO_V12], "Jet_btagDeepFlavB", "Jet_hadronFlavour", tmp_path, plots=False)
    with uproot.open(NANO_V12) as r:
        ev = r["Events"].arrays(["Jet_pt", "Jet_eta", "Jet_btagDeepFlavB", "Jet_hadronFlavour"], library="ak")
    sel = (ev.Jet_pt > 20) & (abs(ev.Jet_eta) < 2.5)
    d = ak.to_numpy(ak.flatten(ev.Jet_btagDeepFlavB[sel])).astype(np.float32).astype(np.float64)
    lab = ak.to_numpy(ak.flatten(ev.Jet_hadronFlavour[sel])).astype(np.int32)
    _check_external(tmp_path, "btagDeepFlavB", "Jet_btagDeepFlavB", d, lab)
    rej = json.loads((tmp_path / WP_FILE).read_text())["taggers"]["btagDeepFlavB"]["working_points"]["70"]
    assert rej["light_rejection"] > 10  # DeepJet separates b from light on real simulation


def test_selection_btag_config() -> None:
    """The HH selection's NanoAOD b-tagging section from a working-point entry: the cuts, the
    categories' working points, the efficiencies (a lower limit: no jet passed, 0)."""
    entry = {"working_points": {
        "70": {"cut": 0.55, "b_efficiency_measured": 0.71, "c_efficiency": 0.04, "light_efficiency": 0.005},
        "60": {"cut": 0.78, "b_efficiency_measured": 0.6, "c_rejection": 80.0, "light_rejection": 500.0,
               "light_rejection_lower_limit": True},
    }}
    key, section = selection_btag_config(entry, "Jet_btagDeepFlavB", two_tag_wp="70", one_tag_wp="60")
    assert key == NANOAOD_BTAG_KEY
    assert section == {"source": "config", "variable": "btagDeepFlavB", "working_points": {"70": 0.55, "60": 0.78},
                       "two_tag_wp": "70", "one_tag_wp": "60",
                       "efficiencies": {"70": {"b": 0.71, "c": 0.04, "light": 0.005},
                                        "60": {"b": 0.6, "c": 1 / 80.0, "light": 0.0}}}
    assert selection_btag_config(entry, "FatJet_btagHbb", two_tag_wp="70", one_tag_wp="60") is None
    assert selection_btag_config(entry, "Jet_btagDeepFlavB", two_tag_wp="77", one_tag_wp="60") is None


@pytest.mark.skipif(not NANO_V15.is_file(), reason=f"{NANO_V15} not present (real NanoAOD test file)")
def test_hh_selection_takes_the_working_points_of_a_real_nanoaod_file(tmp_path: Path) -> None:
    """NanoAOD v15 has no DeepJet working points in the config: an external evaluation of
    its ``Jet_btagDeepFlavB`` against ``Jet_hadronFlavour`` gives them, and ``hepline select``
    runs on the same file with them (``--set`` the written section)."""
    from analysis.stats.histograms import HistSet

    out = tmp_path / "deepjet"
    assert main(["taggers", "evaluate", "--config", str(DEFAULT_CONFIG), "--discriminant", "Jet_btagDeepFlavB",
                 "--label", "Jet_hadronFlavour", "--input", str(NANO_V15), "--output-dir", str(out),
                 "--no-plots"]) == 0
    wp = json.loads((out / WP_FILE).read_text())
    assert wp["files"]["selection_config"] == {"file": SELECTION_BTAG_FILE, "key": NANOAOD_BTAG_KEY}
    points = wp["taggers"]["btagDeepFlavB"]["working_points"]
    text = (out / SELECTION_BTAG_FILE).read_text()
    section = json.loads(text)
    hh = load_config(DEFAULT_CONFIG).selection.hh_yybb.btag
    assert section["variable"] == "btagDeepFlavB" and section["working_points"] == {
        k: p["cut"] for k, p in points.items()}
    assert (section["two_tag_wp"], section["one_tag_wp"]) == (hh.two_tag_wp, hh.one_tag_wp)
    assert section["efficiencies"]["70"]["b"] == points["70"]["b_efficiency_measured"]
    pkl = tmp_path / "sel.pkl"
    assert main(["select", "--config", str(DEFAULT_CONFIG), "--set", f"{NANOAOD_BTAG_KEY}={text}",
                 "--output", str(pkl), str(NANO_V15)]) == 0
    used = HistSet.read(pkl).provenance["btag"]
    assert used["branch"] == "Jet_btagDeepFlavB" and used["source"] == "config"
    assert used["cuts"] == {wp_: points[wp_]["cut"] for wp_ in (hh.two_tag_wp, hh.one_tag_wp)}
    assert used["efficiencies"][hh.two_tag_wp] == section["efficiencies"][hh.two_tag_wp]


def test_puma_pt_figure_without_a_common_bin_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """c jets only beyond the last pT edge: no pT bin has a c rejection, so that figure is
    skipped with "insufficient statistics"; the others are drawn, with no NaN ratio."""
    from analysis.core.config.taggers import TaggersConfig
    from taggers.features import TaggingDataset
    from taggers.models import Predictions
    from taggers.performance import evaluate_predictions
    from taggers.puma_plots import PUMA_PLOT_FILES, available, write_puma_figures

    if not available():
        pytest.skip("puma is not installed (the ftag extra)")
    cfg = TaggersConfig.default()
    rng = np.random.default_rng(3)
    n = 6000
    label = rng.choice([5, 4, 0], size=n, p=[0.3, 0.2, 0.5]).astype(np.int32)
    pt = np.where(label == 4, 2.0 * cfg.evaluation.pt_edges_gev[-1], rng.uniform(25.0, 250.0, n)).astype(np.float32)
    ds = TaggingDataset(jets={"pt": pt, "eta": rng.uniform(-2, 2, n).astype(np.float32), "label": label,
                              "weight": np.ones(n, np.float32)},
                        tracks={"valid": np.zeros((n, 0), bool)}, meta={})
    disc = {t: rng.normal(np.where(label == 5, s, 0.0), 1.0) for t, s in (("a", 2.0), ("b", 3.0))}
    perf = evaluate_predictions(Predictions(dataset=ds, discriminants=disc), cfg, seed=1, fc={"a": None, "b": None})
    with caplog.at_level("WARNING", logger="taggers.puma_plots"), warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        written = write_puma_figures(perf, tmp_path, reference="a")
    assert set(written) == set(PUMA_PLOT_FILES) - {"c_rejection_vs_pt"}
    assert "c_rejection_vs_pt.png: not drawn, insufficient statistics (6000 jets)" in caplog.text


PHYSLITE = REPO / "tests" / "data" / "PHYSLITE_example.root"


@pytest.mark.skipif(not PHYSLITE.is_file(), reason=f"{PHYSLITE} not present (real PHYSLITE test file)")
def test_external_real_physlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """ATLAS PHYSLITE: the tagger's D from the b-tagging container (followed through the jets'
    links) against uproot's flat probabilities, GeV, the acceptance; the example file has no b
    jet in the acceptance, which is one line; a missing f_c and an unknown tagger are too."""
    import awkward as ak
    import uproot

    from analysis.core.config.taggers import TaggersConfig
    from taggers.external import read_external

    acceptance = TaggersConfig.default().jets
    jets = read_external([PHYSLITE], "DL1dv01", "HadronConeExclTruthLabelID", acceptance, fraction_c=0.018,
                         weight="mcEventWeights")
    prefix = "BTagging_AntiKt4EMPFlowAuxDyn.DL1dv01_"
    with uproot.open(PHYSLITE) as f:
        tree = f["CollectionTree"]
        raw = tree.arrays([f"{prefix}{p}" for p in ("pb", "pc", "pu")] + [
            "AnalysisJetsAuxDyn.pt", "AnalysisJetsAuxDyn.eta", "AnalysisJetsAuxDyn.HadronConeExclTruthLabelID",
            "AnalysisJetsAuxDyn.btaggingLink/AnalysisJetsAuxDyn.btaggingLink.m_persIndex"])
        link = ak.flatten(raw["AnalysisJetsAuxDyn.btaggingLink/AnalysisJetsAuxDyn.btaggingLink.m_persIndex"])
        local = ak.flatten(ak.local_index(raw["AnalysisJetsAuxDyn.pt"]))
    assert np.array_equal(ak.to_numpy(link), ak.to_numpy(local))  # this file's links are parallel
    pb, pc, pu = (ak.to_numpy(ak.flatten(raw[f"{prefix}{p}"])).astype(np.float64) for p in ("pb", "pc", "pu"))
    pt = ak.to_numpy(ak.flatten(raw["AnalysisJetsAuxDyn.pt"])) / 1000.0
    eta = ak.to_numpy(ak.flatten(raw["AnalysisJetsAuxDyn.eta"]))
    keep = (pt > acceptance.pt_min_gev) & (np.abs(eta) < acceptance.abs_eta_max)
    assert jets.formats == ["physlite"] and jets.jets_read == pt.size and len(jets) == keep.sum() > 100
    np.testing.assert_allclose(jets.discriminant, np.log(pb / (0.018 * pc + 0.982 * pu))[keep],
                               rtol=1e-6, atol=1e-6)  # D in float32 arithmetic
    np.testing.assert_allclose(jets.pt, pt[keep], rtol=1e-6)
    assert np.array_equal(jets.label, ak.to_numpy(ak.flatten(raw["AnalysisJetsAuxDyn.HadronConeExclTruthLabelID"]))[keep])
    assert np.all(jets.weight != 1.0)  # the generator weight, per event
    base = ["taggers", "evaluate", "--config", str(DEFAULT_CONFIG), "--label", "HadronConeExclTruthLabelID",
            "--input", str(PHYSLITE), "--output-dir", str(tmp_path / "out"), "--no-plots"]
    capsys.readouterr()
    for extra, message in ((["--discriminant", "DL1dv01"], "has no b jets (HadronConeExclTruthLabelID 5)"),
                           (["--discriminant", "GN2v00"], "PHYSLITE tagger GN2v00 needs its f_c (--fc)"),
                           (["--discriminant", "GN3", "--fc", "0.1"], "BTagging_AntiKt4EMPFlow has no tagger 'GN3'")):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(PHYSLITE) in err[0] and message in err[0], err


def test_selection_btag_config_for_physlite() -> None:
    entry = {"working_points": {"77": {"cut": 2.4, "b_efficiency_measured": 0.77, "c_efficiency": 0.2,
                                       "light_efficiency": 0.006},
                                "60": {"cut": 4.9, "b_efficiency_measured": 0.6, "c_efficiency": 0.04,
                                       "light_efficiency": 0.0007}}}
    from taggers.external import PHYSLITE_BTAG_KEY

    key, section = selection_btag_config(entry, "GN2v00", fmt="physlite", two_tag_wp="77", one_tag_wp="60",
                                         fraction_c=0.1, container="BTagging_AntiKt4EMPFlow")
    assert key == PHYSLITE_BTAG_KEY
    assert section == {"source": "config", "container": "BTagging_AntiKt4EMPFlow", "tagger": "GN2v00",
                       "fraction_c": 0.1, "working_points": {"77": 2.4, "60": 4.9}, "two_tag_wp": "77",
                       "one_tag_wp": "60", "efficiencies": {"77": {"b": 0.77, "c": 0.2, "light": 0.006},
                                                            "60": {"b": 0.6, "c": 0.04, "light": 0.0007}}}
    # the section is one the config accepts
    from analysis.core.config import SelectionConfig

    selection = SelectionConfig.validated({"objects": {"physlite": {"jet": {"btag": section}}}})
    assert selection.objects.physlite.jet.btag.tagger == "GN2v00"
    assert selection_btag_config(entry, "GN2v00", fmt="physlite", two_tag_wp="77", one_tag_wp="60") is None
    assert selection_btag_config(entry, "Jet_x", fmt="delphes", two_tag_wp="77", one_tag_wp="60") is None
