"""The point-cloud comparator of the whole-detector CNN ("low-level inputs").

A DeepSets / particle-flow network (Komiske, Metodiev, Thaler, arXiv:1810.05165; Zaheer et al.,
arXiv:1703.06114) on the same information as the CNN: every non-zero pixel of the image files
is one point. On the default 64 × 64 grid over |η| < 3.2 a pixel holds exactly one calorimeter
tower, so the points are the ECAL and HCAL towers with energy and the track-count pixels.

Per point (:data:`POINT_FEATURES`): η/η_max, sin φ, cos φ of the pixel centre, the channel as a
one-hot vector, log(1 + v) and v / :data:`VALUE_SCALE` (v in GeV for the calorimeter channels, in
tracks for the track channel; the scales are fixed, not fitted). The network::

    Φ: per point, Linear → ReLU (``calo.point_cloud.phi_layers``)
    pool: per event, Σ Φ / 100 and the mean of Φ (both: the sum keeps the multiplicity and
          energy scale, the mean is bounded)
    F: Linear → ReLU → dropout (``f_layers``) → Linear → 2 logits (background, signal)

The batches are gathered from the same compressed-sparse-row storage as the CNN's
(:func:`selections.rpv.cnn.loader.gather_rows`); nothing is padded. Training augmentation
follows ``calo.training.augment``: a continuous φ rotation (``phi_roll``), φ → −φ and η → −η,
each per event, from ``numpy.random.default_rng([seed, epoch])``.

Training uses the CNN's weights (σ-weighted, balanced per class,
:func:`selections.rpv.cnn.train.balanced_weights`), its loss and hepline's one training loop
(:func:`analysis.ml.training.fit`: early stopping, checkpoint and resume), with the rate, batch
size and epochs of ``calo.point_cloud``.

In memory: :func:`train_point_cloud`, :func:`predict_point_cloud`. Files (``hepline calo train
--network point_cloud``): :func:`train_point_cloud_model` writes ``point_cloud.pt`` and
``history.json``; :func:`load_point_cloud` reads the model back.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from analysis.core.atomic import atomic_path, write_json
from analysis.core.config import Config, config_hash
from analysis.core.config.rpv import CaloPointCloud
from analysis.core.provenance import provenance_record
from analysis.ml.training import (
    FitResult,
    FitSettings,
    TrainingTask,
    fit,
    pick_device,
    synchronize,
    torch_threads,
)
from selections.rpv.cnn.images import (
    CaloInputError,
    ImageSet,
    ImageSpec,
    SparseImages,
    load_image_files,
)
from selections.rpv.cnn.loader import AUGMENTATIONS, gather_rows
from selections.rpv.cnn.model import read_model_payload
from selections.rpv.cnn.train import (
    InferenceRate,
    balanced_weights,
    check_training_set,
    training_seed,
)

log = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_FILE",
    "MODEL_FILE",
    "MODEL_KIND",
    "POINT_FEATURES",
    "POOL_SCALE",
    "VALUE_SCALE",
    "LoadedPointCloud",
    "PointBatch",
    "PointCloudLoader",
    "PointCloudNet",
    "PointCloudTrainResult",
    "build_point_cloud",
    "load_point_cloud",
    "point_batch_loss",
    "point_validation_loss",
    "predict_point_cloud",
    "save_point_cloud",
    "train_point_cloud",
    "train_point_cloud_model",
]

MODEL_KIND = "hepline-calo-pointcloud-1"
#: the model file in the output folder of :func:`train_point_cloud_model`
MODEL_FILE = "point_cloud.pt"
#: the checkpoint file in the output folder of :func:`train_point_cloud_model`
CHECKPOINT_FILE = "point_cloud.ckpt.pt"
#: per point: position, channel, value
POINT_FEATURES = ("eta", "sin_phi", "cos_phi", "is_ecal", "is_hcal", "is_ntrack", "log1p_value", "value_scaled")
#: the fixed scale of the linear value feature per channel (GeV, GeV, tracks)
VALUE_SCALE = {"ecal": 100.0, "hcal": 100.0, "ntrack": 10.0}
#: the summed point features are divided by this (a typical number of points per event)
POOL_SCALE = 100.0


@dataclass
class PointBatch:
    """One batch of point clouds on the device.

    Attributes:
        x: ``(P, F)`` float32 point features (:data:`POINT_FEATURES`).
        event: ``(P,)`` int64 position of each point's event in the batch.
        n_points: ``(B,)`` float32 points per event.
        y: ``(B,)`` int64 labels.
        w: ``(B,)`` float32 training weights.
        rows: ``(B,)`` int64 row of each event in the loader's set.
    """

    x: torch.Tensor
    event: torch.Tensor
    n_points: torch.Tensor
    y: torch.Tensor
    w: torch.Tensor
    rows: torch.Tensor

    @property
    def size(self) -> int:
        """Events in the batch."""
        return int(self.y.numel())


class PointCloudLoader:
    """Batches of point clouds (the non-zero pixels) of a sparse image set.

    Args:
        images: the image set (labels from it).
        batch_size: events per batch.
        device: where the batches are built.
        weights: per-event training weights (default: ones).
        shuffle: a new order every epoch (from ``(seed, epoch)``).
        augment: maps :data:`~selections.rpv.cnn.loader.AUGMENTATIONS` to booleans (``None``: none).
        seed: the base seed of the order and the augmentations.

    Raises:
        CaloInputError: an empty set, bad sizes, an η flip on an asymmetric η range, or channels
            without a :data:`VALUE_SCALE`.
    """

    def __init__(self, images: ImageSet, *, batch_size: int, device: torch.device | str,
                 weights: np.ndarray | None = None, shuffle: bool = False,
                 augment: Mapping[str, bool] | None = None, seed: int = 0) -> None:
        sparse: SparseImages = images.images
        self.spec = sparse.spec
        self.n = len(sparse)
        if self.n == 0:
            raise CaloInputError("the image set given to the point-cloud loader is empty")
        if batch_size < 1:
            raise CaloInputError(f"batch_size must be >= 1, got {batch_size}")
        unknown = [c for c in self.spec.channels if c not in VALUE_SCALE]
        if unknown:
            raise CaloInputError(f"no point-cloud value scale for channel(s) {unknown}; known: {sorted(VALUE_SCALE)}")
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.epoch = 0
        self.augment = {k: bool((augment or {}).get(k, False)) for k in AUGMENTATIONS}
        if self.augment["eta_flip"] and not self.spec.eta_symmetric:
            raise CaloInputError(f"eta flips need a symmetric eta range, the images have "
                                 f"[{self.spec.eta_min:g}, {self.spec.eta_max:g})")
        cpu = torch.device("cpu")
        self._offsets = torch.from_numpy(sparse.offsets.astype(np.int64)).to(cpu)
        self._index = torch.from_numpy(sparse.index.astype(np.int32)).to(cpu)
        self._value = torch.from_numpy(sparse.value.astype(np.float32)).to(cpu)
        w = np.ones(self.n, np.float32) if weights is None else np.asarray(weights, np.float32)
        if w.shape != (self.n,):
            raise CaloInputError(f"weights {w.shape} do not match {self.n} events")
        self._y = torch.from_numpy(np.asarray(images.label, np.int64)).to(self.device)
        self._w = torch.from_numpy(w).to(self.device)
        self._scale = torch.tensor([1.0 / VALUE_SCALE[c] for c in self.spec.channels], device=self.device)
        self._eta_norm = max(abs(self.spec.eta_min), abs(self.spec.eta_max))

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Use the order and augmentations of ``epoch`` in the next iteration."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[PointBatch]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        aug = None
        if any(self.augment.values()):
            rot = rng.uniform(0.0, 2 * np.pi, self.n) if self.augment["phi_roll"] else np.zeros(self.n)
            fphi = rng.random(self.n) < 0.5 if self.augment["phi_flip"] else np.zeros(self.n, bool)
            feta = rng.random(self.n) < 0.5 if self.augment["eta_flip"] else np.zeros(self.n, bool)
            aug = torch.from_numpy(np.stack([rot, fphi, feta], axis=1).astype(np.float32)).to(self.device)
        order_t = torch.from_numpy(order.astype(np.int64))
        for start in range(0, self.n, self.batch_size):
            rows = order_t[start: start + self.batch_size]
            yield self.batch(rows, None if aug is None else aug[start: start + self.batch_size])

    def batch(self, rows: torch.Tensor, aug: torch.Tensor | None = None) -> PointBatch:
        """The point clouds of ``rows`` (int64, CPU); ``aug`` (B, 3): φ rotation (rad), φ flip, η flip."""
        dev = self.device
        b = int(rows.numel())
        img, flat, val = gather_rows(self._offsets, self._index, self._value, rows, dev)
        spec = self.spec
        npix = spec.n_eta * spec.n_phi
        ch = flat // npix
        rem = flat - ch * npix
        ieta = rem // spec.n_phi
        iphi = rem - ieta * spec.n_phi
        eta = spec.eta_min + (ieta.float() + 0.5) * ((spec.eta_max - spec.eta_min) / spec.n_eta)
        phi = -math.pi + (iphi.float() + 0.5) * (2 * math.pi / spec.n_phi)
        if aug is not None:
            a = aug[img]
            phi = phi + a[:, 0]
            phi = torch.where(a[:, 1] > 0, -phi, phi)
            eta = torch.where(a[:, 2] > 0, -eta, eta)
        onehot = F.one_hot(ch, spec.n_channels).float()
        x = torch.cat([(eta / self._eta_norm)[:, None], torch.sin(phi)[:, None], torch.cos(phi)[:, None], onehot,
                       torch.log1p(torch.clamp(val, min=0.0))[:, None], (val * self._scale[ch])[:, None]], dim=1)
        n_points = torch.bincount(img, minlength=b).float()
        rows_d = rows.to(dev)
        return PointBatch(x=x, event=img, n_points=n_points, y=self._y[rows_d], w=self._w[rows_d], rows=rows_d)


def _mlp(n_in: int, layers: Sequence[int], dropout: float = 0.0) -> tuple[nn.Sequential, int]:
    mods: list[nn.Module] = []
    for n_out in layers:
        mods += [nn.Linear(n_in, int(n_out)), nn.ReLU()]
        if dropout > 0:
            mods.append(nn.Dropout(dropout))
        n_in = int(n_out)
    return nn.Sequential(*mods), n_in


class PointCloudNet(nn.Module):
    """Φ per point → Σ/100 and mean per event → F → 2 logits (see the module docstring).

    Args:
        spec: the image grid the points come from (its channels fix the one-hot width).
        phi_layers: widths of the per-point layers.
        f_layers: widths of the per-event layers.
        dropout: dropout after each per-event layer.
    """

    def __init__(self, spec: ImageSpec, phi_layers: Sequence[int] = (64, 64, 64), f_layers: Sequence[int] = (64, 64),
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.spec = spec
        self.n_features = 3 + spec.n_channels + 2
        self.phi, width = _mlp(self.n_features, phi_layers)
        self.f, f_out = _mlp(2 * width, f_layers, dropout)
        self.out = nn.Linear(f_out, 2)
        self.width = width

    def forward(self, b: PointBatch) -> torch.Tensor:
        """The two logits (background, signal) of each event of the batch."""
        if b.x.dim() != 2 or b.x.shape[1] != self.n_features:
            raise CaloInputError(f"point features have shape {tuple(b.x.shape)}, the network expects "
                                 f"(points, {self.n_features})")
        h = self.phi(b.x)
        pooled = torch.zeros(b.size, self.width, dtype=h.dtype, device=h.device).index_add_(0, b.event, h)
        mean = pooled / torch.clamp(b.n_points, min=1.0)[:, None]
        return self.out(self.f(torch.cat([pooled / POOL_SCALE, mean], dim=1)))


def build_point_cloud(spec: ImageSpec, cfg: CaloPointCloud) -> PointCloudNet:
    """The (untrained) network for points of images of ``spec`` with the ``calo.point_cloud`` settings."""
    return PointCloudNet(spec, cfg.phi_layers, cfg.f_layers, cfg.dropout)


def point_batch_loss(model: nn.Module, b: PointBatch) -> tuple[torch.Tensor, int]:
    """The batch's weighted mean cross-entropy ``Σ w CE / B`` and its size ``B``."""
    return (F.cross_entropy(model(b), b.y, reduction="none") * b.w).sum() / b.size, b.size


