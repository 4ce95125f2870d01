"""Reconstructed photons and leptons.

Photons are EM clusters seeded by stable photons: every photon and electron within
``cluster_dr`` of the seed joins the cluster, so a collimated π⁰ → γγ (or η → γγ) pair
becomes one photon candidate — the real mechanism by which jets fake photons. The tight
identification emulates the calorimeter's shower shapes:

* the η-strip layer: a cluster fails when a second photon carrying more than
  ``second_photon_fraction`` of its energy is separated by more than ``strip_deta`` in η
  (a resolved π⁰);
* hadronic leakage and lateral width: the hadronic energy behind the cluster and the
  electromagnetic energy around it (within ``shower_shapes.ring_dr``) over its energy.

The energy resolution depends on |η| through the material in front of the calorimeter
(``detector.material.calorimeter_front_x0``) and on whether the photon converted; the
direction is the line from the reconstructed primary vertex to the measured cluster
position. Isolation sums the transverse energy of visible particles (calorimeter, with the
event's pile-up density ρ subtracted) and the pT of primary-vertex tracks in a cone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from analysis.core.config.detector import (
    CaloLayer,
    CalorimeterConfig,
    LeptonReconstruction,
    MaterialConfig,
    PhotonReconstruction,
)
from analysis.generation.calorimeter import BARREL_HALF_LENGTH_MM, calorimeter_phi
from analysis.generation.geometry import _dphi, cone_sum, offsets_from_event
from analysis.generation.record import FlatRecord
from analysis.generation.tracking import Tracks, material_x0
from analysis.generation.truth import ORIGIN_OTHER_SECONDARY, Ancestry, lepton_flavour_origin

__all__ = [
    "PHOTON_SEED_PT_GEV",
    "Leptons",
    "Photons",
    "calorimeter_impact",
    "photon_energy_resolution",
    "reconstruct_leptons",
    "reconstruct_photons",
]

#: minimum pT (GeV) of a stable photon that seeds an EM cluster
PHOTON_SEED_PT_GEV = 5.0


@dataclass
class Photons:
    """Flat reconstructed photons of a batch (pT in GeV, isolation sums in GeV)."""

    event: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    iso_calo: np.ndarray
    iso_track: np.ndarray
    is_tight: np.ndarray
    gen_part_flav: np.ndarray
    #: the seed photon converted in the inner detector
    converted: np.ndarray
    #: true cluster energy (GeV), for resolution studies
    e_true: np.ndarray


@dataclass
class Leptons:
    """Flat reconstructed electrons or muons of a batch (pT in GeV)."""

    event: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    charge: np.ndarray
    iso_track: np.ndarray
    gen_part_flav: np.ndarray


@numba.njit(cache=True)
def _cluster(
    seed_event: np.ndarray, seed_eta: np.ndarray, seed_phi: np.ndarray, seed_e: np.ndarray,
    em_offsets: np.ndarray, em_eta: np.ndarray, em_phi: np.ndarray, em_e: np.ndarray,
    em_px: np.ndarray, em_py: np.ndarray, em_pz: np.ndarray, em_is_photon: np.ndarray,
    dr_max: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum EM particles around each seed.

    Returns ``(p4, second_frac, second_deta)``: the summed (px, py, pz, E) of the cluster, the
    energy fraction of the second most energetic photon, and its |Δη| to the seed. A seed that
    is not the most energetic member of its own cluster gets E = −1 (it belongs to another).
    """
    n = seed_eta.size
    p4 = np.zeros((n, 4))
    frac2 = np.zeros(n)
    deta2 = np.zeros(n)
    r2 = dr_max * dr_max
    for i in range(n):
        ev = seed_event[i]
        e_second = 0.0
        d_second = 0.0
        dominated = False
        for j in range(em_offsets[ev], em_offsets[ev + 1]):
            deta = em_eta[j] - seed_eta[i]
            dphi = _dphi(em_phi[j], seed_phi[i])
            if deta * deta + dphi * dphi >= r2:
                continue
            p4[i, 0] += em_px[j]
            p4[i, 1] += em_py[j]
            p4[i, 2] += em_pz[j]
            p4[i, 3] += em_e[j]
            if em_e[j] > seed_e[i]:
                dominated = True
            elif em_is_photon[j] and em_e[j] < seed_e[i] and em_e[j] > e_second:
                e_second = em_e[j]
                d_second = abs(deta)
        if dominated:
            p4[i, 3] = -1.0
        else:
            frac2[i] = e_second / p4[i, 3]
            deta2[i] = d_second
    return p4, frac2, deta2


