"""taggers.prepare: splits, reweighting, templates, high-level columns, provenance, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from analysis.core.config import load_config
from analysis.core.errors import NonFiniteInputError
from analysis.core.provenance import file_sha256
from analysis.generation.writer import branch_types, collection_groups, event_block
from taggers.algorithms.ipxd import IPTemplates, evaluate
from taggers.dataset import EmptySplitError
from taggers.export import DatasetProvenance, read_split
from taggers.features import load_dataset
from taggers.prepare import PrepareResult, prepare
from tests.taggers.test_pipeline import small_pipeline, write_config

SPLITS = ("train", "validation", "test")


def first_track_of_a_taggable_jet(jets, tracks) -> int:
    """Flat index of the first track associated with a jet of pT > 20 GeV and |eta| < 2.5."""
    flat = 0
    for jpt, jeta, tidx in zip(
        ak.to_list(jets["pt"]), ak.to_list(jets["eta"]), ak.to_list(tracks["jetIdx"])
    ):
        for k, j in enumerate(tidx):
            if j >= 0 and jpt[j] > 20 and abs(jeta[j]) < 2.5:
                return flat + k
        flat += len(tidx)
    raise AssertionError("no track of a taggable jet")


@pytest.fixture(scope="module")
def pipeline(tagger_ttbar_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return small_pipeline(tagger_ttbar_file, tmp_path_factory)


@pytest.fixture(scope="module")
def splits(pipeline) -> dict:
    return {s: read_split(pipeline["out"] / f"{s}.h5") for s in SPLITS}


def test_event_number_split_and_weights(pipeline, splits, cfg) -> None:
    residues = {"train": set(range(8)), "validation": {8}, "test": {9}}
    total = 0
    for name, ds in splits.items():
        assert len(ds) > 0
        assert set((ds.jets["event"] % 10).tolist()) <= residues[name], name
        total += len(ds)
    assert total == len(load_dataset([str(pipeline["input"])], cfg))
    assert np.all(splits["test"].jets["weight"] == 1.0)  # natural spectra
    assert not np.all(splits["train"].jets["weight"] == 1.0)  # (pT, |eta|) reweighted
    light = splits["train"].jets["label"] == 0
    assert splits["train"].jets["weight"][light].sum() == pytest.approx(light.sum(), rel=1e-4)
    summary = json.loads((pipeline["out"] / "prepare.json").read_text())
    for name, ds in splits.items():
        counts = summary["splits"][name]
        assert counts["jets"] == len(ds)
        assert sum(counts[f]["jets"] for f in ("b", "c", "light", "tau")) == len(ds)
        assert counts["b"]["jets"] == int((ds.jets["label"] == 5).sum())


def test_high_level_columns(pipeline, splits) -> None:
    """abs_eta, IP2D/IP3D from the saved templates (fitted on train only) and SV1 columns."""
    tpl = {k: IPTemplates.load(pipeline["ipxd"] / f"{k}.npz") for k in ("ip2d", "ip3d")}
    for name, ds in splits.items():
        assert np.array_equal(ds.jets["abs_eta"], np.abs(ds.jets["eta"]))
        for t in tpl.values():
            for col, v in evaluate(t, ds).items():
                assert np.array_equal(ds.jets[col], v), (name, col)
        for col in (
            "sv1_mass",
            "sv1_efrac",
            "sv1_n2t",
            "sv1_ntrk",
            "sv1_lxy",
            "sv1_l3d",
            "sv1_sig3d",
            "sv1_dr",
        ):
            assert np.all(np.isfinite(ds.jets[col])), (name, col)
        no_trk = ds.jets["n_tracks"] == 0
        if no_trk.any():
            assert np.all(ds.jets["ip3d_log_pb_pu"][no_trk] == 0)
    test = splits["test"]
    b, light = test.jets["label"] == 5, test.jets["label"] == 0
    assert np.median(test.jets["ip3d_log_pb_pu"][b]) > np.median(test.jets["ip3d_log_pb_pu"][light])
    assert test.jets["sv1_has_sv"][b].mean() > 3 * test.jets["sv1_has_sv"][light].mean()


def test_provenance(pipeline, splits) -> None:
    provs = [ds.meta["h5_metadata"]["dataset"] for ds in splits.values()]
    assert provs[0] == provs[1] == provs[2]
    for k in ("ip2d", "ip3d"):
        assert provs[0]["ipxd_sha256"][k] == file_sha256(pipeline["ipxd"] / f"{k}.npz")
    assert [ds.meta["h5_metadata"]["split"] for ds in splits.values()] == list(SPLITS)
    assert splits["test"].meta["h5_metadata"]["reweighted"] is False
    assert splits["train"].meta["h5_metadata"]["reweighted"] is True


def test_empty_split_is_an_error(pipeline, tmp_path: Path) -> None:
    """The fixture's event numbers are 1..400: event % 1000 == 999 selects nothing."""
    cfg = load_config(
        write_config(
            tmp_path / "c.yaml",
            {
                "taggers": {
                    "split": {
                        "modulus": 1000,
                        "train": list(range(200)),
                        "validation": list(range(200, 999)),
                        "test": [999],
                    }
                }
            },
        )
    )
    with pytest.raises(EmptySplitError, match="'test'"):
        prepare([pipeline["input"]], cfg, tmp_path / "out")
    assert not (tmp_path / "out" / "test.h5").exists()
    with pytest.raises(ValueError, match="no input files"):
        prepare([], cfg, tmp_path / "out")


