"""The one training core of hepline's networks (RNNIP, DL1, the whole-detector CNN).

- :func:`fit`: the loop every network trains with: Adam, a weighted loss given by the
  caller, early stopping on the validation loss, a checkpoint after every epoch with resume,
  a progress bar, seeding and the device;
- :func:`seed_everything`, :func:`epoch_seed`, :func:`pick_device` (``cuda`` when present,
  else ``cpu``; the ``device`` argument or the ``HEPLINE_DEVICE`` environment variable
  override it), :func:`torch_threads`;
- :class:`EarlyStopping` on a monitored loss;
- :class:`Checkpoint` (model, optimizer, epoch, best metric, normaliser and config hash,
  written atomically) and :func:`save_torch_payload`.

Reproducibility and resume: the model is initialised after ``seed_everything(seed)``; at the
start of epoch ``e`` the torch RNG (dropout) is re-seeded with ``epoch_seed(seed, e)`` and
the caller's batches of that epoch come from ``numpy.random.default_rng([seed, e])``, so an
epoch depends only on the seed, the epoch number and the state at its start. A run
interrupted after epoch ``k`` and resumed from its checkpoint therefore ends with the same
weights as an uninterrupted run (on the same device and thread count). Re-seeding resets
torch's global RNG, a side effect callers should know of.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from analysis.core.atomic import atomic_path

log = logging.getLogger(__name__)

__all__ = [
    "DEVICE_ENV",
    "Checkpoint",
    "EarlyStopping",
    "FitResult",
    "FitSettings",
    "Resume",
    "TrainingTask",
    "epoch_seed",
    "fit",
    "pick_device",
    "save_torch_payload",
    "seed_everything",
    "state_dict_cpu",
    "synchronize",
    "torch_threads",
]

DEVICE_ENV = "HEPLINE_DEVICE"


# --------------------------------------------------------------------------- seeding, device


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and every CUDA device).

    Also asks cuDNN for deterministic kernels (``deterministic=True, benchmark=False``).
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def epoch_seed(seed: int, epoch: int) -> int:
    """The torch seed of epoch ``epoch`` of a run with base seed ``seed``."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0] % 2**63)


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else ``$HEPLINE_DEVICE`` if set, else ``cuda`` when present, else ``cpu``.

    Asking for CUDA on a machine without it raises ``RuntimeError`` instead of silently
    training on the CPU.
    """
    choice = device if device is not None else os.environ.get(DEVICE_ENV) or None
    if choice is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(choice)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {str(dev)!r} requested but CUDA is not available")
    return dev


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)`` (restored after); ``None``: unchanged.

    The RNNIP/DL1 networks are small: on a CPU, one intra-op thread per training process is
    usually fastest (see docs/taggers-models.md); parallelise over processes instead.
    """
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------- early stopping


class EarlyStopping:
    """Stop after ``patience`` epochs without a decrease of the monitored loss by > ``min_delta``."""

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        if patience < 1:
            raise ValueError("patience must be >= 1")
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.best = math.inf
        self.best_epoch = -1
        self.bad_epochs = 0
        self.should_stop = False

    def step(self, value: float, epoch: int) -> bool:
        """Record the loss of ``epoch``; return True if it is a new best."""
        if not math.isfinite(value):
            raise FloatingPointError(f"non-finite monitored loss {value} at epoch {epoch}")
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = float(value), int(epoch), 0
            return True
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            self.should_stop = True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {
            "patience": self.patience,
            "min_delta": self.min_delta,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "should_stop": self.should_stop,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)


# --------------------------------------------------------------------------- checkpoint