@torch.inference_mode()
def point_validation_loss(model: nn.Module, loader: PointCloudLoader) -> float:
    """``Σ w CE / Σ w`` over the loader's events, in eval mode."""
    model.eval()
    total, norm = 0.0, 0.0
    for b in loader:
        total += float((F.cross_entropy(model(b), b.y, reduction="none") * b.w).sum())
        norm += float(b.w.sum())
    return total / norm


@torch.inference_mode()
def predict_point_cloud(model: PointCloudNet, images: ImageSet, device: torch.device | str,
                        batch_size: int = 512) -> tuple[np.ndarray, InferenceRate]:
    """Signal scores of every event (in order), sigmoid(l₁ − l₀) in float64, and the rate.

    Raises:
        ImageSizeError: images of another grid than the network's.
    """
    model.spec.check_same(images.spec, "the image file", "the point-cloud network")
    dev = torch.device(device)
    model.to(dev).eval()
    loader = PointCloudLoader(images, batch_size=batch_size, device=dev)
    out = torch.empty(len(images), dtype=torch.float64, device=dev)
    synchronize(dev)
    t0 = time.perf_counter()
    for b in loader:
        logits = model(b).double()
        out[b.rows] = torch.sigmoid(logits[:, 1] - logits[:, 0])
    synchronize(dev)
    return out.cpu().numpy(), InferenceRate(len(images), time.perf_counter() - t0)


