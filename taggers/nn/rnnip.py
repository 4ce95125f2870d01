"""RNNIP: a recurrent impact-parameter tagger (ATL-PHYS-PUB-2017-003), in PyTorch.

Inputs per track (at most ``n_max`` tracks per jet, sorted by |sd0| descending, valid tracks
first): the four continuous features :data:`CONTINUOUS_FEATURES` (``sd0, sz0, pt_frac, dr``)
and the track grade (an integer in ``[0, n_grades)``; padded entries carry ``n_grades``).

Network (:class:`RNNIP`):

1. the continuous inputs are standardised inside the model with the training-set mean and
   std of valid tracks (buffers ``mean``/``std``; the same numbers are stored as the
   ``normaliser`` dict in the model file), and padded entries are set to 0;
2. the grade goes through ``nn.Embedding(n_grades + 1, embedding_dim, padding_idx=n_grades)``
   and is concatenated to the 4 continuous inputs;
3. an LSTM (``lstm_units``, default 25) runs over the *packed* sequence
   (``pack_padded_sequence`` with lengths = number of valid tracks); its last hidden state
   is the jet representation;
4. **jets without tracks**: ``pack_padded_sequence`` needs lengths >= 1, so such jets are
   packed with length 1 (a zero input) and their LSTM output is then *replaced* by a
   learned parameter ``no_track`` (the "no track" state, one vector of ``lstm_units``);
   every zero-track jet thus gets the same, trained, representation;
5. dropout (default 0.2), then a dense layer to 4 logits in the class order
   :data:`CLASS_NAMES` = (b, c, light, tau); :data:`LABEL_TO_CLASS` maps
   ``HadronConeExclTruthLabelID`` 5→0, 4→1, 0→2, 15→3.

``forward(..., packed=False)`` runs the LSTM over the padded tensor and gathers the output
at the last valid track instead (the masked variant exported to ONNX); both give the same
numbers because the valid tracks form a prefix of each row.

Training (:func:`train_rnnip`): through the training core :func:`analysis.ml.training.fit`
(:func:`taggers.training.train_classifier`): Adam, cross-entropy weighted by class weights
(classes to equal weighted totals) times the jets' sample weights, early stopping on the
validation loss, a checkpoint per epoch and resume.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from analysis.core.checks import check_finite
from analysis.core.config.taggers import TaggerModelsRnnip, TaggersConfig
from analysis.core.errors import ConfigError, ModelMismatchError
from analysis.ml.normaliser import Normaliser
from analysis.ml.training import pick_device, torch_threads
from taggers.discriminant import CLASS_NAMES
from taggers.features import TaggingDataset
from taggers.training import (
    LABEL_TO_CLASS,
    ClassifierData,
    NetworkResult,
    TaggerInputError,
    check_model_compatible,
    check_not_empty,
    check_weights,
    data_fingerprint,
    hash_for,
    labels_to_classes,
    load_network,
    save_network,
    train_classifier,
)

log = logging.getLogger(__name__)

__all__ = [
    "CLASS_NAMES",
    "CONTINUOUS_FEATURES",
    "LABEL_TO_CLASS",
    "RNNIP",
    "RNNIPInputs",
    "TRACK_FEATURES",
    "as_rnnip_inputs",
    "check_n_grades",
    "load_rnnip",
    "predict_rnnip",
    "rnnip_columns",
    "save_rnnip",
    "train_rnnip",
]

#: Continuous per-track inputs, in the order of the last axis of ``continuous``.
CONTINUOUS_FEATURES: tuple[str, ...] = ("sd0", "sz0", "pt_frac", "dr")
#: Everything RNNIP reads per track (the grade goes through the embedding).
TRACK_FEATURES: tuple[str, ...] = (*CONTINUOUS_FEATURES, "grade")
MODEL_KIND = "rnnip"
FORMAT_VERSION = 1


# --------------------------------------------------------------------------- inputs


@dataclass
class RNNIPInputs:
    """RNNIP inputs of ``n`` jets: ``continuous`` float32 (n, n_max, 4), ``grade`` int64
    (n, n_max) with padded entries = n_grades, ``mask`` bool (n, n_max); optional per-jet
    ``label`` (HadronConeExclTruthLabelID) and ``weight``."""

    continuous: np.ndarray
    grade: np.ndarray
    mask: np.ndarray
    label: np.ndarray | None = None
    weight: np.ndarray | None = None
    feature_names: tuple[str, ...] = field(default=CONTINUOUS_FEATURES)

    @property
    def n_jets(self) -> int:
        """Number of jets."""
        return int(self.mask.shape[0])

    @property
    def n_max(self) -> int:
        """Length of the track sequences."""
        return int(self.mask.shape[1])


def as_rnnip_inputs(
    data: RNNIPInputs | TaggingDataset | tuple[np.ndarray, np.ndarray, np.ndarray],
    n_grades: int,
    *,
    what: str = "input",
    need_labels: bool = False,
) -> RNNIPInputs:
    """The RNNIP inputs of ``data``, checked: the one builder of the track sequences RNNIP reads.

    Args:
        data: a :class:`~taggers.features.TaggingDataset` (its ``tracks`` ``sd0, sz0,
            pt_frac, dr, grade, valid``, its jets' ``label`` and ``weight``), an
            :class:`RNNIPInputs`, or a tuple ``(continuous, grade, mask)``.
        n_grades: number of track grades (the padding index of the embedding).
        what: names the set in errors.
        need_labels: check the labels and weights (training).

    Returns:
        :class:`RNNIPInputs` with padded entries zeroed and their grade set to ``n_grades``.

    Raises:
        TaggerInputError: wrong shapes or dtypes, an empty set, grades outside
            ``[0, n_grades)``, masks whose valid tracks are not a prefix of the row, and
            (``need_labels``) missing or unknown labels.
        NonFiniteInputError: NaN/inf in a valid track's feature or a weight (named, with the
            first jet).
    """
    label = weight = None
    names: tuple[str, ...] = CONTINUOUS_FEATURES
    if isinstance(data, RNNIPInputs):
        cont, grade, mask = data.continuous, data.grade, data.mask
        label, weight, names = data.label, data.weight, tuple(data.feature_names)
    elif isinstance(data, TaggingDataset):
        tracks = data.tracks
        missing = [f for f in (*TRACK_FEATURES, "valid") if f not in tracks]
        if missing:
            raise TaggerInputError(f"{what}: the track arrays lack the RNNIP input(s) {missing}")
        mask = np.asarray(tracks["valid"], dtype=bool)
        cont = np.stack([np.asarray(tracks[f], dtype=np.float32) for f in CONTINUOUS_FEATURES], axis=-1)
        grade = np.asarray(tracks["grade"]).astype(np.int64)
        label = data.jets.get("label")
        weight = data.jets.get("weight")
    elif isinstance(data, (tuple, list)) and len(data) == 3:
        cont, grade, mask = data
    else:
        raise TaggerInputError(
            f"{what}: expected RNNIPInputs, a TaggingDataset or (continuous, grade, mask), "
            f"got {type(data).__name__}"
        )
    cont = np.asarray(cont)
    grade = np.asarray(grade)
    mask = np.asarray(mask)
    if cont.ndim != 3 or cont.shape[2] != len(names):
        raise TaggerInputError(
            f"{what}: continuous inputs must have shape (n_jets, n_max, {len(names)}) "
            f"for {list(names)}, got {cont.shape}"
        )
    n, n_max = cont.shape[:2]
    if mask.shape != (n, n_max) or grade.shape != (n, n_max):
        raise TaggerInputError(
            f"{what}: grade {grade.shape} and mask {mask.shape} must have shape {(n, n_max)}"
        )
    check_not_empty(n, what)
    if mask.dtype != bool:
        raise TaggerInputError(f"{what}: mask must be boolean, got {mask.dtype}")
    if n_max > 1 and np.any(mask[:, 1:] & ~mask[:, :-1]):
        bad = int(np.argwhere(mask[:, 1:] & ~mask[:, :-1])[0][0])
        raise TaggerInputError(
            f"{what}: the valid tracks of jet {bad} are not a prefix of its row; tracks must be "
            "sorted with the valid ones first"
        )
    check_finite(cont, names, source=what, mask=mask, entry_name="jet")
    valid_grades = grade[mask]
    if valid_grades.size and (valid_grades.min() < 0 or valid_grades.max() >= n_grades):
        raise TaggerInputError(
            f"{what} feature 'grade' holds values outside [0, {n_grades}) "
            f"(min {int(valid_grades.min())}, max {int(valid_grades.max())}); check n_grades"
        )
    cont = np.where(mask[..., None], cont, 0).astype(np.float32)
    grade = np.where(mask, grade, n_grades).astype(np.int64)
    if need_labels:
        if label is None:
            raise TaggerInputError(f"{what}: no jet labels (HadronConeExclTruthLabelID)")
        label = np.asarray(label)
        if label.shape != (n,):
            raise TaggerInputError(f"{what}: label has shape {label.shape}, expected ({n},)")
        labels_to_classes(label)  # raises on unknown labels
        weight = check_weights(weight, n, what)
    return RNNIPInputs(cont, grade, mask, label, weight, names)


# --------------------------------------------------------------------------- model


class RNNIP(nn.Module):
    """Grade embedding + LSTM over packed track sequences + dropout + dense 4-class logits.

    ``forward(continuous, grade, mask, packed=None)`` takes raw (un-normalised) inputs and
    returns logits (n, 4); ``packed=None`` uses :attr:`use_packing` (True). See the module
    docstring for the zero-track convention (learned ``no_track`` state).
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        n_continuous: int = len(CONTINUOUS_FEATURES),
        n_grades: int = 4,
        embedding_dim: int = 2,
        lstm_units: int = 25,
        dropout: float = 0.2,
        n_classes: int = len(CLASS_NAMES),
    ) -> None:
        super().__init__()
        self.n_continuous = n_continuous
        self.n_grades = n_grades
        self.use_packing = True
        self.register_buffer("mean", torch.zeros(n_continuous))
        self.register_buffer("std", torch.ones(n_continuous))
        self.embedding = nn.Embedding(n_grades + 1, embedding_dim, padding_idx=n_grades)
        self.lstm = nn.LSTM(n_continuous + embedding_dim, lstm_units, batch_first=True)
        self.no_track = nn.Parameter(torch.zeros(lstm_units))
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(lstm_units, n_classes)
        #: metadata of a trained/loaded model (features, n_max, normaliser, config); None if bare
        self.meta: dict[str, Any] | None = None

    def set_normalisation(self, mean: Any, std: Any) -> None:
        """Store the training mean and std of the continuous inputs (as float32 buffers)."""
        self.mean.copy_(torch.as_tensor(np.asarray(mean, np.float32)))
        self.std.copy_(torch.as_tensor(np.asarray(std, np.float32)))

    def encode(
        self, continuous: torch.Tensor, grade: torch.Tensor, mask: torch.Tensor, packed: bool = True
    ) -> torch.Tensor:
        """The jet representation (n, lstm_units): the LSTM state after the last valid track."""
        x = (continuous - self.mean) / self.std
        x = torch.where(mask.unsqueeze(-1), x, torch.zeros_like(x))
        g = torch.where(mask, grade, torch.full_like(grade, self.n_grades))
        z = torch.cat([x, self.embedding(g)], dim=-1)
        lengths = mask.sum(dim=1)
        safe = lengths.clamp(min=1)  # zero-track jets: length 1 (zero input), replaced below
        if packed:
            seq = pack_padded_sequence(z, safe.cpu(), batch_first=True, enforce_sorted=False)
            _, (h_n, _) = self.lstm(seq)
            h = h_n[-1]
        else:
            out, _ = self.lstm(z)
            idx = (safe - 1).view(-1, 1, 1).expand(-1, 1, out.shape[-1])
            h = torch.gather(out, 1, idx).squeeze(1)
        has_tracks = (lengths > 0).unsqueeze(-1)
        return torch.where(has_tracks, h, self.no_track.unsqueeze(0).expand_as(h))

    def forward(
        self,
        continuous: torch.Tensor,
        grade: torch.Tensor,
        mask: torch.Tensor,
        packed: bool | None = None,
    ) -> torch.Tensor:
        """The 4-class logits (n, 4) of raw inputs; ``packed=None``: :attr:`use_packing`."""
        h = self.encode(continuous, grade, mask, self.use_packing if packed is None else packed)
        return self.output(self.dropout(h))


