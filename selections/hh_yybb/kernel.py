"""The per-event logic of one HH → γγbb̄ selection pass, compiled (numba) and in numpy.

:class:`selections.hh_yybb.compiled.CompiledProcessor` runs one pass per variation (nominal, photon
energy scale up/down, resolution up, jet energy scale up/down). The per-object masks
(acceptance, identification, isolation, jet ID: :mod:`selections.objects`) are numpy; what
this module computes from them is the part that walks the objects of each event:

- the diphoton: the two leading selected photons (or the two with the highest smeared pT),
  m_γγ;
- leptons and jets farther than ΔR from both photons, the lepton count and the jet count;
- b-tag categories (2-tag: ≥ 2 jets at the 2-tag WP; else 1-tag: a jet at the 1-tag WP),
  the two b-jet candidates (tagged first, then by pT) and the two leading jets;
- m_bb, m*_bbγγ = m_bbγγ − m_bb − m_γγ + offset and the candidates' pT, for the candidates
  and for the two leading jets, in events whose diphoton passes the E_T/m_γγ and m_γγ cuts
  (NaN elsewhere: every region that uses them requires those cuts);
- for truth-tagged samples, :func:`truth_rows`: every way an event's selected jets can
  make it 2-tag or 1-tag, with its probability per efficiency table and its masses (the
  numpy reference: ``selections.hh_yybb.btag.truth_tag_rows`` and :func:`pair_rows_numpy`).

:func:`event_arrays` is one numba loop over the events (≈ 0.07–0.15 µs per event and pass);
:func:`event_arrays_numpy` is the same computation in vectorised numpy, the reference the
tests compare it with (and the ``selection.hh_yybb.engine: numpy`` fallback). Missing
objects give index −1 and NaN kinematics, as in the numpy path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol

import numba
import numpy as np

from selections import objects as O
from selections.hh_yybb.smearing import _GOLDEN, _MIX1, _MIX2, _SECOND_DRAW

__all__ = [
    "EVENT_FIELDS",
    "FlatObjects",
    "PassInput",
    "count_per_event",
    "event_arrays",
    "event_arrays_numpy",
    "kernel_loaded",
    "objects_and_offsets",
    "objects_of",
    "pair_rows_numpy",
    "resolution_factors",
    "sorted_within",
    "take_or_nan",
    "truth_rows",
    "warm_up",
]

_INT_FIELDS = ("i1", "i2", "n_lep", "n_j", "tag", "c0", "c1", "l0", "l1")
_FLOAT_FIELDS = ("myy", "g1pt", "g2pt", "mbb", "mstar", "j1", "j2", "mjj_lead", "mstar_lead", "angle")
EVENT_FIELDS = _INT_FIELDS + _FLOAT_FIELDS
"""Per-event outputs (plus ``jet_mask``, per jet: selected and overlap-free). ``angle`` is
the photon pair's cosh Δη − cos Δφ (m²_γγ = 2 pT1 pT2 · angle), NaN where m_γγ was not
computed: the shifted passes reuse it for the same pair
(:func:`selections.hh_yybb.shifted.shifted_entries`)."""


class FlatObjects(Protocol):
    """One collection of a chunk as flat arrays, one entry per object, with the events'
    ``offsets`` (n + 1 boundaries from 0): ``selections.hh_yybb.processor.FlatCollection``."""

    offsets: np.ndarray

    def __getitem__(self, name: str, /) -> np.ndarray: ...


class PassInput(dict):
    """Inputs of one pass, flat arrays with event ``offsets`` per collection.

    Keys: ``ph_off, ph_pt, ph_eta, ph_phi, ph_mask`` (selected photons), ``top2`` (pick
    the two highest-pT selected photons instead of the first two: smeared pT may reorder);
    ``e_off, e_eta, e_phi, e_mask``, ``mu_off, mu_eta, mu_phi, mu_mask`` (selected leptons
    before photon overlap removal); ``lep_dr``; ``j_off, j_pt, j_eta, j_phi, j_mass,
    j_mask`` (selected jets before overlap removal), ``j_bin`` (WPs passed), ``jet_dr``,
    ``bin_two, bin_one`` (tag bins of the 2-tag and 1-tag WPs), ``mstar_offset`` [GeV];
    ``lead_frac, sub_frac`` (E_T/m_γγ cuts) and ``myy_window`` [GeV]: the jet masses and
    pTs are computed (else NaN) only for events with a diphoton passing these, the only
    events any region uses them for. Optional: ``event_mask`` (bool per event; events
    outside it get no photons, no objects: the jet-energy-scale passes need only the
    events whose nominal diphoton passed) and ``full`` (default True; False: no leptons,
    jets or tags for events failing the diphoton cuts, which only the nominal pass's
    cutflow and b-tag weights of those events need) and ``all_myy`` (default True; False:
    m_γγ is NaN, instead of computed, where the photons are too soft to pass the E_T/m_γγ
    cuts with any m_γγ in the window, pT1 ≤ lead_frac·lo or pT2 ≤ sub_frac·lo: for passes
    whose m_γγ no cutflow row uses, since every region needs the diphoton cuts).
    """


# ---------------------------------------------------------------------------------------
# compiled
# ---------------------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def _dr_free(eta, phi, g1eta, g1phi, g2eta, g2phi, dr_min):  # pragma: no cover - numba
    """True if (eta, phi) is farther than dr_min from both points (NaN points: no point)."""
    if not dr_min > 0.0:
        return True
    dr2 = dr_min * dr_min
    deta = eta - g1eta
    if abs(deta) < dr_min:  # else far in η (ΔR ≥ |Δη|), or no point (NaN)
        dphi = _dphi(phi, g1phi)
        if deta * deta + dphi * dphi < dr2:
            return False
    deta = eta - g2eta
    if abs(deta) < dr_min:
        dphi = _dphi(phi, g2phi)
        if deta * deta + dphi * dphi < dr2:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def _dphi(a, b):  # pragma: no cover - numba
    """a − b wrapped into [−π, π) (the modulo only when it is needed; ±inf gives NaN)."""
    d = a - b
    if d >= math.pi or d < -math.pi:
        d = (d + math.pi) % (2.0 * math.pi) - math.pi
    return d


@numba.njit(cache=True, nogil=True)
def _p4(pt, eta, phi, mass):  # pragma: no cover - numba
    px = pt * math.cos(phi)
    py = pt * math.sin(phi)
    pz = pt * math.sinh(eta)
    return px, py, pz, math.sqrt(px * px + py * py + pz * pz + mass * mass)


@numba.njit(cache=True, nogil=True)
def _mass(px, py, pz, e):  # pragma: no cover - numba
    m2 = e * e - px * px - py * py - pz * pz
    return math.sqrt(m2) if m2 > 0.0 else 0.0


@numba.njit(cache=True, nogil=True)
def _pair(ja, jb, j_pt, j_eta, j_phi, j_mass, g1, g2, myy, mstar_offset):  # pragma: no cover
    """(m_bb, m*, max pT, min pT) of jets ja, jb with the photons g1, g2 (NaN if missing)."""
    nan = np.nan
    if ja < 0 or jb < 0:
        pa = j_pt[ja] if ja >= 0 else nan
        pb = j_pt[jb] if jb >= 0 else nan
        hi = pa if pb != pb else (pb if pa != pa else max(pa, pb))
        lo = pa if pb != pb else (pb if pa != pa else min(pa, pb))
        return nan, nan, hi, lo
    a = _p4(np.float64(j_pt[ja]), np.float64(j_eta[ja]), np.float64(j_phi[ja]), np.float64(j_mass[ja]))
    b = _p4(np.float64(j_pt[jb]), np.float64(j_eta[jb]), np.float64(j_phi[jb]), np.float64(j_mass[jb]))
    return _pair_p4(a, b, np.float64(j_pt[ja]), np.float64(j_pt[jb]), g1, g2, myy, mstar_offset)


@numba.njit(cache=True, nogil=True)
def _pair_p4(a, b, pta, ptb, g1, g2, myy, mstar_offset):  # pragma: no cover - numba
    """(m_bb, m*, max pT, min pT) of the jet four-vectors a, b with the photons g1, g2."""
    px, py, pz, e = a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]
    mbb = _mass(px, py, pz, e)
    m4 = _mass(px + g1[0] + g2[0], py + g1[1] + g2[1], pz + g1[2] + g2[2], e + g1[3] + g2[3])
    return mbb, m4 - mbb - myy + mstar_offset, max(pta, ptb), min(pta, ptb)


@numba.njit(cache=True, nogil=True, inline="always")
def _free_leptons(ev, e_off, e_eta, e_phi, e_mask, mu_off, mu_eta, mu_phi, mu_mask, g1eta, g1phi, g2eta, g2phi,
                  lep_dr):  # pragma: no cover - numba
    """Event ev's selected electrons and muons farther than ``lep_dr`` from both photons."""
    n = 0
    for k in range(e_off[ev], e_off[ev + 1]):
        if e_mask[k] and _dr_free(np.float64(e_eta[k]), np.float64(e_phi[k]), g1eta, g1phi, g2eta, g2phi, lep_dr):
            n += 1
    for k in range(mu_off[ev], mu_off[ev + 1]):
        if mu_mask[k] and _dr_free(np.float64(mu_eta[k]), np.float64(mu_phi[k]), g1eta, g1phi, g2eta, g2phi, lep_dr):
            n += 1
    return n