@dataclass
class PointCloudTrainResult:
    """A trained point-cloud network and how its training went.

    Attributes:
        fit: the training core's result (best weights, history, early stopping, device, hash).
        cfg: the ``calo.point_cloud`` settings.
        seed: the training seed.
        torch_threads: torch CPU threads during training.
        n_train, n_validation: events in the training and validation splits.
        train_per_sample: training events per sample.
    """

    fit: FitResult
    cfg: CaloPointCloud
    seed: int
    torch_threads: int
    n_train: int
    n_validation: int
    train_per_sample: dict[str, int]

    @property
    def model(self) -> PointCloudNet:
        """The network with the best epoch's weights, in eval mode."""
        model = self.fit.model
        assert isinstance(model, PointCloudNet)
        return model

    def info(self) -> dict[str, Any]:
        """The summary stored in the model file (the history without its per-epoch records)."""
        return {
            "device": self.fit.device, "torch_threads": self.torch_threads, "seed": self.seed,
            "config_hash": self.fit.config_hash, "n_train": self.n_train, "n_validation": self.n_validation,
            "train_per_sample": dict(self.train_per_sample), "epochs_run": self.fit.epochs_run,
            "resumed_from_epoch": self.fit.resumed_from_epoch, "best_epoch": self.fit.best_epoch,
            "best_val_loss": self.fit.best_val_loss, "stopped_early": self.fit.stopped_early,
            "train_images_per_s": self.fit.rate_per_s,
            "model_parameters": int(sum(p.numel() for p in self.fit.model.parameters())),
        }

    def to_dict(self) -> dict[str, Any]:
        """The ``history.json`` content: :meth:`info` and the per-epoch history."""
        return {**self.info(), "history": self.fit.history}


