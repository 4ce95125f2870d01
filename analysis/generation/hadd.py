"""Concatenate hepline ntuples of one sample into one file (``hadd`` for hepline ntuples).

Shards are small (a few thousand to tens of thousands of events) so that generation
parallelises; an analysis reading them pays a fixed cost per file and chunk (the ``Events``
tree's metadata, ≈ 90 branches, is read again for every chunk: ≈ 30–45 ms of CPU each,
docs/hh_yybb.md). Merging the shards of a sample into larger files removes most of it::

    python -m analysis.generation hadd --output yy_merged.root yy_0.root yy_1.root ...

The inputs must be hepline ntuples of one sample with the same branches and types, and,
for files decorated by the taggers, the same tagger models. The ``Events`` trees are
copied chunk by chunk (``basket_events`` events per basket), the ``Runs`` rows are
concatenated, and the metadata is the first file's with the summed counts, Σw and Σw², the
generated-event-weighted σ (:func:`analysis.core.format.combined_xsec`), the
input ``shards`` and ``merged_from`` (the inputs). The output appears atomically.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import uproot

from analysis.core.atomic import atomic_path
from analysis.core.errors import InputError, InputFileError
from analysis.core.format import HEPLINE_METADATA_KEY, combined_xsec
from analysis.core.provenance import provenance_record, write_root_provenance
from analysis.core.serialise import json_default
from analysis.generation.writer import branch_types, collection_groups, event_block

log = logging.getLogger(__name__)

__all__ = ["MergedNtuple", "hadd"]


@dataclass(frozen=True)
class MergedNtuple:
    """What :func:`hadd` wrote: the output, its inputs and the metadata stored in it."""

    output: Path
    inputs: tuple[str, ...]
    #: events in the output's ``Events`` tree
    n_events: int
    #: the ``hepline_metadata`` JSON object of the output (the first input's, with summed
    #: counts, Σw, Σw², the combined σ in pb, ``shards`` and ``merged_from``)
    metadata: dict[str, Any]

_MERGED_KEYS = ("n_events", "sumw", "sumw2", "n_generated", "xsec_pb", "xsec_err_pb", "shard", "shards")


def _comparable(meta: dict[str, Any], key: str) -> Any:
    """``meta[key]`` without what differs per file (the decorated input, the time)."""
    value = meta.get(key)
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in ("input", "created_utc")}
    return value


def _check_inputs(paths: Sequence[str]) -> list[dict[str, Any]]:
    """Metadata of every input; raises :class:`InputFileError` naming the file and what
    differs (branches and types, sample, tagger models)."""
    metas: list[dict[str, Any]] = []
    ref_types: dict[str, str] | None = None
    ref_path: str | None = None
    for p in paths:
        with uproot.open(p) as f:
            if "Events" not in f or HEPLINE_METADATA_KEY not in f:
                raise InputFileError(p, f"not a hepline ntuple (needs Events and {HEPLINE_METADATA_KEY})")
            meta = json.loads(str(f[HEPLINE_METADATA_KEY]))
            types = dict(f["Events"].typenames())
        if ref_types is None:
            ref_types, ref_path = types, p
        elif types != ref_types:
            diff = sorted(set(types.items()) ^ set(ref_types.items()))
            raise InputFileError(p, f"branches differ from {ref_path}'s: {diff[:6]}")
        if metas:
            for key in ("sample", "taggers"):
                if _comparable(metas[0], key) != _comparable(meta, key):
                    raise InputFileError(p, f"'{key}' in {HEPLINE_METADATA_KEY} differs from {paths[0]}'s")
        metas.append(meta)
    return metas


def _merged_counts(metas: list[dict[str, Any]], paths: Sequence[str]) -> dict[str, Any]:
    """Summed counts (and Σw, Σw², generated events where every input has them); σ and
    its error from :func:`analysis.core.format.combined_xsec`."""
    missing = [p for p, m in zip(paths, metas, strict=True) if "n_events" not in m]
    if missing:
        raise InputFileError(missing[0], f"no 'n_events' in {HEPLINE_METADATA_KEY}")
    out: dict[str, Any] = {"n_events": int(sum(m["n_events"] for m in metas))}
    for key in ("sumw", "sumw2", "n_generated"):  # summed where every input has them
        if all(key in m for m in metas):
            out[key] = sum(m[key] for m in metas)
    if all("xsec_pb" in m for m in metas):
        out["xsec_pb"], out["xsec_err_pb"] = combined_xsec(metas)
    out["shards"] = [m.get("shard") for m in metas]
    return out


def hadd(inputs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *,
         basket_events: int = 10000, compression: Any = None) -> MergedNtuple:
    """Concatenate hepline ntuples of one sample into one file (``hepline hadd``).

    Args:
        inputs: the ntuples, all of one sample with the same branches (and tagger models).
        output: the ROOT file to write (atomically, with provenance).
        basket_events: events per basket written.
        compression: an uproot compression (default zstd level 3, as the generation writes).

    Returns:
        The output, its inputs, its event count and the metadata written.

    Raises:
        InputFileError: an input is not a hepline ntuple or differs from the first.
        InputError: no inputs, or the output is among them.
    """
    paths = [os.fspath(p) for p in inputs]
    if not paths:
        raise InputError("hadd: no input files")
    if os.fspath(output) in paths:
        raise InputError(f"hadd: output {output} is also an input")
    metas = _check_inputs(paths)
    comp = uproot.ZSTD(3) if compression is None else compression
    runs_parts: dict[str, list[np.ndarray]] = {}
    n_written = 0
    with atomic_path(output) as tmp, uproot.recreate(tmp, compression=comp) as fout:
        tree = None
        for p in paths:
            with uproot.open(p) as f:
                events = f["Events"]
                groups = collection_groups(events)
                for arrays in events.iterate(step_size=int(basket_events)):
                    block = event_block(arrays, groups)
                    if tree is None:
                        tree = fout.mktree("Events", branch_types(block))
                    tree.extend(block)
                    n_written += len(arrays)
                if "Runs" in f:
                    for k, v in f["Runs"].arrays(library="np").items():
                        runs_parts.setdefault(k, []).append(v)
            log.info("hadd: %s copied (%d events so far)", p, n_written)
        if runs_parts:
            runs = {k: np.concatenate(v) for k, v in runs_parts.items()}
            fout.mktree("Runs", {k: v.dtype.newbyteorder("=") for k, v in runs.items()}).extend(
                {k: v.astype(v.dtype.newbyteorder("=")) for k, v in runs.items()})
        counts = _merged_counts(metas, paths)
        meta = {k: v for k, v in metas[0].items() if k not in _MERGED_KEYS}  # no stale per-file value
        meta.update(counts, merged_from=paths)
        if meta["n_events"] != n_written:
            raise InputError(f"hadd: the inputs' metadata count {meta['n_events']} events, "
                             f"their Events trees {n_written}")
        fout[HEPLINE_METADATA_KEY] = json.dumps(meta, sort_keys=True, default=json_default)
        write_root_provenance(fout, provenance_record(stage="generation.hadd", inputs=paths,
                                                      extra={"basket_events": int(basket_events)}))
    log.info("hadd: wrote %s (%d events from %d files)", output, n_written, len(paths))
    return MergedNtuple(output=Path(output), inputs=tuple(paths), n_events=n_written, metadata=meta)
