"""What the HH → γγbb̄ selection reads: one format's events → the same objects for every format.

Each input format spells the objects its own way (``selection.objects.<format>``: the
collection, the ID and isolation fields, the jet flavour and b-tagging). :func:`read_inputs`
turns a chunk of coffea NanoEvents into :class:`EventInputs`: photons, jets, electrons and
muons as plain awkward records with ``pt`` [GeV], ``eta``, ``phi`` (jets: ``mass`` [GeV],
the b-tagging discriminant and, in simulation, the truth flavour) and the fields their
requirements use, each list ordered by decreasing pT; the generator weight and the event
number. The cuts (:mod:`selections.hh_yybb.cuts`) see only these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from analysis.core.config import SelectionConfig
from analysis.core.config.selection import ObjectsHepline, ObjectsNanoaod
from analysis.core.errors import InputError
from selections import objects as O

__all__ = ["SUPPORTED_FORMATS", "EventInputs", "ObjectMap", "needed_branches", "object_map", "read_inputs"]

SUPPORTED_FORMATS = ("hepline", "nanoaod")
"""Input formats the selection reads (the keys of ``selection.objects``)."""

ObjectMap = ObjectsHepline | ObjectsNanoaod


def object_map(selection: SelectionConfig, fmt: str) -> ObjectMap:
    """The object mapping of input format ``fmt`` (``selection.objects.<fmt>``)."""
    if fmt == "hepline":
        return selection.objects.hepline
    if fmt == "nanoaod":
        return selection.objects.nanoaod
    raise InputError(f"HH -> yybb selection reads {SUPPORTED_FORMATS} files, not {fmt!r}")


def needed_branches(selection: SelectionConfig, fmt: str, btag_field: str, *,
                    tagged_in_memory: bool = False) -> list[str]:
    """Exactly the ``Events`` branches the selection reads from format ``fmt`` (counters
    included), with the jets' b-tagging discriminant ``btag_field``.

    ``tagged_in_memory``: the discriminant is computed from the chunk (trained taggers),
    so it is not read from the file.
    """
    omap = object_map(selection, fmt)
    out = [key for key in (omap.weight, omap.event_number) if key]

    def collection(m: Any, fields: list[str]) -> None:
        names = list(dict.fromkeys(fields + [s.field for s in O.object_requirements(m) if s]))
        out.append(f"n{m.collection}")
        out.extend(f"{m.collection}_{f}" for f in names)

    collection(omap.photon, ["pt", "eta", "phi"])
    jet_fields = ["pt", "eta", "phi", "mass"] + ([] if tagged_in_memory else [btag_field])
    if omap.jet.flavour:
        jet_fields.append(omap.jet.flavour)
    collection(omap.jet, jet_fields)
    collection(omap.electron, ["pt", "eta", "phi"])
    collection(omap.muon, ["pt", "eta", "phi"])
    return list(dict.fromkeys(out))


@dataclass(frozen=True)
class EventInputs:
    """The objects of a chunk in the selection's own terms (pT and masses in GeV).

    Attributes:
        photons, jets, electrons, muons: one list per event, by decreasing pT.
        weight: the generator weight of each event (float64; 1 for collision data).
        event: the event number of each event (uint64).
    """

    photons: ak.Array
    jets: ak.Array
    electrons: ak.Array
    muons: ak.Array
    weight: np.ndarray
    event: np.ndarray

    def __len__(self) -> int:
        return len(self.weight)

    def take(self, events: np.ndarray) -> EventInputs:
        """The inputs of the events ``events`` (a mask or increasing indices)."""
        return EventInputs(self.photons[events], self.jets[events], self.electrons[events], self.muons[events],
                           self.weight[events], self.event[events])


def _by_pt(objects: ak.Array) -> ak.Array:
    """Objects ordered by decreasing pT within each event (ties keep their order)."""
    return objects[ak.argsort(-objects["pt"], axis=1, stable=True)]


def _collection(events: Any, mapping: Any, fields: Sequence[str]) -> ak.Array:
    coll = events[mapping.collection]
    names = list(dict.fromkeys([*fields, *(s.field for s in O.object_requirements(mapping) if s)]))
    return _by_pt(ak.zip({n: coll[n] for n in names}, depth_limit=2))


def read_inputs(events: Any, omap: ObjectMap, btag_field: str, *, btag_values: ak.Array | None = None) -> EventInputs:
    """The selection's objects of a chunk of NanoEvents (format of ``omap``).

    Args:
        events: the chunk.
        omap: the format's object mapping (:func:`object_map`).
        btag_field: the jets' b-tagging discriminant field (e.g. ``btag_dl1``).
        btag_values: the discriminant of every jet when computed in memory (one list per
            event, in the file's jet order) instead of read.

    Returns:
        The :class:`EventInputs`.
    """
    n = len(events)
    weight = (np.asarray(ak.to_numpy(events[omap.weight]), dtype=np.float64) if omap.weight
              else np.ones(n))
    event = (np.asarray(ak.to_numpy(events[omap.event_number]), dtype=np.uint64) if omap.event_number
             else np.arange(n, dtype=np.uint64))
    jm = omap.jet
    jets_in = events[jm.collection]
    fields = {f: jets_in[f] for f in ("pt", "eta", "phi", "mass")}
    fields["pt"] = ak.values_astype(fields["pt"], np.float64)
    fields["mass"] = ak.values_astype(fields["mass"], np.float64)
    fields[btag_field] = jets_in[btag_field] if btag_values is None else btag_values
    if jm.flavour:
        fields[jm.flavour] = jets_in[jm.flavour]
    for spec in O.object_requirements(jm):
        if spec is not None:
            fields[spec.field] = jets_in[spec.field]
    jets = _by_pt(ak.zip(fields, depth_limit=2))
    return EventInputs(
        photons=_collection(events, omap.photon, ["pt", "eta", "phi"]),
        jets=jets,
        electrons=_collection(events, omap.electron, ["pt", "eta", "phi"]),
        muons=_collection(events, omap.muon, ["pt", "eta", "phi"]),
        weight=weight,
        event=event,
    )