def train_point_cloud(
    cfg: Config,
    train_set: ImageSet,
    val_set: ImageSet,
    *,
    seed: int | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    resume: bool = True,
    progress: bool | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> PointCloudTrainResult:
    """Train the point-cloud network on a training and a validation split.

    Args:
        cfg: the configuration (``calo.point_cloud``, ``calo.training`` for the seed, threads,
            ``min_delta`` and augmentation; the top-level ``seed``).
        train_set, val_set: the training and validation images.
        seed: overrides the training seed.
        checkpoint: the checkpoint file (resume); ``None``: none.
        device, resume, progress, on_epoch_end: as for :func:`selections.rpv.cnn.train.train`.

    Raises:
        CaloInputError, ZeroWeightError: a split without both classes or with bad weights.
    """
    pc, training = cfg.calo.point_cloud, cfg.calo.training
    seed = training_seed(cfg, seed)
    dev = pick_device(device)
    with torch_threads(training.threads):
        check_training_set(train_set, "training split")
        check_training_set(val_set, "validation split")
        train_loader = PointCloudLoader(train_set, batch_size=int(pc.batch_size), device=dev,
                                        weights=balanced_weights(train_set.weight, train_set.label), shuffle=True,
                                        augment=training.augment.to_dict(), seed=seed)
        val_loader = PointCloudLoader(val_set, batch_size=max(512, int(pc.batch_size)), device=dev,
                                      weights=balanced_weights(val_set.weight, val_set.label), seed=seed)

        def epoch_batches(epoch: int) -> Iterable[PointBatch]:
            train_loader.set_epoch(epoch)
            return train_loader

        task = TrainingTask(n_train=len(train_set), n_batches=len(train_loader), epoch_batches=epoch_batches,
                            batch_loss=point_batch_loss,
                            validation_loss=lambda model: point_validation_loss(model, val_loader), unit="images")
        run_hash = config_hash({
            "point_cloud": {k: v for k, v in pc.to_dict().items() if k != "max_epochs"},
            "augment": training.augment, "min_delta": training.min_delta, "split": cfg.calo.split,
            "image": train_set.spec.to_dict(), "seed": seed,
            "data": [len(train_set), float(train_set.weight.sum()), len(val_set)],
        })
        result = fit(
            name="point cloud", build_model=lambda: build_point_cloud(train_set.spec, pc), task=task,
            settings=FitSettings(seed=seed, learning_rate=pc.learning_rate, max_epochs=pc.max_epochs,
                                 patience=pc.patience, min_delta=training.min_delta),
            device=dev, checkpoint=checkpoint, config_hash=run_hash, normaliser=None, resume=resume,
            progress=progress, on_epoch_end=on_epoch_end,
        )
        threads = torch.get_num_threads()
    return PointCloudTrainResult(
        fit=result, cfg=pc, seed=seed, torch_threads=threads, n_train=len(train_set), n_validation=len(val_set),
        train_per_sample={s: int(np.sum(train_set.sample_id == i)) for i, s in enumerate(train_set.samples)},
    )


def save_point_cloud(path: str | os.PathLike[str], model: PointCloudNet, cfg: CaloPointCloud,
                     info: Mapping[str, Any] | None = None, *, provenance: Mapping[str, Any] | None = None) -> None:
    """Write the model file atomically (weights on the CPU, settings, image grid, training summary)."""
    payload = {
        "kind": MODEL_KIND,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "point_cloud": cfg.to_dict(),
        "image": model.spec.to_dict(),
        "info": dict(info or {}),
    }
    with atomic_path(path, provenance=provenance) as tmp:
        torch.save(payload, tmp)


@dataclass
class LoadedPointCloud:
    """A point-cloud model file read back: the network (eval mode), its settings, summary, path."""

    model: PointCloudNet
    cfg: CaloPointCloud
    info: dict[str, Any]
    path: str


def load_point_cloud(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> LoadedPointCloud:
    """Load a point-cloud model file (:func:`save_point_cloud`).

    Raises:
        CaloInputError: no such file.
        ModelMismatchError: not a point-cloud model file.
    """
    payload = read_model_payload(path, MODEL_KIND, "point-cloud")
    cfg = CaloPointCloud.from_dict(payload["point_cloud"])
    model = build_point_cloud(ImageSpec.from_dict(payload["image"]), cfg)
    model.load_state_dict(payload["state_dict"])
    model.to(device).eval()
    return LoadedPointCloud(model, cfg, dict(payload.get("info", {})), str(path))


def train_point_cloud_model(
    cfg: Config,
    image_files: Sequence[str | os.PathLike[str]],
    output_dir: str | os.PathLike[str],
    *,
    seed: int | None = None,
    device: str | torch.device | None = None,
    resume: bool = True,
    progress: bool | None = None,
) -> PointCloudTrainResult:
    """``hepline calo train --network point_cloud``: train on image files; write ``point_cloud.pt``
    and ``history.json`` into ``output_dir`` (the checkpoint ``point_cloud.ckpt.pt`` lets an
    interrupted run resume)."""
    calo = cfg.calo
    cap = calo.training.max_events_per_sample
    train_set = load_image_files(image_files, cap, split=(calo.split, "train"))
    val_set = load_image_files(image_files, cap, split=(calo.split, "validation"))
    out = Path(output_dir)
    result = train_point_cloud(cfg, train_set, val_set, seed=seed, checkpoint=out / CHECKPOINT_FILE, device=device,
                               resume=resume, progress=progress)
    record = provenance_record(stage="calo.train.point_cloud", config=cfg, seeds={"training": result.seed},
                               inputs=image_files, extra={"device": result.fit.device,
                                                          "torch_threads": result.torch_threads})
    save_point_cloud(out / MODEL_FILE, result.model, result.cfg, info=result.info(), provenance=record)
    write_json(out / "history.json", result.to_dict(), provenance=record)
    log.info("point cloud trained: best epoch %d, val loss %.5f, %.1f events/s on %s", result.fit.best_epoch + 1,
             result.fit.best_val_loss, result.fit.rate_per_s, result.fit.device)
    return result
