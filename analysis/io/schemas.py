"""coffea NanoEvents schemas: hepline ntuples (with jet-track cross-references) and CMS NanoAOD.

``HeplineSchema`` builds on coffea's ``NanoAODSchema``: the hepline collections get 4-vector
behaviours and the cross-references ``Jet.tracks``, ``Jet.truthHadrons``, ``Jet.genJet``,
``Track.jet``, ``TruthHadron.jet`` and ``GenPart.parent`` / ``.children``. One-to-many links
(``Jet.tracks`` from ``Track_jetIdx``) use a form transform registered in coffea's transform
module, so that futures and dask workers that unpickle the schema find it too.
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np
from coffea.nanoevents import NanoAODSchema
from coffea.nanoevents import transforms as _transforms
from coffea.nanoevents.methods import base as _base
from coffea.nanoevents.methods import candidate as _candidate
from coffea.nanoevents.methods import nanoaod as _nanoaod
from coffea.nanoevents.methods import vector as _vector
from coffea.nanoevents.util import concat as _concat
from coffea.util import dask_property

from analysis.core.format import HEPLINE_COLLECTIONS, HEPLINE_VERTICES  # noqa: F401

__all__ = [
    "CMSNanoAODSchema",
    "HeplineElectron",
    "HeplineJet",
    "HeplineMuon",
    "HeplinePhoton",
    "HeplineSchema",
    "HeplineTower",
    "HeplineTrack",
    "HeplineTruthHadron",
    "RestrictedHeplineSchema",
    "behavior",
    "hepline_invert_index",
    "restricted_schema",
]

_ELECTRON_MASS = 0.000511  # GeV
_MUON_MASS = 0.105658  # GeV
_CHARGED_PION_MASS = 0.13957  # GeV, the track mass hypothesis

# ---------------------------------------------------------------------------------------
# HeplineSchema: NanoAOD conventions plus inverse (one-to-many) cross-references
# ---------------------------------------------------------------------------------------
def hepline_invert_index(stack: list) -> None:
    """Invert a jagged local index into a one-to-many global index (a nanoevents transform).

    Signature: ``source_local_index,target_offsets,!hepline_invert_index``. For every element
    of the target collection (e.g. each jet), the output lists the chunk-global indices of
    the source elements (e.g. tracks) whose local index (``Track_jetIdx``) points at it, in
    source order. Indices that are negative or beyond the target count are ignored.
    Output: a ``ListOffsetArray`` of int64, one list per target element.
    """
    target_offsets = _transforms.ensure_array(stack.pop()).astype(np.int64)
    local = stack.pop()
    if isinstance(local, ak.contents.Content):
        local = ak.Array(local)
    counts = ak.to_numpy(ak.num(local, axis=1)).astype(np.int64)
    flat = ak.to_numpy(ak.flatten(local, axis=1)).astype(np.int64)
    event_of = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    n_target = np.diff(target_offsets)
    valid = (flat >= 0) & (flat < n_target[event_of])
    global_target = target_offsets[:-1][event_of[valid]] + flat[valid]
    source = np.nonzero(valid)[0].astype(np.int64)
    order = np.argsort(global_target, kind="stable")
    per_target = np.bincount(global_target, minlength=int(target_offsets[-1]))
    offsets = np.zeros(len(per_target) + 1, dtype=np.int64)
    np.cumsum(per_target, out=offsets[1:])
    stack.append(
        ak.contents.ListOffsetArray(
            ak.index.Index64(offsets), ak.contents.NumpyArray(source[order])
        )
    )


# coffea resolves the transforms named in form keys by attribute lookup on its transforms
# module; registering ours there is what makes the key below evaluable, in this process and
# in any worker that unpickles HeplineSchema (which imports this module).
if getattr(_transforms, "hepline_invert_index", None) is not hepline_invert_index:
    _transforms.hepline_invert_index = hepline_invert_index


def _invert_index_form(local_index: dict, target_offsets: dict, like: dict) -> dict:
    """Form of :func:`hepline_invert_index` output, wrapped like a target-collection branch."""
    key = _concat(local_index["form_key"], target_offsets["form_key"], "!hepline_invert_index")
    return {
        "class": like["class"],
        "offsets": like["offsets"],
        "form_key": like["form_key"],  # the outer list is replaced by the collection's own
        "content": {
            "class": "ListOffsetArray",
            "offsets": "i64",
            "form_key": key,
            "content": {
                "class": "NumpyArray",
                "primitive": "int64",
                "itemsize": 8,
                "format": "i",
                "form_key": _concat(key, "!content"),
                "parameters": {},
            },
        },
    }


behavior: dict = dict(_nanoaod.behavior)
"""Awkward behaviours of :class:`HeplineSchema` events (NanoAOD ones plus the hepline mixins)."""


class _HeplineEvents(behavior["NanoEvents"]):  # type: ignore[misc,valid-type,name-defined]  # coffea behaviour
    def __repr__(self) -> str:
        return "<hepline event>"


behavior["NanoEvents"] = _HeplineEvents


def _finish_mixin(name: str) -> None:
    """Set the projection classes the way coffea's own mixins do."""
    arr, rec = behavior["*", name], behavior[name]
    arr.ProjectionClass2D, rec.ProjectionClass2D = _vector.TwoVectorArray, _vector.TwoVectorRecord
    arr.ProjectionClass3D = _vector.ThreeVectorArray
    rec.ProjectionClass3D = _vector.ThreeVectorRecord
    arr.ProjectionClass4D, rec.ProjectionClass4D = arr, rec
    arr.MomentumClass = _vector.LorentzVectorArray
    rec.MomentumClass = _vector.LorentzVectorRecord