@numba.njit(cache=True, nogil=True, inline="always")
def _first_two(ok, start, stop):  # pragma: no cover - numba
    """The first two indices in ``start … stop − 1`` with ``ok`` (−1: none)."""
    l0 = -1
    l1 = -1
    for k in range(start, stop):
        if ok[k]:
            if l0 < 0:
                l0 = k
            else:
                l1 = k
                break
    return l0, l1


@numba.njit(cache=True, nogil=True, inline="always")
def _tally(b, bin_two, bin_one, n_j, n_two, n_one):  # pragma: no cover - numba
    """The counts (selected jets, jets at the 2-tag WP, at the 1-tag WP) with one more
    selected jet of tag bin ``b``."""
    return n_j + 1, n_two + (1 if b >= bin_two else 0), n_one + (1 if b >= bin_one else 0)


@numba.njit(cache=True, nogil=True, inline="always")
def _tag_category(n_two, n_one, bin_two, bin_one):  # pragma: no cover - numba
    """(tag category, tag-bin threshold of its b-jet candidates): 2 with ≥ 2 jets at the
    2-tag WP, else 1 with ≥ 1 jet at the 1-tag WP, else 0 (threshold 127: none)."""
    tag = 2 if n_two >= 2 else (1 if n_one >= 1 else 0)
    return tag, bin_two if tag == 2 else (bin_one if tag == 1 else 127)


