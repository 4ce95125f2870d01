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
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from analysis.core.atomic import atomic_path
from selections.rpv.cnn.images import (
    CaloInputError,
    ChannelNormaliser,
    ImageSizeError,
    ImageSpec,
    ModelMismatchError,
)

MODEL_KIND = "hepline-calo-cnn-1"
DEFAULT_MODEL = {"filters": 128, "n_conv": 3, "dense": 512, "dropout": 0.5, "circular_phi": False}


class CaloCNN(nn.Module):
    """``n_conv`` × [conv 3×3, ReLU, max-pool 2, dropout] → dense → ReLU → dropout → 2 logits."""

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
        if x.dim() != 4 or tuple(x.shape[1:]) != self.spec.shape:
            raise ImageSizeError(
                f"input images have shape {tuple(x.shape[1:]) if x.dim() == 4 else tuple(x.shape)} "
                f"but the model expects (channels, eta, phi) = {self.spec.shape} "
                f"({self.spec.describe()})"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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


def model_options(model_cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    opts = dict(DEFAULT_MODEL)
    for key, value in (model_cfg or {}).items():
        if key not in DEFAULT_MODEL:
            raise CaloInputError(f"unknown calo.model option {key!r}; known: {sorted(DEFAULT_MODEL)}")
        opts[key] = value
    return opts


def build_model(spec: ImageSpec, model_cfg: Mapping[str, Any] | None = None) -> CaloCNN:
    return CaloCNN(spec, **model_options(model_cfg))


def save_model(path: str | os.PathLike[str], model: CaloCNN, normaliser: ChannelNormaliser,
               model_cfg: Mapping[str, Any], info: Mapping[str, Any] | None = None, *,
               provenance: Mapping[str, Any] | None = None) -> None:
    """Write the model file atomically (weights on CPU, config, image grid, normalisation);
    ``provenance`` goes to the sidecar ``<path>.provenance.json`` after it."""
    model.spec.check_same(normaliser.spec, "the normalisation", "the model")
    payload = {
        "kind": MODEL_KIND,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "model_cfg": model_options(model_cfg),
        "image": model.spec.to_dict(),
        "normalisation": normaliser.to_dict(),
        "info": dict(info or {}),
    }
    with atomic_path(path, provenance=provenance) as tmp:
        torch.save(payload, tmp)


def load_model(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    *,
    normaliser: ChannelNormaliser | str | os.PathLike[str] | None = None,
) -> tuple[CaloCNN, ChannelNormaliser, dict[str, Any]]:
    """Load a model file; returns ``(model in eval mode, its normaliser, info)``.

    With ``normaliser`` (an object or a JSON file) it must be the one stored with the model,
    else :class:`ModelMismatchError`.
    """
    p = Path(path)
    if not p.is_file():
        raise CaloInputError(f"model file not found: {p}")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelMismatchError(f"{p}: not a readable torch model file ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("kind") != MODEL_KIND:
        got = payload.get("kind") if isinstance(payload, dict) else type(payload).__name__
        raise ModelMismatchError(f"{p}: not a calo CNN model file (kind {got!r})")
    spec = ImageSpec.from_dict(payload["image"])
    stored = ChannelNormaliser.from_dict(payload["normalisation"], source=f"{p} (stored normalisation)")
    if normaliser is not None:
        given = normaliser if isinstance(normaliser, ChannelNormaliser) else ChannelNormaliser.load(normaliser)
        check_normaliser_matches(stored, given, model_source=str(p))
    model = build_model(spec, payload["model_cfg"])
    model.load_state_dict(payload["state_dict"])
    model.to(device).eval()
    return model, stored, dict(payload.get("info", {}), model_cfg=payload["model_cfg"])


def check_normaliser_matches(stored: ChannelNormaliser, given: ChannelNormaliser, *, model_source: str) -> None:
    """Raise :class:`ModelMismatchError` unless ``given`` equals the model's normalisation."""
    problems = []
    if given.spec != stored.spec:
        problems.append(f"image grid {given.spec.describe()} != model's {stored.spec.describe()}")
    if given.transform != stored.transform:
        problems.append(f"transform {given.transform!r} != model's {stored.transform!r}")
    if given.scale.shape != stored.scale.shape or not torch.allclose(
        torch.as_tensor(given.scale), torch.as_tensor(stored.scale), rtol=1e-6, atol=0
    ):
        problems.append(f"channel scales {list(map(float, given.scale))} != model's "
                        f"{list(map(float, stored.scale))}")
    if problems:
        raise ModelMismatchError(
            f"the normalisation file does not match model {model_source} (it was fitted on another "
            "training set or image grid): " + "; ".join(problems)
        )
