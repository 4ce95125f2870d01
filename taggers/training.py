"""What the tagger networks (RNNIP, DL1) add to the training core :mod:`analysis.ml.training`.

- :func:`train_classifier`: a 4-class network trained through :func:`analysis.ml.training.fit`
  with the class- and sample-weighted cross-entropy; the model, its checkpoint and its loss
  history are written to the output directory; returns a :class:`NetworkResult`;
- :func:`classifier_task`: the :class:`~analysis.ml.training.TrainingTask` of such a network
  (batch order from ``numpy.random.default_rng([seed, epoch])``, the weighted loss, the
  validation loss);
- :func:`class_weights` from (weighted) label counts, :func:`labels_to_classes` (the
  ``HadronConeExclTruthLabelID`` → class-index map :data:`LABEL_TO_CLASS`);
- :class:`FeatureMatrix` and :func:`as_feature_matrix`, the high-level inputs of MV2 and DL1;
- input checks that raise :class:`TaggerInputError` naming the feature, class or set (NaN/inf:
  :func:`analysis.core.checks.check_finite`), :func:`check_model_compatible`;
- :func:`save_network` / :func:`load_network`, the model files of RNNIP and DL1.

The input normaliser is :class:`analysis.ml.normaliser.Normaliser`. Reproducibility and resume
are those of :func:`analysis.ml.training.fit`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from analysis.core.atomic import write_json
from analysis.core.checks import check_finite
from analysis.core.config import config_hash
from analysis.core.config.node import ConfigNode
from analysis.core.config.taggers import TaggerModelsDl1, TaggerModelsRnnip
from analysis.core.errors import InputError, ModelMismatchError
from analysis.ml.normaliser import Normaliser
from analysis.ml.training import (
    FitResult,
    FitSettings,
    TrainingTask,
    fit,
    pick_device,
    save_torch_payload,
    state_dict_cpu,
    torch_threads,
)
from taggers.discriminant import CLASS_NAMES

log = logging.getLogger(__name__)

__all__ = [
    "CLASS_TO_LABEL",
    "GPU_STAGING_BYTES",
    "LABEL_TO_CLASS",
    "ClassifierData",
    "FeatureMatrix",
    "MissingClassError",
    "NetworkResult",
    "TaggerInputError",
    "as_feature_matrix",
    "check_model_compatible",
    "check_not_empty",
    "check_weights",
    "class_description",
    "class_weights",
    "classifier_task",
    "data_fingerprint",
    "evaluate_loss",
    "hash_for",
    "labels_to_classes",
    "load_network",
    "save_network",
    "train_classifier",
    "weighted_cross_entropy",
]

#: HadronConeExclTruthLabelID → class index of the 4-class outputs (b, c, light, tau).
LABEL_TO_CLASS: dict[int, int] = {5: 0, 4: 1, 0: 2, 15: 3}
#: Class index → truth label.
CLASS_TO_LABEL: dict[int, int] = {v: k for k, v in LABEL_TO_CLASS.items()}

ModelT = TypeVar("ModelT", bound=nn.Module)


class TaggerInputError(InputError):
    """Bad tagger input: an unknown label, an empty set, wrong shapes or weights."""


class MissingClassError(TaggerInputError):
    """A flavour class has no jets (or no positive total weight) in the training set."""


# --------------------------------------------------------------------------- labels, checks


def labels_to_classes(labels: Any) -> np.ndarray:
    """Map ``HadronConeExclTruthLabelID`` values (5, 4, 0, 15) to class indices (0..3).

    Raises:
        TaggerInputError: a label outside (5, 4, 0, 15) or labels that are not 1-D.
    """
    lab = np.asarray(labels)
    if lab.ndim != 1:
        raise TaggerInputError(f"labels must be 1-D, got shape {lab.shape}")
    out = np.full(lab.shape, -1, dtype=np.int64)
    for label, cls in LABEL_TO_CLASS.items():
        out[lab == label] = cls
    if np.any(out < 0):
        bad = sorted({int(v) for v in np.unique(lab[out < 0])})
        raise TaggerInputError(
            f"unknown flavour label(s) {bad} in HadronConeExclTruthLabelID; "
            f"expected one of {sorted(LABEL_TO_CLASS)} (b=5, c=4, light=0, tau=15)"
        )
    return out


def class_description(cls: int) -> str:
    """``"'c' (HadronConeExclTruthLabelID 4)"`` for class index 1."""
    return f"{CLASS_NAMES[cls]!r} (HadronConeExclTruthLabelID {CLASS_TO_LABEL[cls]})"


def class_weights(
    classes: Any,
    n_classes: int = len(CLASS_NAMES),
    weight: Any | None = None,
    *,
    what: str = "training set",
) -> np.ndarray:
    """Per-class loss weights ``W / (n_classes * W_c)`` from the (weighted) class totals ``W_c``.

    The weighted classes then contribute equally to the loss.

    Returns:
        float32 array of ``n_classes`` weights.

    Raises:
        MissingClassError: a class with no jets or a non-positive total weight (named).
    """
    cls = np.asarray(classes, dtype=np.int64)
    w = np.ones(cls.shape, dtype=np.float64) if weight is None else np.asarray(weight, np.float64)
    totals = np.bincount(cls, weights=w, minlength=n_classes)[:n_classes]
    counts = np.bincount(cls, minlength=n_classes)[:n_classes]
    for c in range(n_classes):
        if counts[c] == 0 or totals[c] <= 0:
            detail = "no jets" if counts[c] == 0 else f"a non-positive total weight ({totals[c]:g})"
            raise MissingClassError(
                f"flavour class {class_description(c)} has {detail} in the {what}"
            )
    return (totals.sum() / (n_classes * totals)).astype(np.float32)


def check_not_empty(n: int, what: str) -> None:
    """Raise :class:`TaggerInputError` if the set ``what`` has no jet."""
    if n == 0:
        raise TaggerInputError(f"the {what} is empty (0 jets)")


def check_weights(weight: np.ndarray | None, n: int, what: str) -> np.ndarray:
    """The per-jet weights as float32 (ones if ``None``), checked for shape and NaN/inf."""
    if weight is None:
        return np.ones(n, dtype=np.float32)
    w = np.asarray(weight, dtype=np.float32)
    if w.shape != (n,):
        raise TaggerInputError(f"{what}: weight has shape {w.shape}, expected ({n},)")
    check_finite(w, "weight", source=what, entry_name="jet")
    return w


def data_fingerprint(*arrays: np.ndarray | None) -> str:
    """SHA-256 (16 hex digits) of the arrays' shapes, dtypes and bytes."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.data.cast("B"))
    return h.hexdigest()[:16]


