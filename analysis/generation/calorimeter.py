"""Parametric calorimeter: ECAL and HCAL energies per η-φ tower.

* Visible stable particles (not neutrinos, not muons, which leave a MIP signal ignored here)
  within |η| < ``eta_max`` deposit their energy.
* Charged particles are bent in the solenoid before they reach the calorimeter radius; those
  that curl up before it (pT < 0.3·B·r/2) deposit nothing.
* Photons and electrons deposit in the ECAL. Hadrons put a fluctuating electromagnetic
  fraction (mean ``hadron_em_fraction``) in the ECAL and the rest in the HCAL. Energies are
  at the calibrated (hadronic) scale: non-compensation is not modelled.
* Each layer of each tower is smeared with σ² = a²E + b²E² + noise²; towers whose total
  measured energy is below ``tower_threshold_gev`` are dropped. Empty towers carry no noise
  (noise-only towers are not simulated).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.core.config.detector import CaloLayer, CalorimeterConfig
from analysis.generation.record import FlatRecord
from analysis.generation.tracking import helix_radius_mm

__all__ = [
    "BARREL_HALF_LENGTH_MM",
    "Towers",
    "calorimeter_phi",
    "simulate_towers",
    "tower_grid",
]

#: half length (mm) of the calorimeter barrel: the end-cap face for forward particles
BARREL_HALF_LENGTH_MM = 3700.0


@dataclass
class Towers:
    """Flat towers of a batch, sorted by (event, η index, φ index)."""

    event: np.ndarray
    ieta: np.ndarray
    iphi: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    e_em: np.ndarray
    e_had: np.ndarray

    @property
    def e(self) -> np.ndarray:
        """Total measured energy of each tower (GeV)."""
        return self.e_em + self.e_had


def tower_grid(cfg: CalorimeterConfig) -> tuple[np.ndarray, np.ndarray]:
    """Bin edges ``(eta_edges, phi_edges)`` of the tower grid (φ in rad)."""
    eta_edges = np.linspace(-cfg.eta_max, cfg.eta_max, cfg.n_eta + 1)
    phi_edges = np.linspace(-np.pi, np.pi, cfg.n_phi + 1)
    return eta_edges, phi_edges


def calorimeter_phi(
    phi: np.ndarray, eta: np.ndarray, pt: np.ndarray, charge: np.ndarray,
    b_field_t: float, radius_mm: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth at the calorimeter face and whether the particle reaches it.

    Args:
        phi, eta: direction at production (φ in rad).
        pt: transverse momentum (GeV).
        charge: charge (units of e).
        b_field_t: solenoid field (T).
        radius_mm: calorimeter radius (mm).

    Returns:
        ``(phi_at_face, reaches)``: the azimuth (rad) and a boolean mask.
    """
    theta = 2 * np.arctan(np.exp(-eta))
    # transverse distance travelled before the calorimeter: barrel radius or end-cap face
    r_eff = np.minimum(radius_mm, BARREL_HALF_LENGTH_MM * np.abs(np.tan(theta)))
    radius = helix_radius_mm(np.maximum(pt, 1e-9), b_field_t)
    ratio = r_eff / (2 * radius)
    charged = charge != 0
    reaches = ~charged | (ratio < 1.0)
    bend = np.where(charged & reaches, np.arcsin(np.clip(ratio, 0, 1)), 0.0)
    new_phi = phi - np.sign(charge) * bend
    return np.angle(np.exp(1j * new_phi)), reaches


def simulate_towers(
    rec: FlatRecord, charge: np.ndarray, rng: np.random.Generator, cfg: CalorimeterConfig,
    b_field_t: float,
) -> Towers:
    """Measured towers of a batch from the final-state particles.

    Args:
        rec: the flat event record (GeV, mm).
        charge: the charge of every particle of ``rec`` (units of e).
        rng: the shard's random generator.
        cfg: the ``detector.calorimeter`` section.
        b_field_t: solenoid field (T).

    Returns:
        The towers above threshold (energies in GeV), sorted by event, η and φ index.
    """
    a_id = rec.abs_id
    eta_all = rec.eta
    vis = rec.visible & (np.abs(eta_all) < cfg.eta_max)
    idx = np.flatnonzero(vis)
    eta, pt = eta_all[idx], rec.pt[idx]
    phi, reaches = calorimeter_phi(rec.phi[idx], eta, pt, charge[idx], b_field_t, cfg.radius_mm)
    idx, eta, phi = idx[reaches], eta[reaches], phi[reaches]
    energy = rec.e[idx]
    a_vis = a_id[idx]
    is_em = (a_vis == 11) | (a_vis == 22)
    f_em = np.clip(rng.normal(cfg.hadron_em_fraction, 0.15, idx.size), 0.0, 1.0)
    f_em = np.where(is_em, 1.0, f_em)

    n_eta, n_phi = cfg.n_eta, cfg.n_phi
    ieta = np.clip(((eta + cfg.eta_max) / (2 * cfg.eta_max) * n_eta).astype(np.int64), 0, n_eta - 1)
    iphi = np.clip(((phi + np.pi) / (2 * np.pi) * n_phi).astype(np.int64), 0, n_phi - 1)
    key = (rec.event[idx] * n_eta + ieta) * n_phi + iphi
    uniq, inverse = np.unique(key, return_inverse=True)
    e_em = np.bincount(inverse, weights=energy * f_em, minlength=uniq.size)
    e_had = np.bincount(inverse, weights=energy * (1.0 - f_em), minlength=uniq.size)

    e_em = _smear(e_em, cfg.ecal, rng)
    e_had = _smear(e_had, cfg.hcal, rng)
    keep = (e_em + e_had) > cfg.tower_threshold_gev
    uniq, e_em, e_had = uniq[keep], e_em[keep], e_had[keep]
    t_iphi = uniq % n_phi
    t_ieta = (uniq // n_phi) % n_eta
    t_event = uniq // (n_phi * n_eta)
    eta_edges, phi_edges = tower_grid(cfg)
    return Towers(
        event=t_event,
        ieta=t_ieta,
        iphi=t_iphi,
        eta=0.5 * (eta_edges[t_ieta] + eta_edges[t_ieta + 1]),
        phi=0.5 * (phi_edges[t_iphi] + phi_edges[t_iphi + 1]),
        e_em=e_em,
        e_had=e_had,
    )


def _smear(energy: np.ndarray, layer: CaloLayer, rng: np.random.Generator) -> np.ndarray:
    """Smear layer energies (GeV) of non-empty towers; clip at zero."""
    sigma = np.sqrt(
        layer.stochastic ** 2 * energy + (layer.constant * energy) ** 2 + layer.noise_gev ** 2
    )
    measured = energy + rng.normal(0.0, 1.0, energy.size) * sigma
    return np.where(energy > 0, np.maximum(measured, 0.0), 0.0)
