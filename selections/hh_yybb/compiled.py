"""The compiled engine of the HH → γγbb̄ selection: the same histograms and cutflows as the
readable reference (:mod:`selections.hh_yybb.reference`), faster.

The reference defines the selection (:mod:`selections.hh_yybb.cuts`); this engine gives
the same results by other means, for the workflow's throughput:

- the objects of the events with two photon candidates are read once per chunk into flat
  numpy arrays (:class:`FlatCollection`), straight from the arrays coffea's factory read in
  bulk (``preload``: :class:`_ColumnSource`);
- the per-event walk over the objects (diphoton, overlap removal, counts, b-jet
  candidates, masses) is one numba loop (:mod:`selections.hh_yybb.kernel`; ``engine:
  numpy`` runs its vectorised numpy twin), and the five shifted passes are one compiled call
  per chunk (:mod:`selections.hh_yybb.shifted`);
- the histograms are filled from region masks in one scan (:mod:`selections.hh_yybb.fill`)
  and the cuts packed with :mod:`selections.hh_yybb.packed`.

Its logic is written again in those kernels, so it is only used when it was verified
against the reference as it is now: :data:`VERIFIED_REFERENCE` is the fingerprint of the
reference's definition (the source of ``cuts.py``, ``inputs.py``, ``btag.py``,
``smearing.py``, ``reference.py`` and ``selections/objects.py``, :func:`reference_fingerprint`) against which ``tests/selections/hh_yybb/test_engines.py``
found both engines equal on random near-threshold events and on samples of every kind. A
change to those files makes :func:`compiled_engine_usable` false: ``engine: auto`` then
runs the reference (with a warning) and ``engine: numba``/``numpy`` stop with an error, until
the kernels are updated and the fingerprint pinned again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np
from coffea import processor
from coffea.analysis_tools import Weights

from analysis.core.checks import check_finite
from analysis.core.config import SelectionConfig
from analysis.core.config.selection import SelectionHhYybb
from analysis.io.ingest import InputFileError
from analysis.stats import histograms as H
from selections import objects as O
from selections.hh_yybb import fill as HF
from selections.hh_yybb import kernel as K
from selections.hh_yybb import shifted as KS
from selections.hh_yybb.btag import (
    BTagSpec,
    BTagTables,
    InMemoryTagger,
    distinct_count,
    truth_tag_rows,
)
from selections.hh_yybb.cuts import (
    KINEMATIC,
    MSTAR,
    NONRES_REGIONS,
    OBSERVABLES,
    REGIONS,
    RES_REGIONS,
    SEQUENTIAL_STEPS,
    TAGS,
)
from selections.hh_yybb.inputs import (
    FINITE_FIELDS,
    InputKind,
    ObjectMap,
    check_finite_objects,
    needed_branches,
    object_map,
)
from selections.hh_yybb.packed import PackedSelection, packed_dtype
from selections.hh_yybb.smearing import resolution_factors_numpy

if TYPE_CHECKING:
    from taggers.models import TaggerModels

log = logging.getLogger(__name__)

__all__ = [
    "COMPILED_FORMATS",
    "VERIFIED_REFERENCE",
    "CompiledProcessor",
    "FlatCollection",
    "compiled_engine_usable",
    "compiled_engine_verified",
    "preloaded_arrays",
    "reference_fingerprint",
]

REGION_NAMES = tuple(REGIONS)
assert len(REGION_NAMES) == KS.N_REGION_BITS  # the region bits of selections.hh_yybb.shifted, in this order

#: the input formats the compiled engine reads
COMPILED_FORMATS = ("hepline", "nanoaod")
#: :func:`reference_fingerprint` of the reference the compiled engine was last verified against
VERIFIED_REFERENCE = "ceab459e549a5d28"
#: the reference's definition, relative to ``selections/``: the cuts, what is read, the
#: b-tagging, the processor, and the object functions they use
_REFERENCE_FILES = ("hh_yybb/cuts.py", "hh_yybb/inputs.py", "hh_yybb/btag.py", "hh_yybb/smearing.py",
                    "hh_yybb/reference.py", "objects.py")


def reference_fingerprint() -> str:
    """SHA-256 (16 hex digits) of the reference's definition: the source of
    ``selections/hh_yybb/{cuts,inputs,btag,smearing,reference}.py`` and ``selections/objects.py``,
    line endings normalised."""
    h = hashlib.sha256()
    here = Path(__file__).parent.parent
    for name in _REFERENCE_FILES:
        h.update(name.encode())
        h.update((here / name).read_text().replace("\r\n", "\n").encode())
    return h.hexdigest()[:16]


def compiled_engine_verified() -> bool:
    """The compiled engine was verified against the reference as it is now."""
    return reference_fingerprint() == VERIFIED_REFERENCE


def compiled_engine_usable(kind: str | InputKind) -> tuple[bool, str]:
    """(usable, why not): the compiled engine reads the input ``kind`` (simulation in
    :data:`COMPILED_FORMATS`, NanoAOD eras that store the jet ID) and was verified against the
    reference as it is now (:data:`VERIFIED_REFERENCE`)."""
    kind = InputKind.of(kind)
    if kind.format not in COMPILED_FORMATS:
        return False, f"the compiled engine reads {', '.join(COMPILED_FORMATS)} files, not {kind.format}"
    if kind.is_data:
        return False, "the compiled engine selects simulation, not collision data"
    if kind.computes_jet_id:
        return False, f"the compiled engine reads a stored jet ID, which {kind.describe()} does not have"
    if not compiled_engine_verified():
        current = reference_fingerprint()
        return False, (f"the reference selection changed (fingerprint {current}, the compiled engine was verified "
                       f"against {VERIFIED_REFERENCE}); run tests/selections/hh_yybb/test_engines.py, update "
                       "the kernels if it fails, then pin selections.hh_yybb.compiled.VERIFIED_REFERENCE")
    return True, ""


def _np(x: Any) -> np.ndarray:
    return ak.to_numpy(x)


class FlatCollection(dict):
    """One collection of a chunk as flat numpy arrays: ``{field: array over all objects}``
    plus ``offsets`` (n + 1 event boundaries from 0), ``counts`` (per event) and ``evt``
    (event index per object); ``counts`` and ``evt`` are built on first use.

    Built from ``counts`` or from ``offsets`` (given both, they must agree). The object
    functions of :mod:`selections.objects` take it like an awkward record array.
    """

    def __init__(self, counts: np.ndarray | None, fields: Mapping[str, np.ndarray],
                 offsets: np.ndarray | None = None):
        super().__init__(fields)
        if offsets is None:
            if counts is None:
                raise ValueError("FlatCollection needs counts or offsets")
            counts = np.asarray(counts, dtype=np.int64)
            offsets = np.empty(len(counts) + 1, dtype=np.int64)
            offsets[0] = 0
            np.cumsum(counts, out=offsets[1:])
        self.offsets = offsets
        self._counts = None if counts is None else np.asarray(counts, dtype=np.int64)
        self._shared: dict[str, np.ndarray] = {}  # with the with_field copies (same events)

    @property
    def counts(self) -> np.ndarray:
        """Objects per event."""
        if self._counts is None:
            self._counts = np.diff(self.offsets)
        return self._counts

    @property
    def evt(self) -> np.ndarray:
        """Event index of every object (built on first use)."""
        if "evt" not in self._shared:
            self._shared["evt"] = np.repeat(np.arange(self.n_events), self.counts)
        return self._shared["evt"]

    def subset(self, events: np.ndarray, compiled: bool = False) -> FlatCollection:
        """The objects of the events where the boolean ``events`` is true, or of the events
        listed (increasing) in the integer ``events`` (one index gather per field;
        ``compiled``: the index and the new offsets from one compiled pass,
        :func:`selections.hh_yybb.kernel.objects_and_offsets`)."""
        events = np.asarray(events)
        if events.dtype == np.bool_:
            events = np.flatnonzero(events)
        if compiled:
            idx, offsets = K.objects_and_offsets(self.offsets, events)
            return FlatCollection(None, {k: v.take(idx) for k, v in self.items()}, offsets)
        mask = np.zeros(self.n_events, dtype=bool)
        mask[events] = True
        idx = np.flatnonzero(np.repeat(mask, self.counts))
        return FlatCollection(self.counts.take(events), {k: v.take(idx) for k, v in self.items()})

    @property
    def n_events(self) -> int:
        return len(self.offsets) - 1

    def permuted(self, order: np.ndarray) -> FlatCollection:
        """The same collection with objects reordered by ``order`` (within events)."""
        return FlatCollection(self._counts, {k: v[order] for k, v in self.items()}, self.offsets)

    def with_field(self, name: str, values: np.ndarray) -> FlatCollection:
        out = FlatCollection.__new__(FlatCollection)
        dict.__init__(out, self)
        out[name] = values
        out._counts, out.offsets, out._shared = self._counts, self.offsets, self._shared
        return out

    def count(self, mask: np.ndarray) -> np.ndarray:
        """Selected objects per event."""
        return K.count_per_event(self.offsets, mask)

    def is_sorted(self, field: str = "pt") -> bool:
        """True if ``field`` decreases within every event."""
        return K.sorted_within(self.offsets, self[field])

    def sorted_by(self, field: str = "pt") -> FlatCollection:
        """Objects ordered by decreasing ``field`` within events (no copy if already)."""
        if self.is_sorted(field):
            return self
        return self.permuted(np.lexsort((-self[field], self.evt)))


def _flat_layout(arr: Any) -> tuple[np.ndarray, np.ndarray]:
    """(counts, flat values) of a jagged awkward array of numbers."""
    layout = arr.layout if isinstance(arr, ak.Array) else arr
    if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, ak.contents.NumpyArray):
        offsets = np.asarray(layout.offsets.data, dtype=np.int64)
        data = np.asarray(layout.content.data)[offsets[0]:offsets[-1]]
        return np.diff(offsets), data
    return _np(ak.num(arr, axis=1)), _np(ak.flatten(arr, axis=1))


def _flat(coll: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(counts, flat values) of one field of a NanoEvents collection."""
    return _flat_layout(coll[name])