def hash_for(section: ConfigNode, **extra: Any) -> str:
    """The config hash stored with a network and its checkpoint: the model's config section
    (``tagger_models.<name>``) plus ``extra`` (kind, features, data fingerprints)."""
    return config_hash({"cfg": section, **extra})


# --------------------------------------------------------------------------- high-level inputs


@dataclass
class FeatureMatrix:
    """High-level tagger inputs (MV2, DL1): ``x`` float32 (n, f) with column ``names``,
    optional per-jet ``label`` (HadronConeExclTruthLabelID) and ``weight``."""

    x: np.ndarray
    names: list[str]
    label: np.ndarray | None = None
    weight: np.ndarray | None = None

    @classmethod
    def from_columns(
        cls,
        columns: Mapping[str, Any],
        names: Sequence[str],
        label: Any | None = None,
        weight: Any | None = None,
    ) -> FeatureMatrix:
        """Stack the named 1-D ``columns`` (e.g. ``TaggingDataset.jets``) into a matrix."""
        missing = [n for n in names if n not in columns]
        if missing:
            raise TaggerInputError(f"the input lacks the feature column(s) {missing}")
        if not names:
            raise TaggerInputError("no feature names given")
        x = np.stack([np.asarray(columns[n], dtype=np.float32) for n in names], axis=1)
        return cls(
            x,
            list(names),
            None if label is None else np.asarray(label),
            None if weight is None else np.asarray(weight),
        )

    def __len__(self) -> int:
        return int(self.x.shape[0])