def _hparams(c: TaggerModelsRnnip) -> dict[str, Any]:
    return {
        "n_continuous": len(CONTINUOUS_FEATURES),
        "n_grades": int(c.n_grades),
        "embedding_dim": int(c.embedding_dim),
        "lstm_units": int(c.lstm_units),
        "dropout": float(c.dropout),
        "n_classes": len(CLASS_NAMES),
    }


# --------------------------------------------------------------------------- training


def check_n_grades(taggers: TaggersConfig, rnnip: TaggerModelsRnnip) -> None:
    """A config holds the grade count twice (``taggers.tracks.n_grades`` for the features,
    ``tagger_models.rnnip.n_grades`` for the embedding): they must agree.

    Raises:
        ConfigError: they differ.
    """
    if int(taggers.tracks.n_grades) != int(rnnip.n_grades):
        raise ConfigError(
            f"taggers.tracks.n_grades ({taggers.tracks.n_grades}) and tagger_models.rnnip.n_grades "
            f"({rnnip.n_grades}) differ"
        )


def train_rnnip(
    train: RNNIPInputs | TaggingDataset,
    val: RNNIPInputs | TaggingDataset | None,
    cfg: TaggerModelsRnnip,
    outdir: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    resume: bool = True,
    progress: bool | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    threads: int | None = None,
) -> NetworkResult:
    """Train RNNIP; write ``<outdir>/rnnip.pt`` (model, normaliser, config), the checkpoint
    ``rnnip.ckpt.pt`` and ``rnnip.history.json``.

    Args:
        train: the training jets (with labels and weights).
        val: the validation jets, or ``None`` (early stopping then watches the training loss).
        cfg: ``tagger_models.rnnip``.
        outdir: the model directory.
        device: ``cpu``/``cuda`` (default: CUDA when present).
        resume: continue from a checkpoint of the same config and data.
        progress: show a progress bar (``None``: only on a terminal).
        on_epoch_end: called after each epoch's checkpoint.
        threads: torch intra-op threads during training (``None``: unchanged).

    Returns:
        The :class:`~taggers.training.NetworkResult` (the trained model in eval mode).

    Raises:
        TaggerInputError: empty sets, unknown labels, bad shapes or grades.
        NonFiniteInputError: NaN/inf in a feature (named).
        MissingClassError: a flavour absent from the training set (named).
        ModelMismatchError: training and validation sets with different ``n_max``.
    """
    n_grades = int(cfg.n_grades)
    tr = as_rnnip_inputs(train, n_grades, what="RNNIP training set", need_labels=True)
    va = None
    if val is not None:
        va = as_rnnip_inputs(val, n_grades, what="RNNIP validation set", need_labels=True)
        if va.n_max != tr.n_max or va.feature_names != tr.feature_names:
            raise ModelMismatchError(
                f"mismatched training and validation feature files: n_max {tr.n_max} vs "
                f"{va.n_max}, features {tr.feature_names} vs {va.feature_names}"
            )
    scaler = Normaliser.fit(tr.continuous, mask=tr.mask, names=list(tr.feature_names),
                            source="RNNIP training set")
    hparams = _hparams(cfg)

    def build() -> RNNIP:
        model = RNNIP(**hparams)
        model.set_normalisation(scaler.mean, scaler.std)
        return model

    cfg_hash = hash_for(
        cfg,
        kind=MODEL_KIND,
        features=list(tr.feature_names),
        n_max=tr.n_max,
        train=data_fingerprint(tr.continuous, tr.grade, tr.mask, tr.label, tr.weight),
        val=None
        if va is None
        else data_fingerprint(va.continuous, va.grade, va.mask, va.label, va.weight),
    )
    meta = {
        "feature_names": list(tr.feature_names),
        "track_features": [*tr.feature_names, "grade"],
        "n_max": tr.n_max,
        "n_grades": n_grades,
        "class_names": list(CLASS_NAMES),
        "label_to_class": {str(k): v for k, v in LABEL_TO_CLASS.items()},
        "normaliser": scaler.to_dict(),
        "config": cfg.to_dict(),
        "config_hash": cfg_hash,
        "zero_track_jets": "learned no_track state",
    }

    def save(model: RNNIP, path: Path, info: dict[str, Any]) -> None:
        model.meta = {**meta, "training": info}
        save_rnnip(model, path)

    log.info(
        "RNNIP: %d training jets, %d validation jets, n_max %d, %s",
        tr.n_jets,
        0 if va is None else va.n_jets,
        tr.n_max,
        hparams,
    )
    return train_classifier(
        name=MODEL_KIND,
        build_model=build,
        train=_classifier_data(tr),
        val=None if va is None else _classifier_data(va),
        cfg=cfg,
        outdir=outdir,
        save_model=save,
        config_hash=cfg_hash,
        normaliser=scaler,
        device=device,
        resume=resume,
        progress=progress,
        on_epoch_end=on_epoch_end,
        threads=threads,
    )


