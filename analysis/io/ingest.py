"""Ingestion: one API from files (or a coffea-style fileset) to NanoEvents or plain awkward.

Four input formats are understood, each stored as a classic TTree or as an RNTuple
(:mod:`analysis.io.formats` holds the facts: detection rules, NanoAOD eras, units):

``hepline``
    The project's own ntuples (``docs/ntuple-format.md``): NanoAOD-style flat branches in an
    ``Events`` TTree, a ``Runs`` TTree and a ``hepline_metadata`` JSON TObjString. Read with
    :class:`HeplineSchema`, which adds 4-vector behaviours and the cross-references
    ``Jet.tracks``, ``Jet.truthHadrons``, ``Jet.genJet``, ``Track.jet``, ``TruthHadron.jet``
    and ``GenPart.parent`` / ``GenPart.children``.
``nanoaod``
    Real CMS NanoAOD (``Events`` tree), any era (:data:`~analysis.io.formats.NANOAOD_ERAS`),
    simulation or collision data, read with coffea's ``NanoAODSchema`` (through
    :class:`CMSNanoAODSchema`, which only silences the warnings about cross-references to
    collections a skim dropped).
``physlite``
    ATLAS DAOD_PHYSLITE (``CollectionTree``), read with coffea's ``PHYSLITESchema``
    (energies in MeV: :func:`~analysis.io.formats.to_gev`).
``delphes``
    Delphes output (``Delphes`` tree), read with coffea's ``DelphesSchema``.

The format is detected from the file (:func:`detect_format`) or given explicitly;
:func:`inspect_file` gives the rest of a file's facts (:class:`FileInfo`: storage, entries,
data or simulation, NanoAOD era, branch names) and :func:`sum_of_weights` the generator
Σw, Σw² of a sample's files.

Bad input never reaches coffea as a bare uproot traceback: :func:`validate_file` checks
existence, size, the ROOT header (truncation), readability, the tree, the required branches
and the number of events, and raises :class:`InputFileError` naming the file and the
problem. :func:`validate_files` applies the skip-bad-files policy (see ``docs/ingestion.md``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import uproot
from coffea.nanoevents import DelphesSchema, NanoEventsFactory, PHYSLITESchema

from analysis.core.atomic import is_temporary
from analysis.core.errors import InputFileError
from analysis.core.format import (
    HEPLINE_COLLECTIONS,
    HEPLINE_EVENT_BRANCHES,
    HEPLINE_METADATA_KEY,
    HEPLINE_RUNS_BRANCHES,
    HEPLINE_VERTICES,
    hepline_branches,
)
from analysis.io.formats import (
    MEV,
    PHYSLITE_BTAGGING,
    RNTUPLE_CLASSES,
    TREE_CLASSES,
    FileInfo,
    detect_nanoaod_version,
    field_names,
    format_from_keys,
    is_data,
    require_physlite_btagging,
    storage_of,
    to_gev,
)
from analysis.io.lumi import load_lumi_mask
from analysis.io.schemas import CMSNanoAODSchema, HeplineSchema

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_DATASET",
    "FORMATS",
    "HEPLINE_COLLECTIONS",
    "HEPLINE_EVENT_BRANCHES",
    "HEPLINE_RUNS_BRANCHES",
    "HEPLINE_VERTICES",
    "MEV",
    "CMSNanoAODSchema",
    "FileInfo",
    "Fileset",
    "HeplineSchema",
    "InputFileError",
    "build_fileset",
    "clear_validation_memo",
    "detect_format",
    "form_filter",
    "hepline_branches",
    "inspect_file",
    "iter_files",
    "load_lumi_mask",
    "open_events",
    "quiet_unreadable_branches",
    "unique_inputs",
    "read_arrays",
    "read_metadata",
    "required_branches",
    "sum_of_weights",
    "to_gev",
    "validate_file",
    "validate_files",
    "validate_fileset",
]

# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------
# Formats
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FormatSpec:
    name: str
    treename: str
    schema: type
    required_branches: tuple[str, ...]
    form_extras: tuple[str, ...] | None = None
    """Branches the schema's behaviours need in any restricted form (:func:`form_filter`):
    event IDs, and ``Coll_field`` names needed whenever collection ``Coll`` is in the form.
    None: the format's form cannot be restricted."""


_EVENT_IDS = ("run", "luminosityBlock", "event")

FORMATS: dict[str, FormatSpec] = {
    # photons get a synthesised charge and mass (HeplineSchema.full_like_items; coffea's
    # NanoAODSchema as for NanoAOD v12, which has no Photon_mass)
    "hepline": FormatSpec("hepline", "Events", HeplineSchema, tuple(hepline_branches()),
                          (*_EVENT_IDS, "Electron_charge", "Muon_charge")),
    "nanoaod": FormatSpec("nanoaod", "Events", CMSNanoAODSchema, _EVENT_IDS,
                          (*_EVENT_IDS, *(f"{c}_{f}" for c in ("Electron", "Muon") for f in ("charge", "mass")))),
    "physlite": FormatSpec("physlite", "CollectionTree", PHYSLITESchema, ()),
    "delphes": FormatSpec("delphes", "Delphes", DelphesSchema, ("Event_size",)),
}
"""Known formats: default tree, coffea schema and the branches a file must have."""

_TREE_CLASSES = TREE_CLASSES
_EVENTS_CLASSES = (*TREE_CLASSES, *RNTUPLE_CLASSES)


_CANDIDATE_FIELDS = ("pt", "eta", "phi", "mass", "charge")


def form_filter(branches: Iterable[str], fmt: str, *, strict: bool = False) -> list[str] | None:
    """The branch names a NanoEvents form restricted to ``branches`` must contain.

    ``branches`` plus what the format's schema needs to build the collections they belong
    to: event IDs, and the 4-vector fields and charge of every collection used (vector
    and candidate behaviours check for them; for NanoAOD also the collection's counter
    ``n<Coll>``, from which coffea synthesises ``Jet_charge`` and ``Photon_mass``). Used as uproot's ``filter_name`` when the
    factory opens a tree, so that the form (and coffea's per-branch interpretation work)
    covers these names only, not the whole tree (hepline ntuples hold ≈ 90 branches, the
    HH selection reads 26); names a file lacks are ignored there (the schema synthesises
    e.g. photon masses). ``strict=True``: only the names a valid file must have (event IDs,
    lepton charges, NanoAOD lepton masses), to require them when validating. None for
    formats whose form cannot be restricted.
    """
    spec = _spec(fmt)
    if spec.form_extras is None:
        return None
    branches = list(branches)
    used = list(dict.fromkeys(b.split("_", 1)[0] for b in branches if "_" in b))
    extras = [e for e in spec.form_extras if "_" not in e or e.split("_", 1)[0] in used]
    if not strict:
        extras += [f"{c}_{f}" for c in used for f in _CANDIDATE_FIELDS]
        if fmt == "nanoaod":  # the counters: coffea synthesises Jet_charge, Photon_mass, ... from them
            extras += [f"n{c}" for c in used]
    return list(dict.fromkeys([*branches, *extras]))


