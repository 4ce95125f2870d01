"""The photon-energy-resolution variation's smearing, reproducible whatever the chunking.

Each photon's extra smearing is a deterministic N(0, 1) of (seed, event number, photon index
in the event): splitmix64 hashing and Box–Muller. This is the numpy definition that the
reference processor uses; :func:`selections.hh_yybb.kernel.resolution_factors` is its
compiled twin (the same operations, the same bits: ``tests/selections/hh_yybb/test_kernel.py``).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["hash_normals", "resolution_factors_numpy"]

# splitmix64 (the same constants in the numpy and the compiled hash)
_GOLDEN, _MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_SECOND_DRAW = 0xD1B54A32D192ED03  # key of the second uniform of the Box–Muller pair


def hash_normals(keys: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic N(0, 1) per uint64 key (splitmix64 + Box–Muller): reproducible smearing
    whatever the chunking. (In-place uint64 arithmetic: wrapping multiplication.)"""
    def mix(z: np.ndarray) -> np.ndarray:
        z += np.uint64(_GOLDEN)
        z ^= z >> np.uint64(30)
        z *= np.uint64(_MIX1)
        z ^= z >> np.uint64(27)
        z *= np.uint64(_MIX2)
        z ^= z >> np.uint64(31)
        return z

    with np.errstate(over="ignore"):
        a = mix(keys.astype(np.uint64) ^ np.uint64(seed))
        b = mix(a ^ np.uint64(_SECOND_DRAW))
    a >>= np.uint64(11)
    b >>= np.uint64(11)
    u1 = a.astype(np.float64)
    u1 += 0.5
    u1 /= float(1 << 53)
    u2 = b.astype(np.float64)
    u2 += 0.5
    u2 *= 2.0 * np.pi / float(1 << 53)
    np.log(u1, out=u1)
    u1 *= -2.0
    np.sqrt(u1, out=u1)
    np.cos(u2, out=u2)
    u1 *= u2
    return u1


def resolution_factors_numpy(offsets: np.ndarray, pt: np.ndarray, eta: np.ndarray, event: np.ndarray, *,
                             seed: int, stochastic: float, constant: float,
                             relative_uncertainty: float) -> np.ndarray:
    """Per-photon energy factor 1 + z·σ_extra/E of the photon-resolution-up variation:
    σ/E = stochastic/√E ⊕ constant (E [GeV] = pT cosh η), widened by
    ``relative_uncertainty``, so σ_extra = σ √((1 + r)² − 1); z a deterministic N(0, 1) of
    (seed, event number, photon index in the event), independent of the chunking. Clipped
    at 0. ``offsets``: n + 1 photon boundaries of the n events in ``event``."""
    e = pt.astype(np.float64) * np.cosh(eta.astype(np.float64))
    rel = np.sqrt(stochastic * stochastic / np.maximum(e, 1e-3) + constant * constant)
    extra = rel * math.sqrt((1.0 + relative_uncertainty) ** 2 - 1.0)
    evt = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    local = np.arange(len(e)) - offsets[:-1][evt]
    keys = np.asarray(event, dtype=np.uint64)[evt] * np.uint64(64) + local.astype(np.uint64)
    z = hash_normals(keys, seed)
    return np.maximum(1.0 + z * extra, 0.0)
