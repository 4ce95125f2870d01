"""SV1-style vertexing: the two-track fit against constructed vertices, vetoes, flavour response."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.core.config.taggers import TaggersConfig
from analysis.generation.tracking import perigee
from taggers.features import TaggingDataset, build_dataset
from taggers.algorithms.sv1 import (
    PION_MASS,
    PROTON_MASS,
    SV1_DEFAULTS,
    Helices,
    efficiency_by_flavour,
    fit_vertex,
    sv1,
    two_track_vertices,
)
from tests.taggers.conftest import B_FIELD_T, displaced_track, jet_record, make_events

K0S_MASS, LAMBDA_MASS = 0.497611, 1.115683


def _constructed_helices(
    rng: np.random.Generator, n: int, smear: bool
) -> tuple[Helices, np.ndarray]:
    """``n`` two-track vertices near the PV, tracks from the generator's ``perigee``."""
    vtx = np.stack([rng.normal(0, 3, n), rng.normal(0, 3, n), rng.normal(0, 5, n)], axis=-1)
    pt = rng.uniform(1, 20, (n, 2))
    phi = rng.uniform(-np.pi, np.pi, (n, 1)) + rng.normal(0, 0.2, (n, 2))
    eta = rng.normal(0, 1, (n, 1)) + rng.normal(0, 0.2, (n, 2))
    q = rng.choice([-1.0, 1.0], (n, 2))
    d0, zp, phi0 = perigee(
        *(np.repeat(vtx[:, i : i + 1], 2, axis=1) for i in range(3)),
        pt * np.cos(phi),
        pt * np.sin(phi),
        pt * np.sinh(eta),
        q,
        0.0,
        0.0,
        B_FIELD_T,
    )
    s_d0 = 0.01 + 0.08 / pt
    s_z0 = (0.02 + 0.095 / pt) * np.cosh(eta)
    if smear:
        d0 = d0 + rng.normal(0, 1, (n, 2)) * s_d0
        zp = zp + rng.normal(0, 1, (n, 2)) * s_z0
    h = Helices(
        d0=d0,
        z0=zp,
        phi=phi0,
        cot_theta=np.sinh(eta),
        kappa=q * 0.3e-3 * B_FIELD_T / pt,
        sigma_d0=s_d0,
        sigma_z0=s_z0,
        pt=pt,
    )
    return h, vtx


def test_two_track_fit_recovers_an_exact_vertex() -> None:
    h, vtx = _constructed_helices(np.random.default_rng(5), 500, smear=False)
    fit = fit_vertex(h, n_iter=3)
    assert np.abs(fit.position - vtx).max() < 1e-4  # mm: the helix model is the generator's
    assert np.all(fit.chi2 < 1e-3)
    # a straight-line fit (no re-linearisation, no curvature) is measurably worse
    straight = Helices(**{**h.__dict__, "kappa": np.zeros_like(h.kappa)})
    assert np.abs(fit_vertex(straight, n_iter=1).position - vtx).max() > 1e-3


def test_two_track_fit_is_within_its_errors() -> None:
    h, vtx = _constructed_helices(np.random.default_rng(6), 3000, smear=True)
    fit = fit_vertex(h, n_iter=3)
    d = fit.position - vtx
    pull = d / np.sqrt(np.einsum("nii->ni", fit.covariance))
    assert np.all(np.abs(pull.mean(axis=0)) < 0.1)
    assert np.all(np.abs(pull.std(axis=0) - 1) < 0.08)
    chi2_3 = np.einsum("ni,nij,nj->n", d, np.linalg.inv(fit.covariance), d)
    assert 0.93 < np.mean(chi2_3 < 7.815) < 0.97  # 95% quantile of chi2(3 dof)
    assert 0.9 < fit.chi2.mean() < 1.1  # one degree of freedom


