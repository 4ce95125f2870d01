"""ONNX export of every trained tagger (RNNIP, DL1, MV2), and inference with ONNX Runtime.

RNNIP is exported through :class:`MaskedRNNIP`: the same module and weights, but the LSTM
runs over the padded tensor and the jet state is gathered at the last valid track
(``packed=False``) instead of packing the sequence (``pack_padded_sequence`` does not
export); jets without tracks get the learned ``no_track`` state exactly as in the packed
model. The graph takes the *raw* inputs (normalisation is inside the model):

- RNNIP: ``continuous`` float32 (n, n_max, 4) ``[sd0, sz0, pt_frac, dr]``, ``grade`` int64
  (n, n_max) (padding = n_grades), ``mask`` bool (n, n_max); output ``probabilities``
  float32 (n, 4) in the order (b, c, light, tau);
- DL1: ``features`` float32 (n, n_features) in the stored feature order; output
  ``probabilities``;
- MV2 (:func:`export_mv2_onnx`, onnxmltools' XGBoost converter, ``ai.onnx.ml``
  ``TreeEnsembleClassifier``, opset 15): ``features`` float32 (n, n_features) in the stored
  feature order; outputs ``label`` int64 (n,) and ``probabilities`` float32 (n, 2): column 1
  is the BDT score P(b) of :func:`taggers.algorithms.mv2.predict_mv2` (equal to XGBoost's
  within float32 precision, tested), whose logit is the MV2 discriminant.

The batch axis is dynamic. The model's metadata (kind, feature names, n_max, n_grades,
class names, normaliser, config hash) goes into the ONNX ``metadata_props`` and is checked by
:func:`predict_onnx` like the torch models check theirs; ``inputs`` and ``outputs`` (JSON:
name, dtype, shape with ``"n_jets"`` for the batch axis, and what each axis holds) describe
the graph's interface (:func:`io_signature`). The networks use the TorchScript exporter
(``dynamo=False``: the torch.export-based one needs ``onnxscript``, not a dependency),
opset 17.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import os
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from analysis.core.atomic import atomic_path
from analysis.core.errors import ModelMismatchError
from taggers.algorithms.mv2 import MV2Model, load_mv2
from taggers.discriminant import CLASS_NAMES
from taggers.nn.dl1 import DL1, DL1Data, load_dl1
from taggers.nn.rnnip import CONTINUOUS_FEATURES, RNNIP, RNNIPInputs, as_rnnip_inputs, load_rnnip
from taggers.training import as_feature_matrix, check_model_compatible

log = logging.getLogger(__name__)

__all__ = [
    "ONNX_KINDS",
    "MaskedRNNIP",
    "OnnxTagger",
    "export_dl1_onnx",
    "export_mv2_onnx",
    "export_rnnip_onnx",
    "io_signature",
    "load_onnx",
    "predict_onnx",
]

OPSET = 17
#: the ``ai.onnx.ml`` opset of the MV2 tree ensemble (the highest onnxmltools' XGBoost
#: converter supports)
MV2_OPSET = 15
#: the taggers with an ONNX export (the ``kind`` metadata)
ONNX_KINDS = ("rnnip", "dl1", "mv2")


def io_signature(kind: str, *, n_max: int | None = None, n_features: int | None = None,
                 feature_names: list[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """The ONNX graph's inputs and outputs of tagger ``kind`` (stored as the ``inputs`` and
    ``outputs`` metadata, JSON): ``[{"name", "dtype", "shape", "axes"}]``, ``"n_jets"`` for
    the dynamic batch axis.

    Raises:
        ValueError: an unknown kind.
    """
    probs = {"name": "probabilities", "dtype": "float32", "shape": ["n_jets", len(CLASS_NAMES)],
             "axes": ["jet", f"class {list(CLASS_NAMES)}"]}
    if kind == "rnnip":
        return {
            "inputs": [
                {"name": "continuous", "dtype": "float32", "shape": ["n_jets", n_max, len(CONTINUOUS_FEATURES)],
                 "axes": ["jet", "track (valid first, by |sd0|)", f"feature {list(CONTINUOUS_FEATURES)}"]},
                {"name": "grade", "dtype": "int64", "shape": ["n_jets", n_max],
                 "axes": ["jet", "track (padding = n_grades)"]},
                {"name": "mask", "dtype": "bool", "shape": ["n_jets", n_max], "axes": ["jet", "track (True: a track)"]},
            ],
            "outputs": [probs],
        }
    if kind in ("dl1", "mv2"):
        features = {"name": "features", "dtype": "float32", "shape": ["n_jets", n_features],
                    "axes": ["jet", f"feature {list(feature_names or [])}"]}
        if kind == "dl1":
            return {"inputs": [features], "outputs": [probs]}
        return {
            "inputs": [features],
            "outputs": [
                {"name": "label", "dtype": "int64", "shape": ["n_jets"], "axes": ["jet (1: b)"]},
                {"name": "probabilities", "dtype": "float32", "shape": ["n_jets", 2],
                 "axes": ["jet", "class [light + c, b]: column 1 is the MV2 score P(b)"]},
            ],
        }
    raise ValueError(f"no ONNX export for tagger {kind!r}; known: {list(ONNX_KINDS)}")


class MaskedRNNIP(nn.Module):
    """RNNIP on padded inputs with masking instead of packing, returning probabilities."""

    def __init__(self, model: RNNIP) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, continuous: torch.Tensor, grade: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Class probabilities (n, 4) of raw inputs."""
        return torch.softmax(self.model(continuous, grade, mask, packed=False), dim=-1)


