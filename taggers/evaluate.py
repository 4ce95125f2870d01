"""Stage 3 of the tagger chain: performance of every tagger on the test split, working points.

:func:`evaluate` reads the test split of ``taggers.prepare`` (with its IP2D/IP3D and SV1
columns) and the models of ``--models``, measures the performance in memory
(:func:`taggers.performance.evaluate_dataset`, which documents the definitions) and writes:

* ``working_points.json``: the only source of b-tagging cuts downstream (cut, efficiencies
  and rejections with errors per working point, efficiency maps against pT);
* ``results.json``: everything (ROC curves, efficiencies against pT and |η|, ratios to the
  reference tagger with bootstrap errors, the torch vs ONNX Runtime inference rates);
* ``discriminants.root``: the discriminant per flavour (``disc_<tagger>_<flavour>`` TH1s);
* ``working_points.correctionlib.json``: the cuts, the MC efficiency maps and the (configured)
  scale factors as a correctionlib set (:mod:`taggers.correctionlib_export`);
* ``test_scores.h5``: the test split with every tagger's outputs in the FTAG conventions
  (``<tagger>_p{b,c,u,tau}``, ``mv2_discriminant``, ``mcEventWeight``, the truth labels; MeV;
  :mod:`taggers.ftag`), which ``ftag.hdf5.H5Reader`` and puma read as they are;
* ``plots/*.png`` (:mod:`taggers.plots`) and, with puma installed (the ``ftag`` extra),
  ``plots/puma/*.png`` (:mod:`taggers.puma_plots`).

:func:`evaluate_external` evaluates a discriminant and a truth label read from any supported
file (e.g. ``Jet_btagDeepFlavB`` and ``Jet_hadronFlavour`` of CMS NanoAOD,
:mod:`taggers.external`) and writes the same working-point file, results, correctionlib set
and plots; for NanoAOD also ``selection_btag.json``, the HH selection's b-tagging section with
the measured cuts and efficiencies (``hepline select --set
"selection.objects.nanoaod.jet.btag=$(cat selection_btag.json)"``).

Command line::

    hepline taggers evaluate --config workflows/config/default.yaml \\
        --test results/taggers/test.h5 --models results/taggers/models --output-dir results/taggers
    hepline taggers evaluate --config workflows/config/default.yaml --discriminant Jet_btagDeepFlavB \\
        --label Jet_hadronFlavour --input nano_*.root --output-dir results/deepflav
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import analysis
from analysis.core.atomic import atomic_path, write_json
from analysis.core.config import Config, config_hash
from analysis.core.errors import ModelMismatchError
from analysis.core.provenance import provenance_record
from taggers.correctionlib_export import CORRECTIONLIB_FILE, write_correctionlib
from taggers.export import read_split, write_h5
from taggers.features import TaggingDataset
from taggers.ftag import tagger_columns
from taggers.models import ONNX_FILES, TaggerModels, load_models
from taggers.performance import (
    TaggerPerformance,
    check_sample,
    clean_json,
    evaluate_dataset,
    evaluate_predictions,
)

log = logging.getLogger(__name__)

__all__ = [
    "CORRECTIONLIB_FILE",
    "PLOT_FILES",
    "PUMA_PLOT_DIR",
    "RESULTS_FILE",
    "ROOT_FILE",
    "SCORES_FILE",
    "SELECTION_BTAG_FILE",
    "WP_FILE",
    "WP_FORMAT",
    "evaluate",
    "evaluate_external",
    "inference_rates",
    "write_root",
]

WP_FILE = "working_points.json"
#: the ``format`` of ``working_points.json`` (docs/taggers-results.md documents every key)
WP_FORMAT = "hepline-working-points/1"
#: the test split with every tagger's outputs, in the FTAG conventions
SCORES_FILE = "test_scores.h5"
#: an external NanoAOD evaluation's b-tagging for the HH selection: the value of
#: ``selection.objects.nanoaod.jet.btag`` (:func:`taggers.external.selection_btag_config`)
SELECTION_BTAG_FILE = "selection_btag.json"
#: the puma figures' folder under the output directory (with the ``ftag`` extra)
PUMA_PLOT_DIR = "plots/puma"
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
    MV2 with XGBoost and ONNX Runtime on ``ds`` (which holds the RNNIP columns), plus the
    largest difference of the ONNX and torch (XGBoost) outputs (the taggers of ``models``
    only)."""
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
        s_x, wall_m, cpu_m = timed(lambda x: predict_mv2(mv2, x))
        mv2_entry: dict[str, Any] = {
            "xgboost_jets_per_s": len(ds) / wall_m,
            "xgboost_jets_per_cpu_s": len(ds) / cpu_m if cpu_m > 0 else None,
        }
        mv2_onnx = None if models.model_dir is None else models.model_dir / ONNX_FILES["mv2"]
        if mv2_onnx is not None and mv2_onnx.is_file():
            mv2_sess = load_onnx(mv2_onnx, threads=models.threads)
            s_o, wall_o, cpu_o = timed(lambda x: mv2_sess.predict(x, batch_size))
            mv2_entry["onnx_jets_per_s"] = len(ds) / wall_o
            mv2_entry["onnx_jets_per_cpu_s"] = len(ds) / cpu_o if cpu_o > 0 else None
            mv2_entry["onnx_max_abs_diff"] = float(np.max(np.abs(s_o - s_x)))
        out["mv2"] = mv2_entry
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

    assert perf.predictions is not None
    scores = perf.predictions.dataset.with_jet_fields(tagger_columns(perf.predictions))
    write_h5(out / SCORES_FILE, scores,
             {"config_hash": config_hash(tcfg), "split": "test", "sample": tcfg.sample, "dataset": h5_dataset,
              "taggers": list(perf.taggers), "fc": {t: models.fc(t) for t in perf.taggers},
              "scores": "<tagger>_p{b,c,u,tau} (IP2D/IP3D: ptau = 0), mv2_discriminant = ln(s / (1 - s))"},
             provenance=record)
    results["scores_file"] = str(out / SCORES_FILE)
    _write_common(cfg, perf, out, results, wp_file, record, plots=plots, reference=None)
    results["timing"] = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}
    write_json(out / WP_FILE, clean_json(wp_file), provenance=record)
    write_json(out / RESULTS_FILE, clean_json(results), provenance=record)
    return perf


