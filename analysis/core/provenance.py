"""Provenance of every output: who made it, from what, with which code (docs/provenance.md).

A record (:func:`provenance_record`) holds the hepline version, the stage, the config hash,
the seeds, the identity of every input file (ROOT: the file UUID and size; anything else:
SHA-256 and size), the versions of the packages that shape the numbers, the command line,
the host, the UTC time and the git commit of the source tree (when it is a git checkout).

Where it is stored depends on the output (:func:`storage_kind`):

* ROOT (``.root``): a ``TObjString`` ``hepline_provenance`` holding the JSON record, next to
  ``hepline_metadata`` in ntuples;
* HDF5 (``.h5``, ``.hdf5``): the JSON string ``attrs["provenance"]`` of the root group;
* everything else: a JSON sidecar ``<output>.provenance.json``.

ROOT and HDF5 records are written into the temporary file before it is renamed (see
:func:`analysis.core.atomic.atomic_path`), so they appear atomically with the output. A sidecar is
written (itself atomically) *after* its output is in place: a job killed between the two
leaves an output without a sidecar, which :func:`read_provenance` reports, never a sidecar
describing a missing or half-written output.

Timestamps, host and command line live only here, never in histogram or physics contents,
so two runs with the same config and seed still give identical physics outputs.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import platform
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from analysis.core.config import config_hash
from analysis.core.errors import InputFileError, ProvenanceError
from analysis.core.serialise import json_default

__all__ = [
    "PACKAGES",
    "PROVENANCE_KEY",
    "ProvenanceError",
    "ROOT_SUFFIXES",
    "SCHEMA_VERSION",
    "SIDECAR_SUFFIX",
    "embed_provenance",
    "file_identity",
    "file_sha256",
    "format_record",
    "git_info",
    "package_versions",
    "provenance_record",
    "read_provenance",
    "sidecar_path",
    "storage_kind",
    "to_json",
    "write_hdf5_provenance",
    "write_root_provenance",
]

log = logging.getLogger(__name__)

PROVENANCE_KEY = "hepline_provenance"
"""Name of the ``TObjString`` in ROOT outputs."""
HDF5_ATTR = "provenance"
"""Attribute of the HDF5 root group."""
SIDECAR_SUFFIX = ".provenance.json"
"""Appended to the full output name: ``limits.json`` → ``limits.json.provenance.json``."""
SCHEMA_VERSION = 1

ROOT_SUFFIXES = (".root",)
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")

PACKAGES: tuple[tuple[str, ...], ...] = (
    # (label, distribution names to try in order)
    ("numpy",), ("awkward",), ("uproot",), ("coffea",), ("hist",), ("torch",),
    ("xgboost", "xgboost-cpu"), ("pyhf",), ("pythia8mc",), ("fastjet",), ("numba",),
    ("h5py",), ("scikit-learn",), ("iminuit",), ("onnxruntime",), ("onnx",), ("matplotlib",),
    ("mplhep",), ("vector",), ("dask",), ("snakemake",), ("jsonschema",), ("pyyaml",),
)  # fmt: skip
"""Packages whose version is recorded (from installed metadata; nothing is imported)."""

_HASH_CHUNK = 1 << 20  # bytes read per sha256 update


# --------------------------------------------------------------------------- the record


def provenance_record(
    *,
    stage: str,
    config: Any = None,
    seeds: Any = None,
    inputs: Iterable[str | os.PathLike[str]] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The provenance of one stage's outputs, as a JSON-serialisable dict.

    ``config``: the config (or section) the stage ran with; only its hash
    (:func:`analysis.core.config.config_hash`) is stored. ``seeds``: an int or a mapping of named
    seeds. ``inputs``: files (or folders) read; each becomes a :func:`file_identity`.
    ``extra``: stage-specific JSON-serialisable details.
    """
    import analysis

    record: dict[str, Any] = {
        "provenance_version": SCHEMA_VERSION,
        "stage": stage,
        "hepline_version": analysis.__version__,
        "config_hash": config_hash(config) if config is not None else None,
        "seeds": _jsonable(seeds),
        "inputs": [file_identity(p) for p in inputs],
        "packages": package_versions(),
        "command": list(sys.argv),
        "cwd": os.getcwd(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "git": git_info(),
    }
    if extra:
        record["extra"] = _jsonable(dict(extra))
    return record


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True, default=json_default))


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """``{"python": ..., package: version}`` for the :data:`PACKAGES` that are installed."""
    out = {"python": platform.python_version()}
    for names in PACKAGES:
        for name in names:
            try:
                out[names[0]] = version(name)
                break
            except PackageNotFoundError:
                continue
    return out