@numba.njit(cache=True, nogil=True, inline="always")
def _tag_candidates(ok, bins, j0, n, thresh):  # pragma: no cover - numba
    """The two b-jet candidates among an event's jets ``j0 … j0 + n − 1`` with ``ok``: the
    two leading ones in tag bin ≥ ``thresh``, completed by the leading others; indices
    relative to ``j0`` (−1: none)."""
    t0 = -1
    t1 = -1
    u0 = -1
    u1 = -1
    for k in range(n):
        if not ok[j0 + k]:
            continue
        if bins[j0 + k] >= thresh:
            if t0 < 0:
                t0 = k
            elif t1 < 0:
                t1 = k
        elif u0 < 0:
            u0 = k
        elif u1 < 0:
            u1 = k
    c0 = t0 if t0 >= 0 else u0
    c1 = t1 if t1 >= 0 else (u0 if t0 >= 0 else u1)
    return c0, c1


@numba.njit(cache=True, nogil=True)
def _kernel(ph_off, ph_pt, ph_eta, ph_phi, ph_mask, top2,
            e_off, e_eta, e_phi, e_mask, mu_off, mu_eta, mu_phi, mu_mask, lep_dr,
            j_off, j_pt, j_eta, j_phi, j_mass, j_mask, j_bin, jet_dr, bin_two, bin_one,
            mstar_offset, lead_frac, sub_frac, myy_lo, myy_hi, ev_mask, full, all_myy,
            out_i, out_f, jet_out):  # pragma: no cover
    n = len(ph_off) - 1
    nan = np.nan
    for ev in range(n):
        if not ev_mask[ev]:
            for r in range(9):
                out_i[r, ev] = 0 if 2 <= r < 5 else -1
            for r in range(10):
                out_f[r, ev] = nan
            continue
        # diphoton: the first two selected photons (stored pT order), or the two highest pT
        i1 = -1
        i2 = -1
        for k in range(ph_off[ev], ph_off[ev + 1]):
            if not ph_mask[k]:
                continue
            if not top2:
                if i1 < 0:
                    i1 = k
                elif i2 < 0:
                    i2 = k
                    break
            elif i1 < 0 or ph_pt[k] > ph_pt[i1]:
                i2 = i1
                i1 = k
            elif i2 < 0 or ph_pt[k] > ph_pt[i2]:
                i2 = k
        g1eta = np.float64(ph_eta[i1]) if i1 >= 0 else nan
        g1phi = np.float64(ph_phi[i1]) if i1 >= 0 else nan
        g2eta = np.float64(ph_eta[i2]) if i2 >= 0 else nan
        g2phi = np.float64(ph_phi[i2]) if i2 >= 0 else nan
        g1pt = np.float64(ph_pt[i1]) if i1 >= 0 else nan
        g2pt = np.float64(ph_pt[i2]) if i2 >= 0 else nan
        myy = nan
        angle = nan
        diphoton = False
        if i2 >= 0 and (all_myy or (g1pt > lead_frac * myy_lo and g2pt > sub_frac * myy_lo)):
            # massless photons: m² = 2 pT1 pT2 (cosh Δη − cos Δφ) (two transcendentals, not six)
            angle = math.cosh(g1eta - g2eta) - math.cos(g1phi - g2phi)
            m2 = 2.0 * g1pt * g2pt * angle
            myy = math.sqrt(m2) if m2 > 0.0 else 0.0
            diphoton = (g1pt > lead_frac * myy and g2pt > sub_frac * myy and myy > myy_lo
                        and myy < myy_hi)
        if not (full or diphoton):  # nothing after the diphoton cuts is needed
            out_i[0, ev] = i1
            out_i[1, ev] = i2
            for r in range(2, 9):
                out_i[r, ev] = 0 if r < 5 else -1
            out_f[0, ev] = myy
            out_f[1, ev] = g1pt
            out_f[2, ev] = g2pt
            for r in range(3, 9):
                out_f[r, ev] = nan
            out_f[9, ev] = angle
            continue
        # leptons away from the photons
        n_lep = _free_leptons(ev, e_off, e_eta, e_phi, e_mask, mu_off, mu_eta, mu_phi, mu_mask, g1eta, g1phi, g2eta,
                              g2phi, lep_dr)
        # jets away from the photons; tag counts
        n_j = 0
        n_two = 0
        n_one = 0
        for k in range(j_off[ev], j_off[ev + 1]):
            ok = j_mask[k] and _dr_free(np.float64(j_eta[k]), np.float64(j_phi[k]), g1eta, g1phi, g2eta, g2phi, jet_dr)
            jet_out[k] = ok
            if ok:
                n_j, n_two, n_one = _tally(j_bin[k], bin_two, bin_one, n_j, n_two, n_one)
        tag, thresh = _tag_category(n_two, n_one, bin_two, bin_one)
        j0 = j_off[ev]
        l0, l1 = _first_two(jet_out, j0, j_off[ev + 1])
        c0, c1 = _tag_candidates(jet_out, j_bin, j0, j_off[ev + 1] - j0, thresh)
        c0 = c0 + j0 if c0 >= 0 else -1
        c1 = c1 + j0 if c1 >= 0 else -1
        if diphoton:  # the masses are used only after the diphoton cuts
            if l1 >= 0:  # two jets: the photon four-vectors are needed (c1 ≥ 0 too)
                g1 = _p4(g1pt, g1eta, g1phi, 0.0)
                g2 = _p4(g2pt, g2eta, g2phi, 0.0)
            else:
                g1 = g2 = (nan, nan, nan, nan)
            mbb, mstar, j1, j2 = _pair(c0, c1, j_pt, j_eta, j_phi, j_mass, g1, g2, myy, mstar_offset)
            if l0 == c0 and l1 == c1:
                mjj, mstar_l = mbb, mstar
            else:
                mjj, mstar_l, _, _ = _pair(l0, l1, j_pt, j_eta, j_phi, j_mass, g1, g2, myy, mstar_offset)
        else:
            mbb = mstar = j1 = j2 = mjj = mstar_l = nan
        out_i[0, ev] = i1
        out_i[1, ev] = i2
        out_i[2, ev] = n_lep
        out_i[3, ev] = n_j
        out_i[4, ev] = tag
        out_i[5, ev] = c0
        out_i[6, ev] = c1
        out_i[7, ev] = l0
        out_i[8, ev] = l1
        out_f[0, ev] = myy
        out_f[1, ev] = g1pt
        out_f[2, ev] = g2pt
        out_f[3, ev] = mbb
        out_f[4, ev] = mstar
        out_f[5, ev] = j1
        out_f[6, ev] = j2
        out_f[7, ev] = mjj
        out_f[8, ev] = mstar_l
        out_f[9, ev] = angle


