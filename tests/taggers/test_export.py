"""HDF5 export in the training-dataset-dumper layout: round trip, layout, provenance."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

import analysis
from analysis.core.config.taggers import TaggersConfig
from analysis.core.errors import InputFileError
from taggers.export import read_h5, write_h5
from taggers.features import TaggingDataset
from taggers.algorithms.ipxd import evaluate, fit_templates
from taggers.algorithms.sv1 import sv1


@pytest.fixture(scope="module")
def decorated(ttbar_splits, cfg: TaggersConfig) -> tuple[TaggingDataset, dict[str, np.ndarray]]:
    """The test split with SV1 outputs as dataset fields and IP3D outputs as extra features."""
    test = ttbar_splits.test
    ip3d = evaluate(fit_templates(ttbar_splits.train, cfg, "ip3d"), test)
    return test.with_jet_fields(sv1(test, cfg.sv1)), ip3d


def test_round_trip(decorated, tmp_path: Path) -> None:
    ds, extra = decorated
    path = tmp_path / "out" / "ttbar_test.h5"
    write_h5(
        path, ds, {"config_hash": "0123abcd", "split": "test", "n": np.int64(3)}, jet_features=extra
    )
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    back = read_h5(path)
    assert len(back) == len(ds) > 0 and back.n_max == ds.n_max
    assert set(back.jets) == set(ds.jets) | set(extra)
    for name, arr in {**ds.jets, **extra}.items():
        assert back.jets[name].dtype == arr.dtype, name
        assert np.array_equal(back.jets[name], arr), name
    assert set(back.tracks) == set(ds.tracks)
    for name, arr in ds.tracks.items():
        assert back.tracks[name].dtype == arr.dtype and back.tracks[name].shape == arr.shape, name
        assert np.array_equal(back.tracks[name], arr), name
    assert back.meta["h5_metadata"]["split"] == "test"
    assert back.meta["detector"] == ds.meta["detector"]


def test_layout_and_provenance(decorated, tmp_path: Path) -> None:
    ds, extra = decorated
    path = tmp_path / "x.h5"
    write_h5(path, ds, {"config_hash": "0123abcd"}, jet_features=extra)
    with h5py.File(path, "r") as f:
        jets, tracks = f["jets"], f["tracks"]
        assert jets.ndim == 1 and tracks.shape == (len(ds), ds.n_max)
        names = jets.dtype.names
        assert names[:7] == (
            "pt",
            "eta",
            "phi",
            "HadronConeExclTruthLabelID",
            "eventNumber",
            "n_tracks",
            "weight",
        )
        assert "ip3d_log_pb_pu" in names and "sv1_mass" in names
        assert "valid" in tracks.dtype.names and tracks["valid"].dtype == bool
        assert np.array_equal(jets["HadronConeExclTruthLabelID"], ds.jets["label"])
        assert f.attrs["hepline_version"] == analysis.__version__
        assert f.attrs["config_hash"] == "0123abcd"
        assert json.loads(f.attrs["dataset_meta"])["config_hash"] == ds.meta["config_hash"]


def test_empty_dataset_and_bad_input(ttbar_splits, tmp_path: Path) -> None:
    empty = ttbar_splits.test.subset(np.zeros(len(ttbar_splits.test), bool))
    write_h5(tmp_path / "empty.h5", empty)
    back = read_h5(tmp_path / "empty.h5")
    assert len(back) == 0 and back.tracks["valid"].shape == (0, empty.n_max)
    with pytest.raises(ValueError, match="rows"):
        write_h5(tmp_path / "bad.h5", ttbar_splits.test, jet_features={"x": np.zeros(1)})
    assert not (tmp_path / "bad.h5").exists()
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["jets"] = np.zeros(3)
    with pytest.raises(InputFileError, match="other.h5: no 'tracks' dataset"):
        read_h5(tmp_path / "other.h5")
