"""Ingestion of the vendored real experiment files (tests/data): CMS NanoAOD of three eras,
simulation and collision data, TTree and RNTuple, and ATLAS PHYSLITE.

Each file goes through format detection, inspection, eager opening and the coffea runner;
the values are checked against what uproot reads from the same file directly.
"""

from __future__ import annotations

import hashlib
import shutil
from typing import Any

import awkward as ak
import numpy as np
import pytest
import uproot

from analysis.core.config import RunnerConfig
from analysis.core.errors import ConfigError, InputFileError
from analysis.io import formats, ingest
from analysis.io.runner import SummaryProcessor, run_processor
from analysis.io.views import ftag_discriminant, object_view, physlite_btagging
from tests.fixtures.files import (
    DATA_DIR,
    GOLDEN_JSON,
    GOLDEN_JSON_SHA256,
    REAL_FILES,
    write_nanoaod_fixture,
)

NAMES = sorted(REAL_FILES)
ONE_CHUNK = RunnerConfig.validated({"chunksize": 1000})


def _sha256(path) -> str:  # type: ignore[no-untyped-def]
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_vendored_files_are_the_documented_ones() -> None:
    readme = (DATA_DIR / "README.md").read_text()
    for f in REAL_FILES.values():
        assert _sha256(f.path) == f.sha256, f.name
        assert f.name in readme and f.sha256 in readme
    assert _sha256(GOLDEN_JSON) == GOLDEN_JSON_SHA256 and GOLDEN_JSON_SHA256 in readme
    vendored = {p.name for p in DATA_DIR.iterdir()} - {"README.md"}
    assert vendored == {*REAL_FILES, GOLDEN_JSON.name}
    assert sum(p.stat().st_size for p in DATA_DIR.iterdir()) < 6.5e6


# ---------------------------------------------------------------------------------------
# facts
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_detect_and_inspect(name: str) -> None:
    f = REAL_FILES[name]
    assert ingest.detect_format(f.path) == f.format
    info = ingest.inspect_file(f.path)
    assert (info.format, info.storage, info.n_entries, info.is_data, info.nanoaod_version) == (
        f.format, f.storage, f.entries, f.is_data, f.nanoaod_version)
    assert info.tree == formats.DEFAULT_TREES[f.format] and info.uuid and len(info.uuid) == 16
    with uproot.open(f.path) as rf:
        tree = rf[info.tree]
        assert info.n_entries == tree.num_entries
        top = set(tree.keys(recursive=False))
    assert top <= info.branches  # every top-level branch or field is listed
    if f.format == "nanoaod":  # the NanoAOD names, whatever the storage
        assert {"run", "luminosityBlock", "event", "Jet_pt", "nJet"} <= info.branches
        assert ("genWeight" in info.branches) is not f.is_data


def test_rntuple_field_names_are_the_ones_uproot_lists() -> None:
    with uproot.open(REAL_FILES["nano_dimuon_rntuple.root"].path) as rf:
        ntuple = rf["Events"]  # uproot's own recursive listing: seconds (a scan per field)
        assert formats._rntuple_keys(ntuple) == set(ntuple.keys(recursive=True))


@pytest.fixture(scope="module")
def summaries() -> dict[str, Any]:
    """:class:`SummaryProcessor` run over each vendored file (one chunk), by file name."""
    return {name: run_processor(SummaryProcessor(jet_pt_min=0.0), {"ds": [str(f.path)]}, ONE_CHUNK)
            for name, f in REAL_FILES.items()}


def test_rntuple_and_ttree_copies_agree(summaries: dict[str, Any]) -> None:
    for stem in ("nano_dy", "nano_dimuon"):
        tree, ntuple = (summaries[f"{stem}{tail}.root"] for tail in ("", "_rntuple"))
        a, b = (res.output["ds"] for res in (tree, ntuple))
        assert {k: v for k, v in a.items() if k != "njet_hist"} == {k: v for k, v in b.items() if k != "njet_hist"}
        assert a["njet_hist"].tolist() == b["njet_hist"].tolist()
        assert tree.fileset["ds"]["metadata"] == ntuple.fileset["ds"]["metadata"]