@numba.njit(cache=True, nogil=True)
def _selected_jets(j_off, jet_ok, ev, idx):  # pragma: no cover - numba
    """The flat indices of event ev's jets with ``jet_ok``, in order, into ``idx``; their number."""
    m = 0
    for k in range(j_off[ev], j_off[ev + 1]):
        if jet_ok[k]:
            idx[m] = k
            m += 1
    return m


@numba.njit(cache=True, nogil=True)
def _truth_row(r, ev, row_kind, a, b, m, idx, eps, eps1, cls, p4, j_pt, g1, g2, myy, mstar_offset,
               evt, kind, c0, c1, prob, obs):  # pragma: no cover - numba
    """Row r: event ev, candidates a, b (ranks among its selected jets; ``cls``: their
    efficiency classes), P per table: 2-tag ε_a ε_b Π_{k<b, k≠a} (1 − ε_k); 1-tag
    ε¹_a Π_{k≠a} (1 − ε_k)."""
    evt[r] = ev
    kind[r] = row_kind
    c0[r] = idx[a]
    c1[r] = idx[b]
    last = b if row_kind == 2 else m
    for t in range(eps.shape[0]):
        prod = 1.0
        for k in range(last):
            if k != a:
                prod *= 1.0 - eps[t, k]
        if row_kind == 2:
            prob[t, r] = eps[t, a] * eps[t, b] * prod
        else:
            prob[t, r] = eps1[t, cls[a]] * prod
    pa = (p4[a, 0], p4[a, 1], p4[a, 2], p4[a, 3])
    pb = (p4[b, 0], p4[b, 1], p4[b, 2], p4[b, 3])
    mbb, mstar, hi, lo = _pair_p4(pa, pb, np.float64(j_pt[idx[a]]), np.float64(j_pt[idx[b]]), g1, g2, myy,
                                  mstar_offset)
    obs[0, r] = mbb
    obs[1, r] = mstar
    obs[2, r] = hi
    obs[3, r] = lo


