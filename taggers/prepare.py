"""Stage 1 of the tagger chain: ttbar ntuples -> train/validation/test HDF5 files + IP templates.

1. :func:`taggers.ftag.load_inputs` on the input files: hepline ntuples
   (:func:`taggers.features.load_dataset`) and training-dataset-dumper HDF5 files
   (:func:`taggers.ftag.read_dumper`: MeV converted to GeV, the grade from the hit counts),
   with the same selection and ordering (jets with pT > 20 GeV, |η| < 2.5; the ≤ 15
   largest-|sd0| tracks);
2. :func:`taggers.dataset.prepare_splits`: event-number split (``event % 10``: 0–7 train,
   8 validation, 9 test), required flavours, (pT, |η|) reweighting of the splits in
   ``taggers.reweighting.apply_to`` (default train and validation; the test split keeps the
   natural ttbar spectra and unit weights);
3. IP2D and IP3D templates filled on the training split only;
4. per split, the jet columns of :func:`taggers.models.high_level_columns` (IP2D/IP3D
   outputs, SV1, ``abs_eta``);
5. ``<out>/{train,validation,test}.h5`` (:func:`taggers.export.write_h5`: the dumper
   layout, MeV),
   ``<out>/ipxd/{ip2d,ip3d}.npz`` and the summary ``<out>/prepare.json``, each with its run
   provenance (:mod:`analysis.core.provenance`; HDF5 attribute, else a sidecar).

Every HDF5 file's ``metadata`` attribute carries the ``dataset`` provenance (``dataset_id``,
``features_hash``, the templates' SHA-256) that training copies into the model sidecars and
that evaluation and decoration check (docs/taggers-results.md).

Command line::

    hepline taggers prepare --config workflows/config/default.yaml \\
        --output-dir results/taggers results/samples/ttbar/ttbar_*.root
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import analysis
from analysis.core.atomic import attach_provenance, write_json
from analysis.core.config import Config, config_hash
from analysis.core.errors import InputError
from analysis.core.provenance import file_sha256, provenance_record
from analysis.io.ingest import unique_inputs
from taggers.algorithms.ipxd import IPTemplates, fit_templates
from taggers.dataset import SPLITS, Split, prepare_splits
from taggers.export import DatasetProvenance, write_h5
from taggers.features import FLAVOUR_NAMES, TaggingDataset
from taggers.ftag import load_inputs
from taggers.models import IPXD_FILES, IPXD_TAGGERS, features_hash, high_level_columns
from taggers.training import data_fingerprint

log = logging.getLogger(__name__)

__all__ = ["SUMMARY_FILE", "FlavourCount", "PrepareResult", "SplitCounts", "flavour_counts", "prepare"]

#: the stage's summary, in the output directory
SUMMARY_FILE = "prepare.json"


@dataclass(frozen=True)
class FlavourCount:
    """Jets of one flavour in a split: their number, summed weight and number without tracks."""

    jets: int
    sum_weights: float
    no_tracks: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``prepare.json``)."""
        return {"jets": self.jets, "sum_weights": self.sum_weights, "no_tracks": self.no_tracks}