def preloaded_arrays(events: Any) -> Mapping[str, Any] | None:
    """The branches coffea's factory read in bulk for this chunk (``preload``), as uproot
    returned them (``{branch: awkward array}``), or None where the events do not come from a
    preloading factory (lazy NanoEvents, a coffea whose factory keeps them elsewhere).

    Taken from the factory that built ``events`` (``events.attrs["@events_factory"]``): its
    source mapping holds them for NanoEvents' virtual buffers. Reading a column through those
    buffers costs, per jagged branch, a copy of its offsets (awkward's ``Index.to64`` copies
    even int64 offsets) and, per collection, the cumulative sum of its counts branch; the
    same numbers are in the bulk-read arrays already (docs/hh_yybb.md, "Ninth session")."""
    attrs = getattr(events, "attrs", None)
    factory = attrs.get("@events_factory") if isinstance(attrs, Mapping) else None
    found = getattr(getattr(factory, "_mapping", None), "preloaded_arrays", None)
    if not isinstance(found, Mapping):
        return None
    out = {}
    for name, wrapped in found.items():
        arr = getattr(wrapped, "_array", None)  # coffea's slice guard around the array
        if isinstance(arr, ak.Array) and len(arr) == len(events):
            out[name] = arr
    return out


class _ColumnSource:
    """A reader of a chunk's columns: ``column(coll, field)`` gives the flat values of
    ``Coll_field`` (``column(None, name)``: an event-level branch), ``offsets(coll)`` and
    ``counts(coll)`` the event boundaries and object counts of a collection already read.
    In ``preload`` mode the runner's factory has already read every needed branch in bulk
    (``run_processor(preload=)``): the columns are the buffers of those arrays
    (:func:`preloaded_arrays`; a collection's offsets are those of its first field read,
    and every other field must end at the same object count). In ``nanoevents`` mode, or
    for a column the factory did not preload, each column is read through the events'
    layout (lazily, on first access); a layout other than a list of records per collection
    falls back to high-level access. Each collection's offsets and counts are taken once.
    A column computed in memory (the tagger discriminant of :func:`run_selection`'s
    ``models``) is served from :meth:`provide`."""

    def __init__(self, events: Any):
        self.events = events
        self.layout = events.layout
        self.preloaded = preloaded_arrays(events) or {}
        self.provided: dict[tuple[str | None, str], np.ndarray] = {}
        self._offsets: dict[str, np.ndarray] = {}  # per collection, as read
        self._counts: dict[str, np.ndarray] = {}

    def provide(self, coll: str | None, name: str, values: np.ndarray) -> None:
        """Serve ``values`` (flat, one per object of the chunk) as the column ``Coll_name``."""
        self.provided[(coll, name)] = values

    def _collection_offsets(self, coll: str, o: np.ndarray, name: str) -> None:
        """Keep a collection's offsets (the first field's); check another field's total."""
        if coll not in self._offsets:
            self._offsets[coll] = o.astype(np.int64, copy=False)
            return
        co = self._offsets[coll]
        if int(o[-1] - o[0]) != int(co[-1] - co[0]):
            meta = getattr(self.events, "metadata", None) or {}
            raise InputFileError(
                meta.get("filename", "<chunk>"),
                f"branch {coll}_{name} holds {int(o[-1] - o[0])} objects in entries "
                f"{meta.get('entrystart', '?')}–{meta.get('entrystop', '?')}, but the other {coll} branches "
                f"hold {int(co[-1] - co[0])}",
            )

    def _from_preload(self, coll: str | None, name: str) -> np.ndarray | None:
        arr = self.preloaded.get(name if coll is None else f"{coll}_{name}")
        if arr is None:
            return None
        layout = arr.layout
        if coll is None:
            return np.asarray(layout.data) if isinstance(layout, ak.contents.NumpyArray) else None
        if not (isinstance(layout, ak.contents.ListOffsetArray)
                and isinstance(layout.content, ak.contents.NumpyArray)):
            return None
        o = np.asarray(layout.offsets.data)
        self._collection_offsets(coll, o, name)
        return np.asarray(layout.content.data)[o[0]:o[-1]]

    def column(self, coll: str | None, name: str) -> np.ndarray:
        """The flat values of ``Coll_field`` (or of the event-level branch ``name``)."""
        if self.provided and (coll, name) in self.provided:
            values = self.provided[(coll, name)]
            if coll is not None and coll in self._offsets:
                o = self._offsets[coll]
                if len(values) != int(o[-1] - o[0]):
                    raise RuntimeError(f"{coll}_{name}: {len(values)} values computed in memory for "
                                       f"{int(o[-1] - o[0])} objects")
            return values
        if self.preloaded:
            got = self._from_preload(coll, name)
            if got is not None:
                return got
        layout = self.layout
        if coll is None:
            col = layout.content(name) if isinstance(layout, ak.contents.RecordArray) else None
            if isinstance(col, ak.contents.NumpyArray):
                return np.asarray(col.data)
            return _np(self.events[name])
        lst = layout.content(coll) if isinstance(layout, ak.contents.RecordArray) else None
        if isinstance(lst, ak.contents.ListOffsetArray) and isinstance(lst.content, ak.contents.RecordArray):
            field = lst.content.content(name)
            if isinstance(field, ak.contents.NumpyArray):
                o = np.asarray(lst.offsets.data, dtype=np.int64)
                self._collection_offsets(coll, o, name)
                return np.asarray(field.data)[o[0]:o[-1]]
        counts, values = _flat(self.events[coll], name)
        o = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=o[1:])
        self._collection_offsets(coll, o, name)
        return values

    def counts(self, coll: str) -> np.ndarray:
        """Objects per event of a collection already read."""
        if coll not in self._counts:
            self._counts[coll] = np.diff(self._offsets[coll])
        return self._counts[coll]

    def offsets(self, coll: str) -> np.ndarray | None:
        """The event boundaries (from 0) of a collection already read, else None."""
        if coll not in self._offsets:
            return None
        o = self._offsets[coll]
        return o if o[0] == 0 else o - o[0]


