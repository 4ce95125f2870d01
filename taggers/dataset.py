"""Training-set preparation: event-number split, (pT, |η|) reweighting/resampling, feature scaling.

* **Split:** a jet goes to ``train``/``validation``/``test`` by ``event % modulus`` (config
  ``taggers.split``); all jets of one event share a split.
* **Reweighting** (``taggers.reweighting``): per flavour f in ``flavours`` (default c, light,
  τ) the jets get ``w = d_target(bin) / d_f(bin)`` with ``d`` the unit-normalised (pT, |η|)
  histograms (jets beyond the outer edges fall into the edge bins), then are scaled so the
  weights of f sum to its number of jets: the shapes match the target flavour (b), the
  class balance is untouched. Bins where the target has jets but f has none cannot be
  matched (logged). ``resample`` draws, per flavour, as many jets as it has with replacement
  with probabilities ∝ those weights (weights then stay 1).
* **Normaliser:** mean and standard deviation per feature on the training set, padded
  tracks ignored; ``transform`` returns ``(x − mean) / std`` with padded entries exactly 0.
"""

from __future__ import annotations

from analysis.core.errors import InputError

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from taggers.features import FLAVOUR_NAMES, TaggingDataset, check_finite, tagger_config

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


class EmptySplitError(InputError):
    """A split of the dataset holds no jet."""


class MissingFlavourError(InputError):
    """A required flavour class has no jet in a dataset."""


class Split(NamedTuple):
    """The three event-number splits of a dataset."""

    train: TaggingDataset
    validation: TaggingDataset
    test: TaggingDataset


def flavour_name(label: int) -> str:
    """``'c (HadronConeExclTruthLabelID 4)'``-style name of a label."""
    return f"{FLAVOUR_NAMES.get(int(label), '?')} (HadronConeExclTruthLabelID {int(label)})"