@numba.njit(cache=True, nogil=True)
def _truth_rows(j_off, jet_ok, pre, class_base, pt_edges, eps2, eps1, i1, i2, myy, ph_pt, ph_eta, ph_phi,
                j_pt, j_eta, j_phi, j_mass, mstar_offset):  # pragma: no cover
    n = len(j_off) - 1

    width = 0  # most jets in an event
    for ev in range(n):
        width = max(width, j_off[ev + 1] - j_off[ev])
    idx = np.empty(width, dtype=np.int64)
    total = 0
    for ev in range(n):
        if pre[ev]:
            m = _selected_jets(j_off, jet_ok, ev, idx)
            if m >= 2:
                total += m * (m - 1) // 2 + m
    n_tab = eps2.shape[0]
    evt = np.empty(total, dtype=np.int64)
    kind = np.empty(total, dtype=np.int8)
    c0 = np.empty(total, dtype=np.int64)
    c1 = np.empty(total, dtype=np.int64)
    prob = np.empty((n_tab, total), dtype=np.float64)
    obs = np.empty((4, total), dtype=np.float64)
    eps = np.empty((n_tab, width), dtype=np.float64)
    p4 = np.empty((width, 4), dtype=np.float64)
    cls = np.empty(width, dtype=np.int64)
    r = 0
    for ev in range(n):
        if not pre[ev]:
            continue
        m = _selected_jets(j_off, jet_ok, ev, idx)
        if m < 2:
            continue
        for a in range(m):
            # efficiency class of selected jet a: class_base + pT bin (the number of inner
            # edges ≤ pT, as np.searchsorted(pt_edges, pt, side="right"))
            k = idx[a]
            c = class_base[k]
            for e in range(len(pt_edges)):
                if np.float64(j_pt[k]) >= pt_edges[e]:
                    c += 1
            cls[a] = c
            for t in range(n_tab):
                eps[t, a] = eps2[t, c]
            k = idx[a]
            v = _p4(np.float64(j_pt[k]), np.float64(j_eta[k]), np.float64(j_phi[k]), np.float64(j_mass[k]))
            p4[a, 0], p4[a, 1], p4[a, 2], p4[a, 3] = v
        g1 = _p4(np.float64(ph_pt[i1[ev]]), np.float64(ph_eta[i1[ev]]), np.float64(ph_phi[i1[ev]]), 0.0)
        g2 = _p4(np.float64(ph_pt[i2[ev]]), np.float64(ph_eta[i2[ev]]), np.float64(ph_phi[i2[ev]]), 0.0)
        for b in range(1, m):  # 2-tag: the pairs (a, b), a < b
            for a in range(b):
                _truth_row(r, ev, 2, a, b, m, idx, eps, eps1, cls, p4, j_pt, g1, g2, myy[ev],
                           mstar_offset, evt, kind, c0, c1, prob, obs)
                r += 1
        for a in range(m):  # 1-tag: jet a tagged, the leading other jet second
            _truth_row(r, ev, 1, a, 1 if a == 0 else 0, m, idx, eps, eps1, cls, p4, j_pt, g1, g2,
                       myy[ev], mstar_offset, evt, kind, c0, c1, prob, obs)
            r += 1
    return evt, kind, c0, c1, prob, obs


def truth_rows(jets: FlatObjects, jet_ok: np.ndarray, pre: np.ndarray,
               efficiencies: Mapping[str, tuple[np.ndarray, np.ndarray]], i1: np.ndarray, i2: np.ndarray,
               myy: np.ndarray, photons: FlatObjects, mstar_offset: float,
               class_base: np.ndarray | None = None, pt_edges: Any = ()) -> dict[str, Any]:
    """Truth-tag rows with their masses, compiled: what
    :func:`selections.hh_yybb.btag.truth_tag_rows` and :func:`pair_rows_numpy` give together
    (the reference), one row per way the selected jets (``jet_ok``) of an event in ``pre``
    can make it 2-tag or 1-tag. ``jets``: flat ``pt, eta, phi, mass`` and ``eff_class``
    (efficiency class per jet), events by ``jets.offsets``; or, instead of ``eff_class``,
    ``class_base`` (flavour class × number of pT bins, per jet) and ``pt_edges`` (the inner
    pT-bin edges [GeV]), from which the class of the selected jets is computed here
    (``class_base + np.searchsorted(pt_edges, pt, side="right")``). ``i1, i2, myy``: the
    events' diphoton (flat photon indices, m_γγ [GeV]; every event in ``pre`` has one).
    ``efficiencies[name] = (ε_2tag, ε_1tag)`` per class.

    Rows are ordered by event, then 2-tag pairs (b = 1, 2, ...; a < b), then 1-tag jets.
    Returns ``{"evt", "kind", "c0", "c1", "p": {name: P}, "m_bb", "m_star", "j1", "j2"}``.
    """
    names = list(efficiencies)
    eps2 = np.array([np.asarray(efficiencies[k][0], dtype=np.float64) for k in names]).reshape(len(names), -1)
    eps1 = np.array([np.asarray(efficiencies[k][1], dtype=np.float64) for k in names]).reshape(len(names), -1)
    evt, kind, c0, c1, prob, obs = _truth_rows(
        np.asarray(jets.offsets, dtype=np.int64), np.ascontiguousarray(jet_ok, dtype=np.bool_),
        np.ascontiguousarray(pre, dtype=np.bool_),
        np.asarray(jets["eff_class"] if class_base is None else class_base, dtype=np.int64),
        np.asarray(pt_edges if class_base is not None else (), dtype=np.float64).reshape(-1), eps2, eps1,
        np.asarray(i1, dtype=np.int64), np.asarray(i2, dtype=np.int64), np.asarray(myy, dtype=np.float64),
        photons["pt"], photons["eta"], photons["phi"],
        jets["pt"], jets["eta"], jets["phi"], jets["mass"], float(mstar_offset))
    return {"evt": evt, "kind": kind, "c0": c0, "c1": c1, "p": dict(zip(names, prob, strict=True)),
            "m_bb": obs[0], "m_star": obs[1], "j1": obs[2], "j2": obs[3]}


