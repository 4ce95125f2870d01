"""SLHA spectrum for the RPV gluino benchmark (g~ g~, g~ -> chi10 q q~, chi10 -> u d s).

Pythia 8 has no spectrum calculator: every SUSY process needs a complete SUSY Les Houches
Accord (SLHA) file, otherwise it prints "Problem with SLHA spectrum ... switching off SUSY"
and refuses to initialise. :func:`rpv_gluino_slha` writes a simplified-model spectrum:

* gluino at ``m_gluino_gev`` and a bino-like lightest neutralino at ``m_neutralino_gev``;
* every other sparticle (squarks, sleptons, the other neutralinos and charginos) and the
  heavy Higgs bosons H, A, H+ decoupled at 5 TeV (so they neither contribute to production
  nor to decays in a visible way);
* R-parity violation switched on (``MODSEL 4 1``) with a baryon-number violating coupling
  lambda''_112 (U_1 D_1 D_2, i.e. u d s), so the neutralino decays promptly to three quarks;
* explicit DECAY tables for the gluino (three-body g~ -> chi10 q q~ through off-shell,
  mass-degenerate squarks) and the neutralino (chi10 -> u d s and the charge conjugate).

All masses and widths are in GeV. The mixing matrices are exactly orthogonal (Pythia checks
unitarity) and describe the decoupling limit: N = pure bino / wino / higgsino states,
U = V = 1, no left-right sfermion mixing, alpha = beta - pi/2.
"""

from __future__ import annotations

import logging
import math

__all__ = ["DECOUPLED_MASS_GEV", "LAMBDA_PP_112", "TAN_BETA", "rpv_gluino_slha"]

log = logging.getLogger(__name__)

#: Mass (GeV) of every sparticle and heavy Higgs boson not used by the benchmark.
DECOUPLED_MASS_GEV = 5000.0
#: tan(beta) of the (irrelevant, decoupled) Higgs sector.
TAN_BETA = 10.0
#: RPV coupling lambda''_112 (u d s). Only sets the scale of the (prompt) neutralino width.
LAMBDA_PP_112 = 0.1

_SQUARKS = (1000001, 2000001, 1000002, 2000002, 1000003, 2000003,
            1000004, 2000004, 1000005, 2000005, 1000006, 2000006)
_SLEPTONS = (1000011, 2000011, 1000012, 1000013, 2000013, 1000014,
             1000015, 2000015, 1000016)
_NAMES = {
    1000001: "~d_L", 2000001: "~d_R", 1000002: "~u_L", 2000002: "~u_R",
    1000003: "~s_L", 2000003: "~s_R", 1000004: "~c_L", 2000004: "~c_R",
    1000005: "~b_1", 2000005: "~b_2", 1000006: "~t_1", 2000006: "~t_2",
    1000011: "~e_L", 2000011: "~e_R", 1000012: "~nu_eL", 1000013: "~mu_L",
    2000013: "~mu_R", 1000014: "~nu_muL", 1000015: "~tau_1", 2000015: "~tau_2",
    1000016: "~nu_tauL", 1000021: "~g", 1000022: "~chi_10", 1000023: "~chi_20",
    1000025: "~chi_30", 1000035: "~chi_40", 1000024: "~chi_1+", 1000037: "~chi_2+",
}

# Gluino -> chi10 q q~ through degenerate squarks, chi10 a pure bino: the rate for flavour q
# is proportional to Y(q_L)^2 + Y(q_R)^2 (hypercharge, Q = T3 + Y): up-type 1/36 + 16/36,
# down-type 1/36 + 4/36. Top is left out (t t~ chi10 is strongly phase-space suppressed for
# the benchmark and is not part of the light-quark multijet signature).
_GLUINO_QUARK_WEIGHTS = {2: 17.0, 4: 17.0, 1: 5.0, 3: 5.0, 5: 5.0}


def _gluino_width_gev(m_gluino: float, m_neutralino: float, m_squark: float) -> float:
    """Rough width (GeV) of g~ -> chi10 q q~ via heavy squarks (only needs to be narrow).

    Gamma ~ alpha_s alpha' / (8 pi^2) * sum_q(Y^2) * m_g^5 / m_sq^4 * (1 - m_chi/m_g)^5 / 12,
    the three-body scaling of a decay through a heavy scalar. The value only makes the decay
    prompt (c tau far below a micrometre); kinematics come from the flat three-body phase space.
    """
    alpha_s, alpha_y = 0.1, 0.01
    sum_y2 = sum(_GLUINO_QUARK_WEIGHTS.values()) / 36.0
    suppression = (1.0 - m_neutralino / m_gluino) ** 5
    return (alpha_s * alpha_y / (8 * math.pi**2) * sum_y2
            * m_gluino**5 / m_squark**4 * suppression / 12.0)


