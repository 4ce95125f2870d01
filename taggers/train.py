"""Stage 2 of the tagger chain: train RNNIP, MV2 or DL1 on the prepared HDF5 files.

``--tagger rnnip``: :func:`taggers.nn.rnnip.train_rnnip` on the track sequences, then the ONNX
export ``rnnip.onnx``. ``--tagger mv2``: :func:`taggers.algorithms.mv2.train_mv2` on
``taggers.high_level_features``. ``--tagger dl1``: the RNNIP model of the same directory
(``--rnnip``) is run on the training and validation splits, and
:func:`taggers.nn.dl1.train_dl1` is trained on ``high_level_features + rnnip_features``, then
exported to ``dl1.onnx``.

Outputs in ``--model-dir``: the model (``rnnip.pt``, ``mv2.json``, ``dl1.pt``), for the
networks their checkpoint (``*.ckpt.pt``, resumed if the config and data are unchanged) and
history (``*.history.json``), the ONNX file, and the sidecar ``<tagger>.metrics.json``
(each output also carries its run provenance, :mod:`analysis.core.provenance`):
training jets/s, epochs, losses, wall and CPU time, threads, the ONNX-vs-torch agreement, the
``dataset`` provenance of the HDF5 files and (DL1) the SHA-256 of the RNNIP model used.

Command line::

    python -m taggers.train --config workflows/config/default.yaml --tagger rnnip \\
        --train results/taggers/train.h5 --validation results/taggers/validation.h5 \\
        --model-dir results/taggers/models
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

import analysis
from analysis.core.atomic import write_json
from analysis.core.config import load_raw_config
from analysis.core.atomic import attach_provenance
from analysis.core.provenance import provenance_record
from taggers.features import TaggingDataset, tagger_config
from taggers.models import MODEL_FILES, ONNX_FILES, file_sha256, metrics_file, read_split
from taggers.training import ModelMismatchError, TaggerInputError, model_config, torch_threads

log = logging.getLogger(__name__)

TRAINABLE = ("rnnip", "mv2", "dl1")


def dataset_provenance(ds: TaggingDataset, path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``dataset`` block prepare stored in an HDF5 file's metadata."""
    prov = (ds.meta.get("h5_metadata") or {}).get("dataset")
    if not prov:
        raise ModelMismatchError(
            f"{path}: no 'dataset' provenance in the HDF5 metadata (not written by taggers.prepare)"
        )
    return dict(prov)


def _load_splits(
    train_path: str | os.PathLike[str], val_path: str | os.PathLike[str]
) -> tuple[TaggingDataset, TaggingDataset, dict[str, Any]]:
    train, val = read_split(train_path), read_split(val_path)
    p_tr, p_va = dataset_provenance(train, train_path), dataset_provenance(val, val_path)
    if p_tr.get("dataset_id") != p_va.get("dataset_id"):
        raise ModelMismatchError(
            f"mismatched feature files: {train_path} and {val_path} come from different "
            f"taggers.prepare runs ({p_tr.get('dataset_id')} != {p_va.get('dataset_id')})"
        )
    for name, ds, path in (("training", train, train_path), ("validation", val, val_path)):
        if len(ds) == 0:
            raise TaggerInputError(f"the {name} set {path} is empty (0 jets)")
    return train, val, p_tr


def _onnx_check(kind: str, model_path: Path, onnx_path: Path, data: Any, threads: int) -> dict:
    """Export ``kind`` to ONNX and compare ONNX Runtime with torch on up to 5000 jets."""
    from taggers.onnx_export import export_dl1_onnx, export_rnnip_onnx, load_onnx

    (export_rnnip_onnx if kind == "rnnip" else export_dl1_onnx)(model_path, onnx_path)
    sub = data.subset(slice(0, 5000))
    if kind == "rnnip":
        from taggers.nn.rnnip import predict_rnnip

        ref = predict_rnnip(model_path, sub, threads=threads)
    else:
        from taggers.nn.dl1 import predict_dl1

        ref = predict_dl1(model_path, sub, threads=threads)
    got = load_onnx(onnx_path, threads=threads).predict(sub)
    diff = float(np.max(np.abs(got - ref))) if len(sub) else 0.0
    if diff > 1e-4:
        raise RuntimeError(f"ONNX export of {kind} disagrees with torch: max |dp| = {diff:.2e}")
    return {
        "path": str(onnx_path),
        "sha256": file_sha256(onnx_path),
        "max_abs_diff": diff,
        "checked_jets": len(sub),
    }