def pair_rows_numpy(a: np.ndarray, b: np.ndarray, g1: np.ndarray, g2: np.ndarray, myy: np.ndarray,
                    jets: Mapping[str, np.ndarray], photons: Mapping[str, np.ndarray],
                    mstar_offset: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """m_bb, m* [GeV] and the larger and smaller pT of the jet pairs (``a``, ``b``: flat jet
    indices, −1 for none) with the photons ``g1``, ``g2`` (flat photon indices) and their
    ``myy`` [GeV], one row each (NaN where a jet or photon is missing): the numpy reference
    of the masses of :func:`truth_rows`."""
    ja = [take_or_nan(jets[f], a) for f in ("pt", "eta", "phi", "mass")]
    jb = [take_or_nan(jets[f], b) for f in ("pt", "eta", "phi", "mass")]
    va, vb = O.p4(*ja), O.p4(*jb)
    h1 = O.p4(*(take_or_nan(photons[f], g1) for f in ("pt", "eta", "phi")))
    h2 = O.p4(*(take_or_nan(photons[f], g2) for f in ("pt", "eta", "phi")))
    mbb = O.invariant_mass(va, vb)
    mstar = O.invariant_mass(va, vb, h1, h2) - mbb - myy + mstar_offset
    return mbb, mstar, np.fmax(ja[0], jb[0]), np.fmin(ja[0], jb[0])


@numba.njit(cache=True, nogil=True)
def _mix(z):  # pragma: no cover - numba
    z = z + np.uint64(_GOLDEN)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_MIX1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX2)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, nogil=True)
def _hash_uniforms(offsets, event, seed, u1, u2):  # pragma: no cover - numba
    """The two uniforms of :func:`hash_normals` per photon (key: event number × 64 + index
    in the event), u1 in (0, 1), u2 already × 2π: integer hashing, the same floats."""
    two_pi_scale = 2.0 * np.pi / float(1 << 53)
    for ev in range(len(offsets) - 1):
        for k in range(offsets[ev], offsets[ev + 1]):
            key = np.uint64(event[ev]) * np.uint64(64) + np.uint64(k - offsets[ev])
            a = _mix(key ^ seed)
            b = _mix(a ^ np.uint64(_SECOND_DRAW))
            u1[k] = (np.float64(a >> np.uint64(11)) + 0.5) / float(1 << 53)
            u2[k] = (np.float64(b >> np.uint64(11)) + 0.5) * two_pi_scale


@numba.njit(cache=True, nogil=True)
def _combine_factors(pt, cosh_eta, log_u1, cos_u2, stoch2, const2, widen, mask, out):  # pragma: no cover
    """1 + z σ_extra/E from the vectorised transcendental parts, in the numpy reference's
    order of operations (each step one IEEE operation, so the same bits)."""
    for k in range(len(pt)):
        if len(mask) and not mask[k]:
            out[k] = 1.0
            continue
        z = math.sqrt(log_u1[k] * -2.0) * cos_u2[k]
        e = np.float64(pt[k]) * cosh_eta[k]
        rel = math.sqrt(stoch2 / max(e, 1e-3) + const2)
        out[k] = max(1.0 + z * (rel * widen), 0.0)


def resolution_factors(offsets: np.ndarray, pt: np.ndarray, eta: np.ndarray, event: np.ndarray, *,
                       seed: int, stochastic: float, constant: float,
                       relative_uncertainty: float, mask: np.ndarray | None = None) -> np.ndarray:
    """:func:`resolution_factors_numpy` with the hashing and the arithmetic compiled and the
    transcendental functions (log, cos, cosh) as numpy's vectorised loops: the same bits as
    the reference, ≈ 1.7× faster than a compiled loop calling libm per photon (which also
    differs from numpy in the last bits). With ``mask`` (bool per photon), only the photons
    in it get a factor, the others 1."""
    n = len(pt)
    u1 = np.empty(n, dtype=np.float64)
    u2 = np.empty(n, dtype=np.float64)
    _hash_uniforms(np.asarray(offsets, dtype=np.int64), np.asarray(event, dtype=np.uint64), np.uint64(seed), u1, u2)
    np.log(u1, out=u1)
    np.cos(u2, out=u2)
    cosh_eta = np.cosh(np.asarray(eta, dtype=np.float64))
    out = np.empty(n, dtype=np.float64)
    m = np.zeros(0, dtype=np.bool_) if mask is None else np.ascontiguousarray(mask, dtype=np.bool_)
    _combine_factors(pt, cosh_eta, u1, u2, float(stochastic) * float(stochastic), float(constant) * float(constant),
                     math.sqrt((1.0 + relative_uncertainty) ** 2 - 1.0), m, out)
    return out


@numba.njit(cache=True, nogil=True)
def _objects_and_offsets(offsets, events):  # pragma: no cover - numba
    new = np.empty(len(events) + 1, dtype=np.int64)
    new[0] = 0
    total = 0
    for i in range(len(events)):
        ev = events[i]
        total += offsets[ev + 1] - offsets[ev]
        new[i + 1] = total
    out = np.empty(total, dtype=np.int64)
    j = 0
    for ev in events:
        for k in range(offsets[ev], offsets[ev + 1]):
            out[j] = k
            j += 1
    return out, new


