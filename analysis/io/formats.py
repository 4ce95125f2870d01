"""The facts of an input file: its format, storage, NanoAOD era, data or simulation, units.

Pure functions on names (the ROOT keys of a file, the branch or field names of its events
tree); :mod:`analysis.io.ingest` opens the files and calls them. The formats:

``hepline``
    The project's ntuples (``Events`` TTree, ``Runs`` TTree, ``hepline_metadata`` JSON).
``nanoaod``
    CMS NanoAOD (``Events``), any era from v5 on (:data:`NANOAOD_ERAS`), simulation or
    collision data.
``physlite``
    ATLAS DAOD_PHYSLITE (``CollectionTree`` with ``Analysis*`` containers). Energies and
    momenta are in MeV in the file and in the NanoEvents; :func:`to_gev` (or :data:`MEV`)
    converts them at the edge.
``delphes``
    Delphes output (``Delphes``).

Each may be a classic TTree or an RNTuple (``storage``), wherever coffea and uproot read
it. The era table, the signatures used to detect each era and the PHYSLITE names are
documented in ``docs/ingestion.md``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from analysis.core.errors import ConfigError, InputFileError

__all__ = [
    "DEFAULT_TREES",
    "FORMAT_NAMES",
    "MEV",
    "NANOAOD_ERAS",
    "NANOAOD_VERSION_KEY",
    "PHYSLITE_BTAGGING",
    "PHYSLITE_BTAGGING_LINK",
    "PHYSLITE_COLLECTIONS",
    "PHYSLITE_MC_WEIGHTS",
    "RNTUPLE_CLASSES",
    "STORAGES",
    "TREE_CLASSES",
    "FileInfo",
    "NanoAODEra",
    "check_nanoaod_era",
    "detect_nanoaod_version",
    "field_names",
    "format_from_keys",
    "is_data",
    "is_physlite",
    "nanoaod_era",
    "physlite_taggers",
    "require_physlite_btagging",
    "storage_of",
    "to_gev",
]

FORMAT_NAMES = ("hepline", "nanoaod", "physlite", "delphes")
"""Every input format, as :func:`analysis.io.ingest.detect_format` names them."""

STORAGES = ("TTree", "RNTuple")
"""How the events are stored: a classic ``TTree`` or an ``RNTuple``."""

TREE_CLASSES = ("TTree", "TNtuple", "TNtupleD")
"""ROOT class names read as a classic TTree."""

RNTUPLE_CLASSES = ("ROOT::RNTuple", "ROOT::Experimental::RNTuple")
"""ROOT class names read as an RNTuple (the second: files written before ROOT 6.34)."""

DEFAULT_TREES: Mapping[str, str] = {
    "hepline": "Events", "nanoaod": "Events", "physlite": "CollectionTree", "delphes": "Delphes",
}
"""The events tree (or RNTuple) of each format."""

MEV = 1e-3
"""GeV per MeV: PHYSLITE stores energies and momenta in MeV, hepline works in GeV."""

def to_gev(values: Any) -> Any:
    """``values`` (MeV: PHYSLITE ``pt``, ``m``, ``e``, isolation energies) in GeV.

    Works on numbers, numpy and (virtual or eager) awkward arrays alike: ``values * MEV``.
    Convert at the edge, where PHYSLITE quantities enter a selection or a histogram; the
    NanoEvents themselves keep the file's MeV.
    """
    return values * MEV


def storage_of(classname: str) -> str | None:
    """``"TTree"`` or ``"RNTuple"`` for a ROOT class name, None for anything else."""
    if classname in TREE_CLASSES:
        return "TTree"
    if classname in RNTUPLE_CLASSES:
        return "RNTuple"
    return None


def _rntuple_keys(rntuple: Any) -> set[str]:
    """The names ``rntuple.keys(recursive=True)`` gives, from the header's field records.

    uproot 5.7 builds the recursive list with a scan of every field per field (3.6 s for
    the 2307 fields of a NanoAOD RNTuple); the parent links of the records give the same
    names in 50 ms: ``parent.child``, with the ``_0`` item level of a collection skipped.
    """
    records = getattr(rntuple, "field_records", None)
    if records is None:  # another uproot: its own (slower) listing
        return set(rntuple.keys(recursive=True))
    names = [r.field_name for r in records]
    parents = [r.parent_field_id for r in records]
    full: dict[int, str] = {}

    def path(i: int) -> str:
        chain = []
        while i not in full and parents[i] != i:
            chain.append(i)
            i = parents[i]
        if i not in full:
            full[i] = names[i]
        for j in reversed(chain):
            parent = full[parents[j]]
            full[j] = parent if names[j] == "_0" else f"{parent}.{names[j]}"
        return full[chain[0]] if chain else full[i]

    return {path(i) for i in range(len(names))}


def field_names(tree: Any, storage: str) -> frozenset[str]:
    """Every branch (TTree) or field (RNTuple) name of an uproot events tree.

    TTree: recursive names, both as full paths (``Jet/Jet.PT``) and as leaf names. RNTuple:
    the fields, plus the NanoAOD names of collection members (uproot spells ``Jet_pt`` of
    an RNTuple NanoAOD file ``_collection10.Jet_pt``), so that the same branch names work
    for both storages.
    """
    if storage == "RNTuple":
        names = _rntuple_keys(tree)
        names |= {n.split(".", 1)[1] for n in names if n.startswith("_collection") and "." in n}
        return frozenset(names)
    return frozenset(set(tree.keys(recursive=True, full_paths=True))
                     | set(tree.keys(recursive=True, full_paths=False)))


# ---------------------------------------------------------------------------------------
# Format detection
# ---------------------------------------------------------------------------------------
def is_physlite(top_branches: Iterable[str]) -> bool:
    """True for the top-level branches of a DAOD_PHYSLITE ``CollectionTree``: its analysis
    containers are named ``Analysis<Name>`` (``AnalysisJetsAuxDyn.pt``,
    ``AnalysisElectronsAux.``); DAOD_PHYS and AODs use other names
    (``AntiKt4EMPFlowJets``, ``Electrons``)."""
    return any(b.startswith("Analysis") and "Aux" in b for b in top_branches)


def format_from_keys(keys: Mapping[str, str], *, hepline_key: str,
                     events_branches: Collection[str] = (),
                     collection_branches: Collection[str] = ()) -> str | None:
    """The format from a file's top-level keys (``{name: classname}``), or None.

    ``events_branches``: top-level names of the ``Events`` tree (hepline ntuples without
    their metadata key are told apart by ``Track_jetIdx`` and ``Tower_eEM``);
    ``collection_branches``: those of ``CollectionTree`` (:func:`is_physlite`). A
    ``CollectionTree`` that is not PHYSLITE gives None.
    """
    if hepline_key in keys:
        return "hepline"
    if "Delphes" in keys:
        return "delphes"
    if "Events" in keys:
        return "hepline" if {"Track_jetIdx", "Tower_eEM"} <= set(events_branches) else "nanoaod"
    if "CollectionTree" in keys and is_physlite(collection_branches):
        return "physlite"
    return None


PHYSLITE_MC_WEIGHTS = "EventInfoAuxDyn.mcEventWeights"
"""The branch of the MC event weights (``EventInfo.mcEventWeights``; the nominal is the first)."""

_MC_WEIGHT = {"nanoaod": "genWeight", "physlite": PHYSLITE_MC_WEIGHTS}


def is_data(fmt: str, branches: Collection[str]) -> bool:
    """True for collision data: a NanoAOD file without ``genWeight``, a PHYSLITE file
    without ``EventInfoAuxDyn.mcEventWeights``. hepline and Delphes files are simulation."""
    weight = _MC_WEIGHT.get(fmt)
    return weight is not None and weight not in branches


# ---------------------------------------------------------------------------------------
# NanoAOD eras
# ---------------------------------------------------------------------------------------
NANOAOD_VERSION_KEY = "selection.objects.nanoaod.version"
"""The config key an unrecognised NanoAOD era tells the user to set (callers may name
their own: :func:`nanoaod_era`'s ``config_key``)."""

_JET_ID_INPUTS = ("Jet_neHEF", "Jet_neEmEF", "Jet_chHEF", "Jet_chEmEF", "Jet_muEF",
                  "Jet_chMultiplicity", "Jet_neMultiplicity")


@dataclass(frozen=True)
class NanoAODEra:
    """Where one NanoAOD era keeps what an analysis reads (branch names).

    Attributes:
        version: the label (``"v5"``, ``"v9"``, ``"v12"``, ``"v15"``).
        covers: the NanoAOD versions and data-taking the label stands for.
        signature: branches that must all be present for :func:`detect_nanoaod_version`.
        absent: branches that must all be absent.
        photon_id: the photon cut-based ID branch.
        photon_id_kind: ``"level"`` (0 fail, 1 loose, 2 medium, 3 tight) or ``"bitmap"``
            (bit 0 loose, bit 1 medium, bit 2 tight).
        photon_mva: the photon MVA ID score.
        jet_id: the jet ID bitmask (bit 1 tight, bit 2 tight lepton veto), or None when
            the era stores only its inputs (``jet_id_inputs``) and the ID is computed.
        jet_id_inputs: the branches the jet ID is computed from when ``jet_id`` is None.
        btag: the stored b-tagging discriminants (the era's recommended one first).
        runs_sums: the ``Runs`` branches of Σw and Σw².
        mc_only: branches simulation has and collision data lacks.
    """

    version: str
    covers: str
    signature: tuple[str, ...]
    absent: tuple[str, ...]
    photon_id: str
    photon_id_kind: str
    photon_mva: str
    jet_id: str | None
    jet_id_inputs: tuple[str, ...]
    btag: tuple[str, ...]
    runs_sums: tuple[str, str] = ("genEventSumw", "genEventSumw2")
    mc_only: tuple[str, ...] = ("genWeight", "Jet_hadronFlavour")

    def required_branches(self, *, is_data: bool, btag: str | None = None) -> dict[str, str]:
        """``{branch: what it is for}`` of what this mapping reads from the events tree.

        ``btag``: the discriminant branch in use (default: the era's first).
        """
        need = {self.photon_id: "photon ID", self.photon_mva: "photon MVA ID"}
        if self.jet_id is not None:
            need[self.jet_id] = "jet ID"
        else:
            need.update({b: "jet ID input" for b in self.jet_id_inputs})
        need[btag or self.btag[0]] = "b-tagging discriminant"
        if not is_data:
            need.update({"genWeight": "generator weight", "Jet_hadronFlavour": "jet truth flavour"})
        return need


NANOAOD_ERAS: Mapping[str, NanoAODEra] = {
    era.version: era
    for era in (
        NanoAODEra(
            version="v15",
            covers="NanoAOD v15 (Run 3 re-NANO and 2025 data, CMSSW 15_0)",
            signature=("Jet_btagUParTAK4B",), absent=("Jet_jetId",),
            photon_id="Photon_cutBased", photon_id_kind="level", photon_mva="Photon_mvaID",
            jet_id=None, jet_id_inputs=_JET_ID_INPUTS,
            btag=("Jet_btagUParTAK4B", "Jet_btagPNetB", "Jet_btagDeepFlavB"),
        ),
        NanoAODEra(
            version="v12",
            covers="NanoAOD v12-v14 (Run 3 2022-2024, CMSSW 13_0-14_0)",
            signature=("Rho_fixedGridRhoFastjetAll", "Jet_jetId"), absent=(),
            photon_id="Photon_cutBased", photon_id_kind="level", photon_mva="Photon_mvaID",
            jet_id="Jet_jetId", jet_id_inputs=_JET_ID_INPUTS,
            btag=("Jet_btagPNetB", "Jet_btagRobustParTAK4B", "Jet_btagDeepFlavB"),
        ),
        NanoAODEra(
            version="v9",
            covers="NanoAOD v6-v9 (Run 2 re-reco and Ultra Legacy, CMSSW 10_2 and 10_6)",
            signature=("Photon_cutBased_Fall17V1Bitmap", "fixedGridRhoFastjetAll"), absent=(),
            photon_id="Photon_cutBased", photon_id_kind="level", photon_mva="Photon_mvaID",
            jet_id="Jet_jetId", jet_id_inputs=_JET_ID_INPUTS,
            btag=("Jet_btagDeepFlavB", "Jet_btagDeepB"),
        ),
        NanoAODEra(
            version="v5",
            covers="NanoAOD v5 (Run 2 2016-2018 re-reco, CMSSW 10_2)",
            signature=("Photon_cutBasedBitmap", "fixedGridRhoFastjetAll"), absent=(),
            photon_id="Photon_cutBasedBitmap", photon_id_kind="bitmap", photon_mva="Photon_mvaID",
            jet_id="Jet_jetId", jet_id_inputs=_JET_ID_INPUTS,
            btag=("Jet_btagDeepFlavB", "Jet_btagDeepB"),
            runs_sums=("genEventSumw_", "genEventSumw2_"),
        ),
    )
}
"""The NanoAOD eras hepline maps, newest first (the order :func:`detect_nanoaod_version`
tries them in)."""


def detect_nanoaod_version(branches: Collection[str]) -> str | None:
    """The era label of a NanoAOD events tree from its branch names, or None.

    The first era of :data:`NANOAOD_ERAS` whose ``signature`` branches are all present
    and whose ``absent`` branches are all missing.
    """
    for era in NANOAOD_ERAS.values():
        if all(b in branches for b in era.signature) and not any(b in branches for b in era.absent):
            return era.version
    return None


def _signatures() -> str:
    parts = []
    for era in NANOAOD_ERAS.values():
        text = " + ".join(era.signature)
        if era.absent:
            text += " without " + ", ".join(era.absent)
        parts.append(f"{era.version}: {text}")
    return "; ".join(parts)


def nanoaod_era(info: FileInfo, version: str | None = None, *,
                config_key: str = NANOAOD_VERSION_KEY) -> NanoAODEra:
    """The :class:`NanoAODEra` of a NanoAOD file: ``version`` if given, else the detected one.

    Raises:
        ConfigError: ``version`` is not an era of :data:`NANOAOD_ERAS` (names ``config_key``).
        InputFileError: no ``version`` and the era was not recognised: the message names the
            file, what was detected, the signatures and ``config_key``.
    """
    known = ", ".join(NANOAOD_ERAS)
    if version is not None:
        if version not in NANOAOD_ERAS:
            raise ConfigError(f"{config_key}: unknown NanoAOD version {version!r}; expected one of {known}")
        return NANOAOD_ERAS[version]
    if info.nanoaod_version is not None and info.nanoaod_version in NANOAOD_ERAS:
        return NANOAOD_ERAS[info.nanoaod_version]
    detected = info.nanoaod_version or "unknown"
    raise InputFileError(
        info.path,
        f"NanoAOD version not recognised from the branches of tree '{info.treename}' "
        f"(detected: {detected}; signatures: {_signatures()}); set {config_key} to one of {known}",
    )


def check_nanoaod_era(info: FileInfo, era: NanoAODEra, *, btag: str | None = None) -> None:
    """Raise :class:`InputFileError` naming the file and the first branch ``era``'s mapping
    needs (:meth:`NanoAODEra.required_branches`, for data or simulation as the file is)
    that the file lacks."""
    for branch, purpose in era.required_branches(is_data=info.is_data, btag=btag).items():
        if branch not in info.branches:
            kind = "collision data" if info.is_data else "simulation"
            raise InputFileError(
                info.path,
                f"missing branch {branch} ({purpose}) that the NanoAOD {era.version} mapping "
                f"needs for {kind}, in tree '{info.treename}'",
            )


# ---------------------------------------------------------------------------------------
# PHYSLITE
# ---------------------------------------------------------------------------------------
PHYSLITE_COLLECTIONS: Mapping[str, str] = {
    "photons": "Photons", "jets": "Jets", "electrons": "Electrons", "muons": "Muons",
    "event_info": "EventInfo",
}
"""coffea ``PHYSLITESchema`` collection names (the file's ``Analysis<Name>`` containers
without the ``Analysis`` prefix)."""

PHYSLITE_BTAGGING = "BTagging_AntiKt4EMPFlow"
"""The b-tagging container of the small-R (EMPFlow) jets."""

PHYSLITE_BTAGGING_LINK = "AnalysisJetsAuxDyn.btaggingLink"
"""The jets' ElementLink into :data:`PHYSLITE_BTAGGING`."""


def physlite_taggers(branches: Collection[str], container: str = PHYSLITE_BTAGGING) -> tuple[str, ...]:
    """The taggers whose b, c and light probabilities ``container`` stores (``DL1dv01``,
    ``GN2v00``, ``GN2v01``, ...: branches ``<container>AuxDyn.<tagger>_pb``/``_pc``/``_pu``)."""
    prefix = f"{container}AuxDyn."
    found = []
    for b in sorted(branches):
        if b.startswith(prefix) and b.endswith("_pb"):
            tagger = b[len(prefix):-3]
            if all(f"{prefix}{tagger}_{p}" in branches for p in ("pc", "pu")):
                found.append(tagger)
    return tuple(found)


def require_physlite_btagging(info: FileInfo, container: str = PHYSLITE_BTAGGING) -> tuple[str, ...]:
    """The taggers of ``container`` (:func:`physlite_taggers`); raise :class:`InputFileError`
    naming the file and the container when the jets' link or the container's probabilities
    are missing."""
    if PHYSLITE_BTAGGING_LINK not in info.branches:
        raise InputFileError(info.path, f"missing branch {PHYSLITE_BTAGGING_LINK} (the jets' link to the "
                                        f"b-tagging container {container}) in tree '{info.treename}'")
    taggers = physlite_taggers(info.branches, container)
    if not taggers:
        raise InputFileError(info.path, f"no b-tagging container {container} with tagger probabilities "
                                        f"(<tagger>_pb, _pc, _pu) in tree '{info.treename}'")
    return taggers


# ---------------------------------------------------------------------------------------
# File facts
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileInfo:
    """What :func:`analysis.io.ingest.validate_file` (and ``inspect_file``) learned about a
    good file.

    Attributes:
        path: the file.
        format: one of :data:`FORMAT_NAMES`.
        treename: the events tree (or RNTuple): ``Events``, ``CollectionTree``, ``Delphes``
            (also as :attr:`tree`).
        num_entries: its entries (also as :attr:`n_entries`).
        uuid: the ROOT file's UUID (``TFile::fUUID``, 16 bytes): its identity in provenance
            and in coffea's metadata cache.
        storage: ``"TTree"`` or ``"RNTuple"``.
        is_data: collision data (:func:`is_data`).
        nanoaod_version: the era label for NanoAOD (:func:`detect_nanoaod_version`; None when
            not recognised, and for the other formats).
        branches: every branch or field name of the events tree (:func:`field_names`).
    """

    path: str
    format: str
    treename: str
    num_entries: int
    uuid: bytes = b""
    storage: str = "TTree"
    is_data: bool = False
    nanoaod_version: str | None = None
    branches: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    @property
    def tree(self) -> str:
        """The events tree's name (:attr:`treename`)."""
        return self.treename

    @property
    def n_entries(self) -> int:
        """The events tree's entries (:attr:`num_entries`)."""
        return self.num_entries

    def to_dict(self) -> dict[str, Any]:
        """The facts as JSON-able values (without :attr:`branches` and :attr:`uuid`)."""
        return {"path": self.path, "format": self.format, "tree": self.treename,
                "storage": self.storage, "n_entries": self.num_entries, "is_data": self.is_data,
                "nanoaod_version": self.nanoaod_version}
