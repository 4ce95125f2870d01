"""Stage 3 of the tagger chain: performance of every tagger on the test split, working points.

All taggers are evaluated on the same jets: the test split of ``taggers.prepare``
(``event % 10 == 9``), with the IP2D/IP3D and SV1 columns stored there and the RNNIP, MV2 and
DL1 models of ``--models``. The test split is **not** reweighted by default
(``taggers.reweighting.apply_to`` = train, validation): its jets carry unit weights and the
natural ttbar (pT, |η|) spectra of each flavour. All numbers below use the jets' weights, so a
reweighted test split would be handled consistently.

* **Discriminants** (:mod:`taggers.models`); a jet is *tagged* at a working point when
  ``D > cut``.
* **Working points** (fixed cut): for each b efficiency ε in ``taggers.working_points`` the
  cut is the midpoint between two adjacent distinct D values of the b jets (rounded to
  float32 like the decorated branches) whose weighted fraction of b jets above it is closest
  to ε (:func:`working_point_cut`).
* **Efficiencies and rejections:** ``ε = Σw(pass) / Σw``, ``R = 1/ε``, binomial errors
  ``σ_ε = sqrt(ε (1 − ε) / N)`` and ``σ_R = R sqrt((1 − ε) / (ε N))`` with ``N`` the Kish
  effective count ``(Σw)² / Σw²`` of the flavour's jets (``taggers.evaluation.error_count``;
  equal to the plain count for unit weights). If no jet passes, ε is replaced by ``1/N``
  (``R = N`` is then a lower limit, flagged ``*_lower_limit``).
* **Ratios** to the reference tagger (IP3D) at every working point: the value, the error
  from uncorrelated propagation of the two binomial errors, and the standard deviation over
  ``taggers.evaluation.bootstrap`` Poisson-bootstrap replicas of the test jets in which the
  cuts are re-derived (this accounts for the correlation of taggers evaluated on the same
  jets and for the statistical error of the cut).
* **ROC curves** (:func:`sklearn.metrics.roc_curve` with the weights): light and c
  rejection against b efficiency, stored on the grid ``taggers.evaluation.roc_b_efficiency``.
* Efficiency per flavour against jet pT and |η| at every working point; discriminant
  histograms per flavour (``disc_<tagger>_<flavour>`` TH1s); torch vs ONNX Runtime inference
  rates on the test split.

Outputs in ``--output-dir``: ``working_points.json`` (the only source of b-tagging cuts
downstream), ``results.json`` (everything), ``discriminants.root`` and ``plots/*.png``.

Command line::

    python -m taggers.evaluate --config workflows/config/default.yaml \\
        --test results/taggers/test.h5 --models results/taggers/models --output-dir results/taggers
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import analysis
from analysis.core.atomic import atomic_path, write_json
from analysis.core.config import config_hash, load_raw_config
from analysis.core.atomic import attach_provenance
from analysis.core.provenance import provenance_record
from taggers.features import TaggingDataset, tagger_config
from taggers.models import ONNX_FILES, TAGGERS, TaggerModels, load_models, read_split
from taggers.training import ModelMismatchError, TaggerInputError

log = logging.getLogger(__name__)

FLAVOURS: dict[str, int] = {"b": 5, "c": 4, "light": 0, "tau": 15}
WP_FILE = "working_points.json"
RESULTS_FILE = "results.json"
ROOT_FILE = "discriminants.root"
PLOT_FILES = {
    "roc_light": "roc_light.png",
    "roc_c": "roc_c.png",
    "light_rejection_vs_pt": "light_rejection_vs_pt.png",
    "discriminants": "discriminants.png",
}


def wp_name(eff: float) -> str:
    """``0.7 -> "70"``, ``0.775 -> "77.5"``."""
    return f"{100 * eff:.10g}"


def branch_name(tagger: str) -> str:
    return f"Jet_btag_{tagger}"


# --------------------------------------------------------------------------- statistics


def effective_count(w: np.ndarray, how: str = "kish") -> float:
    """``N`` of the binomial errors: Kish ``(Σw)²/Σw²`` or the plain number of entries."""
    w = np.asarray(w, dtype=np.float64)
    if how == "unweighted":
        return float(w.size)
    s2 = float(np.sum(w * w))
    return float(np.sum(w)) ** 2 / s2 if s2 > 0 else 0.0


def binomial_efficiency(
    passed: np.ndarray, w: np.ndarray | None = None, how: str = "kish"
) -> dict[str, float]:
    """``{"eff", "err", "n", "n_eff"}`` of a weighted pass mask (``eff`` NaN when empty)."""
    passed = np.asarray(passed, dtype=bool)
    w = np.ones(passed.size) if w is None else np.asarray(w, dtype=np.float64)
    total = float(w.sum())
    n_eff = effective_count(w, how)
    if passed.size == 0 or total <= 0:
        return {"eff": math.nan, "err": math.nan, "n": int(passed.size), "n_eff": n_eff}
    eff = float(w[passed].sum()) / total
    err = math.sqrt(max(eff * (1 - eff), 0.0) / n_eff) if n_eff > 0 else math.nan
    return {"eff": eff, "err": err, "n": int(passed.size), "n_eff": n_eff}


def rejection(eff: float, n_eff: float) -> dict[str, Any]:
    """``R = 1/ε`` and ``σ_R = R sqrt((1 − ε)/(ε N))``. For ``ε = 0`` (no jet passes) the
    one-jet-equivalent ``ε = 1/N`` is used and ``lower_limit`` is True."""
    if not n_eff > 0 or not math.isfinite(eff):
        raise TaggerInputError("rejection of an empty jet sample")
    limit = eff <= 0.0
    e = 1.0 / n_eff if limit else eff
    r = 1.0 / e
    return {"value": r, "err": r * math.sqrt(max(1.0 - e, 0.0) / (e * n_eff)), "lower_limit": limit}


def working_point_cut(d: np.ndarray, w: np.ndarray, eff: float) -> tuple[float, float]:
    """Fixed cut on ``d`` giving the (weighted) efficiency closest to ``eff`` for ``D > cut``.

    The candidate cuts are the midpoints between adjacent distinct values (and one below the
    smallest), so ties are never split. Returns ``(cut, achieved efficiency)``.
    """
    d = np.asarray(d, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    if d.size == 0 or w.sum() <= 0:
        raise TaggerInputError("no b jets to derive a working point on")
    vals, inv = np.unique(d, return_inverse=True)  # ascending
    wsum = np.bincount(inv, weights=w, minlength=vals.size)[::-1]  # descending values
    vals = vals[::-1]
    frac = np.cumsum(wsum) / wsum.sum()  # fraction with D >= vals[i] == D > cut_i
    i = int(np.argmin(np.abs(frac - eff)))
    lower = vals[i + 1] if i + 1 < vals.size else vals[i] - max(1.0, abs(vals[i]))
    return float(0.5 * (vals[i] + lower)), float(frac[i])


def _f32(d: np.ndarray) -> np.ndarray:
    """The discriminant as the decorated float32 branch holds it (back in float64)."""
    return np.asarray(d, dtype=np.float32).astype(np.float64)


def roc_curves(d: np.ndarray, label: np.ndarray, w: np.ndarray, grid: np.ndarray) -> dict[str, Any]:
    """Light and c rejection on the b-efficiency ``grid`` (NaN where no background passes),
    and the AUCs, from :func:`sklearn.metrics.roc_curve` / ``roc_auc_score`` with weights."""
    from sklearn.metrics import roc_auc_score, roc_curve

    out: dict[str, Any] = {}
    for bkg_name in ("light", "c"):
        sel = (label == FLAVOURS["b"]) | (label == FLAVOURS[bkg_name])
        y = label[sel] == FLAVOURS["b"]
        fpr, tpr, _ = roc_curve(y, d[sel], sample_weight=w[sel], drop_intermediate=False)
        # tpr is non-decreasing; interpolate the background efficiency at the grid points
        eff_bkg = np.interp(grid, tpr, fpr)
        with np.errstate(divide="ignore"):
            rej = np.where(eff_bkg > 0, 1.0 / np.maximum(eff_bkg, 1e-300), np.nan)
        n_bkg = effective_count(w[label == FLAVOURS[bkg_name]])
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.sqrt((1 - eff_bkg) / (eff_bkg * n_bkg))
        out[f"{bkg_name}_rejection"] = rej
        out[f"{bkg_name}_rejection_rel_err"] = np.where(eff_bkg > 0, rel, np.nan)
        out[f"auc_b_vs_{bkg_name}"] = float(roc_auc_score(y, d[sel], sample_weight=w[sel]))
    return out


def working_point_numbers(
    d: np.ndarray, label: np.ndarray, w: np.ndarray, effs: Sequence[float], how: str = "kish"
) -> dict[str, Any]:
    """Per b efficiency in ``effs`` (keys ``"70"``...): the cut, the measured b efficiency and
    its error, the light/c/tau efficiencies, the light and c rejections with binomial errors
    and lower-limit flags. ``d``: discriminant, ``label``: HadronConeExclTruthLabelID."""
    is_b = label == FLAVOURS["b"]
    out = {}
    for eff in effs:
        cut, _ = working_point_cut(d[is_b], w[is_b], eff)
        entry: dict[str, Any] = {"cut": cut, "b_efficiency": float(eff)}
        tagged = d > cut
        b = binomial_efficiency(tagged[is_b], w[is_b], how)
        entry["b_efficiency_measured"] = b["eff"]
        entry["b_efficiency_err"] = b["err"]
        for fl in ("light", "c", "tau"):
            sel = label == FLAVOURS[fl]
            if not sel.any():
                continue
            e = binomial_efficiency(tagged[sel], w[sel], how)
            entry[f"{fl}_efficiency"] = e["eff"]
            entry[f"{fl}_efficiency_err"] = e["err"]
            if fl != "tau":
                r = rejection(e["eff"], e["n_eff"])
                entry[f"{fl}_rejection"] = r["value"]
                entry[f"{fl}_rejection_err"] = r["err"]
                entry[f"{fl}_rejection_lower_limit"] = r["lower_limit"]
        out[wp_name(eff)] = entry
    return out


def binned_efficiencies(
    d: np.ndarray,
    label: np.ndarray,
    w: np.ndarray,
    x: np.ndarray,
    edges: Sequence[float],
    cuts: Mapping[str, float],
    how: str,
) -> dict[str, Any]:
    """Per WP and flavour: efficiency, error, jets per bin of ``x`` (values beyond the outer
    edges are not counted), plus the light and c rejection with errors."""
    e = np.asarray(edges, dtype=np.float64)
    ibin = np.searchsorted(e, x, side="right") - 1
    inside = (ibin >= 0) & (ibin < e.size - 1)
    out: dict[str, Any] = {}
    for wp, cut in cuts.items():
        tagged = d > cut
        per: dict[str, Any] = {}
        for fl, lab in FLAVOURS.items():
            rows = {"eff": [], "err": [], "n": []}
            rej: dict[str, list] = {"value": [], "err": [], "lower_limit": []}
            for k in range(e.size - 1):
                sel = inside & (ibin == k) & (label == lab)
                r = binomial_efficiency(tagged[sel], w[sel], how)
                rows["eff"].append(None if math.isnan(r["eff"]) else r["eff"])
                rows["err"].append(None if math.isnan(r["err"]) else r["err"])
                rows["n"].append(r["n"])
                if fl in ("light", "c"):
                    if r["n"] and r["n_eff"] > 0:
                        rr = rejection(r["eff"], r["n_eff"])
                        rej["value"].append(rr["value"])
                        rej["err"].append(rr["err"])
                        rej["lower_limit"].append(rr["lower_limit"])
                    else:
                        rej["value"].append(None)
                        rej["err"].append(None)
                        rej["lower_limit"].append(None)
            if fl in ("light", "c"):
                rows["rejection"] = rej
            per[fl] = rows
        out[wp] = per
    return out


def bootstrap_ratios(
    disc: Mapping[str, np.ndarray],
    label: np.ndarray,
    w: np.ndarray,
    effs: Sequence[float],
    reference: str,
    n_replicas: int,
    seed: int,
) -> dict[str, Any]:
    """Standard deviation, over Poisson-bootstrap replicas of the jets, of each tagger's
    light and c rejection divided by the reference tagger's (cuts re-derived per replica)."""
    if n_replicas <= 0:
        return {}
    rng = np.random.default_rng(seed)
    is_b = label == FLAVOURS["b"]
    sel = {fl: label == FLAVOURS[fl] for fl in ("light", "c")}
    samples: dict[tuple[str, str, str], list[float]] = {}
    skipped = 0
    for _ in range(n_replicas):
        wr = w * rng.poisson(1.0, size=w.size)
        rej: dict[tuple[str, str, str], float] = {}
        ok = True
        for t, d in disc.items():
            for eff in effs:
                cut, _ = working_point_cut(d[is_b], wr[is_b], eff)
                for fl, s in sel.items():
                    num = float(wr[s][d[s] > cut].sum())
                    if num <= 0:
                        ok = False
                        continue
                    rej[(t, wp_name(eff), fl)] = float(wr[s].sum()) / num
        if not ok:
            skipped += 1
            continue
        for (t, wp, fl), r in rej.items():
            if t != reference:
                samples.setdefault((t, wp, fl), []).append(r / rej[(reference, wp, fl)])
    out: dict[str, Any] = {"replicas": n_replicas, "skipped_replicas": skipped, "std": {}}
    for (t, wp, fl), vals in samples.items():
        out["std"].setdefault(t, {}).setdefault(wp, {})[fl] = (
            float(np.std(vals, ddof=1)) if len(vals) > 1 else None
        )
    return out


