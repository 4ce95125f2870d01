"""Stage 2 of the tagger chain: train RNNIP, MV2 or DL1 on the prepared HDF5 files.

``rnnip``: :func:`taggers.nn.rnnip.train_rnnip` on the track sequences, then the ONNX export
``rnnip.onnx``. ``mv2``: :func:`taggers.algorithms.mv2.train_mv2` on
``taggers.high_level_features``, then the ONNX export ``mv2.onnx`` (onnxmltools). ``dl1``: the RNNIP model of the same directory (``--rnnip``)
is run on the training and validation splits, and :func:`taggers.nn.dl1.train_dl1` is trained
on ``high_level_features + rnnip_features``, then exported to ``dl1.onnx``.

Outputs in ``--model-dir``: the model (``rnnip.pt``, ``mv2.json``, ``dl1.pt``), for the
networks their checkpoint (``*.ckpt.pt``, resumed if the config and data are unchanged) and
history (``*.history.json``), the ONNX file (every tagger), and the sidecar ``<tagger>.metrics.json``
(:meth:`TrainResult.to_dict`; each output also carries its run provenance,
:mod:`analysis.core.provenance`): training jets/s, epochs, losses, wall and CPU time, threads,
the ONNX-vs-torch agreement, the ``dataset`` provenance of the HDF5 files and (DL1) the
SHA-256 of the RNNIP model used.

Command line::

    hepline taggers train --config workflows/config/default.yaml --tagger rnnip \\
        --train results/taggers/train.h5 --validation results/taggers/validation.h5 \\
        --model-dir results/taggers/models
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import analysis
from analysis.core.atomic import attach_provenance, write_json
from analysis.core.config import Config
from analysis.core.errors import ModelMismatchError
from analysis.core.provenance import file_sha256, provenance_record
from analysis.ml.training import torch_threads
from taggers.algorithms.mv2 import MV2Model, train_mv2
from taggers.export import DatasetProvenance, read_split
from taggers.features import TaggingDataset
from taggers.models import MODEL_FILES, ONNX_FILES, MissingModelError, metrics_file
from taggers.nn.dl1 import DL1, predict_dl1, train_dl1
from taggers.nn.rnnip import RNNIP, check_n_grades, predict_rnnip, rnnip_columns, train_rnnip
from taggers.training import NetworkResult, TaggerInputError

log = logging.getLogger(__name__)

__all__ = ["TRAINABLE", "OnnxCheck", "TrainResult", "load_splits", "train"]

TRAINABLE = ("rnnip", "mv2", "dl1")
#: jets of the validation split on which the ONNX export is compared with torch
ONNX_CHECK_JETS = 5000
#: largest |ONNX - torch| probability difference accepted
ONNX_TOLERANCE = 1e-4
#: largest |ONNX Runtime - XGBoost| MV2 score difference accepted (float32 precision)
MV2_ONNX_TOLERANCE = 1e-6


@dataclass(frozen=True)
class OnnxCheck:
    """The ONNX export of a tagger and its agreement with torch (networks) or XGBoost (MV2).

    Attributes:
        path: the ``.onnx`` file.
        sha256: its SHA-256.
        max_abs_diff: the largest |ONNX Runtime − torch| class probability (MV2: |ONNX
            Runtime − XGBoost| score).
        checked_jets: the validation jets compared.
    """

    path: Path
    sha256: str
    max_abs_diff: float
    checked_jets: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (the ``onnx`` block of the sidecar)."""
        return {"path": str(self.path), "sha256": self.sha256, "max_abs_diff": self.max_abs_diff,
                "checked_jets": self.checked_jets}


