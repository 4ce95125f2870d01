"""Training utilities shared by every network in hepline (taggers, calorimeter CNN).

- :func:`seed_everything`, :func:`epoch_seed`, :func:`pick_device` (``cuda`` when present,
  else ``cpu``; the ``device`` argument or the ``HEPLINE_DEVICE`` environment variable
  override it), :func:`torch_threads`;
- :class:`EarlyStopping` on a monitored loss;
- :class:`Checkpoint` (model, optimizer, epoch, best metric, normaliser and config hash,
  written atomically) and :func:`save_torch_payload`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from analysis.core.atomic import atomic_path

log = logging.getLogger(__name__)

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
