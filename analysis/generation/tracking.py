"""Parametric inner-detector simulation: perigee parameters, resolutions, grades, efficiency.

Conventions (physics-reference §2, docs/ntuple-format.md):

* helix in a solenoid of field ``B`` (T) along +z: radius ``R = pT / (0.3 B |q|)`` m;
* ATLAS perigee sign: the perigee point is ``d0 · (−sin φ0, cos φ0)`` relative to the
  reference point (the reconstructed primary vertex);
* σ(d0) = a ⊕ b / (pT √sinθ), σ(z0 sinθ) likewise, both scaled by a per-grade factor; a
  fraction of tracks gets a wider (non-Gaussian) smearing while the reported error stays
  nominal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.core.config.detector import TrackingConfig
from analysis.generation.record import FlatRecord, charge_of
from analysis.generation.truth import (
    ORIGIN_FAKE,
    ORIGIN_OTHER_SECONDARY,
    Ancestry,
    track_origin,
)

__all__ = [
    "GRADE_GOOD",
    "GRADE_NO_INNERMOST",
    "GRADE_NO_INNER_TWO",
    "GRADE_SHARED",
    "MM_PER_M",
    "Tracks",
    "helix_radius_mm",
    "ip_resolution",
    "local_density",
    "perigee",
    "simulate_tracks",
]

#: hit-pattern grades: all hits, shared hits, no innermost-layer hit, no hit in the two inner layers
GRADE_GOOD, GRADE_SHARED, GRADE_NO_INNERMOST, GRADE_NO_INNER_TWO = 0, 1, 2, 3
MM_PER_M = 1000.0


def helix_radius_mm(pt: np.ndarray, b_field_t: float) -> np.ndarray:
    """Transverse radius of curvature (mm) of a unit-charge track of ``pt`` (GeV)."""
    return pt / (0.3 * b_field_t) * MM_PER_M


def perigee(
    x0: np.ndarray,
    y0: np.ndarray,
    z0: np.ndarray,
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    charge: np.ndarray,
    ref_x: np.ndarray,
    ref_y: np.ndarray,
    b_field_t: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Perigee of helices produced at ``(x0, y0, z0)`` (mm) with momentum ``p`` (GeV).

    Returns ``(d0, z_perigee, phi0)``: the signed transverse impact parameter (mm, ATLAS
    convention) w.r.t. the reference point ``(ref_x, ref_y)``, the z of the point of closest
    transverse approach (mm) and the momentum azimuth there (rad).
    """
    pt = np.hypot(px, py)
    phi = np.arctan2(py, px)
    s = np.sign(charge)
    radius = helix_radius_mm(pt, b_field_t)
    # centre of the circle: the Lorentz force on a positive charge points along (sin φ, −cos φ)
    xc = x0 + s * radius * np.sin(phi)
    yc = y0 - s * radius * np.cos(phi)
    wx, wy = ref_x - xc, ref_y - yc
    dist = np.hypot(wx, wy)
    rho_x, rho_y = wx / dist, wy / dist  # unit vector centre -> perigee
    xp, yp = xc + radius * rho_x, yc + radius * rho_y
    ux, uy = s * rho_y, -s * rho_x  # momentum direction at the perigee
    d0 = -((xp - ref_x) * uy - (yp - ref_y) * ux)
    phi0 = np.arctan2(uy, ux)
    # signed turning angle from the production point to the perigee, then the arc length
    r0x, r0y = (x0 - xc) / radius, (y0 - yc) / radius
    dalpha = np.arctan2(r0x * rho_y - r0y * rho_x, r0x * rho_x + r0y * rho_y)
    arc = -s * dalpha * radius  # > 0 when the perigee lies ahead of the production point
    z_perigee = z0 + arc * pz / pt
    return d0, z_perigee, phi0