def _write_common(
    cfg: Config,
    perf: TaggerPerformance,
    out: Path,
    results: dict[str, Any],
    wp_file: dict[str, Any],
    record: Mapping[str, Any],
    *,
    plots: bool,
    reference: str | None = None,
) -> None:
    """The outputs every evaluation writes besides the two JSON files: the correctionlib set
    and the figures (hepline's, and puma's when installed; ``reference``: the ROC ratios'
    tagger, default the configured one); completes ``wp_file`` (format, companion files) and
    ``results`` (their paths)."""
    wp_file["format"] = WP_FORMAT
    wp_file["files"] = {"correctionlib": CORRECTIONLIB_FILE}
    write_correctionlib(out / CORRECTIONLIB_FILE, clean_json(wp_file),
                        cfg.selection.hh_yybb.btag.scale_factors, provenance=record)
    results["correctionlib_file"] = str(out / CORRECTIONLIB_FILE)
    if not plots:
        return
    from analysis.plot.style import save_figure
    from taggers.plots import performance_figures
    from taggers.puma_plots import available, write_puma_figures

    figures = performance_figures(perf, reference=reference)
    results["plots"] = {
        name: str(save_figure(fig, out / "plots" / PLOT_FILES[name], dpi=100, provenance=record))
        for name, fig in figures.items()
    }
    if available():
        results["plots_puma"] = {name: str(p) for name, p in
                                 write_puma_figures(perf, out / PUMA_PLOT_DIR, reference=reference,
                                                                    provenance=record).items()}
    else:
        log.info("puma is not installed (pip install 'hepline[ftag]'): no plots in %s", out / PUMA_PLOT_DIR)


