"""DL1: a dense network on the high-level tagger outputs (+ the RNNIP probabilities).

Inputs: a feature matrix whose column names are stored with the model (e.g. jet ``pt``,
``abs_eta``, the IP2D/IP3D log-likelihood ratios, the 8 SV1 features and, for DL1 with
RNNIP, ``rnnip_pb, rnnip_pc, rnnip_pu`` from :func:`taggers.nn.rnnip.rnnip_columns`). The
columns are matched by name at prediction time; a missing one raises
:class:`~taggers.training.ModelMismatchError`.

Network (:class:`DL1`): standardisation inside the model (training mean/std, buffers; also
stored as the ``normaliser`` dict), then for each width in ``layers`` (default
``[64, 48, 36, 24, 12, 6]``, the paper's is ``[256, 128, 60, 48, 36, 24, 12, 6]``) a
``Linear → ReLU → Dropout`` block, then a dense layer to 4 logits in the class order
(b, c, light, tau). Training as RNNIP (:func:`taggers.training.train_classifier`, on the
training core :func:`analysis.ml.training.fit`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from analysis.core.config.taggers import TaggerModelsDl1
from analysis.core.errors import ModelMismatchError
from analysis.ml.normaliser import Normaliser
from analysis.ml.training import pick_device, torch_threads
from taggers.discriminant import CLASS_NAMES
from taggers.features import TaggingDataset
from taggers.training import (
    LABEL_TO_CLASS,
    ClassifierData,
    FeatureMatrix,
    NetworkResult,
    as_feature_matrix,
    check_model_compatible,
    data_fingerprint,
    hash_for,
    labels_to_classes,
    load_network,
    save_network,
    train_classifier,
)

log = logging.getLogger(__name__)

__all__ = ["DL1", "DL1Data", "load_dl1", "predict_dl1", "save_dl1", "train_dl1"]

MODEL_KIND = "dl1"
FORMAT_VERSION = 1

#: what DL1 reads: a feature matrix, a dataset's jet columns or a mapping of columns
DL1Data = FeatureMatrix | TaggingDataset | Mapping[str, Any] | np.ndarray


class DL1(nn.Module):
    """Standardisation + (Linear, ReLU, Dropout) × len(layers) + Linear → 4 logits."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        n_features: int,
        layers: Sequence[int] = (64, 48, 36, 24, 12, 6),
        dropout: float = 0.1,
        n_classes: int = len(CLASS_NAMES),
    ) -> None:
        super().__init__()
        self.n_features = int(n_features)
        self.layer_sizes = [int(w) for w in layers]
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        blocks: list[nn.Module] = []
        width = n_features
        for w in self.layer_sizes:
            blocks += [nn.Linear(width, w), nn.ReLU(), nn.Dropout(dropout)]
            width = w
        self.hidden = nn.Sequential(*blocks)
        self.output = nn.Linear(width, n_classes)
        self.dropout_p = float(dropout)
        #: metadata of a trained/loaded model (features, normaliser, config); None if bare
        self.meta: dict[str, Any] | None = None

    def set_normalisation(self, mean: Any, std: Any) -> None:
        """Store the training mean and std of the inputs (as float32 buffers)."""
        self.mean.copy_(torch.as_tensor(np.asarray(mean, np.float32)))
        self.std.copy_(torch.as_tensor(np.asarray(std, np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The 4-class logits (n, 4) of raw (un-normalised) features (n, n_features)."""
        return self.output(self.hidden((x - self.mean) / self.std))


def train_dl1(
    train: DL1Data,
    val: DL1Data | None,
    cfg: TaggerModelsDl1,
    outdir: str | os.PathLike[str],
    *,
    feature_names: Sequence[str] | None = None,
    device: str | torch.device | None = None,
    resume: bool = True,
    progress: bool | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    threads: int | None = None,
) -> NetworkResult:
    """Train DL1; write ``<outdir>/dl1.pt``, ``dl1.ckpt.pt`` and ``dl1.history.json``.

    Args:
        train: the training jets (:class:`~taggers.training.FeatureMatrix` with labels, a
            TaggingDataset (columns ``feature_names`` of its ``jets``) or a mapping of columns
            with ``label`` and ``weight``).
        val: the validation jets, or ``None``.
        cfg: ``tagger_models.dl1``.
        outdir: the model directory.
        feature_names: selects and orders the inputs (default: the training matrix's names).
        device, resume, progress, on_epoch_end, threads: as :func:`taggers.nn.rnnip.train_rnnip`.

    Returns:
        The :class:`~taggers.training.NetworkResult`.

    Raises:
        As :func:`taggers.nn.rnnip.train_rnnip`.
    """
    tr = as_feature_matrix(
        train, feature_names, what="DL1 training set", need_labels=True, kind="DL1"
    )
    names = tr.names
    va = None
    if val is not None:
        va = as_feature_matrix(val, names, what="DL1 validation set", need_labels=True, kind="DL1")
    scaler = Normaliser.fit(tr.x, names=names, source="DL1 training set")
    hparams: dict[str, Any] = {
        "n_features": len(names),
        "layers": list(cfg.layers),
        "dropout": float(cfg.dropout),
        "n_classes": len(CLASS_NAMES),
    }

    def build() -> DL1:
        model = DL1(**hparams)
        model.set_normalisation(scaler.mean, scaler.std)
        return model

    cfg_hash = hash_for(
        cfg,
        kind=MODEL_KIND,
        features=names,
        train=data_fingerprint(tr.x, tr.label, tr.weight),
        val=None if va is None else data_fingerprint(va.x, va.label, va.weight),
    )
    meta = {
        "feature_names": names,
        "class_names": list(CLASS_NAMES),
        "label_to_class": {str(k): v for k, v in LABEL_TO_CLASS.items()},
        "normaliser": scaler.to_dict(),
        "config": cfg.to_dict(),
        "config_hash": cfg_hash,
    }

    def save(model: DL1, path: Path, info: dict[str, Any]) -> None:
        model.meta = {**meta, "training": info}
        save_dl1(model, path)

    log.info(
        "DL1: %d training jets, %d features %s, layers %s", len(tr), len(names), names, list(cfg.layers)
    )
    return train_classifier(
        name=MODEL_KIND,
        build_model=build,
        train=_classifier_data(tr),
        val=None if va is None else _classifier_data(va),
        cfg=cfg,
        outdir=outdir,
        save_model=save,
        config_hash=cfg_hash,
        normaliser=scaler,
        device=device,
        resume=resume,
        progress=progress,
        on_epoch_end=on_epoch_end,
        threads=threads,
    )


def _classifier_data(fm: FeatureMatrix) -> ClassifierData:
    assert fm.label is not None and fm.weight is not None  # as_feature_matrix(need_labels=True)
    return ClassifierData((fm.x,), labels_to_classes(fm.label), fm.weight)


def save_dl1(model: DL1, path: str | os.PathLike[str]) -> None:
    """Write a trained DL1 (weights, hyper-parameters, ``model.meta``) atomically."""
    hp = {
        "n_features": model.n_features,
        "layers": model.layer_sizes,
        "dropout": model.dropout_p,
        "n_classes": model.output.out_features,
    }
    save_network(model, path, kind=MODEL_KIND, label="DL1", format_version=FORMAT_VERSION,
                 hparams=hp)


def load_dl1(
    path: str | os.PathLike[str],
    *,
    features: Sequence[str] | None = None,
    normaliser: Normaliser | None = None,
    device: str | torch.device | None = None,
) -> DL1:
    """Load a model written by :func:`train_dl1` (eval mode).

    ``features`` and ``normaliser`` are checked against the model's.

    Raises:
        ModelMismatchError: a difference.
    """
    model = load_network(path, MODEL_KIND, DL1)
    assert model.meta is not None
    check_model_compatible(
        MODEL_KIND,
        model.meta["feature_names"],
        features=features,
        normaliser=normaliser,
        source=str(path),
    )
    return model.to(pick_device(device)).eval()


@torch.inference_mode()
def predict_dl1(
    model_or_path: DL1 | str | os.PathLike[str],
    data: DL1Data,
    batch_size: int = 10_000,
    *,
    device: str | torch.device | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Class probabilities (n, 4) float32 (b, c, light, tau).

    Args:
        model_or_path: the model or its file.
        data: as in :func:`train_dl1`; its columns are matched to the model's feature names.
        batch_size: jets per forward pass.
        device: where to run (``None``: the model's device).
        threads: torch intra-op threads for the call (``None``: unchanged).

    Raises:
        ModelMismatchError: a missing feature or another number of features.
    """
    if isinstance(model_or_path, DL1):
        model = model_or_path if device is None else model_or_path.to(pick_device(device))
    else:
        model = load_dl1(model_or_path, device=device)
    names = model.meta["feature_names"] if model.meta is not None else None
    fm = as_feature_matrix(data, names, what="DL1 test set", kind="DL1")
    if fm.x.shape[1] != model.n_features:
        raise ModelMismatchError(
            f"mismatched model and feature file: DL1 expects {model.n_features} features, "
            f"got {fm.x.shape[1]}"
        )
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    out = []
    with torch_threads(threads):
        try:
            for start in range(0, len(fm), batch_size):
                xb = torch.from_numpy(fm.x[start : start + batch_size]).to(dev)
                out.append(torch.softmax(model(xb), dim=-1).float().cpu().numpy())
        finally:
            model.train(was_training)
    return np.concatenate(out)