def _neutralino_width_gev(m_neutralino: float, m_squark: float, lam: float) -> float:
    """Rough width (GeV) of chi10 -> u d s + c.c. via lambda''_112 and heavy squarks.

    Gamma ~ lambda''^2 alpha' / (128 pi^2) * m_chi^5 / m_sq^4 (both charge states summed).
    """
    alpha_y = 0.01
    return lam**2 * alpha_y / (128 * math.pi**2) * m_neutralino**5 / m_squark**4


def _fmt(x: float) -> str:
    return f"{x: .8E}"


def rpv_gluino_slha(m_gluino_gev: float, m_neutralino_gev: float) -> str:
    """Complete SLHA text for gluino pair production with RPV neutralino decays.

    ``m_gluino_gev`` and ``m_neutralino_gev`` are pole masses in GeV; the neutralino must be
    lighter than the gluino (else g~ -> chi10 q q~ is closed). Returns the file content.
    """
    mg, mchi = float(m_gluino_gev), float(m_neutralino_gev)
    if not (0.0 < mchi < mg):
        raise ValueError(
            f"need 0 < m(neutralino) < m(gluino), got m_gluino={mg} GeV, m_neutralino={mchi} GeV")
    if mg >= DECOUPLED_MASS_GEV:
        raise ValueError(f"gluino mass {mg} GeV must be below the decoupling scale "
                         f"{DECOUPLED_MASS_GEV} GeV")
    heavy = DECOUPLED_MASS_GEV
    beta = math.atan(TAN_BETA)
    alpha = beta - math.pi / 2.0          # decoupling limit
    v = 246.0                             # GeV, sqrt(vu^2 + vd^2)
    cb, sb = math.cos(beta), math.sin(beta)
    yt, yb, ytau = 173.0 * math.sqrt(2) / (v * sb), 2.8 * math.sqrt(2) / (v * cb), \
        1.777 * math.sqrt(2) / (v * cb)
    q = 1000.0                            # GeV, scale of the running parameters
    r2 = 1.0 / math.sqrt(2.0)

    lines: list[str] = []
    add = lines.append
    add("# SUSY Les Houches Accord 2 spectrum written by hepline (analysis/generation/slha.py)")
    add(f"# RPV simplified model: m(~g) = {mg:g} GeV, m(~chi_10) = {mchi:g} GeV,")
    add(f"# everything else decoupled at {heavy:g} GeV; ~chi_10 -> u d s via lambda''_112.")
    add("BLOCK MODSEL  # model selection")
    add("    1    0   # general MSSM")
    add("    4    1   # R-parity violation on")
    add("BLOCK SMINPUTS  # Standard Model inputs")
    add(f"    1 {_fmt(127.934)}   # alpha_em^-1(M_Z) MSbar")
    add(f"    2 {_fmt(1.16637e-5)}   # G_Fermi (GeV^-2)")
    add(f"    3 {_fmt(0.118)}   # alpha_s(M_Z) MSbar")
    add(f"    4 {_fmt(91.1876)}   # M_Z pole")
    add(f"    5 {_fmt(4.18)}   # m_b(m_b) MSbar")
    add(f"    6 {_fmt(173.0)}   # m_top pole")
    add(f"    7 {_fmt(1.777)}   # m_tau pole")
    add("BLOCK MINPAR  # input parameters")
    add(f"    3 {_fmt(TAN_BETA)}   # tan(beta)")
    add(f"    4 {_fmt(1.0)}   # sign(mu)")
    add("BLOCK EXTPAR  # non-minimal input parameters")
    add(f"    0 {_fmt(q)}   # input scale")
    add(f"    1 {_fmt(mchi)}   # M_1")
    add(f"    2 {_fmt(heavy)}   # M_2")
    add(f"    3 {_fmt(mg)}   # M_3")
    add(f"   23 {_fmt(heavy)}   # mu")
    add(f"   25 {_fmt(TAN_BETA)}   # tan(beta)")
    add(f"   26 {_fmt(heavy)}   # m_A pole")

    add("BLOCK MASS  # pole masses (GeV)")
    # (SM masses below SLHA:minMassSM are ignored by Pythia; only the Higgs bosons are given)
    add(f"       25 {_fmt(125.0)}   # h0")
    add(f"       35 {_fmt(heavy)}   # H0")
    add(f"       36 {_fmt(heavy)}   # A0")
    add(f"       37 {_fmt(heavy)}   # H+")
    for pid in _SQUARKS + _SLEPTONS:
        add(f"  {pid:7d} {_fmt(heavy)}   # {_NAMES[pid]}")
    add(f"  1000021 {_fmt(mg)}   # ~g")
    add(f"  1000022 {_fmt(mchi)}   # ~chi_10")
    add(f"  1000023 {_fmt(heavy)}   # ~chi_20")
    add(f"  1000025 {_fmt(heavy + 1.0)}   # ~chi_30")
    add(f"  1000035 {_fmt(heavy + 2.0)}   # ~chi_40")
    add(f"  1000024 {_fmt(heavy)}   # ~chi_1+")
    add(f"  1000037 {_fmt(heavy + 1.0)}   # ~chi_2+")

    add("BLOCK NMIX  # neutralino mixing: bino, wino, (Hd -/+ Hu)/sqrt2")
    nmix: list[list[float]] = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0],
                               [0.0, 0.0, r2, -r2], [0.0, 0.0, r2, r2]]
    for i in range(4):
        for j in range(4):
            add(f"  {i + 1} {j + 1} {_fmt(nmix[i][j])}   # N_{i + 1}{j + 1}")
    for block, label in (("UMIX", "U"), ("VMIX", "V"), ("STOPMIX", "stop"),
                         ("SBOTMIX", "sbottom"), ("STAUMIX", "stau")):
        add(f"BLOCK {block}  # {label} mixing matrix (no mixing)")
        for i in range(2):
            for j in range(2):
                add(f"  {i + 1} {j + 1} {_fmt(1.0 if i == j else 0.0)}")
    add("BLOCK ALPHA  # effective Higgs mixing angle")
    add(f"    {_fmt(alpha)}   # alpha")
    add(f"BLOCK HMIX Q= {_fmt(q)}  # Higgs parameters (DRbar)")
    add(f"    1 {_fmt(heavy)}   # mu")
    add(f"    2 {_fmt(TAN_BETA)}   # tan(beta)")
    add(f"    3 {_fmt(v)}   # v")
    add(f"    4 {_fmt(heavy**2)}   # m_A^2")
    add(f"BLOCK GAUGE Q= {_fmt(q)}  # gauge couplings (DRbar)")
    add(f"    1 {_fmt(0.36)}   # g'")
    add(f"    2 {_fmt(0.64)}   # g")
    add(f"    3 {_fmt(1.06)}   # g3")
    for block, y3 in (("YU", yt), ("YD", yb), ("YE", ytau)):
        add(f"BLOCK {block} Q= {_fmt(q)}  # Yukawa couplings (third generation only)")
        for i in range(1, 4):
            add(f"  {i} {i} {_fmt(y3 if i == 3 else 0.0)}")
    for block in ("AU", "AD", "AE"):
        add(f"BLOCK {block} Q= {_fmt(q)}  # trilinear couplings (GeV)")
        for i in range(1, 4):
            add(f"  {i} {i} {_fmt(0.0)}")
    add(f"BLOCK RVLAMUDD Q= {_fmt(q)}  # lambda''_ijk (U_i D_j D_k), j < k")
    add(f"  1 1 2 {_fmt(LAMBDA_PP_112)}   # lambda''_112: u d s")

    # --- decay tables ---------------------------------------------------------------
    gw = _gluino_width_gev(mg, mchi, heavy)
    nw = _neutralino_width_gev(mchi, heavy, LAMBDA_PP_112)
    total = sum(_GLUINO_QUARK_WEIGHTS.values())
    add("#         PDG        width (GeV)")
    add(f"DECAY   1000021  {_fmt(gw)}   # ~g")
    add("#      BR           NDA    ID1      ID2   ID3")
    for quark, w in _GLUINO_QUARK_WEIGHTS.items():
        add(f"   {_fmt(w / total)}   3  1000022  {quark:4d} {-quark:4d}   # ~chi_10 q q~")
    add(f"DECAY   1000022  {_fmt(nw)}   # ~chi_10")
    add("#      BR           NDA    ID1   ID2   ID3")
    add(f"   {_fmt(0.5)}   3     2     1     3   # u d s (lambda''_112)")
    add(f"   {_fmt(0.5)}   3    -2    -1    -3   # u~ d~ s~")
    text = "\n".join(lines) + "\n"
    log.debug("RPV SLHA: m_gluino=%g GeV m_chi10=%g GeV width(g~)=%.3g GeV width(chi)=%.3g GeV",
              mg, mchi, gw, nw)
    return text
