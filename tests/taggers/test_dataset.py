"""Training-set preparation: split, reweighting/resampling, the normaliser on track inputs, errors."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.core.config.taggers import TaggersConfig, TaggersReweighting
from analysis.core.errors import ConfigError, NonFiniteInputError
from analysis.ml.normaliser import Normaliser
from taggers.dataset import (
    EmptySplitError,
    MissingFlavourError,
    kinematic_bin,
    prepare_splits,
    require_flavours,
    reweight,
    split_by_event,
)
from taggers.features import TaggingDataset
from taggers.nn.rnnip import CONTINUOUS_FEATURES, as_rnnip_inputs

# coarse bins: every bin holds b, c and light jets even in the small test sample
COARSE = {"pt_edges_gev": (20, 35, 60, 1000), "abs_eta_edges": (0.0, 1.0, 2.5)}


def _hist(ds: TaggingDataset, label: int, rw: TaggersReweighting, weights: bool) -> np.ndarray:
    sel = ds.jets["label"] == label
    b = kinematic_bin(
        ds.jets["pt"][sel], np.abs(ds.jets["eta"][sel]), rw.pt_edges_gev, rw.abs_eta_edges
    )
    w = ds.jets["weight"][sel].astype(float) if weights else None
    h = np.bincount(
        b, weights=w, minlength=(len(rw.pt_edges_gev) - 1) * (len(rw.abs_eta_edges) - 1)
    )
    return h / h.sum()


def test_split_is_disjoint_complete_and_by_event(ttbar_ds: TaggingDataset, cfg: TaggersConfig) -> None:
    parts = split_by_event(ttbar_ds, cfg.split)
    assert sum(len(p) for p in parts) == len(ttbar_ds)
    keys = [set(zip(p.jets["event"].tolist(), p.jets["jet_index"].tolist())) for p in parts]
    assert all(len(k) == len(p) for k, p in zip(keys, parts))
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    assert set().union(*keys) == set(
        zip(ttbar_ds.jets["event"].tolist(), ttbar_ds.jets["jet_index"].tolist())
    )
    r = [p.jets["event"] % 10 for p in parts]
    assert r[0].max() <= 7 and set(r[1].tolist()) == {8} and set(r[2].tolist()) == {9}
    events = [set(p.jets["event"].tolist()) for p in parts]
    assert not (events[0] & events[1]) and not (events[1] & events[2])  # no event is split
    assert 0.7 < len(parts.train) / len(ttbar_ds) < 0.9


def test_reweighting_matches_the_b_spectrum(ttbar_ds: TaggingDataset, cfg: TaggersConfig) -> None:
    rw = cfg.reweighting.replace(**COARSE)
    out = reweight(ttbar_ds, rw)
    h_b = _hist(out, 5, rw, weights=True)
    assert np.allclose(h_b, _hist(ttbar_ds, 5, rw, weights=False))  # b untouched
    assert np.all(out.jets["weight"][out.jets["label"] == 5] == 1)
    for flav in (4, 0):
        before = _hist(ttbar_ds, flav, rw, weights=False)
        after = _hist(out, flav, rw, weights=True)
        assert np.abs(before - h_b).sum() > 0.05, "spectra already equal: the test would be vacuous"
        assert np.allclose(after, h_b, atol=1e-6)
        sel = out.jets["label"] == flav
        assert out.jets["weight"][sel].sum() == pytest.approx(sel.sum(), rel=1e-4)  # balance kept
    assert out.jets["weight"].dtype == np.float32 and np.all(out.jets["weight"] >= 0)
    assert np.all(ttbar_ds.jets["weight"] == 1)  # the input is not modified


def test_default_binning_matches_where_populated(ttbar_ds: TaggingDataset, cfg: TaggersConfig) -> None:
    rw = cfg.reweighting
    out = reweight(ttbar_ds, rw)
    h_b, h_l = _hist(out, 5, rw, True), _hist(out, 0, rw, True)
    raw_l = _hist(ttbar_ds, 0, rw, False)
    pop = raw_l > 0
    assert np.allclose(h_l[pop] / h_l[pop].sum(), h_b[pop] / h_b[pop].sum(), atol=1e-6)


def test_resampling_matches_the_b_spectrum(ttbar_ds: TaggingDataset, cfg: TaggersConfig) -> None:
    rw = cfg.reweighting.replace(**COARSE, method="resample")
    a = reweight(ttbar_ds, rw, rng=np.random.default_rng(3))
    b = reweight(ttbar_ds, rw, rng=np.random.default_rng(3))
    assert np.array_equal(a.jets["pt"], b.jets["pt"])  # reproducible with the seed
    assert np.all(a.jets["weight"] == 1)
    for flav in (4, 0, 5):
        assert (a.jets["label"] == flav).sum() == (ttbar_ds.jets["label"] == flav).sum()
    h_b = _hist(a, 5, rw, weights=False)
    before = np.abs(_hist(ttbar_ds, 0, rw, False) - h_b).sum()
    after = np.abs(_hist(a, 0, rw, False) - h_b).sum()
    assert after < 0.5 * before
    with pytest.raises(ValueError, match="rng"):
        reweight(ttbar_ds, rw)


def test_prepare_splits_weights_train_not_test(ttbar_splits, cfg: TaggersConfig) -> None:
    assert np.any(ttbar_splits.train.jets["weight"] != 1)
    assert np.any(ttbar_splits.validation.jets["weight"] != 1)
    assert np.all(ttbar_splits.test.jets["weight"] == 1)


def test_missing_flavour_is_named(ttbar_ds: TaggingDataset, cfg: TaggersConfig) -> None:
    no_c = ttbar_ds.subset(ttbar_ds.jets["label"] != 4)
    with pytest.raises(MissingFlavourError, match=r"no c \(HadronConeExclTruthLabelID 4\)"):
        prepare_splits(no_c, cfg, rng=1)
    with pytest.raises(MissingFlavourError, match="light"):
        require_flavours(ttbar_ds.subset(ttbar_ds.jets["label"] == 5), [5, 0])
    require_flavours(ttbar_ds, [5, 4, 0])  # present: no error


def test_empty_split_is_named(ttbar_ds: TaggingDataset, cfg: TaggersConfig) -> None:
    no_val = ttbar_ds.subset(ttbar_ds.jets["event"] % 10 != 8)
    with pytest.raises(EmptySplitError, match="'validation'"):
        split_by_event(no_val, cfg.split)
    with pytest.raises(ConfigError, match="share residues"):
        split_by_event(ttbar_ds, cfg.split.replace(test=(7, 9)))


def test_normaliser_on_track_inputs(ttbar_splits, cfg: TaggersConfig) -> None:
    inp = as_rnnip_inputs(ttbar_splits.train, cfg.tracks.n_grades)
    cont, mask = inp.continuous, inp.mask
    garbage = cont.copy()
    garbage[~mask] = 1e6  # padded values must not enter the fit
    norm = Normaliser.fit(garbage, mask, names=CONTINUOUS_FEATURES)
    x = norm.apply(garbage, mask)
    assert x.dtype == np.float32 and x.shape == cont.shape
    assert np.all(x[~mask] == 0)
    assert np.allclose(x[mask].mean(axis=0), 0, atol=1e-4)
    assert np.allclose(x[mask].std(axis=0), 1, atol=1e-3)
    again = Normaliser.from_dict(norm.to_dict())
    assert again.names == list(CONTINUOUS_FEATURES)
    assert np.array_equal(again.apply(cont, mask), norm.apply(cont, mask))
    bad = cont.copy()
    first = np.argwhere(mask)[0]
    bad[first[0], first[1], 2] = np.nan
    with pytest.raises(NonFiniteInputError, match=rf"pt_frac holds 1 NaN/inf value\(s\), the first in entry {first[0]}"):
        norm.apply(bad, mask)
    with pytest.raises(NonFiniteInputError, match="pt_frac"):
        Normaliser.fit(bad, mask, names=CONTINUOUS_FEATURES)
    # jet-level features without a mask; a constant feature gets std 1
    jet_x = np.stack([ttbar_splits.train.jets["pt"], np.ones(len(ttbar_splits.train))], axis=1)
    jn = Normaliser.fit(jet_x, names=["pt", "const"])
    assert jn.std[1] == 1.0 and np.allclose(jn.apply(jet_x)[:, 1], 0)
