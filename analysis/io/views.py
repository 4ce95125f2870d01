"""One view of the physics objects of every input format (GeV), and PHYSLITE b-tagging.

Each format names its objects its own way: hepline and NanoAOD ``Jet``/``Photon``/
``Electron``/``Muon`` in GeV, PHYSLITE ``Jets``/``Photons``/``Electrons``/``Muons`` in MeV,
Delphes ``Jet``/``Photon``/... with ``PT``. :func:`object_view` turns a chunk of NanoEvents
into an :class:`ObjectView`: the four collections as 4-vector records with ``pt``,
``eta``, ``phi``, ``mass`` in GeV (4-vector sums work: ``(a + b).mass``), the jets'
truth ``flavour`` where the file has one (0 light, 4 c, 5 b, 15 τ), and the event
weight. The validation stage fills its control histograms from it.

PHYSLITE jets reach their b-tagging probabilities through an ElementLink
(``btaggingLink``) into the ``BTagging_AntiKt4EMPFlow`` container;
:func:`physlite_btagging` follows it and :func:`ftag_discriminant` combines the
probabilities into the usual log-likelihood-ratio discriminant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np
from coffea.nanoevents.methods import vector

from analysis.io.formats import MEV, PHYSLITE_BTAGGING

__all__ = ["FLAVOUR_FIELDS", "ObjectView", "ftag_discriminant", "object_view", "physlite_btagging"]

FLAVOUR_FIELDS = {
    "hepline": "hadronConeExclTruthLabelID",
    "nanoaod": "hadronFlavour",
    "physlite": "HadronConeExclTruthLabelID",
    "delphes": "Flavor",
}
"""The jets' truth-flavour field of each format (simulation only; Delphes' is the parton
flavour of its ``Flavor`` algorithm, mapped to 0/4/5/15)."""

_COLLECTIONS = {
    "hepline": ("Jet", "Photon", "Electron", "Muon"),
    "nanoaod": ("Jet", "Photon", "Electron", "Muon"),
    "delphes": ("Jet", "Photon", "Electron", "Muon"),
    "physlite": ("Jets", "Photons", "Electrons", "Muons"),
}


@dataclass(frozen=True)
class ObjectView:
    """The objects of a chunk in common terms (GeV).

    Attributes:
        format: the input format.
        jets, photons, electrons, muons: one list per event of 4-vector records with
            ``pt``, ``eta``, ``phi``, ``mass`` [GeV], in the file's order; jets also carry
            ``flavour`` when :attr:`has_flavour`. A collection the file lacks (a skim
            without photons) is empty in every event.
        weight: the event weight (float64): the generator weight (PHYSLITE: the nominal
            ``mcEventWeights``), 1 for collision data.
        has_flavour: the jets have a truth flavour (simulation).
        has_photons: the file has a photon collection.
    """

    format: str
    jets: ak.Array
    photons: ak.Array
    electrons: ak.Array
    muons: ak.Array
    weight: np.ndarray
    has_flavour: bool
    has_photons: bool


def _vectors(coll: Any, scale: float, extra: dict[str, Any] | None = None) -> ak.Array:
    mass = coll["m"] if "m" in coll.fields else coll.mass
    fields = {"pt": coll.pt * scale, "eta": coll.eta, "phi": coll.phi, "mass": mass * scale}
    fields.update(extra or {})
    return ak.zip(fields, with_name="PtEtaPhiMLorentzVector", behavior=vector.behavior)


def _empty(n: int) -> ak.Array:
    empty = ak.unflatten(np.zeros(0, dtype=np.float32), np.zeros(n, dtype=np.int64))
    return ak.zip({"pt": empty, "eta": empty, "phi": empty, "mass": empty},
                  with_name="PtEtaPhiMLorentzVector", behavior=vector.behavior)


def _flavour(fmt: str, jets: Any) -> ak.Array | None:
    name = FLAVOUR_FIELDS[fmt]
    if name not in jets.fields:
        return None
    flav = ak.values_astype(jets[name], np.int64)
    if fmt == "delphes":  # parton flavour: b, c, tau kept, anything else light
        flav = np.abs(flav)
        flav = ak.where((flav == 5) | (flav == 4) | (flav == 15), flav, 0)
    return flav


def _weight(fmt: str, events: Any) -> np.ndarray:
    n = len(events)
    fields = events.fields
    if fmt in ("hepline", "nanoaod") and "genWeight" in fields:
        return np.asarray(ak.to_numpy(events.genWeight), dtype=np.float64)
    if fmt == "physlite" and "mcEventWeights" in events.EventInfo.fields:
        return np.asarray(ak.to_numpy(ak.fill_none(ak.firsts(events.EventInfo.mcEventWeights), 1.0)),
                          dtype=np.float64)
    if fmt == "delphes" and "Event" in fields and "Weight" in events.Event.fields:
        w = events.Event.Weight
        if w.ndim > 1:
            w = ak.fill_none(ak.firsts(w), 1.0)
        return np.asarray(ak.to_numpy(w), dtype=np.float64)
    return np.ones(n, dtype=np.float64)


def object_view(events: Any, fmt: str) -> ObjectView:
    """The :class:`ObjectView` of a chunk of NanoEvents of format ``fmt``.

    Args:
        events: NanoEvents from :func:`analysis.io.ingest.open_events` or a processor chunk.
        fmt: ``"hepline"``, ``"nanoaod"``, ``"physlite"`` or ``"delphes"``.

    Returns:
        The objects in GeV (PHYSLITE's MeV converted with :data:`~analysis.io.formats.MEV`).
    """
    if fmt not in _COLLECTIONS:
        raise ValueError(f"unknown input format {fmt!r}; expected one of {sorted(_COLLECTIONS)}")
    jet_name, photon_name, electron_name, muon_name = _COLLECTIONS[fmt]
    scale = MEV if fmt == "physlite" else 1.0
    fields = events.fields
    n = len(events)
    jets_in = events[jet_name]
    flavour = _flavour(fmt, jets_in)
    jets = _vectors(jets_in, scale, None if flavour is None else {"flavour": flavour})

    def coll(name: str) -> ak.Array:
        return _vectors(events[name], scale) if name in fields else _empty(n)

    return ObjectView(
        format=fmt, jets=jets, photons=coll(photon_name), electrons=coll(electron_name),
        muons=coll(muon_name), weight=_weight(fmt, events), has_flavour=flavour is not None,
        has_photons=photon_name in fields,
    )


def physlite_btagging(events: Any, jets: Any | None = None, container: str = PHYSLITE_BTAGGING) -> ak.Array:
    """The b-tagging record of each PHYSLITE jet (``<tagger>_pb``, ``_pc``, ``_pu``, ...).

    Follows the jets' ``btaggingLink`` (an ElementLink: ``m_persIndex`` is the position in
    ``container`` within the same event; ``m_persKey`` 0 marks an invalid link). A jet
    whose link is invalid or points past the container gets None.

    Args:
        events: PHYSLITE NanoEvents.
        jets: the jets (default ``events.Jets``; a selection of them keeps one list per event).
        container: the b-tagging collection (default ``BTagging_AntiKt4EMPFlow``).

    Returns:
        One list per event, one record (or None) per jet, in the order of ``jets``.
    """
    jets = events.Jets if jets is None else jets
    btag = events[container]
    link = jets.btaggingLink
    index = ak.values_astype(link.m_persIndex, np.int64)
    valid = (link.m_persKey != 0) & (index < ak.num(btag, axis=1))
    picked = btag[ak.where(valid, index, 0)]
    return ak.mask(picked, valid)


def ftag_discriminant(p_b: Any, p_c: Any, p_u: Any, f_c: float) -> Any:
    """The ATLAS flavour-tagging discriminant ``ln(p_b / (f_c p_c + (1 - f_c) p_u))``.

    ``f_c`` is the tagger's charm fraction of its calibrated working points (e.g. 0.018 for
    DL1dv01); probabilities as stored (any array type).
    """
    return np.log(p_b / (f_c * p_c + (1.0 - f_c) * p_u))
