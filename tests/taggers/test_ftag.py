"""The FTAG conventions at the edge (taggers.ftag): grades from hit counts, dumper-format files
as an input of ``taggers prepare`` (the same dataset as the ntuples give), the bad inputs, and
the whole chain on a file of ``ftag.get_mock_file()``."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from analysis.cli import main
from analysis.core.config.taggers import TaggersConfig
from analysis.core.errors import InputFileError
from taggers.features import build_dataset, load_dataset
from taggers.ftag import (
    HIT_COUNTS,
    MEV_PER_GEV,
    REQUIRED_TRACK_VARIABLES,
    grade_from_hits,
    hits_from_grade,
    is_hdf5,
    load_inputs,
    read_dumper,
)
from tests.fixtures.taggers import write_dumper_file
from tests.taggers.conftest import jet_record, make_events
from tests.taggers.test_pipeline import write_config

ftag = pytest.importorskip("ftag")

#: the mock's tracks are uniform noise in [0, 1) (qOverP in MeV⁻¹: momenta of MeV) and d0 in
#: [0, 5) mm; these cuts let some of them through, the rest of the selection is the default
MOCK_TRACKS = {"pt_min_gev": 0.0, "abs_d0_max_mm": 2.0}


def mock_file(path: Path, n_jets: int = 1000) -> Path:
    """A file of ``ftag.get_mock_file`` (the dumper's names, MeV, a random ``valid`` mask)."""
    fname, f = ftag.get_mock_file(num_jets=n_jets, fname=str(path))
    f.close()
    return Path(fname)


def rewrite(path: Path, dataset: str, change) -> None:
    """Replace ``dataset`` of ``path`` by ``change(array)`` (a structured array)."""
    with h5py.File(path, "r+") as f:
        arr = f[dataset][()]
        del f[dataset]
        f.create_dataset(dataset, data=change(arr))


def drop_field(arr: np.ndarray, name: str) -> np.ndarray:
    names = [n for n in arr.dtype.names if n != name]
    out = np.empty(arr.shape, dtype=[(n, arr.dtype[n]) for n in names])
    for n in names:
        out[n] = arr[n]
    return out


def retype_field(arr: np.ndarray, name: str, dtype: str) -> np.ndarray:
    out = np.empty(arr.shape, dtype=[(n, dtype if n == name else arr.dtype[n]) for n in arr.dtype.names])
    for n in arr.dtype.names:
        out[n] = arr[n]
    return out


# --------------------------------------------------------------------------- grades


def test_grades_from_hit_counts() -> None:
    # (innermost, next-to-innermost, pixel shared, SCT shared) -> grade, by precedence
    table = {(1, 1, 0, 0): 0, (1, 1, 1, 0): 1, (1, 1, 0, 2): 1, (0, 1, 0, 0): 2, (0, 1, 1, 0): 2,
             (0, 0, 0, 0): 3, (0, 0, 3, 1): 3, (2, 0, 0, 0): 0}
    hits = np.array(list(table), dtype=np.uint8).T
    assert grade_from_hits(*hits).tolist() == list(table.values())
    grade = np.array([[0, 1, 2, 3, -1]])
    valid = np.array([[True, True, True, True, False]])
    enc = hits_from_grade(grade, valid)
    assert set(enc) == set(HIT_COUNTS) and all(v.dtype == np.uint8 for v in enc.values())
    assert grade_from_hits(*(enc[h] for h in HIT_COUNTS))[valid].tolist() == [0, 1, 2, 3]
    assert all(v[~valid].sum() == 0 for v in enc.values())  # padding: no hits
    with pytest.raises(ValueError, match="grade 5"):
        hits_from_grade(np.array([5]), np.array([True]))


# --------------------------------------------------------------------------- the ntuple and the dumper path


def test_dumper_file_gives_the_dataset_of_the_ntuple(tagger_ttbar_file: Path, cfg: TaggersConfig,
                                                     tmp_path: Path) -> None:
    """Every jet with all its tracks, unselected and unsorted, as the dumper writes them: the
    selection, the |sd0| ordering and the padding of the dumper path reproduce the ntuple
    path exactly (every field, value and dtype)."""
    path = write_dumper_file([tagger_ttbar_file], tmp_path / "ttbar.h5")
    assert is_hdf5(path) and not is_hdf5(tagger_ttbar_file)
    with h5py.File(path) as f:
        assert f["tracks"].shape[1] > cfg.tracks.n_max  # more tracks than kept: the selection works
        raw_pt = f["jets"]["pt"]
    ref = load_dataset([str(tagger_ttbar_file)], cfg)
    got = read_dumper(path, cfg)
    assert np.median(raw_pt) > 1000 * np.median(ref.jets["pt"]) / 2  # the file holds MeV
    assert len(got) == len(ref) > 1000 and got.n_max == ref.n_max
    assert set(got.jets) == set(ref.jets) and set(got.tracks) == set(ref.tracks)
    for part, name in [("jets", k) for k in ref.jets] + [("tracks", k) for k in ref.tracks]:
        a, b = getattr(ref, part)[name], getattr(got, part)[name]
        assert a.dtype == b.dtype and np.array_equal(a, b), (part, name)
    assert np.any(ref.jets["mc_event_weight"] != 0) and (ref.jets["n_tracks_selected"] > ref.n_max).any()
    assert got.meta["detector"] == ref.meta["detector"]  # for SV1
    # prepare's reader takes both kinds of input, in the order given
    both = load_inputs([path, str(tagger_ttbar_file)], cfg)
    assert len(both) == 2 * len(ref) and np.array_equal(both.tracks["sd0"][len(ref):], ref.tracks["sd0"])


def test_mock_file_is_read_with_the_selection_and_ordering(tmp_path: Path) -> None:
    path = mock_file(tmp_path / "mock.h5", 400)
    cfg = TaggersConfig.validated({"tracks": MOCK_TRACKS})
    with h5py.File(path) as f:
        jets, tracks = f["jets"][()], f["tracks"][()]
    ds = read_dumper(path, cfg)
    pt_gev = jets["pt"].astype(np.float64) / MEV_PER_GEV
    rows = np.flatnonzero((pt_gev > 20.0) & (np.abs(jets["eta"]) < 2.5))
    assert len(ds) == rows.size > 0
    assert np.array_equal(ds.jets["event"], rows.astype(np.uint64))  # no eventNumber: the row
    assert np.array_equal(ds.jets["pt"], pt_gev[rows].astype(np.float32))
    assert np.array_equal(ds.jets["label"], jets["HadronConeExclTruthLabelID"][rows])
    assert np.all(ds.jets["weight"] == 1) and np.all(ds.jets["mc_event_weight"] == 1)
    t = tracks[rows]
    eta = jets["eta"][rows][:, None].astype(np.float64) + t["deta"]
    pt = 1.0 / np.abs(t["qOverP"].astype(np.float64)) / MEV_PER_GEV / np.cosh(eta)
    sel = t["valid"] & (np.abs(t["d0"]) < MOCK_TRACKS["abs_d0_max_mm"]) & (pt > 0)
    n_sel = sel.sum(axis=1)
    assert np.array_equal(ds.jets["n_tracks_selected"], n_sel)
    assert np.array_equal(ds.jets["n_tracks"], np.minimum(n_sel, cfg.tracks.n_max))
    valid = ds.tracks["valid"]
    assert np.array_equal(valid, np.arange(ds.n_max)[None, :] < ds.jets["n_tracks"][:, None])  # valid first
    a = np.abs(ds.tracks["sd0"])
    assert np.all(np.diff(np.where(valid, a, -1.0), axis=1)[valid[:, 1:]] <= 0)  # largest |sd0| first
    assert np.all(ds.tracks["grade"][valid] == 3)  # the mock's innermost-layer hit counts are 0
    assert np.all(ds.tracks["grade"][~valid] == -1) and np.all(ds.tracks["sd0"][~valid] == 0)
    # one jet by hand: its selected tracks, sorted by |sd0| (ties in file order)
    i = int(np.argmax(n_sel))
    keep = np.flatnonzero(sel[i])
    order = keep[np.argsort(-np.abs(t["IP3D_signed_d0_significance"][i, keep]), kind="stable")][: cfg.tracks.n_max]
    k = order.size
    assert np.array_equal(ds.tracks["sd0"][i, :k], t["IP3D_signed_d0_significance"][i, order])
    assert np.array_equal(ds.tracks["z0sintheta"][i, :k], t["z0SinTheta"][i, order])
    assert np.allclose(ds.tracks["dr"][i, :k], np.hypot(t["deta"][i, order], t["dphi"][i, order]), rtol=1e-6)
    assert np.allclose(ds.tracks["pt_frac"][i, :k], pt[i, order] / pt_gev[rows][i], rtol=1e-5)
    assert np.array_equal(ds.tracks["charge"][i, :k], np.sign(t["qOverP"][i, order]).astype(np.int8))


# --------------------------------------------------------------------------- bad input


def test_bad_dumper_inputs_name_the_file_and_the_variable(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    cfg_path = write_config(tmp_path / "config.yaml", {"taggers": {"tracks": MOCK_TRACKS}})
    cfg = TaggersConfig.validated({"tracks": MOCK_TRACKS})
    cases = {
        "missing.h5": ("tracks", lambda a: drop_field(a, "IP3D_signed_d0_significance"),
                       "tracks/IP3D_signed_d0_significance is missing"),
        "gev.h5": ("jets", lambda a: _scaled_pt(a, 1.0 / MEV_PER_GEV),
                   "jets/pt: median jet pT 0.* GeV after the MeV → GeV conversion, below 1 GeV: GeV read as MeV"),
        "kev.h5": ("jets", lambda a: _scaled_pt(a, MEV_PER_GEV), "jets/pt: median jet pT .*e\\+05 GeV.*, above"),
        "mask.h5": ("tracks", lambda a: retype_field(a, "valid", "u1"),
                    "tracks/valid has dtype uint8, expected bool"),
    }
    for name, (dataset, change, message) in cases.items():
        path = mock_file(tmp_path / name, 200)
        rewrite(path, dataset, change)
        with pytest.raises(InputFileError, match=f"^{path}: {message}"):
            read_dumper(path, cfg)
        out = tmp_path / f"out_{name}"
        assert main(["taggers", "prepare", "--config", str(cfg_path), "--output-dir", str(out), str(path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(path) in err[0] and dataset in err[0] and "Traceback" not in err[0], err
        assert not (out / "train.h5").exists()
    for var in REQUIRED_TRACK_VARIABLES:  # each required variable is checked
        path = mock_file(tmp_path / f"no_{var}.h5", 50)
        rewrite(path, "tracks", lambda a, v=var: drop_field(a, v))
        with pytest.raises(InputFileError, match=f"tracks/{var} is missing"):
            read_dumper(path, cfg)


def _scaled_pt(arr: np.ndarray, factor: float) -> np.ndarray:
    out = arr.copy()
    out["pt"] = arr["pt"] * factor
    return out


def test_mev_ntuple_read_as_gev(cfg: TaggersConfig) -> None:
    events = make_events([{"event": 1, "Jet": [jet_record(45_000.0, 0.1, 0.2), jet_record(60_000.0, -1.0, 1.0)],
                           "Track": []}])
    with pytest.raises(InputFileError, match="^in.root: Jet_pt: median jet pT 5.25e\\+04 GeV, above 10000 GeV: "
                                             "MeV read as GeV"):
        build_dataset(events, cfg, source="in.root")


# --------------------------------------------------------------------------- the chain on the mock


@pytest.mark.usefixtures("one_torch_thread")
def test_chain_on_the_ftag_mock_file(tmp_path: Path) -> None:
    """prepare → train (2 epochs) → evaluate → export, on a file of ftag's own generator."""
    from ftag.hdf5 import H5Reader

    path = mock_file(tmp_path / "mock.h5", 3000)
    cfg = write_config(tmp_path / "config.yaml", {"taggers": {"tracks": MOCK_TRACKS}})
    out, models = tmp_path / "taggers", tmp_path / "taggers" / "models"
    assert main(["taggers", "prepare", "--config", str(cfg), "--output-dir", str(out), str(path)]) == 0
    prep = json.loads((out / "prepare.json").read_text())
    assert prep["splits"]["train"]["jets"] > 1000 and prep["sources"] == [str(path)]
    for tagger in ("rnnip", "mv2", "dl1"):
        assert main(["taggers", "train", "--config", str(cfg), "--tagger", tagger, "--train", str(out / "train.h5"),
                     "--validation", str(out / "validation.h5"), "--model-dir", str(models), "--threads", "1"]) == 0
        sidecar = json.loads((models / f"{tagger}.metrics.json").read_text())
        assert sidecar["train_jets_per_s"] > 0 and sidecar["onnx"]["max_abs_diff"] < 1e-4
    assert main(["taggers", "evaluate", "--config", str(cfg), "--test", str(out / "test.h5"), "--models", str(models),
                 "--output-dir", str(out), "--no-plots"]) == 0
    wp = json.loads((out / "working_points.json").read_text())
    assert set(wp["taggers"]) == {"ip2d", "ip3d", "mv2", "rnnip", "dl1"}
    # the export: ftag reads it with the FTAG names and units
    jets = H5Reader(out / "test_scores.h5", shuffle=False).load(
        {"jets": ["pt", "eventNumber", "HadronConeExclTruthLabelID", "mcEventWeight", "dl1_pb", "rnnip_ptau",
                  "mv2_discriminant"]}
    )["jets"]
    with h5py.File(path) as f:
        raw = f["jets"][()][jets["eventNumber"]]  # the mock has no event number: the row
    assert len(jets) == prep["splits"]["test"]["jets"]
    assert np.allclose(jets["pt"], raw["pt"], rtol=1e-6)  # MeV, the mock's own values
    assert np.array_equal(jets["HadronConeExclTruthLabelID"], raw["HadronConeExclTruthLabelID"])
    for name in ("rnnip.onnx", "dl1.onnx", "mv2.onnx"):
        assert (models / name).is_file()