class CompiledProcessor(processor.ProcessorABC):
    """The HH → γγbb̄ selection (module docstring) on hepline or CMS NanoAOD events, fast.

    ``process`` returns ``{dataset: {"events", "hists": {obs: Hist}, "cutflow": {"raw",
    "sumw", "sumw2"}}}`` with un-normalised histograms (weights: generator weight × b-tag
    SF weight); :func:`run_selection` adds σ, Σw and the step names.

    Implementation: the objects of the events with two photon candidates are read once per
    chunk into flat numpy arrays (:class:`FlatCollection`); the per-object masks of
    :mod:`selections.objects` run on those, and the per-event walk over the objects is
    :mod:`selections.hh_yybb.kernel` (one numba loop, or its numpy reference: ``engine``).
    Each pass fills all regions and variations of an observable at once
    (:func:`selections.hh_yybb.fill.fill_regions`). With the compiled engine, the five shifted
    passes and their fills are one call per chunk
    (:func:`selections.hh_yybb.shifted.shifted_entries`, :func:`selections.hh_yybb.fill.fill_entries`);
    the numpy engine runs them pass by pass, the reference the tests compare with. Costs:
    docs/hh_yybb.md, "Selection throughput".

    With ``models`` (trained taggers, :class:`taggers.models.TaggerModels`), the jets'
    ``Jet_btag_<tagger>`` discriminant is computed from each chunk's jets and tracks
    (:func:`taggers.decorate.decorate_events`, as the decoration stage does) instead of
    being read: undecorated hepline ntuples in, no decorated copy needed. The chunks are
    then read through lazy NanoEvents (``read_mode`` ``nanoevents``: the taggers read
    their own inputs).

    Args:
        selection: the ``selection`` section.
        kind: the input (format, NanoAOD era; :func:`compiled_engine_usable`).
        btag: the resolved b-tagging (:func:`btag_spec`).
        read_mode: ``preload`` or ``nanoevents`` (default ``selection.hh_yybb.read_mode``).
        models: trained taggers that tag the jets in the processor (hepline only).
    """

    def __init__(self, selection: SelectionConfig, kind: str | InputKind, btag: BTagSpec,
                 read_mode: str | None = None,
                 *, models: TaggerModels | None = None):
        self.kind = InputKind.of(kind)
        fmt = self.kind.format
        self.omap: ObjectMap = object_map(selection, self.kind)
        self.cfg: SelectionHhYybb = selection.hh_yybb
        self.fmt = fmt
        self.btag = btag
        self.models = models
        self._tagger = InMemoryTagger(models, fmt, btag) if models is not None else None
        syst = self.cfg.systematics
        self.systematics = list(H.SYSTEMATICS) if syst.enabled else []
        self.variations = H.variation_names(self.systematics)
        self._region_index = {r: i for i, r in enumerate(REGION_NAMES)}
        self._region_of_bit = np.arange(len(REGION_NAMES))  # bit i of the compiled shifted passes: REGION_NAMES[i]
        self._variation_index = {v: i for i, v in enumerate(self.variations)}
        self.binning = {name: b.to_dict() for name, b in self.cfg.histograms.binning.items()}
        self.read_mode = "nanoevents" if models is not None else (read_mode or self.cfg.read_mode)
        self._use_engine(compiled=self.cfg.engine == "numba")
        self.branches = needed_branches(selection, self.kind, btag.field, tagged_in_memory=models is not None)
        self.tables = BTagTables.build(btag, self.cfg.btag.scale_factors)
        t = self.tables
        self._cuts, self._bin_two, self._bin_one, self._n_pt = list(t.cuts), t.bin_two, t.bin_one, t.n_pt
        self._sf_tables, self._tt_eff = t.sf_tables, t.truth_efficiencies
        self.truth_tag_samples = set(self.cfg.btag.truth_tag_samples)

    # -- reading ------------------------------------------------------------------------
    @staticmethod
    def _source(events: Any) -> _ColumnSource:
        """A reader of this chunk's columns (:class:`_ColumnSource`)."""
        return _ColumnSource(events)

    def _collection(self, get: _ColumnSource, kind: str, fields: Sequence[str],
                    events: np.ndarray | None = None) -> FlatCollection:
        """The ``fields`` (and the fields the object requirements use) of one collection,
        pT-ordered within events; only the events ``events`` (a mask or increasing indices) if given."""
        m = getattr(self.omap, kind)
        names = list(dict.fromkeys([*fields, *(s.field for s in O.object_requirements(m) if s)]))
        data = {n: get.column(m.collection, n) for n in names}
        coll = FlatCollection(None, data, get.offsets(m.collection))
        return (coll if events is None else coll.subset(events, self._compiled)).sorted_by("pt")

    def _read(self, events: Any) -> dict[str, Any]:
        """The chunk's objects as flat arrays, for the events with two photon candidates
        (:meth:`_shift_candidates`) only; the generator weights of all events are kept
        for the cutflow's first row (``n_all``, ``weight_all``)."""
        n = len(events)
        get = self._source(events)
        if self._tagger is not None:
            get.provide(self.omap.jet.collection, self.btag.field,
                        np.asarray(ak.to_numpy(ak.flatten(self._tagger(events), axis=None))))
        wname = self.omap.weight
        w = get.column(None, wname).astype(np.float64) if wname else np.ones(n)
        ename = self.omap.event_number
        evt = get.column(None, ename).astype(np.uint64) if ename else np.arange(n, dtype=np.uint64)
        source = events.metadata.get("filename", "<events>")
        check_finite(w, wname or "weight", source=source, entry=evt, entry_name="event")
        photons = self._collection(get, "photon", ["pt", "eta", "phi"])
        self._check_finite(source, "photon", photons, evt, FINITE_FIELDS)
        photons = photons.with_field("_fixed", self._fixed_photon_mask(photons))
        cand = np.flatnonzero(self._shift_candidates(photons))  # increasing event indices
        jet_fields = ["pt", "eta", "phi", "mass", self.btag.field]
        flav = self.omap.jet.flavour
        if flav:
            jet_fields.append(flav)
        jets = self._collection(get, "jet", jet_fields, cand)
        self._check_finite(source, "jet", jets, evt.take(cand), (*FINITE_FIELDS, "mass", self.btag.field))
        if flav:
            fc = O.flavour_class(np.asarray(jets[flav]))
        else:  # data: no truth flavour, SF weights are 1
            fc = np.zeros(len(jets["pt"]), dtype=np.int8)
        jets["flavour_class"] = fc
        jets["class_base"] = fc.astype(np.int64) * self._n_pt  # + pT bin = efficiency class
        jets["tag_bin"] = np.asarray(O.tag_bin(jets[self.btag.field], self._cuts), dtype=np.int8)
        for f in ("pt", "mass"):
            jets[f] = jets[f].astype(np.float64)
        leptons = {kind: self._collection(get, kind, ["pt", "eta", "phi"], cand) for kind in ("electron", "muon")}
        for kind, coll in leptons.items():
            self._check_finite(source, kind, coll, evt.take(cand), FINITE_FIELDS)
        return {
            "n_all": n,
            "weight_all": w,
            "n": len(cand),
            "weight": w.take(cand),
            "event": evt.take(cand),
            "photons": photons.subset(cand, self._compiled),
            "electrons": leptons["electron"],
            "muons": leptons["muon"],
            "jets": jets,
        }

    def _check_finite(self, source: str, kind: str, coll: FlatCollection, event: np.ndarray,
                      fields: Sequence[str]) -> None:
        """The reference's non-finite policy (:func:`selections.hh_yybb.inputs.check_finite_objects`)."""
        check_finite_objects(source, getattr(self.omap, kind).collection,
                             {f: np.asarray(coll[f], dtype=np.float64) for f in fields}, event.take(coll.evt))

    # -- one pass of the selection ---------------------------------------------------------
    def _analyse(self, obj: dict[str, Any], photon_scale: Any = None, jet_scale: float = 1.0,
                 packed: bool = False, truth_tables: Sequence[str] | None = None,
                 event_mask: np.ndarray | None = None) -> dict[str, Any]:
        """One pass of the selection. With ``truth_tables`` (names of :attr:`_tt_eff`) the
        b-tag categories come from :func:`truth_tag_rows` (result key ``rows``) and the
        event-level tag categories are empty. Only the nominal (``packed``) pass without
        truth tagging computes everything for every event (its cutflow carries the b-tag SF
        weight of events failing the diphoton cuts); the other passes skip what no region or
        cutflow row can use, and only the events of ``event_mask`` are looked at.

        The per-object masks are numpy (:mod:`selections.objects`); the per-event walk over
        the objects (diphoton, overlap removal, counts, b-jet candidates, masses) is
        :func:`selections.hh_yybb.kernel.event_arrays` (``engine: numba``) or its numpy
        reference."""
        c = self.cfg
        pc = c.photons
        photons: FlatCollection = obj["photons"]
        if photon_scale is not None:
            photons = photons.with_field("pt", photons["pt"] * photon_scale)
        pmask = self._photon_mask(obj, photons, shifted=photon_scale is not None)

        lc = c.leptons
        if "lepton_masks" not in obj:  # no variation changes a lepton: once per chunk
            obj["lepton_masks"] = {
                kind: np.asarray(self._lepton_mask(obj[f"{kind}s"], kind), dtype=bool).reshape(-1)
                if len(obj[f"{kind}s"]["pt"]) else np.zeros(0, dtype=bool)
                for kind in ("electron", "muon")
            }
        jc = c.jets
        jets, j_sel = self._scaled_jets(obj, jet_scale)
        ele, mu = obj["electrons"], obj["muons"]
        # (no jet-lepton overlap removal: events with a selected lepton are vetoed before any
        # jet requirement, so it could not change a result)
        ev = self._event_arrays(K.PassInput(
            ph_off=photons.offsets, ph_pt=photons["pt"], ph_eta=photons["eta"], ph_phi=photons["phi"],
            ph_mask=pmask, top2=photon_scale is not None and bool(np.ndim(photon_scale)),
            e_off=ele.offsets, e_eta=ele["eta"], e_phi=ele["phi"], e_mask=obj["lepton_masks"]["electron"],
            mu_off=mu.offsets, mu_eta=mu["eta"], mu_phi=mu["phi"], mu_mask=obj["lepton_masks"]["muon"],
            lep_dr=lc.photon_overlap_dr,
            j_off=jets.offsets, j_pt=jets["pt"], j_eta=jets["eta"], j_phi=jets["phi"], j_mass=jets["mass"],
            j_mask=j_sel, j_bin=jets["tag_bin"],
            jet_dr=jc.photon_overlap_dr, bin_two=self._bin_two, bin_one=self._bin_one,
            mstar_offset=c.categories.mstar_offset, lead_frac=pc.leading_pt_over_myy,
            sub_frac=pc.subleading_pt_over_myy, myy_window=pc.myy_window,
            # b-tag SF weights of events failing the diphoton cuts: only without truth tagging
            event_mask=event_mask, full=packed and truth_tables is None,
            all_myy=packed,  # only the nominal pass's cutflow uses m_γγ of events failing the diphoton cuts
        ))
        myy, i2, n_lep, n_j, tag, jmask = ev["myy"], ev["i2"], ev["n_lep"], ev["n_j"], ev["tag"], ev["jet_mask"]
        with np.errstate(invalid="ignore"):
            frac = (ev["g1pt"] > pc.leading_pt_over_myy * myy) & (ev["g2pt"] > pc.subleading_pt_over_myy * myy)
            window = (myy > pc.myy_window[0]) & (myy < pc.myy_window[1])

        def kin_masks(mbb: np.ndarray, mstar: np.ndarray, j1: np.ndarray, j2: np.ndarray) -> dict[str, np.ndarray]:
            with np.errstate(invalid="ignore"):
                out = {}
                for k in KINEMATIC:
                    kc = getattr(c.categories, k)
                    out[k] = ((j1 > kc.leading_jet_pt_min) & (j2 > kc.subleading_jet_pt_min)
                              & (mbb > kc.mbb_window[0]) & (mbb < kc.mbb_window[1]))
                out["lowmstar"] = mstar < c.categories.mstar_split
                out["highmstar"] = mstar >= c.categories.mstar_split
            return out

        mbb, mstar = ev["mbb"], ev["mstar"]
        km = kin_masks(mbb, mstar, ev["j1"], ev["j2"])
        kin = {k: km[k] for k in KINEMATIC}
        low, high = km["lowmstar"], km["highmstar"]
        with np.errstate(invalid="ignore"):
            res = np.abs(myy - c.resonant.higgs_mass) < c.resonant.myy_half_window

        rows = None
        if truth_tables is not None:
            pre = ((i2 >= 0) & frac & window & (n_lep == 0) & (n_j >= jc.min_jets)
                   & (n_j <= jc.max_central_jets))
            tt = self._truth_rows(jets, jmask, pre, {t: self._tt_eff[t] for t in truth_tables}, ev, photons)
            r_mbb, r_mstar = tt["m_bb"], tt["m_star"]
            rk = kin_masks(r_mbb, r_mstar, tt["j1"], tt["j2"])
            r_res = res[tt["evt"]]
            r_regions = {}
            for t, kind in zip(TAGS, (2, 1), strict=True):
                is_t = tt["kind"] == kind
                for k in KINEMATIC:
                    for m in MSTAR:
                        r_regions[f"{t}_{k}_{m}"] = is_t & rk[k] & rk[m]
                    r_regions[f"res_{t}_{k}"] = is_t & rk[k] & r_res
            rows = {**tt, "regions": r_regions,
                    "obs": {"m_yy": myy[tt["evt"]], "m_bb": r_mbb, "m_star": r_mstar}}
            tag = np.zeros(obj["n"], dtype=np.int64)  # the event-level tag categories stay empty

        steps = {
            "two_photons": (i2 >= 0),
            "photon_pt_over_myy": frac,
            "myy_window": window,
            "lepton_veto": n_lep == 0,
            "two_jets": n_j >= jc.min_jets,
            "max_central_jets": n_j <= jc.max_central_jets,
            "btag_1or2": tag > 0,
        }
        base = list(steps)
        cats = {"2tag": tag == 2, "1tag": tag == 1}
        sel = None
        if packed:
            # coffea PackedSelection (selections.hh_yybb.packed: its eager add without the masked
            # ufunc) for the nominal pass: the cutflow's cuts and the tag categories (the
            # kinematic categories are ANDed with numpy below); the shifted passes AND the
            # same masks with numpy
            masks = {**steps, **cats}
            sel = PackedSelection(dtype=packed_dtype(len(masks)))
            sel.add_multiple(masks)
            diphoton, pretag = sel.all(*base[:3]), sel.all(*base[:6])
            in_tag = {t: sel.all(*base, t) for t in TAGS}
        else:  # the same ANDs, sharing the common prefixes
            diphoton = steps["two_photons"] & steps["photon_pt_over_myy"] & steps["myy_window"]
            pretag = diphoton & steps["lepton_veto"] & steps["two_jets"] & steps["max_central_jets"]
            tagged = pretag & steps["btag_1or2"]
            in_tag = {t: tagged & cats[t] for t in TAGS}
        regions = {"diphoton": diphoton, "pretag": pretag}
        mstar_masks = {"lowmstar": low, "highmstar": high}
        for t in TAGS:
            for k in KINEMATIC:
                in_tk = in_tag[t] & kin[k]
                for m in MSTAR:
                    regions[f"{t}_{k}_{m}"] = in_tk & mstar_masks[m]
                regions[f"res_{t}_{k}"] = in_tk & res
        return {
            "sel": sel,
            "steps": base,
            "tag": tag,
            "regions": regions,
            "obs": {"m_yy": myy, "m_bb": mbb, "m_star": mstar},
            "obs_leading": {"m_yy": myy, "m_bb": ev["mjj_lead"], "m_star": ev["mstar_lead"]},
            "jet_mask": jmask,
            "jets": jets,
            "rows": rows,
            "i1": ev["i1"],
            "i2": i2,
            "angle": ev["angle"],
        }

    def _scaled_jets(self, obj: dict[str, Any], scale: float) -> tuple[FlatCollection, np.ndarray]:
        """The chunk's jets with pT and mass × ``scale`` and the jet selection mask (before
        overlap removal); computed once per scale and chunk (the nominal and the
        photon-shifted passes share scale 1). The efficiency classes (they depend on pT) are
        computed only for the jets that need one (:meth:`_eff_class`)."""
        cache = obj.setdefault("scaled_jets", {})
        if scale not in cache:
            jets: FlatCollection = obj["jets"]
            if scale != 1.0:
                jets = jets.with_field("pt", jets["pt"] * scale).with_field("mass", jets["mass"] * scale)
            jc = self.cfg.jets
            mask = O.jet_selection(jets, O.object_requirements(self.omap.jet), pt_min=jc.pt_min, eta_max=jc.eta_max)
            cache[scale] = (jets, np.asarray(mask, dtype=bool))
        return cache[scale]

    def _truth_rows(self, jets: FlatCollection, jet_ok: np.ndarray, pre: np.ndarray,
                    efficiencies: Mapping[str, tuple[np.ndarray, np.ndarray]], ev: Mapping[str, np.ndarray],
                    photons: FlatCollection) -> dict[str, Any]:
        """Truth-tag rows of the events ``pre`` with m_bb, m*, j1, j2 [GeV]: compiled
        (:func:`selections.hh_yybb.kernel.truth_rows`) or :func:`truth_tag_rows` and the
        numpy pair masses."""
        off = self.cfg.categories.mstar_offset
        if self._compiled:
            edges = () if self.btag.pt_edges is None else self.btag.pt_edges[1:-1]
            return K.truth_rows(jets, jet_ok, pre, efficiencies, ev["i1"], ev["i2"], ev["myy"], photons, off,
                                class_base=jets["class_base"], pt_edges=edges)
        tt = truth_tag_rows(jets.evt, jets.n_events, self._eff_class(jets), jet_ok, pre, efficiencies)
        e = tt["evt"]
        mbb, mstar, j1, j2 = K.pair_rows_numpy(tt["c0"], tt["c1"], ev["i1"][e], ev["i2"][e], ev["myy"][e], jets,
                                               photons, off)
        return {**tt, "m_bb": mbb, "m_star": mstar, "j1": j1, "j2": j2}

    def _eff_class(self, jets: FlatCollection, mask: np.ndarray | None = None) -> np.ndarray:
        """Efficiency class (flavour class × number of pT bins + pT bin) of the jets, or of
        the jets in ``mask``."""
        base, pt = (jets["class_base"], jets["pt"]) if mask is None else (jets["class_base"][mask], jets["pt"][mask])
        return base + self.btag.pt_bin(pt)

    def _btag_weights(self, res: dict[str, Any], names: Sequence[str]) -> dict[str, np.ndarray]:
        jets: FlatCollection = res["jets"]
        m = res["jet_mask"]
        offsets = np.concatenate([[0], np.cumsum(jets.count(m))])
        return self.tables.event_weights(self._eff_class(jets, m), jets["tag_bin"][m], offsets, names)

    def _fill(self, fillers: Mapping[str, HF.RegionFiller], res: dict[str, Any],
              weights: Mapping[str, np.ndarray]) -> None:
        """Fill every observable of one pass for each weight variation, all regions at once
        (``fillers[observable]``, :class:`selections.hh_yybb.fill.RegionFiller`: compiled with the
        numba engine, its numpy reference otherwise).

        The entries come in three groups: the inclusive regions, with the leading-jet
        observables; the other event regions; the truth-tagged rows (``res["rows"]``),
        filled with the event weight times the row's tag probability for that variation
        (the nominal one for non-b-tag variations). Variations with the same weights share
        one weight row."""
        rows = res.get("rows")
        inclusive = ("diphoton", "pretag")
        # the entries: every inclusive region lies inside "diphoton", every other event region
        # inside the b-tagged "pretag" events (none for truth-tagged samples: their rows carry
        # the tags)
        sources: list[tuple[dict[str, np.ndarray], Mapping[str, np.ndarray], Any, np.ndarray | None]] = [
            ({r: m for r, m in res["regions"].items() if r in inclusive}, res["obs_leading"], None,
             np.flatnonzero(res["regions"]["diphoton"])),
            ({r: m for r, m in res["regions"].items() if r not in inclusive}, res["obs"], None,
             np.flatnonzero(res["regions"]["pretag"] & (res["tag"] > 0))),
        ]
        if rows is not None:
            sources.append((rows["regions"], rows["obs"], rows, None))
        variations = np.array([self._variation_index[v] for v in weights], dtype=np.int64)
        for regions, obs, src, used in sources:
            if not regions:
                continue
            if used is None:
                masks = np.stack(list(regions.values()))
                used = np.flatnonzero(masks.any(axis=0))  # the entries in any of these regions
                masks = masks[:, used]
            elif used.size:
                masks = np.stack([m[used] for m in regions.values()])
            if not used.size:
                continue
            if src is None:
                w_rows, w_of = self._weight_rows(weights, used)
            else:
                p = src["p"]
                w_rows, w_of = self._weight_rows(weights, used, src["evt"], {v: p.get(v, p["nominal"]) for v in weights})
            region_ids = np.array([self._region_index[r] for r in regions], dtype=np.int64)
            xbins = HF.RegionFiller.bins_together(list(fillers.values()), [obs[name][used] for name in fillers])
            HF.RegionFiller.fill_together(list(fillers.values()), masks, region_ids, xbins, w_rows, w_of,
                                          variations, compiled=self._compiled)

    @staticmethod
    def _weight_rows(weights: Mapping[str, np.ndarray], entries: np.ndarray, evt: np.ndarray | None = None,
                     probs: Mapping[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The distinct weight arrays of ``weights`` at the ``entries`` (events; with ``evt``
        and ``probs``: truth-tag rows, the event weight × the row's probability) stacked, one
        gather per distinct array, and the row of each variation."""
        rows: list[np.ndarray] = []
        seen: dict[tuple[int, int], int] = {}
        of = []
        for v, w in weights.items():
            p = None if probs is None else probs[v]
            key = (id(w), id(p))
            if key not in seen:
                seen[key] = len(rows)
                rows.append(w[entries] if p is None else w[evt[entries]] * p[entries])  # type: ignore[index]
            of.append(seen[key])
        return np.stack(rows), np.array(of, dtype=np.int64)

    def _use_engine(self, compiled: bool) -> None:
        """The per-event pass, truth-tag rows and smearing factors: compiled (numba) or their
        numpy references."""
        self._compiled = compiled
        self._event_arrays = K.event_arrays if compiled else K.event_arrays_numpy
        self._resolution_factors = K.resolution_factors if compiled else resolution_factors_numpy

    def _choose_engine(self, metadata: Mapping[str, Any]) -> None:
        """``engine: auto``: the compiled pass for datasets of ``numba_min_events`` or more
        (loading the kernels from numba's on-disk cache pays back from ≈ 4·10⁴ events; the
        first compile after an install costs tens of seconds once) or once it is loaded anyway."""
        if self.cfg.engine != "auto":
            return
        big = int(metadata.get("n_events") or 0) >= self.cfg.numba_min_events
        self._use_engine(compiled=big or K.kernel_loaded())

    def process(self, events: Any) -> dict[str, Any]:
        dataset = events.metadata.get("dataset", "default")
        self._choose_engine(events.metadata)
        t0 = time.perf_counter()
        obj = self._read(events)
        t_read = time.perf_counter()
        hists = H.make_hists(OBSERVABLES, REGION_NAMES, self.variations, self.binning)
        # obj holds only the events with two photon candidates, the only ones that can pass
        # any cut after "all" in any variation (≈ 25 % of a γγ sample)
        n_events = obj["n_all"]
        gen_all = obj["weight_all"]

        truth = dataset in self.truth_tag_samples
        names = list(self._sf_tables) if self.systematics else ["nominal"]
        nominal = self._analyse(obj, packed=True, truth_tables=names if truth else None)
        if truth:  # the tag probabilities carry the b-tagging (SFs included) in the rows
            bw = {name: np.ones(obj["n"]) for name in names}
        else:
            bw = self._btag_weights(nominal, names)
        weights = Weights(obj["n"], storeIndividual=True)
        weights.add("genWeight", obj["weight"])
        weights.add("btagSF", bw["nominal"])
        if self.systematics and not truth:  # truth tagging: the rows carry the SF variations
            with np.errstate(divide="ignore", invalid="ignore"):
                for s in H.WEIGHT_SYSTEMATICS:
                    up = np.where(bw["nominal"] > 0, bw[f"{s}Up"] / bw["nominal"], 1.0)
                    dn = np.where(bw["nominal"] > 0, bw[f"{s}Down"] / bw["nominal"], 1.0)
                    weights.add(s, np.ones(obj["n"]), up, dn)
        w_nom = weights.weight()
        wsets = {"nominal": w_nom}
        if self.systematics:
            for s in H.WEIGHT_SYSTEMATICS:
                wsets[f"{s}Up"] = weights.weight(f"{s}Up") if not truth else w_nom
                wsets[f"{s}Down"] = weights.weight(f"{s}Down") if not truth else w_nom
        fillers = {name: HF.RegionFiller(h) for name, h in hists.items()}
        self._fill(fillers, nominal, wsets)

        # cutflow (nominal weights): sequential cuts, tag categories, regions
        sel = nominal["sel"]
        steps = nominal["steps"]
        # "all": every event of the chunk with its generator weight (Σ = σ·L after
        # normalisation); the later rows also carry the b-tag SF weight
        masks = [sel.all(*steps[: i + 1]) for i in range(len(steps))]
        masks += [sel.all(*steps, t) for t in TAGS]
        masks += [nominal["regions"][r] for r in (*NONRES_REGIONS, *RES_REGIONS)]
        raw = np.array([n_events] + [int(np.count_nonzero(m)) for m in masks], dtype=np.int64)
        w2_nom = np.square(w_nom)
        # one index per row for both sums (rows without events are 0.0, as the sum of an
        # empty selection: no gather for them)
        sumw = np.zeros(len(masks) + 1)
        sumw2 = np.zeros(len(masks) + 1)
        sumw[0], sumw2[0] = float(gen_all.sum()), float(np.square(gen_all).sum())
        for i, (m, r) in enumerate(zip(masks, raw[1:], strict=True), start=1):
            if r:
                idx = np.flatnonzero(m)
                sumw[i], sumw2[i] = float(w_nom.take(idx).sum()), float(w2_nom.take(idx).sum())
        if truth:
            # b-tag rows of the cutflow from the truth-tag rows: weighted = Σ w·P, raw = the
            # MC events that contribute
            rows = nominal["rows"]
            wr = w_nom[rows["evt"]] * rows["p"]["nominal"]
            row_masks = [np.ones(len(wr), dtype=bool), rows["kind"] == 2, rows["kind"] == 1]
            row_masks += [rows["regions"][r] for r in (*NONRES_REGIONS, *RES_REGIONS)]
            first = len(SEQUENTIAL_STEPS) - 1  # "btag_1or2"
            evt = rows["evt"]
            in_order = bool((evt[1:] >= evt[:-1]).all())  # rows come event by event
            for k, m in enumerate(row_masks):
                m = m & (rows["p"]["nominal"] > 0)
                e, we = evt[m], wr[m]
                raw[first + k] = distinct_count(e, in_order)
                sumw[first + k] = float(we.sum())
                sumw2[first + k] = float(np.square(np.bincount(e, we)).sum())

        if self.systematics:
            gen_w = obj["weight"]
            scfg = self.cfg.systematics
            dpes, djes = scfg.photon_energy_scale, scfg.jet_energy_scale
            if self._compiled:  # the five passes and their fills in one compiled call
                self._fill_shifted_compiled(fillers, obj, nominal, truth, dpes, djes)
            else:
                shifted: list[tuple[str, dict[str, Any]]] = [
                    ("photon_scaleUp", {"photon_scale": 1.0 + dpes}),
                    ("photon_scaleDown", {"photon_scale": 1.0 - dpes}),
                    ("photon_resolutionUp", {"photon_scale": self._per_factor(obj)}),
                    # photons untouched: only the events whose nominal diphoton passed matter
                    ("jet_scaleUp", {"jet_scale": 1.0 + djes, "event_mask": nominal["regions"]["diphoton"]}),
                    ("jet_scaleDown", {"jet_scale": 1.0 - djes, "event_mask": nominal["regions"]["diphoton"]}),
                ]
                for name, kw in shifted:
                    if truth:
                        r = self._analyse(obj, truth_tables=["nominal"], **kw)
                        w = gen_w
                    else:
                        r = self._analyse(obj, **kw)
                        w = gen_w * self._btag_weights(r, ["nominal"])["nominal"]
                    self._fill(fillers, r, {name: w})
        t_end = time.perf_counter()
        timing = {"read_s": t_read - t0, "select_fill_s": t_end - t_read}
        return {dataset: {"events": n_events, "hists": hists, "timing": timing,
                          "cutflow": {"raw": raw, "sumw": sumw, "sumw2": sumw2}}}

    def _fill_shifted_compiled(self, fillers: Mapping[str, HF.RegionFiller], obj: dict[str, Any],
                               nominal: Mapping[str, Any], truth: bool, dpes: float, djes: float) -> None:
        """The shifted passes (photon scale up/down, resolution up, jet scale up/down) and
        their fills in one compiled call (:func:`selections.hh_yybb.shifted.shifted_entries`):
        the same entries as :meth:`_analyse` and :meth:`_fill` pass by pass."""
        photons: FlatCollection = obj["photons"]
        ok = photons["_fixed"]
        iso = []
        for spec in self.omap.photon.isolation:
            if not spec.relative:
                continue
            if spec.max is not None:
                iso.append((photons[spec.field], float(spec.max)))
            else:  # a relative flag without a maximum does not depend on pT
                ok = ok & np.asarray(O.requirement_mask(photons, spec), dtype=bool)
        jets: FlatCollection = obj["jets"]
        jet_fixed = np.asarray(O.jet_selection(jets, O.object_requirements(self.omap.jet), pt_min=None,
                                               eta_max=self.cfg.jets.eta_max), dtype=bool)
        vi = self._variation_index
        passes = [(KS.PASS_PHOTON_SCALE, 1.0 + dpes, vi["photon_scaleUp"]),
                  (KS.PASS_PHOTON_SCALE, 1.0 - dpes, vi["photon_scaleDown"]),
                  (KS.PASS_PHOTON_FACTORS, 0.0, vi["photon_resolutionUp"]),
                  (KS.PASS_JET_SCALE, 1.0 + djes, vi["jet_scaleUp"]),
                  (KS.PASS_JET_SCALE, 1.0 - djes, vi["jet_scaleDown"])]
        lm = obj["lepton_masks"]
        out = KS.shifted_entries(
            passes, photons=photons, photon_ok=ok, iso=iso, photon_pt_min=self.cfg.photons.pt_min,
            factors=self._per_factor(obj, mask=ok),  # only the photons a pass can select
            nominal={"i1": nominal["i1"], "i2": nominal["i2"], "myy": nominal["obs"]["m_yy"],
                     "diphoton": nominal["regions"]["diphoton"], "angle": nominal["angle"]},
            electrons=obj["electrons"], electron_mask=lm["electron"], muons=obj["muons"], muon_mask=lm["muon"],
            lepton_dr=self.cfg.leptons.photon_overlap_dr, jets=jets, jet_fixed=jet_fixed,
            jet_pt_min=self.cfg.jets.pt_min,
            pt_edges=() if self.btag.pt_edges is None else self.btag.pt_edges[1:-1],
            jet_dr=self.cfg.jets.photon_overlap_dr, bin_two=self._bin_two, bin_one=self._bin_one,
            cfg=self.cfg, truth=truth, eps=self._tt_eff["nominal"] if truth else None,
            sf_table=None if truth else self._sf_tables["nominal"], gen_weight=obj["weight"])
        xbins = HF.RegionFiller.bins_together(list(fillers.values()), list(out["obs"]))
        HF.fill_entries(list(fillers.values()), out["bits"], self._region_of_bit, xbins, out["variation"],
                        out["weight"], compiled=True)

    def _lepton_mask(self, leptons: FlatCollection, kind: str) -> Any:
        """:func:`selections.objects.lepton_selection` of the chunk's electrons or muons
        (``kind``): the object mapping's requirements and ``selection.hh_yybb.leptons``' cuts."""
        cuts = getattr(self.cfg.leptons, kind)
        return O.lepton_selection(leptons, O.object_requirements(getattr(self.omap, kind)), pt_min=cuts.pt_min,
                                  eta_max=cuts.eta_max, crack=getattr(cuts, "crack", None))

    def _fixed_photon_mask(self, ph: FlatCollection) -> np.ndarray:
        """Photons passing every requirement no energy shift can change: ID, non-relative
        isolation and other requirements, and the η acceptance (the rest of
        :func:`selections.objects.photon_selection`, the pT threshold and the relative
        isolation, is applied per pass by :meth:`_photon_mask`)."""
        pc = self.cfg.photons
        pm_ = self.omap.photon
        fixed = [pm_.id, *pm_.require, *(x for x in pm_.isolation if not x.relative)]
        pmask = O.kinematic_mask(ph, None, pc.eta_max, pc.crack)
        req = O.requirements_mask(ph, fixed)
        return np.asarray(pmask if req is True else pmask & req, dtype=bool)

    def _photon_mask(self, obj: dict[str, Any], photons: FlatCollection, shifted: bool) -> np.ndarray:
        """:func:`selections.objects.photon_selection` of this pass's ``photons``: the chunk's
        fixed requirements (:meth:`_fixed_photon_mask`, field ``_fixed``) and the pT
        threshold and relative isolation of the (possibly shifted) pT. The unshifted mask is
        computed once per chunk."""
        if not shifted and "photon_mask" in obj:
            return obj["photon_mask"]
        pc = self.cfg.photons
        mask = photons["_fixed"].copy()
        if pc.pt_min is not None:
            mask &= photons["pt"] > pc.pt_min
        for spec in self.omap.photon.isolation:
            if spec.relative:
                mask &= np.asarray(O.requirement_mask(photons, spec), dtype=bool)
        if not shifted:
            obj["photon_mask"] = mask
        return mask

    def _shift_candidates(self, ph: FlatCollection) -> np.ndarray:
        """Events with ≥ 2 photons passing the requirements no energy shift can change
        (field ``_fixed``, :meth:`_fixed_photon_mask`). A superset of the events the nominal
        or any shifted pass can put past ``two_photons`` (pT thresholds and relative
        isolation are left out; jets are not required: the ``diphoton`` region has none), so
        every pass runs on these events only."""
        return ph.count(ph["_fixed"]) >= 2

    def _per_factor(self, obj: dict[str, Any], mask: np.ndarray | None = None) -> np.ndarray:
        """Per-photon energy factor 1 + z·σ_extra/E of the resolution-up variation, with z a
        deterministic N(0,1) of (seed, event number, photon index); compiled with ``mask``:
        only for the photons in it (the others 1)."""
        cfg = self.cfg.systematics.photon_energy_resolution
        ph: FlatCollection = obj["photons"]
        kw = {"mask": mask} if mask is not None else {}
        return self._resolution_factors(ph.offsets, ph["pt"], ph["eta"], obj["event"], seed=cfg.seed,
                                        stochastic=cfg.stochastic, constant=cfg.constant,
                                        relative_uncertainty=cfg.relative_uncertainty, **kw)

    def postprocess(self, accumulator: Any) -> Any:
        return H.mirror_one_sided(accumulator) if self.systematics else accumulator


