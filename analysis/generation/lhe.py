"""A minimal Les Houches Event File (LHEF, hep-ph/0609017) writer and toy gg -> HH events.

The writer produces the standard ``<LesHouchesEvents version="1.0">`` layout that Pythia 8
reads with ``Beams:frameType = 4``: an ``<init>`` block (proton beams, weighting strategy
IDWTUP = 3, one process) and one ``<event>`` block per event with the usual HEPEUP particle
lines (IDUP ISTUP MOTHUP(1,2) ICOLUP(1,2) PUP(1..5) VTIMUP SPINUP). Momenta, energies and
masses are in GeV, lifetimes (VTIMUP) in mm.

IDWTUP = 3 means unweighted events: every event carries the same weight and the shower
program accepts all of them. Following the common MadGraph ("average") convention the
event weight XWGTUP is written equal to the total cross-section XSECUP in pb.

:func:`toy_gg_to_hh_events` makes simple, physically consistent g g -> H H events for tests
(there is no matrix element: m_HH and the scattering angle are drawn from simple shapes).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["HIGGS_MASS_GEV", "LHEEvent", "LHEParticle", "toy_gg_to_hh_events", "write_lhe"]

log = logging.getLogger(__name__)

HIGGS_MASS_GEV = 125.0


@dataclass(frozen=True)
class LHEParticle:
    """One HEPEUP particle line. Momenta/energy/mass in GeV, ``lifetime_mm`` = VTIMUP (c tau)."""

    pdg_id: int
    status: int                 # -1 incoming, +1 outgoing final, +2 intermediate resonance
    mother1: int                # 1-based index into the event's particle list, 0 = none
    mother2: int
    col: int                    # ICOLUP(1): colour tag (0 = none)
    acol: int                   # ICOLUP(2): anticolour tag
    px: float
    py: float
    pz: float
    e: float
    m: float
    lifetime_mm: float = 0.0
    spin: float = 9.0           # SPINUP, 9 = unknown / unpolarised


@dataclass(frozen=True)
class LHEEvent:
    """One LHE event: its particles and the event-level HEPEUP numbers."""

    particles: tuple[LHEParticle, ...]
    scale_gev: float            # SCALUP
    alpha_qed: float = 1.0 / 128.0
    alpha_qcd: float = 0.118
    weight: float | None = None  # XWGTUP; None -> the file's xsec_pb (IDWTUP = 3 convention)
    process_id: int | None = None  # IDPRUP; None -> the file's process_id
    meta: dict[str, float] = field(default_factory=dict, compare=False)


def _particle_line(p: LHEParticle) -> str:
    return (f" {p.pdg_id:8d} {p.status:2d} {p.mother1:4d} {p.mother2:4d} {p.col:4d} {p.acol:4d}"
            f" {p.px: .10e} {p.py: .10e} {p.pz: .10e} {p.e: .10e} {p.m: .10e}"
            f" {p.lifetime_mm: .4e} {p.spin: .1f}")


def write_lhe(path: str | os.PathLike[str], events: Iterable[LHEEvent], *, sqrt_s_gev: float,
              xsec_pb: float, process_id: int = 1, xsec_err_pb: float = 0.0,
              beam_ids: tuple[int, int] = (2212, 2212)) -> Path:
    """Write ``events`` to a Les Houches Event File at ``path``; returns the path.

    ``sqrt_s_gev`` is the collision energy (symmetric beams, EBMUP = sqrt_s/2 each),
    ``xsec_pb`` / ``xsec_err_pb`` the process cross-section and its error in pb (XSECUP,
    XERRUP; also XMAXUP), ``process_id`` the LPRUP/IDPRUP label. Weighting strategy IDWTUP=3.
    """
    if sqrt_s_gev <= 0 or xsec_pb <= 0:
        raise ValueError(f"need sqrt_s_gev > 0 and xsec_pb > 0, got {sqrt_s_gev}, {xsec_pb}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    e_beam = 0.5 * float(sqrt_s_gev)
    n = 0
    with out.open("w") as f:
        f.write('<LesHouchesEvents version="1.0">\n')
        f.write("<!--\n File written by hepline analysis.generation.lhe\n-->\n")
        f.write("<header>\n</header>\n")
        f.write("<init>\n")
        # IDBMUP(2) EBMUP(2) PDFGUP(2) PDFSUP(2) IDWTUP NPRUP
        f.write(f" {beam_ids[0]:d} {beam_ids[1]:d} {e_beam: .10e} {e_beam: .10e}"
                f" 0 0 0 0 3 1\n")
        # XSECUP XERRUP XMAXUP LPRUP
        f.write(f" {xsec_pb: .10e} {xsec_err_pb: .10e} {xsec_pb: .10e} {process_id:d}\n")
        f.write("</init>\n")
        for ev in events:
            weight = xsec_pb if ev.weight is None else ev.weight
            pid = process_id if ev.process_id is None else ev.process_id
            f.write("<event>\n")
            # NUP IDPRUP XWGTUP SCALUP AQEDUP AQCDUP
            f.write(f" {len(ev.particles):d} {pid:d} {weight: .10e} {ev.scale_gev: .10e}"
                    f" {ev.alpha_qed: .10e} {ev.alpha_qcd: .10e}\n")
            for p in ev.particles:
                f.write(_particle_line(p) + "\n")
            f.write("</event>\n")
            n += 1
        f.write("</LesHouchesEvents>\n")
    log.info("wrote %d LHE events to %s (sqrt(s) = %g GeV, xsec = %g pb)", n, out,
             sqrt_s_gev, xsec_pb)
    return out


def toy_gg_to_hh_events(n: int, rng: np.random.Generator, sqrt_s_gev: float = 13000.0
                        ) -> list[LHEEvent]:
    """``n`` toy g g -> H H events (LO kinematics, no matrix element), masses 125 GeV.

    m_HH = 2 m_H + Exp(mean 150 GeV) (capped below sqrt(s)), the HH-system rapidity y is
    uniform in the kinematically allowed range (capped at |y| < 2.5), the CM scattering angle is
    isotropic. Incoming gluons run along +-z with x1 = tau^(1/2) e^y, x2 = tau^(1/2) e^-y
    (tau = m_HH^2 / s); colour flow g1 (501, 502), g2 (502, 501) closes into a singlet.
    Four-momentum is conserved exactly (up to floating point). SCALUP = m_HH / 2.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    s = float(sqrt_s_gev) ** 2
    e_beam = 0.5 * float(sqrt_s_gev)
    mh = HIGGS_MASS_GEV
    events: list[LHEEvent] = []
    for _ in range(n):
        m_hh = min(2.0 * mh + rng.exponential(150.0), 0.5 * float(sqrt_s_gev))
        tau = m_hh**2 / s
        y_max = min(-0.5 * math.log(tau), 2.5)
        y = rng.uniform(-y_max, y_max)
        x1, x2 = math.sqrt(tau) * math.exp(y), math.sqrt(tau) * math.exp(-y)
        cos_t = rng.uniform(-1.0, 1.0)
        sin_t = math.sqrt(max(0.0, 1.0 - cos_t**2))
        phi = rng.uniform(0.0, 2.0 * math.pi)
        e_star = 0.5 * m_hh
        p_star = math.sqrt(max(0.0, e_star**2 - mh**2))
        px, py, pz_star = p_star * sin_t * math.cos(phi), p_star * sin_t * math.sin(phi), \
            p_star * cos_t
        ch, sh = math.cosh(y), math.sinh(y)
        h = []
        for sign in (1.0, -1.0):
            pz_s = sign * pz_star
            h.append((sign * px, sign * py, pz_s * ch + e_star * sh, e_star * ch + pz_s * sh))
        g1e, g2e = x1 * e_beam, x2 * e_beam
        parts = (
            LHEParticle(21, -1, 0, 0, 501, 502, 0.0, 0.0, g1e, g1e, 0.0),
            LHEParticle(21, -1, 0, 0, 502, 501, 0.0, 0.0, -g2e, g2e, 0.0),
            LHEParticle(25, 1, 1, 2, 0, 0, *h[0], mh),
            LHEParticle(25, 1, 1, 2, 0, 0, *h[1], mh),
        )
        events.append(LHEEvent(particles=parts, scale_gev=0.5 * m_hh,
                               meta={"x1": x1, "x2": x2, "m_hh": m_hh}))
    return events
