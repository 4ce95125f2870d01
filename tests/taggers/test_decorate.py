"""taggers.decorate and taggers.models: the decorated ntuple, the in-memory API, jets without
tracks, bad inputs, mismatched model sets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from analysis.cli import main
from analysis.core.config import load_config
from analysis.core.config.taggers import TaggersConfig
from analysis.core.errors import ModelMismatchError, NonFiniteInputError
from analysis.io.ingest import read_arrays
from taggers import TAGGERS
from taggers.decorate import DECORATION_FIELDS, DecorationSummary, decorate, decorate_events, decorate_file
from taggers.features import load_dataset
from taggers.models import MissingModelError, ip_discriminant, load_models
from tests.taggers.conftest import displaced_track, jet_record, make_events
from tests.taggers.test_pipeline import small_pipeline
from tests.taggers.test_prepare import first_track_of_a_taggable_jet

SENTINEL = -99.0


@pytest.fixture(scope="module")
def pipeline(tagger_ttbar_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return small_pipeline(tagger_ttbar_file, tmp_path_factory)


@pytest.fixture(scope="module")
def models(pipeline):
    return load_models(pipeline["models"], load_config(pipeline["config"]).taggers)


def _flat(a) -> np.ndarray:
    return np.asarray(ak.to_numpy(ak.flatten(a, axis=None)))


def test_original_content_is_copied_unchanged(pipeline) -> None:
    with uproot.open(pipeline["input"]) as fin, uproot.open(pipeline["decorated"]) as fout:
        ti, to = fin["Events"], fout["Events"]
        assert to.num_entries == ti.num_entries > 0
        names_in = [b.name for b in ti.branches]
        names_out = [b.name for b in to.branches]
        assert [n for n in names_out if n in names_in] == names_in  # same order
        added = [n for n in names_out if n not in names_in]
        assert added == [f"Jet_{f}" for f in DECORATION_FIELDS]
        for name in names_in:
            assert to[name].typename == ti[name].typename, name
            a, b = ti[name].array(), to[name].array()
            if a.ndim > 1:
                assert ak.all(ak.num(a) == ak.num(b)), name
            assert np.array_equal(_flat(a), _flat(b)), name
        for name in added:
            assert to[name].typename == "float[]", name
        runs_in, runs_out = fin["Runs"].arrays(library="np"), fout["Runs"].arrays(library="np")
        assert runs_in.keys() == runs_out.keys()
        for k in runs_in:
            assert runs_out[k].dtype == runs_in[k].dtype and np.array_equal(runs_out[k], runs_in[k])
        meta_in = json.loads(str(fin["hepline_metadata"]))
        meta_out = json.loads(str(fout["hepline_metadata"]))
    assert {k: v for k, v in meta_out.items() if k != "taggers"} == meta_in
    prov = meta_out["taggers"]
    assert prov["sentinel"] == SENTINEL and prov["dataset_id"]
    assert set(prov["files"]) == {"rnnip", "mv2", "dl1", "ip2d", "ip3d"}
    assert all(len(f["sha256"]) == 64 for f in prov["files"].values())
    assert prov["fc"]["mv2"] is None and prov["fc"]["rnnip"] == pytest.approx(0.07)


def test_taggable_jets_finite_others_sentinel(pipeline, cfg: TaggersConfig) -> None:
    arrays = uproot.open(pipeline["decorated"])["Events"].arrays(
        ["Jet_pt", "Jet_eta", *(f"Jet_{f}" for f in DECORATION_FIELDS)]
    )
    pt, eta = _flat(arrays["Jet_pt"]), _flat(arrays["Jet_eta"])
    taggable = (pt > cfg.jets.pt_min_gev) & (np.abs(eta) < cfg.jets.abs_eta_max)
    assert taggable.sum() == len(load_dataset([str(pipeline["input"])], cfg))
    assert (~taggable).sum() > 0  # the file has jets outside the acceptance
    for f in DECORATION_FIELDS:
        v = _flat(arrays[f"Jet_{f}"])
        assert v.dtype == np.float32
        assert np.all(np.isfinite(v)), f
        assert np.all(v[~taggable] == SENTINEL), f
        assert np.all(v[taggable] > SENTINEL), f
    probs = np.stack(
        [_flat(arrays[f"Jet_rnnip_{p}"])[taggable] for p in ("pb", "pc", "pu", "ptau")], 1
    )
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5) and np.all(probs >= 0)
    # the discriminants differ between taggers (no copy-paste of one branch)
    vals = [_flat(arrays[f"Jet_btag_{t}"])[taggable] for t in TAGGERS]
    assert len({v.tobytes() for v in vals}) == len(TAGGERS)


def test_decorated_branches_reproduce_the_working_points(pipeline) -> None:
    """Cutting the decorated branches of the test-split b jets at the WP file's cuts gives
    exactly the b efficiencies the evaluation measured: decoration and evaluation agree."""
    wp = json.loads((pipeline["out"] / "working_points.json").read_text())
    t = uproot.open(pipeline["decorated"])["Events"]
    event = t["event"].array(library="np")
    arrays = t.arrays(
        ["Jet_hadronConeExclTruthLabelID", *(e["variable"] for e in wp["taggers"].values())]
    )
    test_events = event % 10 == 9
    label = _flat(arrays["Jet_hadronConeExclTruthLabelID"][test_events])
    for tagger, entry in wp["taggers"].items():
        d = _flat(arrays[entry["variable"]][test_events])
        b = (label == 5) & (d > SENTINEL)
        assert b.sum() > 30
        for name, e in entry["working_points"].items():
            assert np.mean(d[b] > e["cut"]) == pytest.approx(
                e["b_efficiency_measured"], abs=1e-9
            ), (tagger, name)


def test_in_memory_api_matches_the_file(pipeline, models) -> None:
    events = read_arrays(pipeline["input"], how="zip")[:150]
    meta_det = json.loads(str(uproot.open(pipeline["input"])["hepline_metadata"]))["detector"]
    out = decorate_events(events, models, detector=meta_det)
    assert set(out) == {f"Jet_{f}" for f in DECORATION_FIELDS}
    dec = uproot.open(pipeline["decorated"])["Events"].arrays(list(out), entry_stop=150)
    for name, arr in out.items():
        assert ak.all(ak.num(arr) == ak.num(events["Jet"])), name
        assert np.allclose(_flat(arr), _flat(dec[name]), rtol=1e-5, atol=1e-5), name


def test_jets_without_tracks_get_finite_values(models) -> None:
    """A taggable jet without tracks, one with displaced tracks, and two outside the
    acceptance (low pT, forward)."""
    trk = [
        displaced_track((2.0, 1.0, 0.5), 8.0, 0.3, 0.45, +1, jet_idx=1),
        displaced_track((2.0, 1.0, 0.5), 5.0, 0.25, 0.5, -1, jet_idx=1),
        displaced_track((0.0, 0.0, 0.0), 3.0, 0.35, 0.4, +1, jet_idx=1),
    ]
    events = make_events(
        [
            {
                "event": 19,
                "Jet": [
                    jet_record(60.0, -1.0, 2.0, 0),
                    jet_record(80.0, 0.3, 0.45, 5),
                    jet_record(12.0, 0.0, 0.0, 0),
                ],
                "Track": trk,
            },
            {"event": 29, "Jet": [jet_record(40.0, 3.2, 1.0, 0)], "Track": []},
        ]
    )
    out = decorate_events(events, models)
    for name, arr in out.items():
        assert ak.to_list(ak.num(arr)) == [3, 1]
        v = ak.to_list(arr)
        assert np.all(np.isfinite(v[0][:2])) and v[0][0] > SENTINEL and v[0][1] > SENTINEL, name
        assert v[0][2] == SENTINEL and v[1][0] == SENTINEL, name
    # no tracks: equal IP likelihoods -> D = ln(1/3 / (1/3)) = 0
    assert ak.to_list(out["Jet_btag_ip3d"])[0][0] == pytest.approx(0.0, abs=1e-6)
    assert ak.to_list(out["Jet_btag_ip2d"])[0][0] == pytest.approx(0.0, abs=1e-6)
    # the displaced-track b jet is more b-like than the trackless jet for IP3D
    assert ak.to_list(out["Jet_btag_ip3d"])[0][1] > 0
    # only untaggable jets, and no event at all: sentinels / empty, without running the models
    only_forward = decorate_events(events[1:], models)
    assert ak.to_list(only_forward["Jet_btag_dl1"]) == [[SENTINEL]]
    assert all(len(v) == 0 for v in decorate_events(events[:0], models).values())


def test_ip_discriminant_exact() -> None:
    lb, lc = np.array([3.0, -2.0, 40.0]), np.array([1.0, 0.5, 39.0])
    fc = 0.07
    expected = np.log(np.exp(lb) / (fc * np.exp(lc) + (1 - fc)))
    assert np.allclose(ip_discriminant(lb, lc, fc), expected)
    assert np.array_equal(ip_discriminant(lb, lc, 0.0), lb)


# --------------------------------------------------------------------------- bad inputs


def test_nan_track_input_raises(pipeline, models) -> None:
    events = read_arrays(pipeline["input"], how="zip")[:50]
    d0 = _flat(events["Track"]["d0"]).copy()
    d0[first_track_of_a_taggable_jet(events["Jet"], events["Track"])] = np.nan
    bad = ak.with_field(
        events,
        ak.with_field(events["Track"], ak.unflatten(d0, ak.num(events["Track"])), "d0"),
        "Track",
    )
    with pytest.raises(NonFiniteInputError, match="Track_d0"):
        decorate_events(bad, models, source="bad.root")


def test_missing_model(pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mdir = tmp_path / "models"
    shutil.copytree(pipeline["models"], mdir)
    (mdir / "mv2.json").unlink()
    with pytest.raises(MissingModelError, match="mv2.json"):
        load_models(mdir, TaggersConfig.default(), ipxd_dir=pipeline["ipxd"])
    load_models(mdir, TaggersConfig.default(), ipxd_dir=pipeline["ipxd"], taggers=["rnnip"])  # MV2 not needed
    assert main(["taggers", "decorate", "--config", str(pipeline["config"]), "--models", str(mdir),
                 "--ipxd", str(pipeline["ipxd"]), "--output", str(tmp_path / "x.root"), str(pipeline["input"])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hepline: error: the tagger model set is incomplete") and "mv2.json" in err
    assert not (tmp_path / "x.root").exists()


def test_mismatched_model_set(pipeline, tmp_path: Path) -> None:
    cfg = load_config(pipeline["config"]).taggers
    mdir, idir = tmp_path / "models", tmp_path / "ipxd"
    shutil.copytree(pipeline["models"], mdir)
    shutil.copytree(pipeline["ipxd"], idir)
    # templates swapped: ip3d.npz in place of ip2d.npz
    shutil.copy(idir / "ip3d.npz", idir / "ip2d.npz")
    with pytest.raises(ModelMismatchError, match="ip2d"):
        load_models(mdir, cfg, ipxd_dir=idir)
    shutil.copy(pipeline["ipxd"] / "ip2d.npz", idir / "ip2d.npz")
    load_models(mdir, cfg, ipxd_dir=idir)  # restored: fine
    # DL1 trained on the outputs of another RNNIP
    side = json.loads((mdir / "dl1.metrics.json").read_text())
    side["rnnip_sha256"] = "0" * 64
    (mdir / "dl1.metrics.json").write_text(json.dumps(side))
    with pytest.raises(ModelMismatchError, match="another RNNIP"):
        load_models(mdir, cfg, ipxd_dir=idir)
    shutil.copy(pipeline["models"] / "dl1.metrics.json", mdir / "dl1.metrics.json")
    # a config whose track selection differs from the one the models were trained on
    other = cfg.replace(tracks=cfg.tracks.replace(pt_min_gev=2.0))
    with pytest.raises(ModelMismatchError, match="taggers.jets/tracks/sv1"):
        load_models(mdir, other, ipxd_dir=idir)
    other = cfg.replace(tracks=cfg.tracks.replace(n_max=10))
    with pytest.raises(ModelMismatchError, match="n_max"):
        load_models(mdir, other, ipxd_dir=idir)


def test_decorated_output_is_atomic(pipeline, models, tmp_path: Path) -> None:
    """A failure while decorating leaves no output file (and no temporary file)."""
    out = tmp_path / "dec" / "x.root"

    class Boom(RuntimeError):
        pass

    def broken(*args, **kwargs):
        raise Boom("stop")

    orig = models.predict
    models.predict = broken
    try:
        with pytest.raises(Boom):
            decorate_file(pipeline["input"], out, models, load_config(pipeline["config"]))
    finally:
        models.predict = orig
    assert not out.exists() and not list(out.parent.glob("*"))


def test_onnx_rnnip_backend_agrees_with_torch(pipeline, models) -> None:
    onnx_models = load_models(
        pipeline["models"], load_config(pipeline["config"]).taggers, rnnip_backend="onnx"
    )
    events = read_arrays(pipeline["input"], how="zip")[:100]
    a = decorate_events(events, models)
    b = decorate_events(events, onnx_models)
    for name in ("Jet_rnnip_pb", "Jet_btag_rnnip", "Jet_btag_dl1"):
        assert np.allclose(_flat(a[name]), _flat(b[name]), atol=1e-4), name


def test_a_subset_of_taggers(pipeline, models, tmp_path: Path) -> None:
    """Decoration with some taggers only: their branches, the same values as with all."""
    cfg = load_config(pipeline["config"])
    events = read_arrays(pipeline["input"], how="zip")[:100]
    full = decorate_events(events, models)
    some = load_models(pipeline["models"], cfg.taggers, taggers=("ip3d", "dl1"))
    assert some.taggers == ("ip3d", "dl1") and some.mv2 is None and some.rnnip is not None  # DL1 reads RNNIP
    out = decorate_events(events, some)
    assert list(out) == ["Jet_btag_ip3d", "Jet_btag_dl1"]
    for name, arr in out.items():
        assert np.array_equal(_flat(arr), _flat(full[name])), name
    summary = decorate(cfg, pipeline["input"], tmp_path / "ip3d.root", pipeline["models"], taggers=["ip3d"])
    assert isinstance(summary, DecorationSummary) and summary.taggable_jets > 0 and summary.events > 0
    with uproot.open(tmp_path / "ip3d.root") as f:
        branches = [b.name for b in f["Events"].branches]
        meta = json.loads(str(f["hepline_metadata"]))
    assert "Jet_btag_ip3d" in branches and "Jet_btag_dl1" not in branches and "Jet_rnnip_pb" not in branches
    assert meta["taggers"]["branches"] == ["Jet_btag_ip3d"] and set(meta["taggers"]["files"]) == {"ip3d"}
