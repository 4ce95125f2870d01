"""Perigee geometry, resolution model and density on constructed tracks."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.generation.tracking import helix_radius_mm, ip_resolution, local_density, perigee


def _arr(*x: float) -> np.ndarray:
    return np.array(x, dtype=float)


@pytest.mark.parametrize("charge", [1.0, -1.0])
@pytest.mark.parametrize("pt", [1.0, 5.0, 100.0])
@pytest.mark.parametrize("phi", [0.3, -2.0, 3.0])
def test_track_produced_at_its_perigee_returns_it(charge: float, pt: float, phi: float) -> None:
    d0_true = 0.25  # mm; ATLAS perigee point is d0 * (-sin phi, cos phi)
    x0, y0 = -d0_true * np.sin(phi), d0_true * np.cos(phi)
    d0, zp, phi0 = perigee(
        _arr(x0), _arr(y0), _arr(1.5), _arr(pt * np.cos(phi)), _arr(pt * np.sin(phi)), _arr(pt),
        _arr(charge), _arr(0.0), _arr(0.0), 2.0,
    )
    assert d0[0] == pytest.approx(d0_true, abs=1e-9)
    assert zp[0] == pytest.approx(1.5, abs=1e-9)
    assert phi0[0] == pytest.approx(phi, abs=1e-9)


def test_prompt_track_has_zero_impact_parameter() -> None:
    d0, zp, _ = perigee(_arr(0.0), _arr(0.0), _arr(12.0), _arr(0.7), _arr(0.9), _arr(3.0),
                        _arr(-1.0), _arr(0.0), _arr(0.0), 2.0)
    assert abs(d0[0]) < 1e-12 and zp[0] == pytest.approx(12.0)


@pytest.mark.parametrize("charge", [1.0, -1.0])
@pytest.mark.parametrize("dphi", [0.05, -0.05])
def test_lifetime_sign_positive_for_decay_downstream_along_jet(charge: float, dphi: float) -> None:
    """A track from a vertex 3 mm along the jet axis (phi_jet = 0.4) gets a positive lifetime sign."""
    phi_jet, flight = 0.4, 3.0
    vx, vy = flight * np.cos(phi_jet), flight * np.sin(phi_jet)
    phi_trk, pt = phi_jet + dphi, 20.0
    d0, _, phi0 = perigee(_arr(vx), _arr(vy), _arr(0.0), _arr(pt * np.cos(phi_trk)),
                          _arr(pt * np.sin(phi_trk)), _arr(10.0), _arr(charge), _arr(0.0), _arr(0.0), 2.0)
    sign = np.sign(np.sin(phi_jet - phi0[0]) * d0[0])
    assert sign == 1.0
    # straight-line expectation |d0| = L |sin(dphi)| holds to the sagitta at 20 GeV
    assert abs(d0[0]) == pytest.approx(flight * abs(np.sin(dphi)), rel=0.02)


def test_low_pt_track_curvature_changes_d0_by_sagitta() -> None:
    """A 1 GeV track produced 100 mm out, radially: its d0 is the sagitta ~ r^2 / 2R."""
    r = 100.0
    d0, _, _ = perigee(_arr(r), _arr(0.0), _arr(0.0), _arr(1.0), _arr(0.0), _arr(0.0),
                       _arr(1.0), _arr(0.0), _arr(0.0), 2.0)
    radius = helix_radius_mm(np.array(1.0), 2.0)
    assert abs(d0[0]) == pytest.approx(r**2 / (2 * radius), rel=0.05)


def test_ip_resolution_grades_and_pt_dependence() -> None:
    scale = np.array([1.0, 1.3, 1.8, 2.6])
    theta = np.full(3, np.pi / 2)
    s = ip_resolution(np.array([1.0, 10.0, 1000.0]), theta, np.zeros(3, dtype=int), 0.01, 0.08, scale)
    assert s[0] == pytest.approx(np.hypot(0.01, 0.08))
    assert s[0] > s[1] > s[2] and s[2] == pytest.approx(0.01, rel=1e-3)
    g = ip_resolution(np.full(4, 5.0), np.full(4, 1.0), np.arange(4), 0.01, 0.08, scale)
    assert np.allclose(g / g[0], scale)


def test_local_density_counts_cell_neighbours_per_event() -> None:
    event = np.array([0, 0, 0, 1])
    eta = np.array([0.101, 0.105, 0.5, 0.101])
    phi = np.array([1.001, 1.005, 1.0, 1.001])
    assert local_density(event, eta, phi, 0.02).tolist() == [2, 2, 1, 1]