def objects_and_offsets(offsets: np.ndarray, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the objects of the events listed (increasing indices) in the integer
    ``events``, or where the boolean ``events`` is true (``offsets``: n + 1 event
    boundaries), and the n_selected + 1 boundaries of those objects, from 0: compiled, the
    same as ``np.flatnonzero(np.repeat(mask, np.diff(offsets)))`` and the cumulative sum
    of the selected events' counts."""
    events = np.asarray(events)
    if events.dtype == np.bool_:
        events = np.flatnonzero(events)
    return _objects_and_offsets(np.asarray(offsets, dtype=np.int64), np.asarray(events, dtype=np.int64))


def objects_of(offsets: np.ndarray, events: np.ndarray) -> np.ndarray:
    """The flat object indices of :func:`objects_and_offsets`."""
    return objects_and_offsets(offsets, events)[0]


def warm_up() -> None:
    """Start numba in this process now (its compiler and type system, ≈ 0.6 s of CPU and
    ≈ 1.6 × 10⁵ long-lived Python objects on the first compiled call), e.g. before
    ``gc.freeze()`` (:func:`analysis.io.runner.freeze_startup_objects`): started later, those
    objects stay in the collector's generations and every full collection traverses them
    (≈ 0.1 s each on a 240 000-event chunk)."""
    objects_of(np.zeros(2, dtype=np.int64), np.zeros(1, dtype=np.bool_))


def kernel_loaded() -> bool:
    """True once the compiled kernel has been loaded or compiled in this process."""
    return bool(_kernel.signatures)


def _event_mask(p: Mapping[str, Any], n: int) -> np.ndarray:
    m = p.get("event_mask")
    return np.ones(n, dtype=np.bool_) if m is None else np.ascontiguousarray(m, dtype=np.bool_)


def event_arrays(p: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The per-event outputs (:data:`EVENT_FIELDS`) and ``jet_mask`` of one pass (numba)."""
    n = len(p["ph_off"]) - 1
    out_i = np.empty((len(_INT_FIELDS), n), dtype=np.int64)
    out_f = np.empty((len(_FLOAT_FIELDS), n), dtype=np.float64)
    jet_out = np.zeros(len(p["j_pt"]), dtype=np.bool_)
    _kernel(p["ph_off"], p["ph_pt"], p["ph_eta"], p["ph_phi"], p["ph_mask"], bool(p["top2"]),
            p["e_off"], p["e_eta"], p["e_phi"], p["e_mask"], p["mu_off"], p["mu_eta"], p["mu_phi"],
            p["mu_mask"], float(p["lep_dr"] or 0.0),
            p["j_off"], p["j_pt"], p["j_eta"], p["j_phi"], p["j_mass"], p["j_mask"], p["j_bin"],
            float(p["jet_dr"] or 0.0), int(p["bin_two"]), int(p["bin_one"]), float(p["mstar_offset"]),
            float(p["lead_frac"]), float(p["sub_frac"]), float(p["myy_window"][0]), float(p["myy_window"][1]),
            _event_mask(p, n), bool(p.get("full", True)), bool(p.get("all_myy", True)), out_i, out_f, jet_out)
    out = {k: out_i[i] for i, k in enumerate(_INT_FIELDS)}
    out.update({k: out_f[i] for i, k in enumerate(_FLOAT_FIELDS)})
    out["jet_mask"] = jet_out
    return out


# ---------------------------------------------------------------------------------------
# numpy reference
# ---------------------------------------------------------------------------------------
def _evt(offsets: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))


def count_per_event(offsets: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Selected objects per event (``offsets``: n + 1 event boundaries)."""
    cs = np.empty(len(mask) + 1, dtype=np.int64)
    cs[0] = 0
    np.cumsum(mask, out=cs[1:])
    counts = cs[offsets[1:]]
    counts -= cs[offsets[:-1]]
    return counts


def _nth(offsets: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    evt = _evt(offsets)
    cs = np.cumsum(mask, dtype=np.int64)
    start = np.concatenate([[0], cs])[offsets[:-1]]
    hit = mask & (cs - start[evt] == k + 1)
    out = np.full(len(offsets) - 1, -1, dtype=np.int64)
    out[evt[hit]] = np.flatnonzero(hit)
    return out


def _top2(offsets: np.ndarray, mask: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(offsets) - 1
    evt = _evt(offsets)
    idx = np.flatnonzero(mask)
    order = idx[np.lexsort((-key[idx], evt[idx]))]
    ev = evt[order]
    first = np.searchsorted(ev, np.arange(n))
    i0 = np.full(n, -1, dtype=np.int64)
    i1 = np.full(n, -1, dtype=np.int64)
    ok0 = first < len(ev)
    ok0[ok0] = ev[first[ok0]] == np.flatnonzero(ok0)
    i0[ok0] = order[first[ok0]]
    sec = first + 1
    ok1 = ok0 & (sec < len(ev))
    ok1[ok1] = ev[sec[ok1]] == np.flatnonzero(ok1)
    i1[ok1] = order[sec[ok1]]
    return i0, i1


def sorted_within(offsets: np.ndarray, values: np.ndarray) -> bool:
    """True if ``values`` do not increase within any event (``offsets``: n + 1 event
    boundaries; a NaN counts as out of order)."""
    if len(values) < 2:
        return True
    ok = values[1:] <= values[:-1]
    edges = offsets[1:-1]
    ok[edges[(edges > 0) & (edges < len(values))] - 1] = True  # pairs across an event edge
    return bool(ok.all())


def take_or_nan(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``values[idx]`` as float64 with NaN where ``idx`` is −1."""
    out = np.full(len(idx), np.nan)
    ok = idx >= 0
    out[ok] = values[idx[ok]]
    return out


def event_arrays_numpy(p: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """:func:`event_arrays` in vectorised numpy (the reference implementation).

    Works like the loop: the diphoton of every event in ``event_mask``, then overlap
    removal and counts only for the events that need them (all with ``full``, else those
    whose diphoton passed), the masses only for events whose diphoton passed.
    """
    n = len(p["ph_off"]) - 1
    skip = ~_event_mask(p, n)
    ph_mask = p["ph_mask"] & ~skip[_evt(p["ph_off"])]
    off = p["ph_off"]
    if p["top2"]:
        i1, i2 = _top2(off, ph_mask, p["ph_pt"])
    else:
        i1, i2 = _nth(off, ph_mask, 0), _nth(off, ph_mask, 1)
    g1pt, g1eta, g1phi = (take_or_nan(p[f"ph_{f}"], i1) for f in ("pt", "eta", "phi"))
    g2pt, g2eta, g2phi = (take_or_nan(p[f"ph_{f}"], i2) for f in ("pt", "eta", "phi"))
    g1, g2 = O.p4(g1pt, g1eta, g1phi), O.p4(g2pt, g2eta, g2phi)
    myy = O.invariant_mass(g1, g2)
    myy[i2 < 0] = np.nan
    angle = np.cosh(g1eta - g2eta) - np.cos(g1phi - g2phi)
    if not p.get("all_myy", True):  # photons too soft for the E_T/m_γγ cuts anywhere in the window
        lo = p["myy_window"][0]
        with np.errstate(invalid="ignore"):
            myy[(g1pt <= p["lead_frac"] * lo) | (g2pt <= p["sub_frac"] * lo)] = np.nan
    with np.errstate(invalid="ignore"):
        diphoton = ((g1pt > p["lead_frac"] * myy) & (g2pt > p["sub_frac"] * myy)
                    & (myy > p["myy_window"][0]) & (myy < p["myy_window"][1]))
    need = ~skip & (diphoton if not p.get("full", True) else True)

    def selected_free(prefix: str, dr: float | None) -> np.ndarray:
        """Selected objects of the needed events farther than ``dr`` from both photons."""
        e = _evt(p[f"{prefix}_off"])
        mask = p[f"{prefix}_mask"] & need[e]
        idx = np.flatnonzero(mask)
        ee = e[idx]
        coll = {"pt": p[f"{prefix}_eta"][idx], "eta": p[f"{prefix}_eta"][idx], "phi": p[f"{prefix}_phi"][idx]}
        keep = np.asarray(O.overlap_free_of_points(coll, [(g1eta[ee], g1phi[ee]), (g2eta[ee], g2phi[ee])], dr))
        mask[idx] = keep
        return mask

    n_lep = sum(count_per_event(p[f"{c}_off"], selected_free(c, p["lep_dr"])) for c in ("e", "mu"))
    jo = p["j_off"]
    jmask = selected_free("j", p["jet_dr"])
    bins = p["j_bin"]
    n_j = count_per_event(jo, jmask)
    n_two = count_per_event(jo, jmask & (bins >= p["bin_two"]))
    n_one = count_per_event(jo, jmask & (bins >= p["bin_one"]))
    tag = np.where(n_two >= 2, 2, np.where(n_one >= 1, 1, 0))
    thresh = np.where(tag == 2, p["bin_two"], np.where(tag == 1, p["bin_one"], 127))
    tagged = jmask & (bins >= thresh[_evt(jo)])
    untagged = jmask & ~tagged
    t0, t1 = _nth(jo, tagged, 0), _nth(jo, tagged, 1)
    u0, u1 = _nth(jo, untagged, 0), _nth(jo, untagged, 1)
    c0 = np.where(t0 >= 0, t0, u0)
    c1 = np.where(t1 >= 0, t1, np.where(t0 >= 0, u0, u1))
    l0, l1 = _nth(jo, jmask, 0), _nth(jo, jmask, 1)

    ev = np.flatnonzero(diphoton & ~skip)  # the masses: only where a region can use them

    def pair(a: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
        ja = [take_or_nan(p[f"j_{f}"], a[ev]) for f in ("pt", "eta", "phi", "mass")]
        jb = [take_or_nan(p[f"j_{f}"], b[ev]) for f in ("pt", "eta", "phi", "mass")]
        va, vb = O.p4(*ja), O.p4(*jb)
        h1, h2 = tuple(x[ev] for x in g1), tuple(x[ev] for x in g2)
        mbb = O.invariant_mass(va, vb)
        mstar = O.invariant_mass(va, vb, h1, h2) - mbb - myy[ev] + p["mstar_offset"]
        out = []
        for x in (mbb, mstar, np.fmax(ja[0], jb[0]), np.fmin(ja[0], jb[0])):
            full = np.full(n, np.nan)
            full[ev] = x
            out.append(full)
        return out

    mbb, mstar, j1, j2 = pair(c0, c1)
    mjj, mstar_l, _, _ = pair(l0, l1)
    nan_if_skip = np.where(skip, np.nan, 1.0)
    return {"i1": i1, "i2": i2, "myy": myy * nan_if_skip, "g1pt": g1pt, "g2pt": g2pt, "n_lep": n_lep,
            "n_j": n_j, "tag": tag, "c0": c0, "c1": c1, "l0": l0, "l1": l1, "mbb": mbb, "mstar": mstar,
            "j1": j1, "j2": j2, "mjj_lead": mjj, "mstar_lead": mstar_l,
            "angle": np.where(np.isnan(myy), np.nan, angle) * nan_if_skip, "jet_mask": jmask}