def _in_photon_acceptance(eta: np.ndarray, cfg: PhotonReconstruction) -> np.ndarray:
    a = np.abs(eta)
    lo, hi = cfg.crack
    return (a < cfg.eta_max) & ~((a > lo) & (a < hi))


def photon_energy_resolution(
    energy: np.ndarray, abs_eta: np.ndarray, converted: np.ndarray, cfg: PhotonReconstruction,
    material: MaterialConfig,
) -> np.ndarray:
    """Relative energy resolution σ/E of photons.

    σ/E = a(η)/√E ⊕ c(η) ⊕ noise/E with a(η)² = a₀² + (m · X₀(η))², X₀ the material in front of
    the calorimeter, a(η) × ``converted_scale`` for converted photons, and c the barrel
    (|η| < 1.37) or end-cap constant term.

    Args:
        energy: cluster energies (GeV).
        abs_eta: |η| of the clusters.
        converted: whether each photon converted.
        cfg: the ``detector.photons`` section.
        material: the ``detector.material`` section.

    Returns:
        σ/E of each photon.
    """
    res = cfg.energy_resolution
    x0 = material_x0(abs_eta, material.eta, material.calorimeter_front_x0)
    a = np.hypot(res.stochastic, res.material_per_x0 * x0)
    a = np.where(converted, a * res.converted_scale, a)
    c = np.where(abs_eta < cfg.crack[0], res.constant_barrel, res.constant_endcap)
    e = np.maximum(energy, 1e-3)
    return np.sqrt(a**2 / e + c**2 + (res.noise_gev / e) ** 2)