def as_feature_matrix(
    data: Any,
    names: Sequence[str] | None = None,
    *,
    what: str = "input",
    need_labels: bool = False,
    kind: str = "model",
) -> FeatureMatrix:
    """Convert and check high-level inputs.

    Args:
        data: a :class:`FeatureMatrix`, a :class:`~taggers.features.TaggingDataset` (columns
            ``names`` of its ``jets``, with their labels and weights), a mapping of columns
            (with optional ``label`` and ``weight`` keys), or a 2-D array whose columns are
            ``names`` in order.
        names: the model's features: a FeatureMatrix is reordered by name.
        what: names the set in errors.
        need_labels: the labels (and weights) are checked and must be present (training).
        kind: the model's name in errors.

    Raises:
        ModelMismatchError: a feature of ``names`` is missing.
        NonFiniteInputError: NaN/inf in a feature (naming it and the first jet).
        TaggerInputError: an empty set, wrong shapes, missing or unknown labels.
    """
    from taggers.features import TaggingDataset

    if isinstance(data, FeatureMatrix):
        fm = data
        if names is not None and list(names) != list(fm.names):
            missing = [n for n in names if n not in fm.names]
            if missing:
                raise ModelMismatchError(
                    f"mismatched model and feature file ({kind}): the {what} lacks the model feature(s) "
                    f"{missing} (it has {list(fm.names)})"
                )
            cols = [fm.names.index(n) for n in names]
            fm = FeatureMatrix(fm.x[:, cols], list(names), fm.label, fm.weight)
    elif isinstance(data, TaggingDataset):
        if names is None:
            raise TaggerInputError(
                f"{what}: feature names are needed to read a dataset's jet columns"
            )
        missing = [n for n in names if n not in data.jets]
        if missing:
            raise ModelMismatchError(
                f"mismatched model and feature file ({kind}): the {what} lacks the feature(s) {missing}"
            )
        fm = FeatureMatrix.from_columns(
            data.jets, names, data.jets.get("label"), data.jets.get("weight")
        )
    elif isinstance(data, Mapping):
        if names is None:
            names = [k for k in data if k not in ("label", "weight")]
        missing = [n for n in names if n not in data]
        if missing:
            raise ModelMismatchError(
                f"mismatched model and feature file ({kind}): the {what} lacks the feature(s) {missing}"
            )
        fm = FeatureMatrix.from_columns(data, names, data.get("label"), data.get("weight"))
    elif isinstance(data, np.ndarray):
        if names is None:
            raise TaggerInputError(f"{what}: a bare array needs feature names")
        fm = FeatureMatrix(data, list(names))
    else:
        raise TaggerInputError(f"{what}: unsupported input type {type(data).__name__}")
    x = np.asarray(fm.x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != len(fm.names):
        raise TaggerInputError(f"{what}: expected (n, {len(fm.names)}) features, got {x.shape}")
    check_not_empty(x.shape[0], what)
    check_finite(x, fm.names, source=what, entry_name="jet")
    label, weight = fm.label, fm.weight
    if need_labels:
        if label is None:
            raise TaggerInputError(f"{what}: no jet labels (HadronConeExclTruthLabelID)")
        label = np.asarray(label)
        if label.shape != (x.shape[0],):
            raise TaggerInputError(
                f"{what}: label has shape {label.shape}, expected ({x.shape[0]},)"
            )
        labels_to_classes(label)
        weight = check_weights(weight, x.shape[0], what)
    return FeatureMatrix(np.ascontiguousarray(x), list(fm.names), label, weight)


def check_model_compatible(
    kind: str,
    model_features: Sequence[str],
    *,
    features: Sequence[str] | None = None,
    n_max: int | None = None,
    model_n_max: int | None = None,
    normaliser: Normaliser | None = None,
    source: str = "<model>",
) -> None:
    """Raise :class:`ModelMismatchError` when a feature list, ``n_max`` or normaliser differs
    from what the model was trained with (the track grade, embedded, is not normalised)."""
    problems = []
    if features is not None and list(features) != list(model_features):
        problems.append(f"features {list(features)} != model features {list(model_features)}")
    if n_max is not None and model_n_max is not None and int(n_max) != int(model_n_max):
        problems.append(f"n_max {n_max} != model n_max {model_n_max}")
    if normaliser is not None:
        names = list(normaliser.names)
        if [n for n in names if n != "grade"] != [n for n in model_features if n != "grade"]:
            problems.append(f"normaliser features {names} != model features {list(model_features)}")
    if problems:
        raise ModelMismatchError(
            f"mismatched model and feature file for {kind} model {source}: " + "; ".join(problems)
        )


# --------------------------------------------------------------------------- the training task


@dataclass
class ClassifierData:
    """The labelled inputs of a classifier: the network's input arrays (one row per jet),
    the class index (0..3) and the weight of every jet."""

    inputs: Sequence[np.ndarray]
    classes: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return len(self.classes)


def weighted_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, class_w: torch.Tensor
) -> torch.Tensor:
    """Per-jet ``w_i * cw[y_i] * CE_i`` (no reduction)."""
    return F.cross_entropy(logits, target, weight=class_w, reduction="none") * weight