behavior.update(ak._util.copy_behaviors("PtEtaPhiMLorentzVector", "HeplineJet", behavior))


@ak.mixin_class(behavior)
class HeplineJet(_vector.PtEtaPhiMLorentzVector, _base.NanoCollection):
    """hepline anti-kt R=0.4 jet with its associated tracks, truth hadrons and truth jet."""

    @dask_property
    def tracks(self) -> Any:
        """Tracks associated with this jet (``Track_jetIdx``), jagged per jet."""
        return self._events().Track._apply_global_index(self.trackIdxG)

    @tracks.dask  # type: ignore[no-redef]
    def tracks(self, dask_array: Any) -> Any:
        return dask_array._events().Track._apply_global_index(dask_array.trackIdxG)

    @dask_property
    def truthHadrons(self) -> Any:
        """Weakly decaying b/c hadrons labelling this jet (``TruthHadron_jetIdx``)."""
        return self._events().TruthHadron._apply_global_index(self.truthHadronIdxG)

    @truthHadrons.dask  # type: ignore[no-redef]
    def truthHadrons(self, dask_array: Any) -> Any:
        return dask_array._events().TruthHadron._apply_global_index(
            dask_array.truthHadronIdxG
        )

    @dask_property
    def genJet(self) -> Any:
        """The matched truth jet (``Jet_genJetIdx``), None if unmatched."""
        return self._events().GenJet._apply_global_index(self.genJetIdxG)

    @genJet.dask  # type: ignore[no-redef]
    def genJet(self, dask_array: Any) -> Any:
        return dask_array._events().GenJet._apply_global_index(dask_array.genJetIdxG)

    matched_gen = genJet  # NanoAOD spelling


_finish_mixin("HeplineJet")


def _candidate_mixin(name: str) -> None:
    behavior.update(ak._util.copy_behaviors("PtEtaPhiMCandidate", name, behavior))


_candidate_mixin("HeplineTrack")


