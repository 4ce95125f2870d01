"""selections.hh_yybb.fill: region/variation fills against Hist.fill with labels."""

from __future__ import annotations

import hist
import numpy as np
import pytest

from analysis.stats import histograms as H
from selections.hh_yybb import fill as HF

REGIONS = ["a", "b", "c", "d"]
VARIATIONS = ["nominal", "sUp", "sDown"]


def make(edges: bool) -> hist.Hist:
    binning = {"m_yy": {"edges": [100.0, 110.0, 120.0, 125.0, 160.0]}} if edges else \
        {"m_yy": {"bins": 11, "range": [100.0, 160.0]}}
    return H.make_hists(["m_yy"], REGIONS, VARIATIONS, binning)["m_yy"]


def sample(n: int = 500, seed: int = 3):
    rng = np.random.default_rng(seed)
    x = rng.uniform(90.0, 170.0, n)  # under- and overflow included
    x[rng.random(n) < 0.05] = np.nan
    x[:3] = [np.inf, -np.inf, 100.0]  # non-finite: not filled; the lowest edge: first bin
    masks = rng.random((3, n)) < 0.4
    weights = rng.normal(1.0, 0.3, (2, n))
    return x, masks, weights


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("edges", [False, True])
def test_fill_regions_equals_hist_fill_with_labels(compiled, edges):
    x, masks, weights = sample()
    regions = np.array([2, 0, 3])                 # masks[k] fills region REGIONS[regions[k]]
    variations = np.array([0, 1, 2])
    weight_rows = np.array([0, 1, 0])            # sDown shares the nominal weights
    h = make(edges)
    HF.fill_regions(h, masks, regions, HF.bin_indices(h, "m_yy", x), weights, weight_rows, variations,
                    compiled=compiled)
    ref = make(edges)
    ok = np.isfinite(x)
    for k, r in enumerate(regions):
        for j, v in enumerate(variations):
            m = masks[k] & ok
            ref.fill(region=REGIONS[r], variation=VARIATIONS[v], m_yy=x[m], weight=weights[weight_rows[j]][m])
    np.testing.assert_allclose(h.values(flow=True), ref.values(flow=True), rtol=1e-13, atol=0)
    np.testing.assert_allclose(h.variances(flow=True), ref.variances(flow=True), rtol=1e-13, atol=0)
    assert h[{"region": "b"}].values(flow=True).sum() == 0   # no mask fills region "b"
    assert h.values(flow=True).sum() > 0


def test_fill_regions_adds_to_existing_contents_and_both_ways_agree():
    x, masks, weights = sample(seed=5)
    hs = []
    for compiled in (True, False):
        h = make(False)
        for _ in range(2):
            HF.fill_regions(h, masks, [0, 1, 2], HF.bin_indices(h, "m_yy", x), weights, [0, 1], [0, 2],
                            compiled=compiled)
        hs.append(h)
    np.testing.assert_allclose(hs[0].values(flow=True), hs[1].values(flow=True), rtol=1e-13)
    single = make(False)
    HF.fill_regions(single, masks, [0, 1, 2], HF.bin_indices(single, "m_yy", x), weights, [0, 1], [0, 2])
    np.testing.assert_allclose(hs[0].values(flow=True), 2 * single.values(flow=True), rtol=1e-13)


def test_bin_indices_flow_and_non_finite():
    h = make(False)
    idx = HF.bin_indices(h, "m_yy", np.array([99.0, 100.0, 159.999, 160.0, 1e9, np.nan, np.inf]))
    assert idx.tolist() == [0, 1, 11, 12, 12, -1, -1]


@pytest.mark.parametrize("axis", [
    hist.axis.Regular(11, 100.0, 160.0, name="x"),
    hist.axis.Regular(7, 0.1, 0.7, name="x"),                    # edges not exact in binary
    hist.axis.Regular(13, -1e-3, 1e5, name="x"),
    hist.axis.Regular(5, 0.0, 1.0, name="x", underflow=False),
    hist.axis.Regular(5, 0.0, 1.0, name="x", overflow=False),
    hist.axis.Regular(5, 1.0, 100.0, name="x", transform=hist.axis.transform.log),
    hist.axis.Variable([0.0, 1.0, 3.0, 10.0], name="x"),
])
def test_compiled_bins_equal_boost_histograms_index(axis):
    """The compiled regular-axis index gives Boost.Histogram's bins (after the flow shift)
    on dense values, every edge and its floating-point neighbours; other axes use Boost's."""
    h = hist.Hist(axis)
    f = HF.RegionFiller(h, "x")
    plain = isinstance(axis, hist.axis.Regular) and axis.transform is None
    assert (f._regular is not None) == plain
    e = np.asarray(axis.edges)
    lo, hi = e[0], e[-1]
    span = hi - lo
    x = np.concatenate([np.linspace(lo - 0.2 * span, hi + 0.2 * span, 200_003), e, np.nextafter(e, -np.inf),
                        np.nextafter(e, np.inf), [np.nan, np.inf, -np.inf, -1e300, 1e300]])
    np.testing.assert_array_equal(f.bins(x), f._bins_boost(x))
    assert (f.bins(x) == -1).sum() == 3  # NaN, ±inf: not filled


