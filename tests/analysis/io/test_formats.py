"""Tests of analysis.io.formats (detection rules, eras, units), analysis.io.lumi (golden JSON)
and the ATLAS CutBookkeeper sums of analysis.io.ingest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis.core.errors import InputFileError
from analysis.io import formats, ingest
from analysis.io.lumi import load_lumi_mask, read_lumi_json
from tests.fixtures.files import GOLDEN_JSON, REAL_FILES, write_cutbookkeepers_fixture


# ---------------------------------------------------------------------------------------
# formats
# ---------------------------------------------------------------------------------------
def test_format_from_keys() -> None:
    key = "hepline_metadata"
    assert formats.format_from_keys({key: "TObjString", "Events": "TTree"}, hepline_key=key) == "hepline"
    assert formats.format_from_keys({"Events": "TTree"}, hepline_key=key,
                                    events_branches={"Track_jetIdx", "Tower_eEM", "run"}) == "hepline"
    assert formats.format_from_keys({"Events": "ROOT::RNTuple"}, hepline_key=key, events_branches={"run"}) == "nanoaod"
    assert formats.format_from_keys({"Delphes": "TTree"}, hepline_key=key) == "delphes"
    assert formats.format_from_keys({"CollectionTree": "TTree"}, hepline_key=key,
                                    collection_branches={"AnalysisJetsAuxDyn.pt"}) == "physlite"
    assert formats.format_from_keys({"CollectionTree": "TTree"}, hepline_key=key,
                                    collection_branches={"AntiKt4EMPFlowJetsAuxDyn.pt"}) is None
    assert formats.format_from_keys({"Ntuple": "TTree"}, hepline_key=key) is None


def test_storage_and_data() -> None:
    assert formats.storage_of("TTree") == "TTree" and formats.storage_of("ROOT::RNTuple") == "RNTuple"
    assert formats.storage_of("ROOT::Experimental::RNTuple") == "RNTuple" and formats.storage_of("TH1D") is None
    assert formats.is_data("nanoaod", {"run"}) and not formats.is_data("nanoaod", {"run", "genWeight"})
    assert formats.is_data("physlite", {"EventInfoAuxDyn.eventNumber"})
    assert not formats.is_data("physlite", {formats.PHYSLITE_MC_WEIGHTS})
    assert not formats.is_data("hepline", set()) and not formats.is_data("delphes", set())


def test_to_gev() -> None:
    assert formats.to_gev(125_000.0) == pytest.approx(125.0)
    np.testing.assert_allclose(formats.to_gev(np.array([1e3, 2.5e4])), [1.0, 25.0])
    assert formats.MEV == 1e-3


@pytest.mark.parametrize(("present", "version"), [
    ({"Jet_btagUParTAK4B", "Rho_fixedGridRhoFastjetAll"}, "v15"),
    ({"Jet_btagUParTAK4B", "Jet_jetId", "Rho_fixedGridRhoFastjetAll"}, "v12"),  # UParT with jetId: not v15
    ({"Rho_fixedGridRhoFastjetAll", "Jet_jetId"}, "v12"),
    ({"Photon_cutBased_Fall17V1Bitmap", "fixedGridRhoFastjetAll", "Jet_jetId"}, "v9"),
    ({"Photon_cutBasedBitmap", "fixedGridRhoFastjetAll", "Jet_jetId"}, "v5"),
    ({"Photon_cutBased", "fixedGridRhoFastjetAll", "Jet_jetId"}, None),
    ({"run", "luminosityBlock", "event"}, None),
])
def test_detect_nanoaod_version(present: set[str], version: str | None) -> None:
    assert formats.detect_nanoaod_version(present) == version


def test_era_table_is_consistent() -> None:
    assert list(formats.NANOAOD_ERAS) == ["v15", "v12", "v9", "v5"]
    for label, era in formats.NANOAOD_ERAS.items():
        assert era.version == label and era.btag and era.photon_id_kind in ("level", "bitmap")
        assert formats.detect_nanoaod_version(set(era.signature)) == label  # its own signature
        mc = era.required_branches(is_data=False)
        data = era.required_branches(is_data=True)
        assert set(mc) - set(data) == {"genWeight", "Jet_hadronFlavour"}
        assert (era.jet_id in mc) if era.jet_id else set(era.jet_id_inputs) <= set(mc)
    assert formats.NANOAOD_ERAS["v15"].required_branches(is_data=True, btag="Jet_btagPNetB")["Jet_btagPNetB"] == \
        "b-tagging discriminant"


def test_file_info() -> None:
    info = formats.FileInfo(path="f.root", format="nanoaod", treename="Events", num_entries=3,
                            storage="RNTuple", is_data=True, nanoaod_version="v12",
                            branches=frozenset({"run"}))
    assert (info.tree, info.n_entries) == ("Events", 3)
    assert info.to_dict() == {"path": "f.root", "format": "nanoaod", "tree": "Events", "storage": "RNTuple",
                              "n_entries": 3, "is_data": True, "nanoaod_version": "v12"}
    assert ingest.FileInfo is formats.FileInfo


def test_physlite_taggers() -> None:
    c = formats.PHYSLITE_BTAGGING
    names = {f"{c}AuxDyn.DL1dv01_{p}" for p in ("pb", "pc", "pu")} | {f"{c}AuxDyn.GN2v01_pb", "other_pb"}
    assert formats.physlite_taggers(names) == ("DL1dv01",)  # GN2v01 lacks pc, pu
    assert formats.physlite_taggers(names, "BTagging_AntiKtVR30Rmax4Rmin02Track") == ()


# ---------------------------------------------------------------------------------------
# ATLAS CutBookkeepers
# ---------------------------------------------------------------------------------------
def _cbk(name: str, stream: str, cycle: int, n: int, sw: float, sw2: float) -> dict:
    return {"name": name, "inputStream": stream, "cycle": cycle, "nAcceptedEvents": n,
            "sumOfEventWeights": sw, "sumOfEventWeightsSquared": sw2}


def test_sum_of_weights_from_cutbookkeepers(tmp_path: Path) -> None:
    path = write_cutbookkeepers_fixture(tmp_path / "daod.root", [
        _cbk("AllExecutedEvents", "StreamAOD", 0, 900, 90.0, 9.0),     # an earlier production step
        _cbk("AllExecutedEvents", "StreamAOD", 1, 1000, 100.0, 10.0),  # the highest cycle: this one
        _cbk("AllExecutedEvents", "StreamDAOD_PHYSLITE", 2, 50, 5.0, 0.5),  # the derivation's own output
        _cbk("AllExecutedEvents_NonNominalMCWeight_1", "StreamAOD", 1, 1000, 120.0, 14.0),
        _cbk("SkimmingFilter", "StreamAOD", 1, 400, 40.0, 4.0),
    ])
    assert ingest.sum_of_weights(path) == (100.0, 10.0)
    runs = ingest._cutbookkeeper_sums(*_open(path))
    assert runs == {"source": "CutBookkeepers", "entries": 1, "genEventSumw": 100.0, "genEventSumw2": 10.0,
                    "genEventCount": 1000}
    merged = write_cutbookkeepers_fixture(tmp_path / "merged.root", [  # a merged file: one per input
        _cbk("AllExecutedEvents", "StreamAOD", 1, 10, 1.5, 0.5), _cbk("AllExecutedEvents", "StreamAOD", 1, 20, 2.5, 1.5)])
    assert ingest.sum_of_weights([path, merged]) == (104.0, 12.0)
    none = write_cutbookkeepers_fixture(tmp_path / "none.root", [_cbk("SkimmingFilter", "StreamAOD", 0, 1, 1.0, 1.0)])
    assert ingest.sum_of_weights(none) is None


def _open(path: Path) -> tuple:
    import uproot

    f = uproot.open(path)
    return f, ingest._top_keys(f)


# ---------------------------------------------------------------------------------------
# lumi masks
# ---------------------------------------------------------------------------------------
def test_lumi_mask_of_the_golden_json() -> None:
    certified = read_lumi_json(GOLDEN_JSON)
    assert len(certified) == len(json.loads(GOLDEN_JSON.read_text())) == 474
    assert certified[297050] == [(12, 137), (193, 776)]
    mask = load_lumi_mask(GOLDEN_JSON)
    runs = np.array([297050] * 6 + [1], dtype=np.uint32)
    lumis = np.array([11, 12, 137, 138, 193, 777, 12], dtype=np.uint32)
    np.testing.assert_array_equal(mask(runs, lumis), [False, True, True, False, True, False, False])


def test_lumi_mask_on_collision_data(tmp_path: Path) -> None:
    events = ingest.open_events(REAL_FILES["nano_dimuon.root"].path)
    run, lumi = events.run, events.luminosityBlock
    assert set(np.asarray(run).tolist()) == {315267} and set(np.asarray(lumi).tolist()) == {205}
    assert not np.any(load_lumi_mask(GOLDEN_JSON)(run, lumi))  # 2018 data, 2017 certification
    golden = tmp_path / "golden.json"
    for ranges, expected in (([[200, 205]], True), ([[205, 205]], True), ([[1, 204], [206, 900]], False)):
        golden.write_text(json.dumps({"315267": ranges}))
        mask = load_lumi_mask(golden)(run, lumi)
        assert len(mask) == len(events) and set(np.asarray(mask).tolist()) == {expected}


@pytest.mark.parametrize(("text", "fragment"), [
    ('{"297050": [[12, 137], [193, 776]],',
     "lumi mask is not valid JSON (Expecting property name enclosed in double quotes: line 1 column 36)"),
    ("[1, 2]", "lumi mask is not a JSON object"),
    ('{"run1": [[1, 2]]}', "lumi mask key 'run1' is not a run number"),
    ('{"297050": [[12]]}', "lumi mask run 297050: range [12] is not [first, last]"),
    ('{"297050": [[20, 10]]}', "range [20, 10] is not [first, last] with 1 <= first <= last"),
    ('{"297050": 5}', "lumi mask run 297050: expected a list of [first, last] luminosity-block ranges, got int"),
])
def test_bad_lumi_mask(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "golden.json"
    path.write_text(text)
    with pytest.raises(InputFileError) as err:
        load_lumi_mask(path)
    message = str(err.value)
    assert message == f"{path}: {message.split(': ', 1)[1]}" and "\n" not in message
    assert fragment in message, message


def test_bad_lumi_mask_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="lumi mask file not found"):
        load_lumi_mask(tmp_path / "missing.json")
    with pytest.raises(InputFileError, match="lumi mask is not a regular file"):
        load_lumi_mask(tmp_path)
