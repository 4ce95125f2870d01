"""MV2: a boosted decision tree (XGBoost) separating b jets from light + c jets.

Inputs: a high-level feature matrix (jet ``pt``, ``abs_eta``, the SV1 features, the
IP2D/IP3D log-likelihood ratios, ...), column names stored in the model and matched by
name at prediction time.

Training sample (:func:`mv2_training_weights`): tau jets are not used. The background is
light + c, with the c jets reweighted so that they make up the configured fraction
``tagger_models.mv2.c_fraction`` (default 0.08; physics reference: 7-10%) of the weighted
background, ``s_c = f_c W_light / ((1 - f_c) W_c)``; the b jets are then scaled to the total
background weight (balanced classes). ``c_fraction = 0`` drops the c jets.

Model: ``binary:logistic`` with ``tree_method="hist"`` (on CUDA when present), early
stopping on the validation log-loss; the booster is trimmed to its best iteration and saved
as XGBoost JSON with the feature names and a ``hepline`` attribute (JSON: config, feature
names, c-jet scale, training info).

Outputs: :func:`predict_mv2` returns the BDT score ``s = P(b)`` in [0, 1] (probability of the
balanced training mixture). The **MV2 discriminant** is its logit,
``mv2_discriminant(s) = ln(s / (1 - s))`` (clipped at 1e-7 from 0 and 1), a monotonic map of
the score, so cuts on either give the same working points; the logit spreads the high-purity
region (s → 1) where the working points sit.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xgboost as xgb

from analysis.core.atomic import atomic_path
from analysis.core.config.taggers import TaggerModelsMv2
from analysis.core.errors import ModelMismatchError
from analysis.ml.training import pick_device
from taggers.training import (
    MissingClassError,
    as_feature_matrix,
    check_model_compatible,
    class_description,
    labels_to_classes,
)

if TYPE_CHECKING:
    from taggers.nn.dl1 import DL1Data

log = logging.getLogger(__name__)

__all__ = [
    "MODEL_FILE",
    "MV2Model",
    "load_mv2",
    "mv2_discriminant",
    "mv2_training_weights",
    "predict_mv2",
    "train_mv2",
]

MODEL_KIND = "mv2"
MODEL_FILE = "mv2.json"
SCORE_EPS = 1e-7
_B, _C, _LIGHT = 0, 1, 2


@dataclass
class MV2Model:
    """A trained MV2 booster with its metadata (``feature_names``, ``config``, ...)."""

    booster: xgb.Booster
    meta: dict[str, Any]
    path: Path | None = None

    @property
    def feature_names(self) -> list[str]:
        """The input columns, in the booster's order."""
        return list(self.meta["feature_names"])

    @property
    def n_trees(self) -> int:
        """Boosting rounds kept (the best iteration with early stopping)."""
        return int(self.meta["n_trees"])


