"""analysis.stats.fits: DSCB and sideband-exponential fits on samples with known parameters."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate

from analysis.stats import fits as F
SHAPE = (125.0, 1.6, 1.3, 4.0, 1.7, 9.0)  # mu, sigma, alpha_l, n_l, alpha_r, n_r


def sample_dscb(n: int, rng: np.random.Generator) -> np.ndarray:
    x = np.linspace(90.0, 170.0, 400001)
    c = F.dscb_cdf(x, *SHAPE)
    c = (c - c[0]) / (c[-1] - c[0])
    return np.interp(rng.uniform(size=n), c, x)


def test_dscb_cdf_is_the_integral_of_the_pdf():
    pts = [SHAPE[0] - SHAPE[1] * SHAPE[2], SHAPE[0] + SHAPE[1] * SHAPE[4]]
    for x in (115.0, 123.0, 124.5, 125.0, 126.9, 131.0):
        num, _ = integrate.quad(lambda u: F.dscb_pdf(np.array([u]), *SHAPE)[0], 60.0, x,
                                points=[p for p in pts if p < x] or None, limit=200)
        assert F.dscb_cdf(np.array([x]), *SHAPE)[0] - F.dscb_cdf(np.array([60.0]), *SHAPE)[0] == pytest.approx(num, abs=1e-9)
    assert F.dscb_cdf(np.array([1e6]), *SHAPE)[0] == pytest.approx(1.0, abs=1e-6)
    # continuous at the tail junctions
    for t in pts:
        lo, hi = F.dscb_pdf(np.array([t - 1e-9, t + 1e-9]), *SHAPE)
        assert lo == pytest.approx(hi, rel=1e-6)


def test_dscb_fit_recovers_the_resolution():
    rng = np.random.default_rng(5)
    h, edges = np.histogram(sample_dscb(20000, rng), bins=110, range=(105.0, 160.0))
    fit = F.fit_dscb(edges, h.astype(float))
    assert fit.valid
    assert fit.params["mu"] == pytest.approx(SHAPE[0], abs=4 * fit.errors["mu"])
    assert fit.params["sigma"] == pytest.approx(SHAPE[1], abs=4 * fit.errors["sigma"])
    assert fit.errors["sigma"] < 0.05
    assert fit.params["n"] == pytest.approx(h.sum(), rel=0.02)
    assert 1.4 < fit.extras["sigma68"] < 2.2 and fit.extras["fwhm_over_2p355"] == pytest.approx(SHAPE[1], rel=0.1)
    assert fit.integral(105.0, 160.0) == pytest.approx(fit.params["n"], rel=1e-9)


def test_weighted_fit_scales_the_uncertainty():
    rng = np.random.default_rng(6)
    h, edges = np.histogram(sample_dscb(5000, rng), bins=110, range=(105.0, 160.0))
    h = h.astype(float)
    plain = F.fit_dscb(edges, h)
    weighted = F.fit_dscb(edges, 0.25 * h, 0.0625 * h)  # every event weight 0.25
    assert weighted.params["sigma"] == pytest.approx(plain.params["sigma"], rel=1e-3)
    assert weighted.params["n"] == pytest.approx(0.25 * plain.params["n"], rel=1e-3)
    assert weighted.errors["sigma"] == pytest.approx(plain.errors["sigma"], rel=0.05)  # same effective statistics


def test_sideband_exponential_predicts_the_blinded_window():
    rng = np.random.default_rng(9)
    slope = -0.025
    x = 105.0 - np.log(rng.uniform(size=200000)) / -slope
    x = x[x < 160.0]
    h, edges = np.histogram(x, bins=55, range=(105.0, 160.0))
    fit = F.fit_exponential_sidebands(edges, h.astype(float))
    assert fit.valid and fit.ndof == 55 - 10 - 2
    assert fit.params["slope"] == pytest.approx(slope, abs=3 * fit.errors["slope"])
    window = ((x > 120) & (x < 130)).sum()
    assert fit.integral(120.0, 130.0) == pytest.approx(window, rel=0.03)  # true window yield, never fitted
    tmpl = F.continuum_template(fit, edges)
    assert tmpl.sum() == pytest.approx(fit.params["n"], rel=1e-9)
    # a signal peak inside the blinded window does not bias the continuum fit
    h2 = h.astype(float)
    h2[(edges[:-1] >= 123) & (edges[:-1] < 127)] += 5000.0
    fit2 = F.fit_exponential_sidebands(edges, h2)
    assert fit2.params["slope"] == pytest.approx(fit.params["slope"], rel=1e-6)


def test_fit_errors_on_empty_input():
    edges = np.linspace(105, 160, 56)
    with pytest.raises(ValueError, match="no events in the sidebands"):
        F.fit_exponential_sidebands(edges, np.zeros(55))
    with pytest.raises(ValueError, match="empty histogram"):
        F.fit_dscb(edges, np.zeros(55))


def test_fit_result_round_trip_and_curve():
    rng = np.random.default_rng(7)
    h, edges = np.histogram(sample_dscb(5000, rng), bins=110, range=(105.0, 160.0))
    fit = F.fit_dscb(edges, h.astype(float))
    back = F.FitResult.from_dict(fit.to_dict())
    assert back == fit and back.extras["sigma68"] == fit.extras["sigma68"]
    x, y = fit.curve(0.5, n=11)
    assert np.allclose(x, np.linspace(105.0, 160.0, 11))
    assert y[5] == pytest.approx(fit.integral(x[5] - 0.25, x[5] + 0.25))