def evaluate_external(
    cfg: Config,
    files: Sequence[str | os.PathLike[str]],
    discriminant: str,
    label: str,
    output_dir: str | os.PathLike[str],
    *,
    name: str | None = None,
    weight: str | None = None,
    pt: str | None = None,
    eta: str | None = None,
    fraction_c: float | None = None,
    plots: bool = True,
) -> TaggerPerformance:
    """Evaluate an external discriminant against a truth label (:mod:`taggers.external`).

    Writes, in ``output_dir``, the files of :func:`evaluate` that do not need hepline's
    models: ``working_points.json`` (the same layout: ``taggers.<name>`` with ``variable`` =
    ``discriminant``, ``fc`` null, the working points and the efficiency maps against pT;
    the HH selection reads it with ``--working-points`` on hepline ntuples, where the
    discriminant is ``Jet_btag_<name>``), ``results.json`` (ROC curves, AUCs, efficiencies
    against pT and |η|; no ratios: one tagger), ``discriminants.root``, the correctionlib set
    and the plots. When every input is CMS NanoAOD (or every one ATLAS PHYSLITE), also
    :data:`SELECTION_BTAG_FILE`: the HH selection takes their b-tagging from its config, and
    this is the ``selection.objects.nanoaod.jet.btag`` (``physlite``) section with the measured
    cuts and MC efficiencies (``files.selection_config`` of the working-point file names it
    and the key).

    Args:
        cfg: the configuration (``taggers.jets`` acceptance, ``working_points``,
            ``evaluation``; the scale factors of the correctionlib set).
        files: the input files (ROOT of a supported format, or dumper HDF5).
        discriminant: the discriminant's branch (larger = more b-like).
        label: the truth-flavour branch (5 b, 4 c, 0 light, 15 τ).
        output_dir: where the files go.
        name: the tagger's name in the outputs (default :func:`taggers.external.external_name`).
        weight: a jet or event weight branch (default: unit weights).
        pt, eta: the jet pT and η branches (default: the discriminant's collection's).
        fraction_c: PHYSLITE: the f_c of the tagger's discriminant (default: that of
            ``selection.objects.physlite.jet.btag`` when it names the same tagger).
        plots: write the figures.

    Returns:
        The :class:`~taggers.performance.TaggerPerformance`.

    Raises:
        InputFileError: a missing branch. TaggerInputError: no b, c or light jet.
        NonFiniteInputError: NaN/inf in the discriminant.
    """
    from taggers.external import (
        NANOAOD_BTAG_KEY,
        external_predictions,
        read_external,
        selection_btag_config,
    )

    t0, c0 = time.perf_counter(), time.process_time()
    tcfg = cfg.taggers
    out = Path(output_dir)
    paths = [os.fspath(f) for f in files]
    atlas = cfg.selection.objects.physlite.jet.btag
    f_c = fraction_c if fraction_c is not None else (atlas.fraction_c if discriminant == atlas.tagger else None)
    jets = read_external(paths, discriminant, label, tcfg.jets, name=name, weight=weight, pt=pt, eta=eta,
                         fraction_c=f_c)
    source = ", ".join(paths)
    perf = evaluate_predictions(external_predictions(jets), tcfg, seed=int(cfg.seed), fc={jets.name: None},
                                source=source)
    record = provenance_record(stage="taggers.evaluate", config=cfg, seeds={"bootstrap": int(cfg.seed)},
                               inputs=paths, extra={"external": {"discriminant": discriminant, "label": label}})
    write_root(out / ROOT_FILE, perf.histograms, provenance=record)
    external = {"files": paths, "discriminant": discriminant, "label": label, "weight": weight,
                "jets_read": jets.jets_read, "jets_in_acceptance": len(jets),
                "acceptance": tcfg.jets.to_dict()}
    results: dict[str, Any] = {"provenance": {}, **perf.to_dict()}
    results["taggers"][jets.name]["variable"] = discriminant
    results["provenance"] = {
        "hepline_version": analysis.__version__,
        "config_hash": config_hash(tcfg),
        "sample": None,
        "n_test_jets": len(jets),
        "test_file": source,
        "dataset_id": None,
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "reweighted_test_split": False,
        "error_count": perf.error_count,
        "cut_definition": f"a jet is b-tagged at a working point when {discriminant} > cut",
        "external": external,
    }
    wp_file: dict[str, Any] = perf.working_points_dict()
    wp_file["taggers"][jets.name]["variable"] = discriminant
    wp_file["provenance"] = {k: results["provenance"][k] for k in (*_WP_PROVENANCE, "external")}
    _write_common(cfg, perf, out, results, wp_file, record, plots=plots, reference=jets.name)
    fmts = set(jets.formats)
    if len(fmts) == 1 and fmts <= {"nanoaod", "physlite"}:
        hh = cfg.selection.hh_yybb.btag
        fmt = fmts.pop()
        config = selection_btag_config(clean_json(wp_file)["taggers"][jets.name], discriminant, fmt=fmt,
                                       two_tag_wp=hh.two_tag_wp, one_tag_wp=hh.one_tag_wp,
                                       collection=cfg.selection.objects.nanoaod.jet.collection,
                                       fraction_c=f_c, container=cfg.selection.objects.physlite.jet.btag.container)
        if config is None:
            log.warning("%s is not a discriminant of the HH selection's jets, or working point %s/%s was not "
                        "evaluated: no %s", discriminant, hh.two_tag_wp, hh.one_tag_wp, SELECTION_BTAG_FILE)
        else:
            key, section = config
            write_json(out / SELECTION_BTAG_FILE, section, provenance=record)
            wp_file["files"]["selection_config"] = {"file": SELECTION_BTAG_FILE, "key": key}
            results["selection_config_file"] = str(out / SELECTION_BTAG_FILE)
    results["timing"] = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}
    write_json(out / WP_FILE, clean_json(wp_file), provenance=record)
    write_json(out / RESULTS_FILE, clean_json(results), provenance=record)
    return perf
