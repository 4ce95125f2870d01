"""The input normaliser of every network: fitted on the training split, saved with the model.

``y = (f(x) − mean) / std`` per feature (the last axis), with ``f`` the identity (``linear``)
or ``log1p`` (for energies spanning decades, as calorimeter cells). :meth:`Normaliser.fit`
standardises (weighted mean and standard deviation over the valid entries); a network that
only scales (a sparse image, whose empty pixels must stay zero) builds one with ``mean = 0``
and its own ``std``. The dict form (:meth:`Normaliser.to_dict`) is stored in the model file
and the checkpoint, so a model is never applied with another normalisation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from analysis.core.checks import check_finite
from analysis.core.errors import InputError, ModelMismatchError

__all__ = ["TRANSFORMS", "Normaliser"]

#: the transforms ``f`` applied before the affine step
TRANSFORMS = ("linear", "log1p")


@dataclass
class Normaliser:
    """Per-feature ``(f(x) − mean) / std`` with the feature names attached.

    Attributes:
        names: one name per feature (the last axis of the inputs).
        mean: per-feature shift (after ``f``).
        std: per-feature scale (after ``f``); never 0.
        transform: ``"linear"`` (``f(x) = x``) or ``"log1p"`` (``f(x) = log(1 + max(x, 0))``).
    """

    names: list[str]
    mean: np.ndarray
    std: np.ndarray
    transform: Literal["linear", "log1p"] = "linear"

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORMS:
            raise InputError(f"unknown normalisation transform {self.transform!r}; known: {TRANSFORMS}")

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        mask: np.ndarray | None = None,
        names: Sequence[str] | None = None,
        weights: np.ndarray | None = None,
        *,
        source: str = "training set",
    ) -> Normaliser:
        """Standardise: the (weighted) mean and standard deviation of ``x[mask]`` per feature.

        Args:
            x: values with the features on the last axis, e.g. ``(n_jets, n_tracks, F)``.
            mask: the valid entries (shape ``x.shape[:-1]``); default: all.
            names: feature names (default ``f0, f1, ...``).
            weights: one weight per row of ``mask`` (per jet for per-track features).
            source: names the data in errors.

        A feature with zero spread gets ``std = 1``.

        Raises:
            InputError: no valid entry, or names that do not match the features.
            NonFiniteInputError: NaN/inf in a valid entry (naming the feature).
        """
        x = np.asarray(x)
        n_feat = x.shape[-1]
        names = list(names) if names is not None else [f"f{i}" for i in range(n_feat)]
        if len(names) != n_feat:
            raise InputError(f"{source}: {len(names)} names for {n_feat} features")
        m = np.ones(x.shape[:-1], bool) if mask is None else np.asarray(mask, bool)
        vals = x[m].astype(np.float64)
        if vals.shape[0] == 0:
            raise InputError(f"{source}: cannot fit the normaliser of {names}: no valid entries")
        check_finite(vals, names, source=source)
        if weights is None:
            w = np.ones(vals.shape[0])
        else:
            wa = np.asarray(weights, dtype=np.float64)
            wa = wa.reshape(wa.shape + (1,) * (m.ndim - wa.ndim))  # per jet -> per track
            w = np.broadcast_to(wa, m.shape)[m]
        mean = np.average(vals, axis=0, weights=w)
        std = np.sqrt(np.average((vals - mean) ** 2, axis=0, weights=w))
        std = np.where(std > 1e-12, std, 1.0)
        return cls(names, mean, std)

    def f(self, x: np.ndarray) -> np.ndarray:
        """The transform ``f`` (float64)."""
        v = np.asarray(x, dtype=np.float64)
        return np.log1p(np.maximum(v, 0.0)) if self.transform == "log1p" else v

    def apply(self, x: np.ndarray, mask: np.ndarray | None = None, *, source: str = "input") -> np.ndarray:
        """The normalised float32 copy of ``x`` (features on the last axis); entries outside
        ``mask`` are 0.

        Raises:
            ModelMismatchError: ``x`` has another number of features.
            NonFiniteInputError: a valid entry normalises to NaN/inf (naming the feature).
        """
        v = self.f(x)
        if v.shape[-1] != len(self.names):
            raise ModelMismatchError(f"{source}: expected {len(self.names)} features {self.names}, "
                                     f"got {v.shape[-1]}")
        out = ((v - self.mean) / self.std).astype(np.float32)
        m = np.ones(v.shape[:-1], bool) if mask is None else np.asarray(mask, bool)
        out[~m] = 0.0
        check_finite(out, self.names, source=source, mask=m)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, stored with the model."""
        d: dict[str, Any] = {"names": list(self.names), "mean": np.asarray(self.mean).tolist(),
                             "std": np.asarray(self.std).tolist()}
        if self.transform != "linear":
            d["transform"] = self.transform
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "<normaliser>") -> Normaliser:
        """The normaliser of :meth:`to_dict` (``source`` names the file in errors)."""
        try:
            names = list(d["names"])
            mean, std = np.asarray(d["mean"], float), np.asarray(d["std"], float)
        except (KeyError, TypeError) as exc:
            raise ModelMismatchError(f"{source}: not a normaliser (missing {exc})") from exc
        if mean.shape != (len(names),) or std.shape != (len(names),):
            raise ModelMismatchError(f"{source}: {len(names)} names but mean {mean.shape}, std {std.shape}")
        return cls(names, mean, std, d.get("transform", "linear"))