def required_branches(fmt: str) -> tuple[str, ...]:
    """Branches :func:`validate_file` requires by default for format ``fmt``."""
    return _spec(fmt).required_branches


def _spec(fmt: str) -> FormatSpec:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise ValueError(
            f"unknown input format {fmt!r}; expected one of {sorted(FORMATS)} or 'auto'"
        ) from None


def _is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


@functools.cache
def _bound_xrootd_waits() -> None:
    """Bound how long the XRootD client waits for a server that does not answer.

    Its defaults (5 connection attempts, each in a 120 s window) hang a stage ≈ 8 minutes at
    an unreachable server; here 2 attempts in 10 s windows, unless the standard
    ``XRD_CONNECTIONRETRY``/``XRD_CONNECTIONWINDOW`` environment variables say otherwise.
    """
    try:
        from XRootD.client import EnvPutInt
    except ImportError:  # no XRootD client: uproot says so when the URL is opened
        return
    for key, value in (("ConnectionRetry", 2), ("ConnectionWindow", 10)):
        if f"XRD_{key.upper()}" not in os.environ:
            EnvPutInt(key, value)


def _remote_reason(path: str, exc: Exception) -> str:
    """Why a remote file cannot be opened, in one line (server down, no such file, ...)."""
    msg = " ".join(str(exc).split())
    low = msg.lower()
    if path.startswith(("root://", "roots://")):
        server = path.split("://", 1)[1].split("/", 1)[0]
        if "fsspec-xrootd" in low or "fsspec_xrootd" in low:
            return "root:// URLs need fsspec-xrootd (pip install 'hepline[farm]')"
        if "no such file" in low or "[3011]" in msg:
            return f"no such file on the XRootD server {server} ({msg})"
        if "connection" in low or "expired" in low or "[fatal]" in low:
            return f"XRootD server {server} unreachable ({msg}): check the URL's host and port"
        if "permission denied" in low or "[3010]" in msg:
            return f"the XRootD server {server} refuses to serve it ({msg})"
    return f"cannot be opened ({type(exc).__name__}: {msg})"


def unique_inputs(paths: Iterable[str | os.PathLike[str]], what: str = "input") -> list[str]:
    """``paths`` without repeats (the same file given twice, also through another path or a
    link: compared by resolved path), in order; each repeat is logged as a warning. A file
    counted twice would double its events but not always its sum of weights."""
    seen: dict[str, str] = {}
    out: list[str] = []
    for p in paths:
        path = os.fspath(p)
        key = path if "://" in path else os.path.realpath(path)
        if key in seen:
            log.warning("%s %s given more than once (as %s): read once", what, path, seen[key])
            continue
        seen[key] = path
        out.append(path)
    return out


def _check_local_file(path: str) -> None:
    """Existence, size and ROOT-header checks that need no ROOT I/O."""
    p = Path(path)
    if is_temporary(p):
        raise InputFileError(path, "the temporary file of an unfinished write (a killed job's), never an input; "
                                   "rerun the job that writes it")
    if not p.exists():
        raise InputFileError(path, "file not found")
    if not p.is_file():
        raise InputFileError(path, "not a regular file (is it a directory?)")
    size = p.stat().st_size
    if size == 0:
        raise InputFileError(path, "zero-byte file (empty; was its writer killed?)")
    with p.open("rb") as fh:
        head = fh.read(24)
    if head[:4] != b"root":
        raise InputFileError(
            path, "not a ROOT file (corrupt or wrong type: no 'root' magic bytes at the start)"
        )
    if len(head) < 16:
        raise InputFileError(path, f"truncated ROOT file: only {size} bytes, header incomplete")
    version = int.from_bytes(head[4:8], "big")
    big = version >= 1000000
    end = int.from_bytes(head[12:20] if big else head[12:16], "big")
    if size < end:
        raise InputFileError(
            path,
            f"truncated ROOT file: {size} bytes on disk but its header records {end} "
            "(copy or write was interrupted)",
        )


@contextlib.contextmanager
def _open_root(path: str | os.PathLike[str], uproot_options: Mapping[str, Any] | None = None) -> Any:
    """``uproot.open`` with the local checks first and every failure as InputFileError."""
    path = os.fspath(path)
    remote = _is_remote(path)
    if remote:
        _bound_xrootd_waits()
    else:
        _check_local_file(path)
    try:
        f = uproot.open({path: None}, **dict(uproot_options or {}))
    except Exception as exc:  # uproot raises many types for corrupt input
        reason = (_remote_reason(path, exc) if remote and isinstance(exc, (OSError, ImportError))
                  else f"corrupt or unreadable ROOT file ({type(exc).__name__}: {exc})")
        raise InputFileError(path, reason) from exc
    try:
        yield f
    finally:
        f.close()


def _top_keys(f: Any) -> dict[str, str]:
    """``{name without cycle: classname}`` of the top directory."""
    try:
        return {k.split(";")[0]: v for k, v in f.classnames(recursive=False).items()}
    except Exception as exc:
        raise InputFileError(
            f.file_path, f"corrupt ROOT file: cannot read its directory ({exc})"
        ) from exc


def _top_names(f: Any, name: str, keys: Mapping[str, str]) -> set[str]:
    """Top-level branch names of tree ``name`` (RNTuple: every field name), empty if unreadable."""
    storage = storage_of(keys.get(name, ""))
    if storage is None:
        return set()
    try:
        obj = f[name]
        return set(field_names(obj, storage)) if storage == "RNTuple" else set(obj.keys(recursive=False))
    except Exception:  # noqa: BLE001 - an unreadable tree is reported by _check_tree
        return set()


