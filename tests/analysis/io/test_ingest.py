"""Tests of analysis.io.ingest on the fixture files: formats, cross-references, metadata, bad input.

The real experiment files (NanoAOD of several eras, RNTuple, PHYSLITE) are tested in
test_real_files.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from analysis.io import ingest
from tests.fixtures.files import write_hepline_fixture, write_nanoaod_fixture
from analysis.io.ingest import InputFileError

N = 60  # events in the session fixtures (tests/conftest.py)


# ---------------------------------------------------------------------------------------
# formats
# ---------------------------------------------------------------------------------------
def test_detect_format(hepline_file, nanoaod_file, delphes_file):
    assert ingest.detect_format(hepline_file) == "hepline"
    assert ingest.detect_format(nanoaod_file) == "nanoaod"
    assert ingest.detect_format(delphes_file) == "delphes"


def test_fixture_files_are_classic_ttrees(hepline_file, nanoaod_file, delphes_file):
    cases = ((hepline_file, "Events"), (nanoaod_file, "Events"), (delphes_file, "Delphes"))
    for path, tree in cases:
        with uproot.open(path) as f:
            assert f.classname_of(tree) == "TTree"


def test_hepline_has_every_branch_of_the_format(hepline_file):
    with uproot.open(hepline_file) as f:
        names = set(f["Events"].keys())
        assert f.classname_of("Runs") == "TTree"
        assert f.classname_of("hepline_metadata") == "TObjString"
    assert set(ingest.hepline_branches()) <= names
    raw = ingest.read_arrays(hepline_file, ["Track_jetIdx", "Jet_pt", "Photon_isTight"])
    assert raw.Track_jetIdx.type.content.content.primitive == "int16"
    assert raw.Jet_pt.type.content.content.primitive == "float32"
    assert raw.Photon_isTight.type.content.content.primitive == "bool"


@pytest.mark.parametrize("mode", ["eager", "virtual"])
def test_hepline_collections_and_counts(hepline_file, mode):
    events = ingest.open_events(hepline_file, mode=mode)
    assert len(events) == N
    expected = {"Jet", "GenJet", "Track", "Tower", "Photon", "Electron", "Muon",
                "TruthHadron", "GenPart", "PV", "GenVtx", "run", "luminosityBlock", "event",
                "genWeight"}  # fmt: skip
    assert expected <= set(events.fields)
    raw = ingest.read_arrays(hepline_file, [f"n{c}" for c in ingest.HEPLINE_COLLECTIONS])
    for coll in ingest.HEPLINE_COLLECTIONS:
        assert ak.to_list(ak.num(events[coll], axis=1)) == ak.to_list(raw[f"n{coll}"]), coll
    assert events.metadata["format"] == "hepline"
    assert events.metadata["sample"] == "fixture_hh_yybb"
    assert events.metadata["filename"] == str(hepline_file)


@pytest.mark.parametrize("mode", ["eager", "virtual"])
def test_jet_tracks_match_track_jetidx(hepline_file, mode):
    events = ingest.open_events(hepline_file, mode=mode)
    raw = ingest.read_arrays(hepline_file, ["Track_jetIdx", "Track_pt", "Jet_nTrack"])
    tracks = events.Jet.tracks
    got_pt = ak.to_list(tracks.pt)
    idx, pts = ak.to_list(raw.Track_jetIdx), ak.to_list(raw.Track_pt)
    n_assoc = 0
    for i in range(N):
        for j in range(len(got_pt[i])):
            want = [pt for pt, jet in zip(pts[i], idx[i], strict=True) if jet == j]
            assert got_pt[i][j] == want, (i, j)
            n_assoc += len(want)
    assert n_assoc > 50  # the fixture does associate tracks
    # the stored per-jet count agrees, and tracks point back at their jet
    assert ak.all(ak.num(tracks, axis=2) == raw.Jet_nTrack)
    jet_local = ak.local_index(events.Jet.pt, axis=1)
    assert ak.all(tracks.jetIdx == jet_local)
    # survives slicing the jets (global indices)
    hard = events.Jet.pt > 40
    assert ak.to_list(events.Jet[hard].tracks.pt) == ak.to_list(tracks.pt[hard])


def test_jet_tracks_within_an_entry_range(hepline_file):
    full = ingest.open_events(hepline_file, mode="eager")
    part = ingest.open_events(hepline_file, entry_start=17, entry_stop=41, mode="eager")
    assert len(part) == 24
    assert ak.to_list(part.event) == ak.to_list(full.event[17:41])
    assert ak.to_list(part.Jet.tracks.pt) == ak.to_list(full.Jet.tracks.pt[17:41])
    assert ak.to_list(part.Track.jet.pt) == ak.to_list(full.Track.jet.pt[17:41])


def test_hepline_other_cross_references(hepline_file):
    ev = ingest.open_events(hepline_file, mode="eager")
    raw = ingest.read_arrays(hepline_file, ["Track_jetIdx", "Jet_genJetIdx", "GenJet_pt",
                                            "Jet_pt", "GenPart_genPartIdxMother",
                                            "GenPart_pdgId", "TruthHadron_jetIdx"])  # fmt: skip
    for i in range(N):
        jets, genjets = ak.to_list(raw.Jet_pt[i]), ak.to_list(raw.GenJet_pt[i])
        assert ak.to_list(ev.Track.jet.pt[i]) == [
            jets[k] if k >= 0 else None for k in ak.to_list(raw.Track_jetIdx[i])
        ]
        assert ak.to_list(ev.TruthHadron.jet.pt[i]) == [
            jets[k] if k >= 0 else None for k in ak.to_list(raw.TruthHadron_jetIdx[i])
        ]
        assert ak.to_list(ev.Jet.genJet.pt[i]) == [
            genjets[k] if k >= 0 else None for k in ak.to_list(raw.Jet_genJetIdx[i])
        ]
        pdg = ak.to_list(raw.GenPart_pdgId[i])
        assert ak.to_list(ev.GenPart.parent.pdgId[i]) == [
            pdg[m] if m >= 0 else None for m in ak.to_list(raw.GenPart_genPartIdxMother[i])
        ]
    # H -> b bbar: the first Higgs has the b quarks as children
    assert ak.to_list(ev.GenPart.children.pdgId[0][0]) == [5, -5]
    # inverse of TruthHadron.jet
    n_labelled = ak.sum(raw.TruthHadron_jetIdx >= 0)
    assert ak.sum(ak.num(ev.Jet.truthHadrons, axis=2)) == n_labelled


def test_hepline_behaviours(hepline_file):
    ev = ingest.open_events(hepline_file, mode="eager")
    assert ak.all(ev.Photon.mass == 0)
    assert ak.all(np.isclose(ev.Electron.mass, 0.000511))
    assert ak.all(np.isclose(ev.Muon.mass, 0.105658))
    assert ak.all(np.isclose(ev.Track.mass, 0.13957))
    two = ev[ak.num(ev.Photon) >= 2]
    diphoton = two.Photon[:, 0] + two.Photon[:, 1]
    assert len(two) > 0 and ak.all(diphoton.mass >= -1e-2)
    assert ak.all(np.isclose(ev.Jet.delta_r(ev.Jet), 0))
    assert ak.all(ev.Tower.energy == ev.Tower.eEM + ev.Tower.eHad)
    assert ak.all(np.isclose(ev.PV.pos.z, ev.PV.z))
    assert ak.all(ev.TruthHadron.decayLxy >= 0)
    assert "isTight" in ev.Photon.fields  # the stored ID, not a NanoAOD-derived property


def test_nanoaod_reads_with_nanoaod_schema(nanoaod_file):
    ev = ingest.open_events(nanoaod_file, mode="eager")
    assert len(ev) == N
    assert {"Jet", "GenJet", "Photon", "Electron", "Muon", "GenPart", "MET", "PV"} <= set(ev.fields)
    raw = ingest.read_arrays(nanoaod_file, ["nJet", "Jet_genJetIdx", "GenJet_pt",
                                            "GenPart_genPartIdxMother", "GenPart_pdgId"])
    assert ak.to_list(ak.num(ev.Jet)) == ak.to_list(raw.nJet)
    for i in range(5):
        gj = ak.to_list(raw.GenJet_pt[i])
        assert ak.to_list(ev.Jet.matched_gen.pt[i]) == [
            gj[k] if k >= 0 else None for k in ak.to_list(raw.Jet_genJetIdx[i])
        ]
    assert ak.to_list(ev.GenPart.parent.pdgId[0]) == [None, None, 25, 25, 25, 25]
    assert ak.all(ev.Photon.mass == 0)  # NanoAOD v12 has no Photon_mass; coffea fills 0
    assert ak.all(ev.Jet.isTight == ((ev.Jet.jetId & 2) != 0))
    assert ev.metadata["format"] == "nanoaod"
    meta = ingest.read_metadata(nanoaod_file)
    assert meta["runs"]["genEventCount"] == N
    assert meta["runs"]["genEventSumw"] == pytest.approx(float(ak.sum(ev.genWeight)), rel=1e-5)


def test_delphes_reads_with_delphes_schema(delphes_file):
    ev = ingest.open_events(delphes_file, mode="eager")
    assert len(ev) == N
    assert {"Jet", "GenJet", "Photon", "Electron", "Muon", "Particle", "Event", "MissingET",
            "Tower"} <= set(ev.fields)  # fmt: skip
    raw = ingest.read_arrays(delphes_file, ["Jet_size", "Jet/Jet.PT", "Event/Event.Weight"])
    assert ak.to_list(ak.num(ev.Jet)) == ak.to_list(raw["Jet_size"])
    assert ak.to_list(ev.Jet.pt) == ak.to_list(raw["Jet/Jet.PT"])
    assert ak.to_list(ev.Event.Weight) == ak.to_list(ak.flatten(raw["Event/Event.Weight"]))
    assert ak.all(ev.Photon.mass == 0)
    assert ak.all(ev.Jet.mass > 0)


def test_open_events_explicit_format_and_tree(hepline_file, tmp_path):
    ev = ingest.open_events({str(hepline_file): "Events"}, format="hepline", mode="eager")
    assert len(ev) == N
    rng = np.random.default_rng(7)
    renamed = write_hepline_fixture(tmp_path / "t.root", 5, rng, treename="Tree")
    ev = ingest.open_events(renamed, treename="Tree", mode="eager")
    assert len(ev) == 5
    with pytest.raises(ValueError, match="mode"):
        ingest.open_events(hepline_file, mode="lazy")
    with pytest.raises(ValueError, match="unknown input format"):
        ingest.open_events(hepline_file, format="lhe")


def test_open_events_several_files_needs_dask(hepline_sample_files):
    with pytest.raises(ValueError, match="mode='dask'"):
        ingest.open_events(hepline_sample_files[:2], mode="eager")


# ---------------------------------------------------------------------------------------
# plain awkward and metadata
# ---------------------------------------------------------------------------------------
def test_read_arrays(hepline_file):
    arr = ingest.read_arrays(hepline_file, ["Jet_pt", "Track_*"], entry_stop=10)
    assert len(arr) == 10
    assert arr.fields[0] == "Jet_pt" and "Track_jetIdx" in arr.fields
    zipped = ingest.read_arrays(hepline_file, how="zip")
    assert "pt" in zipped.Jet.fields and len(zipped) == N
    with pytest.raises(InputFileError) as err:
        ingest.read_arrays(hepline_file, ["Jet_pt", "Jet_btag"])
    assert str(hepline_file) in str(err.value) and "Jet_btag" in str(err.value)


def test_read_metadata(hepline_file):
    meta = ingest.read_metadata(hepline_file)
    for key in ("sample", "process", "xsec_pb", "xsec_source", "sumw", "n_events", "seed",
                "shard", "pythia_settings", "detector", "hepline_version", "config_hash",
                "created_utc"):  # fmt: skip
        assert key in meta, key
    assert meta["format"] == "hepline" and meta["n_entries"] == N
    weights = ingest.read_arrays(hepline_file, ["genWeight"]).genWeight
    assert meta["runs"]["genEventCount"] == N
    assert meta["runs"]["genEventSumw"] == pytest.approx(float(ak.sum(weights)), rel=1e-5)
    assert meta["runs"]["genEventSumw2"] == pytest.approx(float(ak.sum(weights**2)), rel=1e-5)
    assert meta["sumw"] == pytest.approx(meta["runs"]["genEventSumw"])


def test_build_fileset_groups_by_sample(hepline_sample_files):
    fs = ingest.build_fileset(hepline_sample_files)
    assert sorted(fs) == ["bkg", "sig"]
    sig = fs["sig"]
    assert list(sig["files"]) == [str(p) for p in hepline_sample_files[:2]]
    assert set(sig["files"].values()) == {"Events"}
    assert sig["metadata"]["n_events"] == 55 and sig["metadata"]["n_files"] == 2
    assert sig["metadata"]["sumw"] == pytest.approx(55.0)
    assert fs["bkg"]["metadata"]["xsec_pb"] == 50.0
    assert fs.skipped == []
    json.dumps(fs)  # coffea-style and serialisable


def test_build_fileset_rejects_inconsistent_sample(tmp_path):
    rng = np.random.default_rng(8)
    a = write_hepline_fixture(tmp_path / "a.root", 5, rng, sample="s", xsec_pb=1.0)
    b = write_hepline_fixture(tmp_path / "b.root", 5, rng, sample="s", xsec_pb=2.0)
    with pytest.raises(InputFileError) as err:
        ingest.build_fileset([a, b])
    assert str(b) in str(err.value) and "xsec_pb" in str(err.value)


def test_fileset_coerce_spellings(hepline_file):
    p = str(hepline_file)
    assert ingest.Fileset.coerce(p) == {"default": {"files": {p: "Events"}, "metadata": {}}}
    coffea_style = {"ds": {"files": [p], "metadata": {"xsec_pb": 1.0}}}
    assert ingest.Fileset.coerce(coffea_style)["ds"] == {
        "files": {p: "Events"},
        "metadata": {"xsec_pb": 1.0},
    }
    assert ingest.Fileset.coerce({"ds": [p]})["ds"]["files"] == {p: "Events"}


# ---------------------------------------------------------------------------------------
# bad input: one test per case; each checks the message names the file and the problem
# ---------------------------------------------------------------------------------------
def _assert_bad(path, *fragments, **kwargs):
    """validate_file and open_events both raise InputFileError naming file and problem."""
    for call in (ingest.validate_file, ingest.open_events):
        with pytest.raises(InputFileError) as err:
            call(path, **kwargs)
        message = str(err.value)
        assert str(path) in message, message
        for fragment in fragments:
            assert fragment in message, message
        assert isinstance(err.value, ValueError)
        assert err.value.path == str(path)
    return message


def test_bad_missing_file(tmp_path):
    _assert_bad(tmp_path / "nope.root", "file not found")


def test_bad_zero_byte_file(tmp_path):
    path = tmp_path / "empty.root"
    path.touch()
    _assert_bad(path, "zero-byte")


def test_bad_truncated_file(hepline_file, tmp_path):
    data = Path(hepline_file).read_bytes()
    path = tmp_path / "truncated.root"
    path.write_bytes(data[: len(data) * 2 // 3])
    _assert_bad(path, "truncated", str(len(data)))


def test_bad_not_a_root_file(tmp_path):
    path = tmp_path / "junk.root"
    path.write_bytes(os.urandom(4096))
    _assert_bad(path, "not a ROOT file")


def test_bad_corrupt_structure(hepline_file, tmp_path):
    data = bytearray(Path(hepline_file).read_bytes())
    data[100:] = b"\x5a" * (len(data) - 100)  # header intact, everything after it garbage
    path = tmp_path / "garbled.root"
    path.write_bytes(bytes(data))
    _assert_bad(path, "corrupt")


def test_bad_corrupt_basket_found_by_deep_validation(hepline_file, tmp_path):
    with uproot.open(hepline_file) as f:
        branch = f["Events"]["Track_pt"]
        seek, size = int(branch.member("fBasketSeek")[0]), int(branch.member("fBasketBytes")[0])
    data = bytearray(Path(hepline_file).read_bytes())
    data[seek + size // 2 : seek + size] = b"\xff" * (size - size // 2)
    path = tmp_path / "bad_basket.root"
    path.write_bytes(bytes(data))
    ingest.validate_file(path)  # the structure is intact: the shallow check cannot see it
    with pytest.raises(InputFileError) as err:
        ingest.validate_file(path, deep=True)
    assert str(path) in str(err.value) and "Track_pt" in str(err.value)


def test_bad_wrong_tree_name(tmp_path):
    rng = np.random.default_rng(9)
    path = write_hepline_fixture(tmp_path / "tree.root", 5, rng, treename="Tree")
    _assert_bad(path, "no tree 'Events'", "Tree (TTree)")


def test_bad_missing_tree_format_unknown(tmp_path):
    path = tmp_path / "other.root"
    with uproot.recreate(path) as f:
        f.mktree("Ntuple", {"x": "float32"}).extend({"x": np.ones(3, dtype=np.float32)})
    _assert_bad(path, "no 'Events', 'CollectionTree' or 'Delphes' tree", "Ntuple")


def test_an_rntuple_events_tree_is_read(tmp_path):
    path = tmp_path / "rntuple.root"
    ids = {"run": np.ones(3, dtype=np.uint32), "luminosityBlock": np.arange(1, 4, dtype=np.uint32),
           "event": np.arange(3, dtype=np.uint64)}
    with uproot.recreate(path) as f:
        f["Events"] = ids  # a dict makes an RNTuple
    info = ingest.validate_file(path)
    assert (info.format, info.storage, info.n_entries, info.is_data) == ("nanoaod", "RNTuple", 3, True)
    assert {"run", "luminosityBlock", "event"} <= info.branches
    assert ingest.open_events(path, mode="eager").luminosityBlock.tolist() == [1, 2, 3]


def test_bad_events_is_not_a_tree(tmp_path):
    import hist

    path = tmp_path / "histogram.root"
    with uproot.recreate(path) as f:
        f["Events"] = hist.Hist(hist.axis.Regular(2, 0, 1))
    _assert_bad(path, "'Events' is a TH1D, not a TTree or an RNTuple")


def test_bad_collection_tree_that_is_not_physlite(tmp_path):
    path = tmp_path / "aod.root"
    with uproot.recreate(path) as f:
        f.mktree("CollectionTree", {"AntiKt4EMPFlowJetsAuxDyn.pt": "float32"}).extend(
            {"AntiKt4EMPFlowJetsAuxDyn.pt": np.ones(2, dtype=np.float32)})
    _assert_bad(path, "'CollectionTree' holds no Analysis* containers", "not DAOD_PHYSLITE")


def test_bad_missing_required_branch(tmp_path):
    path = write_hepline_fixture(
        tmp_path / "nojetpt.root", 5, np.random.default_rng(10), drop_branches=["Jet_pt"]
    )
    message = _assert_bad(path, "missing required branch Jet_pt", "'Events'")
    assert "Jet_eta" not in message


def test_bad_missing_required_branch_custom_list(hepline_file):
    with pytest.raises(InputFileError) as err:
        ingest.validate_file(hepline_file, ["Jet_pt", "Jet_btagScore"])
    assert str(hepline_file) in str(err.value) and "Jet_btagScore" in str(err.value)
    assert ingest.validate_file(hepline_file, ["Jet_pt"]).num_entries == N


def test_bad_nanoaod_without_event_ids(tmp_path):
    path = write_nanoaod_fixture(
        tmp_path / "noevt.root", 5, np.random.default_rng(11), drop_branches=["event"]
    )
    _assert_bad(path, "missing required branch event")


def test_bad_zero_events(tmp_path):
    path = write_hepline_fixture(tmp_path / "zero.root", 0, np.random.default_rng(12))
    _assert_bad(path, "zero events", "'Events'")


def test_bad_metadata_not_json(tmp_path):
    path = write_hepline_fixture(tmp_path / "m.root", 5, np.random.default_rng(13))
    with uproot.update(path) as f:
        del f["hepline_metadata"]
        f["hepline_metadata"] = "{not json"
    with pytest.raises(InputFileError) as err:
        ingest.read_metadata(path)
    assert str(path) in str(err.value) and "hepline_metadata" in str(err.value)


# ---------------------------------------------------------------------------------------
# skip-bad-files policy
# ---------------------------------------------------------------------------------------
@pytest.fixture
def mixed_files(hepline_sample_files, tmp_path):
    empty = tmp_path / "empty.root"
    empty.touch()
    zero = write_hepline_fixture(tmp_path / "zero.root", 0, np.random.default_rng(14), sample="sig")
    return [hepline_sample_files[0], empty, hepline_sample_files[1], zero, tmp_path / "gone.root"]


def _bad(mixed):
    return [str(mixed[i]) for i in (1, 3, 4)]


def test_validate_files_raises_on_first_bad_by_default(mixed_files):
    with pytest.raises(InputFileError) as err:
        ingest.validate_files(mixed_files)
    assert err.value.path == str(mixed_files[1])


def test_validate_files_skip_bad_reports(mixed_files, caplog):
    good, report = ingest.validate_files(mixed_files, skip_bad=True)
    assert good == [str(mixed_files[0]), str(mixed_files[2])]
    assert [r["file"] for r in report] == _bad(mixed_files)
    reasons = [r["reason"] for r in report]
    assert "zero-byte" in reasons[0] and "zero events" in reasons[1] and "not found" in reasons[2]
    assert sum("skipping bad input file" in r.message for r in caplog.records) == 3


def test_build_fileset_skip_bad(mixed_files):
    with pytest.raises(InputFileError):
        ingest.build_fileset(mixed_files)
    fs = ingest.build_fileset(mixed_files, skip_bad=True)
    assert list(fs) == ["sig"] and len(fs["sig"]["files"]) == 2
    assert [s["file"] for s in fs.skipped] == _bad(mixed_files)


def test_validate_fileset_all_bad_is_an_error(tmp_path):
    empty = tmp_path / "empty.root"
    empty.touch()
    with pytest.raises(ValueError, match="no readable input file"):
        ingest.validate_fileset({"ds": {"files": {str(empty): "Events"}}}, skip_bad=True)


def test_fileset_combines_pythia_cross_sections_of_shards(tmp_path):
    """Pythia's σ differs statistically per shard: the fileset takes the n_generated-weighted
    mean; an external σ must still agree between shards."""
    import numpy as np

    from tests.fixtures.files import write_hepline_fixture
    from analysis.io.ingest import Fileset

    rng = np.random.default_rng(7)
    a = write_hepline_fixture(tmp_path / "a.root", 10, rng, sample="s", shard=0, xsec_pb=100.0,
                              metadata={"xsec_source": "pythia", "n_generated": 300})
    b = write_hepline_fixture(tmp_path / "b.root", 10, rng, sample="s", shard=1, xsec_pb=110.0,
                              metadata={"xsec_source": "pythia", "n_generated": 100})
    fs = Fileset.from_files([a, b])
    assert fs["s"]["metadata"]["xsec_pb"] == pytest.approx((300 * 100.0 + 100 * 110.0) / 400)
    c = write_hepline_fixture(tmp_path / "c.root", 10, rng, sample="e", shard=0, xsec_pb=1.0)
    d = write_hepline_fixture(tmp_path / "d.root", 10, rng, sample="e", shard=1, xsec_pb=2.0)
    with pytest.raises(InputFileError, match="xsec_pb"):
        Fileset.from_files([c, d])


# ---------------------------------------------------------------------------------------
# validation memo and restricted forms
# ---------------------------------------------------------------------------------------
def test_validation_is_remembered_until_the_file_changes(tmp_path, monkeypatch):
    path = write_hepline_fixture(tmp_path / "memo.root", 20, np.random.default_rng(21), sample="sig")
    ingest.clear_validation_memo()
    opened = []
    real = ingest.validate_file
    monkeypatch.setattr(ingest, "validate_file", lambda *a, **k: opened.append(a[0]) or real(*a, **k))
    for _ in range(2):
        good, _ = ingest.validate_files([path])
        assert good == [str(path)]
    assert len(opened) == 1  # the second run did not open the unchanged file
    # asking for another branch is another check
    with pytest.raises(InputFileError, match="Jet_nonexistent"):
        ingest.validate_files([path], required_branches=["Jet_pt", "Jet_nonexistent"])
    # a rewrite in place (same name, new content) is validated again, and a failure is
    # never remembered
    write_hepline_fixture(path, 0, np.random.default_rng(22), sample="sig")
    for _ in range(2):
        with pytest.raises(InputFileError, match="zero events"):
            ingest.validate_files([path])
    assert len(opened) == 4


def test_form_filter_adds_what_the_schema_needs():
    asked = ["nPhoton", "Photon_pt", "Electron_pt", "genWeight"]
    strict = ingest.form_filter(asked, "hepline", strict=True)
    assert strict[:4] == asked
    assert set(strict) - set(asked) == {"run", "luminosityBlock", "event", "Electron_charge"}
    names = ingest.form_filter(asked, "hepline")
    assert set(strict) | {"Photon_eta", "Photon_phi", "Photon_mass", "Electron_mass"} <= set(names)
    assert not any(n.startswith(("Muon", "Jet")) for n in names)  # collections not asked for
    nano = ingest.form_filter(["Muon_pt"], "nanoaod", strict=True)
    assert {"Muon_charge", "Muon_mass"} <= set(nano) and "Electron_mass" not in nano
    assert ingest.form_filter(["Jet_PT"], "delphes") is None


def test_a_temporary_file_is_never_an_input(tmp_path, ttbar_file):
    """A killed job's half-written output (analysis.core.atomic's temporary name) is refused,
    whatever glob caught it, even when its content is a complete file."""
    import shutil

    tmp = tmp_path / ".ttbar_1.tmp.k2j4h8.root"
    shutil.copy(ttbar_file, tmp)
    _assert_bad(tmp, "temporary file of an unfinished write")
    with pytest.raises(InputFileError, match="temporary"):
        ingest.validate_fileset({"ttbar": [str(ttbar_file), str(tmp)]})


def test_unique_inputs_drops_repeats_and_links(tmp_path, caplog):
    a = tmp_path / "a.root"
    a.write_bytes(b"x")
    link = tmp_path / "b.root"
    link.symlink_to(a)
    with caplog.at_level("WARNING", logger="analysis.io.ingest"):
        assert ingest.unique_inputs([a, tmp_path / "." / "a.root", link, "root://host//a.root"]) == [
            str(a), "root://host//a.root"]
    assert len(caplog.records) == 2