@dataclass
class TrainResult:
    """One trained tagger (:func:`train`): the model and how its training went.

    Attributes:
        tagger: ``rnnip``, ``mv2`` or ``dl1``.
        model: the trained model (:class:`~taggers.nn.rnnip.RNNIP`,
            :class:`~taggers.algorithms.mv2.MV2Model` or :class:`~taggers.nn.dl1.DL1`), in
            eval mode, as written to ``model_path``.
        model_path: the model file.
        model_sha256: its SHA-256.
        features: the input features.
        dataset: the provenance of the prepared HDF5 files.
        train_file, validation_file: the HDF5 files.
        n_train_jets, n_validation_jets: jets in them.
        threads: torch / XGBoost threads.
        network: the RNNIP/DL1 training (loss history, best epoch, early stopping, resume);
            ``None`` for MV2.
        onnx: the ONNX export of a network.
        rnnip_model, rnnip_sha256: DL1: the RNNIP model whose outputs it reads.
        read_s, train_wall_s, train_cpu_s, wall_s, cpu_s: seconds (reading, training, all).
    """

    tagger: str
    model: RNNIP | MV2Model | DL1
    model_path: Path
    model_sha256: str
    features: list[str]
    dataset: DatasetProvenance
    train_file: str
    validation_file: str
    n_train_jets: int
    n_validation_jets: int
    threads: int
    network: NetworkResult | None = None
    onnx: OnnxCheck | None = None
    rnnip_model: str | None = None
    rnnip_sha256: str | None = None
    read_s: float = 0.0
    train_wall_s: float = 0.0
    train_cpu_s: float = 0.0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    hepline_version: str = field(default=analysis.__version__)

    @property
    def epochs_run(self) -> int | None:
        """Training epochs (RNNIP, DL1; ``None`` for MV2)."""
        return None if self.network is None else self.network.epochs_run

    @property
    def n_trees(self) -> int | None:
        """Boosted trees kept (MV2; ``None`` for the networks)."""
        return self.model.n_trees if isinstance(self.model, MV2Model) else None

    @property
    def iterations(self) -> tuple[int, str]:
        """``(epochs, "epochs")`` of a network or ``(trees, "trees")`` of MV2."""
        if isinstance(self.model, MV2Model):
            return self.model.n_trees, "trees"
        assert self.network is not None
        return self.network.epochs_run, "epochs"

    @property
    def train_jets_per_s(self) -> float | None:
        """Training jets per second: the mean over the epochs (networks), the training jets
        over the wall time of the training (MV2)."""
        if self.network is not None:
            return self.network.train_jets_per_s
        return self.n_train_jets / self.train_wall_s if self.train_wall_s > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """The content of the sidecar ``<tagger>.metrics.json``."""
        out: dict[str, Any] = {
            "tagger": self.tagger,
            "hepline_version": self.hepline_version,
            "dataset": self.dataset.to_dict(),
            "train_file": self.train_file,
            "validation_file": self.validation_file,
            "n_train_jets": self.n_train_jets,
            "n_validation_jets": self.n_validation_jets,
            "threads": self.threads,
            "read_s": self.read_s,
            "features": list(self.features),
            "train_jets_per_s": self.train_jets_per_s,
            "train_wall_s": self.train_wall_s,
            "train_cpu_s": self.train_cpu_s,
            "model": {"path": str(self.model_path), "sha256": self.model_sha256},
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
        }
        if isinstance(self.model, MV2Model):
            out.update({
                "n_trees": self.model.n_trees,
                "train_jets_per_s_definition": "training jets / total xgboost.train wall time",
                "c_fraction": self.model.meta["c_fraction"],
                "history": self.model.meta["history"],
            })
        if self.network is not None:
            net = self.network
            out.update({
                "epochs_run": int(net.epochs_run),
                "best_epoch": int(net.best_epoch),
                "best_val_loss": float(net.best_val_loss),
                "stopped_early": bool(net.stopped_early),
                "resumed_from_epoch": net.resumed_from_epoch,
                "device": str(net.device),
                "history": net.history,
            })
        if self.onnx is not None:
            out["onnx"] = self.onnx.to_dict()
        if self.rnnip_model is not None:
            out["rnnip_model"] = self.rnnip_model
            out["rnnip_sha256"] = self.rnnip_sha256
        return out


