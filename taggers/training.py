"""Training of the neural-network taggers (RNNIP, DL1) on top of :mod:`analysis.ml.training`.

- seeding, device choice, early stopping and checkpoints are the project-wide ones of
  :mod:`analysis.ml.training` (the calorimeter CNN uses them too);
- :func:`fit_classifier`, the loop both taggers use;
- :func:`class_weights` from (weighted) label counts, :func:`labels_to_classes` (the
  ``HadronConeExclTruthLabelID`` → class-index map :data:`LABEL_TO_CLASS`);
- :class:`FeatureScaler`, a small mean/std normaliser with names (``to_dict``/``from_dict``);
- input checks that raise :class:`TaggerInputError` naming the feature, class or set.

Reproducibility and resume: the model is initialised after ``seed_everything(seed)``; at the
start of epoch ``e`` the torch RNG (dropout) is re-seeded and the batch order drawn from
``numpy.random.default_rng([seed, e])``, so an epoch depends only on the seed, the epoch
number and the state at its start. A run interrupted after epoch ``k`` and resumed from its
checkpoint therefore ends with the same weights as an uninterrupted run (on the same device
and thread count). Re-seeding resets torch's global RNG, a side effect callers should know of.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from analysis.core.errors import InputError, ModelMismatchError
from analysis.core.atomic import write_json
from analysis.ml.training import (  # noqa: F401  (re-used here and by the tagger modules)
    DEVICE_ENV,
    Checkpoint,
    EarlyStopping,
    epoch_seed,
    pick_device,
    save_torch_payload,
    seed_everything,
    state_dict_cpu,
    torch_threads,
)
from analysis.core.config import config_hash, schema, validate_section
from taggers.discriminant import CLASS_NAMES

log = logging.getLogger(__name__)

#: HadronConeExclTruthLabelID → class index of the 4-class outputs (b, c, light, tau).
LABEL_TO_CLASS: dict[int, int] = {5: 0, 4: 1, 0: 2, 15: 3}
#: Class index → truth label.
CLASS_TO_LABEL: dict[int, int] = {v: k for k, v in LABEL_TO_CLASS.items()}

MODEL_SECTIONS = ("mv2", "rnnip", "dl1")


class TaggerInputError(InputError):
    """Bad tagger input: NaN/inf in a feature, an unknown label, an empty set, wrong shapes."""


class MissingClassError(TaggerInputError):
    """A flavour class has no jets (or no positive total weight) in the training set."""


# --------------------------------------------------------------------------- configuration


def model_config(name: str, cfg: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The filled ``tagger_models.<name>`` section.

    ``cfg`` may be a full hepline config (holding ``tagger_models``), the ``tagger_models``
    section itself, the ``<name>`` sub-section, or ``None`` (all defaults).
    """
    if name not in MODEL_SECTIONS:
        raise ValueError(f"unknown tagger model {name!r}; known: {MODEL_SECTIONS}")
    own_keys = set(schema()["properties"]["tagger_models"]["properties"][name]["properties"])
    if cfg is None:
        section: Any = None
    elif "tagger_models" in cfg:
        section = cfg["tagger_models"]
    elif set(cfg) <= own_keys:
        section = {name: dict(cfg)}
    elif set(cfg) <= set(MODEL_SECTIONS):
        section = dict(cfg)
    elif "generation" in cfg:
        section = None  # a full config without a tagger_models section: all defaults
    else:
        section = {name: dict(cfg)}  # a sub-section with unknown keys: the schema names them
    return validate_section("tagger_models", section, source=f"tagger_models.{name}")[name]


# --------------------------------------------------------------------------- labels, checks


def labels_to_classes(labels: Any) -> np.ndarray:
    """Map ``HadronConeExclTruthLabelID`` values (5, 4, 0, 15) to class indices (0..3)."""
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
    return f"{CLASS_NAMES[cls]!r} (HadronConeExclTruthLabelID {CLASS_TO_LABEL[cls]})"