def _result_metrics(res: Any) -> dict[str, Any]:
    return {
        "train_jets_per_s": float(res.train_jets_per_s),
        "epochs_run": int(res.epochs_run),
        "best_epoch": int(res.best_epoch),
        "best_val_loss": float(res.best_val_loss),
        "stopped_early": bool(res.stopped_early),
        "resumed_from_epoch": res.resumed_from_epoch,
        "device": str(res.device),
        "history": res.history,
    }


def train(
    tagger: str,
    config: Mapping[str, Any],
    train_path: str | os.PathLike[str],
    val_path: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    *,
    rnnip_path: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    resume: bool = True,
    progress: bool | None = False,
) -> dict[str, Any]:
    """Train ``tagger`` (rnnip, mv2, dl1); returns the metrics written to the sidecar."""
    if tagger not in TRAINABLE:
        raise ValueError(f"--tagger must be one of {TRAINABLE}, not {tagger!r}")
    tcfg = tagger_config(config.get("taggers"))
    n_threads = int(threads if threads is not None else tcfg["threads"])
    mdir = Path(model_dir)
    mdir.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    train_ds, val_ds, prov = _load_splits(train_path, val_path)
    t_read = time.perf_counter() - t0
    metrics: dict[str, Any] = {
        "tagger": tagger,
        "hepline_version": analysis.__version__,
        "dataset": prov,
        "train_file": str(train_path),
        "validation_file": str(val_path),
        "n_train_jets": len(train_ds),
        "n_validation_jets": len(val_ds),
        "threads": n_threads,
        "read_s": t_read,
    }
    model_path = mdir / MODEL_FILES[tagger]
    t1, c1 = time.perf_counter(), time.process_time()
    if tagger == "rnnip":
        from taggers.nn.rnnip import train_rnnip

        res = train_rnnip(
            train_ds,
            val_ds,
            config,
            mdir,
            resume=resume,
            progress=progress,
            threads=n_threads,
            device="cpu",
        )
        metrics.update(_result_metrics(res))
        metrics["features"] = ["sd0", "sz0", "pt_frac", "dr", "grade"]
        onnx_data = val_ds
    elif tagger == "mv2":
        from taggers.algorithms.mv2 import train_mv2

        feats = list(tcfg["high_level_features"])
        model = train_mv2(
            train_ds, val_ds, config, mdir, feature_names=feats, n_threads=n_threads, device="cpu"
        )
        wall = time.perf_counter() - t1
        metrics.update(
            {
                "n_trees": model.meta["n_trees"],
                "train_wall_s": wall,
                "train_jets_per_s": len(train_ds) / wall if wall > 0 else None,
                "train_jets_per_s_definition": "training jets / total xgboost.train wall time",
                "c_fraction": model.meta["c_fraction"],
                "history": model.meta["history"],
            }
        )
        metrics["features"] = feats
        onnx_data = None
    else:
        from taggers.nn.dl1 import train_dl1
        from taggers.nn.rnnip import predict_rnnip, rnnip_columns

        rpath = Path(rnnip_path) if rnnip_path is not None else mdir / MODEL_FILES["rnnip"]
        if not rpath.is_file():
            from taggers.models import MissingModelError

            raise MissingModelError(
                f"DL1 reads the RNNIP outputs: {rpath} not found (train rnnip first)"
            )
        rsha = file_sha256(rpath)
        rside = metrics_file(rpath.parent, "rnnip")
        if rside.is_file():
            import json

            rprov = json.loads(rside.read_text()).get("dataset", {})
            if rprov.get("dataset_id") not in (None, prov["dataset_id"]):
                raise ModelMismatchError(
                    f"mismatched model and feature file: {rpath} was trained on another prepared "
                    f"dataset ({rprov.get('dataset_id')}) than {train_path} ({prov['dataset_id']})"
                )
        with torch_threads(n_threads):
            cols_tr = rnnip_columns(predict_rnnip(rpath, train_ds, threads=n_threads))
            cols_va = rnnip_columns(predict_rnnip(rpath, val_ds, threads=n_threads))
        train_ds = train_ds.with_jet_fields(cols_tr)
        val_ds = val_ds.with_jet_fields(cols_va)
        feats = [*tcfg["high_level_features"], *tcfg["rnnip_features"]]
        res = train_dl1(
            train_ds,
            val_ds,
            config,
            mdir,
            feature_names=feats,
            resume=resume,
            progress=progress,
            threads=n_threads,
            device="cpu",
        )
        metrics.update(_result_metrics(res))
        metrics["features"] = feats
        metrics["rnnip_model"] = str(rpath)
        metrics["rnnip_sha256"] = rsha
        onnx_data = val_ds
    metrics["train_wall_s"] = time.perf_counter() - t1
    metrics["train_cpu_s"] = time.process_time() - c1
    if tagger in ONNX_FILES:
        metrics["onnx"] = _onnx_check(
            tagger, model_path, mdir / ONNX_FILES[tagger], onnx_data, n_threads
        )
    metrics["model"] = {"path": str(model_path), "sha256": file_sha256(model_path)}
    metrics["wall_s"] = time.perf_counter() - t0
    metrics["cpu_s"] = time.process_time() - c0
    inputs = [train_path, val_path] + ([metrics["rnnip_model"]] if "rnnip_model" in metrics else [])
    record = provenance_record(
        stage=f"taggers.train.{tagger}", config=config,
        seeds={"model": model_config(tagger, config).get("seed")}, inputs=inputs,
        extra={"threads": n_threads},
    )
    written = [model_path, mdir / f"{tagger}.history.json"]
    if tagger in ONNX_FILES:
        written.append(mdir / ONNX_FILES[tagger])
    for path in written:
        if path.is_file():  # mv2 writes no history file
            attach_provenance(path, record)
    write_json(metrics_file(mdir, tagger), metrics, provenance=record)
    log.info(
        "%s trained: %s jets/s, %.1f s -> %s",
        tagger,
        f"{metrics.get('train_jets_per_s') or 0:.0f}",
        metrics["wall_s"],
        model_path,
    )
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help="hepline YAML config")
    parser.add_argument("--tagger", required=True, choices=TRAINABLE)
    parser.add_argument("--train", required=True, help="train.h5 of taggers.prepare")
    parser.add_argument("--validation", required=True, help="validation.h5 of taggers.prepare")
    parser.add_argument("--model-dir", required=True, help="e.g. results/taggers/models")
    parser.add_argument(
        "--rnnip", default=None, help="DL1 only: the RNNIP model (default <model-dir>/rnnip.pt)"
    )
    parser.add_argument(
        "--threads", "--workers", dest="threads", type=int, default=None,
        help="torch/xgboost threads (default: taggers.threads, 1)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="override tagger_models.<tagger>.seed"
    )
    parser.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s"
    )
    cfg = load_raw_config(args.config)
    if args.seed is not None:
        section = cfg.get("tagger_models") or {}
        section[args.tagger] = {**model_config(args.tagger, cfg), "seed": args.seed}
        cfg["tagger_models"] = section
    m = train(
        args.tagger,
        cfg,
        args.train,
        args.validation,
        args.model_dir,
        rnnip_path=args.rnnip,
        threads=args.threads,
        resume=not args.no_resume,
    )
    rate = m.get("train_jets_per_s")
    print(
        f"{args.tagger}: {m['n_train_jets']} training jets, "
        f"{'n/a' if rate is None else f'{rate:.0f}'} jets/s, {m['wall_s']:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