@ak.mixin_class(behavior)
class HeplineTrack(_candidate.PtEtaPhiMCandidate, _base.NanoCollection):
    """Reconstructed track (charged-pion mass hypothesis)."""

    @dask_property
    def jet(self) -> Any:
        """The jet this track is associated with, None if none."""
        return self._events().Jet._apply_global_index(self.jetIdxG)

    @jet.dask  # type: ignore[no-redef]
    def jet(self, dask_array: Any) -> Any:
        return dask_array._events().Jet._apply_global_index(dask_array.jetIdxG)


_finish_mixin("HeplineTrack")

for _name in ("HeplinePhoton", "HeplineElectron", "HeplineMuon"):
    _candidate_mixin(_name)


@ak.mixin_class(behavior)
class HeplinePhoton(_candidate.PtEtaPhiMCandidate, _base.NanoCollection):
    """Reconstructed photon (massless, charge 0). ``isTight`` is the stored ID decision."""


@ak.mixin_class(behavior)
class HeplineElectron(_candidate.PtEtaPhiMCandidate, _base.NanoCollection):
    """Reconstructed electron (mass set to the electron mass)."""


@ak.mixin_class(behavior)
class HeplineMuon(_candidate.PtEtaPhiMCandidate, _base.NanoCollection):
    """Reconstructed muon (mass set to the muon mass)."""


for _name in ("HeplinePhoton", "HeplineElectron", "HeplineMuon"):
    _finish_mixin(_name)

behavior.update(ak._util.copy_behaviors("PtEtaPhiMLorentzVector", "HeplineTruthHadron", behavior))


@ak.mixin_class(behavior)
class HeplineTruthHadron(_vector.PtEtaPhiMLorentzVector, _base.NanoCollection):
    """Weakly decaying b/c hadron with its decay vertex (relative to the true PV, mm)."""

    @property
    def decayLxy(self) -> Any:
        """Transverse decay length (mm)."""
        return np.hypot(self.decayX, self.decayY)

    @dask_property
    def jet(self) -> Any:
        """The jet this hadron labels, None if none."""
        return self._events().Jet._apply_global_index(self.jetIdxG)

    @jet.dask  # type: ignore[no-redef]
    def jet(self, dask_array: Any) -> Any:
        return dask_array._events().Jet._apply_global_index(dask_array.jetIdxG)


_finish_mixin("HeplineTruthHadron")


@ak.mixin_class(behavior)
class HeplineTower(_base.NanoCollection):
    """Calorimeter tower: ``eta``, ``phi``, ``eEM``, ``eHad`` plus derived energies."""

    @property
    def energy(self) -> Any:
        """Total measured energy ``eEM + eHad`` (GeV)."""
        return self.eEM + self.eHad

    @property
    def et(self) -> Any:
        """Transverse energy (GeV)."""
        return (self.eEM + self.eHad) / np.cosh(self.eta)