# ---------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_open_events_eager_and_object_view(name: str) -> None:
    f = REAL_FILES[name]
    events = ingest.open_events(f.path, mode="eager", entry_stop=10)
    assert len(events) == 10
    md = events.metadata
    assert (md["format"], md["storage"], md["is_data"]) == (f.format, f.storage, f.is_data)
    assert md.get("nanoaod_version") == f.nanoaod_version
    view = object_view(events, f.format)
    assert view.has_flavour is not f.is_data
    with uproot.open(f.path) as rf:
        tree = rf[formats.DEFAULT_TREES[f.format]]
        if f.format == "physlite":
            raw_pt = tree["AnalysisJetsAuxDyn.pt"].array(entry_stop=10)
            weight = ak.firsts(tree["EventInfoAuxDyn.mcEventWeights"].array(entry_stop=10))
            scale = formats.MEV
        else:
            raw_pt = tree["Jet_pt"].array(entry_stop=10)
            weight = tree["genWeight"].array(entry_stop=10) if not f.is_data else np.ones(10)
            scale = 1.0
    assert ak.all(ak.isclose(view.jets.pt, raw_pt * scale, rtol=1e-6))  # GeV at the edge
    np.testing.assert_allclose(view.weight, ak.to_numpy(weight), rtol=1e-6)
    assert ak.all(view.jets.pt < 5000.0)  # GeV, not MeV


@pytest.mark.parametrize("name", NAMES)
def test_run_processor(name: str, summaries: dict[str, Any]) -> None:
    f = REAL_FILES[name]
    res = summaries[name]
    out = res.output["ds"]
    assert out["events"] == res.metrics.events == f.entries and res.metrics.format == f.format
    meta = res.fileset["ds"]["metadata"]
    assert meta["format"] == f.format and meta["is_data"] is f.is_data
    assert meta.get("nanoaod_version") == f.nanoaod_version
    with uproot.open(f.path) as rf:
        tree = rf[formats.DEFAULT_TREES[f.format]]
        counts = tree["AnalysisJetsAuxDyn.pt" if f.format == "physlite" else "Jet_pt"].array()
    assert out["jets"] == int(ak.sum(ak.num(counts)))


@pytest.mark.filterwarnings("ignore:the filter_branch kwarg should not be used for RNTuples")
def test_runner_preload_on_nanoaod_and_rntuple() -> None:
    for name in ("nano_dy.root", "nano_dy_rntuple.root"):
        res = run_processor(SummaryProcessor(), {"ds": [str(REAL_FILES[name].path)]}, ONE_CHUNK,
                            preload=["Jet_pt", "genWeight"])
        assert res.output["ds"]["jets"] == 114 and "Jet_pt" in res.metrics.columns_read


# ---------------------------------------------------------------------------------------
# sums of weights
# ---------------------------------------------------------------------------------------
def test_sum_of_weights_from_the_runs_tree() -> None:
    dy = REAL_FILES["nano_dy.root"].path
    with uproot.open(dy) as rf:  # NanoAOD v5 spells them genEventSumw_, genEventSumw2_
        expected = (float(rf["Runs"]["genEventSumw_"].array(library="np").sum()),
                    float(rf["Runs"]["genEventSumw2_"].array(library="np").sum()))
    assert ingest.sum_of_weights(dy) == pytest.approx(expected)
    assert ingest.sum_of_weights([dy, dy]) == pytest.approx((2 * expected[0], 2 * expected[1]))
    for name in ("nano_dimuon.root", "nano_tt_v15.root", "PHYSLITE_example.root"):
        assert ingest.sum_of_weights(REAL_FILES[name].path) is None  # data; no Runs tree


def test_sum_of_weights_refuses_a_sample_with_and_without_runs() -> None:
    v15 = REAL_FILES["nano_tt_v15.root"].path
    with pytest.raises(InputFileError) as err:
        ingest.sum_of_weights([REAL_FILES["nano_dy.root"].path, v15])
    assert err.value.path == str(v15) and "no sum of generator weights" in str(err.value)


# ---------------------------------------------------------------------------------------
# NanoAOD eras
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["nano_dy.root", "nano_dimuon_rntuple.root", "nano_tt_v15.root"])
def test_era_mapping_is_satisfied(name: str) -> None:
    info = ingest.inspect_file(REAL_FILES[name].path)
    era = formats.nanoaod_era(info)
    assert era.version == REAL_FILES[name].nanoaod_version
    formats.check_nanoaod_era(info, era)  # data need no weight nor flavour
    if era.version == "v15":
        assert era.jet_id is None and set(era.jet_id_inputs) <= info.branches and "Jet_jetId" not in info.branches
    if era.version == "v5":
        assert era.photon_id == "Photon_cutBasedBitmap" and era.runs_sums == ("genEventSumw_", "genEventSumw2_")


