"""What the HH → γγbb̄ selection reads: one format's events → the same objects for every format.

Each input format spells the objects its own way (``selection.objects.<format>``: the
collection, the ID and isolation fields, the jet flavour and b-tagging). :func:`read_inputs`
turns a chunk of coffea NanoEvents into :class:`EventInputs`: photons, jets, electrons and
muons as plain awkward records with ``pt`` [GeV], ``eta``, ``phi`` (jets: ``mass`` [GeV],
the b-tagging discriminant and, in simulation, the truth flavour) and the fields their
requirements use, each list ordered by decreasing pT; the generator weight and the event
number. The cuts (:mod:`selections.hh_yybb.cuts`) see only these.

What a set of files is (:class:`InputKind`: the format, the CMS NanoAOD era, collision data or
simulation) decides the mapping (:func:`object_map`): a NanoAOD era spells the photon ID and
b-tagging its own way (``selection.objects.nanoaod.eras``) and v15 stores the jet ID's inputs
only (the ID is computed: :func:`selections.objects.run3_jet_id`); collision data have no
generator weight and no truth flavour.

ATLAS PHYSLITE (coffea's ``PHYSLITESchema``: ``Photons``, ``Jets``, ``Electrons``, ``Muons``,
``EventInfo``) stores energies in MeV: :func:`read_inputs` converts pT, masses and the fields
of relative requirements (isolation energies) to GeV as it reads them, takes the nominal
``mcEventWeights`` entry as the weight, and computes the jets' b-tagging discriminant
``ln(p_b / (f_c p_c + (1 - f_c) p_u))`` from the tagger's probabilities in the b-tagging
container (``selection.objects.physlite.jet.btag``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from analysis.core.checks import check_finite, check_finite_lists
from analysis.core.config import SelectionConfig
from analysis.core.config.selection import AtlasBTagConfig, ObjectsHepline, ObjectsNanoaod, ObjectsPhyslite
from analysis.core.errors import ConfigError, InputError, InputFileError
from analysis.io.formats import MEV, NANOAOD_ERAS, FileInfo, nanoaod_era, require_physlite_btagging
from analysis.io.views import ftag_discriminant, physlite_btagging
from selections import objects as O

__all__ = ["FINITE_FIELDS", "NO_BTAG_LINK", "SUPPORTED_FORMATS", "EventInputs", "InputKind", "ObjectMap",
           "check_finite_objects", "input_kind", "needed_branches", "object_map", "physlite_branch", "read_inputs"]

SUPPORTED_FORMATS = ("hepline", "nanoaod", "physlite")
"""Input formats the selection reads (the keys of ``selection.objects``)."""

ObjectMap = ObjectsHepline | ObjectsNanoaod | ObjectsPhyslite

NO_BTAG_LINK = -99.0
"""The b-tagging discriminant of a PHYSLITE jet whose link to the b-tagging container is
invalid: below every working point (untagged)."""


#: the branches the jet ID is computed from where an era stores no ``Jet_jetId``
JET_ID_INPUTS = ("neHEF", "neEmEF", "chHEF", "chEmEF", "muEF", "chMultiplicity", "neMultiplicity")


@dataclass(frozen=True)
class InputKind:
    """What the selection reads.

    Attributes:
        format: ``hepline``, ``nanoaod`` or ``physlite``.
        era: the NanoAOD era label (``v5``, ``v9``, ``v12``, ``v15``; NanoAOD only).
        is_data: collision data (no generator weight, no truth flavour).
    """

    format: str
    era: str | None = None
    is_data: bool = False

    @classmethod
    def of(cls, kind: str | InputKind) -> InputKind:
        """``kind``, or the simulation of format ``kind``."""
        return kind if isinstance(kind, InputKind) else cls(format=kind)

    @property
    def computes_jet_id(self) -> bool:
        """The era stores the jet ID's inputs only: ``jetId`` is computed from them."""
        return self.format == "nanoaod" and self.era is not None and NANOAOD_ERAS[self.era].jet_id is None

    def describe(self) -> str:
        """``"NanoAOD v15 simulation"``, ``"hepline simulation"``, ..."""
        what = "collision data" if self.is_data else "simulation"
        if self.format == "nanoaod":
            return f"NanoAOD {self.era} {what}"
        return f"{'ATLAS PHYSLITE' if self.format == 'physlite' else self.format} {what}"