def ip_resolution(
    pt: np.ndarray, theta: np.ndarray, grade: np.ndarray, a_mm: float, b_mm_gev: float,
    grade_scale: np.ndarray,
) -> np.ndarray:
    """σ = (a ⊕ b / (pT √sinθ)) × scale(grade), in mm.

    Args:
        pt: transverse momenta (GeV).
        theta: polar angles (rad).
        grade: hit-pattern grade of each track (index into ``grade_scale``).
        a_mm: constant term (mm).
        b_mm_gev: multiple-scattering term (mm GeV).
        grade_scale: resolution factor per grade.

    Returns:
        The resolution of each track (mm).
    """
    sin_t = np.abs(np.sin(theta))
    sigma = np.hypot(a_mm, b_mm_gev / (pt * np.sqrt(sin_t)))
    return sigma * grade_scale[grade]


def local_density(
    event: np.ndarray, eta: np.ndarray, phi: np.ndarray, cell: float
) -> np.ndarray:
    """Number of particles sharing each particle's η-φ cell of size ``cell`` in its event.

    Args:
        event: event index of each particle.
        eta, phi: direction of each particle (φ in rad).
        cell: cell size in η and in φ (rad).

    Returns:
        The count (including the particle itself) per particle.
    """
    ieta = np.floor((eta + 10.0) / cell).astype(np.int64)
    iphi = np.floor((phi + np.pi) / cell).astype(np.int64)
    n_eta = int(20.0 / cell) + 2
    n_phi = int(2 * np.pi / cell) + 2
    key = (event * n_eta + ieta) * n_phi + iphi
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    return counts[inverse]


@dataclass
class Tracks:
    """Flat reconstructed tracks of a batch (one entry per track, ``event`` = event index)."""

    event: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    charge: np.ndarray
    d0: np.ndarray
    z0: np.ndarray
    d0_err: np.ndarray
    z0_err: np.ndarray
    grade: np.ndarray
    origin: np.ndarray
    gen_pdg_id: np.ndarray
    particle: np.ndarray  # global index of the producing particle (-1 for fakes)

    def take(self, sel: np.ndarray) -> Tracks:
        """The tracks selected by ``sel`` (an index array or boolean mask)."""
        return Tracks(**{k: getattr(self, k)[sel] for k in _TRACK_FIELDS})

    @staticmethod
    def concatenate(parts: list[Tracks]) -> Tracks:
        """All tracks of ``parts``, in order."""
        return Tracks(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in _TRACK_FIELDS})


_TRACK_FIELDS = (
    "event", "pt", "eta", "phi", "charge", "d0", "z0", "d0_err", "z0_err", "grade", "origin",
    "gen_pdg_id", "particle",
)


@dataclass
class _Candidates:
    """Charged objects that may leave a track (particles or conversion electrons)."""

    event: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    charge: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    vz: np.ndarray
    origin: np.ndarray
    pdg_id: np.ndarray
    particle: np.ndarray


def _conversions(
    rec: FlatRecord, final_photon: np.ndarray, rng: np.random.Generator, cfg: TrackingConfig
) -> _Candidates:
    """e⁺e⁻ pairs from photon conversions in the inner-detector material (r < 300 mm)."""
    idx = final_photon
    pt = rec.pt[idx]
    theta = 2 * np.arctan(np.exp(-rec.eta[idx]))
    x0_frac = cfg.material_x0_central / np.clip(np.abs(np.sin(theta)), 1e-3, None)
    p_conv = 1.0 - np.exp(-7.0 / 9.0 * x0_frac)
    converts = rng.random(idx.size) < p_conv
    idx, pt = idx[converts], pt[converts]
    radius = rng.uniform(30.0, 300.0, idx.size)
    phi = rec.phi[idx]
    cx = rec.vx[idx] + radius * np.cos(phi)
    cy = rec.vy[idx] + radius * np.sin(phi)
    cz = rec.vz[idx] + radius * rec.pz[idx] / pt
    frac = rng.random(idx.size)  # Bethe-Heitler energy sharing, flat to a good approximation
    fr = np.concatenate([frac, 1.0 - frac])
    both = np.concatenate([idx, idx])
    return _Candidates(
        event=rec.event[both],
        px=rec.px[both] * fr,
        py=rec.py[both] * fr,
        pz=rec.pz[both] * fr,
        charge=np.concatenate([np.ones(idx.size), -np.ones(idx.size)]).astype(np.float32),
        vx=np.concatenate([cx, cx]),
        vy=np.concatenate([cy, cy]),
        vz=np.concatenate([cz, cz]),
        origin=np.full(both.size, ORIGIN_OTHER_SECONDARY, dtype=np.int8),
        pdg_id=np.concatenate([-11 * np.ones(idx.size), 11 * np.ones(idx.size)]).astype(np.int64),
        particle=both,
    )