def load_splits(
    train_path: str | os.PathLike[str], val_path: str | os.PathLike[str]
) -> tuple[TaggingDataset, TaggingDataset, DatasetProvenance]:
    """The training and validation splits of one ``taggers.prepare`` run, and its provenance.

    Raises:
        ModelMismatchError: files of different prepare runs, or not written by prepare.
        TaggerInputError: an empty split.
    """
    train, val = read_split(train_path), read_split(val_path)
    p_tr, p_va = DatasetProvenance.of(train, train_path), DatasetProvenance.of(val, val_path)
    if p_tr.dataset_id != p_va.dataset_id:
        raise ModelMismatchError(
            f"mismatched feature files: {train_path} and {val_path} come from different "
            f"taggers.prepare runs ({p_tr.dataset_id} != {p_va.dataset_id})"
        )
    for name, ds, path in (("training", train, train_path), ("validation", val, val_path)):
        if len(ds) == 0:
            raise TaggerInputError(f"the {name} set {path} is empty (0 jets)")
    return train, val, p_tr


def _onnx_check(kind: str, model: RNNIP | DL1 | MV2Model, onnx_path: Path, data: TaggingDataset,
                threads: int) -> OnnxCheck:
    """Export ``model`` to ONNX and compare ONNX Runtime with torch (XGBoost for MV2) on up to
    5000 jets."""
    from taggers.algorithms.mv2 import predict_mv2
    from taggers.onnx_export import export_dl1_onnx, export_mv2_onnx, export_rnnip_onnx, load_onnx

    sub = data.subset(slice(0, ONNX_CHECK_JETS))
    tolerance = ONNX_TOLERANCE
    if isinstance(model, RNNIP):
        export_rnnip_onnx(model, onnx_path)
        ref = predict_rnnip(model, sub, threads=threads)
    elif isinstance(model, MV2Model):
        export_mv2_onnx(model, onnx_path)
        ref = predict_mv2(model, sub)
        tolerance = MV2_ONNX_TOLERANCE
    else:
        export_dl1_onnx(model, onnx_path)
        ref = predict_dl1(model, sub, threads=threads)
    got = load_onnx(onnx_path, threads=threads).predict(sub)
    diff = float(np.max(np.abs(got - ref))) if len(sub) else 0.0
    if diff > tolerance:
        raise RuntimeError(f"ONNX export of {kind} disagrees with {'XGBoost' if kind == 'mv2' else 'torch'}: "
                           f"max |dp| = {diff:.2e}")
    return OnnxCheck(path=onnx_path, sha256=file_sha256(onnx_path), max_abs_diff=diff, checked_jets=len(sub))