def _batches(n: int, batch_size: int, order: torch.Tensor | None = None) -> Iterator[torch.Tensor | slice]:
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        yield (order[start:stop] if order is not None else slice(start, stop))


#: training data up to this size is moved to the GPU once (else batches are copied from
#: pinned host memory)
GPU_STAGING_BYTES = 4 * 2**30


def _stage(tensors: Sequence[torch.Tensor], dev: torch.device) -> list[torch.Tensor]:
    """Put the data where batches are cut: on the GPU if it fits, else pinned host memory."""
    if dev.type != "cuda":
        return list(tensors)
    total = sum(t.numel() * t.element_size() for t in tensors)
    if total <= GPU_STAGING_BYTES:
        return [t.to(dev) for t in tensors]
    return [t.pin_memory() for t in tensors]


def _tensors(data: ClassifierData, dev: torch.device) -> list[torch.Tensor]:
    return _stage(
        [
            *(torch.from_numpy(np.ascontiguousarray(a)) for a in data.inputs),
            torch.from_numpy(np.asarray(data.classes, np.int64)),
            torch.from_numpy(np.asarray(data.weight, np.float32)),
        ],
        dev,
    )


@torch.inference_mode()
def evaluate_loss(
    model: nn.Module,
    inputs: Sequence[torch.Tensor],
    target: torch.Tensor,
    weight: torch.Tensor,
    class_w: torch.Tensor,
    device: torch.device,
    batch_size: int = 10_000,
) -> float:
    """Weighted mean cross-entropy over a whole set (eval mode)."""
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    norm = torch.zeros((), dtype=torch.float64, device=device)
    cw = class_w.to(device)
    for idx in _batches(len(target), batch_size):
        xs = [t[idx].to(device, non_blocking=True) for t in inputs]
        y = target[idx].to(device)
        w = weight[idx].to(device)
        total += weighted_cross_entropy(model(*xs), y, w, cw).sum().double()
        norm += (cw[y] * w).sum().double()
    if float(norm) <= 0:
        raise TaggerInputError("the validation set has a non-positive total weight")
    return float(total / norm)


