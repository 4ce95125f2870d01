"""Track features: sequences, masks, sorting, lifetime signs, bad input, RNNIP inputs."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from analysis.core.config.taggers import TaggersConfig
from analysis.core.errors import NonFiniteInputError
from analysis.io.ingest import open_events, read_arrays
from taggers.features import TRACK_FIELDS, TaggingDataset, build_dataset
from taggers.nn.rnnip import as_rnnip_inputs
from taggers.training import TaggerInputError
from tests.taggers.conftest import displaced_track, jet_record, make_events


def test_ntuple_z0_is_relative_to_pv(tagger_ttbar_file, ttbar_ds: TaggingDataset) -> None:
    """Guard against a PV/beam-spot mismatch in the generated ntuples: z0 is z_perigee − PV_z
    (docs/ntuple-format.md), so prompt tracks have |z0 sinθ| of the order of the resolution."""
    arrays = read_arrays(tagger_ttbar_file, ["Track_z0", "Track_eta", "Track_truthOrigin"])
    prompt = ak.flatten(arrays["Track_truthOrigin"]) == 2
    z0s = ak.flatten(arrays["Track_z0"] / np.cosh(arrays["Track_eta"]))[prompt]
    assert len(z0s) > 1000
    median = float(np.median(np.abs(ak.to_numpy(z0s))))
    assert median < 0.1, (
        f"median |z0 sinθ| of prompt tracks is {median:.2f} mm: Track_z0 is not relative to the "
        "reconstructed PV (is the beam spot added to the production vertices in generation?)"
    )
    # and the track selection (|z0 sinθ| < 1.5 mm) keeps most jets populated
    assert np.mean(ttbar_ds.jets["n_tracks"] > 0) > 0.9


def test_shapes_masks_and_sorting(ttbar_ds: TaggingDataset, cfg: TaggersConfig) -> None:
    ds = ttbar_ds
    n, n_max = len(ds), cfg.tracks.n_max
    assert n > 1000
    for name in TRACK_FIELDS:
        assert ds.tracks[name].shape == (n, n_max), name
    for name in ("pt", "eta", "phi", "label", "event", "n_tracks", "weight"):
        assert ds.jets[name].shape == (n,), name
    assert ds.jets["event"].dtype == np.uint64 and ds.jets["weight"].dtype == np.float32
    assert ds.tracks["grade"].dtype == np.int8 and ds.tracks["valid"].dtype == bool
    valid = ds.tracks["valid"]
    # the mask is a prefix of each row, n_tracks counts it
    assert np.array_equal(valid.sum(axis=1), ds.jets["n_tracks"])
    assert np.array_equal(valid, np.arange(n_max)[None, :] < ds.jets["n_tracks"][:, None])
    # sorted by |sd0| descending within the valid entries
    a = np.where(valid, np.abs(ds.tracks["sd0"]), -1.0)
    assert np.all(np.diff(a, axis=1) <= 0)
    # padding: zero floats, -1 ints, never NaN
    for name in ("sd0", "sz0", "pt_frac", "dr", "d0", "pt"):
        assert np.all(ds.tracks[name][~valid] == 0), name
        assert np.all(np.isfinite(ds.tracks[name])), name
    assert np.all(ds.tracks["grade"][~valid] == -1)
    # the selection cuts hold
    v = valid
    assert np.all(ds.tracks["pt"][v] > cfg.tracks.pt_min_gev)
    assert np.all(np.abs(ds.tracks["d0"][v]) < cfg.tracks.abs_d0_max_mm)
    assert np.all(np.abs(ds.tracks["z0sintheta"][v]) < cfg.tracks.abs_z0sintheta_max_mm)
    assert np.all(ds.jets["pt"] > cfg.jets.pt_min_gev)
    assert np.all(np.abs(ds.jets["eta"]) < cfg.jets.abs_eta_max)
    assert np.all(ds.tracks["dr"][v] < 0.6) and np.all(ds.tracks["pt_frac"][v] > 0)


def test_max_tracks_keeps_the_largest_sd0(
    tagger_ttbar_file, ttbar_ds: TaggingDataset, cfg: TaggersConfig
) -> None:
    from taggers.features import load_dataset

    small = load_dataset([str(tagger_ttbar_file)], cfg.replace(tracks=cfg.tracks.replace(n_max=3)))
    assert small.n_max == 3 and len(small) == len(ttbar_ds)
    assert (ttbar_ds.jets["n_tracks"] > 3).sum() > 50  # truncation actually happens
    assert np.array_equal(small.jets["n_tracks"], np.minimum(ttbar_ds.jets["n_tracks"], 3))
    assert np.array_equal(small.jets["n_tracks_selected"], ttbar_ds.jets["n_tracks_selected"])
    for name in ("sd0", "sz0", "pt", "grade", "valid"):
        assert np.array_equal(small.tracks[name], ttbar_ds.tracks[name][:, :3]), name


def test_nanoevents_and_awkward_inputs_agree(
    tagger_ttbar_file, ttbar_ds: TaggingDataset, cfg: TaggersConfig
) -> None:
    events = open_events(str(tagger_ttbar_file), mode="eager")
    ds = build_dataset(events, cfg)
    for group in ("jets", "tracks"):
        a, b = getattr(ds, group), getattr(ttbar_ds, group)
        for name in a:
            assert np.array_equal(a[name], b[name]), (group, name)


def _downstream_event(sign: float) -> list[dict]:
    """One b-like jet at (η, φ) = (0.8, 1.0); three tracks from a vertex at ±5 mm along it."""
    eta_j, phi_j = 0.8, 1.0
    axis = np.array([np.cos(phi_j), np.sin(phi_j), np.sinh(eta_j)])
    vertex = sign * 5.0 * axis / np.linalg.norm(axis)
    tracks = [
        displaced_track(vertex, 5.0, eta_j + 0.10, phi_j - 0.12, +1),
        displaced_track(vertex, 8.0, eta_j - 0.07, phi_j + 0.09, -1),
        displaced_track(vertex, 3.0, eta_j + 0.05, phi_j + 0.15, +1),
    ]
    return [{"event": 11, "Jet": [jet_record(60.0, eta_j, phi_j)], "Track": tracks}]


def test_lifetime_signs_of_constructed_tracks(cfg: TaggersConfig) -> None:
    down = build_dataset(make_events(_downstream_event(+1.0)), cfg)
    up = build_dataset(make_events(_downstream_event(-1.0)), cfg)
    v = down.tracks["valid"][0]
    assert v.sum() == 3 and up.tracks["valid"][0].sum() == 3
    # downstream along the jet: positive lifetime signs, well separated from 0
    assert np.all(down.tracks["sd0"][0, v] > 3) and np.all(down.tracks["sz0"][0, v] > 3)
    # the mirror image (a vertex behind the PV) flips both signs
    assert np.all(up.tracks["sd0"][0, v] < -3) and np.all(up.tracks["sz0"][0, v] < -3)
    # |d0| itself is not signed by the lifetime convention: both signs occur among the d0
    assert set(np.sign(down.tracks["d0"][0, v])) == {-1.0, 1.0}


def test_jets_without_tracks(cfg: TaggersConfig) -> None:
    base = _downstream_event(+1.0)[0]
    events = [
        {**base, "Jet": [*base["Jet"], jet_record(40.0, -1.5, -2.0, label=0)]},  # 2nd jet: no track
        {"event": 12, "Jet": [jet_record(30.0, 0.1, 0.2, label=0)], "Track": []},  # no track at all
        {
            "event": 13,
            "Jet": [jet_record(35.0, 0.3, 2.9, label=4)],
            "Track": [{**base["Track"][0], "d0": 5.0}],
        },  # its only track fails |d0| < 1 mm
    ]
    ds = build_dataset(make_events(events), cfg)
    assert len(ds) == 4
    assert ds.jets["n_tracks"].tolist() == [3, 0, 0, 0]
    assert ds.jets["n_tracks_selected"].tolist() == [3, 0, 0, 0]
    assert not ds.tracks["valid"][1:].any()
    for name in TRACK_FIELDS:
        assert np.all(np.isfinite(ds.tracks[name].astype(float))), name
        if name != "valid":
            assert np.all(ds.tracks[name][1:] == (-1 if ds.tracks[name].dtype == np.int8 else 0))
    inp = as_rnnip_inputs(ds, 4)
    assert not inp.mask[1:].any() and np.all(inp.continuous[1:] == 0) and np.all(inp.grade[1:] == 4)
    assert ds.jets["jet_index"].tolist() == [0, 1, 0, 0]
    assert ds.jets["event"].tolist() == [11, 11, 12, 13]


@pytest.mark.parametrize(
    ("coll", "field", "value"),
    [
        ("Track", "d0", np.nan),
        ("Track", "z0Err", np.inf),
        ("Track", "eta", -np.inf),
        ("Jet", "pt", np.nan),
        ("Jet", "phi", np.inf),
    ],
)
def test_non_finite_input_names_the_field(cfg: TaggersConfig, coll: str, field: str, value: float) -> None:
    ev = _downstream_event(+1.0)[0]
    if coll == "Track":
        ev["Track"][1] = {**ev["Track"][1], field: value}
    else:
        ev["Jet"][0] = {**ev["Jet"][0], field: value}
    with pytest.raises(NonFiniteInputError, match=rf"^constructed: {coll}_{field} holds 1 NaN/inf value\(s\), the first in event 11$"):
        build_dataset(make_events([ev]), cfg, source="constructed")


def test_non_positive_error_is_refused(cfg: TaggersConfig) -> None:
    ev = _downstream_event(+1.0)[0]
    ev["Track"][0] = {**ev["Track"][0], "d0Err": 0.0}
    with pytest.raises(NonFiniteInputError, match="Track_d0Err"):
        build_dataset(make_events([ev]), cfg)


def test_rnnip_inputs(ttbar_ds: TaggingDataset, cfg: TaggersConfig) -> None:
    n_grades = cfg.tracks.n_grades
    inp = as_rnnip_inputs(ttbar_ds, n_grades)
    cont, grade, mask = inp.continuous, inp.grade, inp.mask
    n, n_max = len(ttbar_ds), cfg.tracks.n_max
    assert cont.shape == (n, n_max, 4) and cont.dtype == np.float32
    assert grade.shape == (n, n_max) and grade.dtype == np.int64
    assert mask.shape == (n, n_max) and mask.dtype == bool
    assert np.array_equal(mask, ttbar_ds.tracks["valid"])
    assert np.all(grade[~mask] == n_grades) and np.all(grade[mask] < n_grades)
    assert np.array_equal(cont[..., 0], ttbar_ds.tracks["sd0"])
    assert np.array_equal(cont[..., 3], ttbar_ds.tracks["dr"])
    assert np.all(cont[~mask] == 0)
    with pytest.raises(TaggerInputError, match="'grade' holds values outside"):
        as_rnnip_inputs(ttbar_ds, 2)


def test_subset_and_lengths(ttbar_ds: TaggingDataset) -> None:
    idx = np.array([3, 1, 4])
    sub = ttbar_ds.subset(idx)
    assert len(sub) == 3
    assert np.array_equal(sub.tracks["sd0"], ttbar_ds.tracks["sd0"][idx])
    mask = ttbar_ds.jets["label"] == 5
    assert len(ttbar_ds.subset(mask)) == mask.sum() > 0
    with pytest.raises(ValueError):
        ttbar_ds.subset(mask[:-1])
    with pytest.raises(ValueError, match="differ in length"):
        TaggingDataset({"pt": np.zeros(2)}, {"valid": np.zeros((3, 2), bool)})
