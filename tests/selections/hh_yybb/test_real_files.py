"""The HH selection on real CMS NanoAOD files (tests/data, from coffea's source distribution)
of every era hepline maps, TTree and RNTuple, simulation and collision data; and the bad
input of those paths: an era's missing branch, an unknown era, data given truth-tagging
settings, a lumi mask that is not valid JSON, no working points for an era."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest
import uproot

from analysis.core.errors import ConfigError, InputFileError, WorkingPointError
from analysis.io.lumi import read_lumi_json
from selections.hh_yybb import processor as S
from tests.fixtures import hh_yybb as F
from tests.fixtures.files import GOLDEN_JSON, REAL_FILES
from tests.selections.hh_yybb.test_processor import EVENTS, EXPECTED, V15_WPS, WEIGHTS, make_config

NANO = {name: f for name, f in REAL_FILES.items() if f.format == "nanoaod"}


def _select(path, selection=None, **kw):
    return S.run_selection([path], make_config(selection=selection), None, dataset="real", **kw)


@pytest.mark.parametrize("name", sorted(n for n in NANO if n != "nano_tt_v12.root"))
def test_selection_runs_on_every_real_nanoaod_file(name):
    real = NANO[name]
    res = _select(real.path, V15_WPS if real.nanoaod_version == "v15" else None)
    prov = res.histset.provenance
    sample = res.histset.samples["real"]
    assert prov["nanoaod_era"] == real.nanoaod_version
    assert sample.is_data == real.is_data and prov.get("is_data", False) == real.is_data
    assert sample.cutflow.raw[0] == real.entries == res.metrics.events
    if real.is_data:  # weight 1, no variation, no normalisation
        assert sample.cutflow.sumw[0] == real.entries and res.histset.variations == ["nominal"]
        assert "genWeight" not in prov["branches"] and "Jet_hadronFlavour" not in prov["branches"]
    else:
        assert "genWeight" in prov["branches"] and len(res.histset.variations) > 1
    if real.nanoaod_version == "v15":
        assert "Jet_jetId" not in prov["branches"] and "Jet_chMultiplicity" in prov["branches"]
        assert prov["engine"] == "HHyybbProcessor"  # the compiled engine reads a stored jet ID


@pytest.mark.parametrize("pair", [("nano_dy.root", "nano_dy_rntuple.root"),
                                  ("nano_dimuon.root", "nano_dimuon_rntuple.root")])
def test_rntuple_gives_the_ttree_results(pair):
    a, b = (_select(NANO[n].path).histset.samples["real"] for n in pair)
    assert a.cutflow.raw == b.cutflow.raw and a.cutflow.sumw == b.cutflow.sumw
    for obs, h in a.hists.items():
        assert np.array_equal(h.values(flow=True), b.hists[obs].values(flow=True)), obs


def test_sum_of_weights_from_the_runs_tree_or_the_sample_metadata():
    dy = _select(NANO["nano_dy.root"].path).histset.samples["real"]
    with uproot.open(NANO["nano_dy.root"].path) as f:  # pre-v7 NanoAOD: genEventSumw_
        assert dy.sumw == pytest.approx(float(f["Runs"]["genEventSumw_"].array(library="np").sum()))
    v15 = NANO["nano_tt_v15.root"].path  # a skim without a Runs tree
    assert _select(v15, V15_WPS).histset.samples["real"].sumw is None
    given = _select(v15, V15_WPS, sample_metadata={"real": {"xsec_pb": 2.0, "sumw": 1234.5}})
    assert given.histset.samples["real"].sumw == 1234.5 and given.histset.samples["real"].xsec_pb == 2.0


def test_an_eras_missing_branch_names_the_file_branch_and_mapping():
    with pytest.raises(InputFileError, match=r"nano_tt_v12\.root: missing required branches nPhoton, Photon_pt.*"
                                             r"NanoAOD v12 simulation mapping"):
        _select(NANO["nano_tt_v12.root"].path)


def test_an_unknown_era_names_what_was_detected_and_the_key(tmp_path):
    path = F.write_nanoaod_events(tmp_path / "old" / "nano.root", EVENTS, WEIGHTS, era="none")
    with pytest.raises(InputFileError, match=r"nano\.root: NanoAOD version not recognised.*detected: unknown.*"
                                             r"set selection\.objects\.nanoaod\.version"):
        _select(path)
    # named explicitly, it runs
    assert _select(path, {"objects": {"nanoaod": {"version": "v9"}}}).histset.provenance["nanoaod_era"] == "v9"
    with pytest.raises(ConfigError, match="selection.objects.nanoaod.version"):
        _select(path, {"objects": {"nanoaod": {"version": "v7"}}})


def test_an_era_without_working_points_names_the_key():
    with pytest.raises(WorkingPointError, match=r"NanoAOD v15 simulation: no b-tagging working points known for "
                                                r"Jet_btagDeepFlavB; set selection\.objects\.nanoaod\.eras\.v15"):
        _select(NANO["nano_tt_v15.root"].path)
    other = {"objects": {"nanoaod": {"jet": {"btag": {"variable": "btagPNetB"}}}}}
    with pytest.raises(WorkingPointError, match=r"variable is 'btagPNetB' but its working points are the era's"):
        _select(NANO["nano_dy.root"].path, other)


# ---------------------------------------------------------------------------------------
# collision data
# ---------------------------------------------------------------------------------------
@pytest.fixture
def data_file(tmp_path):
    """The constructed events as collision data of run 297050, luminosity blocks 1..19."""
    return F.write_nanoaod_events(tmp_path / "data" / "data.root", EVENTS, None, era="v9", run=297050,
                                  lumi_blocks=np.arange(1, len(EVENTS) + 1))


def test_data_need_no_overrides_and_count_events(data_file):
    cfg = make_config(selection={"hh_yybb": {"btag": {"truth_tag_samples": ["yy"]}}})  # as the workflow's
    res = S.run_selection([data_file], cfg, None, dataset="data")
    sample = res.histset.samples["data"]
    assert sample.is_data and res.histset.variations == ["nominal"]
    rows = dict(zip(sample.cutflow.steps, zip(sample.cutflow.raw, sample.cutflow.sumw, strict=True), strict=True))
    for step, events in EXPECTED.items():
        assert rows[step] == (len(list(events)), float(len(list(events)))), step  # weight 1 each
    assert res.histset.normalise().samples["data"].cutflow.sumw == sample.cutflow.sumw  # data are not scaled


def test_lumi_mask_keeps_the_certified_blocks(data_file, tmp_path):
    mask = tmp_path / "golden.json"
    mask.write_text(json.dumps({"297050": [[1, 5], [12, 40]]}))
    res = S.run_selection([data_file], make_config(), None, dataset="data", lumi_mask=mask)
    kept = [i for i in range(len(EVENTS)) if 1 <= i + 1 <= 5 or 12 <= i + 1 <= 40]
    cf = dict(zip(res.histset.samples["data"].cutflow.steps, res.histset.samples["data"].cutflow.raw, strict=True))
    assert cf["all"] == len(kept)
    for step, events in EXPECTED.items():
        assert cf[step] == len([e for e in events if e in kept]), step
    assert res.histset.provenance["lumi_mask"] == {"file": str(mask), "events_removed": len(EVENTS) - len(kept)}
    # the vendored 2017 golden JSON certifies blocks 12-137 of run 297050: events 11-18 are kept
    real = S.run_selection([data_file], make_config(), None, dataset="data", lumi_mask=GOLDEN_JSON)
    assert read_lumi_json(GOLDEN_JSON)[297050][0] == (12, 137)
    assert real.histset.samples["data"].cutflow.raw[0] == len(EVENTS) - 11 == 8


def test_data_given_truth_tagging_is_an_error(data_file):
    cfg = make_config(selection={"hh_yybb": {"btag": {"truth_tag_samples": ["data"]}}})
    with pytest.raises(ConfigError, match=r"truth_tag_samples names data, which is collision data \(.*data\.root\)"):
        S.run_selection([data_file], cfg, None, dataset="data")


def test_a_lumi_mask_that_is_not_json_is_a_one_line_error(data_file, tmp_path):
    bad = tmp_path / "golden.json"
    bad.write_text('{"297050": [[1, 5],')
    with pytest.raises(InputFileError, match=r"golden\.json") as err:
        S.run_selection([data_file], make_config(), None, dataset="data", lumi_mask=bad)
    assert "\n" not in str(err.value)


def test_data_and_simulation_are_selected_separately(data_file, tmp_path):
    mc = F.write_nanoaod_events(tmp_path / "mc" / "mc.root", EVENTS, WEIGHTS, era="v9")
    with pytest.raises(Exception, match=r"one kind: .* is NanoAOD v9 (simulation|collision data), .* is NanoAOD v9 "
                                        r"(collision data|simulation); select them separately"):
        S.run_selection({"data": [str(data_file)], "mc": [str(mc)]}, make_config(), None)


# ---------------------------------------------------------------------------------------
# ATLAS PHYSLITE
# ---------------------------------------------------------------------------------------
PHYSLITE = REAL_FILES["PHYSLITE_example.root"].path
_PH = "AnalysisPhotonsAuxDyn."


def _photon_pairs_by_hand(pt_min_gev: float, id_iso: bool) -> tuple[int, float]:
    """Events with two photons passing the PHYSLITE photon selection (``id_iso``: the default
    tight ID and FixedCutLoose isolation, else none), and the sum of their nominal weights,
    from the raw branches (MeV) with uproot and numpy."""
    with uproot.open(PHYSLITE) as f:
        t = f["CollectionTree"]
        ph = t.arrays([_PH + b for b in ("pt", "eta", "DFCommonPhotonsIsEMTight", "topoetcone20", "ptcone20")])
        w = t["EventInfoAuxDyn.mcEventWeights"].array()[:, 0].to_numpy().astype(np.float64)
    pt, aeta = ph[_PH + "pt"], abs(ph[_PH + "eta"])
    ok = (pt > pt_min_gev * 1e3) & (aeta < 2.37) & ~((aeta >= 1.37) & (aeta <= 1.52))
    if id_iso:
        ok = (ok & (ph[_PH + "DFCommonPhotonsIsEMTight"] != 0)
              & (ph[_PH + "topoetcone20"] < 0.065 * pt) & (ph[_PH + "ptcone20"] < 0.05 * pt))
    two = (np.sum(ok, axis=1) >= 2).to_numpy()
    return int(two.sum()), float(w[two].sum())


@pytest.mark.parametrize(("pt_min", "id_iso"), [(25.0, True), (5.0, False)])
def test_selection_on_real_physlite(pt_min, id_iso):
    loosened = {} if id_iso else {"objects": {"physlite": {"photon": {"id": None, "isolation": []}}}}
    res = _select(PHYSLITE, {"hh_yybb": {"photons": {"pt_min": pt_min}}, **loosened})
    sample, prov = res.histset.samples["real"], res.histset.provenance
    assert prov["format"] == "physlite" and prov["engine"] == "HHyybbProcessor" and not sample.is_data
    assert {"EventInfoAuxDyn.mcEventWeights", "AnalysisJetsAuxDyn.btaggingLink",
            "BTagging_AntiKt4EMPFlowAuxDyn.DL1dv01_pb"} <= set(prov["branches"])
    assert prov["btag"]["tagger"] == "DL1dv01" and prov["btag"]["cuts"] == {"77": 2.456, "60": 4.884}
    with uproot.open(PHYSLITE) as f:  # the nominal MC weight, the first of mcEventWeights
        w = f["CollectionTree"]["EventInfoAuxDyn.mcEventWeights"].array()[:, 0].to_numpy()
    assert sample.cutflow.raw[0] == 100 and sample.cutflow.sumw[0] == pytest.approx(w.sum(), rel=1e-12)
    n, sumw = _photon_pairs_by_hand(pt_min, id_iso)  # MeV -> GeV at the edge: the cut at pt_min GeV
    assert sample.cutflow.raw[1] == n and sample.cutflow.sumw[1] == pytest.approx(sumw, rel=1e-12)
    if not id_iso:
        assert n >= 5  # the loosened cut lets events through, so the comparison means something


def test_physlite_objects_in_gev_with_the_ftag_discriminant():
    from analysis.io.ingest import open_events
    from selections.hh_yybb.inputs import object_map, read_inputs

    omap = object_map(make_config().selection, "physlite")
    objs = read_inputs(open_events(PHYSLITE), omap, "DL1dv01")
    with uproot.open(PHYSLITE) as f:
        t = f["CollectionTree"]
        jets = t.arrays(["AnalysisJetsAuxDyn.pt", "AnalysisJetsAuxDyn.m"])
        index = t["AnalysisJetsAuxDyn.btaggingLink.m_persIndex"].array()
        p = {k: t[f"BTagging_AntiKt4EMPFlowAuxDyn.DL1dv01_{k}"].array()[index] for k in ("pb", "pc", "pu")}
    d = np.log(p["pb"] / (0.018 * p["pc"] + 0.982 * p["pu"]))
    order = ak.argsort(-jets["AnalysisJetsAuxDyn.pt"], axis=1, stable=True)
    flat = {k: ak.flatten(v).to_numpy() for k, v in (("pt", objs.jets["pt"]), ("mass", objs.jets["mass"]))}
    assert np.allclose(flat["pt"], ak.flatten(jets["AnalysisJetsAuxDyn.pt"][order]).to_numpy() * 1e-3, rtol=1e-6)
    assert np.allclose(flat["mass"], ak.flatten(jets["AnalysisJetsAuxDyn.m"][order]).to_numpy() * 1e-3, rtol=1e-6)
    assert ak.all(abs(objs.jets["DL1dv01"] - d[order]) < 1e-6)
    assert ak.max(objs.photons["pt"]) < 1e4  # GeV, not MeV
    ph = objs.photons  # the relative isolation is an energy: converted with the pT
    with uproot.open(PHYSLITE) as f:
        raw = f["CollectionTree"].arrays([_PH + "pt", _PH + "topoetcone20"])
    ratio = raw[_PH + "topoetcone20"] / raw[_PH + "pt"]
    assert np.allclose(np.sort(ak.flatten(ph["topoetcone20"] / ph["pt"]).to_numpy()),
                       np.sort(ak.flatten(ratio).to_numpy()))


def test_physlite_without_the_btagging_container_is_a_one_line_error(tmp_path):
    from tests.analysis.io.test_real_files import _write_physlite_like

    path = tmp_path / "physlite_nobtag.root"
    _write_physlite_like(path, link=True, container=False)
    with pytest.raises(InputFileError) as err:
        _select(path)
    msg = str(err.value)
    assert err.value.path == str(path) and "BTagging_AntiKt4EMPFlow" in msg and "\n" not in msg


def test_physlite_without_the_configured_tagger_names_the_key():
    with pytest.raises(InputFileError) as err:
        _select(PHYSLITE, {"objects": {"physlite": {"jet": {"btag": {"tagger": "GN2v01"}}}}})
    msg = str(err.value)
    assert "GN2v01" in msg and "DL1dv01, GN2v00" in msg and "selection.objects.physlite.jet.btag.tagger" in msg


def test_a_working_point_file_given_for_nanoaod_is_not_silently_ignored(tmp_path, caplog):
    wp = tmp_path / "working_points.json"
    wp.write_text(json.dumps({"taggers": {}}))
    with caplog.at_level("WARNING", logger="selections.hh_yybb.btag"):
        S.run_selection([NANO["nano_dy.root"].path], make_config(), wp, dataset="real")
    assert any(str(wp) in r.message and "selection.objects.nanoaod.jet.btag" in r.message for r in caplog.records)


def test_a_file_given_twice_counts_once(tmp_path, caplog):
    path = NANO["nano_dy.root"].path
    link = tmp_path / "same.root"
    link.symlink_to(path)
    once = _select(path).histset.samples["real"]
    with caplog.at_level("WARNING", logger="analysis.io.ingest"):
        twice = S.run_selection([path, path, link], make_config(), None, dataset="real").histset.samples["real"]
    assert twice.sumw == once.sumw and twice.cutflow.raw == once.cutflow.raw
    assert twice.cutflow.sumw == once.cutflow.sumw and twice.files == once.files
    assert sum("given more than once" in r.message for r in caplog.records) == 2