def test_fill_regions_rejects_bad_shapes_and_indices():
    h = make(False)
    x, masks, weights = sample(n=10)
    xb = HF.bin_indices(h, "m_yy", x)
    with pytest.raises(ValueError, match="masks of shape"):
        HF.fill_regions(h, masks[:2], [0, 1, 2], xb, weights, [0], [0])
    with pytest.raises(ValueError, match="weights of shape"):
        HF.fill_regions(h, masks, [0, 1, 2], xb, weights[:, :5], [0], [0])
    with pytest.raises(IndexError, match="variation index"):
        HF.fill_regions(h, masks, [0, 1, 2], xb, weights, [0], [7])
    with pytest.raises(IndexError, match="weight row"):
        HF.fill_regions(h, masks, [0, 1, 2], xb, weights, [2], [0])
    with pytest.raises(IndexError, match="region index"):
        HF.fill_regions(h, masks, [0, 1, 9], xb, weights, [0], [0])
    flat = hist.Hist(hist.axis.Regular(3, 0, 1, name="x"), storage=hist.storage.Weight())
    with pytest.raises(ValueError, match="Hist\\(region, variation, observable\\)"):
        HF.fill_regions(flat, masks, [0, 1, 2], xb, weights, [0], [0])


@pytest.mark.parametrize("compiled", [True, False])
def test_fill_together_equals_one_fill_per_histogram(compiled):
    x, masks, weights = sample(seed=9)
    y = x * 0.5 + 80.0  # a second observable on the same entries
    binning = {"m_yy": {"bins": 11, "range": [100.0, 160.0]}, "m_bb": {"bins": 7, "range": [80.0, 170.0]}}
    hs, ref = (H.make_hists(["m_yy", "m_bb"], REGIONS, VARIATIONS, binning) for _ in range(2))
    fillers = [HF.RegionFiller(hs["m_yy"]), HF.RegionFiller(hs["m_bb"])]
    xbins = np.stack([fillers[0].bins(x), fillers[1].bins(y)])
    HF.RegionFiller.fill_together(fillers, masks, [3, 1, 0], xbins, weights, [1, 0], [0, 2], compiled=compiled)
    for name, v in (("m_yy", x), ("m_bb", y)):
        HF.fill_regions(ref[name], masks, [3, 1, 0], HF.bin_indices(ref[name], name, v), weights, [1, 0], [0, 2])
        np.testing.assert_allclose(hs[name].values(flow=True), ref[name].values(flow=True), rtol=1e-13, atol=0)
        np.testing.assert_allclose(hs[name].variances(flow=True), ref[name].variances(flow=True), rtol=1e-13)
        assert hs[name].values(flow=True).sum() > 0
    with pytest.raises(ValueError, match="xbins of shape"):
        HF.RegionFiller.fill_together(fillers, masks, [3, 1, 0], xbins[:1], weights, [1, 0], [0, 2])
    with pytest.raises(IndexError, match="variation index"):
        HF.RegionFiller.fill_together(fillers, masks, [3, 1, 0], xbins, weights, [1, 0], [0, 5])


@pytest.mark.parametrize("compiled", [True, False])
def test_fill_entries_equals_hist_fill_per_entry(compiled):
    """Entries with their own region bits, variation and weight, against Hist.fill."""
    rng = np.random.default_rng(9)
    n = 400
    x, _, weights = sample(n, seed=9)
    bits = rng.integers(0, 8, n)                  # bits 0..2 -> regions d, a, c
    region_of_bit = np.array([3, 0, 2])
    variation = rng.integers(0, 3, n)
    h = make(True)
    HF.fill_entries([HF.RegionFiller(h)], bits, region_of_bit, HF.bin_indices(h, "m_yy", x)[None, :], variation,
                    weights[0], compiled=compiled)
    ref = make(True)
    ok = np.isfinite(x)
    for i, r in enumerate(region_of_bit):
        for v in range(3):
            m = ok & ((bits >> i) & 1).astype(bool) & (variation == v)
            ref.fill(region=REGIONS[r], variation=VARIATIONS[v], m_yy=x[m], weight=weights[0][m])
    np.testing.assert_allclose(h.values(flow=True), ref.values(flow=True), rtol=1e-13, atol=0)
    np.testing.assert_allclose(h.variances(flow=True), ref.variances(flow=True), rtol=1e-13, atol=0)
    assert h[{"region": "b"}].values(flow=True).sum() == 0
    assert h.values(flow=True).sum() > 0


def test_fill_entries_rejects_bits_beyond_the_regions_and_bad_shapes():
    h = make(False)
    f = [HF.RegionFiller(h)]
    xb = np.zeros((1, 2), dtype=np.int64)
    with pytest.raises(IndexError, match="bits"):
        HF.fill_entries(f, np.array([1, 8]), np.array([0, 1, 2]), xb, np.zeros(2), np.ones(2))
    with pytest.raises(IndexError, match="variation"):
        HF.fill_entries(f, np.array([1, 1]), np.array([0]), xb, np.array([0, 3]), np.ones(2))
    with pytest.raises(ValueError, match="xbins"):
        HF.fill_entries(f, np.array([1, 1, 1]), np.array([0]), xb, np.zeros(3), np.ones(3))


def test_bins_together_equals_stacked_bins():
    hs = [hist.Hist(hist.axis.Regular(11, 100.0, 160.0, name="x")),
          hist.Hist(hist.axis.Variable([0.0, 1.0, 3.0, 10.0], name="x"))]  # compiled and Boost's index
    fillers = [HF.RegionFiller(h, "x") for h in hs]
    rng = np.random.default_rng(8)
    xs = [rng.uniform(90.0, 170.0, 1000), rng.uniform(-1.0, 12.0, 1000)]
    xs[1][:5] = np.nan
    got = HF.RegionFiller.bins_together(fillers, xs)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, np.stack([f.bins(x) for f, x in zip(fillers, xs, strict=True)]))
    assert (got[1, :5] == -1).all() and HF.RegionFiller.bins_together([], []).shape == (0, 0)