class HeplineSchema(NanoAODSchema):
    """coffea schema for hepline ntuples (``docs/ntuple-format.md``).

    Builds on :class:`coffea.nanoevents.NanoAODSchema` (counters, global indices, the
    ``GenPart`` parent/children transforms) with the hepline collections and mixins:

    - ``Jet`` (``HeplineJet``): pt/eta/phi/mass 4-vector; ``.tracks`` (jagged per jet, from
      ``Track_jetIdx``), ``.truthHadrons`` (from ``TruthHadron_jetIdx``), ``.genJet``.
    - ``Track``: candidate with the charged-pion mass; ``.jet``.
    - ``Photon`` (massless), ``Electron``, ``Muon`` (lepton masses): candidates.
    - ``TruthHadron``: 4-vector, ``.jet``, ``.decayLxy``.
    - ``GenJet``: 4-vector. ``GenPart``: NanoAOD ``GenParticle`` (``.parent``, ``.children``).
    - ``Tower``: ``.energy``, ``.et``. ``PV``, ``GenVtx``: NanoAOD ``Vertex`` (``.pos``).
    """

    __dask_capable__ = True

    mixins = {
        "Jet": "HeplineJet",
        "GenJet": "PtEtaPhiMCollection",
        "Track": "HeplineTrack",
        "Tower": "HeplineTower",
        "Photon": "HeplinePhoton",
        "Electron": "HeplineElectron",
        "Muon": "HeplineMuon",
        "TruthHadron": "HeplineTruthHadron",
        "GenPart": "GenParticle",
        "PV": "Vertex",
        "GenVtx": "Vertex",
    }
    all_cross_references = {
        "Jet_genJetIdx": "GenJet",
        "Track_jetIdx": "Jet",
        "TruthHadron_jetIdx": "Jet",
        "GenPart_genPartIdxMother": "GenPart",
    }
    inverse_references = {
        "Jet_trackIdxG": ("Track_jetIdx", "Jet"),
        "Jet_truthHadronIdxG": ("TruthHadron_jetIdx", "Jet"),
    }
    """``{new branch: (local index in the source collection, target collection)}``"""
    nested_items: dict = {}
    nested_index_items: dict = {}
    special_items = dict(NanoAODSchema.special_items)  # GenPart parents/children
    full_like_items = {
        "Photon_mass": (_transforms.full_like_from_offsets_form, ("oPhoton", 0.0)),
        "Photon_charge": (_transforms.full_like_from_offsets_form, ("oPhoton", 0.0)),
        "Electron_mass": (_transforms.full_like_from_offsets_form, ("oElectron", _ELECTRON_MASS)),
        "Muon_mass": (_transforms.full_like_from_offsets_form, ("oMuon", _MUON_MASS)),
        "Track_mass": (_transforms.full_like_from_offsets_form, ("oTrack", _CHARGED_PION_MASS)),
    }
    rename_items: dict = {}
    alias_items: dict = {}

    def _build_collections(self, field_names: Any, input_contents: Any) -> Any:
        branch_forms = dict(zip(field_names, input_contents, strict=True))
        for name, (index, target) in self.inverse_references.items():
            counter = "n" + target
            like = next(
                (
                    form
                    for key, form in branch_forms.items()
                    if key.startswith(target + "_") and form["class"].startswith("ListOffset")
                ),
                None,
            )
            if index not in branch_forms or counter not in branch_forms or like is None:
                continue
            offsets = _transforms.counts2offsets_form(branch_forms[counter])
            branch_forms[name] = _invert_index_form(branch_forms[index], offsets, like)
        return super()._build_collections(list(branch_forms), list(branch_forms.values()))

    @classmethod
    def behavior(cls) -> dict[Any, Any]:
        return behavior


class RestrictedHeplineSchema(HeplineSchema):
    """:class:`HeplineSchema` for a form restricted to some branches (``run_processor(...,
    preload=...)``, :func:`analysis.io.ingest.form_filter`): cross-references into collections
    left out of the form on purpose (``Track_jetIdx`` without ``Track``) are not warned
    about. The warning would come from every chunk, in every worker process."""

    warn_missing_crossrefs = False


def restricted_schema(schema: type) -> type:
    """The schema to use with a restricted form: :class:`RestrictedHeplineSchema` for
    :class:`HeplineSchema`; others unchanged (:class:`CMSNanoAODSchema` is already quiet)."""
    return RestrictedHeplineSchema if schema is HeplineSchema else schema


class CMSNanoAODSchema(NanoAODSchema):
    """coffea's ``NanoAODSchema`` without warnings for cross-references into collections
    that are absent from the file (skims and small test files drop e.g. ``FatJet``), nor
    for the constant fields it synthesises (``Photon_mass`` and ``Photon_charge`` 0, ...)
    over branches an older era stores: those are left out of the form first, so coffea
    fills them as it does for newer eras, without a warning per chunk."""

    warn_missing_crossrefs = False

    def _build_collections(self, field_names: Any, input_contents: Any) -> Any:
        kept = [(n, c) for n, c in zip(field_names, input_contents, strict=True)
                if n not in self.full_like_items]
        return super()._build_collections([n for n, _ in kept], [c for _, c in kept])