def test_nan_in_the_ntuple_is_an_error(pipeline, tmp_path: Path) -> None:
    """A copy of the ntuple with one NaN Track_z0 on a track of a jet: prepare names the file,
    the branch and the event."""
    src = pipeline["input"]
    bad = tmp_path / "ttbar_nan.root"
    with uproot.open(src) as fin, uproot.recreate(bad) as fout:
        tree = fin["Events"]
        block = event_block(tree.arrays(), collection_groups(tree))
        z0 = np.asarray(ak.to_numpy(ak.flatten(block["Track"]["z0"]))).copy()
        z0[first_track_of_a_taggable_jet(block["Jet"], block["Track"])] = np.nan
        block["Track"] = ak.with_field(
            block["Track"], ak.unflatten(z0, ak.num(block["Track"])), "z0"
        )
        fout.mktree("Events", branch_types(block)).extend(block)
        fout["hepline_metadata"] = str(fin["hepline_metadata"])
    cfg = load_config(pipeline["config"])
    with pytest.raises(NonFiniteInputError, match=r"ttbar_nan\.root: Track_z0 holds 1 NaN/inf value\(s\), the first in event"):
        prepare([bad], cfg, tmp_path / "out")


def test_prepare_result_is_what_was_written(pipeline, splits, tmp_path: Path) -> None:
    """The returned :class:`PrepareResult` holds the content of prepare.json, the splits as
    written and the same dataset provenance as an earlier run on the same input and config."""
    res = prepare([pipeline["input"]], load_config(pipeline["config"]), tmp_path)
    assert isinstance(res, PrepareResult)
    assert json.loads((tmp_path / "prepare.json").read_text()) == json.loads(json.dumps(res.to_dict()))
    earlier = DatasetProvenance.of(splits["test"], pipeline["out"] / "test.h5")
    assert res.dataset == earlier and res.dataset.dataset_id
    assert res.counts["test"].jets == len(splits["test"]) == len(res.splits.test)
    assert res.counts["train"].flavours["b"].jets == int((splits["train"].jets["label"] == 5).sum())
    for name, ds in splits.items():
        mem = getattr(res.splits, name)
        # the files add the fourth probability of IP2D/IP3D (no tau hypothesis: 0)
        assert set(ds.jets) == set(mem.jets) | {"ip2d_ptau", "ip3d_ptau"}
        assert all(np.all(ds.jets[f"{t}_ptau"] == 0) for t in ("ip2d", "ip3d"))
        for k, v in mem.jets.items():
            assert v.dtype == ds.jets[k].dtype and np.array_equal(v, ds.jets[k]), (name, k)
        assert set(ds.tracks) == set(mem.tracks)
        for k, v in ds.tracks.items():
            assert v.dtype == mem.tracks[k].dtype and np.array_equal(mem.tracks[k], v), (name, k)
    assert res.files["test"] == tmp_path / "test.h5" and res.templates["ip3d"].kind == "ip3d"