# --------------------------------------------------------------------------- histograms


def discriminant_histograms(
    disc: Mapping[str, np.ndarray], label: np.ndarray, w: np.ndarray, bins: int
) -> dict[str, Any]:
    """``{tagger: {flavour: hist.Hist}}``, range from the 0.1 % and 99.9 % quantiles of all jets
    (under/overflow kept in the flow bins)."""
    import hist

    out: dict[str, Any] = {}
    for t, d in disc.items():
        lo, hi = np.quantile(d, [0.001, 0.999])
        if not hi > lo:
            lo, hi = lo - 1.0, hi + 1.0
        per = {}
        for fl, lab in FLAVOURS.items():
            h = hist.Hist(
                hist.axis.Regular(bins, float(lo), float(hi), name="D", label=f"{t} discriminant"),
                storage=hist.storage.Weight(),
            )
            sel = label == lab
            h.fill(D=d[sel], weight=w[sel])
            per[fl] = h
        out[t] = per
    return out


def write_root(
    path: str | os.PathLike[str],
    hists: Mapping[str, Mapping[str, Any]],
    *,
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """TH1 ``disc_<tagger>_<flavour>`` per histogram, written atomically."""
    import uproot

    with atomic_path(path, provenance=provenance) as tmp, uproot.recreate(tmp) as f:
        for t, per in hists.items():
            for fl, h in per.items():
                f[f"disc_{t}_{fl}"] = h


# --------------------------------------------------------------------------- inference rates


def inference_rates(models: TaggerModels, ds: TaggingDataset, batch_size: int) -> dict[str, Any]:
    """Jets/s of RNNIP and DL1 with torch and ONNX Runtime (``models.threads`` threads) and
    MV2 with XGBoost on ``ds`` (which holds the RNNIP columns), plus the largest difference of
    the ONNX and torch probabilities."""
    from taggers.nn.dl1 import predict_dl1
    from taggers.algorithms.mv2 import predict_mv2
    from taggers.onnx_export import load_onnx
    from taggers.nn.rnnip import predict_rnnip

    out: dict[str, Any] = {"jets": len(ds), "threads": models.threads, "batch_size": batch_size}

    def timed(fn: Any) -> tuple[Any, float, float]:
        fn_small = ds.subset(slice(0, min(len(ds), 1000)))
        fn(fn_small)  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        res = fn(ds)
        return res, time.perf_counter() - t0, time.process_time() - c0

    for kind, torch_fn in (
        ("rnnip", lambda x: predict_rnnip(models.rnnip, x, batch_size, threads=models.threads)),
        ("dl1", lambda x: predict_dl1(models.dl1, x, batch_size, threads=models.threads)),
    ):
        entry: dict[str, Any] = {}
        p_t, wall_t, cpu_t = timed(torch_fn)
        entry["torch_jets_per_s"] = len(ds) / wall_t
        entry["torch_jets_per_cpu_s"] = len(ds) / cpu_t if cpu_t > 0 else None
        onnx_path = None if models.model_dir is None else models.model_dir / ONNX_FILES[kind]
        if onnx_path is not None and onnx_path.is_file():
            sess = load_onnx(onnx_path, threads=models.threads)
            p_o, wall_o, cpu_o = timed(lambda x, s=sess: s.predict(x, batch_size))
            entry["onnx_jets_per_s"] = len(ds) / wall_o
            entry["onnx_jets_per_cpu_s"] = len(ds) / cpu_o if cpu_o > 0 else None
            entry["onnx_max_abs_diff"] = float(np.max(np.abs(p_o - p_t)))
        out[kind] = entry
    _, wall_m, cpu_m = timed(lambda x: predict_mv2(models.mv2, x))
    out["mv2"] = {
        "xgboost_jets_per_s": len(ds) / wall_m,
        "xgboost_jets_per_cpu_s": len(ds) / cpu_m if cpu_m > 0 else None,
    }
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    out["load_average_1min"] = None if load is None else load[0]
    return out


# --------------------------------------------------------------------------- the stage


def _check_test_set(test: TaggingDataset, path: str) -> None:
    if len(test) == 0:
        raise TaggerInputError(f"the test set {path} is empty (0 jets): nothing to evaluate")
    split = (test.meta.get("h5_metadata") or {}).get("split")
    if split not in (None, "test"):
        raise ValueError(f"{path} is the {split!r} split; evaluation uses the test split only")
    for fl in ("b", "c", "light"):
        if not np.any(test.jets["label"] == FLAVOURS[fl]):
            raise TaggerInputError(
                f"the test set {path} ({len(test)} jets) has no {fl} jets "
                f"(HadronConeExclTruthLabelID {FLAVOURS[fl]}): cannot derive working points "
                "and rejections"
            )


def _clean(x: Any) -> Any:
    """JSON-safe: numpy to lists, NaN/inf to None."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def evaluate(
    config: Mapping[str, Any],
    test_path: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    ipxd_dir: str | os.PathLike[str] | None = None,
    plots: bool = True,
    benchmark: bool = True,
) -> dict[str, Any]:
    """Run the stage; returns the results (also in ``<output_dir>/results.json``)."""
    t0, c0 = time.perf_counter(), time.process_time()
    tcfg = tagger_config(config.get("taggers"))
    ecfg = tcfg["evaluation"]
    how = ecfg["error_count"]
    out = Path(output_dir)
    test = read_split(test_path)
    _check_test_set(test, str(test_path))
    models = load_models(model_dir, config, ipxd_dir=ipxd_dir)
    prov_test = (test.meta.get("h5_metadata") or {}).get("dataset") or {}
    if models.provenance.get("dataset_id") and prov_test.get("dataset_id") not in (
        None,
        models.provenance["dataset_id"],
    ):
        raise ModelMismatchError(
            f"mismatched model and feature file: {test_path} (dataset {prov_test.get('dataset_id')}) "
            f"is not the test split of the data the models in {model_dir} were trained on "
            f"(dataset {models.provenance['dataset_id']})"
        )
    pred = models.predict(test, high_level=False)
    full = pred["dataset"]
    disc = {t: _f32(d) for t, d in pred["discriminants"].items()}
    label = np.asarray(test.jets["label"])
    w = np.asarray(test.jets["weight"], dtype=np.float64)
    reweighted = bool((test.meta.get("h5_metadata") or {}).get("reweighted", False))
    effs = [float(e) for e in tcfg["working_points"]]
    first, last, step = (float(v) for v in ecfg["roc_b_efficiency"])
    grid = np.round(np.arange(first, last + 0.5 * step, step), 10)
    grid = grid[(grid > 0) & (grid <= 1)]
    ref = ecfg["reference_tagger"]

    results: dict[str, Any] = {
        "provenance": {},
        "test_split": {
            "file": str(test_path),
            "jets": len(test),
            "reweighted": reweighted,
            "weights": "unit" if np.all(w == 1.0) else "reweighted",
            "flavours": {
                fl: {
                    "jets": int((label == lab).sum()),
                    "sum_weights": float(w[label == lab].sum()),
                    "n_eff": effective_count(w[label == lab], how),
                }
                for fl, lab in FLAVOURS.items()
            },
        },
        "definitions": {
            "tagged": "D > cut",
            "rejection": "1 / efficiency",
            "error_count": how,
            "rejection_error": "R * sqrt((1 - eps) / (eps * N))",
            "ratio_error_uncorrelated": "r * sqrt((sR1/R1)^2 + (sR2/R2)^2)",
            "ratio_error_bootstrap": "std over Poisson-bootstrap replicas, cuts re-derived",
            "reference_tagger": ref,
        },
        "roc_b_efficiency": grid,
        "taggers": {},
    }
    wp_file: dict[str, Any] = {"taggers": {}}
    for t in TAGGERS:
        d = disc[t]
        wps = working_point_numbers(d, label, w, effs, how)
        roc = roc_curves(d, label, w, grid)
        cuts = {wp: e["cut"] for wp, e in wps.items()}
        entry = {
            "variable": branch_name(t),
            "fc": models.fc(t),
            "auc_b_vs_light": roc.pop("auc_b_vs_light"),
            "auc_b_vs_c": roc.pop("auc_b_vs_c"),
            "working_points": wps,
            "roc": roc,
            "efficiency_vs_pt": binned_efficiencies(
                d,
                label,
                w,
                np.asarray(test.jets["pt"], np.float64),
                ecfg["pt_edges_gev"],
                cuts,
                how,
            ),
            "efficiency_vs_abs_eta": binned_efficiencies(
                d,
                label,
                w,
                np.abs(np.asarray(test.jets["eta"], np.float64)),
                ecfg["abs_eta_edges"],
                cuts,
                how,
            ),
            "discriminant_min": float(d.min()),
            "discriminant_max": float(d.max()),
        }
        results["taggers"][t] = entry
        wp_file["taggers"][t] = {
            "variable": branch_name(t),
            "fc": models.fc(t),
            "working_points": {
                wp: {
                    k: e[k]
                    for k in (
                        "cut",
                        "b_efficiency",
                        "light_rejection",
                        "light_rejection_err",
                        "c_rejection",
                        "c_rejection_err",
                        "b_efficiency_measured",
                        "b_efficiency_err",
                        "light_rejection_lower_limit",
                        "c_rejection_lower_limit",
                    )
                }
                for wp, e in wps.items()
            },
            # efficiency maps for truth tagging and b-tag SF weights downstream: per WP and
            # flavour, the efficiency in each pT bin (None: no test jet in the bin) and the
            # test jets behind it (so that a user can skip statistically empty bins)
            "efficiency_vs_pt": {
                "pt_edges_gev": [float(x) for x in ecfg["pt_edges_gev"]],
                "working_points": {
                    wp: {fl: list(v["eff"]) for fl, v in per.items()}
                    for wp, per in entry["efficiency_vs_pt"].items()
                },
                "jets": {
                    wp: {fl: [int(n) for n in v["n"]] for fl, v in per.items()}
                    for wp, per in entry["efficiency_vs_pt"].items()
                },
            },
        }
    results["binning"] = {
        "pt_edges_gev": ecfg["pt_edges_gev"],
        "abs_eta_edges": ecfg["abs_eta_edges"],
    }

    # ratios to the reference tagger
    boot = bootstrap_ratios(
        disc, label, w, effs, ref, int(ecfg["bootstrap"]), seed=int(config.get("seed", 0))
    )
    ratios: dict[str, Any] = {}
    for t in TAGGERS:
        if t == ref:
            continue
        for wp in (wp_name(e) for e in effs):
            for fl in ("light", "c"):
                a = results["taggers"][t]["working_points"][wp]
                b = results["taggers"][ref]["working_points"][wp]
                r = a[f"{fl}_rejection"] / b[f"{fl}_rejection"]
                unc = r * math.hypot(
                    a[f"{fl}_rejection_err"] / a[f"{fl}_rejection"],
                    b[f"{fl}_rejection_err"] / b[f"{fl}_rejection"],
                )
                ratios.setdefault(t, {}).setdefault(wp, {})[fl] = {
                    "value": r,
                    "error_uncorrelated": unc,
                    "error_bootstrap": ((boot.get("std") or {}).get(t, {}).get(wp, {}).get(fl)),
                    "lower_limit_involved": bool(
                        a[f"{fl}_rejection_lower_limit"] or b[f"{fl}_rejection_lower_limit"]
                    ),
                }
    results["ratios_to_reference"] = ratios
    results["bootstrap"] = {k: v for k, v in boot.items() if k != "std"}
    headline_wp = "70" if "70" in ratios.get("rnnip", {}) else wp_name(effs[0])
    if ref == "ip3d" and "rnnip" in ratios:
        h = ratios["rnnip"][headline_wp]["light"]
        err = h["error_bootstrap"] if h["error_bootstrap"] is not None else h["error_uncorrelated"]
        results["rnnip_over_ip3d_light_rejection"] = {"wp": headline_wp, **h, "error": err}

    # histograms
    hists = discriminant_histograms(disc, label, w, int(ecfg["discriminant_bins"]))
    record = provenance_record(
        stage="taggers.evaluate", config=config,
        seeds={"bootstrap": int(config.get("seed", 0))},
        inputs=[test_path, *sorted(str(f) for f in _model_files(models))],
    )
    write_root(out / ROOT_FILE, hists, provenance=record)

    if benchmark:
        results["inference"] = inference_rates(models, full, int(ecfg["benchmark_batch_size"]))

    results["provenance"] = {
        "hepline_version": analysis.__version__,
        "config_hash": config_hash(tcfg),
        "sample": tcfg["sample"],
        "n_test_jets": len(test),
        "test_file": str(test_path),
        "dataset_id": prov_test.get("dataset_id"),
        "models": models.describe(),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "reweighted_test_split": reweighted,
        "error_count": how,
        "cut_definition": "a jet is b-tagged at a working point when Jet_btag_<tagger> > cut",
    }
    wp_file["provenance"] = {
        k: results["provenance"][k]
        for k in (
            "hepline_version",
            "config_hash",
            "sample",
            "n_test_jets",
            "test_file",
            "dataset_id",
            "created_utc",
            "reweighted_test_split",
            "error_count",
            "cut_definition",
        )
    }
    wp_file["provenance"]["models"] = models.provenance.get("files")
    wp_file["provenance"]["sentinel"] = tcfg["decoration"]["sentinel"]

    if plots:
        from taggers.plots import make_plots

        results["plots"] = make_plots(results, hists, out / "plots", reference=ref)
        for plot_path in results["plots"].values():
            attach_provenance(plot_path, record)
    results["timing"] = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}
    results = _clean(results)
    write_json(out / WP_FILE, _clean(wp_file), provenance=record)
    write_json(out / RESULTS_FILE, results, provenance=record)
    return results


def _model_files(models: TaggerModels) -> list[str]:
    """The model and template files ``models`` was loaded from (for the provenance)."""
    files = models.provenance.get("files") or {}
    return [str(v["path"]) for v in files.values() if isinstance(v, Mapping) and "path" in v]


def summary_table(results: Mapping[str, Any], wps: Sequence[str] = ("70", "77")) -> str:
    """Markdown table of the light and c rejections at ``wps``."""
    head = "| tagger | " + " | ".join(f"light rej. {wp}% | c rej. {wp}%" for wp in wps) + " |"
    lines = [head, "|---" * (1 + 2 * len(wps)) + "|"]
    for t, entry in results["taggers"].items():
        cells = []
        for wp in wps:
            e = entry["working_points"][wp]
            for fl in ("light", "c"):
                flag = ">" if e.get(f"{fl}_rejection_lower_limit") else ""
                cells.append(f"{flag}{e[f'{fl}_rejection']:.4g} ± {e[f'{fl}_rejection_err']:.2g}")
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help="hepline YAML config")
    parser.add_argument("--test", required=True, help="test.h5 of taggers.prepare")
    parser.add_argument("--models", required=True, help="model directory of taggers.train")
    parser.add_argument(
        "--ipxd", default=None, help="IP2D/IP3D templates (default <models>/../ipxd)"
    )
    parser.add_argument("--output-dir", required=True, help="e.g. results/taggers")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--no-benchmark", action="store_true", help="skip the inference timing")
    parser.add_argument("--seed", type=int, default=None, help="override the seed (bootstrap)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s"
    )
    cfg = load_raw_config(args.config)
    if args.seed is not None:
        cfg["seed"] = args.seed
    res = evaluate(
        cfg,
        args.test,
        args.models,
        args.output_dir,
        ipxd_dir=args.ipxd,
        plots=not args.no_plots,
        benchmark=not args.no_benchmark,
    )
    print(summary_table(res))
    h = res.get("rnnip_over_ip3d_light_rejection")
    if h:
        print(f"RNNIP / IP3D light rejection at {h['wp']}%: {h['value']:.3f} ± {h['error']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