def _decay(
    parent_p: float, m_parent: float, m1: float, m2: float, cos_star: float, direction: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Lab momenta (GeV) of a two-body decay of a parent moving along ``direction``."""
    pstar = np.sqrt((m_parent**2 - (m1 + m2) ** 2) * (m_parent**2 - (m1 - m2) ** 2)) / (
        2 * m_parent
    )
    u = direction / np.linalg.norm(direction)
    perp = np.cross(u, [0.0, 0.0, 1.0])
    perp /= np.linalg.norm(perp)
    gamma = np.hypot(parent_p, m_parent) / m_parent
    beta_gamma = parent_p / m_parent
    sin_star = np.sqrt(1 - cos_star**2)
    out = []
    for m, sign in ((m1, 1.0), (m2, -1.0)):
        e_star = np.hypot(pstar, m)
        p_par = gamma * sign * pstar * cos_star + beta_gamma * e_star
        out.append(p_par * u + sign * pstar * sin_star * perp)
    return out[0], out[1]


def _track_from_momentum(vertex: np.ndarray, p: np.ndarray, charge: int) -> dict:
    pt = float(np.hypot(p[0], p[1]))
    return displaced_track(
        vertex, pt, float(np.arcsinh(p[2] / pt)), float(np.arctan2(p[1], p[0])), charge
    )


def _one_vertex_dataset(
    vertex: np.ndarray, momenta: list[np.ndarray], charges: list[int], cfg: TaggersConfig
) -> TaggingDataset:
    direction = np.sum(momenta, axis=0)
    pt = float(np.hypot(direction[0], direction[1]))
    jet = jet_record(
        max(40.0, 3 * pt),
        float(np.arcsinh(direction[2] / pt)),
        float(np.arctan2(direction[1], direction[0])),
    )
    tracks = [_track_from_momentum(vertex, p, q) for p, q in zip(momenta, charges)]
    return build_dataset(make_events([{"event": 1, "Jet": [jet], "Track": tracks}]), cfg)


AXIS = np.array([np.cos(0.4), np.sin(0.4), np.sinh(0.3)])


@pytest.mark.parametrize(
    ("case", "flag"),
    [
        ("k0s", "k0s"),
        ("lambda", "lambda"),
        ("conversion", "conversion"),
        ("material", "material"),
        ("control", None),
    ],
)
def test_two_track_vetoes(cfg: TaggersConfig, case: str, flag: str | None) -> None:
    u = AXIS / np.linalg.norm(AXIS)
    if case == "k0s":
        vertex, (p1, p2), q = (
            4.0 * u,
            _decay(6.0, K0S_MASS, PION_MASS, PION_MASS, 0.3, AXIS),
            [1, -1],
        )
    elif case == "lambda":
        vertex, (p1, p2), q = (
            4.0 * u,
            _decay(8.0, LAMBDA_MASS, PROTON_MASS, PION_MASS, 0.0, AXIS),
            [1, -1],
        )
    elif case == "conversion":
        vertex, (p1, p2), q = 45.0 * u / np.hypot(u[0], u[1]), (2.0 * u, 3.0 * u), [1, -1]
    else:  # same-charge pair of mass ~0.1 GeV at the 88.5 mm layer (material) or at 70 mm
        r = 88.5 if case == "material" else 70.0
        vertex = r * u / np.hypot(u[0], u[1])
        p1, p2 = _decay(30.0, 0.12, PION_MASS / 10, PION_MASS / 10, 0.0, AXIS)
        q = [1, 1]
    ds = _one_vertex_dataset(vertex, [p1, p2], q, cfg)
    assert ds.jets["n_tracks"][0] == 2
    pairs = two_track_vertices(
        ds, cfg.sv1, b_field_t=B_FIELD_T, pv_resolution_mm={"xy": 0.01, "z": 0.03}
    )
    assert len(pairs["jet"]) == 1
    # collinear conversion tracks only touch: the vertex is poorly constrained along them
    tol = 5.0 if case == "conversion" else 1e-3
    assert np.allclose([pairs["x"][0], pairs["y"][0], pairs["z"][0]], vertex, atol=tol)
    assert pairs["pass_fit"][0]
    vetoes = ("k0s", "lambda", "conversion", "material")
    assert [v for v in vetoes if pairs[v][0]] == ([flag] if flag else [])
    assert pairs["good"][0] == (flag is None)
    out = sv1(ds, cfg.sv1, b_field_t=B_FIELD_T)
    assert out["sv1_has_sv"][0] == (flag is None)


def test_sv1_reconstructs_a_constructed_b_decay(cfg: TaggersConfig) -> None:
    u = AXIS / np.linalg.norm(AXIS)
    vertex = 6.0 * u
    rng = np.random.default_rng(9)
    momenta = [p * (u + rng.normal(0, 0.08, 3)) for p in (4.0, 6.0, 9.0, 3.0)]
    ds = _one_vertex_dataset(vertex, momenta, [1, -1, 1, -1], cfg)
    out = sv1(ds, cfg.sv1, b_field_t=B_FIELD_T, pv_resolution_mm={"xy": 0.01, "z": 0.03})
    assert out["sv1_has_sv"][0] and out["sv1_ntrk"][0] == 4 and out["sv1_n2t"][0] == 6
    assert np.allclose([out["sv1_x"][0], out["sv1_y"][0], out["sv1_z"][0]], vertex, atol=1e-3)
    assert out["sv1_l3d"][0] == pytest.approx(6.0, abs=1e-3)
    assert out["sv1_lxy"][0] == pytest.approx(6.0 * np.hypot(u[0], u[1]), abs=1e-3)
    assert out["sv1_dr"][0] < 0.05 and out["sv1_efrac"][0] == pytest.approx(1.0, abs=1e-6)
    tot = np.sum(momenta, axis=0)
    e = sum(np.sqrt(p @ p + PION_MASS**2) for p in momenta)
    assert out["sv1_mass"][0] == pytest.approx(np.sqrt(e**2 - tot @ tot), rel=1e-3)
    assert out["sv1_sig3d"][0] > 20


def test_sv1_on_ttbar(ttbar_ds: TaggingDataset, cfg: TaggersConfig) -> None:
    out = sv1(ttbar_ds, cfg.sv1)
    n = len(ttbar_ds)
    for k, v in out.items():
        assert v.shape == (n,) and np.all(np.isfinite(v.astype(float))), k
    eff = efficiency_by_flavour(out["sv1_has_sv"], ttbar_ds.jets["label"])
    assert eff["b"][2] > 200 and eff["light"][2] > 500
    assert eff["b"][0] > 0.4 and eff["light"][0] < 0.1
    assert eff["b"][0] > 4 * eff["light"][0] and eff["b"][0] > eff["c"][0] > eff["light"][0]
    has = out["sv1_has_sv"]
    assert np.all(out["sv1_ntrk"][has] >= 2) and np.all(out["sv1_n2t"][has] >= 1)
    assert np.all(out["sv1_mass"][has] > 0) and np.all(
        (out["sv1_efrac"][has] > 0) & (out["sv1_efrac"][has] <= 1 + 1e-6)
    )
    assert np.all(out["sv1_lxy"][has] > 0) and np.all(
        out["sv1_lxy"][has] < cfg.sv1.max_lxy_mm
    )
    for k, v in SV1_DEFAULTS.items():  # documented defaults without an SV
        assert np.all(out[f"sv1_{k}"][~has] == v), k
    assert np.all(out["sv1_ntrk"][~has] == 0)
    # b-jet vertices are heavier and further out than the few light-jet ones
    b = has & (ttbar_ds.jets["label"] == 5)
    assert np.median(out["sv1_mass"][b]) > 0.8 and np.median(out["sv1_sig3d"][b]) > 5