def _classifier_data(inp: RNNIPInputs) -> ClassifierData:
    assert inp.label is not None and inp.weight is not None  # as_rnnip_inputs(need_labels=True)
    return ClassifierData((inp.continuous, inp.grade, inp.mask), labels_to_classes(inp.label), inp.weight)


# --------------------------------------------------------------------------- save / load


def save_rnnip(model: RNNIP, path: str | os.PathLike[str]) -> None:
    """Write a trained model (weights, hyper-parameters and ``model.meta``) atomically."""
    hp = {
        "n_continuous": model.n_continuous,
        "n_grades": model.n_grades,
        "embedding_dim": model.embedding.embedding_dim,
        "lstm_units": model.lstm.hidden_size,
        "dropout": float(model.dropout.p),
        "n_classes": model.output.out_features,
    }
    save_network(model, path, kind=MODEL_KIND, label="RNNIP", format_version=FORMAT_VERSION,
                 hparams=hp)


def load_rnnip(
    path: str | os.PathLike[str],
    *,
    features: list[str] | tuple[str, ...] | None = None,
    n_max: int | None = None,
    normaliser: Normaliser | None = None,
    device: str | torch.device | None = None,
) -> RNNIP:
    """Load a model written by :func:`train_rnnip` (eval mode, on ``device`` or the default).

    Args:
        path: the ``rnnip.pt`` file.
        features: continuous feature names to check against the model's.
        n_max: track slots to check against the model's.
        normaliser: a normaliser to check against the model's feature names.
        device: where to put the model.

    Raises:
        ModelMismatchError: a difference ("mismatched model and feature file ...").
    """
    model = load_network(path, MODEL_KIND, RNNIP)
    assert model.meta is not None
    check_model_compatible(
        MODEL_KIND,
        model.meta["feature_names"],
        features=features,
        n_max=n_max,
        model_n_max=model.meta["n_max"],
        normaliser=normaliser,
        source=str(path),
    )
    return model.to(pick_device(device)).eval()