class Checkpoint:
    """A training checkpoint file, written atomically (``torch.save`` onto ``atomic_path``).

    The payload holds the model and optimizer state, the last finished epoch, the best
    monitored metric, the early-stopping state, the best weights so far, the loss history,
    the normaliser (as a dict) and the config hash; :meth:`load` uses ``weights_only=True``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def exists(self) -> bool:
        return self.path.is_file()

    def save(
        self,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        epoch: int,
        best_metric: float,
        normaliser: Mapping[str, Any] | None,
        config_hash: str,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        payload = {
            "format": "hepline-checkpoint-1",
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "epoch": int(epoch),
            "best_metric": float(best_metric),
            "normaliser": dict(normaliser) if normaliser is not None else None,
            "config_hash": config_hash,
            **dict(extra or {}),
        }
        with atomic_path(self.path) as tmp:
            torch.save(payload, tmp)

    def load(self, map_location: str | torch.device = "cpu") -> dict[str, Any]:
        return torch.load(self.path, map_location=map_location, weights_only=True)

    def restore(
        self,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        stopper: EarlyStopping,
        config_hash: str,
    ) -> Resume | None:
        """Load a compatible checkpoint into ``model``, ``optimizer`` and ``stopper``.

        Returns ``None`` when there is no checkpoint, or (with a warning) when it was written
        for another configuration/data hash; then training starts afresh and overwrites it.
        The payload must hold ``early_stopping``, ``history`` and ``best_state`` (as both the
        taggers' and the CNN's loops write them).
        """
        if not self.exists():
            return None
        state = self.load()
        if state.get("config_hash") != config_hash:
            log.warning("checkpoint %s was written for config/data hash %s, not %s; starting afresh",
                        self.path, state.get("config_hash"), config_hash)
            return None
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        stopper.load_state_dict(state["early_stopping"])
        epoch = int(state["epoch"])
        log.info("resuming from %s after epoch %d", self.path, epoch)
        return Resume(start_epoch=epoch + 1, resumed_from=epoch, history=list(state["history"]),
                      best_state=state["best_state"])


@dataclass
class Resume:
    """Where a resumed training continues: the next epoch, the loss history, the best weights."""

    start_epoch: int
    resumed_from: int
    history: list[dict[str, float]]
    best_state: dict[str, torch.Tensor] | None


def state_dict_cpu(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def save_torch_payload(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> None:
    """``torch.save`` onto an atomic temporary path."""
    with atomic_path(path) as tmp:
        torch.save(dict(payload), tmp)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); a no-op on the CPU. Call before timing."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------- the loop

BatchT = TypeVar("BatchT")


@dataclass(frozen=True)
class FitSettings:
    """The hyper-parameters of :func:`fit` (a network's config section provides them)."""

    seed: int
    learning_rate: float
    max_epochs: int
    patience: int
    min_delta: float = 0.0


@dataclass
class TrainingTask(Generic[BatchT]):
    """What a network contributes to :func:`fit`: its data and its loss.

    Attributes:
        n_train: training examples per epoch (jets, images), for the mean loss and the rate.
        n_batches: batches per epoch (for the progress bar).
        epoch_batches: ``epoch -> iterable of batches``; called after the torch RNG is
            re-seeded for the epoch; the batch order must come from ``(seed, epoch)`` only.
        batch_loss: ``(model, batch) -> (loss, n)``: the batch's mean loss (a scalar tensor
            that is back-propagated) and its number of examples.
        validation_loss: ``model -> loss`` over the validation set in eval mode; ``None``:
            early stopping monitors the training loss.
        unit: what an example is called in the logs and the history (``jets``, ``images``).
    """

    n_train: int
    n_batches: int
    epoch_batches: Callable[[int], Iterable[BatchT]]
    batch_loss: Callable[[nn.Module, BatchT], tuple[torch.Tensor, int]]
    validation_loss: Callable[[nn.Module], float] | None = None
    unit: str = "examples"


@dataclass
class FitResult:
    """What :func:`fit` returns: the network with its best weights and how training went.

    ``history`` holds one record per epoch: ``epoch``, ``train_loss``, ``val_loss``,
    ``seconds``, ``cpu_seconds`` and ``<unit>_per_s``.
    """

    model: nn.Module
    history: list[dict[str, float]]
    best_epoch: int
    best_val_loss: float
    stopped_early: bool
    resumed_from_epoch: int | None
    device: str
    unit: str = "examples"
    config_hash: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def epochs_run(self) -> int:
        """Epochs in the history (including those of a resumed run)."""
        return len(self.history)

    @property
    def rate_per_s(self) -> float:
        """Median training rate over the epochs (``<unit>`` per wall second)."""
        rates = [h[f"{self.unit}_per_s"] for h in self.history if math.isfinite(h[f"{self.unit}_per_s"])]
        return float(np.median(rates)) if rates else float("nan")


def fit(
    *,
    name: str,
    build_model: Callable[[], nn.Module],
    task: TrainingTask[Any],
    settings: FitSettings,
    device: torch.device,
    checkpoint: str | os.PathLike[str] | None,
    config_hash: str,
    normaliser: Mapping[str, Any] | None = None,
    resume: bool = True,
    progress: bool | None = None,
    postfix_every: int = 50,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> FitResult:
    """Train a network with Adam and early stopping; checkpoint and resume every epoch.

    The model is built after ``seed_everything(settings.seed)`` and moved to ``device``. Each
    epoch re-seeds torch with :func:`epoch_seed`, runs ``task.epoch_batches(epoch)`` through
    ``task.batch_loss`` (zero_grad, backward, step), then computes the validation loss
    (``task.validation_loss``, else the mean training loss). Early stopping keeps the weights
    of the best validation loss; they are loaded into the returned model (in eval mode).

    Args:
        name: the network's name in logs and the progress bar.
        build_model: builds the untrained network (called once, after seeding).
        task: the data and the loss of the network.
        settings: seed, learning rate, epochs, patience, minimal improvement.
        device: where to train (:func:`pick_device`).
        checkpoint: the checkpoint file, written atomically after every epoch; ``None``: none.
        config_hash: identifies the configuration and data; a checkpoint of another hash is
            ignored (with a warning) and overwritten.
        normaliser: the input normaliser (as a dict), stored in the checkpoint.
        resume: continue after the checkpoint's epoch when it matches ``config_hash``
            (a finished run returns at once).
        progress: show a progress bar (``None``: only on a terminal).
        postfix_every: show the batch loss every this many batches (it syncs the GPU).
        on_epoch_end: ``(epoch, record)`` after each epoch's checkpoint (tests interrupt
            training with it).

    Returns:
        The :class:`FitResult`.

    Raises:
        FloatingPointError: a non-finite loss.
    """
    seed = int(settings.seed)
    seed_everything(seed)
    model = build_model().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(settings.learning_rate))
    stopper = EarlyStopping(int(settings.patience), float(settings.min_delta))
    history: list[dict[str, float]] = []
    best_state: dict[str, torch.Tensor] | None = None
    start_epoch, resumed_from = 0, None
    ckpt = Checkpoint(checkpoint) if checkpoint is not None else None
    restored = (ckpt.restore(model=model, optimizer=optimizer, stopper=stopper, config_hash=config_hash)
                if ckpt is not None and resume else None)
    if restored is not None:
        start_epoch, resumed_from = restored.start_epoch, restored.resumed_from
        history, best_state = restored.history, restored.best_state

    max_epochs = int(settings.max_epochs)
    rate_key = f"{task.unit}_per_s"
    for epoch in range(start_epoch, max_epochs):
        if stopper.should_stop:
            break
        torch.manual_seed(epoch_seed(seed, epoch))
        batches = task.epoch_batches(epoch)
        model.train()
        synchronize(device)
        t0, c0 = time.perf_counter(), time.process_time()
        run_loss = torch.zeros((), dtype=torch.float64, device=device)
        bar = tqdm(total=task.n_batches, desc=f"{name} epoch {epoch + 1}/{max_epochs}", unit="batch",
                   leave=False, disable=(not progress) if progress is not None else None)
        try:
            for i, batch in enumerate(batches):
                loss, n = task.batch_loss(model, batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                run_loss += loss.detach().double() * n
                bar.update(1)
                if i % postfix_every == 0 and not bar.disable:
                    bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        finally:
            bar.close()
        synchronize(device)
        seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
        train_loss = float(run_loss) / task.n_train
        val_loss = task.validation_loss(model) if task.validation_loss is not None else train_loss
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            raise FloatingPointError(
                f"{name}: non-finite loss at epoch {epoch + 1} (train {train_loss}, val {val_loss})")
        if stopper.step(val_loss, epoch):
            best_state = state_dict_cpu(model)
        record = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "seconds": seconds,
                  rate_key: task.n_train / seconds if seconds > 0 else float("nan"),
                  "cpu_seconds": cpu_seconds}
        history.append(record)
        log.info("%s epoch %d/%d: train loss %.5f, val loss %.5f, %.1f %s/s%s", name, epoch + 1, max_epochs,
                 train_loss, val_loss, record[rate_key], task.unit,
                 " (best)" if stopper.best_epoch == epoch else "")
        if ckpt is not None:
            ckpt.save(model=model, optimizer=optimizer, epoch=epoch, best_metric=stopper.best,
                      normaliser=normaliser, config_hash=config_hash,
                      extra={"early_stopping": stopper.state_dict(), "history": history,
                             "best_state": best_state})
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)
        if stopper.should_stop:
            log.info("%s: early stopping after epoch %d (best epoch %d, val loss %.5f)", name, epoch + 1,
                     stopper.best_epoch + 1, stopper.best)
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return FitResult(model=model, history=history, best_epoch=stopper.best_epoch, best_val_loss=stopper.best,
                     stopped_early=stopper.should_stop, resumed_from_epoch=resumed_from, device=str(device),
                     unit=task.unit, config_hash=config_hash)