def mv2_training_weights(
    label: Any, weight: Any | None, c_fraction: float, *, what: str = "MV2 training set"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """``(use, target, weight, c_scale)``: the jets used (b, c, light), their target (1 for b)
    and training weights (c jets scaled by ``c_scale`` to ``c_fraction`` of the background,
    b jets scaled to the background total). Raises :class:`MissingClassError` naming b, light
    or (with ``c_fraction > 0``) c when absent."""
    if not 0.0 <= c_fraction < 1.0:
        raise ValueError(f"c_fraction must lie in [0, 1), got {c_fraction}")
    cls = labels_to_classes(label)
    w = np.ones(cls.shape, np.float64) if weight is None else np.asarray(weight, np.float64)
    needed = [_B, _LIGHT] + ([_C] if c_fraction > 0 else [])
    totals = {c: float(w[cls == c].sum()) for c in (_B, _C, _LIGHT)}
    for c in needed:
        if not np.any(cls == c) or totals[c] <= 0:
            raise MissingClassError(
                f"flavour class {class_description(c)} has no jets in the {what}"
            )
    use = np.isin(cls, needed)
    n_tau = int(np.count_nonzero(cls == 3))
    if n_tau:
        log.debug("%s: %d tau jets not used by MV2", what, n_tau)
    c_scale = (
        c_fraction * totals[_LIGHT] / ((1.0 - c_fraction) * totals[_C]) if c_fraction > 0 else 0.0
    )
    bkg_total = totals[_LIGHT] + c_scale * totals[_C]
    b_scale = bkg_total / totals[_B]
    cu, wu = cls[use], w[use]
    scale = np.where(cu == _B, b_scale, np.where(cu == _C, c_scale, 1.0))
    return use, (cu == _B).astype(np.float32), (wu * scale).astype(np.float32), float(c_scale)


def train_mv2(
    train: DL1Data,
    val: DL1Data | None,
    cfg: TaggerModelsMv2,
    outdir: str | os.PathLike[str],
    *,
    feature_names: Sequence[str] | None = None,
    device: str | None = None,
    n_threads: int | None = None,
) -> MV2Model:
    """Train MV2 (its own XGBoost trainer) and write ``<outdir>/mv2.json`` (XGBoost JSON with
    the feature names and the ``hepline`` metadata attribute).

    Args:
        train: the training jets, as for :func:`taggers.nn.dl1.train_dl1`.
        val: the validation jets (optional); they drive early stopping
            (``early_stopping_rounds``).
        cfg: ``tagger_models.mv2``.
        outdir: the model directory.
        feature_names: selects and orders the inputs.
        device: ``cpu``/``cuda`` (default: CUDA when present).
        n_threads: XGBoost threads.

    Returns:
        The trained :class:`MV2Model` (its ``meta`` holds the trees kept, the c-jet scale and
        the last evaluation losses).
    """
    c = cfg
    tr = as_feature_matrix(
        train, feature_names, what="MV2 training set", need_labels=True, kind="MV2"
    )
    names = tr.names
    fc = float(c.c_fraction)
    use, y, w, c_scale = mv2_training_weights(tr.label, tr.weight, fc)
    dtrain = xgb.DMatrix(tr.x[use], label=y, weight=w, feature_names=names)
    evals = [(dtrain, "train")]
    if val is not None:
        va = as_feature_matrix(val, names, what="MV2 validation set", need_labels=True, kind="MV2")
        vuse, vy, vw, _ = mv2_training_weights(va.label, va.weight, fc, what="MV2 validation set")
        evals.append((xgb.DMatrix(va.x[vuse], label=vy, weight=vw, feature_names=names), "val"))
    dev = pick_device(device).type
    params = {
        "objective": "binary:logistic",
        "eval_metric": "logloss",
        "tree_method": "hist",
        "device": "cuda" if dev == "cuda" else "cpu",
        "max_depth": int(c.max_depth),
        "eta": float(c.learning_rate),
        "subsample": float(c.subsample),
        "colsample_bytree": float(c.colsample_bytree),
        "min_child_weight": float(c.min_child_weight),
        "seed": int(c.seed),
    }
    if n_threads is not None:
        params["nthread"] = int(n_threads)
    rounds = int(c.early_stopping_rounds)
    history: dict[str, Any] = {}
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=int(c.n_estimators),
        evals=evals,
        evals_result=history,
        early_stopping_rounds=rounds if (rounds > 0 and val is not None) else None,
        verbose_eval=False,
    )
    best = int(getattr(booster, "best_iteration", booster.num_boosted_rounds() - 1))
    if val is not None and rounds > 0:
        booster = booster[: best + 1]
    meta = {
        "kind": MODEL_KIND,
        "feature_names": names,
        "config": c.to_dict(),
        "c_fraction": fc,
        "c_scale": c_scale,
        "n_trees": int(booster.num_boosted_rounds()),
        "target": "b (HadronConeExclTruthLabelID 5) against light (0) + c (4); tau (15) unused",
        "score": "P(b) in [0, 1]; discriminant = logit(score)",
        "history": {
            k: {m: [float(v) for v in vals[-1:]] for m, vals in d.items()}
            for k, d in history.items()
        },
    }
    booster.set_attr(hepline=json.dumps(meta))
    path = Path(outdir) / MODEL_FILE
    with atomic_path(path) as tmp:
        booster.save_model(str(tmp))
    log.info(
        "MV2: %d trees, %d jets used, c scale %.4g, saved %s",
        meta["n_trees"],
        int(use.sum()),
        c_scale,
        path,
    )
    return MV2Model(booster, meta, path)


def load_mv2(
    path: str | os.PathLike[str],
    *,
    features: Sequence[str] | None = None,
) -> MV2Model:
    """Load a model written by :func:`train_mv2` (feature list checked when given).

    Raises:
        FileNotFoundError: no such file.
        ModelMismatchError: not a hepline MV2 model, or other features.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"MV2 model file not found: {p}")
    booster = xgb.Booster()
    booster.load_model(str(p))
    raw = booster.attr("hepline")
    if raw is None:
        raise ModelMismatchError(
            f"{p} is not an MV2 model written by hepline (no 'hepline' attribute)"
        )
    meta = json.loads(raw)
    check_model_compatible(
        MODEL_KIND, meta["feature_names"], features=features, source=str(p)
    )
    return MV2Model(booster, meta, p)


def predict_mv2(model_or_path: MV2Model | str | os.PathLike[str], data: DL1Data) -> np.ndarray:
    """BDT score P(b) in [0, 1] (float32, one per jet, tau jets included).

    ``data`` as for :func:`train_mv2`; its columns are matched to the model's by name.
    """
    model = model_or_path if isinstance(model_or_path, MV2Model) else load_mv2(model_or_path)
    fm = as_feature_matrix(data, model.feature_names, what="MV2 test set", kind="MV2")
    booster = model.booster
    try:
        booster.set_param({"device": "cpu"})  # a DMatrix on the host: predict there
    except xgb.core.XGBoostError:  # pragma: no cover - old boosters
        pass
    return booster.predict(xgb.DMatrix(fm.x, feature_names=fm.names)).astype(np.float32)


def mv2_discriminant(score: Any, eps: float = SCORE_EPS) -> np.ndarray:
    """The MV2 discriminant ``ln(s / (1 - s))`` with ``s`` clipped to ``[eps, 1 - eps]``."""
    s = np.clip(np.asarray(score, dtype=np.float64), eps, 1.0 - eps)
    return np.log(s) - np.log1p(-s)