def _detect(f: Any, path: str) -> str:
    keys = _top_keys(f)
    decided = {HEPLINE_METADATA_KEY, "Delphes"} & keys.keys()
    events = _top_names(f, "Events", keys) if "Events" in keys and not decided else set()
    collection = (_top_names(f, "CollectionTree", keys)
                  if "CollectionTree" in keys and not decided and "Events" not in keys else set())
    fmt = format_from_keys(keys, hepline_key=HEPLINE_METADATA_KEY, events_branches=events,
                           collection_branches=collection)
    if fmt is not None:
        return fmt
    if "CollectionTree" in keys:
        raise InputFileError(
            path, "'CollectionTree' holds no Analysis* containers: an ATLAS xAOD that is not "
                  "DAOD_PHYSLITE (only PHYSLITE is read)"
        )
    found = ", ".join(f"{k} ({v})" for k, v in keys.items()) or "nothing"
    raise InputFileError(
        path, "no 'Events', 'CollectionTree' or 'Delphes' tree, cannot tell the format "
              f"(file holds: {found})"
    )


def detect_format(path: str | os.PathLike[str]) -> str:
    """``"hepline"``, ``"nanoaod"``, ``"physlite"`` or ``"delphes"``, from the file's keys.

    A ``Delphes`` tree means Delphes; an ``Events`` tree with a ``hepline_metadata`` key (or
    the hepline-only branches ``Track_jetIdx`` and ``Tower_eEM``) means hepline; any other
    ``Events`` tree is taken as CMS NanoAOD; a ``CollectionTree`` with ``Analysis*``
    containers is ATLAS PHYSLITE. TTree or RNTuple alike. Raises :class:`InputFileError`
    otherwise.
    """
    with _open_root(path) as f:
        return _detect(f, os.fspath(path))


_NAME_SETS: dict[frozenset[str], frozenset[str]] = {}


def _shared(names: frozenset[str]) -> frozenset[str]:
    """One frozenset object per distinct set of branch names: the files of a dataset share
    their branch list, and remembered validations (:func:`_validate_or_skip`) hold it."""
    if len(_NAME_SETS) >= 64:
        _NAME_SETS.clear()
    return _NAME_SETS.setdefault(names, names)


def _read_all(tree: Any, path: str, treename: str, names: Iterable[str]) -> None:
    """Decompress and interpret every basket of ``names`` (the ``deep`` check)."""
    for name in names:
        try:
            tree[name].array(library="ak")
        except Exception as exc:
            raise InputFileError(
                path,
                f"corrupt ROOT file: branch {name} of tree '{treename}' cannot be read "
                f"({type(exc).__name__}: {exc})",
            ) from exc


def _check_tree(f: Any, path: str, treename: str, required: Iterable[str],
                deep: bool = False) -> tuple[Any, int, frozenset[str], str]:
    """``(tree, entries, branch names, storage)`` of a good events tree (TTree or RNTuple)."""
    keys = _top_keys(f)
    if treename not in keys:
        found = ", ".join(f"{k} ({v})" for k, v in keys.items()) or "nothing"
        raise InputFileError(path, f"no tree '{treename}' in file (file holds: {found})")
    classname = keys[treename]
    storage = storage_of(classname)
    if storage is None:
        raise InputFileError(path, f"'{treename}' is a {classname}, not a TTree or an RNTuple")
    try:
        tree = f[treename]
        names = _shared(field_names(tree, storage))
        num_entries = int(tree.num_entries)
    except Exception as exc:
        raise InputFileError(
            path, f"corrupt ROOT file: cannot read tree '{treename}' ({exc})"
        ) from exc
    missing = [b for b in required if b not in names]
    if missing:
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        shown = ", ".join(missing[:10]) + more
        noun = "branch" if len(missing) == 1 else "branches"
        raise InputFileError(path, f"missing required {noun} {shown} in tree '{treename}'")
    if num_entries == 0:
        raise InputFileError(path, f"tree '{treename}' has zero events")
    if deep:
        _read_all(tree, path, treename, tree.keys(recursive=True))
    return tree, num_entries, names, storage


def validate_file(
    path: str | os.PathLike[str],
    required_branches: Iterable[str] | None = None,
    *,
    format: str = "auto",
    treename: str | None = None,
    deep: bool = False,
    uproot_options: Mapping | None = None,
    require_btagging: bool = False,
) -> FileInfo:
    """Check one input file; return its :class:`FileInfo` or raise :class:`InputFileError`.

    Checks, in order: the file exists and is not empty; it starts with the ROOT magic and is
    not shorter than its header says (truncated); uproot can open it; the format can be
    detected (``format="auto"``); the tree (``treename`` or the format's default) exists and
    is a TTree or an RNTuple; every required branch is present (default: the format's
    :func:`required_branches`; pass ``()`` to require none); the tree has at least one
    entry. With ``deep=True`` every basket of every branch is also read (catches corrupt
    data inside an intact file structure; costs a full read). With ``require_btagging``, a
    PHYSLITE file must hold the jets' b-tagging link and container
    (:func:`analysis.io.formats.require_physlite_btagging`; other formats: list their
    discriminant in ``required_branches``). The message names the file and the missing
    tree/branch/container.
    """
    path = os.fspath(path)
    with _open_root(path, uproot_options) as f:
        fmt = _detect(f, path) if format == "auto" else _spec(format).name
        spec = _spec(fmt)
        tree_name = treename or spec.treename
        req = spec.required_branches if required_branches is None else tuple(required_branches)
        _, n, names, storage = _check_tree(f, path, tree_name, req, deep)
        uuid = bytes(getattr(f.file, "fUUID", b"") or b"")
    info = FileInfo(
        path=path, format=fmt, treename=tree_name, num_entries=n, uuid=uuid, storage=storage,
        is_data=is_data(fmt, names),
        nanoaod_version=detect_nanoaod_version(names) if fmt == "nanoaod" else None,
        branches=names,
    )
    if require_btagging and fmt == "physlite":
        require_physlite_btagging(info, PHYSLITE_BTAGGING)
    return info