@dataclass(frozen=True)
class SplitCounts:
    """Jets of a split, in total and per flavour (``b``, ``c``, ``light``, ``tau``)."""

    jets: int
    flavours: Mapping[str, FlavourCount]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``prepare.json``): ``{"jets": n, "b": {...}, ...}``."""
        return {"jets": self.jets, **{k: v.to_dict() for k, v in self.flavours.items()}}


def flavour_counts(ds: TaggingDataset) -> SplitCounts:
    """Jets, summed weights and jets without tracks per flavour of ``ds``."""
    flavours = {}
    for lab, name in FLAVOUR_NAMES.items():
        sel = ds.jets["label"] == lab
        flavours[name] = FlavourCount(
            jets=int(sel.sum()),
            sum_weights=float(ds.jets["weight"][sel].astype(np.float64).sum()),
            no_tracks=int((ds.jets["n_tracks"][sel] == 0).sum()),
        )
    return SplitCounts(jets=len(ds), flavours=flavours)


@dataclass
class PrepareResult:
    """What :func:`prepare` wrote and the prepared data themselves.

    Attributes:
        sample: the generation sample (``taggers.sample``).
        sources: the ntuples read.
        dataset: the provenance stored in every HDF5 file (``dataset_id``, ...).
        reweighting_method: ``taggers.reweighting.method``.
        reweighted_splits: the splits the reweighting was applied to.
        counts: jets per flavour of each split.
        files: ``train``/``validation``/``test`` HDF5 files.
        ipxd_files: the IP2D/IP3D template files.
        splits: the prepared splits in memory (with the IP2D/IP3D, SV1 and ``abs_eta`` columns).
        templates: the IP2D/IP3D templates (filled on the training split).
        timing: wall and CPU seconds of the steps.
    """

    sample: str
    sources: list[str]
    dataset: DatasetProvenance
    reweighting_method: str
    reweighted_splits: tuple[str, ...]
    counts: dict[str, SplitCounts]
    files: dict[str, Path]
    ipxd_files: dict[str, Path]
    splits: Split
    templates: dict[str, IPTemplates]
    timing: dict[str, float] = field(default_factory=dict)
    hepline_version: str = analysis.__version__

    def to_dict(self) -> dict[str, Any]:
        """The content of ``prepare.json``."""
        return {
            "hepline_version": self.hepline_version,
            "sample": self.sample,
            "sources": list(self.sources),
            "dataset": self.dataset.to_dict(),
            "reweighting": {"method": self.reweighting_method, "applied_to": list(self.reweighted_splits)},
            "splits": {name: c.to_dict() for name, c in self.counts.items()},
            "files": {**{name: str(p) for name, p in self.files.items()},
                      "ipxd": {k: str(p) for k, p in self.ipxd_files.items()}},
            "timing": dict(self.timing),
        }


def prepare(
    files: Sequence[str | os.PathLike[str]],
    cfg: Config,
    output_dir: str | os.PathLike[str],
) -> PrepareResult:
    """Stage 1: ttbar ntuples -> ``{train,validation,test}.h5``, IP templates, ``prepare.json``.

    Args:
        files: the shard ntuples of ``taggers.sample``, or training-dataset-dumper HDF5 files
            (told apart by content; both may be given).
        cfg: the configuration (``taggers``; ``seed`` seeds the ``resample`` reweighting).
        output_dir: where the files go (``<output_dir>/ipxd/`` for the templates).

    Returns:
        The :class:`PrepareResult` (its :meth:`~PrepareResult.to_dict` is ``prepare.json``).

    Raises:
        InputError: no input files; EmptySplitError, MissingFlavourError: see
            :func:`taggers.dataset.prepare_splits`; NonFiniteInputError: NaN/inf in an input;
            InputFileError: a dumper file with a missing variable, a non-bool ``valid`` mask
            or jet pT on the wrong scale (:mod:`taggers.ftag`).
    """
    t0, c0 = time.perf_counter(), time.process_time()
    tcfg = cfg.taggers
    out = Path(output_dir)
    paths = unique_inputs(files)
    if not paths:
        raise InputError("taggers.prepare: no input files")
    ds = load_inputs(paths, tcfg)
    t_load = time.perf_counter() - t0
    rng = np.random.default_rng([int(cfg.seed), 3])
    splits = prepare_splits(ds, tcfg, rng=rng)
    record = provenance_record(
        stage="taggers.prepare", config=cfg, seeds={"split_rng": [int(cfg.seed), 3]}, inputs=paths,
    )

    templates = {k: fit_templates(splits.train, tcfg, k) for k in IPXD_TAGGERS}
    ipxd_sha = {}
    ipxd_files = {k: out / "ipxd" / IPXD_FILES[k] for k in IPXD_TAGGERS}
    for k, tpl in templates.items():
        tpl.save(ipxd_files[k])
        ipxd_sha[k] = file_sha256(ipxd_files[k])
        attach_provenance(ipxd_files[k], record)

    fh = features_hash(tcfg)
    jet_print = data_fingerprint(
        *(np.asarray(part.jets[c]) for part in splits for c in ("event", "pt", "label", "weight"))
    )
    dataset = DatasetProvenance(
        dataset_id=config_hash(
            {
                "features_hash": fh,
                "split": tcfg.split,
                "reweighting": tcfg.reweighting,
                "ipxd_sha256": ipxd_sha,
                "jets": jet_print,
            }
        ),
        features_hash=fh,
        ipxd_sha256=ipxd_sha,
        taggers_config_hash=config_hash(tcfg),
    )
    reweighted = tcfg.reweighting.method != "none"
    timing = {"load_s": t_load}
    prepared, counts, h5_files = {}, {}, {}
    for name, part in zip(SPLITS, splits):
        t1 = time.perf_counter()
        cols = high_level_columns(part, templates, tcfg)
        full = part.with_jet_fields(cols)
        timing[f"features_{name}_s"] = time.perf_counter() - t1
        path = out / f"{name}.h5"
        meta = {
            "config_hash": dataset.taggers_config_hash,
            "split": name,
            "sample": tcfg.sample,
            "dataset": dataset.to_dict(),
            "reweighted": name in tcfg.reweighting.apply_to and reweighted,
        }
        write_h5(path, full, meta, provenance=record)
        prepared[name], counts[name], h5_files[name] = full, flavour_counts(full), path
        log.info("%s: %d jets -> %s", name, len(full), path)
    timing["wall_s"] = time.perf_counter() - t0
    timing["cpu_s"] = time.process_time() - c0
    result = PrepareResult(
        sample=tcfg.sample,
        sources=paths,
        dataset=dataset,
        reweighting_method=tcfg.reweighting.method,
        reweighted_splits=tuple(tcfg.reweighting.apply_to),
        counts=counts,
        files=h5_files,
        ipxd_files=ipxd_files,
        splits=Split(**prepared),
        templates=templates,
        timing=timing,
    )
    write_json(out / SUMMARY_FILE, result.to_dict(), provenance=record)
    return result
