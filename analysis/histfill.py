"""Filling (region, variation, observable) histograms from region masks, in one pass.

The stages fill ``Hist(region, variation, observable)`` with Weight storage
(:func:`analysis.histograms.make_hists`). A selection pass typically puts each event into
a few of many regions and fills it with several weights (one per systematic variation).
:func:`fill_regions` does that for all regions and variations of one observable at once,
without building the (region, event) index lists that ``Hist.fill`` or
:func:`analysis.histograms.fill_indexed` need:

- compiled (numba): one loop over the masks adds every weight and its square straight into
  the histogram's storage;
- ``compiled=False``: the numpy reference (flat bin indices and one ``np.bincount`` per
  storage field, :func:`analysis.histograms.add_flat`), which the tests compare it with.

Entries are added region by region and, within a region, in event order, so that on an
empty histogram both give the same sums bin by bin as a single ``fill`` would.
"""

from __future__ import annotations

import numba
import numpy as np

from analysis import histograms as H

__all__ = ["bin_indices", "fill_regions"]


def bin_indices(h, name: str, x: np.ndarray) -> np.ndarray:
    """Index of each ``x`` along axis ``name`` of ``h.view(flow=True)`` (under- and
    overflow to the flow bins, as ``fill`` does), −1 for non-finite values (not filled)."""
    ax = h.axes[name]
    x = np.asarray(x, dtype=np.float64)
    idx = np.asarray(ax.index(x), dtype=np.int64)
    if ax.traits.underflow:
        idx += 1
    np.clip(idx, 0, len(ax) + int(ax.traits.underflow) + int(ax.traits.overflow) - 1, out=idx)
    idx[~np.isfinite(x)] = -1
    return idx


@numba.njit(cache=True, nogil=True)
def _fill(value, variance, masks, regions, xbin, weights, weight_rows, variations):  # pragma: no cover - numba
    for k in range(masks.shape[0]):
        r = regions[k]
        for e in range(masks.shape[1]):
            if masks[k, e]:
                b = xbin[e]
                if b >= 0:
                    for j in range(variations.shape[0]):
                        w = weights[weight_rows[j], e]
                        value[r, variations[j], b] += w
                        variance[r, variations[j], b] += w * w


def _check(h, masks, regions, xbin, weights, weight_rows, variations) -> None:
    names = list(h.axes.name)
    if names[:2] != ["region", "variation"] or len(names) != 3:
        raise ValueError(f"fill_regions needs a Hist(region, variation, observable), not axes {names}")
    n = xbin.shape[0]
    if masks.ndim != 2 or masks.shape != (regions.shape[0], n):
        raise ValueError(f"fill_regions: masks of shape {masks.shape}, expected ({regions.shape[0]}, {n})")
    if weights.ndim != 2 or weights.shape[1] != n:
        raise ValueError(f"fill_regions: weights of shape {weights.shape}, expected (k, {n})")
    if weight_rows.shape != variations.shape:
        raise ValueError("fill_regions: one weight row per variation")
    for arr, size, what in ((regions, len(h.axes["region"]), "region"),
                            (variations, len(h.axes["variation"]), "variation"),
                            (weight_rows, weights.shape[0], "weight row")):
        if arr.size and (arr.min() < 0 or arr.max() >= size):
            raise IndexError(f"fill_regions: {what} index out of range")


def fill_regions(h, masks: np.ndarray, regions: np.ndarray, xbin: np.ndarray, weights: np.ndarray,
                 weight_rows: np.ndarray, variations: np.ndarray, *, compiled: bool = True) -> None:
    """Add to ``h`` (``Hist(region, variation, observable)``, Weight storage), for every
    region ``k`` and every entry ``e`` with ``masks[k, e]`` and ``xbin[e] ≥ 0``, the weight
    ``weights[weight_rows[j], e]`` at (``regions[k]``, ``variations[j]``, ``xbin[e]``) for
    every ``j``, and its square to the variance.

    ``masks``: bool (regions × entries); ``regions``, ``variations``: positions on the
    region and variation axes; ``xbin``: the observable's bin per entry
    (:func:`bin_indices`); ``weights``: (k × entries) float64, shared by the variations
    that have the same weights (``weight_rows``)."""
    masks = np.ascontiguousarray(masks, dtype=np.bool_)
    regions = np.asarray(regions, dtype=np.int64)
    xbin = np.ascontiguousarray(xbin, dtype=np.int64)
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    weight_rows = np.asarray(weight_rows, dtype=np.int64)
    variations = np.asarray(variations, dtype=np.int64)
    _check(h, masks, regions, xbin, weights, weight_rows, variations)
    view = np.asarray(h.view(flow=True))
    if compiled:
        value, variance = view["value"], view["variance"]
        _fill(value, variance, masks, regions, xbin, weights, weight_rows, variations)
        return
    shape = view.shape
    idx, reg = [], []
    for k in range(len(regions)):
        i = np.flatnonzero(masks[k] & (xbin >= 0))
        idx.append(i)
        reg.append(np.full(i.size, regions[k], dtype=np.int64))
    if not idx:
        return
    idx, reg = np.concatenate(idx), np.concatenate(reg)
    base = reg * (shape[1] * shape[2]) + xbin[idx]
    flat = np.concatenate([base + variations[j] * shape[2] for j in range(len(variations))])
    w = np.concatenate([weights[weight_rows[j], idx] for j in range(len(variations))])
    H.add_flat(h, flat, w)
