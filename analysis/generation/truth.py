"""Truth classification on a :class:`FlatRecord`: hadron flavours, weak decays, ancestry.

All functions are vectorised over the whole batch. Ancestry is followed along ``mother1``
with a bounded number of vectorised pointer jumps that stop at partons, so that hadrons are
never attributed to the parton shower history.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from analysis.generation.record import FlatRecord

__all__ = [
    "HARD_RECORD_IDS",
    "MAX_ANCESTRY_STEPS",
    "ORIGIN_FAKE",
    "ORIGIN_FROM_B",
    "ORIGIN_FROM_BC",
    "ORIGIN_FROM_C",
    "ORIGIN_FROM_TAU",
    "ORIGIN_OTHER_SECONDARY",
    "ORIGIN_PILEUP",
    "ORIGIN_PRIMARY",
    "Ancestry",
    "ancestry",
    "hard_record",
    "heavy_flavour",
    "last_copy",
    "lepton_flavour_origin",
    "track_origin",
]

# FTAG track truth-origin convention (docs/ntuple-format.md)
ORIGIN_PILEUP = 0
ORIGIN_FAKE = 1
ORIGIN_PRIMARY = 2
ORIGIN_FROM_B = 3
ORIGIN_FROM_BC = 4
ORIGIN_FROM_C = 5
ORIGIN_FROM_TAU = 6
ORIGIN_OTHER_SECONDARY = 7

MAX_ANCESTRY_STEPS = 256  # bound on explicit mother walks


def heavy_flavour(pdg_id: np.ndarray) -> np.ndarray:
    """Heaviest quark flavour of a hadron (5, 4, or 0 for light hadrons and non-hadrons)."""
    return _flavour_array(np.asarray(pdg_id, dtype=np.int64).ravel()).reshape(np.shape(pdg_id))


def last_copy(rec: FlatRecord) -> np.ndarray:
    """Particles none of whose daughters has the same PDG id (Pythia's 'bottom copy')."""
    same = np.zeros(rec.size, dtype=bool)
    d1 = rec.daughter1
    has = d1 >= 0
    same[has] = rec.pdg_id[d1[has]] == rec.pdg_id[has]
    return ~same


@dataclass
class Ancestry:
    """Flavour tables and, for every particle, the nearest ancestor (global index, or -1)."""

    flavour: np.ndarray  # heavy_flavour of every particle
    weak_b: np.ndarray  # weakly decaying b-hadrons
    weak_c: np.ndarray  # weakly decaying c-hadrons
    b_hadron: np.ndarray  # nearest weakly decaying b-hadron ancestor
    c_hadron: np.ndarray  # nearest weakly decaying c-hadron ancestor
    tau: np.ndarray
    v0: np.ndarray  # K0s, Lambda and other long-lived strange hadrons
    hadron: np.ndarray  # any hadron (for photons and leptons: 'from a hadron decay')


@numba.njit(cache=True, inline="always")
def _flavour_of(pdg: int) -> int:
    a = abs(pdg)
    if a <= 100 or a >= 1_000_000 or (a // 10) % 10 == 0:
        return 0
    q = max((a // 1000) % 10, (a // 100) % 10, (a // 10) % 10)
    return 5 if q >= 5 else (4 if q == 4 else 0)


@numba.njit(cache=True, inline="always")
def _is_parton(pdg: int) -> bool:
    a = abs(pdg)
    diquark = 1000 < a < 10000 and (a // 10) % 10 == 0
    return a <= 8 or a == 21 or diquark or 81 <= a <= 99


@numba.njit(cache=True)
def _ancestry_kernel(pdg, mother, d1, d2):  # type: ignore[no-untyped-def]
    """Flavours, weak-decay flags and nearest ancestors of 5 kinds in two passes.

    Kinds (rows of ``anc``): weakly decaying b-hadron, weakly decaying c-hadron, τ, V0,
    any hadron. Pythia appends decay products after their mother, so one forward pass
    suffices when ``mother[i] < i``; otherwise the chain is walked explicitly. The walk never
    passes a parton, so hadrons are not attributed to the shower history.
    """
    n = pdg.size
    flav = np.zeros(n, dtype=np.int8)
    for i in range(n):
        flav[i] = _flavour_of(pdg[i])
    weak_b = np.zeros(n, dtype=np.bool_)
    weak_c = np.zeros(n, dtype=np.bool_)
    kind = np.zeros((5, n), dtype=np.bool_)
    stop = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        f = flav[i]
        if f > 0:
            last = d2[i] if d2[i] >= d1[i] else d1[i]
            same = False
            if d1[i] >= 0:
                for j in range(d1[i], last + 1):
                    if flav[j] == f:
                        same = True
                        break
            if not same:
                if f == 5:
                    weak_b[i] = True
                else:
                    weak_c[i] = True
        a = abs(pdg[i])
        stop[i] = _is_parton(pdg[i])
        kind[0, i] = weak_b[i]
        kind[1, i] = weak_c[i]
        kind[2, i] = a == 15
        kind[3, i] = a == 310 or a == 3122 or a == 3222 or a == 3112 or a == 3312 or a == 3322 or a == 3334
        kind[4, i] = 100 < a < 1_000_000 and not stop[i]
    anc = np.full((5, n), -1, dtype=np.int64)
    for i in range(n):
        m = mother[i]
        if m < 0:
            continue
        if m < i:
            for k in range(5):
                if kind[k, m]:
                    anc[k, i] = m
                elif not stop[m]:
                    anc[k, i] = anc[k, m]
            continue
        for k in range(5):
            mm = m
            steps = 0
            while mm >= 0 and steps < 256:
                if kind[k, mm]:
                    anc[k, i] = mm
                    break
                if stop[mm]:
                    break
                mm = mother[mm]
                steps += 1
    return flav, weak_b, weak_c, anc


@numba.njit(cache=True)
def _flavour_array(pdg: np.ndarray) -> np.ndarray:
    out = np.zeros(pdg.size, dtype=np.int8)
    for i in range(pdg.size):
        out[i] = _flavour_of(pdg[i])
    return out


def ancestry(rec: FlatRecord) -> Ancestry:
    """Flavour tables and nearest ancestors of each kind (hadron-level history only)."""
    flav, wb, wc, anc = _ancestry_kernel(rec.pdg_id, rec.mother1, rec.daughter1, rec.daughter2)
    return Ancestry(
        flavour=flav, weak_b=wb, weak_c=wc,
        b_hadron=anc[0], c_hadron=anc[1], tau=anc[2], v0=anc[3], hadron=anc[4],
    )


def track_origin(anc: Ancestry, idx: np.ndarray) -> np.ndarray:
    """FTAG truth origin for the particles ``idx`` (global indices)."""
    from_b = anc.b_hadron[idx] >= 0
    from_c = anc.c_hadron[idx] >= 0
    origin = np.full(idx.size, ORIGIN_PRIMARY, dtype=np.int8)
    origin[anc.v0[idx] >= 0] = ORIGIN_OTHER_SECONDARY
    origin[anc.tau[idx] >= 0] = ORIGIN_FROM_TAU
    origin[from_c] = ORIGIN_FROM_C
    origin[from_b] = ORIGIN_FROM_B
    origin[from_b & from_c] = ORIGIN_FROM_BC
    return origin


def lepton_flavour_origin(anc: Ancestry, idx: np.ndarray) -> np.ndarray:
    """NanoAOD-style ``genPartFlav`` for leptons: 1 prompt, 15 τ, 5 b, 4 c, 3 light hadron."""
    flav = np.ones(idx.size, dtype=np.uint8)
    flav[anc.hadron[idx] >= 0] = 3
    flav[anc.tau[idx] >= 0] = 15
    flav[anc.c_hadron[idx] >= 0] = 4
    flav[anc.b_hadron[idx] >= 0] = 5
    return flav


HARD_RECORD_IDS = (6, 23, 24, 25, 35, 1000021, 1000022)


def hard_record(rec: FlatRecord) -> tuple[np.ndarray, np.ndarray]:
    """Global indices of the stored hard-process record and each one's stored mother.

    Keeps the hard-process particles (|status| 21-29), the last copies of t, Z, W, H, X,
    g̃ and χ̃⁰₁, and the direct daughters of those last copies. Returns ``(idx, mother)``
    where ``mother`` is the global index of the nearest stored ancestor (or -1).
    """
    a_id = rec.abs_id
    a_st = np.abs(rec.status)
    heavy_last = np.isin(a_id, HARD_RECORD_IDS) & last_copy(rec)
    keep = ((a_st >= 21) & (a_st <= 29)) | heavy_last
    mom = rec.mother1
    child_of_heavy = np.zeros(rec.size, dtype=bool)
    has_mom = mom >= 0
    child_of_heavy[has_mom] = heavy_last[mom[has_mom]]
    keep |= child_of_heavy
    idx = np.flatnonzero(keep)

    # nearest kept ancestor, by pointer jumps
    mother = np.full(idx.size, -1, dtype=np.int64)
    cur = mom[idx].copy()
    active = np.flatnonzero(cur >= 0)
    for _ in range(MAX_ANCESTRY_STEPS * 4):
        if active.size == 0:
            break
        c = cur[active]
        hit = keep[c]
        mother[active[hit]] = c[hit]
        active = active[~hit]
        cur[active] = mom[cur[active]]
        active = active[cur[active] >= 0]
    return idx, mother