def input_kind(selection: SelectionConfig, infos: Sequence[FileInfo]) -> InputKind:
    """The :class:`InputKind` of a run's files (their :class:`~analysis.io.formats.FileInfo`,
    e.g. from :func:`analysis.io.ingest.inspect_file`): one format, one NanoAOD era
    (``selection.objects.nanoaod.version``, or detected) and data or simulation for all.

    Raises:
        InputError: no files, or files of different formats, eras, or data and simulation
            (naming two of them).
        InputFileError: a NanoAOD file whose era is not recognised (naming the config key); a
            PHYSLITE file without the b-tagging container or the configured tagger in it.
        ConfigError: an unknown ``selection.objects.nanoaod.version``.
    """
    if not infos:
        raise InputError("HH -> yybb selection: no input files")
    kinds: dict[InputKind, str] = {}
    for info in infos:
        era = None
        if info.format == "nanoaod":
            version = selection.objects.nanoaod.version
            era = nanoaod_era(info, None if version == "auto" else version).version
        elif info.format == "physlite":
            btag = selection.objects.physlite.jet.btag
            taggers = require_physlite_btagging(info, btag.container)
            if btag.tagger not in taggers:
                raise InputFileError(info.path, f"the b-tagging container {btag.container} has no {btag.tagger}_pb, "
                                                f"_pc, _pu (it has: {', '.join(taggers)}); set "
                                                "selection.objects.physlite.jet.btag.tagger (with its working "
                                                "points and fraction_c)")
        kinds.setdefault(InputKind(info.format, era, info.is_data), info.path)
    if len(kinds) > 1:
        (k1, p1), (k2, p2) = list(kinds.items())[:2]
        raise InputError(f"the files of one selection run must be of one kind: {os.path.basename(p1)} is "
                         f"{k1.describe()}, {os.path.basename(p2)} is {k2.describe()}; select them separately")
    return next(iter(kinds))


def object_map(selection: SelectionConfig, kind: str | InputKind) -> ObjectMap:
    """The object mapping of ``kind`` (a format, or an :class:`InputKind`): ``selection.objects.<format>``
    with, for NanoAOD, the era's photon ID and b-tagging where the common mapping leaves them
    null (``selection.objects.nanoaod.eras.<era>``), and for collision data no weight and no
    truth flavour.

    Raises:
        InputError: a format the selection does not read.
        ConfigError: NanoAOD without an era (``version: auto`` and no files to detect it from).
    """
    kind = InputKind.of(kind)
    omap: ObjectMap
    if kind.format == "hepline":
        omap = selection.objects.hepline
    elif kind.format == "nanoaod":
        nano = selection.objects.nanoaod
        era_label = kind.era or (None if nano.version == "auto" else nano.version)
        if era_label is None:
            raise ConfigError("selection.objects.nanoaod.version: the NanoAOD era is needed here (auto detects "
                              "it from the files: give files, or set the version)")
        if era_label not in NANOAOD_ERAS:
            raise ConfigError(f"selection.objects.nanoaod.version: unknown NanoAOD era {era_label!r}")
        era = getattr(nano.eras, era_label)
        photon = nano.photon if nano.photon.id is not None else nano.photon.replace(id=era.photon_id)
        btag = nano.jet.btag.replace(variable=nano.jet.btag.variable or era.btag.variable,
                                     working_points=(nano.jet.btag.working_points
                                                     if nano.jet.btag.working_points is not None
                                                     else era.btag.working_points))
        omap = nano.replace(version=era_label, photon=photon, jet=nano.jet.replace(btag=btag))
    elif kind.format == "physlite":
        omap = selection.objects.physlite
    else:
        raise InputError(f"HH -> yybb selection reads {SUPPORTED_FORMATS} files, not {kind.format!r}")
    if kind.is_data:
        omap = omap.replace(weight=None, jet=omap.jet.replace(flavour=None))
    return omap


def needed_branches(selection: SelectionConfig, kind: str | InputKind, btag_field: str, *,
                    tagged_in_memory: bool = False) -> list[str]:
    """Exactly the ``Events`` branches the selection reads from files of ``kind`` (counters
    included), with the jets' b-tagging discriminant ``btag_field``; where the era computes
    the jet ID, its inputs instead of ``Jet_jetId``.

    ``tagged_in_memory``: the discriminant is computed from the chunk (trained taggers),
    so it is not read from the file.
    """
    kind = InputKind.of(kind)
    omap = object_map(selection, kind)
    if isinstance(omap, ObjectsPhyslite):
        return _physlite_branches(omap)
    out = [key for key in (omap.weight, omap.event_number) if key]

    def collection(m: Any, fields: list[str]) -> None:
        names = list(dict.fromkeys(fields + [s.field for s in O.object_requirements(m) if s]))
        if m is omap.jet and kind.computes_jet_id and "jetId" in names:
            names = [n for n in names if n != "jetId"] + list(JET_ID_INPUTS)
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