# ---------------------------------------------------------------------------------------
# Split
# ---------------------------------------------------------------------------------------
def split_indices(event: np.ndarray, split_cfg: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Indices of the jets of each split, from their event numbers (``event % modulus``)."""
    mod = int(split_cfg["modulus"])
    residues = {name: {int(r) for r in split_cfg[name]} for name in SPLITS}
    for name, res in residues.items():
        bad = sorted(r for r in res if not 0 <= r < mod)
        if bad:
            raise ValueError(f"split {name!r}: residues {bad} outside 0..{mod - 1}")
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            common = residues[a] & residues[b]
            if common:
                raise ValueError(f"splits {a!r} and {b!r} share residues {sorted(common)}")
    unused = set(range(mod)) - set().union(*residues.values())
    if unused:
        log.warning(
            "event %% %d residues %s belong to no split; those jets are unused", mod, sorted(unused)
        )
    r = (np.asarray(event, dtype=np.uint64) % np.uint64(mod)).astype(np.int64)
    return {name: np.flatnonzero(np.isin(r, sorted(res))) for name, res in residues.items()}


def split_by_event(ds: TaggingDataset, cfg_taggers: Mapping[str, Any] | None) -> Split:
    """Train/validation/test datasets by event number.

    Raises :class:`EmptySplitError` naming an empty split.
    """
    cfg = tagger_config(cfg_taggers)
    idx = split_indices(ds.jets["event"], cfg["split"])
    for name in SPLITS:
        if idx[name].size == 0:
            raise EmptySplitError(
                f"split {name!r} (event % {cfg['split']['modulus']} in {cfg['split'][name]}) "
                f"is empty: {len(ds)} jets from {ds.meta.get('sources', ['<memory>'])}"
            )
    return Split(*(ds.subset(idx[name]) for name in SPLITS))


def require_flavours(
    ds: TaggingDataset, flavours: Sequence[int], *, what: str = "training set"
) -> None:
    """Raise :class:`MissingFlavourError` naming the first required flavour without jets."""
    present = set(np.unique(ds.jets["label"]).tolist())
    missing = [f for f in flavours if int(f) not in present]
    if missing:
        names = ", ".join(flavour_name(f) for f in missing)
        raise MissingFlavourError(f"the {what} ({len(ds)} jets) has no {names} jets")


# ---------------------------------------------------------------------------------------
# Reweighting
# ---------------------------------------------------------------------------------------
def kinematic_bin(
    pt: np.ndarray, abs_eta: np.ndarray, pt_edges: Sequence[float], eta_edges: Sequence[float]
) -> np.ndarray:
    """Flat (pT, |η|) bin index per jet; values beyond the outer edges go to the edge bins."""
    pe, ee = np.asarray(pt_edges, float), np.asarray(eta_edges, float)
    ip = np.clip(np.searchsorted(pe, pt, side="right") - 1, 0, pe.size - 2)
    ie = np.clip(np.searchsorted(ee, abs_eta, side="right") - 1, 0, ee.size - 2)
    return ip * (ee.size - 1) + ie


def reweighting_weights(
    pt: np.ndarray, abs_eta: np.ndarray, label: np.ndarray, rw_cfg: Mapping[str, Any]
) -> np.ndarray:
    """Per-jet weights (float64) that bring each of ``rw_cfg['flavours']`` to the target's
    (pT, |η|) shape; the target flavour and other flavours get 1. Weights of each reweighted
    flavour sum to its number of jets."""
    pe, ee = rw_cfg["pt_edges_gev"], rw_cfg["abs_eta_edges"]
    n_bins = (len(pe) - 1) * (len(ee) - 1)
    b = kinematic_bin(pt, abs_eta, pe, ee)
    target = int(rw_cfg["target_flavour"])
    is_t = label == target
    if not is_t.any():
        raise MissingFlavourError(f"reweighting target {flavour_name(target)} has no jets")
    d_t = np.bincount(b[is_t], minlength=n_bins) / is_t.sum()
    w = np.ones(len(pt), dtype=np.float64)
    for f in rw_cfg["flavours"]:
        is_f = label == int(f)
        if int(f) == target or not is_f.any():
            continue
        h_f = np.bincount(b[is_f], minlength=n_bins)
        d_f = h_f / is_f.sum()
        ratio = np.divide(d_t, d_f, out=np.zeros(n_bins), where=h_f > 0)
        wf = ratio[b[is_f]]
        lost = d_t[h_f == 0].sum()
        if lost > 0:
            log.warning(
                "reweighting %s: %.2f%% of the target spectrum lies in bins without %s jets",
                flavour_name(f),
                100 * lost,
                FLAVOUR_NAMES.get(int(f), f),
            )
        if wf.sum() <= 0:
            raise ValueError(f"reweighting {flavour_name(f)}: no overlap with the target spectrum")
        w[is_f] = wf * (is_f.sum() / wf.sum())
    return w


def reweight(
    ds: TaggingDataset,
    cfg_taggers: Mapping[str, Any] | None,
    *,
    rng: np.random.Generator | int | None = None,
) -> TaggingDataset:
    """Apply ``taggers.reweighting``: ``reweight`` fills ``jets['weight']``; ``resample``
    returns a resampled dataset (needs ``rng``, a Generator or seed); ``none`` returns ``ds``."""
    cfg = tagger_config(cfg_taggers)
    rw = cfg["reweighting"]
    if rw["method"] == "none":
        return ds
    pt, aeta, label = ds.jets["pt"], np.abs(ds.jets["eta"]), ds.jets["label"]
    w = reweighting_weights(pt, aeta, label, rw)
    if rw["method"] == "reweight":
        out = ds.subset(slice(None))
        out.jets["weight"] = (ds.jets["weight"] * w).astype(np.float32)
        out.meta["reweighting"] = "reweight"
        return out
    if rng is None:
        raise ValueError("reweighting method 'resample' needs rng (a numpy Generator or a seed)")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    resampled = [int(f) for f in rw["flavours"] if int(f) != int(rw["target_flavour"])]
    keep = [np.flatnonzero(~np.isin(label, resampled))]
    for f in resampled:
        idx = np.flatnonzero(label == f)
        if idx.size:
            keep.append(gen.choice(idx, size=idx.size, replace=True, p=w[idx] / w[idx].sum()))
    out = ds.subset(np.sort(np.concatenate(keep)))
    out.meta["reweighting"] = "resample"
    return out


def prepare_splits(
    ds: TaggingDataset,
    cfg_taggers: Mapping[str, Any] | None,
    *,
    rng: np.random.Generator | int | None = None,
) -> Split:
    """Split by event number, check the required flavours are in the training split, and
    reweight (or resample) the splits listed in ``reweighting.apply_to``."""
    cfg = tagger_config(cfg_taggers)
    parts = split_by_event(ds, cfg)
    require_flavours(parts.train, cfg["flavours"]["required"], what="training set")
    gen = rng if isinstance(rng, np.random.Generator) or rng is None else np.random.default_rng(rng)
    out = {
        name: reweight(part, cfg, rng=gen) if name in cfg["reweighting"]["apply_to"] else part
        for name, part in zip(SPLITS, parts)
    }
    return Split(**out)


# ---------------------------------------------------------------------------------------
# Feature scaling
# ---------------------------------------------------------------------------------------
@dataclass
class Normaliser:
    """Per-feature standardisation ``(x − mean) / std`` fitted on valid entries only.

    ``x`` has the features on its last axis, e.g. ``(n_jets, n_max, F)`` track features
    with a ``(n_jets, n_max)`` mask, or ``(n_jets, F)`` jet features without one. A feature
    with zero spread gets ``std = 1``.
    """

    names: list[str]
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        mask: np.ndarray | None = None,
        names: Sequence[str] | None = None,
        weights: np.ndarray | None = None,
    ) -> Normaliser:
        """Fit on ``x[mask]`` (optionally weighted; ``weights`` per row of ``mask``/``x``)."""
        x = np.asarray(x)
        n_feat = x.shape[-1]
        names = list(names) if names is not None else [f"f{i}" for i in range(n_feat)]
        if len(names) != n_feat:
            raise ValueError(f"{len(names)} names for {n_feat} features")
        m = np.ones(x.shape[:-1], bool) if mask is None else np.asarray(mask, bool)
        vals = x[m].astype(np.float64)
        if vals.shape[0] == 0:
            raise ValueError("Normaliser.fit: no valid entries")
        for i, name in enumerate(names):
            check_finite(f"feature {name!r}", vals[:, i], source="Normaliser.fit")
        if weights is None:
            w = np.ones(vals.shape[0])
        else:
            wa = np.asarray(weights, dtype=np.float64)
            wa = wa.reshape(wa.shape + (1,) * (m.ndim - wa.ndim))  # per jet -> per track
            w = np.broadcast_to(wa, m.shape)[m]
        mean = np.average(vals, axis=0, weights=w)
        std = np.sqrt(np.average((vals - mean) ** 2, axis=0, weights=w))
        std = np.where(std > 1e-12, std, 1.0)
        return cls(names, mean, std)

    def transform(self, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Standardised float32 copy of ``x``; entries outside ``mask`` are 0."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[-1] != len(self.names):
            raise ValueError(f"expected {len(self.names)} features {self.names}, got {x.shape[-1]}")
        out = ((x - self.mean) / self.std).astype(np.float32)
        m = np.ones(x.shape[:-1], bool) if mask is None else np.asarray(mask, bool)
        out[~m] = 0.0
        bad = ~np.isfinite(out[m])
        if bad.any():
            col = int(np.nonzero(bad.any(axis=0))[0][0])
            raise ValueError(
                f"Normaliser.transform: feature {self.names[col]!r} has NaN/inf inputs"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (stored with the model)."""
        return {"names": list(self.names), "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Normaliser:
        return cls(list(d["names"]), np.asarray(d["mean"], float), np.asarray(d["std"], float))
