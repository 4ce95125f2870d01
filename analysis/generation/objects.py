"""Reconstructed photons and leptons.

Photons are EM clusters seeded by stable photons: every photon and electron within
``cluster_dr`` of the seed joins the cluster, so a collimated π⁰ → γγ pair becomes one
photon candidate — the real mechanism by which jets fake photons. The identification
emulates the η-strip layer: a cluster fails when a second photon carrying more than
``second_photon_fraction`` of its energy is separated by more than ``strip_deta`` in η.
Isolation sums the transverse energy of visible particles (calorimeter) and the pT of
reconstructed tracks in a cone around the photon.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from analysis.core.config.detector import CaloLayer, LeptonReconstruction, PhotonReconstruction
from analysis.generation.geometry import _dphi, cone_sum, offsets_from_event
from analysis.generation.record import FlatRecord
from analysis.generation.tracking import Tracks
from analysis.generation.truth import ORIGIN_OTHER_SECONDARY, Ancestry, lepton_flavour_origin

__all__ = [
    "PHOTON_SEED_PT_GEV",
    "Leptons",
    "Photons",
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


def reconstruct_photons(
    rec: FlatRecord, anc: Ancestry, tracks: Tracks, rng: np.random.Generator,
    cfg: PhotonReconstruction, ecal: CaloLayer,
) -> Photons:
    """Photon candidates of a batch.

    Args:
        rec: the flat event record (GeV, mm).
        anc: its ancestry.
        tracks: the reconstructed tracks, event-sorted (track isolation).
        rng: the shard's random generator.
        cfg: the ``detector.photons`` section.
        ecal: the ECAL resolution (``detector.calorimeter.ecal``).

    Returns:
        The photons passing pT and acceptance, in the order of their seeds.
    """
    a_id = rec.abs_id
    final = rec.is_final
    eta_all, phi_all, pt_all = rec.eta, rec.phi, rec.pt
    em = np.flatnonzero(final & ((a_id == 11) | (a_id == 22)) & (np.abs(eta_all) < 2.6))
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
    e_true = p4[:, 3]
    sigma = np.sqrt(ecal.stochastic ** 2 * e_true + (ecal.constant * e_true) ** 2)
    scale = np.maximum(1.0 + sigma / e_true * rng.normal(0, 1, e_true.size), 0.0)
    pt_true = np.hypot(p4[:, 0], p4[:, 1])
    eta = np.arcsinh(p4[:, 2] / pt_true)
    phi = np.arctan2(p4[:, 1], p4[:, 0])
    pt = pt_true * scale
    keep = (pt > cfg.pt_min_gev) & _in_photon_acceptance(eta, cfg)
    seeds, pt, eta, phi = seeds[keep], pt[keep], eta[keep], phi[keep]
    frac2, deta2, pt_true = frac2[keep], deta2[keep], pt_true[keep]
    ev = rec.event[seeds]

    resolved_pair = (frac2 > cfg.second_photon_fraction) & (deta2 > cfg.strip_deta)
    tight = ~resolved_pair & (rng.random(seeds.size) < cfg.id_efficiency)

    vis = np.flatnonzero(rec.visible)
    vis_off = offsets_from_event(rec.event[vis], rec.n_events)
    et_cone = cone_sum(ev, eta, phi, vis_off, eta_all[vis], phi_all[vis], pt_all[vis],
                       cfg.isolation_dr)
    iso_calo = np.maximum(et_cone - pt_true, 0.0)
    iso_track = _track_isolation(ev, eta, phi, tracks, rec.n_events, cfg.isolation_dr)
    flav = np.where(anc.hadron[seeds] >= 0, 2, 1).astype(np.uint8)
    return Photons(ev, pt, eta, phi, iso_calo, iso_track, tight, flav)


def _track_isolation(
    ev: np.ndarray, eta: np.ndarray, phi: np.ndarray, tracks: Tracks, n_events: int, dr: float,
    exclude_particle: np.ndarray | None = None,
) -> np.ndarray:
    """Σ pT of tracks in ΔR < dr (conversion electrons excluded; optionally one own track)."""
    use = ~((tracks.origin == ORIGIN_OTHER_SECONDARY) & (np.abs(tracks.gen_pdg_id) == 11))
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
) -> Leptons:
    """Electrons (``flavour`` 11) or muons (13) of a batch.

    Args:
        rec: the flat event record (GeV, mm).
        anc: its ancestry.
        tracks: the reconstructed tracks, event-sorted (track isolation).
        rng: the shard's random generator.
        cfg: the ``detector.leptons`` section.
        ecal: the ECAL resolution (electron energy smearing).
        flavour: 11 (electrons) or 13 (muons).
        charge: the charge of every particle of ``rec`` (units of e).

    Returns:
        The leptons passing pT, acceptance and efficiency.
    """
    a_id = rec.abs_id
    eta_all = rec.eta
    eta_max = cfg.electron_eta_max if flavour == 11 else cfg.muon_eta_max
    eff = cfg.electron_efficiency if flavour == 11 else cfg.muon_efficiency
    idx = np.flatnonzero(rec.is_final & (a_id == flavour) & (np.abs(eta_all) < eta_max))
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
    iso = _track_isolation(ev, eta, phi, tracks, rec.n_events, 0.2, exclude_particle=idx)
    return Leptons(ev, pt, eta, phi, charge[idx].astype(np.int8), iso,
                   lepton_flavour_origin(anc, idx))