@lru_cache(maxsize=4)
def git_info(path: str | None = None) -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the git checkout holding ``path`` (default: the hepline
    sources), or ``None`` when it is not a git checkout or git is missing."""
    where = Path(path) if path else Path(__file__).resolve().parents[1]
    git = shutil.which("git")
    if git is None:
        return None
    try:
        head = subprocess.run(
            [git, "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=False,
        )
        if head.returncode != 0:
            return None
        status = subprocess.run(
            [git, "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return {"commit": head.stdout.strip(), "dirty": dirty}


# --------------------------------------------------------------------------- input identities


def file_identity(path: str | os.PathLike[str]) -> dict[str, Any]:
    """How to recognise an input again: path, size (bytes) and a content identity.

    ROOT files: the file UUID uproot reads from the header (a new one at every write) plus
    the size; other files: SHA-256 of the content; folders: SHA-256 over the sorted
    relative names and SHA-256 of their files. Raises ``FileNotFoundError`` naming the path.
    """
    p = Path(path)
    if p.is_dir():
        h = hashlib.sha256()
        total = 0
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            st = f.stat()
            total += st.st_size
            h.update(f.relative_to(p).as_posix().encode() + b"\0")
            h.update(_sha256(str(f.resolve()), st.st_size, st.st_mtime_ns).encode())
        return {"path": str(p), "kind": "directory", "size": total, "sha256": h.hexdigest()}
    if not p.is_file():
        if p.exists():  # a FIFO, socket or device: never read (a FIFO would block)
            raise InputFileError(str(p), "not a regular file (a FIFO, socket or device?)")
        raise FileNotFoundError(f"provenance: input file not found: {p}")
    st = p.stat()
    if storage_kind(p) == "root":
        uuid = _root_uuid(str(p.resolve()), st.st_size, st.st_mtime_ns)
        if uuid is not None:
            return {"path": str(p), "kind": "root", "size": st.st_size, "uuid": uuid}
    return {"path": str(p), "kind": "file", "size": st.st_size,
            "sha256": _sha256(str(p.resolve()), st.st_size, st.st_mtime_ns)}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_HASH_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


@lru_cache(maxsize=4096)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """:func:`file_sha256` cached on (path, size, mtime), so a stage hashes an input once."""
    return file_sha256(path)


@lru_cache(maxsize=4096)
def _root_uuid(path: str, size: int, mtime_ns: int) -> str | None:
    import uproot

    try:
        with uproot.open(path) as f:
            return str(f.file.uuid)
    except Exception as exc:  # noqa: BLE001 (any unreadable ROOT file: hash the content)
        log.debug("%s: no ROOT UUID (%s); hashing the content", path, exc)
        return None


# --------------------------------------------------------------------------- storage


def storage_kind(path: str | os.PathLike[str]) -> str:
    """``"root"``, ``"hdf5"`` or ``"sidecar"``, from the file name's suffix."""
    suffix = Path(path).suffix.lower()
    if suffix in ROOT_SUFFIXES:
        return "root"
    if suffix in HDF5_SUFFIXES:
        return "hdf5"
    return "sidecar"


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """``<output>.provenance.json`` next to ``path``."""
    p = Path(path)
    return p.with_name(p.name + SIDECAR_SUFFIX)


def to_json(record: Mapping[str, Any]) -> str:
    """The record as the compact, key-sorted JSON string stored in ROOT and HDF5 files."""
    return json.dumps(record, sort_keys=True, default=json_default)


def write_root_provenance(root_file: Any, record: Mapping[str, Any]) -> None:
    """Store ``record`` in an open writable uproot file (``uproot.recreate``/``update``)."""
    root_file[PROVENANCE_KEY] = to_json(record)


def write_hdf5_provenance(h5_file: Any, record: Mapping[str, Any]) -> None:
    """Store ``record`` in an open writable ``h5py.File`` (root-group attribute)."""
    h5_file.attrs[HDF5_ATTR] = to_json(record)


