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

The input normaliser of the networks is :class:`analysis.ml.normaliser.Normaliser`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from analysis.core.config.taggers import TaggersConfig, TaggersReweighting, TaggersSplit
from analysis.core.errors import ConfigError, InputError
from taggers.features import FLAVOUR_NAMES, TaggingDataset

log = logging.getLogger(__name__)

__all__ = [
    "SPLITS",
    "EmptySplitError",
    "MissingFlavourError",
    "Split",
    "flavour_name",
    "kinematic_bin",
    "prepare_splits",
    "require_flavours",
    "reweight",
    "reweighting_weights",
    "split_by_event",
    "split_indices",
]

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
def split_indices(event: np.ndarray, split: TaggersSplit) -> dict[str, np.ndarray]:
    """Indices of the jets of each split, from their event numbers (``event % modulus``).

    Args:
        event: the event number of every jet.
        split: ``taggers.split`` (the modulus and the residues of each split).

    Returns:
        ``{"train": indices, "validation": ..., "test": ...}``.

    Raises:
        ConfigError: residues outside ``0..modulus-1`` or shared by two splits.
    """
    mod = int(split.modulus)
    residues = {name: {int(r) for r in getattr(split, name)} for name in SPLITS}
    for name, res in residues.items():
        bad = sorted(r for r in res if not 0 <= r < mod)
        if bad:
            raise ConfigError(f"taggers.split.{name}: residues {bad} outside 0..{mod - 1}")
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            common = residues[a] & residues[b]
            if common:
                raise ConfigError(f"taggers.split: splits {a!r} and {b!r} share residues {sorted(common)}")
    unused = set(range(mod)) - set().union(*residues.values())
    if unused:
        log.warning(
            "event %% %d residues %s belong to no split; those jets are unused", mod, sorted(unused)
        )
    r = (np.asarray(event, dtype=np.uint64) % np.uint64(mod)).astype(np.int64)
    return {name: np.flatnonzero(np.isin(r, sorted(res))) for name, res in residues.items()}


def split_by_event(ds: TaggingDataset, split: TaggersSplit) -> Split:
    """Train/validation/test datasets by event number (``taggers.split``).

    Raises:
        EmptySplitError: a split without jets (named).
    """
    idx = split_indices(ds.jets["event"], split)
    for name in SPLITS:
        if idx[name].size == 0:
            raise EmptySplitError(
                f"split {name!r} (event % {split.modulus} in {list(getattr(split, name))}) "
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
    pt: np.ndarray, abs_eta: np.ndarray, label: np.ndarray, rw: TaggersReweighting
) -> np.ndarray:
    """Per-jet weights that bring each of ``rw.flavours`` to the target's (pT, |η|) shape.

    Args:
        pt: jet pT (GeV).
        abs_eta: jet |η|.
        label: HadronConeExclTruthLabelID of every jet.
        rw: ``taggers.reweighting`` (the target flavour, the flavours and the bin edges).

    Returns:
        float64 weights; the target flavour and the flavours not reweighted get 1, the
        weights of each reweighted flavour sum to its number of jets.
    """
    pe, ee = rw.pt_edges_gev, rw.abs_eta_edges
    n_bins = (len(pe) - 1) * (len(ee) - 1)
    b = kinematic_bin(pt, abs_eta, pe, ee)
    target = int(rw.target_flavour)
    is_t = label == target
    if not is_t.any():
        raise MissingFlavourError(f"reweighting target {flavour_name(target)} has no jets")
    d_t = np.bincount(b[is_t], minlength=n_bins) / is_t.sum()
    w = np.ones(len(pt), dtype=np.float64)
    for f in rw.flavours:
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
            raise InputError(f"reweighting {flavour_name(f)}: no overlap with the target spectrum")
        w[is_f] = wf * (is_f.sum() / wf.sum())
    return w


def reweight(
    ds: TaggingDataset,
    rw: TaggersReweighting,
    *,
    rng: np.random.Generator | int | None = None,
) -> TaggingDataset:
    """Apply ``taggers.reweighting`` to ``ds``.

    Args:
        ds: the jets (not modified).
        rw: the reweighting section: ``reweight`` fills ``jets['weight']``; ``resample``
            draws the jets again (with replacement, ∝ the weights); ``none`` returns ``ds``.
        rng: a numpy Generator or a seed (needed by ``resample``).

    Returns:
        The reweighted (or resampled) copy of ``ds``.
    """
    if rw.method == "none":
        return ds
    pt, aeta, label = ds.jets["pt"], np.abs(ds.jets["eta"]), ds.jets["label"]
    w = reweighting_weights(pt, aeta, label, rw)
    if rw.method == "reweight":
        out = ds.subset(slice(None))
        out.jets["weight"] = (ds.jets["weight"] * w).astype(np.float32)
        out.meta["reweighting"] = "reweight"
        return out
    if rng is None:
        raise ValueError("reweighting method 'resample' needs rng (a numpy Generator or a seed)")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    resampled = [int(f) for f in rw.flavours if int(f) != int(rw.target_flavour)]
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
    cfg: TaggersConfig,
    *,
    rng: np.random.Generator | int | None = None,
) -> Split:
    """Split by event number, check the required flavours are in the training split, and
    reweight (or resample) the splits listed in ``reweighting.apply_to``.

    Args:
        ds: every jet of the sample.
        cfg: the ``taggers`` section (``split``, ``flavours``, ``reweighting``).
        rng: a numpy Generator or a seed (the ``resample`` method draws from it).

    Returns:
        The :class:`Split`.

    Raises:
        EmptySplitError: a split without jets.
        MissingFlavourError: a required flavour without training jets.
    """
    parts = split_by_event(ds, cfg.split)
    require_flavours(parts.train, cfg.flavours.required, what="training set")
    gen = rng if isinstance(rng, np.random.Generator) or rng is None else np.random.default_rng(rng)
    out = {
        name: reweight(part, cfg.reweighting, rng=gen) if name in cfg.reweighting.apply_to else part
        for name, part in zip(SPLITS, parts)
    }
    return Split(**out)
