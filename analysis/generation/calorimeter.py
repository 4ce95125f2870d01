"""Parametric calorimeter: ECAL and HCAL signals per η-φ tower, at the electromagnetic scale.

* Visible stable particles (not neutrinos, not muons, which leave a MIP signal ignored here)
  within |η| < ``eta_max`` deposit their energy, pile-up included.
* Charged particles are bent in the solenoid before they reach the calorimeter radius; those
  that curl up before it (pT < 0.3·B·r/2) deposit nothing.
* Photons and electrons deposit in the ECAL with response 1. Hadrons are non-compensated: a
  fraction f of the shower is electromagnetic (π⁰), f = 1 − (E/E0)^(k−1) on average with a
  Gaussian spread (Groom), and the rest responds 1/(e/h) as much, so the hadron signal is
  E·(f + (1−f)·h/e): low and fluctuating, the source of most of the jet resolution. The
  hadron's signal is shared between ECAL (mean ``hadron_em_fraction``) and HCAL.
* Each layer of each tower is smeared with σ² = a²S + b²S²; every cell of the grid, empty or
  not, gets Gaussian noise (electronic, plus out-of-time pile-up ∝ √⟨μ⟩). A tower is kept
  when its total is above ``tower_threshold_gev`` and ``noise_threshold_sigma`` times its
  noise, as noise-suppressed topological clustering keeps cells.
* Tower energies stay at the EM scale; jets are calibrated (pile-up subtraction, then the
  MC-derived jet energy scale) in :mod:`analysis.generation.jets`.
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
    "hadron_response",
    "simulate_towers",
    "tower_grid",
    "tower_noise",
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


def hadron_response(
    energy: np.ndarray, cfg: CalorimeterConfig, rng: np.random.Generator
) -> np.ndarray:
    """Signal of hadrons at the EM scale over their energy: f + (1 − f)/(e/h).

    Args:
        energy: hadron energies (GeV).
        cfg: the ``detector.calorimeter`` section (``e_over_h``, ``em_fraction``).
        rng: the random generator (the EM-fraction fluctuation).

    Returns:
        The response of each hadron (1 for a fully electromagnetic shower).
    """
    emf = cfg.em_fraction
    mean = 1.0 - np.power(np.maximum(energy, emf.e0_gev) / emf.e0_gev, emf.exponent - 1.0)
    f = np.clip(mean + emf.sigma * rng.normal(0.0, 1.0, energy.size), 0.0, 1.0)
    return f + (1.0 - f) / cfg.e_over_h


def tower_noise(cfg: CalorimeterConfig, mu: float) -> tuple[float, float]:
    """Noise σ (GeV) of an ECAL and of an HCAL tower layer: electronic ⊕ out-of-time pile-up."""
    oot = cfg.oot_pileup_noise_gev * np.sqrt(max(mu, 0.0))
    return float(np.hypot(cfg.ecal.noise_gev, oot)), float(np.hypot(cfg.hcal.noise_gev, oot))


def simulate_towers(
    rec: FlatRecord, charge: np.ndarray, rng: np.random.Generator, cfg: CalorimeterConfig,
    b_field_t: float, mu: float = 0.0,
) -> Towers:
    """Measured towers of a batch from the final-state particles (pile-up included).

    Args:
        rec: the flat event record (GeV, mm).
        charge: the charge of every particle of ``rec`` (units of e).
        rng: the shard's random generator.
        cfg: the ``detector.calorimeter`` section.
        b_field_t: solenoid field (T).
        mu: ⟨μ⟩ of the overlaid pile-up (sets the out-of-time pile-up noise).

    Returns:
        The towers above threshold (EM-scale energies in GeV), sorted by event, η and φ index.
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
    signal = np.where(is_em, energy, energy * hadron_response(energy, cfg, rng))
    f_ecal = np.clip(rng.normal(cfg.hadron_em_fraction, 0.15, idx.size), 0.0, 1.0)
    f_ecal = np.where(is_em, 1.0, f_ecal)

    n_eta, n_phi = cfg.n_eta, cfg.n_phi
    n_cells = rec.n_events * n_eta * n_phi
    ieta = np.clip(((eta + cfg.eta_max) / (2 * cfg.eta_max) * n_eta).astype(np.int64), 0, n_eta - 1)
    iphi = np.clip(((phi + np.pi) / (2 * np.pi) * n_phi).astype(np.int64), 0, n_phi - 1)
    key = (rec.event[idx] * n_eta + ieta) * n_phi + iphi
    # dense sums over the (event, eta, phi) grid: cheaper than sorting the keys with pile-up
    occupied = np.flatnonzero(np.bincount(key, minlength=n_cells))
    s_em = np.bincount(key, weights=signal * f_ecal, minlength=n_cells)[occupied]
    s_had = np.bincount(key, weights=signal * (1.0 - f_ecal), minlength=n_cells)[occupied]

    noise_em, noise_had = tower_noise(cfg, mu)
    noise = float(np.hypot(noise_em, noise_had))
    threshold = max(cfg.tower_threshold_gev, cfg.noise_threshold_sigma * noise)
    e_em = _smear(s_em, cfg.ecal, noise_em, rng)
    e_had = _smear(s_had, cfg.hcal, noise_had, rng)
    cells, n_em, n_had = _noise_towers(occupied, n_cells, noise_em, noise_had, threshold, rng)
    cells = np.concatenate([occupied, cells])
    e_em = np.concatenate([e_em, n_em])
    e_had = np.concatenate([e_had, n_had])
    keep = (e_em + e_had) > threshold
    cells, e_em, e_had = cells[keep], e_em[keep], e_had[keep]
    order = np.argsort(cells, kind="stable")
    # a layer's negative noise fluctuation is kept at zero (the tower total is above threshold)
    cells, e_em, e_had = cells[order], np.maximum(e_em[order], 0.0), np.maximum(e_had[order], 0.0)
    t_iphi = cells % n_phi
    t_ieta = (cells // n_phi) % n_eta
    t_event = cells // (n_phi * n_eta)
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


def _noise_towers(
    occupied: np.ndarray, n_cells: int, noise_em: float, noise_had: float, threshold: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise-only towers above ``threshold`` among the empty cells, drawn without visiting
    every cell: each cell exceeds it with probability p = P(N(0, σ) > threshold), so a
    Binomial(n_cells, p) number of uniformly drawn cells, less those holding a signal (they
    get their noise in :func:`_smear`), are the empty cells that fluctuate up. Their total is
    drawn from the Gaussian tail beyond ``threshold`` and split between the layers by the
    conditional Gaussian.

    Returns:
        ``(cells, e_em, e_had)``: cell keys and layer energies (GeV).
    """
    from scipy.special import ndtr, ndtri

    sigma = float(np.hypot(noise_em, noise_had))
    if sigma <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
    p = float(ndtr(-threshold / sigma))
    n = int(rng.binomial(n_cells, p))
    cells = np.unique(rng.integers(0, n_cells, n))
    pos = np.searchsorted(occupied, cells)
    hit = (pos < occupied.size) & (occupied[np.minimum(pos, max(occupied.size - 1, 0))] == cells) \
        if occupied.size else np.zeros(cells.size, dtype=bool)
    cells = cells[~hit]
    total = -sigma * ndtri(p * rng.random(cells.size))
    share = noise_em**2 / sigma**2
    e_em = total * share + rng.normal(0.0, 1.0, cells.size) * noise_em * noise_had / sigma
    return cells, e_em, total - e_em


def _smear(signal: np.ndarray, layer: CaloLayer, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Smear the layer signals of the occupied cells (GeV): σ² = a²S + b²S² + noise²."""
    sigma = np.sqrt(layer.stochastic ** 2 * np.maximum(signal, 0.0) + (layer.constant * signal) ** 2
                    + noise**2)
    return signal + sigma * rng.standard_normal(signal.size)