class _SoftmaxDL1(nn.Module):
    def __init__(self, model: DL1) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Class probabilities (n, 4) of raw features."""
        return torch.softmax(self.model(features), dim=-1)


def _export(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    input_names: list[str],
    path: str | os.PathLike[str],
    meta: dict[str, Any],
    opset: int,
) -> Path:
    module = copy.deepcopy(module).cpu().eval()  # never move the caller's model
    buf = io.BytesIO()
    dynamic = {n: {0: "n_jets"} for n in [*input_names, "probabilities"]}
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of the dynamo one (needs onnxscript);
        # nn.LSTM tracing emits TracerWarnings about its internal checks and a batch-size note
        # that applies only to models given an explicit initial state (ours is not).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            buf,  # type: ignore[arg-type]
            dynamo=False,
            input_names=input_names,
            output_names=["probabilities"],
            dynamic_axes=dynamic,
            opset_version=opset,
        )
    proto = onnx.load_from_string(buf.getvalue())
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value)
    onnx.checker.check_model(proto)
    out = Path(path)
    with atomic_path(out) as tmp:
        onnx.save(proto, str(tmp))
    log.info("exported %s to %s", meta.get("kind"), out)
    return out


def _meta(kind: str, model_meta: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    m = dict(model_meta or {})
    keep: dict[str, Any] = {
        k: m[k]
        for k in ("feature_names", "n_max", "n_grades", "class_names", "normaliser", "config_hash")
        if k in m
    }
    return {"kind": kind, **keep, **extra}


def export_rnnip_onnx(
    model_or_path: RNNIP | str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    opset: int = OPSET,
) -> Path:
    """Export RNNIP (masked variant, softmax output) to ``path``; returns the path."""
    model = (
        model_or_path
        if isinstance(model_or_path, RNNIP)
        else load_rnnip(model_or_path, device="cpu")
    )
    n_max = int(model.meta["n_max"]) if model.meta else 15
    n = 3
    continuous = torch.randn(n, n_max, model.n_continuous)
    grade = torch.zeros(n, n_max, dtype=torch.int64)
    mask = torch.zeros(n, n_max, dtype=torch.bool)
    mask[0, :] = True
    mask[1, : max(1, n_max // 2)] = True
    meta = {
        "feature_names": list(CONTINUOUS_FEATURES),
        **_meta(
            "rnnip", model.meta, n_max=n_max, n_grades=model.n_grades, class_names=list(CLASS_NAMES)
        ),
        **io_signature("rnnip", n_max=n_max),
    }
    return _export(
        MaskedRNNIP(model),
        (continuous, grade, mask),
        ["continuous", "grade", "mask"],
        path,
        meta,
        opset,
    )


def export_dl1_onnx(
    model_or_path: DL1 | str | os.PathLike[str], path: str | os.PathLike[str], *, opset: int = OPSET
) -> Path:
    """Export DL1 (softmax output) to ``path``; returns the path."""
    model = (
        model_or_path if isinstance(model_or_path, DL1) else load_dl1(model_or_path, device="cpu")
    )
    meta = _meta("dl1", model.meta, n_features=model.n_features, class_names=list(CLASS_NAMES))
    meta.update(io_signature("dl1", n_features=model.n_features, feature_names=meta.get("feature_names")))
    return _export(
        _SoftmaxDL1(model), (torch.randn(3, model.n_features),), ["features"], path, meta, opset
    )


def export_mv2_onnx(model_or_path: MV2Model | str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Export MV2 (the XGBoost booster) to ``path`` with onnxmltools; returns the path.

    The graph takes the features as one float32 matrix in the model's feature order (the
    converter needs XGBoost's ``f0, f1, ...`` names, so the names go into the metadata
    instead); ``probabilities[:, 1]`` is the BDT score.
    """
    from onnxmltools.convert import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    model = model_or_path if isinstance(model_or_path, MV2Model) else load_mv2(model_or_path)
    names = model.feature_names
    booster = model.booster.copy()
    booster.feature_names = None
    booster.feature_types = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proto = convert_xgboost(booster, initial_types=[("features", FloatTensorType([None, len(names)]))],
                                target_opset=MV2_OPSET)
    proto.graph.name = "mv2"  # the converter names the graph by a random UUID: the file would differ per run
    meta = {
        "kind": "mv2",
        "feature_names": list(names),
        "n_features": len(names),
        "n_trees": model.n_trees,
        "score": "probabilities[:, 1] = P(b) in [0, 1]; discriminant = ln(score / (1 - score))",
        "config": model.meta.get("config"),
        **io_signature("mv2", n_features=len(names), feature_names=list(names)),
    }
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value)
    onnx.checker.check_model(proto)
    out = Path(path)
    with atomic_path(out) as tmp:
        onnx.save(proto, str(tmp))
    log.info("exported mv2 to %s", out)
    return out


