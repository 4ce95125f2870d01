"""Atomic file writes: write to a temporary name in the target folder, then ``os.replace``.

A job killed mid-write leaves only a ``*.tmp.*`` file, never a half-written output that
Snakemake (or a user) would take for a finished one. Outputs get the permissions the user's
umask gives a new file (``0o666 & ~umask``: 0644 with the usual 022, readable by colleagues
on a shared farm), not the 0600 of the temporary file.

Every helper takes an optional ``provenance`` record (:mod:`analysis.core.provenance`). ROOT and
HDF5 outputs get it inside the temporary file, before the rename, so output and record
appear together. Any other output gets a sidecar ``<output>.provenance.json``, written
atomically *after* the output is in place (a job killed in between leaves an output without
a sidecar, never a sidecar without its output).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from analysis.core import provenance as prov
from analysis.core.serialise import json_default

__all__ = [
    "atomic_path",
    "attach_provenance",
    "is_temporary",
    "write_json",
    "write_text",
]


_TEMPORARY = re.compile(r"^\..+\.tmp\.")


def is_temporary(path: str | os.PathLike[str]) -> bool:
    """True for the temporary file of an unfinished atomic write (``.<stem>.tmp.<random><suffix>``,
    what a killed job leaves behind): never an input, whatever a glob catches."""
    return bool(_TEMPORARY.match(Path(path).name))


def _umask() -> int:
    """The process's umask (read by setting it and restoring it at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike[str], *, provenance: Mapping[str, Any] | None = None
) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` only on success.

    The temporary file keeps the suffix of ``path`` (so ROOT/HDF5 writers that look at the
    extension behave), and is removed if the block raises. With ``provenance``, the record
    is embedded in a ROOT/HDF5 temporary file before the rename (the writer must have closed
    it by then: nest it inside this block), or written as a sidecar after the rename.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.tmp.", suffix=final.suffix, dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    embedded = provenance is not None and prov.storage_kind(final) != "sidecar"
    try:
        yield tmp_path
        if embedded:
            prov.embed_provenance(tmp_path, provenance)  # type: ignore[arg-type]
        if tmp_path.is_file():  # mkstemp makes it 0600; a new file gets 0666 & ~umask
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise
    if provenance is not None and not embedded:
        attach_provenance(final, provenance)


def write_text(
    path: str | os.PathLike[str], text: str, *, provenance: Mapping[str, Any] | None = None
) -> None:
    """Write ``text`` to ``path`` atomically (plus the ``provenance`` sidecar, if given)."""
    with atomic_path(path, provenance=provenance) as tmp:
        tmp.write_text(text)


def write_json(
    path: str | os.PathLike[str],
    obj: Any,
    *,
    indent: int = 2,
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Write ``obj`` as JSON (sorted keys, trailing newline) to ``path`` atomically."""
    write_text(
        path,
        json.dumps(obj, indent=indent, sort_keys=True, default=json_default) + "\n",
        provenance=provenance,
    )


def attach_provenance(path: str | os.PathLike[str], record: Mapping[str, Any]) -> Path:
    """Attach ``record`` to the existing output ``path``; returns where it was stored.

    ROOT/HDF5: a copy of the file gets the record and replaces the output (atomic, the
    other contents are untouched); other files: the sidecar ``<output>.provenance.json``
    (written atomically). Raises ``FileNotFoundError`` naming a missing output.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"provenance: output not found: {p}")
    if prov.storage_kind(p) == "sidecar":
        side = prov.sidecar_path(p)
        write_json(side, dict(record))
        return side
    with atomic_path(p) as tmp:
        shutil.copyfile(p, tmp)
        prov.embed_provenance(tmp, record)
    return p