def test_bad_branch_the_era_mapping_needs() -> None:
    info = ingest.inspect_file(REAL_FILES["nano_tt_v12.root"].path)  # skimmed without photons
    with pytest.raises(InputFileError) as err:
        formats.check_nanoaod_era(info, formats.nanoaod_era(info))
    message = str(err.value)
    assert message.startswith(str(info.path) + ": ") and "\n" not in message
    assert "missing branch Photon_cutBased (photon ID)" in message and "NanoAOD v12 mapping" in message


def test_bad_unknown_era(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_nanoaod_fixture(tmp_path / "old.root", 5, np.random.default_rng(3),
                                 drop_branches=["Rho_fixedGridRhoFastjetAll"])
    info = ingest.inspect_file(path)
    assert info.nanoaod_version is None
    with pytest.raises(InputFileError) as err:
        formats.nanoaod_era(info)
    message = str(err.value)
    assert err.value.path == str(path) and "\n" not in message
    assert "detected: unknown" in message and formats.NANOAOD_VERSION_KEY in message
    assert "v15: Jet_btagUParTAK4B without Jet_jetId" in message
    with pytest.raises(InputFileError, match="my.key"):
        formats.nanoaod_era(info, config_key="my.key")
    assert formats.nanoaod_era(info, "v12").version == "v12"  # the user's override
    with pytest.raises(ConfigError, match=f"{formats.NANOAOD_VERSION_KEY}: unknown NanoAOD version 'v7'"):
        formats.nanoaod_era(info, "v7")


# ---------------------------------------------------------------------------------------
# PHYSLITE
# ---------------------------------------------------------------------------------------
def test_physlite_btagging_and_truth() -> None:
    path = REAL_FILES["PHYSLITE_example.root"].path
    info = ingest.validate_file(path, require_btagging=True)
    assert formats.require_physlite_btagging(info) == ("DL1dv01", "GN2v00")
    events = ingest.open_events(path)
    btag = physlite_btagging(events)
    assert ak.all(ak.num(btag) == ak.num(events.Jets)) and not ak.any(ak.is_none(btag, axis=1))
    total = btag.DL1dv01_pb + btag.DL1dv01_pc + btag.DL1dv01_pu
    assert ak.all(abs(total - 1) < 1e-3)
    with uproot.open(path) as rf:  # the link read by hand: jet j of event e -> entry index[e][j]
        tree = rf["CollectionTree"]
        index = tree["AnalysisJetsAuxDyn.btaggingLink.m_persIndex"].array()
        pb = tree["BTagging_AntiKt4EMPFlowAuxDyn.DL1dv01_pb"].array()
    assert ak.all(btag.DL1dv01_pb == pb[index])
    selected = events.Jets[events.Jets.pt > 30e3]  # a selection of the jets keeps its links
    assert ak.all(physlite_btagging(events, selected).GN2v00_pb == btag.GN2v00_pb[events.Jets.pt > 30e3])
    d = ftag_discriminant(btag.DL1dv01_pb, btag.DL1dv01_pc, btag.DL1dv01_pu, 0.018)
    assert ak.all(np.isfinite(ak.flatten(d)))
    flav = object_view(events, "physlite").jets.flavour
    assert ak.all(flav == events.Jets.HadronConeExclTruthLabelID)


def _write_physlite_like(path, *, link: bool, container: bool) -> None:  # type: ignore[no-untyped-def]
    jets = ak.Array([[50e3, 30e3], [40e3]])
    columns = {"EventInfoAuxDyn.eventNumber": np.array([1, 2], dtype=np.uint64),
               "EventInfoAuxDyn.mcEventWeights": ak.Array([[1.0], [1.0]]),
               "AnalysisJetsAuxDyn.pt": jets}
    if link:
        columns["AnalysisJetsAuxDyn.btaggingLink"] = ak.values_astype(ak.local_index(jets), np.uint32)
    if container:
        for p in ("pb", "pc", "pu"):
            columns[f"BTagging_AntiKt4EMPFlowAuxDyn.DL1dv01_{p}"] = ak.Array([[0.3, 0.3], [0.3]])
    with uproot.recreate(path) as f:
        f.mktree("CollectionTree", {k: v.type.content if isinstance(v, ak.Array) else v.dtype
                                    for k, v in columns.items()}, counter_name=lambda c: f"n_{c}")
        f["CollectionTree"].extend(columns)


def test_bad_physlite_without_the_btagging_container(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cases = [({"link": False, "container": False}, "missing branch AnalysisJetsAuxDyn.btaggingLink"),
             ({"link": True, "container": False}, "no b-tagging container BTagging_AntiKt4EMPFlow")]
    for i, (kwargs, fragment) in enumerate(cases):
        path = tmp_path / f"physlite_{i}.root"
        _write_physlite_like(path, **kwargs)
        info = ingest.validate_file(path)  # the container is only checked when asked
        assert info.format == "physlite" and not info.is_data
        with pytest.raises(InputFileError) as err:
            ingest.validate_file(path, require_btagging=True)
        assert err.value.path == str(path) and fragment in str(err.value) and "BTagging_AntiKt4EMPFlow" in str(err.value)
        with pytest.raises(InputFileError, match=fragment):
            ingest.validate_fileset({"ds": [str(path)]}, require_btagging=True)
    _write_physlite_like(tmp_path / "ok.root", link=True, container=True)
    assert ingest.validate_file(tmp_path / "ok.root", require_btagging=True).format == "physlite"


# ---------------------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------------------
def test_a_dataset_does_not_mix_data_and_simulation(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = REAL_FILES["nano_dimuon.root"].path
    mc = REAL_FILES["nano_dy.root"].path
    with pytest.raises(InputFileError) as err:
        ingest.validate_fileset({"ds": [str(mc), str(data)]})
    assert err.value.path == str(data) and "is_data=True differs from is_data=False" in str(err.value)
    fs, fmt = ingest.validate_fileset({"mc": [str(mc)], "data": [str(data)]})
    assert fmt == "nanoaod" and fs["data"]["metadata"]["is_data"] and not fs["mc"]["metadata"]["is_data"]
    copy = tmp_path / "copy.root"
    shutil.copy(mc, copy)
    fs, _ = ingest.validate_fileset({"ds": [str(mc), str(copy)]})
    assert fs.infos[str(copy)].branches is fs.infos[str(mc)].branches  # one shared name set


def test_the_documented_physlite_names_exist() -> None:
    documented = {  # docs/ingestion.md, "ATLAS PHYSLITE"
        "Photons": ["pt", "eta", "phi", "m", "DFCommonPhotonsIsEMTight", "DFCommonPhotonsIsEMLoose",
                    "DFCommonPhotonsCleaning", "ptcone20", "topoetcone20", "topoetcone40", "OQ", "author"],
        "Jets": ["pt", "eta", "phi", "m", "btaggingLink", "HadronConeExclTruthLabelID", "PartonTruthLabelID",
                 "NNJvtPass", "DFCommonJets_fJvt", "JVFCorr"],
        "BTagging_AntiKt4EMPFlow": [f"{t}_{p}" for t in ("DL1dv01", "GN2v00") for p in ("pb", "pc", "pu")],
        "Electrons": ["pt", "eta", "phi", "m", "charge", "DFCommonElectronsLHTight", "DFCommonElectronsLHMedium",
                      "DFCommonElectronsLHLoose", "topoetcone20",
                      "ptvarcone30_Nonprompt_All_MaxWeightTTVALooseCone_pt1000"],
        "Muons": ["pt", "eta", "phi", "m", "charge", "quality", "muonType", "DFCommonMuonPassIDCuts",
                  "DFCommonMuonPassPreselection", "ptvarcone30_Nonprompt_All_MaxWeightTTVA_pt1000"],
        "EventInfo": ["mcEventWeights", "runNumber", "eventNumber", "lumiBlock", "mcChannelNumber",
                      "PileupWeight_NOSYS", "averageInteractionsPerCrossing"],
    }
    events = ingest.open_events(REAL_FILES["PHYSLITE_example.root"].path)
    for collection, fields in documented.items():
        assert set(fields) <= set(events[collection].fields), collection
    assert set(formats.PHYSLITE_COLLECTIONS.values()) <= set(events.fields)


def test_a_dataset_fileset_refuses_a_partial_sum_of_weights() -> None:
    with_runs, without = REAL_FILES["nano_dy.root"].path, REAL_FILES["nano_dy_rntuple.root"].path
    with pytest.raises(InputFileError) as err:
        ingest.build_fileset([with_runs, without], dataset="dy")
    assert err.value.path == str(without) and f"while {with_runs} of dataset 'dy' has one" in str(err.value)
    fs = ingest.build_fileset([REAL_FILES["nano_dimuon.root"].path, REAL_FILES["nano_dimuon_rntuple.root"].path])
    assert "sumw" not in fs["data"]["metadata"] and fs["data"]["metadata"]["n_events"] == 80  # collision data
