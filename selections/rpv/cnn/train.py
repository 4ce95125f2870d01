"""Training of the whole-detector CNN on sparse images (σ-weighted, early stopping, resumable).

* Data: the image files of the signal and background samples (:mod:`selections.rpv.cnn.images`),
  split by event number (``calo.split``); the validation split drives early stopping, the test
  split is never read here.
* Weights: each event carries ``weight = genWeight · σ / Σw`` of its sample, so the QCD slices
  combine as in nature. For the loss they are rescaled per class,
  ``w' = w · (N / 2) / W_class`` (``W_class`` the class's total weight, ``N`` the number of
  images): signal and background each carry half of the total, and the mean weight is 1, so
  the loss has the scale of an unweighted one and Adam's learning rate keeps its meaning.
  Within the background the QCD slices keep their relative σ weights.
* Loss: the weighted mean cross-entropy ``Σ w' CE / B`` per batch; the validation loss is
  ``Σ w' CE / Σ w'`` over the validation split (no augmentation).
* The loop is hepline's one training core, :func:`analysis.ml.training.fit`: Adam, early
  stopping on the validation loss (the best epoch's weights are kept), a checkpoint
  ``calo_cnn.ckpt.pt`` after every epoch from which a rerun with the same configuration and
  data resumes. Epoch ``e`` depends only on (seed, e) and the state at its start, so an
  interrupted and resumed run ends with the same weights as an uninterrupted one (same
  device/threads).
* Device: CUDA when present, else CPU (``HEPLINE_DEVICE`` or ``device=`` override).

In memory: :func:`train` (train and validation image sets → :class:`CnnTrainResult`),
:func:`predict`. Files (``hepline calo train``): :func:`train_model` writes, in its output
folder, ``calo_cnn.pt`` (model + image grid + normalisation, see
:mod:`selections.rpv.cnn.model`), ``normalisation.json`` and ``history.json`` (losses, images/s).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from analysis.core.atomic import write_json
from analysis.core.config import Config, config_hash
from analysis.core.config.rpv import CaloConfig, CaloModel
from analysis.core.provenance import provenance_record
from analysis.ml.normaliser import Normaliser
from analysis.ml.training import FitResult, FitSettings, TrainingTask, fit, pick_device, synchronize, torch_threads
from selections.rpv.cnn.images import CaloInputError, ImageNormalisation, ImageSet, load_image_files, match_grid
from selections.rpv.cnn.loader import Batch, SparseImageLoader, loader_from_config
from selections.rpv.cnn.model import CaloCNN, build_model, save_model
from selections.rpv.samples import ZeroWeightError

log = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_FILE",
    "MODEL_FILE",
    "CnnTrainResult",
    "InferenceRate",
    "balanced_weights",
    "batch_loss",
    "check_training_set",
    "predict",
    "save_training",
    "train",
    "train_model",
    "training_seed",
    "validation_loss",
]

MODEL_NAME = "calo_cnn"
#: the model file in the output folder of :func:`train_model`
MODEL_FILE = f"{MODEL_NAME}.pt"
#: the checkpoint file in the output folder of :func:`train_model`
CHECKPOINT_FILE = f"{MODEL_NAME}.ckpt.pt"


def training_seed(cfg: Config, seed: int | None = None) -> int:
    """The training seed: ``seed`` if given, else ``calo.training.seed``, else the top-level seed."""
    if seed is None:
        seed = cfg.calo.training.seed if cfg.calo.training.seed is not None else cfg.seed
    return int(seed)


def check_training_set(images: ImageSet, what: str) -> None:
    """Check that both classes are present with a positive total weight and that every weight
    is finite.

    Raises:
        CaloInputError: an empty set, a missing class or a non-finite weight.
        ZeroWeightError: a class with a total weight ≤ 0.
    """
    if len(images) == 0:
        raise CaloInputError(f"the {what} is empty")
    if not np.all(np.isfinite(images.weight)):
        raise CaloInputError(f"the {what} holds {int(np.sum(~np.isfinite(images.weight)))} non-finite weight(s)")
    for label, name in ((1, "signal"), (0, "background")):
        sel = images.label == label
        if not sel.any():
            raise CaloInputError(f"the {what} has no {name} events (label {label})")
        total = float(images.weight[sel].sum())
        if not total > 0:
            samples = sorted({images.samples[i] for i in np.unique(images.sample_id[sel])})
            raise ZeroWeightError(
                f"the {what}'s {name} events (samples {samples}) have a total weight of {total:g}"
            )


def balanced_weights(weight: np.ndarray, label: np.ndarray) -> np.ndarray:
    """``w · (N/2) / W_class`` (float32): each class carries half of the total weight, mean weight 1.

    Raises:
        ZeroWeightError: a class with a total weight ≤ 0.
    """
    w = np.asarray(weight, dtype=np.float64)
    out = np.empty_like(w)
    n = w.size
    for c in (0, 1):
        sel = label == c
        tot = w[sel].sum()
        if not tot > 0:
            raise ZeroWeightError(f"class {c} has a total weight of {tot:g}")
        out[sel] = w[sel] * (0.5 * n / tot)
    return out.astype(np.float32)


def batch_loss(model: torch.nn.Module, b: Batch) -> tuple[torch.Tensor, int]:
    """The batch's weighted mean cross-entropy ``Σ w CE / B`` and its size ``B``."""
    return (F.cross_entropy(model(b.x), b.y, reduction="none") * b.w).sum() / b.y.numel(), b.y.numel()


