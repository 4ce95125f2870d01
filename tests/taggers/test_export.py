"""HDF5 export in the training-dataset-dumper layout: round trip, layout (names, MeV),
provenance, the ftag reader, the first layout."""

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
from taggers.ftag import HIT_COUNTS, grade_from_hits
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
    # IP3D gains the fourth probability of the FTAG convention (no tau hypothesis: 0)
    assert set(back.jets) == set(ds.jets) | set(extra) | {"ip3d_ptau"}
    assert np.all(back.jets.pop("ip3d_ptau") == 0)
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
    """The training-dataset-dumper layout: its names, MeV, the grade as hit counts."""
    ds, extra = decorated
    path = tmp_path / "x.h5"
    write_h5(path, ds, {"config_hash": "0123abcd"}, jet_features=extra)
    with h5py.File(path, "r") as f:
        jets, tracks = f["jets"][()], f["tracks"][()]
        assert jets.ndim == 1 and tracks.shape == (len(ds), ds.n_max)
        names = jets.dtype.names
        assert names[:8] == ("pt", "eta", "phi", "HadronConeExclTruthLabelID", "eventNumber", "n_tracks", "weight",
                             "mcEventWeight")
        assert {"ip3d_log_pb_pu", "ip3d_pb", "ip3d_pc", "ip3d_pu", "ip3d_ptau", "SV1_masssvx", "SV1_Lxy"} <= set(names)
        assert np.array_equal(jets["pt"], ds.jets["pt"].astype(np.float64) * 1000)  # MeV
        assert np.array_equal(jets["SV1_masssvx"], ds.jets["sv1_mass"].astype(np.float64) * 1000)
        assert np.array_equal(jets["HadronConeExclTruthLabelID"], ds.jets["label"])
        assert np.array_equal(jets["mcEventWeight"], ds.jets["mc_event_weight"])
        t = tracks.dtype.names
        for name in ("IP3D_signed_d0_significance", "IP3D_signed_z0_significance", "ptfrac", "dr", "d0", "z0SinTheta",
                     "d0Uncertainty", "z0SinThetaUncertainty", "deta", "dphi", "qOverP", "ftagTruthOriginLabel",
                     *HIT_COUNTS, "valid"):
            assert name in t, name
        assert not {"sd0", "z0sintheta", "pt_frac", "origin", "grade", "charge"} & set(t)
        assert tracks["valid"].dtype == bool
        v = tracks["valid"]
        assert np.array_equal(tracks["IP3D_signed_d0_significance"], ds.tracks["sd0"])
        assert np.array_equal(tracks["pt"], ds.tracks["pt"].astype(np.float64) * 1000)
        assert np.array_equal(np.sign(tracks["qOverP"][v]), ds.tracks["charge"][v])
        assert np.allclose(tracks["deta"][v], (ds.tracks["eta"] - ds.jets["eta"][:, None])[v], atol=1e-6)
        assert np.array_equal(grade_from_hits(*(tracks[h] for h in HIT_COUNTS))[v], ds.tracks["grade"][v])
        assert f.attrs["format"] == "hepline-ftag-h5/2" and json.loads(f.attrs["units"])["jets/pt"] == "MeV"
        assert f.attrs["hepline_version"] == analysis.__version__
        assert f.attrs["config_hash"] == "0123abcd"
        assert json.loads(f.attrs["dataset_meta"])["config_hash"] == ds.meta["config_hash"]


def test_ftag_reader_loads_the_file(decorated, tmp_path: Path) -> None:
    """``ftag.hdf5.H5Reader`` reads the file as a dumper file: the standard ``pt > 20000`` (MeV)
    cut keeps every jet (all have pT > 20 GeV), the track variables have the dumper's names."""
    ftag = pytest.importorskip("ftag")
    from ftag.hdf5 import H5Reader

    ds, extra = decorated
    path = tmp_path / "x.h5"
    write_h5(path, ds, jet_features=extra)
    reader = H5Reader(path, shuffle=False)
    data = reader.load({"jets": ["pt", "HadronConeExclTruthLabelID", "mcEventWeight", "ip3d_pb", "ip3d_ptau"],
                        "tracks": ["IP3D_signed_d0_significance", "z0SinTheta", "numberOfInnermostPixelLayerHits",
                                   "valid"]},
                       cuts=ftag.Cuts.from_list(["pt > 20000"]))
    assert len(data["jets"]) == len(ds) and np.all(ds.jets["pt"] > 20)
    assert np.array_equal(data["tracks"]["valid"], ds.tracks["valid"])
    assert np.array_equal(data["jets"]["HadronConeExclTruthLabelID"], ds.jets["label"])


def test_first_layout_is_still_read(decorated, tmp_path: Path) -> None:
    """Files of ``hepline-ftag-h5/1`` (GeV, hepline's track names) read as before."""
    from taggers.ftag import _structured  # the writer of the arrays

    ds, _ = decorated
    path = tmp_path / "v1.h5"
    jets = {("HadronConeExclTruthLabelID" if k == "label" else "eventNumber" if k == "event" else k): v
            for k, v in ds.jets.items()}
    with h5py.File(path, "w") as f:
        f["jets"] = _structured(jets, (len(ds),))
        f["tracks"] = _structured(ds.tracks, (len(ds), ds.n_max))
        f.attrs["format"] = "hepline-ftag-h5/1"
        f.attrs["n_max"] = ds.n_max
    back = read_h5(path)
    for name, arr in ds.jets.items():
        assert np.array_equal(back.jets[name], arr), name
    for name, arr in ds.tracks.items():
        assert np.array_equal(back.tracks[name], arr), name


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
    # a dumper file not written by hepline: prepare reads those (with the selection)
    with h5py.File(tmp_path / "dumper.h5", "w") as f:
        f["jets"] = np.zeros(3, dtype=[("pt", "f4")])
        f["tracks"] = np.zeros((3, 2), dtype=[("valid", "?")])
    with pytest.raises(InputFileError, match="dumper.h5: format attribute 'missing' is not 'hepline-ftag-h5/2'"):
        read_h5(tmp_path / "dumper.h5")
