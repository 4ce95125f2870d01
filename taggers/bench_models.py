"""Throughput benchmark of the tagger models, and the synthetic datasets tests use.

``python -m taggers.bench_models --jets 200000`` builds a synthetic dataset of ``--jets`` jets
with ``--n-max`` (15) track slots, trains RNNIP for one epoch (batch ``--batch-size``,
default the config's 512) and reports the training rate, then the inference rates of the
torch model and of its ONNX export in ONNX Runtime at batch ``--infer-batch`` (10k), in
jets/s, as JSON on stdout (and in ``--out`` if given).

The synthetic datasets (:func:`synthetic_tagging_dataset`, :func:`synthetic_highlevel`)
have the layout of :class:`taggers.features.TaggingDataset` / a
:class:`~taggers.training.FeatureMatrix`: b (and, less, c and tau) jets carry displaced
tracks with positive signed d0 significance, light jets prompt tracks symmetric around 0;
about 2% of the jets have no track.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from taggers.training import CLASS_TO_LABEL, FeatureMatrix

#: default flavour fractions (b, c, light, tau)
FRACTIONS = (0.3, 0.2, 0.45, 0.05)
#: fraction of displaced (lifetime) tracks per class (b, c, light, tau)
DISPLACED = (0.55, 0.3, 0.03, 0.3)


def _dataset_class() -> Any:
    try:
        from taggers.features import TaggingDataset
    except ImportError:  # pragma: no cover - before the features module exists
        from dataclasses import dataclass, field

        @dataclass
        class TaggingDataset:  # type: ignore[no-redef]
            jets: dict[str, np.ndarray]
            tracks: dict[str, np.ndarray]
            meta: dict[str, Any] = field(default_factory=dict)

    return TaggingDataset


def synthetic_tagging_dataset(
    n_jets: int,
    n_max: int = 15,
    *,
    seed: int = 0,
    n_grades: int = 4,
    fractions: tuple[float, float, float, float] = FRACTIONS,
    zero_track_fraction: float = 0.02,
    separation: float = 1.0,
) -> Any:
    """A ``TaggingDataset`` of ``n_jets`` synthetic jets (see the module docstring).

    ``separation`` scales the displacement of lifetime tracks (0: no b/light difference in
    the tracks at all).
    """
    rng = np.random.default_rng(seed)
    cls = rng.choice(4, size=n_jets, p=np.asarray(fractions) / np.sum(fractions))
    label = np.array([CLASS_TO_LABEL[c] for c in range(4)], dtype=np.int32)[cls]
    n_trk = np.minimum(rng.poisson(6.0, n_jets) + 1, n_max)
    n_trk[rng.random(n_jets) < zero_track_fraction] = 0
    shape = (n_jets, n_max)
    valid = np.arange(n_max)[None, :] < n_trk[:, None]
    displaced = rng.random(shape) < np.asarray(DISPLACED)[cls][:, None]
    sd0 = rng.normal(0.0, 1.2, shape)
    sd0 = np.where(displaced, np.abs(sd0) + rng.exponential(3.0 * separation, shape), sd0)
    sz0 = 0.6 * sd0 + rng.normal(0.0, 1.0, shape)
    pt_frac = rng.exponential(1.0, shape)
    pt_frac = 0.9 * pt_frac / np.maximum((pt_frac * valid).sum(axis=1, keepdims=True), 1e-9)
    dr = np.abs(rng.normal(0.0, 0.1, shape)) + 0.01
    grade = rng.integers(0, n_grades, shape)
    # sort by |sd0| descending within the valid tracks, valid first
    key = np.where(valid, np.abs(sd0), -np.inf)
    order = np.argsort(-key, axis=1, kind="stable")
    take = lambda a: np.take_along_axis(a, order, axis=1)
    sd0, sz0, pt_frac, dr, grade = map(take, (sd0, sz0, pt_frac, dr, grade))
    tracks = {
        "sd0": np.where(valid, sd0, 0).astype(np.float32),
        "sz0": np.where(valid, sz0, 0).astype(np.float32),
        "pt_frac": np.where(valid, pt_frac, 0).astype(np.float32),
        "dr": np.where(valid, dr, 0).astype(np.float32),
        "grade": np.where(valid, grade, -1).astype(np.int8),
        "valid": valid,
    }
    jets = {
        "pt": (20.0 + rng.exponential(40.0, n_jets)).astype(np.float32),
        "eta": rng.uniform(-2.5, 2.5, n_jets).astype(np.float32),
        "phi": rng.uniform(-np.pi, np.pi, n_jets).astype(np.float32),
        "label": label,
        "event": np.arange(n_jets, dtype=np.uint64),
        "n_tracks": n_trk.astype(np.int32),
        "weight": np.ones(n_jets, dtype=np.float32),
    }
    return _dataset_class()(jets=jets, tracks=tracks, meta={"source": "synthetic", "n_max": n_max})


#: high-level synthetic feature names (a stand-in for pt, |eta|, IP2D/IP3D ratios, SV1)
HIGHLEVEL_NAMES = [
    "pt", "abs_eta",
    "ip2d_pb_pu", "ip2d_pb_pc", "ip2d_pc_pu", "ip3d_pb_pu", "ip3d_pb_pc", "ip3d_pc_pu",
    "sv1_mass", "sv1_efrac", "sv1_n2t", "sv1_ntrkv", "sv1_lxy", "sv1_l3d", "sv1_sig3d", "sv1_dr",
]  # fmt: skip


def synthetic_highlevel(
    n_jets: int,
    *,
    seed: int = 0,
    fractions: tuple[float, float, float, float] = FRACTIONS,
    separation: float = 1.0,
) -> FeatureMatrix:
    """A synthetic high-level :class:`FeatureMatrix` (names :data:`HIGHLEVEL_NAMES`) in which
    b jets have larger IP log-likelihood ratios and SV1 masses/significances, c jets in
    between, light jets the smallest."""
    rng = np.random.default_rng(seed)
    cls = rng.choice(4, size=n_jets, p=np.asarray(fractions) / np.sum(fractions))
    label = np.array([CLASS_TO_LABEL[c] for c in range(4)], dtype=np.int32)[cls]
    shift = separation * np.array([2.0, 0.8, 0.0, 0.6])[cls]  # b, c, light, tau
    cols = {
        "pt": 20.0 + rng.exponential(40.0, n_jets),
        "abs_eta": np.abs(rng.uniform(-2.5, 2.5, n_jets)),
    }
    for i, name in enumerate(HIGHLEVEL_NAMES[2:8]):
        cols[name] = rng.normal(shift * (1.0 - 0.1 * i), 1.5)
    has_sv = rng.random(n_jets) < 0.2 + 0.3 * shift / max(separation, 1e-9) / 2.0
    cols["sv1_mass"] = np.where(has_sv, np.abs(rng.normal(0.8 + 0.9 * shift, 0.7)), -1.0)
    cols["sv1_efrac"] = np.where(has_sv, rng.beta(2 + shift, 3), -1.0)
    cols["sv1_n2t"] = np.where(has_sv, rng.poisson(1 + 2 * shift), -1.0)
    cols["sv1_ntrkv"] = np.where(has_sv, 2 + rng.poisson(0.5 + shift), -1.0)
    cols["sv1_lxy"] = np.where(has_sv, rng.exponential(0.5 + 2 * shift), -1.0)
    cols["sv1_l3d"] = np.where(has_sv, cols["sv1_lxy"] * (1 + rng.exponential(0.2, n_jets)), -1.0)
    cols["sv1_sig3d"] = np.where(has_sv, rng.exponential(2 + 8 * shift), -1.0)
    cols["sv1_dr"] = np.where(has_sv, rng.exponential(0.1, n_jets), -1.0)
    x = np.stack([cols[n] for n in HIGHLEVEL_NAMES], axis=1).astype(np.float32)
    return FeatureMatrix(x, list(HIGHLEVEL_NAMES), label, np.ones(n_jets, np.float32))


# --------------------------------------------------------------------------- benchmark


def _rate(fn: Any, n: int, repeats: int) -> tuple[float, float]:
    """(jets per wall second, jets per process-CPU second), best of ``repeats`` after a warm-up."""
    fn()  # warm-up
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return n / best, n / best_cpu


def run_benchmark(
    n_jets: int,
    *,
    n_max: int = 15,
    batch_size: int | None = None,
    infer_batch: int = 10_000,
    infer_jets: int | None = None,
    repeats: int = 3,
    device: str | None = None,
    workdir: str | None = None,
) -> dict[str, Any]:
    """Train RNNIP for one epoch on ``n_jets`` synthetic jets and time inference."""
    from taggers.onnx_export import export_rnnip_onnx, load_onnx
    from taggers.rnnip import as_rnnip_inputs, predict_rnnip, train_rnnip
    from taggers.training import model_config

    cfg = model_config(
        "rnnip", {"max_epochs": 1, **({"batch_size": batch_size} if batch_size else {})}
    )
    n_val = max(1000, n_jets // 10)
    train = synthetic_tagging_dataset(n_jets, n_max, seed=1)
    val = synthetic_tagging_dataset(n_val, n_max, seed=2)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        t0 = time.perf_counter()
        res = train_rnnip(train, val, cfg, tmp, device=device, resume=False, progress=False)
        train_wall = time.perf_counter() - t0
        n_inf = min(infer_jets or n_jets, n_jets)
        inputs = as_rnnip_inputs(train, cfg["n_grades"])
        sub = type(inputs)(inputs.continuous[:n_inf], inputs.grade[:n_inf], inputs.mask[:n_inf])
        model = res.model
        torch_packed = _rate(lambda: predict_rnnip(model, sub, infer_batch), n_inf, repeats)
        torch_masked = _rate(
            lambda: predict_rnnip(model, sub, infer_batch, packed=False), n_inf, repeats
        )
        onnx_path = export_rnnip_onnx(model, Path(tmp) / "rnnip.onnx")
        session = load_onnx(onnx_path, threads=torch.get_num_threads())
        ort_rate = _rate(lambda: session.predict(sub, infer_batch), n_inf, repeats)
    return {
        "jets": n_jets,
        "n_max": n_max,
        "batch_size": cfg["batch_size"],
        "device": res.device,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "train_jets_per_s": res.history[-1]["jets_per_s"],
        "train_jets_per_cpu_s": n_jets / res.history[-1]["cpu_seconds"],
        "train_epoch_s": res.history[-1]["seconds"],
        "train_wall_s_incl_validation_and_io": train_wall,
        "infer_batch": infer_batch,
        "infer_jets": n_inf,
        "torch_packed_infer_jets_per_s": torch_packed[0],
        "torch_packed_infer_jets_per_cpu_s": torch_packed[1],
        "torch_masked_infer_jets_per_s": torch_masked[0],
        "torch_masked_infer_jets_per_cpu_s": torch_masked[1],
        "onnxruntime_infer_jets_per_s": ort_rate[0],
        "onnxruntime_infer_jets_per_cpu_s": ort_rate[1],
        "load_average_1min_at_end": os.getloadavg()[0],
        "onnxruntime_providers": session.session.get_providers(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m taggers.bench_models", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--jets", type=int, default=200_000)
    ap.add_argument("--n-max", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=None, help="training batch (default: config)")
    ap.add_argument("--infer-batch", type=int, default=10_000)
    ap.add_argument(
        "--infer-jets", type=int, default=None, help="jets timed at inference (default: all)"
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run_benchmark(
        args.jets,
        n_max=args.n_max,
        batch_size=args.batch_size,
        infer_batch=args.infer_batch,
        infer_jets=args.infer_jets,
        repeats=args.repeats,
        device=args.device,
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        from analysis.atomic import write_text

        write_text(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