def train(
    tagger: str,
    cfg: Config,
    train_path: str | os.PathLike[str],
    val_path: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    *,
    rnnip_path: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    resume: bool = True,
    progress: bool | None = False,
) -> TrainResult:
    """Stage 2: train ``tagger`` on the prepared splits; write the model, its ONNX export,
    history and the sidecar ``<tagger>.metrics.json``.

    Args:
        tagger: ``rnnip``, ``mv2`` or ``dl1`` (DL1 reads the outputs of a trained RNNIP).
        cfg: the configuration (``taggers``, ``tagger_models.<tagger>``).
        train_path, val_path: ``train.h5`` and ``validation.h5`` of :mod:`taggers.prepare`.
        model_dir: the model directory.
        rnnip_path: DL1: the RNNIP model (default ``<model_dir>/rnnip.pt``).
        threads: torch / XGBoost threads (default ``taggers.threads``).
        resume: continue a network's training from its checkpoint.
        progress: show a progress bar (``None``: only on a terminal).

    Returns:
        The :class:`TrainResult` (its :meth:`~TrainResult.to_dict` is the sidecar).

    Raises:
        ModelMismatchError: files of different prepare runs, or (DL1) an RNNIP model trained
            on another prepared dataset.
        MissingModelError: DL1 without an RNNIP model.
        ConfigError: ``taggers.tracks.n_grades`` and ``tagger_models.rnnip.n_grades`` differ.
    """
    if tagger not in TRAINABLE:
        raise ValueError(f"tagger must be one of {TRAINABLE}, not {tagger!r}")
    tcfg = cfg.taggers
    n_threads = int(threads if threads is not None else tcfg.threads)
    mdir = Path(model_dir)
    mdir.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    train_ds, val_ds, prov = load_splits(train_path, val_path)
    t_read = time.perf_counter() - t0
    model_path = mdir / MODEL_FILES[tagger]
    network: NetworkResult | None = None
    model: RNNIP | MV2Model | DL1
    rnnip_model = rnnip_sha = None
    t1, c1 = time.perf_counter(), time.process_time()
    if tagger == "rnnip":
        check_n_grades(tcfg, cfg.tagger_models.rnnip)
        network = train_rnnip(train_ds, val_ds, cfg.tagger_models.rnnip, mdir, resume=resume,
                              progress=progress, threads=n_threads, device="cpu")
        assert isinstance(network.model, RNNIP)
        model = network.model
        feats = ["sd0", "sz0", "pt_frac", "dr", "grade"]
    elif tagger == "mv2":
        feats = list(tcfg.high_level_features)
        model = train_mv2(train_ds, val_ds, cfg.tagger_models.mv2, mdir, feature_names=feats,
                          n_threads=n_threads, device="cpu")
    else:
        rpath = Path(rnnip_path) if rnnip_path is not None else mdir / MODEL_FILES["rnnip"]
        if not rpath.is_file():
            raise MissingModelError(
                f"DL1 reads the RNNIP outputs: {rpath} not found (train rnnip first)"
            )
        rnnip_model, rnnip_sha = str(rpath), file_sha256(rpath)
        rside = metrics_file(rpath.parent, "rnnip")
        if rside.is_file():
            rprov = json.loads(rside.read_text()).get("dataset", {})
            if rprov.get("dataset_id") not in (None, prov.dataset_id):
                raise ModelMismatchError(
                    f"mismatched model and feature file: {rpath} was trained on another prepared "
                    f"dataset ({rprov.get('dataset_id')}) than {train_path} ({prov.dataset_id})"
                )
        with torch_threads(n_threads):
            cols_tr = rnnip_columns(predict_rnnip(rpath, train_ds, threads=n_threads))
            cols_va = rnnip_columns(predict_rnnip(rpath, val_ds, threads=n_threads))
        train_ds = train_ds.with_jet_fields(cols_tr)
        val_ds = val_ds.with_jet_fields(cols_va)
        feats = [*tcfg.high_level_features, *tcfg.rnnip_features]
        network = train_dl1(train_ds, val_ds, cfg.tagger_models.dl1, mdir, feature_names=feats,
                            resume=resume, progress=progress, threads=n_threads, device="cpu")
        assert isinstance(network.model, DL1)
        model = network.model
    train_wall, train_cpu = time.perf_counter() - t1, time.process_time() - c1
    onnx = None
    if tagger in ONNX_FILES:
        onnx = _onnx_check(tagger, model, mdir / ONNX_FILES[tagger], val_ds, n_threads)
    result = TrainResult(
        tagger=tagger,
        model=model,
        model_path=model_path,
        model_sha256=file_sha256(model_path),
        features=feats,
        dataset=prov,
        train_file=str(train_path),
        validation_file=str(val_path),
        n_train_jets=len(train_ds),
        n_validation_jets=len(val_ds),
        threads=n_threads,
        network=network,
        onnx=onnx,
        rnnip_model=rnnip_model,
        rnnip_sha256=rnnip_sha,
        read_s=t_read,
        train_wall_s=train_wall,
        train_cpu_s=train_cpu,
        wall_s=time.perf_counter() - t0,
        cpu_s=time.process_time() - c0,
    )
    inputs = [train_path, val_path] + ([rnnip_model] if rnnip_model is not None else [])
    record = provenance_record(
        stage=f"taggers.train.{tagger}", config=cfg,
        seeds={"model": getattr(cfg.tagger_models, tagger).seed}, inputs=inputs,
        extra={"threads": n_threads},
    )
    written = [model_path, mdir / f"{tagger}.history.json"]
    if tagger in ONNX_FILES:
        written.append(mdir / ONNX_FILES[tagger])
    for path in written:
        if path.is_file():  # mv2 writes no history file
            attach_provenance(path, record)
    write_json(metrics_file(mdir, tagger), result.to_dict(), provenance=record)
    log.info(
        "%s trained: %s jets/s, %.1f s -> %s",
        tagger,
        f"{result.train_jets_per_s or 0:.0f}",
        result.wall_s,
        model_path,
    )
    return result