def class_weights(
    classes: Any,
    n_classes: int = len(CLASS_NAMES),
    weight: Any | None = None,
    *,
    what: str = "training set",
) -> np.ndarray:
    """Per-class loss weights ``W / (n_classes * W_c)`` from the (weighted) class totals ``W_c``.

    The weighted classes then contribute equally to the loss. Raises
    :class:`MissingClassError` naming a class with no jets (or a non-positive total weight).
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
    if n == 0:
        raise TaggerInputError(f"the {what} is empty (0 jets)")


def check_finite(
    values: np.ndarray,
    names: Sequence[str],
    *,
    mask: np.ndarray | None = None,
    what: str = "input",
) -> None:
    """Raise :class:`TaggerInputError` naming the first feature (last axis) with NaN/inf.

    With ``mask`` (shape ``values.shape[:-1]``) only the entries where it is True count.
    """
    if values.shape[-1] != len(names):
        raise TaggerInputError(f"{what}: {values.shape[-1]} features but {len(names)} names")
    bad = ~np.isfinite(values)
    if mask is not None:
        bad &= mask[..., None]
    if bad.any():
        per_feature = bad.reshape(-1, len(names)).sum(axis=0)
        for i, name in enumerate(names):
            if per_feature[i]:
                first = int(np.argwhere(bad[..., i])[0][0])
                raise TaggerInputError(
                    f"{what} feature {name!r} holds {int(per_feature[i])} NaN/inf value(s) "
                    f"(first in jet {first})"
                )


def check_weights(weight: np.ndarray | None, n: int, what: str) -> np.ndarray:
    if weight is None:
        return np.ones(n, dtype=np.float32)
    w = np.asarray(weight, dtype=np.float32)
    if w.shape != (n,):
        raise TaggerInputError(f"{what}: weight has shape {w.shape}, expected ({n},)")
    if not np.all(np.isfinite(w)):
        raise TaggerInputError(
            f"{what}: 'weight' holds {np.count_nonzero(~np.isfinite(w))} NaN/inf value(s)"
        )
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
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()[:16]


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

    ``data``: a :class:`FeatureMatrix`, a ``TaggingDataset`` (columns taken from its ``jets``
    by ``names``, labels and weights too), a mapping of columns (with optional ``label`` and
    ``weight`` keys), or a 2-D array whose columns are ``names`` in order. With ``names`` (a
    model's features) a FeatureMatrix is reordered by name; a missing feature raises
    :class:`ModelMismatchError`. NaN/inf raise :class:`TaggerInputError` naming the feature.
    """
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
    elif hasattr(data, "jets") and isinstance(data.jets, Mapping):
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
    check_finite(x, fm.names, what=what)
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


# --------------------------------------------------------------------------- normaliser


