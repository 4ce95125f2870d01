"""The whole-detector CNN (Bhimji et al., arXiv:1711.03573) and its model file.

Default network (64 × 64 × 3 input): 3 × [conv 3×3 with 128 filters ("same" padding), ReLU,
max-pool 2, dropout 0.5] → flatten → dense 512 → ReLU → dropout 0.5 → 2 logits (background,
signal). The score is the softmax probability of the signal class. ``filters``, ``n_conv``,
``dense`` and ``dropout`` come from ``calo.model`` (small values for tests); with
``circular_phi`` the φ axis is padded periodically instead of with zeros.

A model file (:func:`save_model`, ``torch.save``) holds the weights, the model config, the
image grid and the per-channel normalisation fitted on the training split, so that
:func:`load_model` can refuse images or normalisation files that do not belong to it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from analysis.core.atomic import atomic_path
from analysis.core.config.rpv import CaloModel
from analysis.core.errors import ModelMismatchError
from analysis.ml.normaliser import Normaliser
from selections.rpv.cnn.images import CaloInputError, ImageNormalisation, ImageSizeError, ImageSpec

__all__ = [
    "MODEL_KIND",
    "CaloCNN",
    "LoadedModel",
    "build_model",
    "check_normalisation_matches",
    "load_model",
    "read_model_payload",
    "save_model",
]

MODEL_KIND = "hepline-calo-cnn-1"


class CaloCNN(nn.Module):
    """``n_conv`` × [conv 3×3, ReLU, max-pool 2, dropout] → dense → ReLU → dropout → 2 logits.

    Args:
        spec: the input image grid.
        filters: convolution filters per layer.
        n_conv: convolution layers (each halves the grid).
        dense: units of the dense layer.
        dropout: dropout probability.
        circular_phi: pad φ periodically instead of with zeros.

    Raises:
        ImageSizeError: the grid is too small for ``n_conv`` max-pool layers.
    """

    def __init__(self, spec: ImageSpec, filters: int = 128, n_conv: int = 3, dense: int = 512,
                 dropout: float = 0.5, circular_phi: bool = False) -> None:
        super().__init__()
        h, w = spec.n_eta, spec.n_phi
        for _ in range(n_conv):
            h, w = h // 2, w // 2
        if h < 1 or w < 1:
            raise ImageSizeError(
                f"a {spec.n_eta} x {spec.n_phi} image is too small for {n_conv} max-pool layers"
            )
        self.spec = spec
        self.circular_phi = bool(circular_phi)
        # conv padding: (eta, phi); with circular_phi the phi padding is done in forward()
        pad = (1, 0) if circular_phi else (1, 1)
        chans = [spec.n_channels] + [filters] * n_conv
        self.convs = nn.ModuleList(
            nn.Conv2d(cin, cout, kernel_size=3, padding=pad) for cin, cout in itertools.pairwise(chans)
        )
        self.drop = nn.Dropout(dropout)
        self.flat_features = filters * h * w
        self.fc = nn.Linear(self.flat_features, dense)
        self.out = nn.Linear(dense, 2)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`ImageSizeError` unless ``x`` is ``(B, C, n_eta, n_phi)`` of the model's grid."""
        if x.dim() != 4 or tuple(x.shape[1:]) != self.spec.shape:
            raise ImageSizeError(
                f"input images have shape {tuple(x.shape[1:]) if x.dim() == 4 else tuple(x.shape)} "
                f"but the model expects (channels, eta, phi) = {self.spec.shape} "
                f"({self.spec.describe()})"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The two logits (background, signal) of each image."""
        self.check_input(x)
        for conv in self.convs:
            if self.circular_phi:
                x = F.pad(x, (1, 1, 0, 0), mode="circular")
            x = self.drop(F.max_pool2d(F.relu(conv(x)), 2))
        x = torch.flatten(x, 1)
        return self.out(self.drop(F.relu(self.fc(x))))

    @torch.no_grad()
    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Signal probability (softmax of the two logits)."""
        return torch.softmax(self(x), dim=1)[:, 1]


def build_model(spec: ImageSpec, model: CaloModel) -> CaloCNN:
    """The (untrained) CNN for images of ``spec`` with the ``calo.model`` settings."""
    return CaloCNN(spec, filters=model.filters, n_conv=model.n_conv, dense=model.dense, dropout=model.dropout,
                   circular_phi=model.circular_phi)


def save_model(path: str | os.PathLike[str], model: CaloCNN, normalisation: ImageNormalisation,
               model_cfg: CaloModel, info: Mapping[str, Any] | None = None, *,
               provenance: Mapping[str, Any] | None = None) -> None:
    """Write the model file atomically.

    Args:
        path: the model file.
        model: the network (weights stored on the CPU).
        normalisation: its input normalisation (same image grid).
        model_cfg: the ``calo.model`` settings it was built with.
        info: training summary stored with it.
        provenance: written to the sidecar ``<path>.provenance.json`` after the file.

    Raises:
        ImageSizeError: the normalisation is for another grid.
    """
    model.spec.check_same(normalisation.spec, "the normalisation", "the model")
    payload = {
        "kind": MODEL_KIND,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "model_cfg": model_cfg.to_dict(),
        "image": model.spec.to_dict(),
        "normalisation": normalisation.to_dict(),
        "info": dict(info or {}),
    }
    with atomic_path(path, provenance=provenance) as tmp:
        torch.save(payload, tmp)


@dataclass
class LoadedModel:
    """A model file read back (:func:`load_model`).

    Attributes:
        model: the network, in eval mode on the requested device.
        normalisation: the normalisation stored with it.
        model_cfg: the ``calo.model`` settings it was built with.
        info: the training summary stored with it (``n_train``, ``best_epoch``, ...).
        path: the file.
    """

    model: CaloCNN
    normalisation: ImageNormalisation
    model_cfg: CaloModel
    info: dict[str, Any]
    path: str

    @property
    def normaliser(self) -> Normaliser:
        """The per-channel normaliser of the inputs."""
        return self.normalisation.normaliser


def read_model_payload(path: str | os.PathLike[str], kind: str, what: str) -> dict[str, Any]:
    """The stored dict of a torch model file of ``kind`` (read with ``weights_only=True``).

    Raises:
        CaloInputError: no such file.
        ModelMismatchError: not a readable torch file, or a model file of another kind
            (``what`` names the expected one in the message).
    """
    p = Path(path)
    if not p.is_file():
        raise CaloInputError(f"model file not found: {p}")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelMismatchError(f"{p}: not a readable torch model file ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("kind") != kind:
        got = payload.get("kind") if isinstance(payload, dict) else type(payload).__name__
        raise ModelMismatchError(f"{p}: not a {what} model file (kind {got!r})")
    return payload


def load_model(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    *,
    normalisation: str | os.PathLike[str] | None = None,
) -> LoadedModel:
    """Load a model file.

    Args:
        path: the model file (:func:`save_model`).
        device: where to put the network.
        normalisation: a ``normalisation.json`` that must be the one stored with the model.

    Returns:
        The :class:`LoadedModel` (network in eval mode).

    Raises:
        CaloInputError: no such file.
        ModelMismatchError: not a model file, or ``normalisation`` does not match it.
    """
    p = Path(path)
    payload = read_model_payload(p, MODEL_KIND, "calo CNN")
    spec = ImageSpec.from_dict(payload["image"])
    stored = ImageNormalisation.from_dict(payload["normalisation"], source=f"{p} (stored normalisation)")
    if normalisation is not None:
        check_normalisation_matches(stored, ImageNormalisation.load(normalisation), model_source=str(p))
    model_cfg = CaloModel.from_dict({"input_rebin": 1, **payload["model_cfg"]})  # files before input_rebin
    model = build_model(spec, model_cfg)
    model.load_state_dict(payload["state_dict"])
    model.to(device).eval()
    return LoadedModel(model, stored, model_cfg, dict(payload.get("info", {})), str(path))


def check_normalisation_matches(stored: ImageNormalisation, given: ImageNormalisation, *, model_source: str) -> None:
    """Raise :class:`ModelMismatchError` unless ``given`` equals the model's normalisation
    (same grid and transform, scales equal to a relative 1e-6)."""
    problems = []
    if given.spec != stored.spec:
        problems.append(f"image grid {given.spec.describe()} != model's {stored.spec.describe()}")
    if given.transform != stored.transform:
        problems.append(f"transform {given.transform!r} != model's {stored.transform!r}")
    if given.scale.shape != stored.scale.shape or not np.allclose(given.scale, stored.scale, rtol=1e-6, atol=0):
        problems.append(f"channel scales {list(map(float, given.scale))} != model's "
                        f"{list(map(float, stored.scale))}")
    if problems:
        raise ModelMismatchError(
            f"the normalisation file does not match model {model_source} (it was fitted on another "
            "training set or image grid): " + "; ".join(problems)
        )