def calorimeter_impact(
    x0: np.ndarray, y0: np.ndarray, z0: np.ndarray, px: np.ndarray, py: np.ndarray,
    pz: np.ndarray, radius_mm: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where straight lines from ``(x0, y0, z0)`` (mm) along ``p`` hit the calorimeter face:
    the barrel cylinder of ``radius_mm``, or the end-cap plane at ±3700 mm beyond it.

    Returns:
        ``(r_hit, z_hit, phi_hit)`` (mm, mm, rad).
    """
    pt = np.maximum(np.hypot(px, py), 1e-9)
    ux, uy = px / pt, py / pt
    b = x0 * ux + y0 * uy
    c = x0**2 + y0**2 - radius_mm**2
    s = -b + np.sqrt(np.maximum(b * b - c, 0.0))  # transverse path to the barrel
    z_hit = z0 + s * pz / pt
    endcap = np.abs(z_hit) > BARREL_HALF_LENGTH_MM
    s_end = (np.copysign(BARREL_HALF_LENGTH_MM, pz) - z0) * pt / np.where(pz != 0, pz, 1e-9)
    s = np.where(endcap, s_end, s)
    x_hit, y_hit = x0 + s * ux, y0 + s * uy
    z_hit = np.where(endcap, np.copysign(BARREL_HALF_LENGTH_MM, pz), z_hit)
    return np.hypot(x_hit, y_hit), z_hit, np.arctan2(y_hit, x_hit)


def reconstruct_photons(
    rec: FlatRecord, anc: Ancestry, tracks: Tracks, track_vertex: np.ndarray,
    converted: np.ndarray, pv: np.ndarray, rho: np.ndarray, charge: np.ndarray,
    rng: np.random.Generator, cfg: PhotonReconstruction, material: MaterialConfig,
    cal: CalorimeterConfig, b_field_t: float,
) -> Photons:
    """Photon candidates of a batch.

    Args:
        rec: the flat event record (GeV, mm), pile-up included.
        anc: its ancestry.
        tracks: the reconstructed tracks, event-sorted (track isolation).
        track_vertex: each track's vertex (0: the primary vertex).
        converted: global indices of the photons that converted in the inner detector.
        pv: ``(n_events, 3)`` reconstructed primary vertex (mm).
        rho: the pile-up density of each event (GeV per unit area).
        charge: the charge of every particle of ``rec``.
        rng: the shard's random generator.
        cfg: the ``detector.photons`` section.
        material: the ``detector.material`` section.
        cal: the ``detector.calorimeter`` section (radius, hadron ECAL share).
        b_field_t: solenoid field (T).

    Returns:
        The photons passing pT and acceptance, in the order of their seeds.
    """
    a_id = rec.abs_id
    final = rec.is_final
    eta_all, phi_all, pt_all = rec.eta, rec.phi, rec.pt
    is_em = (a_id == 11) | (a_id == 22)
    em = np.flatnonzero(final & is_em & (np.abs(eta_all) < 2.6))
    seeds = np.flatnonzero(
        final & (a_id == 22) & (pt_all > PHOTON_SEED_PT_GEV) & (np.abs(eta_all) < 2.6)
    )
    em_off = offsets_from_event(rec.event[em], rec.n_events)
    p4, frac2, deta2 = _cluster(
        rec.event[seeds], eta_all[seeds], phi_all[seeds], rec.e[seeds],
        em_off, eta_all[em], phi_all[em], rec.e[em], rec.px[em], rec.py[em], rec.pz[em],
        a_id[em] == 22, cfg.cluster_dr,
    )
    own = p4[:, 3] > 0
    seeds, p4, frac2, deta2 = seeds[own], p4[own], frac2[own], deta2[own]
    ev = rec.event[seeds]
    e_true = p4[:, 3]
    pt_true = np.hypot(p4[:, 0], p4[:, 1])
    eta_true = np.arcsinh(p4[:, 2] / pt_true)

    # shower shapes: hadronic leakage and the electromagnetic energy around the cluster
    sh = cfg.shower_shapes
    em_ring = cone_sum(ev, eta_true, phi_all[seeds], em_off, eta_all[em], phi_all[em], rec.e[em],
                       sh.ring_dr) - e_true
    had = np.flatnonzero(rec.visible & ~is_em & (np.abs(eta_all) < 2.8))
    had_phi, reaches = calorimeter_phi(phi_all[had], eta_all[had], pt_all[had], charge[had],
                                       b_field_t, cal.radius_mm)
    had, had_phi = had[reaches], had_phi[reaches]
    had_off = offsets_from_event(rec.event[had], rec.n_events)
    had_e = cone_sum(ev, eta_true, phi_all[seeds], had_off, eta_all[had], had_phi, rec.e[had],
                     sh.ring_dr)
    share = cal.hadron_em_fraction
    leakage = (1.0 - share) * had_e / e_true
    ring = (np.maximum(em_ring, 0.0) + share * had_e) / e_true

    # energy: eta- and material-dependent resolution, worse for converted photons
    conv = np.isin(seeds, converted)
    rel = photon_energy_resolution(e_true, np.abs(eta_true), conv, cfg, material)
    e_meas = e_true * np.maximum(1.0 + rel * rng.normal(0, 1, e_true.size), 0.0)

    # direction: measured cluster position, seen from the reconstructed primary vertex
    r_hit, z_hit, phi_hit = calorimeter_impact(rec.vx[seeds], rec.vy[seeds], rec.vz[seeds],
                                               p4[:, 0], p4[:, 1], p4[:, 2], cal.radius_mm)
    pos = cfg.position_resolution
    eta_cl = np.arcsinh(z_hit / r_hit) + pos.eta * rng.normal(0, 1, e_true.size)
    phi = np.angle(np.exp(1j * (phi_hit + pos.phi * rng.normal(0, 1, e_true.size))))
    eta = np.arcsinh((r_hit * np.sinh(eta_cl) - pv[ev, 2]) / r_hit)
    pt = e_meas / np.cosh(eta)

    keep = (pt > cfg.pt_min_gev) & _in_photon_acceptance(eta, cfg)
    seeds, pt, eta, phi, ev = seeds[keep], pt[keep], eta[keep], phi[keep], ev[keep]
    frac2, deta2, pt_true = frac2[keep], deta2[keep], pt_true[keep]
    leakage, ring, conv, e_true = leakage[keep], ring[keep], conv[keep], e_true[keep]

    resolved_pair = (frac2 > cfg.second_photon_fraction) & (deta2 > cfg.strip_deta)
    shapes = (leakage < sh.leakage_max) & (ring < sh.ring_fraction_max)
    tight = ~resolved_pair & shapes & (rng.random(seeds.size) < cfg.id_efficiency)

    vis = np.flatnonzero(rec.visible)
    vis_off = offsets_from_event(rec.event[vis], rec.n_events)
    et_cone = cone_sum(ev, eta, phi, vis_off, eta_all[vis], phi_all[vis], pt_all[vis],
                       cfg.isolation_dr)
    iso_calo = np.maximum(et_cone - pt_true - rho[ev] * np.pi * cfg.isolation_dr**2, 0.0)
    iso_track = _track_isolation(ev, eta, phi, tracks, rec.n_events, cfg.isolation_dr,
                                 track_vertex=track_vertex)
    flav = np.where(anc.hadron[seeds] >= 0, 2, 1).astype(np.uint8)
    return Photons(ev, pt, eta, phi, iso_calo, iso_track, tight, flav, conv, e_true)


def _track_isolation(
    ev: np.ndarray, eta: np.ndarray, phi: np.ndarray, tracks: Tracks, n_events: int, dr: float,
    exclude_particle: np.ndarray | None = None, track_vertex: np.ndarray | None = None,
) -> np.ndarray:
    """Σ pT of tracks in ΔR < dr (conversion electrons excluded; only primary-vertex tracks
    when ``track_vertex`` is given; optionally without one own track)."""
    use = ~((tracks.origin == ORIGIN_OTHER_SECONDARY) & (np.abs(tracks.gen_pdg_id) == 11))
    if track_vertex is not None:
        use &= track_vertex == 0
    off = offsets_from_event(tracks.event, n_events)
    weights = np.where(use, tracks.pt, 0.0)
    iso = cone_sum(ev, eta, phi, off, tracks.eta, tracks.phi, weights, dr)
    if exclude_particle is not None:
        order = np.argsort(tracks.particle)
        pos = np.searchsorted(tracks.particle[order], exclude_particle)
        pos = np.clip(pos, 0, max(order.size - 1, 0))
        if order.size:
            match = tracks.particle[order][pos] == exclude_particle
            own_pt = np.where(match & use[order][pos], tracks.pt[order][pos], 0.0)
            iso = np.maximum(iso - own_pt, 0.0)
    return iso


def reconstruct_leptons(
    rec: FlatRecord, anc: Ancestry, tracks: Tracks, rng: np.random.Generator,
    cfg: LeptonReconstruction, ecal: CaloLayer, flavour: int, charge: np.ndarray,
    track_vertex: np.ndarray | None = None,
) -> Leptons:
    """Electrons (``flavour`` 11) or muons (13) of the hard scatter of a batch.

    Args:
        rec: the flat event record (GeV, mm).
        anc: its ancestry.
        tracks: the reconstructed tracks, event-sorted (track isolation).
        rng: the shard's random generator.
        cfg: the ``detector.leptons`` section.
        ecal: the ECAL resolution (electron energy smearing).
        flavour: 11 (electrons) or 13 (muons).
        charge: the charge of every particle of ``rec`` (units of e).
        track_vertex: each track's vertex; only primary-vertex tracks (0) enter the isolation.

    Returns:
        The leptons passing pT, acceptance and efficiency.
    """
    a_id = rec.abs_id
    eta_all = rec.eta
    eta_max = cfg.electron_eta_max if flavour == 11 else cfg.muon_eta_max
    eff = cfg.electron_efficiency if flavour == 11 else cfg.muon_efficiency
    idx = np.flatnonzero(rec.is_final & (a_id == flavour) & (np.abs(eta_all) < eta_max)
                         & (rec.interaction == 0))
    pt_true = rec.pt[idx]
    if flavour == 11:
        e = rec.e[idx]
        rel = np.sqrt(ecal.stochastic ** 2 / e + ecal.constant ** 2)
    else:
        rel = np.hypot(0.02, 1e-4 * pt_true)
    pt = pt_true * np.maximum(1.0 + rel * rng.normal(0, 1, idx.size), 0.0)
    keep = (pt > cfg.pt_min_gev) & (rng.random(idx.size) < eff)
    idx, pt = idx[keep], pt[keep]
    ev = rec.event[idx]
    eta, phi = eta_all[idx], rec.phi[idx]
    iso = _track_isolation(ev, eta, phi, tracks, rec.n_events, 0.2, exclude_particle=idx,
                           track_vertex=track_vertex)
    return Leptons(ev, pt, eta, phi, charge[idx].astype(np.int8), iso,
                   lepton_flavour_origin(anc, idx))
