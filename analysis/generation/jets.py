"""Jet clustering with fastjet, jet calibration and jet-level truth: anti-kt jets, pile-up
density and area subtraction, the jet energy scale, JVT inputs, matching, flavour labels.

Inputs and outputs are flat, event-sorted numpy arrays (see :mod:`analysis.generation.geometry`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from dataclasses import dataclass

import awkward as ak
import numpy as np
import vector

from analysis.core.config.detector import JetReconstruction
from analysis.generation.geometry import nearest_within, offsets_from_event

__all__ = [
    "Jets",
    "antikt",
    "calibrate",
    "hadron_cone_label",
    "jes_factor",
    "jvt_inputs",
    "local_index",
    "match_nearest",
    "pileup_density",
    "track_association_cone",
]

vector.register_awkward()


@dataclass
class Jets:
    """Flat jets of a batch, sorted by event then by decreasing pT."""

    event: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    mass: np.ndarray

    def take(self, sel: np.ndarray) -> Jets:
        return Jets(self.event[sel], self.pt[sel], self.eta[sel], self.phi[sel], self.mass[sel])

    def offsets(self, n_events: int) -> np.ndarray:
        return offsets_from_event(self.event, n_events)


@contextlib.contextmanager
def _stdout_fd_to_devnull():  # type: ignore[no-untyped-def]
    """Silence C/C++ writes to file descriptor 1 (Python's redirect_stdout cannot)."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


@functools.lru_cache(maxsize=1)
def _quiet_fastjet():  # type: ignore[no-untyped-def]
    """Import fastjet and trigger its one-time banner with stdout silenced.

    FastJet (Cacciari, Salam, Soyez, EPJC 72 (2012) 1896) is cited in docs/architecture.md.
    """
    import fastjet

    with _stdout_fd_to_devnull():
        fastjet.ClusterSequence(
            ak.Array([[{"px": 1.0, "py": 0.0, "pz": 0.0, "E": 1.0}]], with_name="Momentum4D"),
            fastjet.JetDefinition(fastjet.antikt_algorithm, 0.4),
        ).inclusive_jets()
    return fastjet


def antikt(
    event: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray, e: np.ndarray,
    n_events: int, radius: float, pt_min: float, eta_max: float,
) -> Jets:
    """Anti-kt jets (E-scheme) of event-sorted pseudo-particles; GeV in, GeV out."""
    fastjet = _quiet_fastjet()
    counts = np.bincount(event, minlength=n_events)
    inputs = ak.unflatten(
        ak.zip({"px": px, "py": py, "pz": pz, "E": e}, with_name="Momentum4D"), counts
    )
    cs = fastjet.ClusterSequence(inputs, fastjet.JetDefinition(fastjet.antikt_algorithm, radius))
    jets = cs.inclusive_jets(min_pt=pt_min)
    n = ak.to_numpy(ak.num(jets, axis=1))
    flat = ak.without_parameters(ak.flatten(jets, axis=1))
    jpx, jpy = ak.to_numpy(flat["px"]), ak.to_numpy(flat["py"])
    jpz, je = ak.to_numpy(flat["pz"]), ak.to_numpy(flat["E"])
    jev = np.repeat(np.arange(n_events), n)
    pt = np.hypot(jpx, jpy)
    eta = np.arcsinh(np.divide(jpz, pt, out=np.zeros_like(pt), where=pt > 0))
    phi = np.arctan2(jpy, jpx)
    mass = np.sqrt(np.maximum(je**2 - jpx**2 - jpy**2 - jpz**2, 0.0))
    order = np.lexsort((-pt, jev))
    out = Jets(jev, pt, eta, phi, mass).take(order)
    return out.take(np.abs(out.eta) < eta_max)


def pileup_density(
    event: np.ndarray, eta: np.ndarray, phi: np.ndarray, pt: np.ndarray, n_events: int,
    cfg: JetReconstruction,
) -> np.ndarray:
    """Event-by-event pile-up density ρ (GeV per unit η-φ area): the median over patches.

    The towers within |η| < ``rho_eta_max`` are summed in patches of ``rho_patch`` in η and
    φ; ρ is the median of patch pT / patch area, empty patches included, so that the few
    patches holding the hard scatter do not move it (Cacciari-Salam's median, on a fixed grid).

    Args:
        event, eta, phi, pt: the towers (GeV, rad).
        n_events: events in the batch.
        cfg: the ``detector.jets`` section.

    Returns:
        ρ of each event (GeV).
    """
    n_eta = max(1, int(round(2 * cfg.rho_eta_max / cfg.rho_patch)))
    n_phi = max(1, int(round(2 * np.pi / cfg.rho_patch)))
    area = (2 * cfg.rho_eta_max / n_eta) * (2 * np.pi / n_phi)
    sel = np.abs(eta) < cfg.rho_eta_max
    ie = np.clip(((eta[sel] + cfg.rho_eta_max) / (2 * cfg.rho_eta_max) * n_eta).astype(np.int64), 0, n_eta - 1)
    ip = np.clip(((phi[sel] + np.pi) / (2 * np.pi) * n_phi).astype(np.int64), 0, n_phi - 1)
    key = (event[sel] * n_eta + ie) * n_phi + ip
    grid = np.bincount(key, weights=pt[sel], minlength=n_events * n_eta * n_phi)
    return np.median(grid.reshape(n_events, n_eta * n_phi), axis=1) / area


def jes_factor(energy: np.ndarray, cfg: JetReconstruction) -> np.ndarray:
    """The jet energy scale factor at pile-up-subtracted EM-scale energies (GeV), linear in
    log E between the knots and flat beyond them."""
    knots = np.log(np.asarray(cfg.jes_energy_gev, dtype=np.float64))
    return np.interp(np.log(np.maximum(energy, 1e-3)), knots, np.asarray(cfg.jes_factor, dtype=np.float64))


def calibrate(raw: Jets, rho: np.ndarray, cfg: JetReconstruction) -> tuple[Jets, np.ndarray]:
    """Calibrated jets from EM-scale jets: area subtraction, then the jet energy scale.

    pT → (pT − ρ·πR²)·JES(E_sub): the four-momentum is scaled as a whole (η, φ kept). Jets
    left with pT ≤ 0 after subtraction, or below ``pt_min_gev`` after calibration, or beyond
    ``eta_max``, are dropped.

    Args:
        raw: EM-scale jets (GeV).
        rho: pile-up density of each event (GeV).
        cfg: the ``detector.jets`` section.

    Returns:
        ``(jets, index)``: the calibrated jets (event-sorted, by decreasing pT) and, for each,
        its index in ``raw``.
    """
    area = np.pi * cfg.radius**2
    sub = np.maximum(raw.pt - rho[raw.event] * area, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(raw.pt > 0, sub / raw.pt, 0.0)
    e_sub = raw.pt * np.cosh(raw.eta) * scale
    scale = scale * jes_factor(e_sub, cfg)
    jets = Jets(raw.event, raw.pt * scale, raw.eta, raw.phi, raw.mass * scale)
    keep = np.flatnonzero((jets.pt > cfg.pt_min_gev) & (np.abs(jets.eta) < cfg.eta_max))
    order = keep[np.lexsort((-jets.pt[keep], jets.event[keep]))]
    return jets.take(order), order


def jvt_inputs(
    jet_pt: np.ndarray, track_jet: np.ndarray, track_pt: np.ndarray, track_vertex: np.ndarray,
    track_event: np.ndarray, n_events: int, k: float,
) -> tuple[np.ndarray, np.ndarray]:
    """corrJVF and RpT of each jet (the inputs of ATLAS's jet-vertex tagger, JVT).

    corrJVF = ΣpT(PV) / (ΣpT(PV) + ΣpT(PU) / (k · n_trk^PU)) over the jet's tracks, with PU the
    tracks associated with another vertex and n_trk^PU the event's pile-up tracks; −1 for a
    jet without vertex-associated tracks. RpT = ΣpT(PV) / pT(jet).

    Args:
        jet_pt: calibrated jet pT (GeV).
        track_jet: the global jet index of each track (-1 none).
        track_pt: track pT (GeV).
        track_vertex: each track's vertex (0 primary, ≥ 1 pile-up, -1 none).
        track_event: each track's event.
        n_events: events in the batch.
        k: the corrJVF scale (0.01 in ATLAS).

    Returns:
        ``(corr_jvf, rpt)`` per jet.
    """
    n_jets = jet_pt.size
    in_jet = track_jet >= 0
    pv = in_jet & (track_vertex == 0)
    pu = in_jet & (track_vertex > 0)
    pt_pv = np.bincount(track_jet[pv], weights=track_pt[pv], minlength=n_jets)
    pt_pu = np.bincount(track_jet[pu], weights=track_pt[pu], minlength=n_jets)
    n_pu_event = np.bincount(track_event[track_vertex > 0], minlength=n_events)
    jet_event = np.zeros(n_jets, dtype=np.int64)
    jet_event[track_jet[in_jet]] = track_event[in_jet]
    n_pu = np.maximum(n_pu_event[jet_event], 1)
    denom = pt_pv + pt_pu / (k * n_pu)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(denom > 0, pt_pv / denom, -1.0)
        rpt = np.where(jet_pt > 0, pt_pv / jet_pt, 0.0)
    return corr, rpt


def match_nearest(
    a_event: np.ndarray, a_eta: np.ndarray, a_phi: np.ndarray,
    b_event: np.ndarray, b_eta: np.ndarray, b_phi: np.ndarray,
    n_events: int, max_dr: float | np.ndarray,
) -> np.ndarray:
    """Global index of the nearest ``b`` (same event, ΔR < max_dr) of each ``a``, or -1.

    ``b`` must be event-sorted. ``max_dr`` may be one value or one per ``b``.
    """
    offsets = offsets_from_event(b_event, n_events)
    cones = np.broadcast_to(np.asarray(max_dr, dtype=np.float64), b_eta.shape).copy()
    return nearest_within(
        a_event.astype(np.int64), a_eta.astype(np.float64), a_phi.astype(np.float64),
        offsets, b_eta.astype(np.float64), b_phi.astype(np.float64), cones,
    )


def local_index(global_idx: np.ndarray, b_event: np.ndarray, n_events: int) -> np.ndarray:
    """Convert global indices into a flat, event-sorted collection to per-event indices."""
    offsets = offsets_from_event(b_event, n_events)
    out = np.full(global_idx.shape, -1, dtype=np.int64)
    ok = global_idx >= 0
    out[ok] = global_idx[ok] - offsets[b_event[global_idx[ok]]]
    return out


def track_association_cone(jet_pt: np.ndarray) -> np.ndarray:
    """ATLAS shrinking cone for track-to-jet association: 0.239 + exp(−1.22 − 0.0164 pT/GeV)."""
    return 0.239 + np.exp(-1.22 - 1.64e-2 * jet_pt)


def hadron_cone_label(
    jets: Jets, n_events: int,
    hadron_event: np.ndarray, hadron_eta: np.ndarray, hadron_phi: np.ndarray,
    hadron_flavour: np.ndarray, dr: float,
) -> tuple[np.ndarray, np.ndarray]:
    """HadronConeExclTruthLabelID of each jet and the jet each hadron labels.

    ``hadron_flavour`` is 5, 4 or 15 for weakly decaying b-, c-hadrons and τ leptons (already
    above the pT threshold). Each hadron labels only its nearest jet within ``dr``; a jet is 5
    if it holds a b-hadron, else 4 for a c-hadron, else 15 for a τ, else 0.
    """
    jet_of = match_nearest(
        hadron_event, hadron_eta, hadron_phi, jets.event, jets.eta, jets.phi, n_events, dr
    )
    label = np.zeros(jets.pt.size, dtype=np.int8)
    for flav in (15, 4, 5):  # increasing priority: later assignments win
        hit = jet_of[(hadron_flavour == flav) & (jet_of >= 0)]
        label[hit] = flav
    return label, jet_of
