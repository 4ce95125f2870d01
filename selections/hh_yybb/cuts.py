"""The HH → γγbb̄ selection, each cut written once (physics-reference §4; ATLAS 2018/2021).

This module is the definition of the selection: the object selections, the event cuts,
the categories and the regions, as pure functions on awkward arrays (one list of objects
per event, pT in GeV) and numpy arrays (one value per event). The readable processor
(:mod:`selections.hh_yybb.reference`) calls them; every cut value comes from the
``selection`` config section (:class:`analysis.core.config.selection.SelectionHhYybb`).

The sequential cuts (the cutflow, in order):

1. ``two_photons``: ≥ 2 selected photons (acceptance, ID, isolation); the two leading ones
   form the diphoton;
2. ``photon_pt_over_myy``: E_T(γ₁)/m_γγ > 0.35 and E_T(γ₂)/m_γγ > 0.25;
3. ``myy_window``: 105 < m_γγ < 160 GeV;
4. ``lepton_veto``: no selected e/μ outside ΔR < 0.4 of the two diphoton photons;
5. ``two_jets``: ≥ 2 selected jets, i.e. pT > 25 GeV, |η| < 2.5, jet ID, outside ΔR < 0.4
   of the two diphoton photons ("central jets" are these selected jets);
6. ``max_central_jets``: at most 5 of them (against ttH);
7. ``btag_1or2``: 2-tag (≥ 2 selected jets at the 2-tag working point) or else 1-tag (one at
   the 1-tag working point).

No jet is removed near a lepton: an event with a selected lepton is vetoed before any jet
requirement, so that removal could change no result. The b-jet candidates are the two
leading tagged jets (2-tag), or the tagged jet and the leading untagged one (1-tag); j₁ and
j₂ of the categories are the two candidates ordered by pT. Categories: ``loose``
(j₁ > 40, j₂ > 25 GeV, 80 < m_bb < 140 GeV) and ``tight`` (j₁ > 100, j₂ > 30 GeV,
90 < m_bb < 140 GeV), each split at m* = m_bbγγ − m_bb − m_γγ + 250 GeV = 350 GeV; the
resonant regions keep |m_γγ − 125| < 4.7 GeV instead of the m* split.

The regions are data (:data:`REGIONS`: name → the named masks an event must pass), so that
adding a cut or a region is one function and one line here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from analysis.core.config.selection import SelectionHhYybb
from selections import objects as O

__all__ = [
    "CUTFLOW_STEPS",
    "INCLUSIVE_REGIONS",
    "KINEMATIC",
    "MSTAR",
    "NONRES_REGIONS",
    "OBSERVABLES",
    "PRETAG_STEPS",
    "REGIONS",
    "RES_REGIONS",
    "SEQUENTIAL_STEPS",
    "TAGS",
    "Candidates",
    "Diphoton",
    "categories",
    "diphoton",
    "event_cuts",
    "jet_candidates",
    "pair_observables",
    "photon_candidates",
    "selected_jets",
    "selected_leptons",
    "selected_photons",
    "tag_category",
]

SEQUENTIAL_STEPS = (
    "all",
    "two_photons",
    "photon_pt_over_myy",
    "myy_window",
    "lepton_veto",
    "two_jets",
    "max_central_jets",
    "btag_1or2",
)
"""The sequential cuts of the cutflow, in order (``all``: every event)."""
TAGS = ("2tag", "1tag")
KINEMATIC = ("loose", "tight")
MSTAR = ("lowmstar", "highmstar")

_CUTS = SEQUENTIAL_STEPS[1:]
PRETAG_STEPS = _CUTS[: _CUTS.index("btag_1or2")]
"""The sequential cuts before the b-tagging (truth-tagged samples: the rows' preselection)."""
#: region → the named masks (cuts and categories) an event must pass, in the order of the
#: histograms' region axis
REGIONS: dict[str, tuple[str, ...]] = {
    "diphoton": _CUTS[: _CUTS.index("myy_window") + 1],
    "pretag": PRETAG_STEPS,
    **{f"{t}_{k}_{m}": (*_CUTS, t, k, m) for t in TAGS for k in KINEMATIC for m in MSTAR},
    **{f"res_{t}_{k}": (*_CUTS, t, k, "higgs_window") for t in TAGS for k in KINEMATIC},
}
#: the regions filled with the observables of the two leading selected jets (every other
#: region: of the two b-jet candidates)
INCLUSIVE_REGIONS = ("diphoton", "pretag")
NONRES_REGIONS = tuple(r for r in REGIONS if not r.startswith("res_") and r not in INCLUSIVE_REGIONS)
RES_REGIONS = tuple(r for r in REGIONS if r.startswith("res_"))
CUTFLOW_STEPS = (*SEQUENTIAL_STEPS, *TAGS, *NONRES_REGIONS, *RES_REGIONS)
"""Rows of the cutflow: the sequential cuts, then the tag categories and every b-tagged region."""
OBSERVABLES = ("m_yy", "m_bb", "m_star")
"""The histogrammed observables [GeV]."""


# ---------------------------------------------------------------------------------------
# objects
# ---------------------------------------------------------------------------------------
def photon_candidates(photons: ak.Array, mapping: Any, cfg: SelectionHhYybb) -> ak.Array:
    """Photons passing what no energy shift can change: |η| acceptance (``photons.eta_max``
    outside ``photons.crack``), the ID, the extra requirements and the isolation that is not
    relative to pT (``mapping``: ``selection.objects.<format>.photon``)."""
    fixed = [mapping.id, *mapping.require, *(x for x in mapping.isolation if not x.relative)]
    mask = O.kinematic_mask(photons, None, cfg.photons.eta_max, cfg.photons.crack)
    req = O.requirements_mask(photons, fixed)
    return mask if req is True else mask & req


def selected_photons(photons: ak.Array, candidates: ak.Array, mapping: Any, cfg: SelectionHhYybb) -> ak.Array:
    """The selected photons: the ``candidates`` (:func:`photon_candidates`) with pT >
    ``photons.pt_min`` [GeV] and the isolation relative to pT (both of the photons' pT as
    given, which an energy shift changes)."""
    mask = candidates
    if cfg.photons.pt_min is not None:
        mask = mask & (photons["pt"] > cfg.photons.pt_min)
    for spec in mapping.isolation:
        if spec.relative:
            mask = mask & O.requirement_mask(photons, spec)
    return mask


def selected_leptons(leptons: ak.Array, mapping: Any, cuts: Any) -> ak.Array:
    """Electrons or muons passing pT, |η| (and the crack, electrons), ID and isolation
    (``mapping``: the object mapping; ``cuts``: ``selection.hh_yybb.leptons.<kind>``)."""
    return O.lepton_selection(leptons, O.object_requirements(mapping), pt_min=cuts.pt_min,
                              eta_max=cuts.eta_max, crack=getattr(cuts, "crack", None))


def selected_jets(jets: ak.Array, mapping: Any, cfg: SelectionHhYybb) -> ak.Array:
    """Jets with pT > ``jets.pt_min`` [GeV], |η| < ``jets.eta_max`` and the jet ID (before
    the overlap removal with the diphoton)."""
    return O.jet_selection(jets, O.object_requirements(mapping), pt_min=cfg.jets.pt_min, eta_max=cfg.jets.eta_max)


# ---------------------------------------------------------------------------------------
# the diphoton
# ---------------------------------------------------------------------------------------
def _field_or_nan(objects: ak.Array, field: str) -> np.ndarray:
    """One value per event (objects: one or None per event) as float64, NaN where none."""
    return np.asarray(ak.to_numpy(ak.fill_none(objects[field], np.nan)), dtype=np.float64)


def _nth(objects: ak.Array, n: int) -> list[ak.Array]:
    """The first ``n`` objects of every event, each one or None per event."""
    padded = ak.pad_none(objects, n, axis=1, clip=True)
    return [padded[:, k] for k in range(n)]


@dataclass(frozen=True)
class Diphoton:
    """The two leading selected photons of every event (NaN where an event has fewer).

    Attributes:
        pt1, eta1, phi1, pt2, eta2, phi2: the leading and subleading photon (pT in GeV).
        myy: their invariant mass [GeV] (massless photons).
    """

    pt1: np.ndarray
    eta1: np.ndarray
    phi1: np.ndarray
    pt2: np.ndarray
    eta2: np.ndarray
    phi2: np.ndarray
    myy: np.ndarray

    @property
    def found(self) -> np.ndarray:
        """Events with two selected photons."""
        return ~np.isnan(self.pt2)

    def points(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The (η, φ) of the two photons, for the overlap removal."""
        return [(self.eta1, self.phi1), (self.eta2, self.phi2)]

    def p4s(self) -> tuple[tuple[Any, Any, Any, Any], tuple[Any, Any, Any, Any]]:
        """The two photons' (px, py, pz, E) [GeV]."""
        return O.p4(self.pt1, self.eta1, self.phi1), O.p4(self.pt2, self.eta2, self.phi2)


def diphoton(photons: ak.Array, selected: ak.Array, *, by_pt: bool = False) -> Diphoton:
    """The two leading ``selected`` photons (in the collection's order, which is by
    decreasing pT; ``by_pt``: re-ordered by the photons' pT as given, for per-photon energy
    shifts that can change the order)."""
    chosen = photons[selected]
    if by_pt:
        chosen = chosen[ak.argsort(chosen["pt"], axis=1, ascending=False, stable=True)]
    g1, g2 = _nth(chosen, 2)
    fields = {f"{f}{k}": _field_or_nan(g, f) for k, g in ((1, g1), (2, g2)) for f in ("pt", "eta", "phi")}
    myy = O.invariant_mass(O.p4(fields["pt1"], fields["eta1"], fields["phi1"]),
                           O.p4(fields["pt2"], fields["eta2"], fields["phi2"]))
    myy[np.isnan(fields["pt2"])] = np.nan
    return Diphoton(myy=myy, **fields)


# ---------------------------------------------------------------------------------------
# b-tagging and the b-jet candidates
# ---------------------------------------------------------------------------------------
def tag_category(bins: ak.Array, jet_mask: ak.Array, bin_two: int, bin_one: int) -> np.ndarray:
    """2 (≥ 2 selected jets in tag bin ≥ ``bin_two``: the 2-tag working point), 1 (else one
    in bin ≥ ``bin_one``) or 0 per event (``bins``: :func:`selections.objects.tag_bin`)."""
    n_two = ak.to_numpy(ak.sum(jet_mask & (bins >= bin_two), axis=1))
    n_one = ak.to_numpy(ak.sum(jet_mask & (bins >= bin_one), axis=1))
    return np.where(n_two >= 2, 2, np.where(n_one >= 1, 1, 0))


@dataclass(frozen=True)
class Candidates:
    """Two jets per event, as per-event float64 arrays (NaN where missing): pT, η, φ, m in
    GeV, and their index in the event's jet list (−1 where missing)."""

    a: dict[str, np.ndarray]
    b: dict[str, np.ndarray]
    index_a: np.ndarray
    index_b: np.ndarray


def _first_two(jets: ak.Array, mask: ak.Array) -> tuple[list[ak.Array], list[ak.Array]]:
    idx = ak.local_index(jets["pt"], axis=1)[mask]
    return _nth(jets[mask], 2), _nth(idx, 2)


def _kinematics(jet: ak.Array) -> dict[str, np.ndarray]:
    return {f: _field_or_nan(jet, f) for f in ("pt", "eta", "phi", "mass")}


def jet_candidates(jets: ak.Array, jet_mask: ak.Array, bins: ak.Array, tag: np.ndarray,
                   bin_two: int, bin_one: int) -> tuple[Candidates, Candidates]:
    """(b-jet candidates, the two leading selected jets).

    The candidates: the two leading jets tagged at the category's working point (2-tag),
    the tagged jet and the leading untagged one (1-tag), the two leading jets otherwise."""
    thresh = np.where(tag == 2, bin_two, np.where(tag == 1, bin_one, 127))
    tagged = jet_mask & (bins >= thresh)
    untagged = jet_mask & ~tagged
    (t0, t1), (it0, it1) = _first_two(jets, tagged)
    (u0, u1), (iu0, iu1) = _first_two(jets, untagged)
    (l0, l1), (il0, il1) = _first_two(jets, jet_mask)
    t0k, t1k, u0k, u1k = (_kinematics(x) for x in (t0, t1, u0, u1))
    has_t0, has_t1 = ~np.isnan(t0k["pt"]), ~np.isnan(t1k["pt"])

    def pick(cond: np.ndarray, x: dict[str, np.ndarray], y: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {f: np.where(cond, x[f], y[f]) for f in x}

    def index(x: ak.Array) -> np.ndarray:
        return np.asarray(ak.to_numpy(ak.fill_none(x, -1)), dtype=np.int64)

    c0 = pick(has_t0, t0k, u0k)
    c1 = pick(has_t1, t1k, pick(has_t0, u0k, u1k))
    i0 = np.where(has_t0, index(it0), index(iu0))
    i1 = np.where(has_t1, index(it1), np.where(has_t0, index(iu0), index(iu1)))
    leading = Candidates(_kinematics(l0), _kinematics(l1), index(il0), index(il1))
    return Candidates(c0, c1, i0, i1), leading


def pair_observables(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], dp: Diphoton,
                     mstar_offset: float) -> dict[str, np.ndarray]:
    """m_bb, m* = m_bbγγ − m_bb − m_γγ + ``mstar_offset`` and the candidates' pT ordered
    (``j1`` ≥ ``j2``), all in GeV, per event or per row (``a``, ``b``, ``dp`` aligned)."""
    va = O.p4(a["pt"], a["eta"], a["phi"], a["mass"])
    vb = O.p4(b["pt"], b["eta"], b["phi"], b["mass"])
    h1, h2 = dp.p4s()
    mbb = O.invariant_mass(va, vb)
    mstar = O.invariant_mass(va, vb, h1, h2) - mbb - dp.myy + mstar_offset
    return {"m_bb": mbb, "m_star": mstar, "j1": np.fmax(a["pt"], b["pt"]), "j2": np.fmin(a["pt"], b["pt"])}


# ---------------------------------------------------------------------------------------
# event cuts and categories
# ---------------------------------------------------------------------------------------
def event_cuts(dp: Diphoton, n_leptons: np.ndarray, n_jets: np.ndarray, tag: np.ndarray,
               cfg: SelectionHhYybb) -> dict[str, np.ndarray]:
    """The sequential cuts after ``all`` (:data:`SEQUENTIAL_STEPS`), one mask per event."""
    pc, jc = cfg.photons, cfg.jets
    with np.errstate(invalid="ignore"):
        return {
            "two_photons": dp.found,
            "photon_pt_over_myy": (dp.pt1 > pc.leading_pt_over_myy * dp.myy)
            & (dp.pt2 > pc.subleading_pt_over_myy * dp.myy),
            "myy_window": (dp.myy > pc.myy_window[0]) & (dp.myy < pc.myy_window[1]),
            "lepton_veto": n_leptons == 0,
            "two_jets": n_jets >= jc.min_jets,
            "max_central_jets": n_jets <= jc.max_central_jets,
            "btag_1or2": tag > 0,
        }


def categories(pair: Mapping[str, np.ndarray], myy: np.ndarray, cfg: SelectionHhYybb) -> dict[str, np.ndarray]:
    """The kinematic categories (``loose``, ``tight``: j₁, j₂ and m_bb of the b-jet
    candidates), the m* split (``lowmstar``, ``highmstar``) and the resonant
    ``higgs_window`` |m_γγ − m_H| < half window, per event or per truth-tag row."""
    c = cfg.categories
    out: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore"):
        for k in KINEMATIC:
            kc = getattr(c, k)
            out[k] = ((pair["j1"] > kc.leading_jet_pt_min) & (pair["j2"] > kc.subleading_jet_pt_min)
                      & (pair["m_bb"] > kc.mbb_window[0]) & (pair["m_bb"] < kc.mbb_window[1]))
        out["lowmstar"] = pair["m_star"] < c.mstar_split
        out["highmstar"] = pair["m_star"] >= c.mstar_split
        out["higgs_window"] = np.abs(myy - cfg.resonant.higgs_mass) < cfg.resonant.myy_half_window
    return out
