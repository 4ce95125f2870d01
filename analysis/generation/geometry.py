"""Per-event pairwise η-φ kernels (numba) over flat, event-sorted arrays.

Every collection is passed as flat arrays plus ``offsets`` (length n_events + 1) such that
the objects of event ``i`` are ``offsets[i]:offsets[i+1]``. Results are indices into the
flat arrays, or -1.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["cone_sum", "delta_phi", "nearest_within", "offsets_from_event"]


@numba.njit(cache=True, inline="always")
def _dphi(a: float, b: float) -> float:
    d = a - b
    while d > np.pi:
        d -= 2 * np.pi
    while d <= -np.pi:
        d += 2 * np.pi
    return d


def delta_phi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """φ difference wrapped into (−π, π]."""
    return np.angle(np.exp(1j * (np.asarray(a) - np.asarray(b))))


def offsets_from_event(event: np.ndarray, n_events: int) -> np.ndarray:
    """Offsets of an event-sorted index array ``event``."""
    out = np.zeros(n_events + 1, dtype=np.int64)
    np.cumsum(np.bincount(event, minlength=n_events), out=out[1:])
    return out


@numba.njit(cache=True)
def nearest_within(
    a_event: np.ndarray, a_eta: np.ndarray, a_phi: np.ndarray,
    b_offsets: np.ndarray, b_eta: np.ndarray, b_phi: np.ndarray, b_max_dr: np.ndarray,
) -> np.ndarray:
    """For each ``a``, the nearest ``b`` of the same event with ΔR < that b's ``b_max_dr``."""
    out = np.full(a_eta.size, -1, dtype=np.int64)
    for i in range(a_eta.size):
        ev = a_event[i]
        best = 1e30
        for j in range(b_offsets[ev], b_offsets[ev + 1]):
            deta = a_eta[i] - b_eta[j]
            dphi = _dphi(a_phi[i], b_phi[j])
            dr2 = deta * deta + dphi * dphi
            if dr2 < b_max_dr[j] * b_max_dr[j] and dr2 < best:
                best = dr2
                out[i] = j
    return out


@numba.njit(cache=True)
def cone_sum(
    a_event: np.ndarray, a_eta: np.ndarray, a_phi: np.ndarray,
    b_offsets: np.ndarray, b_eta: np.ndarray, b_phi: np.ndarray, b_weight: np.ndarray,
    dr_max: float,
) -> np.ndarray:
    """For each ``a``, Σ ``b_weight`` over the ``b`` of its event within ΔR < ``dr_max``."""
    out = np.zeros(a_eta.size)
    r2 = dr_max * dr_max
    for i in range(a_eta.size):
        ev = a_event[i]
        s = 0.0
        for j in range(b_offsets[ev], b_offsets[ev + 1]):
            deta = a_eta[i] - b_eta[j]
            dphi = _dphi(a_phi[i], b_phi[j])
            if deta * deta + dphi * dphi < r2:
                s += b_weight[j]
        out[i] = s
    return out
