"""SV1-style inclusive secondary vertex per jet, from two-track vertex fits.

Coordinates are relative to the reconstructed PV (the reference of d0 and z0), in mm.

1. **Tracks:** valid tracks of the jet with ``|d0|/σ(d0) > track_min_abs_sd0`` and
   ``pT > track_min_pt_gev`` (``taggers.sv1``).
2. **Two-track vertices:** every pair of those tracks in a jet is fitted
   (:func:`fit_vertex`): each track is a helix in the solenoid field (ATLAS perigee
   ``d0, z0, φ0, θ``, curvature ``q/R`` with ``R = pT / (0.3 B)``), linearised as its tangent
   line at the point of closest transverse approach to the current vertex estimate; the
   vertex minimises ``χ² = Σ (r_T/σ(d0))² + (r_z/σ(z0))²`` (transverse and longitudinal
   distances of closest approach) by weighted least squares, re-linearised
   ``fit_iterations`` times. A pair is kept when ``χ² < two_track_chi2_max`` (1 degree of
   freedom), ``L3d/σ(L3d) > two_track_min_significance`` (vertex covariance plus the PV
   resolution), ``Lxy < max_lxy_mm``, the flight direction points into the jet hemisphere
   (``require_forward``), and it is not vetoed as a K⁰s (m_ππ), Λ (m_pπ, proton = the higher
   momentum track), photon conversion (m_ee) — these three for opposite-charge pairs only —
   or a material interaction (``|Lxy − r_layer| < material_window_mm``).
3. **Merged vertex:** all tracks of the kept two-track vertices are fitted to one vertex;
   while the largest per-track χ² contribution exceeds ``merged_track_chi2_max`` that track
   is removed and the vertex refitted. Two or more remaining tracks make the SV.

Outputs (:func:`sv1`, per jet, prefix ``sv1_``): ``has_sv`` (bool), ``mass`` (GeV, charged
pion hypothesis, momenta at the vertex), ``efrac`` (energy of the vertex tracks over that
of all valid tracks of the jet), ``n2t`` (kept two-track vertices), ``ntrk`` (tracks in the
vertex), ``lxy``, ``l3d`` (mm), ``sig3d`` (L3d/σ), ``dr`` (ΔR between the PV→SV direction and
the jet axis), ``x, y, z`` (mm, vs the PV), ``chi2`` (of the merged fit). **Jets without an
SV:** ``has_sv = False``, ``ntrk = 0``, ``mass = efrac = lxy = l3d = sig3d = dr = −1``,
``x = y = z = chi2 = 0``; ``n2t`` still counts the kept two-track vertices.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.core.config.detector import DetectorConfig
from analysis.core.config.taggers import TaggersSv1
from taggers.features import FLAVOUR_NAMES, TaggingDataset, delta_phi

log = logging.getLogger(__name__)

__all__ = [
    "ELECTRON_MASS",
    "PION_MASS",
    "PROTON_MASS",
    "SV1_DEFAULTS",
    "SV1_FEATURES",
    "Helices",
    "VertexFit",
    "detector_parameters",
    "efficiency_by_flavour",
    "fit_vertex",
    "flight_significance",
    "invariant_mass",
    "sv1",
    "sv1_candidate_tracks",
    "two_track_vertices",
]

PION_MASS = 0.13957039  # GeV
PROTON_MASS = 0.93827209  # GeV
ELECTRON_MASS = 0.000510999  # GeV
_CURVATURE_PER_GEV_T = 0.3e-3  # 1/R [1/mm] = 0.3e-3 * B[T] / pT[GeV]

SV1_DEFAULTS: dict[str, float] = {
    "mass": -1.0, "efrac": -1.0, "lxy": -1.0, "l3d": -1.0, "sig3d": -1.0, "dr": -1.0,
    "x": 0.0, "y": 0.0, "z": 0.0, "chi2": 0.0,
}  # fmt: skip
SV1_FEATURES = ("mass", "efrac", "n2t", "ntrk", "lxy", "l3d", "sig3d", "dr")


# ---------------------------------------------------------------------------------------
# Track helices and the vertex fit
# ---------------------------------------------------------------------------------------
@dataclass
class Helices:
    """Track parameters (float64 arrays of one shape, e.g. ``(n_vertices, n_tracks)``).

    ``d0, z0`` (mm) w.r.t. the PV, ``phi`` = φ0, ``cot_theta``, ``kappa`` = q/R (1/mm, 0 for a
    straight line), ``sigma_d0, sigma_z0`` (mm), ``pt`` (GeV).
    """

    d0: np.ndarray
    z0: np.ndarray
    phi: np.ndarray
    cot_theta: np.ndarray
    kappa: np.ndarray
    sigma_d0: np.ndarray
    sigma_z0: np.ndarray
    pt: np.ndarray

    @classmethod
    def from_dataset(cls, ds: TaggingDataset, b_field_t: float) -> Helices:
        """``(n_jets, n_max)`` helices of the dataset's tracks (padding gives harmless values)."""
        t = ds.tracks
        f = {
            k: t[k].astype(np.float64)
            for k in ("d0", "z0sintheta", "d0_err", "z0sintheta_err", "pt", "eta", "phi")
        }
        sin_t = 1.0 / np.cosh(f["eta"])
        pt = np.where(t["valid"], f["pt"], 1.0)
        return cls(
            d0=f["d0"],
            z0=f["z0sintheta"] / sin_t,
            phi=f["phi"],
            cot_theta=np.sinh(f["eta"]),
            kappa=t["charge"].clip(-1, 1).astype(np.float64)
            * _CURVATURE_PER_GEV_T
            * b_field_t
            / pt,
            sigma_d0=np.where(t["valid"], f["d0_err"], 1.0),
            sigma_z0=np.where(t["valid"], f["z0sintheta_err"] / sin_t, 1.0),
            pt=pt,
        )

    def take(self, rows: np.ndarray, cols: np.ndarray) -> Helices:
        """``self.x[rows, cols]`` for every parameter (fancy indexing)."""
        return Helices(**{k: getattr(self, k)[rows, cols] for k in self.__dataclass_fields__})

    def point(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Position ``(x, y, z)`` (mm) and momentum azimuth at transverse arc length ``s`` (mm)
        from the perigee (φ(s) = φ0 − κ s; exact helix, stable for κ → 0)."""
        half = 0.5 * self.kappa * s
        chord = s * np.sinc(half / np.pi)  # s · sin(κs/2)/(κs/2)
        mid = self.phi - half
        x = -self.d0 * np.sin(self.phi) + chord * np.cos(mid)
        y = self.d0 * np.cos(self.phi) + chord * np.sin(mid)
        return x, y, self.z0 + s * self.cot_theta, self.phi - 2.0 * half


@dataclass
class VertexFit:
    """Result of :func:`fit_vertex` for ``n`` vertices of up to ``k`` tracks."""

    position: np.ndarray  # (n, 3) mm, relative to the PV
    covariance: np.ndarray  # (n, 3, 3) mm²
    chi2: np.ndarray  # (n,)
    track_chi2: np.ndarray  # (n, k), 0 for masked tracks
    phi_at_vertex: np.ndarray  # (n, k) momentum azimuth at the vertex
    n_tracks: np.ndarray  # (n,)


def fit_vertex(h: Helices, mask: np.ndarray | None = None, *, n_iter: int = 3) -> VertexFit:
    """Weighted least-squares vertex of the helices along the last axis (masked tracks skipped).

    Starts from the tangent lines at the perigees, then re-linearises each helix at its
    point of closest transverse approach to the current vertex ``n_iter`` times. Vertices
    with fewer than 2 tracks get position 0 and an infinite χ².
    """
    m = np.ones(h.d0.shape, bool) if mask is None else np.asarray(mask, bool)
    n_trk = m.sum(axis=-1)
    w_t = np.where(m, 1.0 / h.sigma_d0**2, 0.0)
    w_z = np.where(m, 1.0 / h.sigma_z0**2, 0.0)
    s = np.zeros(h.d0.shape)
    pos = np.zeros(h.d0.shape[:-1] + (3,))
    cov = np.zeros(h.d0.shape[:-1] + (3, 3))
    for it in range(n_iter + 1):
        if it > 0:  # arc of closest transverse approach to the current vertex (2 fixed-point steps)
            for _ in range(2):
                x, y, _z, ph = h.point(s)
                s = s + np.cos(ph) * (pos[..., None, 0] - x) + np.sin(ph) * (pos[..., None, 1] - y)
        x, y, z, ph = h.point(s)
        ux, uy = np.cos(ph), np.sin(ph)
        nx, ny = -uy, ux
        a_t = nx * x + ny * y
        a_z = z - h.cot_theta * (ux * x + uy * y)
        jz = np.stack([-h.cot_theta * ux, -h.cot_theta * uy, np.ones_like(ux)], axis=-1)
        jt = np.stack([nx, ny, np.zeros_like(nx)], axis=-1)
        mat = np.einsum("...k,...ki,...kj->...ij", w_t, jt, jt) + np.einsum(
            "...k,...ki,...kj->...ij", w_z, jz, jz
        )
        rhs = np.einsum("...k,...ki->...i", w_t * a_t, jt) + np.einsum(
            "...k,...ki->...i", w_z * a_z, jz
        )
        ok = n_trk >= 2
        reg = 1e-12 * np.trace(mat, axis1=-2, axis2=-1)[..., None, None] * np.eye(3)
        mat_ok = np.where(ok[..., None, None], mat + reg, np.eye(3))
        cov = np.linalg.inv(mat_ok)
        pos = np.where(ok[..., None], np.einsum("...ij,...j->...i", cov, rhs), 0.0)
    r_t = a_t - np.einsum("...ki,...i->...k", jt, pos)
    r_z = a_z - np.einsum("...ki,...i->...k", jz, pos)
    trk_chi2 = w_t * r_t**2 + w_z * r_z**2
    chi2 = np.where(ok, trk_chi2.sum(axis=-1), np.inf)
    return VertexFit(pos, np.where(ok[..., None, None], cov, 0.0), chi2, trk_chi2, ph, n_trk)


# ---------------------------------------------------------------------------------------
# Kinematics of track sets
# ---------------------------------------------------------------------------------------
def _momenta(h: Helices, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return h.pt * np.cos(phi), h.pt * np.sin(phi), h.pt * h.cot_theta


def invariant_mass(
    h: Helices, phi: np.ndarray, masses: np.ndarray | float, mask: np.ndarray | None = None
) -> np.ndarray:
    """Invariant mass (GeV) of the tracks on the last axis with the given mass hypotheses."""
    px, py, pz = _momenta(h, phi)
    m = np.ones(px.shape, bool) if mask is None else mask
    e = np.sqrt(px**2 + py**2 + pz**2 + np.broadcast_to(masses, px.shape) ** 2)
    tot = [np.where(m, a, 0.0).sum(axis=-1) for a in (e, px, py, pz)]
    return np.sqrt(np.maximum(tot[0] ** 2 - tot[1] ** 2 - tot[2] ** 2 - tot[3] ** 2, 0.0))


def flight_significance(pos: np.ndarray, cov: np.ndarray, pv_cov: np.ndarray) -> np.ndarray:
    """``L3d / σ(L3d)`` with σ² = L̂ᵀ (C_SV + C_PV) L̂ (0 when L3d = 0)."""
    l3d = np.linalg.norm(pos, axis=-1)
    unit = pos / np.where(l3d > 0, l3d, 1.0)[..., None]
    var = np.einsum("...i,...ij,...j->...", unit, cov + pv_cov, unit)
    return np.where(l3d > 0, l3d / np.sqrt(np.maximum(var, 1e-30)), 0.0)


def _jet_direction(eta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    return np.stack([np.cos(phi), np.sin(phi), np.sinh(eta)], axis=-1)


def _direction_dr(pos: np.ndarray, jet_eta: np.ndarray, jet_phi: np.ndarray) -> np.ndarray:
    lxy = np.hypot(pos[..., 0], pos[..., 1])
    eta = np.arcsinh(pos[..., 2] / np.maximum(lxy, 1e-12))
    phi = np.arctan2(pos[..., 1], pos[..., 0])
    return np.hypot(eta - jet_eta, delta_phi(phi, jet_phi))


# ---------------------------------------------------------------------------------------
# SV1
# ---------------------------------------------------------------------------------------
def detector_parameters(
    ds: TaggingDataset,
    b_field_t: float | None = None,
    pv_resolution_mm: Mapping[str, float] | None = None,
) -> tuple[float, np.ndarray]:
    """Magnetic field (T) and PV covariance (mm²): explicit values, else the dataset's
    ``meta['detector']`` (from the ntuple metadata), else the detector schema defaults."""
    det: Any = ds.meta.get("detector")
    if (b_field_t is None or pv_resolution_mm is None) and det is None:
        log.warning("no detector parameters in the dataset: using the detector schema defaults")
        default = DetectorConfig.default()
        det = {"magnetic_field_t": default.magnetic_field_t,
               "pv_resolution_mm": default.pv_resolution_mm.to_dict()}
    b = float(b_field_t if b_field_t is not None else det["magnetic_field_t"])
    res = pv_resolution_mm if pv_resolution_mm is not None else det["pv_resolution_mm"]
    return b, np.diag([res["xy"] ** 2, res["xy"] ** 2, res["z"] ** 2])


def sv1_candidate_tracks(ds: TaggingDataset, sv: TaggersSv1) -> np.ndarray:
    """``(n_jets, n_max)`` mask of the tracks that enter the vertexing."""
    t = ds.tracks
    sig = np.abs(t["d0"].astype(np.float64)) / np.where(t["valid"], t["d0_err"], 1.0)
    return t["valid"] & (sig > sv.track_min_abs_sd0) & (t["pt"] > sv.track_min_pt_gev)


def two_track_vertices(
    ds: TaggingDataset,
    sv: TaggersSv1,
    *,
    b_field_t: float | None = None,
    pv_resolution_mm: Mapping[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """Fit all two-track vertices of all jets; flat arrays, one entry per pair.

    Args:
        ds: the jets and their tracks.
        sv: ``taggers.sv1`` (track selection, fit and veto cuts).
        b_field_t: the solenoid field in T (default: the dataset's detector metadata).
        pv_resolution_mm: the PV resolution ``{"xy", "z"}`` in mm (default: as ``b_field_t``).

    Returns:
        ``jet``, ``i``, ``j`` (track slots), ``x, y, z`` (mm), ``chi2``, ``lxy``, ``l3d``
        (mm), ``sig3d``, ``mass`` (ππ, GeV), ``opposite`` and the flags ``pass_fit`` (χ²,
        significance, Lxy, direction), ``k0s``, ``lambda``, ``conversion``, ``material`` and
        ``good`` (passes and not vetoed).
    """
    b, pv_cov = detector_parameters(ds, b_field_t, pv_resolution_mm)
    cand = sv1_candidate_tracks(ds, sv)
    n_max = ds.n_max
    ii, jj = np.triu_indices(n_max, k=1)
    jet, p = np.nonzero(cand[:, ii] & cand[:, jj])
    i, j = ii[p], jj[p]
    helices = Helices.from_dataset(ds, b)
    rows = np.stack([jet, jet], axis=-1)
    cols = np.stack([i, j], axis=-1)
    h = helices.take(rows, cols)
    fit = fit_vertex(h, n_iter=int(sv.fit_iterations))
    pos = fit.position
    lxy = np.hypot(pos[:, 0], pos[:, 1])
    l3d = np.linalg.norm(pos, axis=-1)
    sig = flight_significance(pos, fit.covariance, pv_cov)
    jdir = _jet_direction(
        ds.jets["eta"][jet].astype(np.float64), ds.jets["phi"][jet].astype(np.float64)
    )
    forward = np.einsum("ni,ni->n", pos, jdir) > 0
    charge = ds.tracks["charge"][rows, cols].astype(np.int64)
    opposite = charge[:, 0] * charge[:, 1] < 0
    m_pipi = invariant_mass(h, fit.phi_at_vertex, PION_MASS)
    p_mag = h.pt * np.sqrt(1 + h.cot_theta**2)
    proton_first = p_mag[:, 0] >= p_mag[:, 1]
    masses_ppi = np.where(proton_first[:, None], [PROTON_MASS, PION_MASS], [PION_MASS, PROTON_MASS])
    m_ppi = invariant_mass(h, fit.phi_at_vertex, masses_ppi)
    m_ee = invariant_mass(h, fit.phi_at_vertex, ELECTRON_MASS)
    k0s = opposite & (np.abs(m_pipi - sv.k0s_mass_gev) < sv.k0s_window_gev)
    lam = opposite & (np.abs(m_ppi - sv.lambda_mass_gev) < sv.lambda_window_gev)
    conv = opposite & (m_ee < sv.conversion_mass_max_gev)
    radii = np.asarray(sv.material_radii_mm, dtype=np.float64)
    material = (
        (np.abs(lxy[:, None] - radii[None, :]) < sv.material_window_mm).any(axis=1)
        if radii.size
        else np.zeros(lxy.size, bool)
    )
    pass_fit = (
        (fit.chi2 < sv.two_track_chi2_max)
        & (sig > sv.two_track_min_significance)
        & (lxy < sv.max_lxy_mm)
        & (forward | (not sv.require_forward))
    )
    good = pass_fit & ~k0s & ~lam & ~conv & ~material
    return {
        "jet": jet, "i": i, "j": j, "x": pos[:, 0], "y": pos[:, 1], "z": pos[:, 2],
        "chi2": fit.chi2, "lxy": lxy, "l3d": l3d, "sig3d": sig, "mass": m_pipi,
        "opposite": opposite,
        "pass_fit": pass_fit, "k0s": k0s, "lambda": lam, "conversion": conv, "material": material,
        "good": good,
    }  # fmt: skip


def sv1(
    ds: TaggingDataset,
    sv: TaggersSv1,
    *,
    b_field_t: float | None = None,
    pv_resolution_mm: Mapping[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """SV1 features of every jet (keys ``sv1_<name>``, see the module docstring).

    Args:
        ds: the jets and their tracks.
        sv: ``taggers.sv1``.
        b_field_t, pv_resolution_mm: as :func:`two_track_vertices`.

    Returns:
        One array per feature (float32; ``sv1_has_sv`` bool, ``sv1_n2t``/``sv1_ntrk`` int32).
    """
    b, pv_cov = detector_parameters(ds, b_field_t, pv_resolution_mm)
    n = len(ds)
    pairs = two_track_vertices(
        ds,
        sv,
        b_field_t=b,
        pv_resolution_mm={"xy": float(np.sqrt(pv_cov[0, 0])), "z": float(np.sqrt(pv_cov[2, 2]))},
    )
    good = pairs["good"]
    n2t = np.bincount(pairs["jet"][good], minlength=n).astype(np.int32)
    in_sv = np.zeros((n, ds.n_max), dtype=bool)
    in_sv[pairs["jet"][good], pairs["i"][good]] = True
    in_sv[pairs["jet"][good], pairs["j"][good]] = True

    rows = np.flatnonzero(in_sv.sum(axis=1) >= 2)
    helices = Helices.from_dataset(ds, b).take(rows[:, None], np.arange(ds.n_max)[None, :])
    mask = in_sv[rows]
    n_iter = int(sv.fit_iterations)
    fit = fit_vertex(helices, mask, n_iter=n_iter)
    for _ in range(ds.n_max):  # remove the worst track while it is above the cut
        worst = np.argmax(np.where(mask, fit.track_chi2, -1.0), axis=1)
        worst_chi2 = fit.track_chi2[np.arange(rows.size), worst]
        drop = (worst_chi2 > sv.merged_track_chi2_max) & (mask.sum(axis=1) >= 2)
        if not drop.any():
            break
        mask[np.flatnonzero(drop), worst[drop]] = False
        fit = fit_vertex(helices, mask, n_iter=n_iter)
    ok = mask.sum(axis=1) >= 2

    out: dict[str, np.ndarray] = {
        f"sv1_{k}": np.full(n, v, dtype=np.float32) for k, v in SV1_DEFAULTS.items()
    }
    out["sv1_has_sv"] = np.zeros(n, dtype=bool)
    out["sv1_ntrk"] = np.zeros(n, dtype=np.int32)
    out["sv1_n2t"] = n2t
    r = rows[ok]
    pos, cov, mk = fit.position[ok], fit.covariance[ok], mask[ok]
    h_ok = Helices(**{k: getattr(helices, k)[ok] for k in Helices.__dataclass_fields__})
    mass = invariant_mass(h_ok, fit.phi_at_vertex[ok], PION_MASS, mk)
    valid = ds.tracks["valid"][r]
    p2 = h_ok.pt**2 * (1 + h_ok.cot_theta**2)
    energy = np.sqrt(p2 + PION_MASS**2)
    efrac = np.where(mk, energy, 0).sum(axis=1) / np.where(valid, energy, 0).sum(axis=1)
    jet_eta = ds.jets["eta"][r].astype(np.float64)
    jet_phi = ds.jets["phi"][r].astype(np.float64)
    values = {
        "mass": mass,
        "efrac": efrac,
        "lxy": np.hypot(pos[:, 0], pos[:, 1]),
        "l3d": np.linalg.norm(pos, axis=1),
        "sig3d": flight_significance(pos, cov, pv_cov),
        "dr": _direction_dr(pos, jet_eta, jet_phi),
        "x": pos[:, 0],
        "y": pos[:, 1],
        "z": pos[:, 2],
        "chi2": fit.chi2[ok],
    }
    for k, v in values.items():
        out[f"sv1_{k}"][r] = v
    out["sv1_has_sv"][r] = True
    out["sv1_ntrk"][r] = mk.sum(axis=1)
    log.info(
        "SV1: %d two-track vertices kept of %d, SV in %d of %d jets",
        int(good.sum()),
        good.size,
        int(ok.sum()),
        n,
    )
    return out


def efficiency_by_flavour(
    has_sv: np.ndarray, label: np.ndarray
) -> dict[str, tuple[float, float, int]]:
    """``{flavour: (efficiency, binomial error, n_jets)}`` for b, c, light and τ jets.

    Args:
        has_sv: whether each jet has an SV (``sv1(...)["sv1_has_sv"]``).
        label: HadronConeExclTruthLabelID of each jet.
    """
    out = {}
    for lab, name in FLAVOUR_NAMES.items():
        sel = label == lab
        n = int(sel.sum())
        if n:
            eff = float(has_sv[sel].mean())
            out[name] = (eff, float(np.sqrt(eff * (1 - eff) / n)), n)
    return out

