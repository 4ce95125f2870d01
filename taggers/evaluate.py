"""Stage 3 of the tagger chain: performance of every tagger on the test split, working points.

:func:`evaluate` reads the test split of ``taggers.prepare`` (with its IP2D/IP3D and SV1
columns) and the models of ``--models``, measures the performance in memory
(:func:`taggers.performance.evaluate_dataset`, which documents the definitions) and writes:

* ``working_points.json``: the only source of b-tagging cuts downstream (cut, efficiencies
  and rejections with errors per working point, efficiency maps against pT);
* ``results.json``: everything (ROC curves, efficiencies against pT and |η|, ratios to the
  reference tagger with bootstrap errors, the torch vs ONNX Runtime inference rates);
* ``discriminants.root``: the discriminant per flavour (``disc_<tagger>_<flavour>`` TH1s);
* ``plots/*.png`` (:mod:`taggers.plots`).

Command line::

    hepline taggers evaluate --config workflows/config/default.yaml \\
        --test results/taggers/test.h5 --models results/taggers/models --output-dir results/taggers
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

import analysis
from analysis.core.atomic import atomic_path, write_json
from analysis.core.config import Config, config_hash
from analysis.core.errors import ModelMismatchError
from analysis.core.provenance import provenance_record
from taggers.export import read_split
from taggers.features import TaggingDataset
from taggers.models import ONNX_FILES, TaggerModels, load_models
from taggers.performance import TaggerPerformance, check_sample, clean_json, evaluate_dataset

log = logging.getLogger(__name__)

__all__ = [
    "PLOT_FILES",
    "RESULTS_FILE",
    "ROOT_FILE",
    "WP_FILE",
    "evaluate",
    "inference_rates",
    "write_root",
]

WP_FILE = "working_points.json"
RESULTS_FILE = "results.json"
ROOT_FILE = "discriminants.root"
#: the figures of :func:`taggers.plots.performance_figures` and their files under ``plots/``
PLOT_FILES = {
    "roc_light": "roc_light.png",
    "roc_c": "roc_c.png",
    "light_rejection_vs_pt": "light_rejection_vs_pt.png",
    "discriminants": "discriminants.png",
}
#: the provenance keys of results.json copied into working_points.json
_WP_PROVENANCE = ("hepline_version", "config_hash", "sample", "n_test_jets", "test_file", "dataset_id",
                  "created_utc", "reweighted_test_split", "error_count", "cut_definition")


def write_root(
    path: str | os.PathLike[str],
    hists: Mapping[str, Mapping[str, Any]],
    *,
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Write a TH1 ``disc_<tagger>_<flavour>`` per histogram, atomically."""
    import uproot

    with atomic_path(path, provenance=provenance) as tmp, uproot.recreate(tmp) as f:
        for t, per in hists.items():
            for fl, h in per.items():
                f[f"disc_{t}_{fl}"] = h


def inference_rates(models: TaggerModels, ds: TaggingDataset, batch_size: int) -> dict[str, Any]:
    """Jets/s of RNNIP and DL1 with torch and ONNX Runtime (``models.threads`` threads) and of
    MV2 with XGBoost on ``ds`` (which holds the RNNIP columns), plus the largest difference of
    the ONNX and torch probabilities (the taggers of ``models`` only)."""
    from taggers.algorithms.mv2 import predict_mv2
    from taggers.nn.dl1 import predict_dl1
    from taggers.nn.rnnip import predict_rnnip
    from taggers.onnx_export import load_onnx

    out: dict[str, Any] = {"jets": len(ds), "threads": models.threads, "batch_size": batch_size}

    def timed(fn: Callable[[TaggingDataset], Any]) -> tuple[Any, float, float]:
        fn(ds.subset(slice(0, min(len(ds), 1000))))  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        res = fn(ds)
        return res, time.perf_counter() - t0, time.process_time() - c0

    networks: list[tuple[str, Callable[[TaggingDataset], np.ndarray]]] = []
    if models.rnnip is not None and "rnnip" in models.taggers:
        rnnip = models.rnnip
        networks.append(("rnnip", lambda x: predict_rnnip(rnnip, x, batch_size, threads=models.threads)))
    if models.dl1 is not None:
        dl1 = models.dl1
        networks.append(("dl1", lambda x: predict_dl1(dl1, x, batch_size, threads=models.threads)))
    for kind, torch_fn in networks:
        entry: dict[str, Any] = {}
        p_t, wall_t, cpu_t = timed(torch_fn)
        entry["torch_jets_per_s"] = len(ds) / wall_t
        entry["torch_jets_per_cpu_s"] = len(ds) / cpu_t if cpu_t > 0 else None
        onnx_path = None if models.model_dir is None else models.model_dir / ONNX_FILES[kind]
        if onnx_path is not None and onnx_path.is_file():
            sess = load_onnx(onnx_path, threads=models.threads)

            def onnx_fn(x: TaggingDataset, s: Any = sess) -> np.ndarray:
                return s.predict(x, batch_size)

            p_o, wall_o, cpu_o = timed(onnx_fn)
            entry["onnx_jets_per_s"] = len(ds) / wall_o
            entry["onnx_jets_per_cpu_s"] = len(ds) / cpu_o if cpu_o > 0 else None
            entry["onnx_max_abs_diff"] = float(np.max(np.abs(p_o - p_t)))
        out[kind] = entry
    if models.mv2 is not None:
        mv2 = models.mv2
        _, wall_m, cpu_m = timed(lambda x: predict_mv2(mv2, x))
        out["mv2"] = {
            "xgboost_jets_per_s": len(ds) / wall_m,
            "xgboost_jets_per_cpu_s": len(ds) / cpu_m if cpu_m > 0 else None,
        }
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    out["load_average_1min"] = None if load is None else load[0]
    return out


