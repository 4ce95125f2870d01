"""Reusable object selections: photons, jets, leptons and ΔR overlap removal.

Every function is pure: it takes objects (records with at least ``pt`` [GeV], ``eta``,
``phi``: a jagged awkward record array, one list per event, or equally a mapping of flat
numpy arrays, one entry per object, which is what the fast path of
``selections.hh_yybb.processor`` uses) and plain numbers or requirement specs, and returns a
boolean mask of the same structure. Nothing here reads a file, knows a branch name or holds a
default cut: the cut values come from the ``selection`` config section
(``analysis/core/config/schema/schema.d/selection.yaml``) and the field names from its
per-format ``objects`` mapping, so the same code selects hepline photons (``isTight``,
``isoCalo``, ``isoTrack``) and CMS NanoAOD photons (``cutBased``, ``electronVeto``, ...).

Requirement specs (``id``, ``isolation``, ``require`` of an object mapping) are
:class:`analysis.core.config.selection.Requirement` nodes:

``Requirement(field="isTight", relative=False)``
    the field is true (a boolean branch) / non-zero;
``Requirement(field="cutBased", min=3, relative=False)``
    field ≥ min (NanoAOD's cut-based ID levels);
``Requirement(field="cutBasedBitmap", bits=4, relative=False)``
    every bit of ``bits`` set in the integer field (NanoAOD v5's ID bitmaps);
``Requirement(field="isoCalo", max=0.065, relative=True)``
    field / pT < max (``relative=False``: field < max, e.g. ``pfRelIso03_all``, which is
    already relative).

ATLAS-like photons (physics-reference §4): ID + FixedCutLoose-like isolation
(isoCalo/E_T < 0.065, isoTrack/E_T < 0.05), |η| < 2.37 outside the 1.37–1.52 crack.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import awkward as ak
import numpy as np

from analysis.core.config.selection import Requirement

__all__ = [
    "FLAVOUR_CLASSES",
    "btag_event_weight",
    "btag_event_weight_flat",
    "btag_weight_table",
    "delta_phi",
    "delta_r",
    "flavour_class",
    "invariant_mass",
    "jet_selection",
    "kinematic_mask",
    "lepton_selection",
    "object_requirements",
    "overlap_free",
    "overlap_free_of_points",
    "p4",
    "photon_selection",
    "requirement_mask",
    "requirements_mask",
    "run3_jet_id",
    "tag_bin",
]


# ---------------------------------------------------------------------------------------
# geometry
# ---------------------------------------------------------------------------------------
def delta_phi(phi1: Any, phi2: Any) -> Any:
    """φ1 − φ2 wrapped into [−π, π) (numpy or awkward, broadcasting)."""
    return (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi


def delta_r(eta1: Any, phi1: Any, eta2: Any, phi2: Any) -> Any:
    """ΔR = sqrt(Δη² + Δφ²) (numpy or awkward, broadcasting)."""
    return np.hypot(eta1 - eta2, delta_phi(phi1, phi2))


def p4(pt: Any, eta: Any, phi: Any, mass: Any = 0.0) -> tuple[Any, Any, Any, Any]:
    """(px, py, pz, E) from (pT, η, φ, m)."""
    px = pt * np.cos(phi)
    py = pt * np.sin(phi)
    pz = pt * np.sinh(eta)
    e = np.sqrt(px * px + py * py + pz * pz + mass * mass)
    return px, py, pz, e


def invariant_mass(*vectors: tuple[Any, Any, Any, Any]) -> Any:
    """Invariant mass of the sum of (px, py, pz, E) 4-vectors (negative m² clipped to 0)."""
    px = sum(v[0] for v in vectors)
    py = sum(v[1] for v in vectors)
    pz = sum(v[2] for v in vectors)
    e = sum(v[3] for v in vectors)
    m2 = e * e - px * px - py * py - pz * pz
    return np.sqrt(np.maximum(m2, 0.0))


# ---------------------------------------------------------------------------------------
# generic requirements
# ---------------------------------------------------------------------------------------
def requirement_mask(objects: Any, spec: Requirement | None) -> Any:
    """The mask of one requirement spec (see the module docstring); ``None`` passes all
    (returns ``True``).

    Raises:
        KeyError: the objects have no field ``spec.field``.
    """
    if spec is None:
        return True
    field = spec.field
    names = ak.fields(objects) if isinstance(objects, ak.Array) else list(objects.keys())
    if field not in names:
        raise KeyError(f"object field {field!r} required by the selection is not in the input "
                       f"(fields: {', '.join(names)})")
    value = objects[field]
    if spec.max is not None:
        if spec.relative:
            return value < spec.max * objects["pt"]
        return value < spec.max
    if spec.min is not None:
        return value >= spec.min
    if spec.equals is not None:
        return value == spec.equals
    if spec.bits is not None:
        return (value & spec.bits) == spec.bits
    return value != 0


def requirements_mask(objects: Any, specs: Iterable[Requirement | None]) -> Any:
    """Logical AND of several requirement specs (``True`` when none applies)."""
    mask: Any = True
    for spec in specs:
        m = requirement_mask(objects, spec)
        if m is True:
            continue
        mask = m if mask is True else (mask & m)
    return mask


def object_requirements(mapping: Any) -> tuple[Requirement | None, ...]:
    """The requirement specs of one collection's object mapping
    (``selection.objects.<format>.<collection>``): its ``id``, then its ``isolation`` and
    ``require`` lists where the collection has them (jets have an ``id`` only)."""
    return (mapping.id, *getattr(mapping, "isolation", ()), *getattr(mapping, "require", ()))


def kinematic_mask(
    objects: Any,
    pt_min: float | None = None,
    eta_max: float | None = None,
    crack: Sequence[float] | None = None,
) -> Any:
    """pT > ``pt_min`` [GeV], |η| < ``eta_max`` and |η| outside [crack[0], crack[1]]."""
    mask = np.ones_like(objects["pt"], dtype=bool)
    if pt_min is not None:
        mask = mask & (objects["pt"] > pt_min)
    if eta_max is not None or crack:
        aeta = abs(objects["eta"])
        if eta_max is not None:
            mask = mask & (aeta < eta_max)
        if crack:
            lo, hi = crack
            mask = mask & ~((aeta >= lo) & (aeta <= hi))
    return mask


# ---------------------------------------------------------------------------------------
# objects
# ---------------------------------------------------------------------------------------
def photon_selection(
    photons: Any,
    requirements: Iterable[Requirement | None] = (),
    *,
    pt_min: float | None = None,
    eta_max: float | None = None,
    crack: Sequence[float] | None = None,
) -> Any:
    """Photons passing acceptance, identification and isolation.

    Args:
        photons: the photons (jagged awkward records or a mapping of flat arrays).
        requirements: the ID, isolation and extra requirement specs
            (:func:`object_requirements` of the object mapping; ``None`` entries pass).
        pt_min: pT threshold [GeV] (None: none).
        eta_max: |η| limit (None: none).
        crack: ``(lo, hi)`` in |η| excluded (None: none).

    Returns:
        The boolean mask, same structure as the photons.
    """
    mask = kinematic_mask(photons, pt_min, eta_max, crack)
    extra = requirements_mask(photons, requirements)
    return mask if extra is True else mask & extra


def run3_jet_id(jets: Any) -> Any:
    """The CMS jet-ID bitmask of AK4 PUPPI jets computed from the jet-ID inputs, as
    NanoAOD's ``Jet_jetId`` was (bit 1: tight, bit 2: tight lepton veto; values 0, 2, 6),
    for the NanoAOD versions that store only the inputs (v15).

    The JME recommendation for Run 3 (13.6 TeV), per |η|:

    - |η| ≤ 2.6: neutral hadron fraction < 0.99, neutral EM fraction < 0.90, more than one
      constituent, charged hadron fraction > 0.01, charged multiplicity > 0;
    - 2.6 < |η| ≤ 2.7: neutral hadron fraction < 0.90, neutral EM fraction < 0.99;
    - 2.7 < |η| ≤ 3.0: neutral hadron fraction < 0.99;
    - |η| > 3.0: neutral EM fraction < 0.40, neutral multiplicity ≥ 2;

    the lepton veto adds, for |η| ≤ 2.7, muon fraction < 0.8 and charged EM fraction < 0.8.

    Args:
        jets: records (awkward or a mapping of numpy arrays) with ``eta``, ``neHEF``,
            ``neEmEF``, ``chHEF``, ``chEmEF``, ``muEF``, ``chMultiplicity`` and
            ``neMultiplicity``.

    Returns:
        The bitmask (int8), same structure as the jets.
    """
    aeta = abs(jets["eta"])
    ne_h, ne_em, ch_h = jets["neHEF"], jets["neEmEF"], jets["chHEF"]
    ch_mult, ne_mult = jets["chMultiplicity"], jets["neMultiplicity"]
    central = aeta <= 2.6
    tight = (
        (central & (ne_h < 0.99) & (ne_em < 0.90) & (ch_mult + ne_mult > 1) & (ch_h > 0.01) & (ch_mult > 0))
        | ((aeta > 2.6) & (aeta <= 2.7) & (ne_h < 0.90) & (ne_em < 0.99))
        | ((aeta > 2.7) & (aeta <= 3.0) & (ne_h < 0.99))
        | ((aeta > 3.0) & (ne_em < 0.40) & (ne_mult >= 2))
    )
    veto = tight & ((aeta > 2.7) | ((jets["muEF"] < 0.8) & (jets["chEmEF"] < 0.8)))
    bits = tight * 2 + veto * 4
    return ak.values_astype(bits, np.int8) if isinstance(bits, ak.Array) else np.asarray(bits, dtype=np.int8)


def jet_selection(
    jets: Any,
    requirements: Iterable[Requirement | None] = (),
    *,
    pt_min: float | None = None,
    eta_max: float | None = None,
) -> Any:
    """Jets with pT > ``pt_min`` [GeV], |η| < ``eta_max`` and the ``requirements`` (the jet
    ID: :func:`object_requirements` of the jet mapping)."""
    mask = kinematic_mask(jets, pt_min, eta_max)
    extra = requirements_mask(jets, requirements)
    return mask if extra is True else mask & extra


def lepton_selection(
    leptons: Any,
    requirements: Iterable[Requirement | None] = (),
    *,
    pt_min: float | None = None,
    eta_max: float | None = None,
    crack: Sequence[float] | None = None,
) -> Any:
    """Electrons or muons: as :func:`photon_selection` (pT [GeV], |η|, optional crack, ID and
    isolation)."""
    return photon_selection(leptons, requirements, pt_min=pt_min, eta_max=eta_max, crack=crack)


# ---------------------------------------------------------------------------------------
# overlap removal
# ---------------------------------------------------------------------------------------
def overlap_free(objects: ak.Array, others: ak.Array, dr_min: float | None) -> ak.Array:
    """Mask of ``objects`` farther than ``dr_min`` in ΔR from every one of ``others``.

    Both are jagged collections of the same events. ``dr_min`` None or ≤ 0 keeps everything.
    """
    keep = ak.ones_like(objects["pt"], dtype=bool)
    if not dr_min or dr_min <= 0:
        return keep
    pairs = ak.cartesian({"a": objects[["eta", "phi"]], "b": others[["eta", "phi"]]},
                         axis=1, nested=True)
    dr = delta_r(pairs.a.eta, pairs.a.phi, pairs.b.eta, pairs.b.phi)
    return ~ak.any(dr < dr_min, axis=2)


def overlap_free_of_points(
    objects: ak.Array,
    points: Iterable[tuple[np.ndarray, np.ndarray]],
    dr_min: float | None,
) -> ak.Array:
    """Mask of ``objects`` farther than ``dr_min`` from each per-event (η, φ) point.

    ``points``: pairs of arrays that broadcast against the objects' fields: for jagged
    objects, flat numpy arrays with one value per event; for flat objects, one value per
    object (the event's point repeated). NaN means "no point" and removes nothing. E.g. the
    two selected photons. Much cheaper than :func:`overlap_free`.
    """
    keep = np.ones_like(objects["pt"], dtype=bool)
    if not dr_min or dr_min <= 0:
        return keep
    for eta, phi in points:
        dr = delta_r(objects["eta"], objects["phi"], eta, phi)
        keep = keep & ~(dr < dr_min)  # NaN (no point) compares False: kept
    return keep


# ---------------------------------------------------------------------------------------
# b-tagging scale-factor event weights
# ---------------------------------------------------------------------------------------
FLAVOUR_CLASSES = ("light", "c", "b")
"""Index order of :func:`flavour_class`."""


def flavour_class(label: Any) -> Any:
    """Truth label → 0 light, 1 c, 2 b (hadron labels 5 b, 4 c; τ (15) counts as c); int8
    for a numpy array (two byte-wide passes: ≈ 0.1 ms for 650 000 jets, against ≈ 4.6 ms
    through int64 products)."""
    if isinstance(label, np.ndarray):
        out = (label == 5).view(np.int8) * np.int8(2)
        out |= ((label == 4) | (label == 15)).view(np.int8)
        return out
    return (label == 5) * 2 + ((label == 4) | (label == 15)) * 1


def tag_bin(discriminant: Any, cuts: Sequence[float]) -> Any:
    """Number of working points passed (``cuts`` ordered loose → tight, D > cut passes);
    int8 for a numpy array."""
    if isinstance(discriminant, np.ndarray):
        bins = np.zeros(discriminant.shape, dtype=np.int8)
        for c in cuts:
            bins += (discriminant > c).view(np.int8)
        return bins
    out = 0
    for c in cuts:
        out = out + (discriminant > c)
    return out


def btag_weight_table(efficiencies: np.ndarray, scale_factors: np.ndarray) -> np.ndarray:
    """Per-jet weight ``W[flavour, bin]`` of the pseudo-continuous SF method.

    ``efficiencies[k, f]``: MC efficiency of flavour ``f`` at working point ``k`` (ordered
    loose → tight, so decreasing in ``k``); ``scale_factors[k, f]``: data/MC at that WP.
    A jet in bin ``j`` (``j`` WPs passed) has MC probability ``ε_{j−1} − ε_j`` (ε₋₁ = 1,
    ε_n = 0) and data probability ``s_{j−1}ε_{j−1} − s_j ε_j``; its weight is the ratio
    (1 where the MC probability vanishes). For one WP this is the usual
    ``SF`` (tagged) and ``(1 − SF·ε)/(1 − ε)`` (untagged).
    """
    eff = np.asarray(efficiencies, dtype=np.float64)
    sf = np.asarray(scale_factors, dtype=np.float64)
    _n_wp, n_fl = eff.shape
    one = np.ones((1, n_fl))
    zero = np.zeros((1, n_fl))
    e_mc = np.concatenate([one, eff, zero])
    e_data = np.concatenate([one, np.clip(eff * sf, 0.0, 1.0), zero])
    p_mc = e_mc[:-1] - e_mc[1:]          # (n_wp + 1, n_fl): bins 0..n_wp
    p_data = e_data[:-1] - e_data[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(p_mc > 1e-12, p_data / p_mc, 1.0)
    return np.clip(w, 0.0, None).T       # (n_fl, n_wp + 1)


def btag_event_weight(flavour: ak.Array, bins: ak.Array, table: np.ndarray) -> np.ndarray:
    """Product over an event's jets of ``table[flavour_class, bin]`` (numpy, one per event).

    ``flavour`` (:func:`flavour_class`) and ``bins`` (:func:`tag_bin`) are jagged (one list
    of jets per event)."""
    counts = ak.to_numpy(ak.num(bins, axis=1))
    f = ak.to_numpy(ak.flatten(flavour))
    b = ak.to_numpy(ak.flatten(bins))
    return btag_event_weight_flat(f, b, np.concatenate([[0], np.cumsum(counts)]), table)


def btag_event_weight_flat(flavour: np.ndarray, bins: np.ndarray, offsets: np.ndarray,
                           table: np.ndarray) -> np.ndarray:
    """:func:`btag_event_weight` on flat per-jet arrays with event ``offsets`` (n + 1): the
    product of each event's jet weights, in jet order (1 for an event without jets), so that
    an event's weight depends on its own jets only."""
    w = table[np.asarray(flavour, dtype=np.intp), np.asarray(bins, dtype=np.intp)]
    offsets = np.asarray(offsets, dtype=np.int64)
    out = np.ones(len(offsets) - 1)
    filled = np.flatnonzero(offsets[1:] > offsets[:-1])
    if filled.size:
        out[filled] = np.multiply.reduceat(w, offsets[filled])
    return out
