"""Stage 1 of the tagger chain: ttbar ntuples -> train/validation/test HDF5 files + IP templates.

1. :func:`taggers.features.load_dataset` on the shard files (jets with pT > 20 GeV,
   |η| < 2.5; the ≤ 15 largest-|sd0| tracks);
2. :func:`taggers.dataset.prepare_splits`: event-number split (``event % 10``: 0–7 train,
   8 validation, 9 test), required flavours, (pT, |η|) reweighting of the splits in
   ``taggers.reweighting.apply_to`` (default train and validation; the test split keeps the
   natural ttbar spectra and unit weights);
3. IP2D and IP3D templates filled on the training split only;
4. per split, the jet columns of :func:`taggers.models.high_level_columns` (IP2D/IP3D
   outputs, SV1, ``abs_eta``);
5. ``<out>/{train,validation,test}.h5`` (:func:`taggers.export.write_h5`),
   ``<out>/ipxd/{ip2d,ip3d}.npz`` and the summary ``<out>/prepare.json``, each with its run
   provenance (:mod:`analysis.core.provenance`; HDF5 attribute, else a sidecar).

Every HDF5 file's ``metadata`` attribute carries the ``dataset`` provenance (``dataset_id``,
``features_hash``, the templates' SHA-256) that training copies into the model sidecars and
that evaluation and decoration check (docs/taggers-results.md).

Command line::

    python -m taggers.prepare --config workflows/config/default.yaml \\
        --output-dir results/taggers results/samples/ttbar/ttbar_*.root
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import analysis
from analysis.core.atomic import write_json
from analysis.core.config import config_hash, load_raw_config
from analysis.core.atomic import attach_provenance
from analysis.core.provenance import provenance_record
from taggers.dataset import SPLITS, prepare_splits
from taggers.export import write_h5
from taggers.features import FLAVOUR_NAMES, TaggingDataset, load_dataset, tagger_config
from taggers.algorithms.ipxd import fit_templates
from taggers.models import IPXD_FILES, IPXD_TAGGERS, features_hash, file_sha256, high_level_columns
from taggers.training import data_fingerprint

log = logging.getLogger(__name__)


def flavour_counts(ds: TaggingDataset) -> dict[str, Any]:
    """Jets, summed weights and jets without tracks per flavour."""
    out: dict[str, Any] = {"jets": len(ds)}
    for lab, name in FLAVOUR_NAMES.items():
        sel = ds.jets["label"] == lab
        out[name] = {
            "jets": int(sel.sum()),
            "sum_weights": float(ds.jets["weight"][sel].astype(np.float64).sum()),
            "no_tracks": int((ds.jets["n_tracks"][sel] == 0).sum()),
        }
    return out


def prepare(
    files: Sequence[str | os.PathLike[str]],
    config: Mapping[str, Any],
    output_dir: str | os.PathLike[str],
) -> dict[str, Any]:
    """Run the stage on ``files`` with the full hepline ``config``; returns the summary that
    is also written to ``<output_dir>/prepare.json``."""
    t0, c0 = time.perf_counter(), time.process_time()
    cfg = tagger_config(config.get("taggers"))
    out = Path(output_dir)
    paths = [str(p) for p in files]
    if not paths:
        raise ValueError("taggers.prepare: no input files")
    ds = load_dataset(paths, cfg)
    t_load = time.perf_counter() - t0
    rng = np.random.default_rng([int(config.get("seed", 0)), 3])
    splits = prepare_splits(ds, cfg, rng=rng)
    record = provenance_record(
        stage="taggers.prepare", config=config, seeds={"split_rng": [int(config.get("seed", 0)), 3]},
        inputs=paths,
    )

    templates = {k: fit_templates(splits.train, cfg, k) for k in IPXD_TAGGERS}
    ipxd_sha = {}
    for k, tpl in templates.items():
        path = out / "ipxd" / IPXD_FILES[k]
        tpl.save(path)
        ipxd_sha[k] = file_sha256(path)
        attach_provenance(path, record)

    fh = features_hash(cfg)
    jet_print = data_fingerprint(
        *(np.asarray(part.jets[c]) for part in splits for c in ("event", "pt", "label", "weight"))
    )
    dataset = {
        "dataset_id": config_hash(
            {
                "features_hash": fh,
                "split": cfg["split"],
                "reweighting": cfg["reweighting"],
                "ipxd_sha256": ipxd_sha,
                "jets": jet_print,
            }
        ),
        "features_hash": fh,
        "ipxd_sha256": ipxd_sha,
        "taggers_config_hash": config_hash(cfg),
    }
    summary: dict[str, Any] = {
        "hepline_version": analysis.__version__,
        "sample": cfg["sample"],
        "sources": paths,
        "dataset": dataset,
        "reweighting": {
            "method": cfg["reweighting"]["method"],
            "applied_to": list(cfg["reweighting"]["apply_to"]),
        },
        "splits": {},
        "files": {},
    }
    timing = {"load_s": t_load}
    for name, part in zip(SPLITS, splits):
        t1 = time.perf_counter()
        cols = high_level_columns(part, templates, cfg)
        full = part.with_jet_fields(cols)
        timing[f"features_{name}_s"] = time.perf_counter() - t1
        path = out / f"{name}.h5"
        meta = {
            "config_hash": dataset["taggers_config_hash"],
            "split": name,
            "sample": cfg["sample"],
            "dataset": dataset,
            "reweighted": name in cfg["reweighting"]["apply_to"]
            and cfg["reweighting"]["method"] != "none",
        }
        write_h5(path, full, meta, provenance=record)
        summary["splits"][name] = flavour_counts(full)
        summary["files"][name] = str(path)
        log.info("%s: %d jets -> %s", name, len(full), path)
    timing["wall_s"] = time.perf_counter() - t0
    timing["cpu_s"] = time.process_time() - c0
    summary["timing"] = timing
    summary["files"]["ipxd"] = {k: str(out / "ipxd" / IPXD_FILES[k]) for k in IPXD_TAGGERS}
    write_json(out / "prepare.json", summary, provenance=record)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help="hepline YAML config")
    parser.add_argument("--output-dir", required=True, help="e.g. results/taggers")
    parser.add_argument("--seed", type=int, default=None, help="override the top-level seed")
    parser.add_argument("files", nargs="+", help="ttbar shard ntuples")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s"
    )
    cfg = load_raw_config(args.config)
    if args.seed is not None:
        cfg["seed"] = args.seed
    summary = prepare(args.files, cfg, args.output_dir)
    for name, counts in summary["splits"].items():
        flav = ", ".join(f"{k} {v['jets']}" for k, v in counts.items() if k != "jets")
        print(f"{name}: {counts['jets']} jets ({flav})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