def embed_provenance(path: str | os.PathLike[str], record: Mapping[str, Any]) -> None:
    """Write ``record`` *into* a closed ROOT or HDF5 file in place (no sidecar).

    :func:`analysis.core.atomic.atomic_path` calls this on its temporary file before the rename;
    on a finished output use :func:`attach_provenance`, which keeps the update atomic.
    """
    kind = storage_kind(path)
    if kind == "root":
        import uproot

        with uproot.update(path) as f:
            # not ``PROVENANCE_KEY in f``: uproot 5.7 raises on that for files with folders
            if PROVENANCE_KEY in {k.split(";")[0] for k in f.keys(recursive=False)}:
                del f[PROVENANCE_KEY]
            write_root_provenance(f, record)
    elif kind == "hdf5":
        import h5py

        with h5py.File(path, "a") as f:
            write_hdf5_provenance(f, record)
    else:
        raise ValueError(f"{path}: provenance is embedded only in ROOT and HDF5 files")


def read_provenance(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The provenance record of ``path`` (ROOT key, HDF5 attribute or sidecar).

    Raises ``FileNotFoundError`` for a missing output and :class:`ProvenanceError` naming
    the file when it carries no record or an unreadable one.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"provenance: file not found: {p}")
    kind = storage_kind(p)
    if kind == "root":
        text, where = _read_root(p), f"ROOT key '{PROVENANCE_KEY}'"
    elif kind == "hdf5":
        text, where = _read_hdf5(p), f"HDF5 attribute '{HDF5_ATTR}'"
    else:
        side = sidecar_path(p)
        if not side.is_file():
            raise ProvenanceError(f"{p}: no provenance (sidecar {side.name} not found)")
        text, where = side.read_text(), f"sidecar {side}"
    if text is None:
        raise ProvenanceError(f"{p}: no provenance ({where} not found)")
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProvenanceError(f"{p}: {where} is not valid JSON ({exc})") from exc
    if not isinstance(record, dict):
        raise ProvenanceError(f"{p}: {where} is not a JSON object")
    return record


def _read_root(p: Path) -> str | None:
    import uproot

    try:
        with uproot.open(p) as f:
            names = {k.split(";")[0] for k in f.keys(recursive=False)}
            return str(f[PROVENANCE_KEY]) if PROVENANCE_KEY in names else None
    except Exception as exc:
        raise ProvenanceError(f"{p}: cannot read as ROOT ({exc})") from exc


def _read_hdf5(p: Path) -> str | None:
    import h5py

    try:
        with h5py.File(p, "r") as f:
            value = f.attrs.get(HDF5_ATTR)
    except OSError as exc:
        raise ProvenanceError(f"{p}: cannot read as HDF5 ({exc})") from exc
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


# --------------------------------------------------------------------------- display


def format_record(record: Mapping[str, Any], *, path: str | None = None) -> str:
    """A human-readable multi-line summary of a record (``hepline provenance``)."""
    lines = [f"== {path} =="] if path else []
    git = record.get("git") or {}
    commit = git.get("commit")
    git_text = "not a git checkout" if not commit else (
        commit[:12] + (" (uncommitted changes)" if git.get("dirty") else ""))
    rows = [
        ("stage", record.get("stage")),
        ("hepline", record.get("hepline_version")),
        ("config hash", record.get("config_hash")),
        ("seeds", json.dumps(record.get("seeds"), sort_keys=True)),
        ("created (UTC)", record.get("created_utc")),
        ("host", record.get("host")),
        ("git", git_text),
        ("command", " ".join(str(a) for a in record.get("command", []))),
    ]
    width = max(len(k) for k, _ in rows)
    lines += [f"{k:<{width}}  {v}" for k, v in rows]
    inputs = record.get("inputs") or []
    lines.append(f"{'inputs':<{width}}  {len(inputs)}")
    for inp in inputs:
        ident = f"uuid {inp['uuid']}" if "uuid" in inp else f"sha256 {str(inp.get('sha256'))[:16]}"
        lines.append(f"  {inp.get('path')}  ({inp.get('size')} bytes, {ident})")
    pkgs = record.get("packages") or {}
    lines.append(f"{'packages':<{width}}  " + ", ".join(f"{k} {v}" for k, v in sorted(pkgs.items())))
    if record.get("extra"):
        lines.append(f"{'extra':<{width}}  {json.dumps(record['extra'], sort_keys=True)}")
    return "\n".join(lines)
