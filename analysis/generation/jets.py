"""Jet clustering with fastjet and jet-level truth: anti-kt jets, matching, flavour labels.

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

from analysis.generation.geometry import nearest_within, offsets_from_event

__all__ = [
    "Jets",
    "antikt",
    "hadron_cone_label",
    "local_index",
    "match_nearest",
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
