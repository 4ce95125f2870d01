"""Sparse images: binning, energy conservation, φ wrap-around, sparse–dense round trips, I/O,
the device-side loader and augmentation, and the bad inputs (no towers, zero weight sum)."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import torch

from analysis.core.config.rpv import CaloSplit
from analysis.core.errors import ModelMismatchError
from analysis.io.ingest import read_arrays
from analysis.ml.normaliser import Normaliser
from selections.rpv.cnn.images import (
    NORM_FORMAT,
    EmptyEventError,
    ImageNormalisation,
    ImageSet,
    ImageSizeError,
    ImageSpec,
    SparseImages,
    build_images,
    build_sparse,
    fit_channel_normaliser,
    images_from_arrays,
    match_grid,
    pixel_indices,
    read_images,
    write_images,
)
from selections.rpv.cnn.loader import SparseImageLoader
from selections.rpv.samples import SampleInputError, ZeroWeightError, sample_normalisation, split_mask
from tests.fixtures import files as fixtures

SPEC = ImageSpec()  # 64 x 64, eta in [-3.2, 3.2)
DPHI = 2 * np.pi / 64


def _event_arrays(towers: list[list[tuple[float, float, float, float]]],
                  tracks: list[list[tuple[float, float]]]) -> ak.Array:
    """An awkward array like read_arrays gives: towers (eta, phi, eEM, eHad), tracks (eta, phi)."""
    def col(rows, i):
        return ak.Array([[r[i] for r in ev] for ev in rows], with_name=None)

    return ak.Array({
        "event": np.arange(1, len(towers) + 1, dtype=np.uint64),
        "genWeight": np.ones(len(towers), np.float32),
        "Tower_eta": col(towers, 0), "Tower_phi": col(towers, 1),
        "Tower_eEM": col(towers, 2), "Tower_eHad": col(towers, 3),
        "Track_eta": col(tracks, 0), "Track_phi": col(tracks, 1),
    })


def test_constructed_event_bins_energy_and_phi_wraparound() -> None:
    towers = [[
        (0.05, np.pi - DPHI / 2, 10.0, 20.0),   # last phi pixel (63), eta pixel 32
        (0.05, -np.pi + DPHI / 2, 1.0, 2.0),    # first phi pixel (0)
        (0.05, np.pi + DPHI / 2, 3.0, 4.0),     # beyond +pi: wraps to pixel 0, same pixel as above
        (-3.15, 0.01, 5.0, 0.0),                # eta pixel 0, phi pixel 32
        (3.25, 0.01, 100.0, 100.0),             # outside the image (|eta| >= 3.2)
    ]]
    tracks = [[(0.05, np.pi), (0.05, -np.pi), (0.05, -np.pi + 1e-3), (2.0, 3.0 * np.pi / 2)]]
    imgs, keep = images_from_arrays(_event_arrays(towers, tracks), SPEC)
    assert keep.all()
    dense = imgs.to_dense()[0]
    # energy conservation per channel (inside the image)
    assert dense[0].sum() == pytest.approx(10 + 1 + 3 + 5)
    assert dense[1].sum() == pytest.approx(20 + 2 + 4)
    assert dense[2].sum() == 4
    # the bins
    assert dense[0, 32, 63] == pytest.approx(10) and dense[1, 32, 63] == pytest.approx(20)
    assert dense[0, 32, 0] == pytest.approx(1 + 3) and dense[1, 32, 0] == pytest.approx(2 + 4)
    assert dense[0, 0, 32] == pytest.approx(5) and dense[1, 0, 32] == 0
    # tracks at phi = +pi and -pi are the same place: pixel 0; 3pi/2 == -pi/2: phi pixel 16
    assert dense[2, 32, 0] == 3
    assert dense[2, 52, 16] == 1  # eta 2.0: (2.0 + 3.2) / 0.1 = pixel 52
    assert np.count_nonzero(dense) == 2 + 2 + 1 + 2  # ecal 3 pixels, hcal 2, tracks 2
    assert np.count_nonzero(dense[0]) == 3 and np.count_nonzero(dense[1]) == 2


def test_default_grid_puts_one_tower_per_pixel() -> None:
    # tower centres of the generator's grid (0.1 x 2pi/64 over |eta| < 4.9) inside |eta| < 3.2
    eta_c = -4.9 + 0.1 * (np.arange(98) + 0.5)
    phi_c = -np.pi + DPHI * (np.arange(64) + 0.5)
    eta, phi = np.meshgrid(eta_c[np.abs(eta_c) < 3.2], phi_c, indexing="ij")
    ieta, iphi, inside = pixel_indices(eta.ravel(), phi.ravel(), SPEC)
    assert inside.all() and eta.size == 64 * 64
    assert np.unique(ieta * 64 + iphi).size == 64 * 64


def _random_sparse(n: int, spec: ImageSpec, rng: np.random.Generator) -> SparseImages:
    nt = rng.integers(1, 40, n)
    ev = np.repeat(np.arange(n), nt)
    nk = rng.integers(0, 10, n)
    kev = np.repeat(np.arange(n), nk)
    return build_sparse(
        n, spec, ev, rng.uniform(-3.5, 3.5, ev.size), rng.uniform(-np.pi, np.pi, ev.size),
        rng.exponential(5.0, ev.size) * (rng.random(ev.size) < 0.8), rng.exponential(5.0, ev.size),
        kev, rng.uniform(-2.5, 2.5, kev.size), rng.uniform(-np.pi, np.pi, kev.size),
    )


@pytest.mark.parametrize("factor", [2, 4])
def test_rebinning_sums_blocks_of_pixels(factor: int) -> None:
    """64 x 64 -> 32 x 32 (or 16 x 16): each coarse pixel is the sum of its factor x factor block,
    per channel; totals are unchanged and the result is the same set on the coarse grid."""
    sp = _random_sparse(30, SPEC, np.random.default_rng(21))
    coarse = sp.rebin(factor)
    assert coarse.spec == ImageSpec(64 // factor, 64 // factor, -3.2, 3.2)
    dense = sp.to_dense()
    want = dense.reshape(30, 3, 64 // factor, factor, 64 // factor, factor).sum(axis=(3, 5))
    np.testing.assert_allclose(coarse.to_dense(), want, rtol=1e-6)
    assert (coarse.value != 0).all() and (coarse.nnz <= sp.nnz).all()
    assert sp.rebin(1) is sp


def test_match_grid_rebins_to_a_coarser_network_grid_only() -> None:
    sp = _random_sparse(10, SPEC, np.random.default_rng(22))
    n = len(sp)
    imgs = ImageSet(sp, np.arange(n, dtype=np.uint64), np.zeros(n, np.int8), np.ones(n), np.ones(n, np.float32),
                    np.zeros(n, np.int16), ["s"], {})
    assert match_grid(imgs, SPEC, "files", "model") is imgs
    coarse = match_grid(imgs, SPEC.rebinned(2), "files", "model")
    np.testing.assert_array_equal(coarse.images.to_dense(), sp.rebin(2).to_dense())
    np.testing.assert_array_equal(coarse.event, imgs.event)
    for other in (ImageSpec(48, 48, -3.2, 3.2), ImageSpec(32, 32, -2.5, 2.5), ImageSpec(128, 128, -3.2, 3.2)):
        with pytest.raises(ImageSizeError, match="model"):
            match_grid(imgs, other, "files", "model")
    with pytest.raises(ImageSizeError, match="cannot merge 3 x 3"):
        SPEC.rebinned(3)


def test_sparse_dense_round_trip_and_hdf5(tmp_path) -> None:
    rng = np.random.default_rng(1)
    spec = ImageSpec(32, 32, -3.2, 3.2)
    sp = _random_sparse(50, spec, rng)
    dense = sp.to_dense()
    assert dense.shape == (50, 3, 32, 32)
    assert np.count_nonzero(dense) == sp.index.size > 0
    back = SparseImages.from_dense(dense, spec)
    np.testing.assert_array_equal(back.offsets, sp.offsets)
    np.testing.assert_array_equal(back.index, sp.index)
    np.testing.assert_array_equal(back.value, sp.value)
    rows = np.array([7, 3, 49])
    np.testing.assert_array_equal(sp.take(rows).to_dense(), dense[rows])

    n = len(sp)
    iset = ImageSet(sp, np.arange(10, 10 + n, dtype=np.uint64), np.ones(n, np.int8), rng.random(n),
                    np.ones(n, np.float32), np.zeros(n, np.int16), ["s"], {"s": {"xsec_pb": 1.0}})
    stats = write_images(tmp_path / "s.h5", iset, pixel_chunk=1024)
    assert stats.dense_over_sparse_memory > 1 and stats.events == n
    assert stats.file_bytes == (tmp_path / "s.h5").stat().st_size
    got = read_images(tmp_path / "s.h5")
    assert got.spec == spec and got.samples == ["s"] and got.sample_info == {"s": {"xsec_pb": 1.0}}
    np.testing.assert_array_equal(got.images.to_dense(), dense)
    np.testing.assert_array_equal(got.event, iset.event)
    np.testing.assert_allclose(got.weight, iset.weight)
    assert len(read_images(tmp_path / "s.h5", max_events=5)) == 5
    np.testing.assert_array_equal(read_images(tmp_path / "s.h5", max_events=5).images.to_dense(), dense[:5])
    # one split, read in blocks
    split = CaloSplit(modulus=4, train=(0, 1), validation=(2,), test=(3,))
    val = read_images(tmp_path / "s.h5", split=(split, "validation"), block_events=7)
    want = iset.event % 4 == 2
    assert 0 < len(val) < n
    np.testing.assert_array_equal(val.event, iset.event[want])
    np.testing.assert_array_equal(val.images.to_dense(), dense[want])


@pytest.mark.parametrize("transform", ["linear", "log1p"])
def test_loader_builds_the_normalised_dense_batch_on_the_device(transform: str) -> None:
    rng = np.random.default_rng(2)
    spec = ImageSpec(16, 24, -2.0, 2.0)
    sp = _random_sparse(37, spec, rng)
    norm = fit_channel_normaliser(sp, transform)
    dense = sp.to_dense()
    f = np.log1p(dense) if transform == "log1p" else dense
    # std = RMS over all pixels of the fitted images, per channel; mean 0
    assert norm.names == ["ecal", "hcal", "ntrack"] and norm.transform == transform
    assert norm.std.dtype == np.float32 and (norm.mean == 0).all()
    np.testing.assert_allclose(norm.std, np.sqrt((f**2).mean(axis=(0, 2, 3))), rtol=1e-5)
    expect = f / norm.std[None, :, None, None]
    # the loader's device path gives what the one normaliser gives on the dense images
    np.testing.assert_allclose(norm.apply(np.moveaxis(dense, 1, -1)), np.moveaxis(expect, 1, -1), rtol=1e-5,
                               atol=1e-6)
    loader = SparseImageLoader(sp, norm, batch_size=10, device="cpu")
    got = torch.cat([b.x for b in loader]).numpy()
    assert len(loader) == 4
    np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-6)


def test_augmentation_is_roll_and_flips_of_the_dense_image() -> None:
    rng = np.random.default_rng(3)
    spec = ImageSpec(16, 16, -3.2, 3.2)
    sp = _random_sparse(4, spec, rng)
    norm = Normaliser(list(spec.channels), np.zeros(3), np.ones(3, np.float32))
    loader = SparseImageLoader(sp, norm, batch_size=4, device="cpu")
    dense = sp.to_dense()
    rows = torch.arange(4)
    aug = torch.tensor([[5, 0, 0], [0, 1, 0], [0, 0, 1], [3, 1, 1]])
    got = loader.dense_batch(rows, aug).numpy()
    np.testing.assert_array_equal(got[0], np.roll(dense[0], 5, axis=2))
    np.testing.assert_array_equal(got[1], dense[1][:, :, ::-1])
    np.testing.assert_array_equal(got[2], dense[2][:, ::-1, :])
    np.testing.assert_array_equal(got[3], np.roll(dense[3], 3, axis=2)[:, ::-1, ::-1])
    # random augmentation keeps the per-channel sums
    aug_loader = SparseImageLoader(sp, norm, batch_size=4, device="cpu", shuffle=True, seed=1,
                                   augment={"phi_roll": True, "phi_flip": True, "eta_flip": True})
    b = next(iter(aug_loader))
    np.testing.assert_allclose(b.x.sum(dim=(2, 3)).numpy(), dense[b.rows.numpy()].sum(axis=(2, 3)), rtol=1e-5)


def test_images_from_a_hepline_file_conserve_energy_and_carry_sigma_weights(hepline_file) -> None:
    imgs = build_images([hepline_file], "fixture_hh_yybb", 1, SPEC, chunk_events=25)
    arr = read_arrays(hepline_file, ["Tower_eta", "Tower_eEM", "Tower_eHad", "Track_eta", "Track_phi",
                                     "genWeight", "event"])
    assert len(imgs) == len(arr) > 0
    inside = (arr.Tower_eta >= -3.2) & (arr.Tower_eta < 3.2)
    dense = imgs.images.to_dense()
    np.testing.assert_allclose(dense[:, 0].sum(axis=(1, 2)), ak.to_numpy(ak.sum(arr.Tower_eEM[inside], axis=1)),
                               rtol=1e-4)
    np.testing.assert_allclose(dense[:, 1].sum(axis=(1, 2)), ak.to_numpy(ak.sum(arr.Tower_eHad[inside], axis=1)),
                               rtol=1e-4)
    k_in = (arr.Track_eta >= -3.2) & (arr.Track_eta < 3.2)
    np.testing.assert_array_equal(dense[:, 2].sum(axis=(1, 2)), ak.to_numpy(ak.sum(k_in, axis=1)))
    norm = sample_normalisation([hepline_file], "fixture_hh_yybb")
    gw = ak.to_numpy(arr.genWeight).astype(np.float64)
    np.testing.assert_allclose(imgs.weight, gw * norm.xsec_pb / norm.sumw, rtol=1e-6)
    assert imgs.weight.sum() == pytest.approx(norm.xsec_pb, rel=1e-4)  # sum of weights = sigma
    assert imgs.sample_info["fixture_hh_yybb"] == dict(norm.to_dict(), label=1, n_imaged=len(imgs))
    np.testing.assert_array_equal(imgs.event, ak.to_numpy(arr.event))


def test_split_by_event_number_is_a_partition() -> None:
    cfg = CaloSplit(modulus=10, train=(0, 1, 2, 3, 4, 5), validation=(6,), test=(7, 8, 9))
    ev = np.arange(1, 1001, dtype=np.uint64) + np.uint64(3 * 10**9)
    masks = [split_mask(ev, cfg, s) for s in ("train", "validation", "test")]
    assert (np.sum(masks, axis=0) == 1).all()
    assert [m.sum() for m in masks] == [600, 100, 300]
    with pytest.raises(SampleInputError, match="residue 6 is in both"):
        split_mask(ev, cfg.replace(test=(6, 7)), "test")
    with pytest.raises(SampleInputError, match="residue 12 of 'test' is not below modulus 10"):
        split_mask(ev, cfg.replace(test=(7, 12)), "test")


# --------------------------------------------------------------------------- bad input


def test_event_without_towers_is_an_error_naming_it() -> None:
    towers = [[(0.1, 0.1, 5.0, 5.0)], [], [(4.5, 0.1, 5.0, 5.0)]]
    tracks = [[(0.1, 0.1)], [(0.2, 0.2)], []]
    arrays = _event_arrays(towers, tracks)
    with pytest.raises(EmptyEventError, match=r"no calorimeter tower.*event number\(s\) 2, 3"):
        images_from_arrays(arrays, SPEC)
    with pytest.raises(EmptyEventError, match=r"1 event\(s\) with no calorimeter towers at all.*2"):
        images_from_arrays(arrays[:2], SPEC)
    imgs, keep = images_from_arrays(arrays, SPEC, empty_events="skip")
    assert keep.tolist() == [True, False, False] and len(imgs) == 1


def test_sample_with_zero_weight_sum_is_an_error(tmp_path, monkeypatch) -> None:
    original = fixtures._hepline_events

    def zero_weights(*args, **kwargs):
        cols, w = original(*args, **kwargs)
        cols["genWeight"] = np.zeros_like(cols["genWeight"])
        return cols, np.zeros_like(w)

    monkeypatch.setattr(fixtures, "_hepline_events", zero_weights)
    path = fixtures.write_hepline_fixture(tmp_path / "zero.root", 5, np.random.default_rng(4), sample="zero")
    with pytest.raises(ZeroWeightError, match="sample 'zero' has a sum of generator weights of 0"):
        build_images([path], "zero", 0, SPEC)


# --------------------------------------------------------------------------- normalisation file


def test_image_normalisation_keeps_the_stored_form(tmp_path) -> None:
    """normalisation.json: format, image grid, transform, scale (= the normaliser's std), channels,
    fitted_on; read back it is the same normaliser, and a bad file is refused."""
    import json

    sp = _random_sparse(20, ImageSpec(8, 8, -1.0, 1.0), np.random.default_rng(5))
    norm = ImageNormalisation.fit(sp, "log1p", fitted_on={"split": "train"})
    d = norm.to_dict()
    assert list(d) == ["format", "image", "transform", "scale", "channels", "fitted_on"]
    assert d["format"] == NORM_FORMAT and d["fitted_on"] == {"split": "train", "n_images": 20}
    assert d["scale"] == [float(s) for s in fit_channel_normaliser(sp, "log1p").std]
    (tmp_path / "n.json").write_text(json.dumps(d))
    back = ImageNormalisation.load(tmp_path / "n.json")
    assert back.spec == sp.spec and back.transform == "log1p" and back.to_dict() == d
    np.testing.assert_array_equal(back.normaliser.std, norm.normaliser.std)
    assert back.fingerprint() == norm.fingerprint()
    with pytest.raises(ModelMismatchError, match="unknown transform 'sqrt'"):
        ImageNormalisation.from_dict(dict(d, transform="sqrt"))
    with pytest.raises(ModelMismatchError, match="2 scales for 3 channels"):
        ImageNormalisation.from_dict(dict(d, scale=[1.0, 2.0]))


def test_loader_refuses_a_normaliser_of_other_channels_or_with_a_mean() -> None:
    sp = _random_sparse(3, ImageSpec(8, 8), np.random.default_rng(6))
    with pytest.raises(ModelMismatchError, match="channels"):
        SparseImageLoader(sp, Normaliser(["a", "b", "c"], np.zeros(3), np.ones(3)), batch_size=2, device="cpu")
    with pytest.raises(ModelMismatchError, match="zero mean"):
        SparseImageLoader(sp, Normaliser(list(sp.spec.channels), np.ones(3), np.ones(3)), batch_size=2, device="cpu")


def test_images_command_writes_images_and_metrics(hepline_file, tmp_path) -> None:
    """``hepline calo images``: the image file holds :func:`build_images` of the sample, the metrics
    JSON its size and times."""
    import json

    from analysis.cli import main
    from analysis.core.provenance import read_provenance
    from tests.fixtures.paths import DEFAULT_CONFIG

    out = tmp_path / "s.h5"
    assert main(["calo", "images", "--config", str(DEFAULT_CONFIG), "--sample", "fixture_hh_yybb", "--label", "0",
                 "--output", str(out), "--metrics", str(tmp_path / "m.json"), str(hepline_file)]) == 0
    got = read_images(out)
    want = build_images([hepline_file], "fixture_hh_yybb", 0, SPEC)
    np.testing.assert_array_equal(got.images.index, want.images.index)
    np.testing.assert_array_equal(got.images.value, want.images.value)
    np.testing.assert_array_equal(got.weight, want.weight)
    assert got.sample_info == json.loads(json.dumps(want.sample_info))
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["events"] == len(want) and metrics["sample"] == "fixture_hh_yybb"
    assert metrics["files"] == [str(hepline_file)] and metrics["file_bytes"] == out.stat().st_size
    assert read_provenance(out)["stage"] == "calo.images"


@pytest.mark.parametrize(("branch", "where"), [("Tower_eEM", (0, 1, 2)), ("Tower_eta", (1, 0, 0)),
                                               ("Track_phi", (1, 0, 1))])
def test_non_finite_inputs_are_an_error_not_a_pixel(branch, where) -> None:
    """NaN/inf in a tower or track is an error naming the source, branch and event: before,
    calo images wrote thousands of non-finite pixels (issue 21)."""
    from analysis.core.errors import NonFiniteInputError

    towers = [[(0.1, 0.2, 5.0, 3.0), (0.5, 1.0, 2.0, 1.0)], [(-0.3, 2.0, 4.0, 4.0)]]
    tracks = [[(0.1, 0.2)], [(0.2, 0.3)]]
    kind, (ev, obj, field) = ("tower" if branch.startswith("Tower") else "track"), where
    rows = [list(map(list, e)) for e in (towers if kind == "tower" else tracks)]
    rows[ev][obj][field] = float("nan")
    towers, tracks = (rows, tracks) if kind == "tower" else (towers, rows)
    arrays = _event_arrays([list(map(tuple, e)) for e in towers], [list(map(tuple, e)) for e in tracks])
    with pytest.raises(NonFiniteInputError, match=rf"^f\.root: {branch} holds 1 NaN/inf value\(s\), the first in event {ev + 1}$"):
        images_from_arrays(arrays, SPEC, source="f.root")