def classifier_task(
    train: ClassifierData,
    val: ClassifierData | None,
    *,
    class_w: np.ndarray,
    batch_size: int,
    seed: int,
    device: torch.device,
) -> TrainingTask[list[torch.Tensor]]:
    """The :class:`~analysis.ml.training.TrainingTask` of a 4-class tagger network.

    Epoch ``e`` visits the training jets in the order ``numpy.random.default_rng([seed,
    e]).permutation(n)`` in batches of ``batch_size``. A batch's loss is ``Σ w cw[y] CE /
    (batch size · mean over the training set of w cw[y])``: a constant normalisation, so
    batches with few (or negative) weights cannot blow it up. The validation loss is the
    weighted mean cross-entropy over ``val`` (:func:`evaluate_loss`).

    Args:
        train: the training set.
        val: the validation set (``None``: early stopping watches the training loss).
        class_w: per-class loss weights (:func:`class_weights`).
        batch_size: jets per batch.
        seed: the base seed of the batch order.
        device: where the batches go (the data are staged there when they fit,
            :data:`GPU_STAGING_BYTES`).

    Raises:
        TaggerInputError: a non-positive total training weight.
    """
    n_train = len(train)
    *tr_t, tr_y, tr_w = _tensors(train, device)
    va = _tensors(val, device) if val is not None else None
    train_norm = float((class_w[train.classes] * np.asarray(train.weight, np.float64)).mean())
    if train_norm <= 0:
        raise TaggerInputError("the training set has a non-positive total weight")
    cw_cpu = torch.from_numpy(class_w)
    cw_dev = cw_cpu.to(device)

    def epoch_batches(epoch: int) -> Iterator[list[torch.Tensor]]:
        order = torch.from_numpy(np.random.default_rng([seed, epoch]).permutation(n_train))
        order = order.to(tr_y.device)
        for idx in _batches(n_train, batch_size, order):
            yield [*(t[idx].to(device, non_blocking=True) for t in tr_t),
                   tr_y[idx].to(device, non_blocking=True), tr_w[idx].to(device, non_blocking=True)]

    def batch_loss(model: nn.Module, batch: list[torch.Tensor]) -> tuple[torch.Tensor, int]:
        *xs, y, w = batch
        loss = weighted_cross_entropy(model(*xs), y, w, cw_dev).sum() / (len(y) * train_norm)
        return loss, len(y)

    def validation_loss(model: nn.Module) -> float:
        assert va is not None
        *va_t, va_y, va_w = va
        return evaluate_loss(model, va_t, va_y, va_w, cw_cpu, device)

    return TrainingTask(
        n_train=n_train,
        n_batches=math.ceil(n_train / batch_size),
        epoch_batches=epoch_batches,
        batch_loss=batch_loss,
        validation_loss=validation_loss if va is not None else None,
        unit="jets",
    )


# --------------------------------------------------------------------------- training


@dataclass(kw_only=True)
class NetworkResult(FitResult):
    """A trained tagger network (:func:`train_classifier`): the
    :class:`~analysis.ml.training.FitResult` (model with its best weights, loss history, best
    epoch, early stopping, resume) and where the model was written.

    Attributes:
        model_path: the model file (``<outdir>/<name>.pt``).
        class_weights: the per-class loss weights (b, c, light, tau).
        n_train: training jets.
        n_val: validation jets (``None`` without a validation set).
    """

    model_path: Path
    class_weights: list[float]
    n_train: int
    n_val: int | None

    @property
    def train_jets_per_s(self) -> float:
        """Mean training rate over the epochs (jets per wall second)."""
        rates = [h["jets_per_s"] for h in self.history if math.isfinite(h["jets_per_s"])]
        return float(np.mean(rates)) if rates else float("nan")

    def info(self) -> dict[str, Any]:
        """How training went, as stored in the model file (``training``) and the history file."""
        return {
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val_loss,
            "epochs_run": self.epochs_run,
            "stopped_early": self.stopped_early,
            "train_jets_per_s": self.train_jets_per_s,
            "device": self.device,
            "class_weights": list(self.class_weights),
            "n_train": self.n_train,
            "n_val": self.n_val,
        }