# --------------------------------------------------------------------------- inference


def _resolve_model(model_or_path: RNNIP | str | os.PathLike[str], device: str | torch.device | None) -> RNNIP:
    if isinstance(model_or_path, RNNIP):
        model = model_or_path
        if device is not None:
            model = model.to(pick_device(device))
        return model
    return load_rnnip(model_or_path, device=device)


@torch.inference_mode()
def predict_rnnip(
    model_or_path: RNNIP | str | os.PathLike[str],
    inputs: RNNIPInputs | TaggingDataset | tuple[np.ndarray, np.ndarray, np.ndarray],
    batch_size: int = 10_000,
    *,
    device: str | torch.device | None = None,
    packed: bool | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Class probabilities (n, 4) float32 in the order (b, c, light, tau).

    Args:
        model_or_path: the model or its file.
        inputs: raw (un-normalised) inputs, see :func:`as_rnnip_inputs`.
        batch_size: jets per forward pass.
        device: where to run (``None``: the model's device).
        packed: ``False``: the masked LSTM variant (the ONNX one).
        threads: torch intra-op threads for the call (``None``: unchanged).

    Raises:
        TaggerInputError: an empty set; NonFiniteInputError: NaN/inf (named).
        ModelMismatchError: the feature list or n_max differ from the model's.
    """
    model = _resolve_model(model_or_path, device)
    inp = as_rnnip_inputs(inputs, model.n_grades, what="RNNIP test set")
    if model.meta is not None:
        check_model_compatible(
            MODEL_KIND,
            model.meta["feature_names"],
            features=inp.feature_names,
            n_max=inp.n_max,
            model_n_max=model.meta["n_max"],
        )
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    out = []
    with torch_threads(threads):
        try:
            for start in range(0, inp.n_jets, batch_size):
                sl = slice(start, start + batch_size)
                logits = model(
                    torch.from_numpy(inp.continuous[sl]).to(dev),
                    torch.from_numpy(inp.grade[sl]).to(dev),
                    torch.from_numpy(inp.mask[sl]).to(dev),
                    packed=packed,
                )
                out.append(torch.softmax(logits, dim=-1).float().cpu().numpy())
        finally:
            model.train(was_training)
    return np.concatenate(out)


def rnnip_columns(probs: np.ndarray, prefix: str = "rnnip_") -> dict[str, np.ndarray]:
    """RNNIP probabilities as named jet columns (``rnnip_pb, rnnip_pc, rnnip_pu, rnnip_ptau``),
    e.g. to append to the DL1 inputs."""
    p = np.asarray(probs, dtype=np.float32)
    if p.ndim != 2 or p.shape[1] != len(CLASS_NAMES):
        raise ValueError(f"expected probabilities of shape (n, 4), got {p.shape}")
    return {f"{prefix}{s}": p[:, i] for i, s in enumerate(("pb", "pc", "pu", "ptau"))}