def evaluate(
    cfg: Config,
    test_path: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    ipxd_dir: str | os.PathLike[str] | None = None,
    plots: bool = True,
    benchmark: bool = True,
    taggers: Collection[str] | None = None,
) -> TaggerPerformance:
    """Stage 3: evaluate the taggers on the test split and write the working points.

    Args:
        cfg: the configuration (``taggers``; ``seed`` seeds the bootstrap).
        test_path: ``test.h5`` of :mod:`taggers.prepare`.
        model_dir: the model directory of :mod:`taggers.train`.
        output_dir: where ``working_points.json``, ``results.json``, ``discriminants.root``
            and ``plots/`` go.
        ipxd_dir: the IP2D/IP3D templates (default ``<model_dir>/../ipxd``).
        plots: write the figures.
        benchmark: time the inference (``results.json``: ``inference``).
        taggers: evaluate these taggers only (default: all); only their models are read.

    Returns:
        The :class:`~taggers.performance.TaggerPerformance`.

    Raises:
        TaggerInputError: an empty test split, or one without b, c or light jets.
        ModelMismatchError: a test file of another prepared dataset than the models', a
            model reading a column the file lacks, or not the test split.
        MissingModelError: a model file is missing.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    tcfg = cfg.taggers
    out = Path(output_dir)
    test = read_split(test_path)
    split = (test.meta.get("h5_metadata") or {}).get("split")
    if split not in (None, "test"):
        raise ModelMismatchError(f"{test_path} is the {split!r} split; evaluation uses the test split only")
    check_sample(test.jets["label"], str(test_path))
    models = load_models(model_dir, tcfg, ipxd_dir=ipxd_dir, taggers=taggers)
    h5_dataset = (test.meta.get("h5_metadata") or {}).get("dataset") or {}
    if models.provenance.get("dataset_id") and h5_dataset.get("dataset_id") not in (
        None,
        models.provenance["dataset_id"],
    ):
        raise ModelMismatchError(
            f"mismatched model and feature file: {test_path} (dataset {h5_dataset.get('dataset_id')}) "
            f"is not the test split of the data the models in {model_dir} were trained on "
            f"(dataset {models.provenance['dataset_id']})"
        )
    perf = evaluate_dataset(test, models, tcfg, taggers, seed=cfg.seed, high_level=False, source=str(test_path))
    record = provenance_record(
        stage="taggers.evaluate", config=cfg,
        seeds={"bootstrap": int(cfg.seed)},
        inputs=[test_path, *sorted(models.model_files())],
    )
    write_root(out / ROOT_FILE, perf.histograms, provenance=record)

    results: dict[str, Any] = {"provenance": {}, **perf.to_dict()}
    if benchmark:
        assert perf.predictions is not None
        results["inference"] = inference_rates(models, perf.predictions.dataset,
                                               int(tcfg.evaluation.benchmark_batch_size))
    results["provenance"] = {
        "hepline_version": analysis.__version__,
        "config_hash": config_hash(tcfg),
        "sample": tcfg.sample,
        "n_test_jets": len(test),
        "test_file": str(test_path),
        "dataset_id": h5_dataset.get("dataset_id"),
        "models": models.describe(),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "reweighted_test_split": perf.sample.reweighted,
        "error_count": perf.error_count,
        "cut_definition": "a jet is b-tagged at a working point when Jet_btag_<tagger> > cut",
    }
    wp_file: dict[str, Any] = perf.working_points_dict()
    wp_file["provenance"] = {k: results["provenance"][k] for k in _WP_PROVENANCE}
    wp_file["provenance"]["models"] = models.provenance.get("files")
    wp_file["provenance"]["sentinel"] = tcfg.decoration.sentinel

    if plots:
        from analysis.plot.style import save_figure
        from taggers.plots import performance_figures

        figures = performance_figures(perf)
        results["plots"] = {
            name: str(save_figure(fig, out / "plots" / PLOT_FILES[name], dpi=100, provenance=record))
            for name, fig in figures.items()
        }
    results["timing"] = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}
    write_json(out / WP_FILE, clean_json(wp_file), provenance=record)
    write_json(out / RESULTS_FILE, clean_json(results), provenance=record)
    return perf
