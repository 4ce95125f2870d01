"""Stage 4 of the tagger chain: b-tagging discriminants added to hepline ntuples.

The decorated ntuple is a copy of the input (every ``Events`` branch with its type and
values, the ``Runs`` tree, the ``hepline_metadata`` JSON) plus, per jet:

* ``Jet_btag_<tagger>`` (float32) for ip2d, ip3d, mv2, rnnip, dl1: the discriminant of
  :mod:`taggers.models` (larger = more b-like; the working-point file's cuts apply as
  ``Jet_btag_<tagger> > cut``);
* ``Jet_rnnip_pb``, ``Jet_rnnip_pc``, ``Jet_rnnip_pu``, ``Jet_rnnip_ptau`` (float32).

With a subset of taggers (``taggers=`` of :func:`taggers.models.load_models`), only their
branches are added (the RNNIP probabilities with RNNIP).

Jets outside the tagging acceptance (``taggers.jets``: pT > 20 GeV, |η| < 2.5) get the
sentinel ``taggers.decoration.sentinel`` (−99) in all these branches; it lies below every
discriminant (a computed value at or below it raises). Jets inside the acceptance always get
finite values, also without tracks (IP2D/IP3D D = ln 1 = 0 for f_c-weighted equal
likelihoods, RNNIP's learned no-track state, SV1 defaults). NaN/inf in the jet or track
inputs raise :class:`~analysis.core.errors.NonFiniteInputError` naming the file, the branch
and the event: nothing is decorated silently with garbage.

The metadata gains ``taggers``: the model files and their SHA-256, the prepared dataset id,
f_c per tagger, the sentinel, the branches added; the file gets its own run provenance
(``hepline_provenance``, :mod:`analysis.core.provenance`; inputs: the source ntuple and the
models). The file is written atomically, reading, decorating and writing
``taggers.decoration.chunk_events`` events at a time.

In memory (notebooks): :func:`decorate_events` returns the new branches for NanoEvents or
``read_arrays(path, how="zip")`` records.

Command line::

    hepline taggers decorate --config workflows/config/default.yaml \\
        --models results/taggers/models --output results/decorated/yy/yy_0.root \\
        results/samples/yy/yy_0.root
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np
import uproot

import analysis
from analysis.core.atomic import atomic_path
from analysis.core.config import Config
from analysis.core.errors import InputFileError
from analysis.core.format import HEPLINE_METADATA_KEY
from analysis.core.provenance import provenance_record, write_root_provenance
from analysis.core.serialise import json_default
from analysis.generation.writer import (
    branch_types,
    collection_groups,
    compression_from_config,
    event_block,
)
from taggers.features import build_dataset
from taggers.models import RNNIP_COLUMNS, TAGGERS, TaggerModels, load_models

log = logging.getLogger(__name__)

__all__ = [
    "DECORATION_FIELDS",
    "DecorationSummary",
    "decorate",
    "decorate_events",
    "decorate_file",
    "decoration_fields",
]

#: the per-jet branches added with every tagger (without the ``Jet_`` prefix)
DECORATION_FIELDS: tuple[str, ...] = (
    *(f"btag_{t}" for t in TAGGERS),
    *(c for c in RNNIP_COLUMNS),
)


def decoration_fields(taggers: Sequence[str]) -> tuple[str, ...]:
    """The per-jet branches (without ``Jet_``) added for ``taggers``: ``btag_<tagger>`` for
    each, and the RNNIP probabilities with RNNIP."""
    return (*(f"btag_{t}" for t in taggers), *(RNNIP_COLUMNS if "rnnip" in taggers else ()))


def _flat_np(a: Any) -> np.ndarray:
    return np.asarray(ak.to_numpy(ak.flatten(a, axis=None)))


def decorate_events(
    events: Any,
    models: TaggerModels,
    *,
    detector: Mapping[str, Any] | None = None,
    source: str = "<memory>",
) -> dict[str, ak.Array]:
    """The decoration branches of ``events``, one entry per jet of ``events["Jet"]``.

    Args:
        events: NanoEvents, ``read_arrays(path, how="zip")`` records or a mapping with
            ``Jet``, ``Track`` and ``event``.
        models: the taggers (:func:`taggers.models.load_models`); their ``taggers`` decide
            the branches.
        detector: the generation's detector parameters (file metadata) for SV1; without
            them the detector defaults are used (with a warning).
        source: names the input in errors.

    Returns:
        ``{"Jet_btag_dl1": jagged float32, ..., "Jet_rnnip_pb": ...}``.

    Raises:
        NonFiniteInputError: NaN/inf in an input (named).
        ValueError: a discriminant at or below the sentinel.
    """
    cfg = models.cfg
    sentinel = float(cfg.decoration.sentinel)
    fields = decoration_fields(models.taggers)
    jets = events["Jet"]
    counts = np.asarray(ak.to_numpy(ak.num(jets, axis=1))).astype(np.int64)
    pt = _flat_np(jets["pt"])
    eta = _flat_np(jets["eta"])
    n_flat = pt.size
    sel = (pt > cfg.jets.pt_min_gev) & (np.abs(eta) < cfg.jets.abs_eta_max)
    values = {f: np.full(n_flat, sentinel, dtype=np.float32) for f in fields}
    if not sel.any():  # no taggable jet (or no event at all): nothing to run
        return {f"Jet_{f}": ak.unflatten(v, counts) for f, v in values.items()}
    ds = build_dataset(events, cfg, source=source, detector=detector)
    local = np.arange(n_flat) - np.repeat(np.cumsum(counts) - counts, counts)
    if int(sel.sum()) != len(ds) or not np.array_equal(local[sel], ds.jets["jet_index"]):
        raise RuntimeError(f"{source}: decorated jets do not line up with the tagging dataset")
    if len(ds):
        pred = models.predict(ds)
        for t, d in pred.discriminants.items():
            if np.any(d <= sentinel):
                raise ValueError(
                    f"{source}: a {t} discriminant ({float(d.min()):.4g}) is not above the "
                    f"sentinel {sentinel}; choose a lower taggers.decoration.sentinel"
                )
            values[f"btag_{t}"][sel] = d.astype(np.float32)
        if pred.rnnip is not None and "rnnip" in models.taggers:
            for i, c in enumerate(RNNIP_COLUMNS):
                values[c][sel] = pred.rnnip[:, i]
    return {f"Jet_{f}": ak.unflatten(v, counts) for f, v in values.items()}


# --------------------------------------------------------------------------- files


@dataclass(frozen=True)
class DecorationSummary:
    """What :func:`decorate_file` wrote.

    Attributes:
        input, output: the ntuples.
        events: events copied.
        jets: jets in them.
        taggable_jets: jets in the tagging acceptance (decorated with discriminants).
        wall_s: seconds.
    """

    input: str
    output: str
    events: int
    jets: int
    taggable_jets: int
    wall_s: float

    @property
    def events_per_s(self) -> float | None:
        """Events per wall second."""
        return self.events / self.wall_s if self.wall_s > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"input": self.input, "output": self.output, "events": self.events, "jets": self.jets,
                "taggable_jets": self.taggable_jets, "wall_s": self.wall_s, "events_per_s": self.events_per_s}


def decorate_file(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    models: TaggerModels,
    cfg: Config,
) -> DecorationSummary:
    """Write the decorated copy of ``input_path`` to ``output_path`` (atomically).

    Args:
        input_path: a hepline ntuple (one shard).
        output_path: the decorated ntuple.
        models: the taggers (:func:`taggers.models.load_models`).
        cfg: the configuration (``generation.compression`` of the output, provenance).

    Returns:
        The :class:`DecorationSummary`.

    Raises:
        InputFileError: not a hepline ntuple with ``Jet``/``Track`` collections.
    """
    t0 = time.perf_counter()
    tcfg = models.cfg
    chunk = int(tcfg.decoration.chunk_events)
    comp = compression_from_config(cfg.generation.compression)
    fields = decoration_fields(models.taggers)
    sentinel = float(tcfg.decoration.sentinel)
    src = str(input_path)
    n_jets = n_tag = 0
    with uproot.open(src) as fin:
        if "Events" not in fin or HEPLINE_METADATA_KEY not in fin:
            raise InputFileError(src, f"not a hepline ntuple (needs Events and {HEPLINE_METADATA_KEY})")
        meta = json.loads(str(fin[HEPLINE_METADATA_KEY]))
        tree = fin["Events"]
        groups = collection_groups(tree)
        if "Jet" not in dict(groups) or "Track" not in dict(groups):
            raise InputFileError(src, "no Jet/Track collections to tag")
        runs = fin["Runs"].arrays(library="np") if "Runs" in fin else None
        runs_types = (
            None if runs is None else {k: v.dtype.newbyteorder("=") for k, v in runs.items()}
        )
        n_entries = int(tree.num_entries)
        detector = meta.get("detector")
        with atomic_path(output_path) as tmp, uproot.recreate(tmp, compression=comp) as fout:
            out_tree = None
            for start in range(0, max(n_entries, 1), chunk):
                stop = min(start + chunk, n_entries)
                arrays = tree.arrays(entry_start=start, entry_stop=stop)
                block = event_block(arrays, groups)
                new = decorate_events(block, models, detector=detector, source=src)
                jets = block["Jet"]
                for name, v in new.items():
                    jets = ak.with_field(jets, v, name[len("Jet_") :])
                block["Jet"] = jets
                n_jets += int(ak.sum(ak.num(jets, axis=1)))
                n_tag += int(np.sum(_flat_np(jets[fields[0]]) > sentinel))
                if out_tree is None:
                    out_tree = fout.mktree("Events", branch_types(block))
                if stop > start:
                    out_tree.extend(block)
            if runs is not None:
                assert runs_types is not None
                rt = fout.mktree("Runs", runs_types)
                rt.extend({k: np.asarray(v, dtype=runs_types[k]) for k, v in runs.items()})
            meta["taggers"] = {
                **models.describe(),
                "hepline_version": analysis.__version__,
                "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "input": src,
                "sentinel": sentinel,
                "branches": [f"Jet_{f}" for f in fields],
                "acceptance": tcfg.jets.to_dict(),
                "rnnip_backend": models.rnnip_backend,
                "cut_definition": "b-tagged at a working point when Jet_btag_<tagger> > cut",
            }
            fout[HEPLINE_METADATA_KEY] = json.dumps(meta, sort_keys=True, default=json_default)
            write_root_provenance(fout, provenance_record(
                stage="taggers.decorate", config=cfg,
                inputs=[src, *models.model_files()],
                extra={"threads": models.threads},
            ))
    summary = DecorationSummary(input=src, output=str(output_path), events=n_entries, jets=n_jets,
                                taggable_jets=n_tag, wall_s=time.perf_counter() - t0)
    log.info("decorated %s: %d events, %d of %d jets tagged, %.1f s", src, n_entries, n_tag, n_jets,
             summary.wall_s)
    return summary


def decorate(
    cfg: Config,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    *,
    ipxd_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    taggers: Sequence[str] | None = None,
) -> DecorationSummary:
    """Stage 4: load the taggers and write the decorated copy of one ntuple.

    Args:
        cfg: the configuration.
        input_path: a hepline ntuple (one shard).
        output_path: the decorated ntuple.
        model_dir: the model directory of :mod:`taggers.train`.
        ipxd_dir: the IP2D/IP3D templates (default ``<model_dir>/../ipxd``).
        threads: torch / ONNX Runtime threads (default ``taggers.threads``).
        taggers: decorate with these taggers only (default: all).

    Returns:
        The :class:`DecorationSummary`.
    """
    models = load_models(model_dir, cfg.taggers, ipxd_dir=ipxd_dir, threads=threads, taggers=taggers)
    return decorate_file(input_path, output_path, models, cfg)