def inspect_file(
    path: str | os.PathLike[str],
    *,
    format: str = "auto",
    treename: str | None = None,
    uproot_options: Mapping | None = None,
) -> FileInfo:
    """The facts of one file (:class:`FileInfo`): ``format``, ``tree``, ``storage``,
    ``n_entries``, ``is_data``, ``nanoaod_version`` and ``branches``.

    :func:`validate_file` with no required branch: the file must still be a readable ROOT
    file with a non-empty events tree, else :class:`InputFileError`.
    """
    return validate_file(path, (), format=format, treename=treename, uproot_options=uproot_options)


def validate_files(
    paths: Iterable[str | os.PathLike[str]],
    required_branches: Iterable[str] | None = None,
    skip_bad: bool = False,
    *,
    format: str = "auto",
    treename: str | None = None,
    deep: bool = False,
) -> tuple[list[str], list[dict[str, str]]]:
    """Validate many files under the skip-bad-files policy.

    Returns ``(good_paths, report)``. With ``skip_bad=False`` (the default) the first bad
    file raises :class:`InputFileError` and ``report`` is always empty. With
    ``skip_bad=True`` bad files are left out, each logged as a warning and listed in
    ``report`` as ``{"file": path, "reason": why}``; the caller decides what to do when
    ``good_paths`` comes back empty.
    """
    req = None if required_branches is None else tuple(required_branches)
    good: list[str] = []
    report: list[dict[str, str]] = []
    for p in paths:
        info = _validate_or_skip(p, req, skip_bad, report, format=format, treename=treename, deep=deep)
        if info is not None:
            good.append(info.path)
    return good, report


_VALIDATED: dict[tuple[Any, ...], FileInfo] = {}
_VALIDATED_MAX = 4096