@dataclass
class FeatureScaler:
    """Per-feature standardisation ``(x - mean) / std`` with the feature names attached.

    ``fit`` takes values whose last axis is the feature axis; ``mask`` (the other axes)
    selects the entries that count (e.g. valid tracks). A constant feature gets ``std = 1``.
    """

    names: list[str]
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(
        cls, values: np.ndarray, names: Sequence[str], mask: np.ndarray | None = None
    ) -> FeatureScaler:
        x = np.asarray(values, dtype=np.float64)
        flat = x.reshape(-1, x.shape[-1]) if mask is None else x[np.asarray(mask, bool)]
        if flat.shape[0] == 0:
            raise TaggerInputError("cannot fit the normaliser: no entries")
        mean = flat.mean(axis=0)
        std = flat.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)
        return cls(list(names), mean.astype(np.float32), std.astype(np.float32))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return ((np.asarray(values, np.float32) - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureScaler:
        return cls(
            list(d["names"]), np.asarray(d["mean"], np.float32), np.asarray(d["std"], np.float32)
        )


def fit_normaliser(values: np.ndarray, names: Sequence[str], mask: np.ndarray | None = None) -> Any:
    """Fit the feature engineer's :class:`taggers.dataset.Normaliser` (unweighted, valid entries
    only); :class:`FeatureScaler` (same arithmetic and dict layout) if that module is absent."""
    try:
        from taggers.dataset import Normaliser
    except ImportError:
        return FeatureScaler.fit(values, names, mask=mask)
    return Normaliser.fit(np.asarray(values), mask=mask, names=list(names))


def normaliser_names(normaliser: Any) -> list[str] | None:
    """Feature names of a normaliser object or its dict (``names``/``features``/``feature_names``
    key, or a mapping keyed by feature name); ``None`` if they cannot be found."""
    d = normaliser.to_dict() if hasattr(normaliser, "to_dict") else normaliser
    if not isinstance(d, Mapping):
        return None
    for key in ("names", "features", "feature_names", "variables"):
        if key in d and isinstance(d[key], (list, tuple)):
            return [str(n) for n in d[key]]
    if d and all(isinstance(v, Mapping) for v in d.values()):
        return [str(k) for k in d]
    return None


def check_model_compatible(
    kind: str,
    model_features: Sequence[str],
    *,
    features: Sequence[str] | None = None,
    n_max: int | None = None,
    model_n_max: int | None = None,
    normaliser: Any | None = None,
    source: str = "<model>",
) -> None:
    """Raise :class:`ModelMismatchError` when a feature list / n_max / normaliser differs from
    what the model was trained with."""
    problems = []
    if features is not None and list(features) != list(model_features):
        problems.append(f"features {list(features)} != model features {list(model_features)}")
    if n_max is not None and model_n_max is not None and int(n_max) != int(model_n_max):
        problems.append(f"n_max {n_max} != model n_max {model_n_max}")
    if normaliser is not None:
        names = normaliser_names(normaliser)
        if names is None:
            problems.append("the normaliser holds no feature names")
        elif [n for n in names if n != "grade"] != [n for n in model_features if n != "grade"]:
            problems.append(f"normaliser features {names} != model features {list(model_features)}")
    if problems:
        raise ModelMismatchError(
            f"mismatched model and feature file for {kind} model {source}: " + "; ".join(problems)
        )


# --------------------------------------------------------------------------- training loop


@dataclass
class TrainResult:
    """What :func:`fit_classifier` (and ``train_rnnip`` / ``train_dl1``) return."""

    model: nn.Module
    model_path: Path
    history: list[dict[str, float]]
    best_epoch: int
    best_val_loss: float
    stopped_early: bool
    epochs_run: int
    resumed_from_epoch: int | None
    device: str
    train_jets_per_s: float
    config_hash: str
    metrics: dict[str, Any] = field(default_factory=dict)


def weighted_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, class_w: torch.Tensor
) -> torch.Tensor:
    """Per-jet ``w_i * cw[y_i] * CE_i`` (no reduction)."""
    return F.cross_entropy(logits, target, weight=class_w, reduction="none") * weight


def _batches(n: int, batch_size: int, order: torch.Tensor | None = None):
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


def fit_classifier(
    *,
    name: str,
    build_model: Callable[[], nn.Module],
    train_inputs: Sequence[np.ndarray],
    train_classes: np.ndarray,
    train_weight: np.ndarray,
    val_inputs: Sequence[np.ndarray] | None,
    val_classes: np.ndarray | None,
    val_weight: np.ndarray | None,
    cfg: Mapping[str, Any],
    outdir: str | os.PathLike[str],
    save_model: Callable[[nn.Module, Path, dict[str, Any]], None],
    cfg_hash: str,
    normaliser: Mapping[str, Any] | None,
    device: str | torch.device | None = None,
    resume: bool = True,
    progress: bool | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    threads: int | None = None,
) -> TrainResult:
    """Train a classifier with Adam, (class- and sample-)weighted cross-entropy, early stopping
    on the validation loss (the training loss when ``val_inputs`` is None) and a checkpoint
    ``<outdir>/<name>.ckpt.pt`` written after every epoch.

    ``cfg`` needs ``seed, learning_rate, batch_size, max_epochs, patience, min_delta,
    class_weights``. With ``resume`` and a checkpoint of the same ``cfg_hash``, training
    continues after the checkpoint's epoch (a finished run returns at once); a checkpoint of
    another hash is ignored (with a warning) and overwritten. The best weights are restored at
    the end and passed to ``save_model(model, path, info)`` with path ``<outdir>/<name>.pt``;
    the loss history goes to ``<outdir>/<name>.history.json``. ``on_epoch_end(epoch, record)``
    is called after each epoch's checkpoint is written (tests use it to interrupt a run).
    ``threads``: torch intra-op threads during the training (``None``: unchanged).
    """
    with torch_threads(threads):
        outdir = Path(outdir)
        dev = pick_device(device)
        n_classes = len(CLASS_NAMES)
        n_train = len(train_classes)
        check_not_empty(n_train, "training set")
        cw_np = class_weights(train_classes, n_classes, train_weight)  # raises on a missing class
        if not cfg.get("class_weights", True):
            cw_np = np.ones(n_classes, np.float32)
        if val_inputs is not None:
            check_not_empty(len(val_classes), "validation set")
        class_w = torch.from_numpy(cw_np)

        seed = int(cfg["seed"])
        seed_everything(seed)
        model = build_model().to(dev)
        optimizer = torch.optim.Adam(model.parameters(), lr=float(cfg["learning_rate"]))
        stopper = EarlyStopping(int(cfg["patience"]), float(cfg.get("min_delta", 0.0)))
        history: list[dict[str, float]] = []
        best_state: dict[str, torch.Tensor] | None = None
        start_epoch = 0
        resumed_from: int | None = None

        ckpt = Checkpoint(outdir / f"{name}.ckpt.pt")
        restored = ckpt.restore(model=model, optimizer=optimizer, stopper=stopper,
                                config_hash=cfg_hash) if resume else None
        if restored is not None:
            start_epoch, resumed_from = restored.start_epoch, restored.resumed_from
            history, best_state = restored.history, restored.best_state

        *tr_t, tr_y, tr_w = _stage(
            [
                *(torch.from_numpy(np.ascontiguousarray(a)) for a in train_inputs),
                torch.from_numpy(np.asarray(train_classes, np.int64)),
                torch.from_numpy(np.asarray(train_weight, np.float32)),
            ],
            dev,
        )
        if val_inputs is not None:
            *va_t, va_y, va_w = _stage(
                [
                    *(torch.from_numpy(np.ascontiguousarray(a)) for a in val_inputs),
                    torch.from_numpy(np.asarray(val_classes, np.int64)),
                    torch.from_numpy(np.asarray(val_weight, np.float32)),
                ],
                dev,
            )
        # per-batch loss = sum(w cw[y] CE) / (batch size * mean over the training set of w cw[y]):
        # a constant normalisation, so batches with few (or negative) weights cannot blow it up.
        train_norm = float((cw_np[train_classes] * np.asarray(train_weight, np.float64)).mean())
        if train_norm <= 0:
            raise TaggerInputError("the training set has a non-positive total weight")
        cw_dev = class_w.to(dev)
        batch_size = int(cfg["batch_size"])
        max_epochs = int(cfg["max_epochs"])
        n_batches = math.ceil(n_train / batch_size)

        for epoch in range(start_epoch, max_epochs):
            if stopper.should_stop:
                break
            torch.manual_seed(epoch_seed(seed, epoch))
            order = torch.from_numpy(np.random.default_rng([seed, epoch]).permutation(n_train))
            order = order.to(tr_y.device)
            model.train()
            t0 = time.perf_counter()
            c0 = time.process_time()
            run_loss = torch.zeros((), dtype=torch.float64, device=dev)
            bar = tqdm(
                total=n_batches,
                desc=f"{name} epoch {epoch + 1}/{max_epochs}",
                unit="batch",
                leave=False,
                disable=(not progress) if progress is not None else None,
            )
            try:
                for i, idx in enumerate(_batches(n_train, batch_size, order)):
                    xs = [t[idx].to(dev, non_blocking=True) for t in tr_t]
                    y = tr_y[idx].to(dev, non_blocking=True)
                    w = tr_w[idx].to(dev, non_blocking=True)
                    loss = weighted_cross_entropy(model(*xs), y, w, cw_dev).sum() / (
                        len(y) * train_norm
                    )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    run_loss += loss.detach().double() * len(y)
                    bar.update(1)
                    if i % 50 == 0 and not bar.disable:  # (a float() syncs the GPU)
                        bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
            finally:
                bar.close()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            train_seconds = time.perf_counter() - t0
            cpu_seconds = time.process_time() - c0
            train_loss = float(run_loss) / n_train
            if val_inputs is not None:
                val_loss = evaluate_loss(model, va_t, va_y, va_w, class_w, dev)
            else:
                val_loss = train_loss
            if not math.isfinite(train_loss) or not math.isfinite(val_loss):
                raise FloatingPointError(
                    f"{name}: non-finite loss at epoch {epoch + 1} (train {train_loss}, val {val_loss})"
                )
            if stopper.step(val_loss, epoch):
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            record = {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "seconds": train_seconds,
                "jets_per_s": n_train / train_seconds if train_seconds > 0 else float("nan"),
                "cpu_seconds": cpu_seconds,
            }
            history.append(record)
            log.info(
                "%s epoch %d/%d: train loss %.5f, val loss %.5f, %.0f jets/s%s",
                name,
                epoch + 1,
                max_epochs,
                train_loss,
                val_loss,
                record["jets_per_s"],
                " (best)" if stopper.best_epoch == epoch else "",
            )
            ckpt.save(
                model=model,
                optimizer=optimizer,
                epoch=epoch,
                best_metric=stopper.best,
                normaliser=normaliser,
                config_hash=cfg_hash,
                extra={
                    "early_stopping": stopper.state_dict(),
                    "history": history,
                    "best_state": best_state,
                },
            )
            if on_epoch_end is not None:
                on_epoch_end(epoch, record)
            if stopper.should_stop:
                log.info(
                    "%s: early stopping after epoch %d (best epoch %d, val loss %.5f)",
                    name,
                    epoch + 1,
                    stopper.best_epoch + 1,
                    stopper.best,
                )
                break

        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        rates = [h["jets_per_s"] for h in history if math.isfinite(h["jets_per_s"])]
        result = TrainResult(
            model=model,
            model_path=outdir / f"{name}.pt",
            history=history,
            best_epoch=stopper.best_epoch,
            best_val_loss=stopper.best,
            stopped_early=stopper.should_stop,
            epochs_run=len(history),
            resumed_from_epoch=resumed_from,
            device=str(dev),
            train_jets_per_s=float(np.mean(rates)) if rates else float("nan"),
            config_hash=cfg_hash,
            metrics={
                "class_weights": [float(v) for v in cw_np],
                "n_train": n_train,
                "n_val": None if val_inputs is None else len(val_classes),
            },
        )
        info = {
            "best_epoch": result.best_epoch,
            "best_val_loss": result.best_val_loss,
            "epochs_run": result.epochs_run,
            "stopped_early": result.stopped_early,
            "train_jets_per_s": result.train_jets_per_s,
            "device": result.device,
            **result.metrics,
        }
        save_model(model, result.model_path, info)
        write_json(
            outdir / f"{name}.history.json", {"history": history, **info, "config_hash": cfg_hash}
        )
        return result


def hash_for(cfg: Mapping[str, Any], **extra: Any) -> str:
    """The config hash stored with checkpoints: the model section plus ``extra``."""
    return config_hash({"cfg": dict(cfg), **extra})


def load_torch_payload(path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
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


def load_network(path: str | os.PathLike[str], kind: str, build: Callable[..., nn.Module]) -> nn.Module:
    """The network of a :func:`save_network` file: ``build(**hparams)`` with the weights
    loaded and ``.meta`` set (everything but weights and hyper-parameters)."""
    payload = load_torch_payload(path, kind)
    model = build(**payload["hparams"])
    model.load_state_dict(payload["state_dict"])
    model.meta = {k: v for k, v in payload.items() if k not in ("state_dict", "hparams")}
    return model


def deepcopy_cfg(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(dict(cfg))