def physlite_branch(name: str, field: str) -> str:
    """The TTree branch of PHYSLITE NanoEvents field ``name.field``: ``Jets.pt`` →
    ``AnalysisJetsAuxDyn.pt``, ``EventInfo.eventNumber`` → ``EventInfoAuxDyn.eventNumber``,
    ``BTagging_AntiKt4EMPFlow.DL1dv01_pb`` → ``BTagging_AntiKt4EMPFlowAuxDyn.DL1dv01_pb``."""
    container = f"Analysis{name}" if name in ("Photons", "Jets", "Electrons", "Muons") else name
    return f"{container}AuxDyn.{field}"


def _physlite_branches(omap: ObjectsPhyslite) -> list[str]:
    """The PHYSLITE branches the selection reads (the files must have them; coffea reads them
    lazily)."""
    out = [physlite_branch(*key.split(".", 1)) for key in (omap.weight, omap.event_number) if key]
    for m, fields in ((omap.photon, ["pt", "eta", "phi"]), (omap.electron, ["pt", "eta", "phi"]),
                      (omap.muon, ["pt", "eta", "phi"]), (omap.jet, ["pt", "eta", "phi", "m", "btaggingLink"])):
        names = [*fields, *(s.field for s in O.object_requirements(m) if s)]
        if m is omap.jet and omap.jet.flavour:
            names.append(omap.jet.flavour)
        out.extend(physlite_branch(m.collection, f) for f in dict.fromkeys(names))
    btag = omap.jet.btag
    out.extend(physlite_branch(btag.container, f"{btag.tagger}_{p}") for p in ("pb", "pc", "pu"))
    return list(dict.fromkeys(out))


FINITE_FIELDS = ("pt", "eta", "phi")
"""The object fields that must be finite (jets also their mass and b-tagging discriminant)."""


def check_finite_objects(source: str, collection: str, fields: Mapping[str, np.ndarray], event: np.ndarray) -> None:
    """hepline's non-finite policy (:mod:`analysis.core.checks`) for the selection's objects:
    NaN or inf in a field a cut reads is an error naming the file, the branch
    (``<collection>_<field>``) and the first event (its event number), never a silent drop.

    Args:
        source: the file (errors name it).
        collection: the collection's name in the file (``Photon``, ``Jets``, ...).
        fields: flat arrays over the collection's objects, by field.
        event: the event number of each object.

    Raises:
        NonFiniteInputError: a field holds NaN or inf.
    """
    for name, values in fields.items():
        check_finite(values, f"{collection}_{name}", source=source, entry=event, entry_name="event")


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

    def check_finite(self, source: str, btag_field: str, omap: ObjectMap, *,
                     collections: Sequence[str] = ("photons", "jets", "electrons", "muons")) -> None:
        """:func:`check_finite_objects` on ``collections`` (jets: also mass and ``btag_field``)
        and the event weights."""
        check_finite(self.weight, omap.weight or "weight", source=source, entry=self.event, entry_name="event")
        for name in collections:
            coll, mapping = getattr(self, name), getattr(omap, name[:-1])
            for f in [*FINITE_FIELDS, *(("mass", btag_field) if mapping is omap.jet else ())]:
                check_finite_lists(coll[f], f"{mapping.collection}_{f}", source=source, entry=self.event,
                                   entry_name="event")

    def take(self, events: np.ndarray) -> EventInputs:
        """The inputs of the events ``events`` (a mask or increasing indices)."""
        return EventInputs(self.photons[events], self.jets[events], self.electrons[events], self.muons[events],
                           self.weight[events], self.event[events])


def _by_pt(objects: ak.Array) -> ak.Array:
    """Objects ordered by decreasing pT within each event (ties keep their order)."""
    return objects[ak.argsort(-objects["pt"], axis=1, stable=True)]