def simulate_tracks(
    rec: FlatRecord,
    anc: Ancestry,
    pv_reco: np.ndarray,
    rng: np.random.Generator,
    cfg: TrackingConfig,
    b_field_t: float,
) -> Tracks:
    """Reconstructed tracks for a batch.

    Args:
        rec: the flat event record (GeV, mm).
        anc: its ancestry (:func:`analysis.generation.truth.ancestry`).
        pv_reco: ``(n_events, 3)`` reconstructed primary vertex (mm), the impact-parameter
            reference.
        rng: the shard's random generator.
        cfg: the ``detector.tracking`` section.
        b_field_t: solenoid field (T).

    Returns:
        The reconstructed and fake tracks, in no particular order (pT in GeV, d0/z0 in mm).
    """
    final = rec.is_final
    pdg = rec.pdg_id
    charge_all = charge_of(pdg)
    charged = final & (charge_all != 0)
    idx = np.flatnonzero(charged)
    cand_particles = _Candidates(
        event=rec.event[idx], px=rec.px[idx], py=rec.py[idx], pz=rec.pz[idx],
        charge=charge_all[idx], vx=rec.vx[idx], vy=rec.vy[idx], vz=rec.vz[idx],
        origin=track_origin(anc, idx), pdg_id=pdg[idx], particle=idx,
    )
    final_photon = np.flatnonzero(final & (pdg == 22) & (rec.pt > cfg.pt_min_gev))
    conv = _conversions(rec, final_photon, rng, cfg)
    cand = _Candidates(
        **{
            k: np.concatenate([getattr(cand_particles, k), getattr(conv, k)])
            for k in _Candidates.__dataclass_fields__
        }
    )

    pt = np.hypot(cand.px, cand.py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(cand.pz / pt)
    phi = np.arctan2(cand.py, cand.px)
    density = local_density(cand.event, np.nan_to_num(eta, nan=99.0), phi, cfg.density_cell)
    r_prod = np.hypot(cand.vx, cand.vy)

    # acceptance, then efficiency (flat, dense-core loss, production radius)
    accept = (pt > cfg.pt_min_gev) & (np.abs(eta) < cfg.eta_max)
    r_full, r_max = cfg.full_efficiency_radius_mm, cfg.max_production_radius_mm
    radial = np.clip(1.0 - (r_prod - r_full) / (r_max - r_full), 0.0, 1.0)
    eff = cfg.efficiency * np.clip(1.0 - cfg.density_efficiency_loss * (density - 1), 0.0, 1.0)
    eff = eff * radial
    u_eff = rng.random(pt.size)
    keep = accept & (u_eff < eff)

    # hit-pattern grade
    u_ibl = rng.random(pt.size)
    u_shared = rng.random(pt.size)
    p_shared = 1.0 - (1.0 - cfg.shared_probability_per_neighbour) ** (density - 1)
    grade = np.full(pt.size, GRADE_GOOD, dtype=np.int8)
    grade[u_shared < p_shared] = GRADE_SHARED
    no_ibl = (r_prod > cfg.innermost_layer_radius_mm) | (u_ibl < cfg.missing_innermost_probability)
    grade[no_ibl] = GRADE_NO_INNERMOST
    grade[r_prod > cfg.next_layer_radius_mm] = GRADE_NO_INNER_TWO

    k = np.flatnonzero(keep)
    ev = cand.event[k]
    d0, zp, phi0 = perigee(
        cand.vx[k], cand.vy[k], cand.vz[k], cand.px[k], cand.py[k], cand.pz[k], cand.charge[k],
        pv_reco[ev, 0], pv_reco[ev, 1], b_field_t,
    )
    tracks = Tracks(
        event=ev, pt=pt[k], eta=eta[k], phi=phi0, charge=cand.charge[k].astype(np.int8),
        d0=d0, z0=zp - pv_reco[ev, 2], d0_err=np.zeros(k.size), z0_err=np.zeros(k.size),
        grade=grade[k], origin=cand.origin[k], gen_pdg_id=cand.pdg_id[k].astype(np.int32),
        particle=cand.particle[k],
    )
    tracks = tracks.concatenate([tracks, _fakes(tracks, rec.n_events, rng, cfg)])
    return _measure(tracks, rng, cfg)


def _fakes(true_tracks: Tracks, n_events: int, rng: np.random.Generator, cfg: TrackingConfig) -> Tracks:
    """Combinatorial fake tracks, near real tracks (fakes concentrate in dense jet cores)."""
    n_true = np.bincount(true_tracks.event, minlength=n_events)
    n_fake = rng.poisson(cfg.fake_rate * n_true)
    total = int(n_fake.sum())
    ev = np.repeat(np.arange(n_events), n_fake)
    # a random real track of the same event as the seed of each fake
    starts = np.concatenate([[0], np.cumsum(n_true)[:-1]])
    order = np.argsort(true_tracks.event, kind="stable")
    pick = order[starts[ev] + (rng.random(total) * n_true[ev]).astype(np.int64)] if total else np.zeros(0, int)
    eta = true_tracks.eta[pick] + rng.normal(0, 0.03, total)
    phi = np.angle(np.exp(1j * (true_tracks.phi[pick] + rng.normal(0, 0.03, total))))
    pt = cfg.pt_min_gev + rng.exponential(2.0, total)
    return Tracks(
        event=ev, pt=pt, eta=eta, phi=phi,
        charge=rng.choice(np.array([-1, 1], dtype=np.int8), total),
        d0=rng.normal(0, cfg.fake_d0_sigma_mm, total),
        z0=rng.normal(0, 2 * cfg.fake_d0_sigma_mm, total),
        d0_err=np.zeros(total), z0_err=np.zeros(total),
        grade=rng.integers(GRADE_SHARED, GRADE_NO_INNER_TWO + 1, total).astype(np.int8),
        origin=np.full(total, ORIGIN_FAKE, dtype=np.int8),
        gen_pdg_id=np.zeros(total, dtype=np.int32), particle=np.full(total, -1, dtype=np.int64),
    )


def _measure(tr: Tracks, rng: np.random.Generator, cfg: TrackingConfig) -> Tracks:
    """Smear the true perigee parameters and momentum with the grade-dependent resolution."""
    n = tr.pt.size
    theta = 2 * np.arctan(np.exp(-tr.eta))
    scale = np.asarray(cfg.grade_resolution_scale, dtype=np.float64)
    sd0 = ip_resolution(tr.pt, theta, tr.grade, cfg.d0_resolution.a_mm,
                        cfg.d0_resolution.b_mm_gev, scale)
    sz0_sin = ip_resolution(tr.pt, theta, tr.grade, cfg.z0sintheta_resolution.a_mm,
                            cfg.z0sintheta_resolution.b_mm_gev, scale)
    sz0 = sz0_sin / np.abs(np.sin(theta))
    tail = np.where(rng.random(n) < cfg.tail_fraction, cfg.tail_scale, 1.0)
    d0 = tr.d0 + rng.normal(0, 1, n) * sd0 * tail
    z0 = tr.z0 + rng.normal(0, 1, n) * sz0 * tail
    res = cfg.pt_resolution
    rel = np.hypot(res.constant, res.linear_per_gev * tr.pt)
    pt = tr.pt * np.abs(1.0 + rel * rng.normal(0, 1, n))
    eta = tr.eta + rng.normal(0, 3e-4, n)
    phi = np.angle(np.exp(1j * (tr.phi + rng.normal(0, 3e-4, n))))
    return Tracks(
        event=tr.event, pt=pt, eta=eta, phi=phi, charge=tr.charge, d0=d0, z0=z0,
        d0_err=sd0, z0_err=sz0, grade=tr.grade, origin=tr.origin, gen_pdg_id=tr.gen_pdg_id,
        particle=tr.particle,
    )