class OnnxTagger:
    """An ONNX Runtime session of an exported RNNIP, DL1 or MV2 with its metadata."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        providers: list[str] | None = None,
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {self.path}")
        opts = ort.SessionOptions()
        if threads is not None:
            opts.intra_op_num_threads = int(threads)
        if providers is None:
            available = ort.get_available_providers()
            providers = [
                p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available
            ]
        self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=providers)
        props = self.session.get_modelmeta().custom_metadata_map
        self.meta: dict[str, Any] = {}
        for k, v in props.items():
            try:
                self.meta[k] = json.loads(v)
            except json.JSONDecodeError:
                self.meta[k] = v
        self.kind = self.meta.get("kind")
        if self.kind not in ONNX_KINDS:
            raise ModelMismatchError(
                f"{self.path}: not a hepline RNNIP/DL1/MV2 export (kind {self.kind!r})"
            )

    def predict(self, data: RNNIPInputs | DL1Data, batch_size: int = 10_000) -> np.ndarray:
        """Probabilities (n, 4) of RNNIP and DL1, the score P(b) (n,) of MV2; ``data`` as for
        :func:`taggers.nn.rnnip.predict_rnnip` / :func:`taggers.nn.dl1.predict_dl1` /
        :func:`taggers.algorithms.mv2.predict_mv2`, checked against the stored metadata."""
        out = []
        if self.kind == "rnnip":
            inp = as_rnnip_inputs(data, int(self.meta["n_grades"]), what="RNNIP test set")  # type: ignore[arg-type]
            check_model_compatible(
                "rnnip",
                self.meta["feature_names"],
                features=inp.feature_names,
                n_max=inp.n_max,
                model_n_max=self.meta["n_max"],
                source=str(self.path),
            )
            for s in range(0, inp.n_jets, batch_size):
                sl = slice(s, s + batch_size)
                feeds = {
                    "continuous": inp.continuous[sl],
                    "grade": inp.grade[sl],
                    "mask": inp.mask[sl],
                }
                out.append(self.session.run(["probabilities"], feeds)[0])
        else:
            names = self.meta.get("feature_names")
            what = "MV2" if self.kind == "mv2" else "DL1"
            fm = as_feature_matrix(data, names, what=f"{what} test set", kind=what)
            for s in range(0, len(fm), batch_size):
                out.append(
                    self.session.run(["probabilities"], {"features": fm.x[s : s + batch_size]})[0]
                )
        if not out:
            return np.zeros((0,) if self.kind == "mv2" else (0, len(CLASS_NAMES)), dtype=np.float32)
        probs = np.concatenate(out).astype(np.float32)
        return probs[:, 1] if self.kind == "mv2" else probs


@lru_cache(maxsize=8)
def _cached(path: str, mtime: float) -> OnnxTagger:
    return OnnxTagger(path)


def load_onnx(
    path: str | os.PathLike[str], providers: list[str] | None = None, threads: int | None = None
) -> OnnxTagger:
    """An :class:`OnnxTagger` session (CUDA provider when available, else CPU)."""
    return OnnxTagger(path, providers=providers, threads=threads)


def predict_onnx(path: str | os.PathLike[str], data: RNNIPInputs | DL1Data, batch_size: int = 10_000) -> np.ndarray:
    """Probabilities (n, 4) from an exported model (session cached per file and mtime)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"ONNX model not found: {p}")
    return _cached(str(p.resolve()), p.stat().st_mtime).predict(data, batch_size)
