"""The shifted passes of the HH → γγbb̄ selection, one compiled call per chunk.

The systematic variations that change objects (photon energy scale up/down, photon
resolution up, jet energy scale up/down) each rerun the selection. Run one by one
(:meth:`selections.hh_yybb.compiled.CompiledProcessor._analyse`), every pass builds numpy masks,
per-event arrays of every candidate event, truth-tag rows and region masks, and fills the
histograms, most of it for events that fail the diphoton cuts. :func:`shifted_entries`
does all of them in one loop over the events, with the passes inside: an event's
photons are read once, a pass stops at the first cut it fails, and only the histogram
entries come out (``bits`` of the regions, the three observables, the variation and the
weight), in the order the one-by-one passes fill them. The numbers are those of the
one-by-one passes (``selection.hh_yybb.engine: numpy`` runs them; the tests compare):

- photons of a global-scale pass keep the input's float type (pT × scale rounded as numpy
  rounds ``pt * s`` for a float32 array and a Python float), those of the resolution pass
  are float64; the pT threshold and relative isolation are compared in the same types;
- the jet-energy-scale passes keep the nominal diphoton (their photons are the nominal
  ones) and look only at the events whose nominal diphoton passed;
- truth-tag probabilities are multiplied in the same order as
  :func:`selections.hh_yybb.kernel.truth_rows`; the event b-tag weight of the other samples
  is an exact product (the numpy path's exp-of-log-sums agrees to ≈ 1e-15).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numba
import numpy as np

from analysis.core.config.selection import SelectionHhYybb
from selections.hh_yybb.kernel import (
    FlatObjects,
    _dr_free,
    _first_two,
    _free_leptons,
    _mass,
    _p4,
    _pair_p4,
    _tag_candidates,
    _tag_category,
    _tally,
)

__all__ = ["N_REGION_BITS", "PASS_JET_SCALE", "PASS_NAMES", "PASS_PHOTON_FACTORS", "PASS_PHOTON_SCALE", "shifted_entries"]

PASS_PHOTON_SCALE, PASS_PHOTON_FACTORS, PASS_JET_SCALE = 0, 1, 2
PASS_NAMES = ("photon_scale", "photon_factors", "jet_scale")
"""Names of the pass kinds, by kind."""
N_REGION_BITS = 14
"""Region bits: 0 diphoton, 1 pretag, 2–9 ``{2tag,1tag}_{loose,tight}_{lowmstar,highmstar}``,
10–13 ``res_{2tag,1tag}_{loose,tight}`` (the order of ``selections.hh_yybb.processor.REGIONS``)."""


@numba.njit(cache=True, nogil=True)
def _grow(a, n):  # pragma: no cover - numba
    if n < a.shape[-1]:
        return a
    out = np.empty(a.shape[:-1] + (2 * a.shape[-1] + 16,), dtype=a.dtype)
    out[..., :a.shape[-1]] = a
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _append(bits_out, obs_out, var_out, w_out, n, bits, o0, o1, o2, var, w):  # pragma: no cover - numba
    """Entry n (the buffers doubled when full)."""
    if n >= len(bits_out):
        bits_out = _grow(bits_out, n)
        obs_out = _grow(obs_out, n)
        var_out = _grow(var_out, n)
        w_out = _grow(w_out, n)
    bits_out[n] = bits
    obs_out[0, n] = o0
    obs_out[1, n] = o1
    obs_out[2, n] = o2
    var_out[n] = var
    w_out[n] = w
    return bits_out, obs_out, var_out, w_out


@numba.njit(cache=True, nogil=True, inline="always")
def _row(row_kind, a, b, last, eps, eps1, cls, p4, idx, jpt, g1, g2, myy, mstar_offset, res, cat):  # pragma: no cover
    """Truth-tag row (a, b) of the selected jets: region bits, m_bb, m*, probability
    (2-tag: ε_a ε_b Π_{k<b, k≠a} (1 − ε_k); 1-tag: ε¹_a Π_{k≠a} (1 − ε_k); the product in
    the order of :func:`selections.hh_yybb.kernel.truth_rows`)."""
    prod = 1.0
    for k in range(last):
        if k != a:
            prod *= 1.0 - eps[k]
    p = eps[a] * eps[b] * prod if row_kind == 2 else eps1[cls[a]] * prod
    pa = (p4[a, 0], p4[a, 1], p4[a, 2], p4[a, 3])
    pb = (p4[b, 0], p4[b, 1], p4[b, 2], p4[b, 3])
    mbb, mstar, hi, lo = _pair_p4(pa, pb, jpt[idx[a]], jpt[idx[b]], g1, g2, myy, mstar_offset)
    return _kin_bits(mbb, mstar, hi, lo, res, row_kind, cat), mbb, mstar, p


@numba.njit(cache=True, nogil=True, inline="always")
def _mstar(jsum, mbb, g1, g2, myy, mstar_offset):  # pragma: no cover - numba
    """m* = m_bbγγ − m_bb − m_γγ + offset from the jet pair's summed four-vector ``jsum`` and
    its mass ``mbb``, in the order of :func:`selections.hh_yybb.kernel._pair_p4`."""
    m4 = _mass(jsum[0] + g1[0] + g2[0], jsum[1] + g1[1] + g2[1], jsum[2] + g1[2] + g2[2], jsum[3] + g1[3] + g2[3])
    return m4 - mbb - myy + mstar_offset


@numba.njit(cache=True, nogil=True, inline="always")
def _kin_bits(mbb, mstar, j1, j2, res, tag, cat):  # pragma: no cover - numba
    """Region bits of a tagged candidate pair: tag 2 or 1; ``cat`` = (loose j1, j2, m_bb lo,
    hi, tight j1, j2, lo, hi, m* split) [GeV]; NaN fails every comparison."""
    bits = 0
    base = 2 if tag == 2 else 6
    rbase = 10 if tag == 2 else 12
    for k in range(2):
        if j1 > cat[4 * k] and j2 > cat[4 * k + 1] and mbb > cat[4 * k + 2] and mbb < cat[4 * k + 3]:
            if mstar < cat[8]:
                bits |= 1 << (base + 2 * k)
            elif mstar >= cat[8]:
                bits |= 1 << (base + 2 * k + 1)
            if res:
                bits |= 1 << (rbase + k)
    return bits


@numba.njit(cache=True, nogil=True)
def _shifted(kinds, values, var_ids, factors,
             ph_off, ph_pt, ph_eta, ph_phi, ph_ok, ph_iso, iso_max_native, iso_max, scale_native, thr_native,
             has_thr, pt_min,
             nom_i1, nom_i2, nom_myy, nom_diphoton, nom_angle,
             e_off, e_eta, e_phi, e_mask, mu_off, mu_eta, mu_phi, mu_mask, lep_dr,
             j_off, j_pt, j_eta, j_phi, j_mass, j_fix, j_pt_min, j_bin, class_base, pt_edges, jet_dr,
             bin_two, bin_one, min_jets, max_jets,
             lead_frac, sub_frac, myy_lo, myy_hi, higgs, res_half, mstar_offset, cat,
             truth, eps2, eps1, sf_table, gen_w):  # pragma: no cover - numba
    n = len(ph_off) - 1
    nan = np.nan
    cap = 1024
    bits_out = np.empty(cap, dtype=np.int32)
    obs_out = np.empty((3, cap), dtype=np.float64)
    var_out = np.empty(cap, dtype=np.int64)
    w_out = np.empty(cap, dtype=np.float64)
    n_out = 0
    width = 1
    for ev in range(n):
        width = max(width, j_off[ev + 1] - j_off[ev], ph_off[ev + 1] - ph_off[ev])
    ph_sel = np.empty(width, dtype=np.float64)    # this pass's photon pT (as float64)
    jet_ok = np.zeros(width, dtype=np.bool_)
    jpt = np.empty(width, dtype=np.float64)
    jmass = np.empty(width, dtype=np.float64)
    idx = np.empty(width, dtype=np.int64)
    eps = np.empty(width, dtype=np.float64)
    cls = np.empty(width, dtype=np.int64)
    p4 = np.empty((width, 4), dtype=np.float64)
    n_iso = len(iso_max)  # ph_iso: one array per relative isolation (a dummy if none)
    for ev in range(n):
        p0 = ph_off[ev]
        np_ev = ph_off[ev + 1] - p0
        n_ok = 0
        for k in range(p0, p0 + np_ev):
            if ph_ok[k]:
                n_ok += 1
        # the pair whose angular factor ``angle`` holds: first the nominal pair's (the same
        # expression, computed by the nominal pass)
        a_i1 = -1
        a_i2 = -1
        angle = nom_angle[ev]
        if not math.isnan(angle):
            a_i1 = nom_i1[ev]
            a_i2 = nom_i2[ev]
        jk1 = -1  # the photon pair whose leptons and jets the buffers hold (−1: none)
        jk2 = -1
        n_lep = 0
        n_j = 0
        l0 = -1
        l1 = -1
        tag = 0
        c0 = -1
        c1 = -1
        bw = 1.0
        m = 0
        lead_ready = False
        cand_ready = False
        rows_ready = False
        lsum = (0.0, 0.0, 0.0, 0.0)
        lmass = nan
        csum = (0.0, 0.0, 0.0, 0.0)
        cmass = nan
        chi = nan
        clo = nan
        g1 = (nan, nan, nan, nan)
        g2 = (nan, nan, nan, nan)
        for ip in range(len(kinds)):
            kind = kinds[ip]
            jet_scale = 1.0
            if kind == 2:  # jet energy scale: the nominal diphoton, nominal photons
                if not nom_diphoton[ev]:
                    continue
                jet_scale = values[ip]
                i1 = nom_i1[ev]
                i2 = nom_i2[ev]
                myy = nom_myy[ev]
                g1pt = np.float64(ph_pt[i1])
                g2pt = np.float64(ph_pt[i2])
            else:
                if n_ok < 2:
                    continue
                # this pass's photons: pT, threshold, relative isolation, in numpy's types
                i1 = -1
                i2 = -1
                for k in range(p0, p0 + np_ev):
                    if not ph_ok[k]:
                        continue
                    if kind == 0:
                        s = ph_pt[k] * scale_native[ip]      # in the input's float type
                        ok = (not has_thr) or s > thr_native[0]
                        for q in range(n_iso):
                            if not ph_iso[q][k] < iso_max_native[q, ip] * s:
                                ok = False
                        pv = np.float64(s)
                    else:
                        pv = np.float64(ph_pt[k]) * factors[k]
                        ok = (not has_thr) or pv > pt_min
                        for q in range(n_iso):
                            if not ph_iso[q][k] < iso_max[q] * pv:
                                ok = False
                    ph_sel[k - p0] = pv
                    if not ok:
                        continue
                    if kind == 0:  # the first two selected (stored pT order)
                        if i1 < 0:
                            i1 = k
                        elif i2 < 0:
                            i2 = k
                            break
                    elif i1 < 0 or pv > ph_sel[i1 - p0]:
                        i2 = i1
                        i1 = k
                    elif i2 < 0 or pv > ph_sel[i2 - p0]:
                        i2 = k
                if i2 < 0:
                    continue
                g1pt = ph_sel[i1 - p0]
                g2pt = ph_sel[i2 - p0]
                if not (g1pt > lead_frac * myy_lo and g2pt > sub_frac * myy_lo):
                    continue  # too soft for the E_T/m_γγ cuts anywhere in the window
                if i1 != a_i1 or i2 != a_i2:  # the angular factor, once per photon pair and event
                    a_i1 = i1
                    a_i2 = i2
                    angle = (math.cosh(np.float64(ph_eta[i1]) - np.float64(ph_eta[i2]))
                             - math.cos(np.float64(ph_phi[i1]) - np.float64(ph_phi[i2])))
                m2 = 2.0 * g1pt * g2pt * angle
                myy = math.sqrt(m2) if m2 > 0.0 else 0.0
            if not (g1pt > lead_frac * myy and g2pt > sub_frac * myy and myy > myy_lo and myy < myy_hi):
                continue
            g1eta = np.float64(ph_eta[i1])
            g1phi = np.float64(ph_phi[i1])
            g2eta = np.float64(ph_eta[i2])
            g2phi = np.float64(ph_phi[i2])
            var = var_ids[ip]
            # leptons and jets depend on the photon pair only through ΔR, and on the jet energy
            # scale: a photon pass that picks the pair of the previous photon pass reuses them
            j0 = j_off[ev]
            nj_ev = j_off[ev + 1] - j0
            if kind == 2 or i1 != jk1 or i2 != jk2:
                # leptons away from the photons
                n_lep = _free_leptons(ev, e_off, e_eta, e_phi, e_mask, mu_off, mu_eta, mu_phi, mu_mask, g1eta, g1phi,
                                      g2eta, g2phi, lep_dr)
                # jets: this pass's pT and mass, selection, overlap removal, tags
                n_j = 0
                n_two = 0
                n_one = 0
                for k in range(j0, j0 + nj_ev):
                    pt = j_pt[k] * jet_scale if kind == 2 else j_pt[k]
                    jpt[k - j0] = pt
                    jmass[k - j0] = j_mass[k] * jet_scale if kind == 2 else j_mass[k]
                    ok = j_fix[k] and pt > j_pt_min and _dr_free(np.float64(j_eta[k]), np.float64(j_phi[k]), g1eta,
                                                                 g1phi, g2eta, g2phi, jet_dr)
                    jet_ok[k - j0] = ok
                    if ok:
                        n_j, n_two, n_one = _tally(j_bin[k], bin_two, bin_one, n_j, n_two, n_one)
                # leading jets (the inclusive regions' m_bb and m*)
                l0, l1 = _first_two(jet_ok, 0, nj_ev)
                if not truth:
                    tag, thresh = _tag_category(n_two, n_one, bin_two, bin_one)
                    c0, c1 = _tag_candidates(jet_ok, j_bin[j0:j0 + nj_ev], 0, nj_ev, thresh)
                    # the b-tag SF weight of the selected jets
                    bw = 1.0
                    for k in range(nj_ev):
                        if jet_ok[k]:
                            c = class_base[j0 + k]
                            for e in range(len(pt_edges)):
                                if jpt[k] >= pt_edges[e]:
                                    c += 1
                            bw *= sf_table[c, j_bin[j0 + k]]
                if kind == 2:  # the buffers now hold scaled jets
                    jk1 = -1
                    jk2 = -1
                else:
                    jk1 = i1
                    jk2 = i2
                lead_ready = False
                cand_ready = False
                rows_ready = False
            pretag = n_lep == 0 and n_j >= min_jets and n_j <= max_jets
            res = abs(myy - higgs) < res_half
            w = gen_w[ev] if truth else gen_w[ev] * bw
            # inclusive entry: m_γγ and the two leading jets (their sum and m_bb once per jets)
            mjj = nan
            mst = nan
            if l1 >= 0:
                g1 = _p4(g1pt, g1eta, g1phi, 0.0)
                g2 = _p4(g2pt, g2eta, g2phi, 0.0)
                if not lead_ready:
                    la = _p4(jpt[l0], np.float64(j_eta[j0 + l0]), np.float64(j_phi[j0 + l0]), jmass[l0])
                    lb = _p4(jpt[l1], np.float64(j_eta[j0 + l1]), np.float64(j_phi[j0 + l1]), jmass[l1])
                    lsum = (la[0] + lb[0], la[1] + lb[1], la[2] + lb[2], la[3] + lb[3])
                    lmass = _mass(lsum[0], lsum[1], lsum[2], lsum[3])
                    lead_ready = True
                mjj = lmass
                mst = _mstar(lsum, lmass, g1, g2, myy, mstar_offset)
            bits_out, obs_out, var_out, w_out = _append(bits_out, obs_out, var_out, w_out, n_out,
                                                        1 | (2 if pretag else 0), myy, mjj, mst, var, w)
            n_out += 1
            if not pretag:
                continue
            if not truth:
                if tag == 0:
                    continue
                if not cand_ready:
                    ca = _p4(jpt[c0], np.float64(j_eta[j0 + c0]), np.float64(j_phi[j0 + c0]), jmass[c0])
                    cb = _p4(jpt[c1], np.float64(j_eta[j0 + c1]), np.float64(j_phi[j0 + c1]), jmass[c1])
                    csum = (ca[0] + cb[0], ca[1] + cb[1], ca[2] + cb[2], ca[3] + cb[3])
                    cmass = _mass(csum[0], csum[1], csum[2], csum[3])
                    chi = max(jpt[c0], jpt[c1])
                    clo = min(jpt[c0], jpt[c1])
                    cand_ready = True
                mstar = _mstar(csum, cmass, g1, g2, myy, mstar_offset)
                b = _kin_bits(cmass, mstar, chi, clo, res, tag, cat)
                if b:
                    bits_out, obs_out, var_out, w_out = _append(bits_out, obs_out, var_out, w_out, n_out, b, myy,
                                                                cmass, mstar, var, w)
                    n_out += 1
                continue
            # truth tagging: every way the selected jets make the event 2-tag or 1-tag
            if not rows_ready:  # the selected jets' classes, efficiencies and four-vectors
                m = 0
                for k in range(nj_ev):
                    if jet_ok[k]:
                        idx[m] = k
                        m += 1
                for a in range(m):
                    k = idx[a]
                    c = class_base[j0 + k]
                    for e in range(len(pt_edges)):
                        if jpt[k] >= pt_edges[e]:
                            c += 1
                    cls[a] = c
                    eps[a] = eps2[c]
                    v = _p4(jpt[k], np.float64(j_eta[j0 + k]), np.float64(j_phi[j0 + k]), jmass[k])
                    p4[a, 0], p4[a, 1], p4[a, 2], p4[a, 3] = v
                rows_ready = True
            if m < 2:
                continue
            for b in range(1, m):  # 2-tag: the pairs (a, b), a < b
                for a in range(b):
                    bb, mbb, mstar, prob = _row(2, a, b, b, eps, eps1, cls, p4, idx, jpt, g1, g2, myy, mstar_offset, res, cat)
                    if bb:
                        bits_out, obs_out, var_out, w_out = _append(bits_out, obs_out, var_out, w_out, n_out, bb,
                                                                    myy, mbb, mstar, var, gen_w[ev] * prob)
                        n_out += 1
            for a in range(m):  # 1-tag: jet a tagged, the leading other jet second
                bb, mbb, mstar, prob = _row(1, a, 1 if a == 0 else 0, m, eps, eps1, cls, p4, idx, jpt, g1, g2, myy,
                                      mstar_offset, res, cat)
                if bb:
                    bits_out, obs_out, var_out, w_out = _append(bits_out, obs_out, var_out, w_out, n_out, bb, myy,
                                                                mbb, mstar, var, gen_w[ev] * prob)
                    n_out += 1
    return bits_out[:n_out], obs_out[:, :n_out], var_out[:n_out], w_out[:n_out]


def shifted_entries(passes: Sequence[tuple[int, float, int]], *, photons: FlatObjects,
                    photon_ok: np.ndarray, iso: Sequence[tuple[np.ndarray, float]], photon_pt_min: float | None,
                    factors: np.ndarray | None, nominal: Mapping[str, np.ndarray],
                    electrons: FlatObjects, electron_mask: np.ndarray,
                    muons: FlatObjects, muon_mask: np.ndarray, lepton_dr: float | None,
                    jets: FlatObjects, jet_fixed: np.ndarray, jet_pt_min: float,
                    pt_edges: Sequence[float], jet_dr: float | None, bin_two: int, bin_one: int,
                    cfg: SelectionHhYybb, truth: bool, eps: tuple[np.ndarray, np.ndarray] | None,
                    sf_table: np.ndarray | None, gen_weight: np.ndarray) -> dict[str, np.ndarray]:
    """Histogram entries of the shifted passes of one chunk (module docstring).

    ``passes``: ``(kind, value, variation axis index)`` with kind
    :data:`PASS_PHOTON_SCALE` (value: the photon pT factor), :data:`PASS_PHOTON_FACTORS`
    (``factors``: one per photon; float64) or :data:`PASS_JET_SCALE` (value: the jet pT and
    mass factor). ``photons``, ``electrons``, ``muons``, ``jets``: flat fields with
    ``offsets`` (FlatCollection), pT-ordered; ``photon_ok``: the photon requirements no
    shift changes; ``iso``: ``(values, max)`` of the relative isolations (passes: values <
    max × pT); ``nominal``: the nominal pass's ``i1, i2, myy`` and ``diphoton`` per event,
    optionally ``angle`` (its pair's cosh Δη − cos Δφ, NaN where not computed: a photon pass
    that picks the nominal pair takes it instead of computing it again);
    ``jet_fixed``: the jet requirements but pT; ``jets`` also ``tag_bin`` and
    ``class_base``; ``pt_edges``: inner pT edges of the efficiency maps [GeV]; ``cfg``: the
    ``selection.hh_yybb`` section. Truth-tagged (``truth``): ``eps`` = (ε at the 2-tag WP,
    ε at the 1-tag WP) per efficiency class; else ``sf_table`` [class, tag bin].

    Returns ``bits`` (regions, :data:`N_REGION_BITS`), ``obs`` (m_γγ, m_bb, m* [GeV]; the
    two leading jets' for the inclusive bits), ``variation`` and ``weight`` per entry.
    """
    pc, jc, cc = cfg.photons, cfg.jets, cfg.categories
    pt = photons["pt"]
    dt = pt.dtype.type
    n_pass = len(passes)
    kinds = np.array([p[0] for p in passes], dtype=np.int64)
    values = np.array([p[1] for p in passes], dtype=np.float64)
    var_ids = np.array([p[2] for p in passes], dtype=np.int64)
    # numpy's types for a global scale: pT × s and the thresholds in the input's float type
    scale_native = np.array([dt(v) for v in values], dtype=pt.dtype)
    thr_native = np.array([dt(photon_pt_min if photon_pt_min is not None else 0.0)], dtype=pt.dtype)
    # the relative isolations as a tuple of arrays of one type (np.stack's upcast, without
    # its copy of every photon's values)
    iso_type = np.result_type(*(np.asarray(v).dtype for v, _ in iso)) if iso else pt.dtype
    iso_vals = tuple(np.asarray(v, dtype=iso_type) for v, _ in iso) or (np.zeros(0, dtype=iso_type),)
    iso_max = np.array([float(m) for _, m in iso], dtype=np.float64)
    iso_native = np.array([[dt(m)] * n_pass for _, m in iso], dtype=pt.dtype).reshape(len(iso), n_pass)
    cat = np.array([*(float(x) for k in (cc.loose, cc.tight) for x in (
        k.leading_jet_pt_min, k.subleading_jet_pt_min, *k.mbb_window)), float(cc.mstar_split)])
    if truth:
        assert eps is not None, "truth tagging needs the efficiencies"
        e2, e1 = (np.asarray(x, dtype=np.float64).ravel() for x in eps)
        table = np.ones((1, 1))
    else:
        e2 = e1 = np.zeros(1)
        table = np.asarray(sf_table, dtype=np.float64)
    f = np.zeros(len(pt)) if factors is None else np.asarray(factors, dtype=np.float64)
    n_ev = len(photons.offsets) - 1
    nom_angle = (np.full(n_ev, np.nan) if nominal.get("angle") is None
                 else np.asarray(nominal["angle"], dtype=np.float64))
    bits, obs, var, w = _shifted(
        kinds, values, var_ids, f,
        np.asarray(photons.offsets, dtype=np.int64), pt, photons["eta"], photons["phi"],
        np.ascontiguousarray(photon_ok, dtype=np.bool_), iso_vals, iso_native, iso_max,
        scale_native, thr_native, photon_pt_min is not None,
        0.0 if photon_pt_min is None else float(photon_pt_min),
        np.asarray(nominal["i1"], dtype=np.int64), np.asarray(nominal["i2"], dtype=np.int64),
        np.asarray(nominal["myy"], dtype=np.float64), np.ascontiguousarray(nominal["diphoton"], dtype=np.bool_),
        nom_angle,
        np.asarray(electrons.offsets, dtype=np.int64), electrons["eta"], electrons["phi"],
        np.ascontiguousarray(electron_mask, dtype=np.bool_),
        np.asarray(muons.offsets, dtype=np.int64), muons["eta"], muons["phi"],
        np.ascontiguousarray(muon_mask, dtype=np.bool_), float(lepton_dr or 0.0),
        np.asarray(jets.offsets, dtype=np.int64), np.asarray(jets["pt"], dtype=np.float64), jets["eta"], jets["phi"],
        np.asarray(jets["mass"], dtype=np.float64), np.ascontiguousarray(jet_fixed, dtype=np.bool_),
        float(jet_pt_min), np.asarray(jets["tag_bin"]), np.asarray(jets["class_base"], dtype=np.int64),
        np.asarray(pt_edges, dtype=np.float64).reshape(-1), float(jet_dr or 0.0), int(bin_two), int(bin_one),
        int(jc.min_jets), int(jc.max_central_jets), float(pc.leading_pt_over_myy),
        float(pc.subleading_pt_over_myy), float(pc.myy_window[0]), float(pc.myy_window[1]),
        float(cfg.resonant.higgs_mass), float(cfg.resonant.myy_half_window), float(cc.mstar_offset),
        cat, bool(truth), e2, e1, table, np.asarray(gen_weight, dtype=np.float64))
    return {"bits": bits, "obs": obs, "variation": var, "weight": w}

