"""Write hepline ntuples: classic ROOT TTrees with NanoAOD-style branches (docs/ntuple-format.md).

The file is written under a temporary name in the target folder and renamed only when it is
complete, so a killed job never leaves a file that looks finished.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import awkward as ak
import numpy as np
import uproot

from analysis.core.atomic import atomic_path
from analysis.core.config import CompressionConfig
from analysis.core.format import HEPLINE_METADATA_KEY
from analysis.core.provenance import write_root_provenance
from analysis.core.serialise import json_default

__all__ = [
    "COMPRESSION",
    "NtupleWriter",
    "branch_types",
    "collection_groups",
    "compression_from_config",
    "event_block",
]

log = logging.getLogger(__name__)

#: uproot compression classes by the ``generation.compression.algorithm`` name
COMPRESSION: dict[str, Any] = {
    "zlib": uproot.ZLIB,
    "lz4": uproot.LZ4,
    "zstd": uproot.ZSTD,
    "lzma": uproot.LZMA,
}


def compression_from_config(comp: CompressionConfig) -> Any:
    """The uproot compression object of a ``generation.compression`` section.

    Args:
        comp: the algorithm (``zlib``, ``lz4``, ``zstd``, ``lzma`` or ``none``) and its level.

    Returns:
        An uproot compression (e.g. ``uproot.ZSTD(3)``), or ``None`` for ``none``.
    """
    if comp.algorithm == "none":
        return None
    return COMPRESSION[comp.algorithm](comp.level)


def branch_types(block: Mapping[str, Any]) -> dict[str, Any]:
    """uproot ``mktree`` branch types of an event block (numpy arrays and jagged awkward
    record arrays)."""
    return {
        name: value.type.content if isinstance(value, ak.Array) else np.asarray(value).dtype
        for name, value in block.items()
    }


def collection_groups(tree: Any) -> list[tuple[str, list[str]]]:
    """``[(name, [branches])]`` of an ``Events`` tree in file order: a collection ``X`` with
    its ``X_*`` branches (counted by ``nX``), or a single event-level branch; counters are
    dropped (uproot rebuilds ``nX`` from the collection when writing)."""
    counters = {b.count_branch.name for b in tree.branches if b.count_branch is not None}
    groups: list[tuple[str, list[str]]] = []
    index: dict[str, int] = {}
    for b in tree.branches:
        if b.name in counters:
            continue
        if b.count_branch is not None:
            coll = b.count_branch.name[1:]
            if not b.name.startswith(coll + "_"):
                raise ValueError(f"branch {b.name} counted by {b.count_branch.name}: not a collection")
            if coll not in index:
                index[coll] = len(groups)
                groups.append((coll, []))
            groups[index[coll]][1].append(b.name)
        else:
            groups.append((b.name, [b.name]))
    return groups


def event_block(arrays: ak.Array, groups: list[tuple[str, list[str]]]) -> dict[str, Any]:
    """The writable block of ``arrays`` (read from a tree with ``groups``): numpy arrays for
    event-level branches, a zipped record array per collection."""
    block: dict[str, Any] = {}
    for name, branches in groups:
        if len(branches) == 1 and branches[0] == name:
            block[name] = ak.to_numpy(arrays[name])
        else:
            block[name] = ak.zip({b[len(name) + 1:]: arrays[b] for b in branches})
    return block


class NtupleWriter:
    """Stream batches of events into one hepline ntuple.

    Use as a context manager::

        with NtupleWriter(path, compression=uproot.ZSTD(3)) as w:
            for block in blocks:
                w.write(block)          # one basket per branch per call
            w.finish(metadata, provenance=record)  # Runs tree, metadata, provenance; the
                                                    # file appears on exit

    If the block raises, or :meth:`finish` is never called, nothing appears at ``path``.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, compression: Any = None, basket_events: int = 1
    ) -> None:
        self.path = Path(path)
        self.compression = compression
        self.basket_events = int(basket_events)
        self._pending: list[dict[str, Any]] = []
        self._pending_events = 0
        self._ctx = atomic_path(self.path)
        self._file: Any = None
        self._tree: Any = None
        self._finished = False
        self.n_events = 0
        self.sumw = 0.0
        self.sumw2 = 0.0

    def __enter__(self) -> NtupleWriter:
        tmp = self._ctx.__enter__()
        self._file = uproot.recreate(tmp, compression=self.compression)
        return self

    def write(self, block: dict[str, Any]) -> None:
        """Append a batch: event-level numpy arrays and jagged awkward collections.

        Batches are buffered until ``basket_events`` events are pending, then written as one
        basket per branch (larger baskets compress better and read faster).
        """
        if self._tree is None:
            self._tree = self._file.mktree("Events", branch_types(block))
        self._pending.append(block)
        weights = np.asarray(block["genWeight"], dtype=np.float64)
        self._pending_events += weights.size
        if self._pending_events >= self.basket_events:
            self._flush()
        self.n_events += weights.size
        self.sumw += float(weights.sum())
        self.sumw2 += float((weights**2).sum())

    def _flush(self) -> None:
        if not self._pending:
            return
        if len(self._pending) == 1:
            merged = self._pending[0]
        else:
            merged = {
                key: (ak.concatenate([b[key] for b in self._pending]) if isinstance(value, ak.Array)
                      else np.concatenate([b[key] for b in self._pending]))
                for key, value in self._pending[0].items()
            }
        self._tree.extend(merged)
        self._pending, self._pending_events = [], 0

    def finish(
        self, metadata: dict[str, Any], *, provenance: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Write the ``Runs`` tree, the JSON metadata and (if given) the provenance record
        (TObjString ``hepline_provenance``, :mod:`analysis.core.provenance`). Returns the
        metadata written."""
        self._flush()
        if self._tree is None:
            raise ValueError(f"{self.path}: no events were written; refusing to create an empty ntuple")
        meta = dict(metadata)
        meta.update(n_events=self.n_events, sumw=self.sumw, sumw2=self.sumw2)
        runs = self._file.mktree(
            "Runs",
            {"run": np.uint32, "genEventCount": np.int64, "genEventSumw": np.float64,
             "genEventSumw2": np.float64},
        )
        runs.extend({
            "run": np.array([meta.get("run_number", 0)], dtype=np.uint32),
            "genEventCount": np.array([self.n_events], dtype=np.int64),
            "genEventSumw": np.array([self.sumw]),
            "genEventSumw2": np.array([self.sumw2]),
        })
        self._file[HEPLINE_METADATA_KEY] = json.dumps(meta, sort_keys=True, default=json_default)
        if provenance is not None:
            write_root_provenance(self._file, provenance)
        self._finished = True
        return meta

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._file is not None:
            self._file.close()
        if exc_type is None and not self._finished:
            exc = RuntimeError(f"{self.path}: NtupleWriter closed without finish(); output discarded")
            self._ctx.__exit__(type(exc), exc, None)
            raise exc
        self._ctx.__exit__(exc_type, exc, tb)


