"""Parametric inner-detector simulation: perigee parameters, resolutions, grades, efficiency,
material effects.

Conventions (physics-reference §2, docs/ntuple-format.md, docs/detector.md):

* helix in a solenoid of field ``B`` (T) along +z: radius ``R = pT / (0.3 B |q|)`` m;
* ATLAS perigee sign: the perigee point is ``d0 · (−sin φ0, cos φ0)`` relative to the
  reference point. :func:`simulate_tracks` measures against the beam line (d0) and in
  absolute z; :func:`to_vertex` moves the tracks to the reconstructed primary vertex once
  vertexing has chosen it;
* σ(d0) = a ⊕ b / (pT √sinθ), σ(z0 sinθ) likewise, both scaled by a per-grade factor;
  non-Gaussian tails (the reported error stays nominal) from two sources: single hard
  (Rutherford) scatters replace the multiple-scattering term of a fraction of the tracks by
  a power-law tail, and badly fitted hit patterns smear a fraction of tracks wider;
* material: photon conversions (radiation lengths versus |η|) and nuclear interactions of
  hadrons in the beam pipe and pixel layers, whose charged secondaries give light jets
  displaced tracks (``truthOrigin`` 7, other secondary).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.core.config.detector import MaterialConfig, TrackingConfig
from analysis.generation.record import FlatRecord, charge_of
from analysis.generation.truth import (
    ORIGIN_FAKE,
    ORIGIN_OTHER_SECONDARY,
    ORIGIN_PILEUP,
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
    "hadronic_interactions",
    "helix_radius_mm",
    "ip_resolution",
    "local_density",
    "material_x0",
    "perigee",
    "photon_conversions",
    "simulate_tracks",
    "to_vertex",
]

#: hit-pattern grades: all hits, shared hits, no innermost-layer hit, no hit in the two inner layers
GRADE_GOOD, GRADE_SHARED, GRADE_NO_INNERMOST, GRADE_NO_INNER_TWO = 0, 1, 2, 3
MM_PER_M = 1000.0


def material_x0(abs_eta: np.ndarray, knots_eta: tuple[float, ...], knots_x0: tuple[float, ...]) -> np.ndarray:
    """Radiation lengths at ``|η|`` from the knots of a ``detector.material`` profile (linear,
    flat beyond the last knot)."""
    return np.interp(np.abs(abs_eta), np.asarray(knots_eta), np.asarray(knots_x0))


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
    interaction: np.ndarray  # 0 hard scatter, k >= 1 pile-up interaction, -1 fake

    def take(self, sel: np.ndarray) -> Tracks:
        """The tracks selected by ``sel`` (an index array or boolean mask)."""
        return Tracks(**{k: getattr(self, k)[sel] for k in _TRACK_FIELDS})

    @staticmethod
    def concatenate(parts: list[Tracks]) -> Tracks:
        """All tracks of ``parts``, in order."""
        return Tracks(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in _TRACK_FIELDS})


_TRACK_FIELDS = (
    "event", "pt", "eta", "phi", "charge", "d0", "z0", "d0_err", "z0_err", "grade", "origin",
    "gen_pdg_id", "particle", "interaction",
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


def photon_conversions(
    rec: FlatRecord, rng: np.random.Generator, cfg: TrackingConfig, material: MaterialConfig
) -> np.ndarray:
    """The final-state photons (pT > ``pt_min_gev``) that convert in the inner detector.

    The probability is 1 − exp(−7/9 · X/X0), X/X0 the inner-detector material at the photon's
    |η| (``detector.material.inner_detector_x0``).

    Returns:
        Their global indices (sorted).
    """
    idx = np.flatnonzero(rec.is_final & (rec.pdg_id == 22) & (rec.pt > cfg.pt_min_gev))
    x0 = material_x0(rec.eta[idx], material.eta, material.inner_detector_x0)
    p_conv = 1.0 - np.exp(-7.0 / 9.0 * x0)
    return idx[rng.random(idx.size) < p_conv]


def _conversions(rec: FlatRecord, converted: np.ndarray, rng: np.random.Generator) -> _Candidates:
    """e⁺e⁻ pairs of the converted photons, at a radius uniform in 30–300 mm."""
    idx = converted
    pt = rec.pt[idx]
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


def _orthonormal(ux: np.ndarray, uy: np.ndarray, uz: np.ndarray) -> tuple[np.ndarray, ...]:
    """Two unit vectors perpendicular to the unit vectors ``u`` (and to each other)."""
    # cross with the axis least aligned with u
    use_x = np.abs(ux) < 0.9
    ax, ay, az = np.where(use_x, 1.0, 0.0), np.where(use_x, 0.0, 1.0), np.zeros_like(ux)
    v1x, v1y, v1z = uy * az - uz * ay, uz * ax - ux * az, ux * ay - uy * ax
    norm = np.sqrt(v1x**2 + v1y**2 + v1z**2)
    v1x, v1y, v1z = v1x / norm, v1y / norm, v1z / norm
    v2x, v2y, v2z = uy * v1z - uz * v1y, uz * v1x - ux * v1z, ux * v1y - uy * v1x
    return v1x, v1y, v1z, v2x, v2y, v2z


def hadronic_interactions(
    rec: FlatRecord, charge: np.ndarray, rng: np.random.Generator, cfg: TrackingConfig,
    b_field_t: float,
) -> tuple[_Candidates, np.ndarray]:
    """Nuclear interactions of final-state hadrons in the beam pipe and pixel layers.

    Every hadron with p > ``pt_min_gev`` and |η| < 2.7 crosses the layers of
    ``cfg.hadronic_interactions`` outside its production radius; at each it interacts with
    probability 1 − exp(−λ/sinθ). An interacting hadron leaves no track of its own (too few
    silicon hits); 1 + Poisson(multiplicity − 1) charged pions start at the layer, sharing a
    uniform fraction of its momentum, each with an exponential transverse momentum relative
    to it. Charged hadrons are followed along their helix to the layer.

    Args:
        rec: the flat event record (GeV, mm).
        charge: the charge of every particle of ``rec``.
        rng: the shard's random generator.
        cfg: the ``detector.tracking`` section.
        b_field_t: solenoid field (T).

    Returns:
        ``(secondaries, lost)``: the charged secondaries as track candidates (origin 7, the
        parent's global index as ``particle``) and the global indices of the hadrons that
        interacted.
    """
    hi = cfg.hadronic_interactions
    radii = np.asarray(hi.radii_mm, dtype=np.float64)
    lam = np.asarray(hi.interaction_lengths, dtype=np.float64)
    p_tot = np.sqrt(rec.px**2 + rec.py**2 + rec.pz**2)
    a = rec.abs_id
    hadron = rec.is_final & (a > 100) & (a < 1_000_000)
    idx = np.flatnonzero(hadron & (p_tot > cfg.pt_min_gev) & (np.abs(rec.eta) < 2.7))
    r_prod = np.hypot(rec.vx[idx], rec.vy[idx])
    sin_t = np.clip(rec.pt[idx] / p_tot[idx], 1e-3, 1.0)
    # probability to interact at each layer (only layers outside the production point)
    p_layer = np.where(radii[None, :] > r_prod[:, None] + 1.0,
                       1.0 - np.exp(-lam[None, :] / sin_t[:, None]), 0.0)
    survive = np.cumprod(1.0 - p_layer, axis=1)
    cum_int = 1.0 - survive
    u = rng.random(idx.size)
    hit = cum_int[:, -1] > u if radii.size else np.zeros(idx.size, dtype=bool)
    layer = np.argmax(cum_int > u[:, None], axis=1)
    parents, layer = idx[hit], layer[hit]
    r_int = radii[layer]
    empty = _Candidates(*(np.zeros(0, dtype=t) for t in (np.int64, float, float, float, np.float32,
                                                         float, float, float, np.int8, np.int64,
                                                         np.int64)))
    if parents.size == 0:
        return empty, parents

    # the interaction point: straight-line reach of the layer, then the helix for charged
    x0, y0, z0 = rec.vx[parents], rec.vy[parents], rec.vz[parents]
    pt = rec.pt[parents]
    phi = rec.phi[parents]
    ux, uy = np.cos(phi), np.sin(phi)
    b = x0 * ux + y0 * uy
    c = x0**2 + y0**2 - r_int**2
    chord = -b + np.sqrt(np.maximum(b * b - c, 0.0))
    q = np.sign(charge[parents])
    radius = helix_radius_mm(np.maximum(pt, 1e-6), b_field_t)
    alpha = np.where(q != 0, 2.0 * np.arcsin(np.clip(chord / (2.0 * radius), 0.0, 1.0)), 0.0)
    phi_int = phi - q * alpha
    xc, yc = x0 + q * radius * np.sin(phi), y0 - q * radius * np.cos(phi)
    x_int = np.where(q != 0, xc - q * radius * np.sin(phi_int), x0 + chord * ux)
    y_int = np.where(q != 0, yc + q * radius * np.cos(phi_int), y0 + chord * uy)
    arc = np.where(q != 0, radius * alpha, chord)
    z_int = z0 + arc * rec.pz[parents] / pt

    # charged secondaries
    n_sec = 1 + rng.poisson(hi.charged_multiplicity - 1.0, parents.size)
    total = int(n_sec.sum())
    owner = np.repeat(np.arange(parents.size), n_sec)
    f_lo, f_hi = hi.momentum_fraction
    frac = rng.uniform(f_lo, f_hi, parents.size)
    share = rng.exponential(1.0, total)
    share /= np.bincount(owner, weights=share, minlength=parents.size)[owner]
    p_parent = p_tot[parents]
    p_sec = p_parent[owner] * frac[owner] * share
    pt_rel = np.minimum(rng.exponential(hi.pt_rel_gev, total), 0.99 * p_sec)
    cos_rel = np.sqrt(1.0 - (pt_rel / p_sec) ** 2)
    sin_rel = pt_rel / p_sec
    azim = rng.uniform(0.0, 2.0 * np.pi, total)
    theta = 2.0 * np.arctan(np.exp(-rec.eta[parents]))
    dx = np.sin(theta) * np.cos(phi_int)
    dy = np.sin(theta) * np.sin(phi_int)
    dz = np.cos(theta)
    v1x, v1y, v1z, v2x, v2y, v2z = _orthonormal(dx, dy, dz)
    o = owner
    kx = cos_rel * dx[o] + sin_rel * (np.cos(azim) * v1x[o] + np.sin(azim) * v2x[o])
    ky = cos_rel * dy[o] + sin_rel * (np.cos(azim) * v1y[o] + np.sin(azim) * v2y[o])
    kz = cos_rel * dz[o] + sin_rel * (np.cos(azim) * v1z[o] + np.sin(azim) * v2z[o])
    sign = rng.choice(np.array([-1.0, 1.0]), total)
    sec = _Candidates(
        event=rec.event[parents][o],
        px=p_sec * kx, py=p_sec * ky, pz=p_sec * kz,
        charge=sign.astype(np.float32),
        vx=x_int[o], vy=y_int[o], vz=z_int[o],
        origin=np.full(total, ORIGIN_OTHER_SECONDARY, dtype=np.int8),
        pdg_id=(211 * sign).astype(np.int64),
        particle=parents[o],
    )
    return sec, parents


def simulate_tracks(
    rec: FlatRecord,
    anc: Ancestry,
    rng: np.random.Generator,
    cfg: TrackingConfig,
    material: MaterialConfig,
    b_field_t: float,
    converted: np.ndarray | None = None,
) -> Tracks:
    """Reconstructed tracks for a batch, measured against the beam line.

    Args:
        rec: the flat event record (GeV, mm), pile-up included.
        anc: its ancestry (:func:`analysis.generation.truth.ancestry`).
        rng: the shard's random generator.
        cfg: the ``detector.tracking`` section.
        material: the ``detector.material`` section (conversions).
        b_field_t: solenoid field (T).
        converted: the photons that convert (:func:`photon_conversions`); drawn here if None.

    Returns:
        The reconstructed and fake tracks, in no particular order: pT in GeV, ``d0`` (mm)
        with respect to the beam line (x = y = 0), ``z0`` the absolute z of the perigee (mm);
        :func:`to_vertex` refers them to the primary vertex.
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
    if converted is None:
        converted = photon_conversions(rec, rng, cfg, material)
    conv = _conversions(rec, converted, rng)
    secondaries, lost = hadronic_interactions(rec, charge_all, rng, cfg, b_field_t)
    parts = (cand_particles, conv, secondaries)
    cand = _Candidates(
        **{k: np.concatenate([getattr(c, k) for c in parts]) for k in _Candidates.__dataclass_fields__}
    )
    interacted = np.zeros(rec.size, dtype=bool)
    interacted[lost] = True
    parent_lost = np.zeros(cand.particle.size, dtype=bool)
    parent_lost[: idx.size] = interacted[idx]

    pt = np.hypot(cand.px, cand.py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(cand.pz / pt)
    phi = np.arctan2(cand.py, cand.px)
    density = local_density(cand.event, np.nan_to_num(eta, nan=99.0), phi, cfg.density_cell)
    r_prod = np.hypot(cand.vx, cand.vy)

    # acceptance, then efficiency (flat, dense-core loss, production radius)
    accept = (pt > cfg.pt_min_gev) & (np.abs(eta) < cfg.eta_max) & ~parent_lost
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
    zeros = np.zeros(k.size)
    d0, zp, phi0 = perigee(
        cand.vx[k], cand.vy[k], cand.vz[k], cand.px[k], cand.py[k], cand.pz[k], cand.charge[k],
        zeros, zeros, b_field_t,
    )
    interaction = rec.interaction[cand.particle[k]].astype(np.int16)
    origin = np.where(interaction > 0, ORIGIN_PILEUP, cand.origin[k]).astype(np.int8)
    tracks = Tracks(
        event=ev, pt=pt[k], eta=eta[k], phi=phi0, charge=cand.charge[k].astype(np.int8),
        d0=d0, z0=zp, d0_err=np.zeros(k.size), z0_err=np.zeros(k.size),
        grade=grade[k], origin=origin, gen_pdg_id=cand.pdg_id[k].astype(np.int32),
        particle=cand.particle[k], interaction=interaction,
    )
    tracks = tracks.concatenate([tracks, _fakes(tracks, rec.n_events, rng, cfg)])
    return _measure(tracks, rng, cfg)


def to_vertex(tracks: Tracks, vertex: np.ndarray) -> Tracks:
    """Refer beam-line tracks (:func:`simulate_tracks`) to each event's primary vertex.

    Args:
        tracks: tracks with ``d0`` w.r.t. the beam line and absolute ``z0`` (mm).
        vertex: ``(n_events, 3)`` reconstructed primary vertex (mm).

    Returns:
        The tracks with ``d0`` w.r.t. the vertex (ATLAS sign: perigee point
        ``d0 · (−sin φ, cos φ)``; the shift is linear in the ≈ 10 µm vertex offset) and
        ``z0 = z_perigee − PV_z``.
    """
    xv, yv, zv = vertex[tracks.event, 0], vertex[tracks.event, 1], vertex[tracks.event, 2]
    d0 = tracks.d0 + xv * np.sin(tracks.phi) - yv * np.cos(tracks.phi)
    fields = {k: getattr(tracks, k) for k in _TRACK_FIELDS}
    fields.update(d0=d0, z0=tracks.z0 - zv)
    return Tracks(**fields)


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
        # near the seed track's perigee: fakes share its vertex in z
        d0=rng.normal(0, cfg.fake_d0_sigma_mm, total),
        z0=true_tracks.z0[pick] + rng.normal(0, 2 * cfg.fake_d0_sigma_mm, total),
        d0_err=np.zeros(total), z0_err=np.zeros(total),
        grade=rng.integers(GRADE_SHARED, GRADE_NO_INNER_TWO + 1, total).astype(np.int8),
        origin=np.full(total, ORIGIN_FAKE, dtype=np.int8),
        gen_pdg_id=np.zeros(total, dtype=np.int32), particle=np.full(total, -1, dtype=np.int64),
        interaction=np.full(total, -1, dtype=np.int16),
    )


def _scattering(
    n: int, sin_t: np.ndarray, rng: np.random.Generator, cfg: TrackingConfig
) -> np.ndarray:
    """Multiple-scattering deviates in units of σ_MS: Gaussian, or for a fraction of tracks
    (∝ 1/sinθ, the material crossed) a single hard scatter with a power-law tail."""
    st = cfg.scattering_tail
    gauss = rng.normal(0.0, 1.0, n)
    hard = rng.random(n) < np.clip(st.fraction / sin_t, 0.0, 1.0)
    u = rng.random(n)
    size = np.minimum(st.min_sigma * (1.0 - u) ** (-1.0 / st.power), st.max_sigma)
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    return np.where(hard, sign * size, gauss)


def _measure(tr: Tracks, rng: np.random.Generator, cfg: TrackingConfig) -> Tracks:
    """Smear the true perigee parameters and momentum with the grade-dependent resolution.

    The intrinsic term is Gaussian; the multiple-scattering term has the single-scatter tail
    of :func:`_scattering` (independently in d0 and z0); a ``tail_fraction`` of tracks (bad
    hit patterns) is smeared ``tail_scale`` times wider. The reported errors are the nominal
    Gaussian resolutions.
    """
    n = tr.pt.size
    theta = 2 * np.arctan(np.exp(-tr.eta))
    sin_t = np.abs(np.sin(theta))
    scale = np.asarray(cfg.grade_resolution_scale, dtype=np.float64)[tr.grade]
    sd0 = ip_resolution(tr.pt, theta, tr.grade, cfg.d0_resolution.a_mm,
                        cfg.d0_resolution.b_mm_gev, np.asarray(cfg.grade_resolution_scale))
    sz0_sin = ip_resolution(tr.pt, theta, tr.grade, cfg.z0sintheta_resolution.a_mm,
                            cfg.z0sintheta_resolution.b_mm_gev, np.asarray(cfg.grade_resolution_scale))
    sz0 = sz0_sin / sin_t
    ms = 1.0 / (tr.pt * np.sqrt(sin_t))
    tail = np.where(rng.random(n) < cfg.tail_fraction, cfg.tail_scale, 1.0)
    d0_dev = (rng.normal(0, 1, n) * cfg.d0_resolution.a_mm
              + _scattering(n, sin_t, rng, cfg) * cfg.d0_resolution.b_mm_gev * ms) * scale
    z0_dev = (rng.normal(0, 1, n) * cfg.z0sintheta_resolution.a_mm
              + _scattering(n, sin_t, rng, cfg) * cfg.z0sintheta_resolution.b_mm_gev * ms) * scale / sin_t
    d0 = tr.d0 + d0_dev * tail
    z0 = tr.z0 + z0_dev * tail
    res = cfg.pt_resolution
    rel = np.hypot(res.constant, res.linear_per_gev * tr.pt)
    pt = tr.pt * np.abs(1.0 + rel * rng.normal(0, 1, n))
    eta = tr.eta + rng.normal(0, 3e-4, n)
    phi = np.angle(np.exp(1j * (tr.phi + rng.normal(0, 3e-4, n))))
    return Tracks(
        event=tr.event, pt=pt, eta=eta, phi=phi, charge=tr.charge, d0=d0, z0=z0,
        d0_err=sd0, z0_err=sz0, grade=tr.grade, origin=tr.origin, gen_pdg_id=tr.gen_pdg_id,
        particle=tr.particle, interaction=tr.interaction,
    )