@torch.inference_mode()
def validation_loss(model: torch.nn.Module, loader: SparseImageLoader) -> float:
    """``Σ w CE / Σ w`` over the loader's images, in eval mode."""
    model.eval()
    total, norm = 0.0, 0.0
    for b in loader:
        total += float((F.cross_entropy(model(b.x), b.y, reduction="none") * b.w).sum())
        norm += float(b.w.sum())
    return total / norm


@dataclass(frozen=True)
class InferenceRate:
    """How fast :func:`predict` scored (the loader included).

    Attributes:
        images: images scored.
        seconds: wall time (s).
    """

    images: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        """Images per second (NaN without a measurable time)."""
        return self.images / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (the keys of the written outputs, in their order)."""
        return {"images": self.images, "seconds": self.seconds, "images_per_s": self.images_per_s}


@torch.inference_mode()
def predict(model: CaloCNN, images: ImageSet, normaliser: Normaliser, device: torch.device | str,
            batch_size: int = 512, storage: str = "auto") -> tuple[np.ndarray, InferenceRate]:
    """Signal scores of every image (in order) and the inference rate.

    The score is the softmax signal probability, computed in float64 as sigmoid(l1 − l0) so that
    it does not saturate at 1 (float32 would tie every event with l1 − l0 > 17 at exactly 1).

    Args:
        model: the CNN.
        images: the images to score (the model's grid).
        normaliser: the model's input normaliser.
        device: where to score.
        batch_size: images per batch.
        storage: where the loader keeps the sparse set (:class:`SparseImageLoader`).

    Raises:
        ImageSizeError: images of another grid than the model's (a finer grid that merges into the
            model's, e.g. 64 × 64 files for a 32 × 32 network, is rebinned).
    """
    images = match_grid(images, model.spec, "the image file", "the model")
    dev = torch.device(device)
    model.to(dev).eval()
    loader = SparseImageLoader(images, normaliser, batch_size=batch_size, device=dev, storage=storage)
    out = torch.empty(len(images), dtype=torch.float64, device=dev)
    synchronize(dev)
    t0 = time.perf_counter()
    for b in loader:
        logits = model(b.x).double()
        out[b.rows] = torch.sigmoid(logits[:, 1] - logits[:, 0])
    synchronize(dev)
    return out.cpu().numpy(), InferenceRate(len(images), time.perf_counter() - t0)


@dataclass
class CnnTrainResult:
    """A trained CNN and how its training went.

    Attributes:
        fit: the result of the training core (model with the best weights, history, early
            stopping, device, run hash).
        normalisation: the input normalisation fitted on the training split.
        model_cfg: the ``calo.model`` settings of the network.
        seed: the training seed.
        torch_threads: torch CPU threads during training.
        n_train, n_validation: images in the training and validation splits.
        train_per_sample: training images per sample.
    """

    fit: FitResult
    normalisation: ImageNormalisation
    model_cfg: CaloModel
    seed: int
    torch_threads: int
    n_train: int
    n_validation: int
    train_per_sample: dict[str, int]

    @property
    def model(self) -> CaloCNN:
        """The network with the best epoch's weights, in eval mode."""
        model = self.fit.model
        assert isinstance(model, CaloCNN)
        return model

    @property
    def normaliser(self) -> Normaliser:
        """The per-channel input normaliser."""
        return self.normalisation.normaliser

    @property
    def history(self) -> list[dict[str, float]]:
        """Per epoch: ``epoch``, ``train_loss``, ``val_loss``, ``seconds``, ``cpu_seconds``, ``images_per_s``."""
        return self.fit.history

    @property
    def best_epoch(self) -> int:
        """The epoch (from 0) of the lowest validation loss."""
        return self.fit.best_epoch

    @property
    def best_val_loss(self) -> float:
        """The lowest validation loss."""
        return self.fit.best_val_loss

    @property
    def epochs_run(self) -> int:
        """Epochs in the history (a resumed run's included)."""
        return self.fit.epochs_run

    @property
    def train_images_per_s(self) -> float:
        """The median training rate over the epochs (images per wall second)."""
        return self.fit.rate_per_s

    @property
    def model_parameters(self) -> int:
        """Trainable and fixed parameters of the network."""
        return int(sum(p.numel() for p in self.fit.model.parameters()))

    def info(self) -> dict[str, Any]:
        """The summary stored in the model file: :meth:`to_dict` without the history and the
        normalisation."""
        return {
            "device": self.fit.device,
            "torch_threads": self.torch_threads,
            "seed": self.seed,
            "config_hash": self.fit.config_hash,
            "n_train": self.n_train,
            "n_validation": self.n_validation,
            "train_per_sample": dict(self.train_per_sample),
            "epochs_run": self.epochs_run,
            "resumed_from_epoch": self.fit.resumed_from_epoch,
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val_loss,
            "stopped_early": self.fit.stopped_early,
            "train_images_per_s": self.train_images_per_s,
            "model_parameters": self.model_parameters,
        }

    def to_dict(self) -> dict[str, Any]:
        """The ``history.json`` content: :meth:`info`, the history and the normalisation."""
        return {**self.info(), "history": self.history, "normalisation": self.normalisation.to_dict()}


def _run_hash(calo: CaloConfig, seed: int, normalisation: ImageNormalisation, train_set: ImageSet,
              val_set: ImageSet) -> str:
    """Identifies the configuration and data of a training run (checkpoints of another hash are
    not resumed)."""
    return config_hash({
        # max_epochs is left out so that a finished run can be extended by raising it
        "model": calo.model,
        "training": {k: v for k, v in calo.training.to_dict().items() if k not in ("threads", "max_epochs")},
        "image": calo.image, "split": calo.split, "normalisation": normalisation.to_dict()["scale"],
        "seed": seed, "data": [len(train_set), float(train_set.weight.sum()), len(val_set)],
    })


def train(
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
) -> CnnTrainResult:
    """Train the CNN on a training and a validation split.

    Args:
        cfg: the configuration (``calo``; the top-level ``seed``).
        train_set: the training images (e.g. ``images.split(cfg.calo.split, "train")``).
        val_set: the validation images (early stopping).
        seed: overrides the training seed (:func:`training_seed`).
        checkpoint: the checkpoint file (resume); ``None``: none.
        device: ``cpu``, ``cuda``, ... (default :func:`~analysis.ml.training.pick_device`).
        resume: continue after a matching checkpoint's epoch.
        progress: a progress bar (``None``: only on a terminal).
        on_epoch_end: ``(epoch, record)`` after each epoch.

    Returns:
        The :class:`CnnTrainResult`.

    Raises:
        CaloInputError, ZeroWeightError: a split without both classes or with bad weights.
    """
    calo, training = cfg.calo, cfg.calo.training
    seed = training_seed(cfg, seed)
    dev = pick_device(device)
    # the network's grid: calo.model.input_rebin x input_rebin pixels of the files summed
    train_set, val_set = train_set.rebin(calo.model.input_rebin), val_set.rebin(calo.model.input_rebin)
    with torch_threads(training.threads):
        check_training_set(train_set, "training split")
        check_training_set(val_set, "validation split")
        normalisation = ImageNormalisation.fit(
            train_set.images, calo.normalisation.transform,
            fitted_on={"split": "train", "samples": list(train_set.samples)},
        )
        w_train = balanced_weights(train_set.weight, train_set.label)
        w_val = balanced_weights(val_set.weight, val_set.label)
        train_loader = loader_from_config(train_set, normalisation.normaliser, training, dev, weights=w_train,
                                          shuffle=True, augment=True, seed=seed)
        val_loader = loader_from_config(val_set, normalisation.normaliser, training, dev, weights=w_val,
                                        shuffle=False, augment=False, seed=seed,
                                        batch_size=max(512, int(training.batch_size)))

        def epoch_batches(epoch: int) -> Iterable[Batch]:
            train_loader.set_epoch(epoch)
            return train_loader

        task = TrainingTask(n_train=len(train_set), n_batches=len(train_loader), epoch_batches=epoch_batches,
                            batch_loss=batch_loss, validation_loss=lambda model: validation_loss(model, val_loader),
                            unit="images")
        result = fit(
            name="calo CNN", build_model=lambda: build_model(train_set.spec, calo.model), task=task,
            settings=FitSettings(seed=seed, learning_rate=training.learning_rate, max_epochs=training.max_epochs,
                                 patience=training.patience, min_delta=training.min_delta),
            device=dev, checkpoint=checkpoint,
            config_hash=_run_hash(calo, seed, normalisation, train_set, val_set),
            normaliser=normalisation.to_dict(), resume=resume, progress=progress, on_epoch_end=on_epoch_end,
        )
        threads = torch.get_num_threads()
    return CnnTrainResult(
        fit=result, normalisation=normalisation, model_cfg=calo.model, seed=seed, torch_threads=threads,
        n_train=len(train_set), n_validation=len(val_set),
        train_per_sample={s: int(np.sum(train_set.sample_id == i)) for i, s in enumerate(train_set.samples)},
    )


def save_training(result: CnnTrainResult, output_dir: str | os.PathLike[str], *,
                  provenance: dict[str, Any] | None = None) -> Path:
    """Write ``calo_cnn.pt``, ``normalisation.json`` and ``history.json`` into ``output_dir``.

    Returns:
        The model file.
    """
    out = Path(output_dir)
    save_model(out / MODEL_FILE, result.model, result.normalisation, result.model_cfg, info=result.info(),
               provenance=provenance)
    write_json(out / "normalisation.json", result.normalisation.to_dict(), provenance=provenance)
    write_json(out / "history.json", result.to_dict(), provenance=provenance)
    return out / MODEL_FILE


def train_model(
    cfg: Config,
    image_files: Sequence[str | os.PathLike[str]],
    output_dir: str | os.PathLike[str],
    *,
    seed: int | None = None,
    device: str | torch.device | None = None,
    resume: bool = True,
    progress: bool | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> CnnTrainResult:
    """``hepline calo train``: train the CNN on image files, write the model, normalisation and history.

    The training and validation splits are read from the files (at most
    ``calo.training.max_events_per_sample`` events each); the checkpoint
    ``<output_dir>/calo_cnn.ckpt.pt`` lets an interrupted run resume.

    Args:
        cfg: the configuration.
        image_files: one image file per sample (:func:`~selections.rpv.cnn.images.make_images`).
        output_dir: where ``calo_cnn.pt``, ``normalisation.json``, ``history.json`` and the
            checkpoint go.
        seed, device, resume, progress, on_epoch_end: as for :func:`train`.

    Returns:
        The :class:`CnnTrainResult`.
    """
    calo = cfg.calo
    cap = calo.training.max_events_per_sample
    train_set = load_image_files(image_files, cap, split=(calo.split, "train"))
    val_set = load_image_files(image_files, cap, split=(calo.split, "validation"))
    out = Path(output_dir)
    result = train(cfg, train_set, val_set, seed=seed, checkpoint=out / CHECKPOINT_FILE, device=device,
                   resume=resume, progress=progress, on_epoch_end=on_epoch_end)
    record = provenance_record(stage="calo.train", config=cfg, seeds={"training": result.seed}, inputs=image_files,
                               extra={"device": result.fit.device, "torch_threads": result.torch_threads})
    save_training(result, out, provenance=record)
    log.info("trained: best epoch %d, val loss %.5f, %.1f images/s on %s", result.best_epoch + 1,
             result.best_val_loss, result.train_images_per_s, result.fit.device)
    return result
