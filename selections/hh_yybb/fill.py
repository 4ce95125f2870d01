"""Filling (region, variation, observable) histograms from region masks, in one pass.

The stages fill ``Hist(region, variation, observable)`` with Weight storage
(:func:`analysis.stats.histograms.make_hists`). A selection pass typically puts each event into
a few of many regions and fills it with several weights (one per systematic variation).
:func:`fill_regions` does that for all regions and variations of one observable at once,
without building the (region, event) index lists that ``Hist.fill`` or
:func:`analysis.stats.histograms.fill_indexed` need:

- compiled (numba): one loop over the masks adds every weight and its square straight into
  the histogram's storage;
- ``compiled=False``: the numpy reference (flat bin indices and one ``np.bincount`` per
  storage field, :func:`analysis.stats.histograms.add_flat`), which the tests compare it with.

Entries are added region by region and, within a region, in event order, so that on an
empty histogram both give the same sums bin by bin as a single ``fill`` would.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import hist
import numba
import numpy as np

from analysis.stats import histograms as H

__all__ = ["RegionFiller", "bin_indices", "fill_entries", "fill_regions"]


def bin_indices(h: hist.Hist, name: str, x: np.ndarray) -> np.ndarray:
    """Index of each ``x`` along axis ``name`` of ``h.view(flow=True)`` (under- and
    overflow to the flow bins, as ``fill`` does), −1 for non-finite values (not filled).

    Args:
        h: any histogram.
        name: the (non-category) axis.
        x: the values, in the axis unit (GeV for masses).

    Returns:
        int64 indices.
    """
    return RegionFiller(h, name).bins(x)


@numba.njit(cache=True, nogil=True)
def _fill_many(values: Any, variances: Any, masks: Any, regions: Any, xbins: Any, weights: Any,  # pragma: no cover
               weight_rows: Any, variations: Any) -> None:
    for k in range(masks.shape[0]):
        r = regions[k]
        for e in range(masks.shape[1]):
            if masks[k, e]:
                for o in range(len(values)):
                    b = xbins[o, e]
                    if b >= 0:
                        value = values[o]
                        variance = variances[o]
                        for j in range(variations.shape[0]):
                            w = weights[weight_rows[j], e]
                            value[r, variations[j], b] += w
                            variance[r, variations[j], b] += w * w


@numba.njit(cache=True, nogil=True)
def _fill_entries(values: Any, variances: Any, bits: Any, region_of_bit: Any, xbins: Any,  # pragma: no cover
                  variation: Any, weight: Any) -> None:
    for e in range(bits.shape[0]):
        b_e = bits[e]
        v = variation[e]
        w = weight[e]
        for i in range(region_of_bit.shape[0]):
            if b_e >> i & 1:
                r = region_of_bit[i]
                for o in range(len(values)):
                    b = xbins[o, e]
                    if b >= 0:
                        values[o][r, v, b] += w
                        variances[o][r, v, b] += w * w


@numba.njit(cache=True, nogil=True)
def _regular_bins(x: Any, lo: Any, delta: Any, n: Any, under: Any, last: Any, out: Any) -> None:  # pragma: no cover
    """Boost.Histogram's regular-axis index of each ``x`` (z = (x − lo)/delta; ⌊z·n⌋ for
    0 ≤ z < 1, −1 below, n above), then :meth:`RegionFiller.bins`'s flow shift and clip;
    −1 for non-finite ``x``."""
    for i in range(x.shape[0]):
        v = x[i]
        if not np.isfinite(v):
            out[i] = -1
            continue
        z = (v - lo) / delta
        if z < 1.0:
            k = int(z * n) if z >= 0.0 else -1
        else:
            k = n
        out[i] = min(max(k + under, 0), last)


def _check_range(caller: str, arr: np.ndarray, size: int, what: str) -> None:
    """IndexError unless every index in ``arr`` lies in [0, size)."""
    if arr.size and (arr.min() < 0 or arr.max() >= size):
        raise IndexError(f"{caller}: {what} index out of range")


class RegionFiller:
    """Fills one ``Hist(region, variation, observable)`` with Weight storage (or, with
    ``observable`` given, only computes bin indices along that axis of any histogram).

    The storage views and axis sizes are taken once: a stage fills the same histogram many
    times per chunk, and ``Hist.view`` alone costs ≈ 0.1 ms per call."""

    def __init__(self, h: hist.Hist, observable: str | None = None) -> None:
        names = list(h.axes.name)
        if observable is None:
            if names[:2] != ["region", "variation"] or len(names) != 3:
                raise ValueError(f"fill_regions needs a Hist(region, variation, observable), not axes {names}")
            observable = names[2]
            view: Any = np.asarray(h.view(flow=True))
            if getattr(view.dtype, "names", None) != ("value", "variance"):
                raise TypeError(f"fill_regions needs a Hist with Weight storage, not {h.storage_type.__name__}")
            self.h = h
            self.value, self.variance = view["value"], view["variance"]
            self.n_regions, self.n_variations = len(h.axes["region"]), len(h.axes["variation"])
        ax = h.axes[observable]
        self._axis = ax
        self._under = bool(ax.traits.underflow)
        self._last = len(ax) + int(ax.traits.underflow) + int(ax.traits.overflow) - 1
        self._regular: tuple[float, float] | None = None
        if isinstance(ax, hist.axis.Regular) and ax.transform is None and not ax.traits.circular:
            edges = np.asarray(ax.edges, dtype=np.float64)
            self._regular = (float(edges[0]), float(edges[-1] - edges[0]))
            # compiled only where it gives Boost.Histogram's index on the edges and their
            # neighbours (the bins of every other value follow from those)
            probe = np.concatenate([edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf),
                                    0.5 * (edges[1:] + edges[:-1]), [-1e300, 1e300, np.nan, np.inf]])
            if not np.array_equal(self._bins_compiled(probe), self._bins_boost(probe)):
                self._regular = None

    def bins(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """:func:`bin_indices` along this histogram's observable axis (compiled for a plain
        regular axis, else Boost.Histogram's ``index``); into ``out`` (int64) if given."""
        x = np.asarray(x, dtype=np.float64)
        if self._regular is not None:
            return self._bins_compiled(x, out)
        idx = self._bins_boost(x)
        if out is None:
            return idx
        out[...] = idx
        return out

    @staticmethod
    def bins_together(fillers: Sequence[RegionFiller], xs: Sequence[np.ndarray]) -> np.ndarray:
        """``np.stack([f.bins(x) for f, x in zip(fillers, xs)])``, each row written in place
        (no copy of the stacked bins)."""
        out = np.empty((len(fillers), len(xs[0]) if len(xs) else 0), dtype=np.int64)
        for row, f, x in zip(out, fillers, xs, strict=True):
            f.bins(x, out=row)
        return out

    def _bins_compiled(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        assert self._regular is not None
        lo, delta = self._regular
        if out is None:
            out = np.empty(len(x), dtype=np.int64)
        _regular_bins(np.ascontiguousarray(x, dtype=np.float64), lo, delta, len(self._axis), int(self._under),
                      self._last, out)
        return out

    def _bins_boost(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        idx = np.asarray(self._axis.index(x), dtype=np.int64)
        if self._under:
            idx += 1
        np.maximum(idx, 0, out=idx)  # as np.clip, without its overhead on small arrays
        np.minimum(idx, self._last, out=idx)
        idx[~np.isfinite(x)] = -1
        return idx

    def fill(self, masks: np.ndarray, regions: np.ndarray, xbin: np.ndarray, weights: np.ndarray,
             weight_rows: np.ndarray, variations: np.ndarray, *, compiled: bool = True) -> None:
        """:func:`fill_regions` into this histogram."""
        xbin = np.asarray(xbin, dtype=np.int64)
        RegionFiller.fill_together([self], masks, regions, xbin.reshape(1, -1), weights, weight_rows, variations,
                                   compiled=compiled)

    @staticmethod
    def fill_together(fillers: list[RegionFiller], masks: np.ndarray, regions: np.ndarray, xbins: np.ndarray,
                      weights: np.ndarray, weight_rows: np.ndarray, variations: np.ndarray, *,
                      compiled: bool = True) -> None:
        """:meth:`fill` of several histograms (observables) with the same entries, regions
        and weights at once: ``xbins[o]`` are the bins of ``fillers[o]`` (one scan of the
        masks instead of one per histogram). Histograms with the same region and variation
        axes only."""
        xbins = np.ascontiguousarray(xbins, dtype=np.int64)
        if xbins.ndim != 2 or xbins.shape[0] != len(fillers):
            raise ValueError(f"fill_together: xbins of shape {xbins.shape}, expected ({len(fillers)}, n)")
        if len({f.value.shape[:2] for f in fillers}) > 1:  # other region/variation axes: one by one
            for f, xb in zip(fillers, xbins, strict=True):
                f.fill(masks, regions, xb, weights, weight_rows, variations, compiled=compiled)
            return
        # the checks, once (the fillers share the region and variation axes)
        masks, regions, weights, weight_rows, variations = fillers[0]._checked(
            masks, regions, xbins[0], weights, weight_rows, variations)
        if not compiled:
            for f, xb in zip(fillers, xbins, strict=True):
                f._fill_numpy(masks, regions, xb, weights, weight_rows, variations)
            return
        _fill_many(tuple(f.value for f in fillers), tuple(f.variance for f in fillers), masks, regions, xbins,
                   weights, weight_rows, variations)

    def _checked(self, masks: np.ndarray, regions: np.ndarray, xbin: np.ndarray, weights: np.ndarray,
                 weight_rows: np.ndarray, variations: np.ndarray) -> tuple[np.ndarray, ...]:
        masks = np.ascontiguousarray(masks, dtype=np.bool_)
        regions = np.asarray(regions, dtype=np.int64)
        weights = np.ascontiguousarray(weights, dtype=np.float64)
        weight_rows = np.asarray(weight_rows, dtype=np.int64)
        variations = np.asarray(variations, dtype=np.int64)
        n = xbin.shape[0]
        if masks.ndim != 2 or masks.shape != (regions.shape[0], n):
            raise ValueError(f"fill_regions: masks of shape {masks.shape}, expected ({regions.shape[0]}, {n})")
        if weights.ndim != 2 or weights.shape[1] != n:
            raise ValueError(f"fill_regions: weights of shape {weights.shape}, expected (k, {n})")
        if weight_rows.shape != variations.shape:
            raise ValueError("fill_regions: one weight row per variation")
        for arr, size, what in ((regions, self.n_regions, "region"), (variations, self.n_variations, "variation"),
                                (weight_rows, weights.shape[0], "weight row")):
            _check_range("fill_regions", arr, size, what)
        return masks, regions, weights, weight_rows, variations

    def _fill_numpy(self, masks: np.ndarray, regions: np.ndarray, xbin: np.ndarray, weights: np.ndarray,
                    weight_rows: np.ndarray, variations: np.ndarray) -> None:
        shape = self.value.shape
        idx_list, reg_list = [], []
        for k in range(len(regions)):
            i = np.flatnonzero(masks[k] & (xbin >= 0))
            idx_list.append(i)
            reg_list.append(np.full(i.size, regions[k], dtype=np.int64))
        if not idx_list:
            return
        idx, reg = np.concatenate(idx_list), np.concatenate(reg_list)
        base = reg * (shape[1] * shape[2]) + xbin[idx]
        flat = np.concatenate([base + variations[j] * shape[2] for j in range(len(variations))])
        w = np.concatenate([weights[weight_rows[j], idx] for j in range(len(variations))])
        H.add_flat(self.h, flat, w)


def fill_regions(h: hist.Hist, masks: np.ndarray, regions: np.ndarray, xbin: np.ndarray, weights: np.ndarray,
                 weight_rows: np.ndarray, variations: np.ndarray, *, compiled: bool = True) -> None:
    """Add to ``h`` (``Hist(region, variation, observable)``, Weight storage), for every
    region ``k`` and every entry ``e`` with ``masks[k, e]`` and ``xbin[e] ≥ 0``, the weight
    ``weights[weight_rows[j], e]`` at (``regions[k]``, ``variations[j]``, ``xbin[e]``) for
    every ``j``, and its square to the variance.

    ``masks``: bool (regions × entries); ``regions``, ``variations``: positions on the
    region and variation axes; ``xbin``: the observable's bin per entry
    (:func:`bin_indices`); ``weights``: (k × entries) float64, shared by the variations
    that have the same weights (``weight_rows``). To fill one histogram many times, make
    one :class:`RegionFiller` and call its ``fill``."""
    RegionFiller(h).fill(masks, regions, xbin, weights, weight_rows, variations, compiled=compiled)


def fill_entries(fillers: list[RegionFiller], bits: np.ndarray, region_of_bit: np.ndarray, xbins: np.ndarray,
                 variation: np.ndarray, weight: np.ndarray, *, compiled: bool = True) -> None:
    """Add entries that each carry their own regions, variation and weight: entry ``e``
    goes, with ``weight[e]`` (and its square to the variance), to every region
    ``region_of_bit[i]`` whose bit ``i`` is set in ``bits[e]``, at variation
    ``variation[e]`` and bin ``xbins[o, e]`` of ``fillers[o]`` (skipped where −1). Entries
    are added in order, so each bin gets the same sum as from :func:`fill_regions` with the
    same entries in the same order. Histograms with the same region and variation axes."""
    bits = np.asarray(bits, dtype=np.int64)
    region_of_bit = np.asarray(region_of_bit, dtype=np.int64)
    xbins = np.ascontiguousarray(xbins, dtype=np.int64)
    variation = np.asarray(variation, dtype=np.int64)
    weight = np.asarray(weight, dtype=np.float64)
    n = bits.shape[0]
    if xbins.shape != (len(fillers), n) or variation.shape != (n,) or weight.shape != (n,):
        raise ValueError(f"fill_entries: xbins {xbins.shape}, variation {variation.shape}, weight {weight.shape} "
                         f"for {len(fillers)} histograms and {n} entries")
    if len({f.value.shape[:2] for f in fillers}) > 1:
        raise ValueError("fill_entries: the histograms need the same region and variation axes")
    if not n:
        return
    f0 = fillers[0]
    for arr, size, what in ((region_of_bit, f0.n_regions, "region"), (variation, f0.n_variations, "variation")):
        _check_range("fill_entries", arr, size, what)
    if bits.min() < 0 or bits.max() >= 1 << len(region_of_bit):
        raise IndexError(f"fill_entries: region bits beyond the {len(region_of_bit)} regions given")
    if compiled:
        _fill_entries(tuple(f.value for f in fillers), tuple(f.variance for f in fillers), bits, region_of_bit,
                      xbins, variation, weight)
        return
    for i, r in enumerate(region_of_bit):  # the numpy reference: per region, entries in order
        sel = np.flatnonzero((bits >> i) & 1)
        for f, xb in zip(fillers, xbins, strict=True):
            s = sel[xb[sel] >= 0]
            shape = f.value.shape
            flat = (r * shape[1] + variation[s]) * shape[2] + xb[s]
            H.add_flat(f.h, flat, weight[s])
