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

# FTAG track truth-origin convention (docs/ntuple-format.md)
ORIGIN_FAKE = 1
ORIGIN_PRIMARY = 2
ORIGIN_FROM_B = 3
ORIGIN_FROM_BC = 4
ORIGIN_FROM_C = 5
ORIGIN_FROM_TAU = 6
ORIGIN_OTHER_SECONDARY = 7

V0_IDS = (310, 3122, 3222, 3112, 3312, 3322, 3334)  # K0s, Lambda, Sigma+-, Xi, Omega
INVISIBLE_IDS = (12, 14, 16, 1000022, 1000039)
MAX_ANCESTRY_STEPS = 256


def heavy_flavour(pdg_id: np.ndarray) -> np.ndarray:
    """Heaviest quark flavour of a hadron (5, 4, or 0 for light hadrons and non-hadrons)."""
    a = np.abs(pdg_id)
    is_hadron = (a > 100) & (a < 1_000_000) & ((a // 10) % 10 != 0)  # excludes diquarks
    # mesons: digits n_q2 n_q3 (hundreds, tens); baryons: n_q1 n_q2 n_q3 (thousands..tens)
    q1 = (a // 1000) % 10
    q2 = (a // 100) % 10
    q3 = (a // 10) % 10
    heaviest = np.maximum(np.maximum(q1, q2), q3)
    flav = np.where(heaviest >= 5, 5, np.where(heaviest == 4, 4, 0))
    return np.where(is_hadron, flav, 0)


def is_parton(pdg_id: np.ndarray) -> np.ndarray:
    """Quarks, gluons, diquarks and Pythia's string/cluster pseudo-particles."""
    a = np.abs(pdg_id)
    diquark = (a > 1000) & (a < 10000) & ((a // 10) % 10 == 0)
    return (a <= 8) | (a == 21) | diquark | ((a >= 81) & (a <= 99))


def _daughter_count(rec: FlatRecord, flag: np.ndarray) -> np.ndarray:
    """Number of daughters (in Pythia's contiguous range d1..d2) for which ``flag`` is true."""
    csum = np.concatenate([[0], np.cumsum(flag.astype(np.int64))])
    d1 = rec.daughter1
    d2 = np.where(rec.daughter2 >= d1, rec.daughter2, d1)
    has = d1 >= 0
    out = np.zeros(rec.size, dtype=np.int64)
    out[has] = csum[d2[has] + 1] - csum[d1[has]]
    return out


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


@numba.njit(cache=True)
def _nearest_flagged_ancestor(mother: np.ndarray, flag: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Nearest ancestor with ``flag`` along ``mother``, not walking past ``stop`` particles.

    Pythia appends decay products after their mother, so one forward pass suffices when
    ``mother[i] < i``; otherwise the chain is walked explicitly.
    """
    n = mother.size
    out = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        m = mother[i]
        if m < 0:
            continue
        if m < i:
            if flag[m]:
                out[i] = m
            elif not stop[m]:
                out[i] = out[m]
            continue
        steps = 0
        while m >= 0 and steps < 256:
            if flag[m]:
                out[i] = m
                break
            if stop[m]:
                break
            m = mother[m]
            steps += 1
    return out


def ancestry(rec: FlatRecord) -> Ancestry:
    """Flavour tables and nearest ancestors of each kind (hadron-level history only)."""
    flav = heavy_flavour(rec.pdg_id)
    a_id = rec.abs_id
    is_b, is_c = flav == 5, flav == 4
    wb = is_b & (_daughter_count(rec, is_b) == 0)
    wc = is_c & (_daughter_count(rec, is_c) == 0)
    stop = is_parton(rec.pdg_id)
    hadron = (a_id > 100) & (a_id < 1_000_000) & ~stop
    mother = rec.mother1

    def near(flag: np.ndarray) -> np.ndarray:
        return _nearest_flagged_ancestor(mother, flag, stop)

    return Ancestry(
        flavour=flav, weak_b=wb, weak_c=wc,
        b_hadron=near(wb), c_hadron=near(wc), tau=near(a_id == 15),
        v0=near(np.isin(a_id, V0_IDS)), hadron=near(hadron),
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