def _collection(events: Any, mapping: Any, fields: Sequence[str], scale: float = 1.0) -> ak.Array:
    """One collection's ``fields`` and requirement fields, by decreasing pT; with ``scale``
    (MeV → GeV) applied to pT and to the fields of relative requirements (energies)."""
    coll = events[mapping.collection]
    specs = [s for s in O.object_requirements(mapping) if s]
    names = list(dict.fromkeys([*fields, *(s.field for s in specs)]))
    energies = {"pt"} | {s.field for s in specs if s.relative}
    return _by_pt(ak.zip({n: coll[n] * scale if scale != 1.0 and n in energies else coll[n] for n in names},
                         depth_limit=2))


def _event_value(events: Any, key: str) -> Any:
    """``events[key]``, or for ``<record>.<field>`` (PHYSLITE ``EventInfo.mcEventWeights``)
    that field of that record; a list per event gives its first entry (the nominal weight)."""
    value = events
    for part in key.split("."):
        value = value[part]
    if value.ndim > 1:
        value = ak.firsts(value, axis=1)
    return value


def _physlite_btag(events: Any, jets: Any, btag: AtlasBTagConfig) -> ak.Array:
    """The discriminant ``ln(p_b / (f_c p_c + (1 - f_c) p_u))`` of each PHYSLITE jet, in the
    file's jet order (:data:`NO_BTAG_LINK` for a jet without a valid b-tagging link)."""
    record = physlite_btagging(events, jets, btag.container)
    d = ftag_discriminant(record[f"{btag.tagger}_pb"], record[f"{btag.tagger}_pc"],
                          record[f"{btag.tagger}_pu"], btag.fraction_c)
    return ak.fill_none(ak.values_astype(d, np.float64), NO_BTAG_LINK)


def read_inputs(events: Any, omap: ObjectMap, btag_field: str, *, btag_values: ak.Array | None = None,
                compute_jet_id: bool = False) -> EventInputs:
    """The selection's objects of a chunk of NanoEvents (format of ``omap``).

    Args:
        events: the chunk.
        omap: the files' object mapping (:func:`object_map`).
        btag_field: the jets' b-tagging discriminant field (e.g. ``btag_dl1``).
        btag_values: the discriminant of every jet when computed in memory (one list per
            event, in the file's jet order) instead of read. PHYSLITE: computed from the
            tagger's probabilities when not given.
        compute_jet_id: the jets' ``jetId`` computed from its inputs
            (:func:`selections.objects.run3_jet_id`; :attr:`InputKind.computes_jet_id`).

    Returns:
        The :class:`EventInputs`.
    """
    n = len(events)
    weight = (np.asarray(ak.to_numpy(_event_value(events, omap.weight)), dtype=np.float64) if omap.weight
              else np.ones(n))
    event = (np.asarray(ak.to_numpy(_event_value(events, omap.event_number)), dtype=np.uint64)
             if omap.event_number else np.arange(n, dtype=np.uint64))
    physlite = isinstance(omap, ObjectsPhyslite)
    scale = MEV if physlite else 1.0
    jm = omap.jet
    jets_in = events[jm.collection]
    fields = {f: jets_in[f] for f in ("pt", "eta", "phi")}
    fields["mass"] = jets_in["m" if physlite else "mass"]
    fields["pt"] = ak.values_astype(fields["pt"], np.float64) * scale
    fields["mass"] = ak.values_astype(fields["mass"], np.float64) * scale
    if isinstance(omap, ObjectsPhyslite) and btag_values is None:
        btag_values = _physlite_btag(events, jets_in, omap.jet.btag)
    fields[btag_field] = jets_in[btag_field] if btag_values is None else btag_values
    if jm.flavour:
        fields[jm.flavour] = jets_in[jm.flavour]
    for spec in O.object_requirements(jm):
        if spec is None:
            continue
        if spec.field == "jetId" and compute_jet_id:
            fields["jetId"] = O.run3_jet_id({"eta": jets_in["eta"], **{f: jets_in[f] for f in JET_ID_INPUTS}})
        else:
            fields[spec.field] = jets_in[spec.field]
    jets = _by_pt(ak.zip(fields, depth_limit=2))
    return EventInputs(
        photons=_collection(events, omap.photon, ["pt", "eta", "phi"], scale),
        jets=jets,
        electrons=_collection(events, omap.electron, ["pt", "eta", "phi"], scale),
        muons=_collection(events, omap.muon, ["pt", "eta", "phi"], scale),
        weight=weight,
        event=event,
    )