def _memo_key(path: str, required: tuple[str, ...] | None, kwargs: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """Identity of a local file's validation: its path, inode, size, modification and
    change times (ns), its ROOT header and last 4 KiB (where a rewritten TTree and the keys
    list land), and what was checked. None for remote or unreadable files (not memoised)."""
    if _is_remote(path):
        return None
    try:
        st = os.stat(path)
        with open(path, "rb") as fh:
            head = fh.read(64)
            fh.seek(max(st.st_size - 4096, 0))
            tail = fh.read()
    except OSError:
        return None
    checked = tuple(sorted((k, repr(v)) for k, v in kwargs.items()))
    return (path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, head, tail,
            None if required is None else tuple(sorted(required)), checked)


def clear_validation_memo() -> None:
    """Forget every remembered validation (see :func:`_validate_or_skip`)."""
    _VALIDATED.clear()


def _validate_or_skip(path: str | os.PathLike[str], required: tuple[str, ...] | None, skip_bad: bool,
                      report: list[dict[str, str]], **kwargs: Any) -> FileInfo | None:
    """:func:`validate_file` under the skip-bad policy: a bad file raises, or (``skip_bad``)
    is logged, appended to ``report`` as ``{"file", "reason"}`` and gives None.

    A local file that passed is remembered for this process, keyed by its inode, size and
    modification/change times and by what was checked: a second run over an unchanged file
    (a notebook re-running a cell, a benchmark repeat) does not open it again, the way
    coffea's ``metadata_cache`` skips preprocessing. Any rewrite of the file (our writers
    rename a new file into place) changes the key. Failures are never remembered.
    """
    path = os.fspath(path)
    key = _memo_key(path, required, kwargs)
    if key is not None and key in _VALIDATED:
        return _VALIDATED[key]
    try:
        info = validate_file(path, required, **kwargs)
        if key is not None:
            if len(_VALIDATED) >= _VALIDATED_MAX:
                _VALIDATED.pop(next(iter(_VALIDATED)))
            _VALIDATED[key] = info
        return info
    except InputFileError as err:
        if not skip_bad:
            raise
        log.warning("skipping bad input file %s", err)
        report.append({"file": err.path, "reason": err.reason})
        return None


# ---------------------------------------------------------------------------------------
# Metadata
# ---------------------------------------------------------------------------------------
_RUNS_SUMS = {
    "genEventCount": ("genEventCount", "genEventCount_"),
    "genEventSumw": ("genEventSumw", "genEventSumw_"),
    "genEventSumw2": ("genEventSumw2", "genEventSumw2_"),
}


_CUTBOOKKEEPERS = "CutBookkeepersAux."


def _cutbookkeeper_sums(f: Any, keys: Mapping[str, str]) -> dict[str, Any] | None:
    """Σw, Σw² and the count of the ATLAS ``AllExecutedEvents`` CutBookkeeper (the
    ``MetaData`` tree of an xAOD/DAOD file), or None without one.

    The bookkeeper named ``AllExecutedEvents`` of input stream ``StreamAOD`` (when the file
    records streams) with the highest cycle: the events that entered the production, before
    any derivation skimming. Entries of every matching bookkeeper are summed (a merged file
    holds one per input file).
    """
    if storage_of(keys.get("MetaData", "")) != "TTree":
        return None
    tree = f["MetaData"]
    names = tree.keys(recursive=True)

    def branch(field: str) -> str | None:
        return next((n for n in names if n.endswith(_CUTBOOKKEEPERS + field)), None)

    wanted = ("name", "cycle", "inputStream", "sumOfEventWeights", "sumOfEventWeightsSquared",
              "nAcceptedEvents")
    found = {k: branch(k) for k in wanted}
    if found["name"] is None or found["sumOfEventWeights"] is None:
        return None

    def values(field: str) -> list[Any]:
        b = found[field]
        if b is None:
            return []
        out: list[Any] = []
        for entry in tree[b].array(library="ak").tolist():  # a vector per entry, or one value
            out.extend(entry if isinstance(entry, list) else [entry])
        return out

    cols = {k: values(k) for k in wanted}
    rows = [i for i, name in enumerate(cols["name"]) if name == "AllExecutedEvents"
            and (not cols["inputStream"] or cols["inputStream"][i] == "StreamAOD")]
    if not rows:
        return None
    if cols["cycle"]:
        top = max(cols["cycle"][i] for i in rows)
        rows = [i for i in rows if cols["cycle"][i] == top]
    out: dict[str, Any] = {"source": "CutBookkeepers", "entries": len(rows),
                           "genEventSumw": float(sum(cols["sumOfEventWeights"][i] for i in rows))}
    if cols["sumOfEventWeightsSquared"]:
        out["genEventSumw2"] = float(sum(cols["sumOfEventWeightsSquared"][i] for i in rows))
    if cols["nAcceptedEvents"]:
        out["genEventCount"] = int(sum(cols["nAcceptedEvents"][i] for i in rows))
    return out


def _runs_sums(f: Any, keys: Mapping[str, str]) -> dict[str, Any] | None:
    """The summed ``Runs`` tree (TTree or RNTuple: ``entries``, ``genEventCount``,
    ``genEventSumw``, ``genEventSumw2``; NanoAOD's pre-v7 ``_`` names too), else the
    CutBookkeepers of an ATLAS file, else None."""
    if keys.get("Runs") in _EVENTS_CLASSES:
        runs_tree = f["Runs"]
        present = set(runs_tree.keys())
        runs: dict[str, Any] = {"entries": int(runs_tree.num_entries)}
        for out, candidates in _RUNS_SUMS.items():
            name = next((c for c in candidates if c in present), None)
            if name is None:
                continue
            values = runs_tree[name].array(library="np")
            total = values.sum()
            runs[out] = int(total) if out == "genEventCount" else float(total)
        return runs
    return _cutbookkeeper_sums(f, keys)


def _read_metadata(f: Any, path: str) -> dict[str, Any]:
    keys = _top_keys(f)
    meta: dict[str, Any] = {}
    if HEPLINE_METADATA_KEY in keys:
        text = str(f[HEPLINE_METADATA_KEY])
        try:
            meta = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputFileError(
                path, f"'{HEPLINE_METADATA_KEY}' is not valid JSON ({exc})"
            ) from exc
        if not isinstance(meta, dict):
            raise InputFileError(path, f"'{HEPLINE_METADATA_KEY}' is not a JSON object")
    runs = _runs_sums(f, keys)
    if runs is not None:
        meta["runs"] = runs
    fmt = _detect(f, path)
    meta.setdefault("format", fmt)
    tree_name = _spec(fmt).treename
    if keys.get(tree_name) in _EVENTS_CLASSES:
        meta.setdefault("n_entries", int(f[tree_name].num_entries))
    return meta


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Metadata of one file as a dict.

    For hepline files: the ``hepline_metadata`` JSON object (``sample``, ``process``,
    ``xsec_pb``, ``sumw``, ...). Added for every format, without overwriting JSON keys:
    ``runs`` (the summed ``Runs`` tree: ``entries``, ``genEventCount``, ``genEventSumw``,
    ``genEventSumw2``; for ATLAS files the ``AllExecutedEvents`` CutBookkeeper of the
    ``MetaData`` tree, with ``source: CutBookkeepers``; absent when the file has neither),
    ``format`` and ``n_entries`` (entries of the events tree). Raises
    :class:`InputFileError` for an unreadable file or metadata that is not a JSON object.
    """
    path = os.fspath(path)
    with _open_root(path) as f:
        return _read_metadata(f, path)


def sum_of_weights(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> tuple[float, float] | None:
    """Σw and Σw² of the generator weights of a sample's files, from their ``Runs`` trees.

    NanoAOD ``genEventSumw``/``genEventSumw2`` (and the pre-v7 ``genEventSumw_``,
    ``genEventSumw2_``), hepline's ``Runs`` tree, or the ``AllExecutedEvents``
    CutBookkeeper of ATLAS files. These count every generated event, before any skim, so
    they are the normalisation of a skimmed sample.

    Returns:
        ``(Σw, Σw²)`` summed over the files, or None when no file holds them (collision
        data; simulation without a ``Runs`` tree: then give Σw with the sample metadata).

    Raises:
        InputFileError: a file cannot be read; one file has the sums and another has not
            (the total would be wrong); a file has Σw but no Σw².
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    sumw = sumw2 = 0.0
    with_sums: list[str] = []
    without: list[str] = []
    for p in paths:
        path = os.fspath(p)
        with _open_root(path) as f:
            runs = _runs_sums(f, _top_keys(f)) or {}
        if "genEventSumw" not in runs:
            without.append(path)
            continue
        if "genEventSumw2" not in runs:
            raise InputFileError(path, "the sum of weights has genEventSumw but no genEventSumw2")
        sumw += float(runs["genEventSumw"])
        sumw2 += float(runs["genEventSumw2"])
        with_sums.append(path)
    if not with_sums:
        return None
    if without:
        raise InputFileError(
            without[0], f"no sum of generator weights (Runs genEventSumw or CutBookkeepers), "
                        f"while {with_sums[0]} of the same sample has one"
        )
    return sumw, sumw2


# ---------------------------------------------------------------------------------------
# Filesets
# ---------------------------------------------------------------------------------------
DEFAULT_DATASET = "default"
"""Dataset name :meth:`Fileset.coerce` gives to bare paths."""
_DATASET_META_KEYS = ("sample", "process", "xsec_pb", "xsec_source")


class Fileset(dict):
    """A coffea-style fileset: ``{dataset: {"files": {path: treename}, "metadata": {...}}}``.

    It is a plain ``dict`` (coffea's ``processor.Runner`` takes it as is) with a ``skipped``
    attribute: the ``[{"file", "reason"}]`` report of files left out under the skip-bad
    policy when it was built. Build one with :meth:`from_files` (alias
    :func:`build_fileset`) or normalise a hand-written mapping with :meth:`coerce`.
    """

    def __init__(self, *args: Any, skipped: list[dict[str, str]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.skipped: list[dict[str, str]] = list(skipped or [])
        self.num_entries: dict[str, int] = {}
        """``{path: entries}`` of the files validated into this fileset (may be empty)."""
        self.uuids: dict[str, bytes] = {}
        """``{path: ROOT file UUID}`` of the files validated into this fileset (may be empty)."""
        self.infos: dict[str, FileInfo] = {}
        """``{path: FileInfo}`` of the files validated into this fileset (may be empty)."""

    def files(self) -> list[str]:
        """All file paths, dataset by dataset."""
        return [p for entry in self.values() for p in entry["files"]]

    def treenames(self) -> dict[str, str]:
        """``{path: treename}`` over all datasets."""
        return {p: t for entry in self.values() for p, t in entry["files"].items()}

    @classmethod
    def from_files(
        cls,
        paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        *,
        format: str = "auto",
        dataset: str | None = None,
        skip_bad: bool = False,
        required_branches: Iterable[str] | None = None,
    ) -> Fileset:
        """Group files into datasets, reading each file's metadata.

        hepline files are grouped by the ``sample`` in their metadata (unless ``dataset``
        names one dataset for all); the dataset ``metadata`` holds ``format``, ``sample``,
        ``process``, ``xsec_pb``, ``xsec_source`` (which must agree between the files of a
        sample, except a Pythia ``xsec_pb``: each shard's estimate is combined as the
        generated-event-weighted mean, as the generation merge does), ``sumw`` and ``n_events`` (summed over the files' ``Runs`` trees; the JSON
        values if a file has none; a dataset where some files have Σw and others not raises
        :class:`InputFileError`) and ``n_files``. NanoAOD and Delphes files go to
        ``dataset`` or, if not given, to a dataset named after their directory.

        Every file is validated first (:func:`validate_file`); ``skip_bad`` is the policy of
        :func:`validate_files` and the report ends up in ``Fileset.skipped``.
        """
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        req = None if required_branches is None else tuple(required_branches)
        out = cls()
        origin: dict[str, dict[str, str]] = {}  # dataset -> key -> file that set it
        xsec_sums: dict[str, list[float]] = {}  # dataset -> [Σ n_gen·σ, Σ n_gen] (Pythia σ)
        sumw_files: dict[str, tuple[list[str], list[str]]] = {}  # dataset -> (files with Σw, without)
        for p in paths:
            path = os.fspath(p)
            try:
                info = validate_file(path, req, format=format)
                with _open_root(path) as f:
                    meta = _read_metadata(f, path)
                if info.format == "hepline" and "sample" not in meta:
                    raise InputFileError(path, f"'{HEPLINE_METADATA_KEY}' has no 'sample' key")
            except InputFileError as err:
                if not skip_bad:
                    raise
                log.warning("skipping bad input file %s", err)
                out.skipped.append({"file": err.path, "reason": err.reason})
                continue
            name = dataset or (
                str(meta["sample"])
                if info.format == "hepline"
                else Path(path).resolve().parent.name or "dataset"
            )
            entry = out.setdefault(
                name,
                {"files": {}, "metadata": {"format": info.format, "n_files": 0, "n_events": 0}},
            )
            md = entry["metadata"]
            if md["format"] != info.format:
                raise InputFileError(
                    path,
                    f"format {info.format!r} differs from the {md['format']!r} files "
                    f"already in dataset {name!r}",
                )
            entry["files"][path] = info.treename
            out.num_entries[path] = info.num_entries
            md["n_files"] += 1
            runs = meta.get("runs", {})
            md["n_events"] += int(runs.get("genEventCount", meta.get("n_events", info.num_entries)))
            sumw = runs.get("genEventSumw", meta.get("sumw"))
            sumw_files.setdefault(name, ([], []))[sumw is None].append(path)
            if sumw is not None:
                md["sumw"] = md.get("sumw", 0.0) + float(sumw)
            for key in _DATASET_META_KEYS:
                if key not in meta:
                    continue
                if key == "xsec_pb" and meta.get("xsec_source") == "pythia":
                    # each shard's sigmaGen is an independent estimate of the same σ: combine
                    # them weighted by generated events, as `analysis.generation merge` does
                    n_gen = float(meta.get("n_generated") or meta.get("n_events") or 1)
                    acc = xsec_sums.setdefault(name, [0.0, 0.0])
                    acc[0] += n_gen * float(meta[key])
                    acc[1] += n_gen
                    md[key] = acc[0] / acc[1]
                    continue
                if key in md and md[key] != meta[key]:
                    raise InputFileError(
                        path,
                        f"metadata {key}={meta[key]!r} disagrees with {md[key]!r} in "
                        f"{origin[name][key]} (same dataset {name!r})",
                    )
                md[key] = meta[key]
                origin.setdefault(name, {})[key] = path
        for name, (with_sumw, without) in sumw_files.items():
            if with_sumw and without:  # the dataset's Σw would silently miss these files
                raise InputFileError(
                    without[0], f"no sum of generator weights (Runs genEventSumw, CutBookkeepers or "
                                f"metadata sumw), while {with_sumw[0]} of dataset {name!r} has one"
                )
        return out

    @classmethod
    def coerce(
        cls,
        source: Any,
        *,
        format: str = "auto",
        treename: str | None = None,
    ) -> Fileset:
        """Normalise the accepted fileset spellings without opening any file.

        Accepts a :class:`Fileset`, one path, a list of paths (one dataset ``"files"``), a
        ``{path: treename}`` mapping, or a coffea fileset whose datasets hold a list of
        paths, a ``{path: treename}`` mapping or ``{"files": ..., "metadata": ...,
        "treename": ...}``. Missing tree names come from ``treename`` or the format's
        default (``format`` ``"auto"`` means: detect it from the first file).
        """
        if isinstance(source, Fileset):
            return source

        def tree_for(path: str) -> str:
            if treename:
                return treename
            fmt = detect_format(path) if format == "auto" else format
            return _spec(fmt).treename

        def files_of(spec: Any, dataset_tree: str | None) -> dict[str, str]:
            if isinstance(spec, (str, os.PathLike)):
                spec = [spec]
            if isinstance(spec, Mapping):
                return {
                    os.fspath(p): (t or dataset_tree or tree_for(os.fspath(p)))
                    for p, t in spec.items()
                }
            files: dict[str, str] = {}
            for p in spec:
                path = os.fspath(p)
                files[path] = dataset_tree or tree_for(path)
            return files

        if isinstance(source, (str, os.PathLike)) or (
            isinstance(source, Sequence) and not isinstance(source, Mapping)
        ):
            return cls({DEFAULT_DATASET: {"files": files_of(source, None), "metadata": {}}})
        if not isinstance(source, Mapping):
            raise TypeError(f"cannot make a fileset from {type(source).__name__}")
        values = list(source.values())
        if values and all(v is None or isinstance(v, str) for v in values):
            # {path: treename}: one dataset
            return cls({DEFAULT_DATASET: {"files": files_of(source, None), "metadata": {}}})
        out = cls()
        for name, spec in source.items():
            if isinstance(spec, Mapping) and "files" in spec:
                out[name] = {
                    "files": files_of(spec["files"], spec.get("treename")),
                    "metadata": dict(spec.get("metadata") or {}),
                }
            else:
                out[name] = {"files": files_of(spec, None), "metadata": {}}
        return out


build_fileset = Fileset.from_files
"""Alias of :meth:`Fileset.from_files`."""


def _dataset_facts(info: FileInfo) -> dict[str, Any]:
    """The facts every file of a dataset shares (:func:`validate_fileset`)."""
    facts: dict[str, Any] = {"format": info.format, "is_data": info.is_data}
    if info.format == "nanoaod":
        facts["nanoaod_version"] = info.nanoaod_version
    return facts


def validate_fileset(
    fileset: Any,
    required_branches: Iterable[str] | None = None,
    skip_bad: bool = False,
    *,
    format: str = "auto",
    deep: bool = False,
    require_btagging: bool = False,
) -> tuple[Fileset, str]:
    """Validate every file of a fileset under the skip-bad policy.

    Returns ``(fileset, format)``: a :class:`Fileset` of the good files (datasets left with
    none are dropped) whose ``skipped`` lists the bad ones, whose ``infos`` hold each good
    file's :class:`FileInfo`, and the common format. Each dataset's metadata gains, where
    not set already, the files' ``format``, ``is_data`` and (NanoAOD) ``nanoaod_version``,
    so that a processor reads them from ``events.metadata``. ``require_btagging``: as in
    :func:`validate_file`. Raises :class:`InputFileError` on the first bad file when
    ``skip_bad`` is false, when the good files mix formats, or when a dataset mixes
    collision data and simulation or NanoAOD eras; ``ValueError`` when no good file is
    left.
    """
    fs = Fileset.coerce(fileset, format=format) if not isinstance(fileset, Fileset) else fileset
    req = None if required_branches is None else tuple(required_branches)
    out = Fileset(skipped=list(fs.skipped))
    formats: dict[str, str] = {}
    for name, entry in fs.items():
        kept: dict[str, str] = {}
        facts: dict[str, tuple[Any, str]] = {}  # fact -> (value, file that set it)
        for path, tree in entry["files"].items():
            info = _validate_or_skip(path, req, skip_bad, out.skipped, format=format, treename=tree, deep=deep,
                                     **({"require_btagging": True} if require_btagging else {}))
            if info is None:
                continue
            if formats and info.format not in formats:
                first_fmt, first_path = next(iter(formats.items()))
                raise InputFileError(
                    path,
                    f"format {info.format!r} differs from {first_fmt!r} of {first_path}; "
                    "one run reads one format",
                )
            formats.setdefault(info.format, path)
            for key, value in _dataset_facts(info).items():
                first = facts.setdefault(key, (value, path))
                if first[0] != value:
                    raise InputFileError(
                        path, f"{key}={value!r} differs from {key}={first[0]!r} of {first[1]} "
                              f"(same dataset {name!r})"
                    )
            kept[path] = info.treename
            out.num_entries[path] = info.num_entries
            out.uuids[path] = info.uuid
            out.infos[path] = info
        if kept:
            metadata = dict(entry.get("metadata") or {})
            for key, (value, _) in facts.items():
                metadata.setdefault(key, value)
            out[name] = {"files": kept, "metadata": metadata}
    if not out:
        raise ValueError(
            "no readable input file left after validation; skipped: "
            + "; ".join(f"{s['file']}: {s['reason']}" for s in out.skipped)
        )
    return out, next(iter(formats))


# ---------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def quiet_unreadable_branches() -> Iterator[None]:
    """Silence coffea's warning for each branch uproot cannot interpret, which it leaves
    out of the form: 250 warnings for the vendored PHYSLITE example
    (``tests/data/PHYSLITE_example.root``: trigger-matching links, vertex containers, the
    ``*Aux.`` base branches), every time a form is built. The collections an analysis
    reads are not among them."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Skipping .* (not interpretable by Uproot|"
                                                  r"cannot be represented as an Awkward array)",
                                category=UserWarning)
        yield


_COMPACT_META = ("sample", "process", "xsec_pb", "xsec_source", "sumw", "n_events", "shard")


def open_events(
    path_or_fileset: Any,
    format: str = "auto",
    entry_start: int | None = None,
    entry_stop: int | None = None,
    mode: str = "virtual",
    *,
    treename: str | None = None,
    validate: bool = True,
    required_branches: Iterable[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    uproot_options: Mapping[str, Any] | None = None,
) -> Any:
    """Open events with the right coffea schema (a coffea NanoEvents array).

    ``path_or_fileset`` is one path, a list of paths, a ``{path: treename}`` mapping or a
    coffea-style fileset (see :meth:`Fileset.coerce`). ``format`` is ``"auto"``,
    ``"hepline"``, ``"nanoaod"``, ``"physlite"`` or ``"delphes"``; TTree or RNTuple alike
    (the schema: :class:`HeplineSchema`, :class:`CMSNanoAODSchema`, coffea's
    ``PHYSLITESchema`` (MeV: :func:`to_gev`) or ``DelphesSchema``).

    ``mode`` is coffea's NanoEvents backend (coffea >= 2025): ``"virtual"`` (default: columns
    are read lazily on first access; what coffea's ``processor.Runner`` uses), ``"eager"``
    (everything read now) or ``"dask"`` (a ``dask_awkward`` array, one partition per file;
    call ``.compute()``). ``"eager"``/``"virtual"`` read one file, optionally the entry range
    ``[entry_start, entry_stop)``; several files need ``mode="dask"`` (or the runner). An
    RNTuple entry range in eager mode is read whole and sliced (coffea 2026.9 cannot build
    ``GenPart.distinctParent`` of an RNTuple range; ``docs/ingestion.md``).

    With ``validate=True`` every file is checked first (:func:`validate_file`) so bad input
    raises :class:`InputFileError`. ``events.metadata`` holds ``format``, ``filename``,
    ``treename``, (validated files) ``storage``, ``is_data`` and for NanoAOD
    ``nanoaod_version``, for hepline files the compact sample metadata (``sample``,
    ``xsec_pb``, ``sumw``, ...) and then the fileset/``metadata`` entries.
    """
    if mode not in ("eager", "virtual", "dask"):
        raise ValueError(f"mode must be 'eager', 'virtual' or 'dask', not {mode!r}")
    fs = Fileset.coerce(path_or_fileset, format=format, treename=treename)
    files = fs.treenames()
    if not files:
        raise ValueError("no input files given")
    dataset_meta: dict[str, Any] = {}
    if len(fs) == 1:
        name, entry = next(iter(fs.items()))
        dataset_meta = dict(entry.get("metadata") or {})
        if name != DEFAULT_DATASET:
            dataset_meta.setdefault("dataset", name)
    elif mode != "dask":
        raise ValueError(
            f"{len(fs)} datasets given; open them one at a time or use analysis.io.runner"
        )

    fmt = format
    req = None if required_branches is None else tuple(required_branches)
    infos: dict[str, FileInfo] = {}
    for path, tree in files.items():
        if validate:
            info = validate_file(path, req, format=fmt, treename=tree)
            infos[path] = info
            fmt = info.format if fmt == "auto" else fmt
        elif fmt == "auto":
            fmt = detect_format(path)
    spec = _spec(fmt)
    opts = dict(uproot_options or {})

    if mode == "dask":
        if entry_start is not None or entry_stop is not None:
            raise ValueError("entry_start/entry_stop apply to eager/virtual mode only")
        dask_meta = {"format": fmt, **dataset_meta, **dict(metadata or {})}
        factory = NanoEventsFactory.from_root(
            files, mode="dask", schemaclass=spec.schema, metadata=dask_meta, uproot_options=opts
        )
        return factory.events()

    if len(files) > 1:
        raise ValueError(
            f"{len(files)} files given: mode={mode!r} opens one file; "
            "use mode='dask' or analysis.io.runner.run_processor for several"
        )
    path, tree = next(iter(files.items()))
    meta: dict[str, Any] = {"format": fmt, "filename": path, "treename": tree}
    if path in infos:
        meta.update(storage=infos[path].storage, is_data=infos[path].is_data)
        if fmt == "nanoaod":
            meta["nanoaod_version"] = infos[path].nanoaod_version
    if fmt == "hepline":
        with _open_root(path, opts) as f:
            file_meta = _read_metadata(f, path)
        meta.update({k: file_meta[k] for k in _COMPACT_META if k in file_meta})
    meta.update(dataset_meta)
    meta.update(metadata or {})
    # coffea 2026.9 builds GenPart.distinctParent/distinctChildren of an RNTuple entry range
    # from the whole file's pdgId ("slice index out of bounds"); eager mode builds them, so an
    # RNTuple range is read whole in eager mode and sliced (cross-references stay valid)
    whole = mode == "eager" and (entry_start or entry_stop is not None) and _storage(path, tree, infos, opts) == "RNTuple"
    try:
        with quiet_unreadable_branches():
            factory = NanoEventsFactory.from_root(
                {path: tree},
                mode=mode,
                schemaclass=spec.schema,
                entry_start=None if whole else entry_start,
                entry_stop=None if whole else entry_stop,
                metadata=meta,
                uproot_options=opts,
            )
            events = factory.events()
            return events[entry_start:entry_stop] if whole else events
    except InputFileError:
        raise
    except OSError as exc:
        raise InputFileError(path, f"cannot be read ({type(exc).__name__}: {exc})") from exc


def _storage(path: str, tree: str, infos: Mapping[str, FileInfo], opts: Mapping[str, Any]) -> str | None:
    """``"TTree"``/``"RNTuple"`` of ``tree`` in ``path`` (from its :class:`FileInfo` if validated)."""
    if path in infos:
        return infos[path].storage
    with _open_root(path, opts) as f:
        return storage_of(_top_keys(f).get(tree, ""))


def read_arrays(
    path: str | os.PathLike[str],
    branches: Iterable[str] | str | None = None,
    *,
    treename: str | None = None,
    entry_start: int | None = None,
    entry_stop: int | None = None,
    format: str = "auto",
    how: str | None = None,
    validate: bool = True,
) -> ak.Array:
    """Plain awkward arrays of one file through uproot (no coffea, no behaviours).

    ``branches``: branch names (``None``: all branches; a string is one name; names with
    ``*``/``?`` are glob patterns). A name that is not in the tree raises
    :class:`InputFileError` naming it. ``how="zip"`` groups ``<Coll>_<field>`` branches into
    records, e.g. ``arrays.Jet.pt``. Validation checks the file but requires no branch
    beyond those asked for.
    """
    path = os.fspath(path)
    if isinstance(branches, str):
        branches = [branches]
    wanted = None if branches is None else list(branches)
    with _open_root(path) as f:
        fmt = _detect(f, path) if format == "auto" else _spec(format).name
        tree_name = treename or _spec(fmt).treename
        exact = [b for b in (wanted or []) if not any(c in b for c in "*?[")]
        if validate:
            tree, *_ = _check_tree(f, path, tree_name, exact)
        else:
            tree = f[tree_name]
        kwargs: dict[str, Any] = {"entry_start": entry_start, "entry_stop": entry_stop}
        if how is not None:
            kwargs["how"] = how
        try:
            if wanted is None:
                return tree.arrays(**kwargs)
            names: list[str] = []
            for b in wanted:
                for name in [b] if b in exact else tree.keys(filter_name=b):
                    if name not in names:
                        names.append(name)
            return tree.arrays(names, **kwargs)
        except InputFileError:
            raise
        except (OSError, ValueError, uproot.deserialization.DeserializationError) as exc:
            raise InputFileError(path, f"cannot read arrays ({type(exc).__name__}: {exc})") from exc


def iter_chunks(
    files: Sequence[str | os.PathLike[str]],
    branches: Sequence[str],
    *,
    chunk_events: int = 100_000,
    max_events: int | None = None,
) -> Iterator[tuple[str, int, int, ak.Array]]:
    """Yield ``(file, entry_start, entry_stop, arrays)`` over ``files`` in chunks of at most
    ``chunk_events`` entries, reading ``branches`` with :func:`read_arrays` (so bad input raises
    :class:`InputFileError`), and stopping once ``max_events`` entries were yielded in total."""
    done = 0
    for f in map(str, files):
        n_entries = int(read_metadata(f)["n_entries"])
        for start in range(0, n_entries, chunk_events):
            stop = min(start + chunk_events, n_entries)
            if max_events is not None:
                stop = min(stop, start + max_events - done)
                if stop <= start:
                    return
            yield f, start, stop, read_arrays(f, list(branches), entry_start=start, entry_stop=stop)
            done += stop - start


def iter_files(fileset: Any) -> Iterator[tuple[str, str, str]]:
    """``(dataset, path, treename)`` for every file of a fileset spelling."""
    for name, entry in Fileset.coerce(fileset).items():
        for path, tree in entry["files"].items():
            yield name, path, tree