def train_classifier(
    *,
    name: str,
    build_model: Callable[[], ModelT],
    train: ClassifierData,
    val: ClassifierData | None,
    cfg: TaggerModelsRnnip | TaggerModelsDl1,
    outdir: str | os.PathLike[str],
    save_model: Callable[[ModelT, Path, dict[str, Any]], None],
    config_hash: str,
    normaliser: Normaliser,
    device: str | torch.device | None = None,
    resume: bool = True,
    progress: bool | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    threads: int | None = None,
) -> NetworkResult:
    """Train a 4-class tagger network through :func:`analysis.ml.training.fit`.

    Adam, the (class- and sample-)weighted cross-entropy of :func:`classifier_task`, early
    stopping on the validation loss (the training loss when ``val`` is None) and a checkpoint
    ``<outdir>/<name>.ckpt.pt`` after every epoch. The best weights are passed to
    ``save_model(model, <outdir>/<name>.pt, info)``; the loss history goes to
    ``<outdir>/<name>.history.json``.

    Args:
        name: the network (``rnnip``, ``dl1``): file names and logs.
        build_model: builds the untrained network (after seeding).
        train: the training set.
        val: the validation set, or ``None``.
        cfg: ``seed``, ``learning_rate``, ``batch_size``, ``max_epochs``, ``patience``,
            ``min_delta``, ``class_weights`` of the network's section.
        outdir: the model directory.
        save_model: writes the trained model.
        config_hash: identifies configuration and data (a checkpoint of another hash is
            ignored and overwritten).
        normaliser: the input normaliser (stored in the checkpoint).
        device: ``cpu``/``cuda`` (:func:`~analysis.ml.training.pick_device`).
        resume: continue from a checkpoint of the same ``config_hash``.
        progress: show a progress bar (``None``: only on a terminal).
        on_epoch_end: ``(epoch, record)`` after each epoch's checkpoint (tests interrupt with it).
        threads: torch intra-op threads during training (``None``: unchanged).

    Returns:
        The :class:`NetworkResult`.

    Raises:
        TaggerInputError: an empty set or a non-positive total weight.
        MissingClassError: a flavour class without training jets.
    """
    with torch_threads(threads):
        out = Path(outdir)
        dev = pick_device(device)
        n_classes = len(CLASS_NAMES)
        n_train = len(train)
        check_not_empty(n_train, "training set")
        cw_np = class_weights(train.classes, n_classes, train.weight)  # raises on a missing class
        if not cfg.class_weights:
            cw_np = np.ones(n_classes, np.float32)
        if val is not None:
            check_not_empty(len(val), "validation set")
        task = classifier_task(train, val, class_w=cw_np, batch_size=int(cfg.batch_size),
                               seed=int(cfg.seed), device=dev)
        settings = FitSettings(seed=int(cfg.seed), learning_rate=float(cfg.learning_rate),
                               max_epochs=int(cfg.max_epochs), patience=int(cfg.patience),
                               min_delta=float(cfg.min_delta))
        fitted = fit(name=name, build_model=build_model, task=task, settings=settings, device=dev,
                     checkpoint=out / f"{name}.ckpt.pt", config_hash=config_hash,
                     normaliser=normaliser.to_dict(), resume=resume, progress=progress,
                     on_epoch_end=on_epoch_end)
        result = NetworkResult(
            **{f.name: getattr(fitted, f.name) for f in dataclasses.fields(FitResult)},
            model_path=out / f"{name}.pt",
            class_weights=[float(v) for v in cw_np],
            n_train=n_train,
            n_val=None if val is None else len(val),
        )
        info = result.info()
        save_model(result.model, result.model_path, info)  # type: ignore[arg-type]
        write_json(out / f"{name}.history.json",
                   {"history": result.history, **info, "config_hash": config_hash})
        return result


# --------------------------------------------------------------------------- model files


def _load_torch_payload(path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{kind} model file not found: {p}")
    payload = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("kind") != kind:
        got = payload.get("kind") if isinstance(payload, dict) else type(payload).__name__
        raise ModelMismatchError(f"{p} is not a {kind} model file (kind {got!r})")
    return payload


def save_network(model: nn.Module, path: str | os.PathLike[str], *, kind: str, label: str,
                 format_version: int, hparams: Mapping[str, Any]) -> None:
    """Write a trained tagger network atomically: its ``kind``, format version,
    hyper-parameters, CPU weights and ``model.meta`` (``label`` names it in errors)."""
    meta = getattr(model, "meta", None)
    if meta is None:
        raise ValueError(f"only a trained or loaded {label} (with .meta) can be saved")
    save_torch_payload(
        path,
        {
            "kind": kind,
            "format_version": format_version,
            "hparams": dict(hparams),
            "state_dict": state_dict_cpu(model),
            **meta,
        },
    )


def load_network(path: str | os.PathLike[str], kind: str, build: Callable[..., ModelT]) -> ModelT:
    """The network of a :func:`save_network` file: ``build(**hparams)`` with the weights
    loaded and ``.meta`` set (everything but weights and hyper-parameters).

    Raises:
        FileNotFoundError: no such file.
        ModelMismatchError: the file holds another kind of model.
    """
    payload = _load_torch_payload(path, kind)
    model = build(**payload["hparams"])
    model.load_state_dict(payload["state_dict"])
    model.meta = {k: v for k, v in payload.items() if k not in ("state_dict", "hparams")}  # type: ignore[assignment]
    return model
