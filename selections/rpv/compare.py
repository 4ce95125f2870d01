"""Evaluation of the calo CNN against the cut-based search on the same test events.

* Test events: the ``test`` split (event number modulo ``calo.split.modulus``) of every image
  file; the cut-based flags of the same events come from the per-sample tables of
  :mod:`selections.rpv.cuts` (joined on sample and event number; a missing event is an error).
* Weights: ``genWeight · σ / Σw`` per event (pb), so the QCD slices combine by cross-section.
* ROC: weighted TPR (signal efficiency) against weighted FPR (background efficiency), AUC from
  ``sklearn.metrics.roc_auc_score`` with ``sample_weight``.
* Comparison: the cut-based point (TPR_cut, FPR_cut) on the test events; the CNN's TPR at the
  loosest score threshold whose FPR does not exceed FPR_cut; the ratio R = TPR_CNN / TPR_cut.
  Errors: weighted binomial, √(Σ w² (pass − ε)²) / Σw, for each rate; for the ratio a
  bootstrap over test events (each event gets a Poisson(1) multiplicity per replica; FPR_cut,
  TPR_cut, the CNN threshold and TPR_CNN are all recomputed per replica, so the correlation of
  the two TPRs on the same signal events and the uncertainty of the FPR working point are
  included); the quoted error is the replicas' standard deviation, with the 16–84 % interval.
  With few background events passing the cuts FPR_cut, and hence R, is dominated by
  background statistics: the summary lists those counts.
* Score histograms per sample: ``hist`` with Weight storage, each test event weighted by
  w · (σ / Σ_test w) · L (L = ``rpv.lumi_fb``), i.e. the expected events of the whole sample at
  that luminosity; written as ROOT TH1 (``score_<sample>``, ``score_signal``,
  ``score_background``) with uproot.
* Plots (mplhep): example images per channel for signal and background, the ROC curve with
  the cut-based point, and the score distributions.
* Expected CLs limits on σ(signal) from the CNN score and from the cut-based signal region,
  through the shared pyhf code (:func:`expected_limits`, :mod:`analysis.stats.limits`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analysis.core.atomic import atomic_path, write_json
from selections.rpv.cnn.images import CaloInputError, ImageSet, ZeroWeightError
from selections.rpv.cnn.model import load_model
from selections.rpv.cnn.train import (
    calo_config,
    check_training_set,
    load_image_files,
    pick_device,
    predict,
)
from analysis.core.atomic import attach_provenance
from analysis.core.provenance import provenance_record

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- ROC helpers


def weighted_roc(score: np.ndarray, label: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` for "score ≥ threshold", starting at (0, 0).

    Ties are kept together (one point per distinct score), as in ``sklearn.metrics.roc_curve``.
    """
    s = np.asarray(score, np.float64)
    y = np.asarray(label).astype(bool)
    w = np.asarray(weight, np.float64)
    order = np.argsort(-s, kind="stable")
    s, y, w = s[order], y[order], w[order]
    cs = np.cumsum(np.where(y, w, 0.0))
    cb = np.cumsum(np.where(y, 0.0, w))
    last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    ts, tb = cs[-1], cb[-1]
    if not (ts > 0 and tb > 0):
        raise ZeroWeightError(f"ROC needs positive signal and background weights (got {ts:g}, {tb:g})")
    return (np.r_[0.0, cb[last] / tb], np.r_[0.0, cs[last] / ts], np.r_[np.inf, s[last]])


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, thresholds: np.ndarray, target: float) -> tuple[float, float, float]:
    """``(tpr, fpr, threshold)`` of the loosest threshold with FPR ≤ ``target``."""
    ok = np.flatnonzero(fpr <= target * (1 + 1e-9))
    i = ok[np.argmax(tpr[ok])]
    return float(tpr[i]), float(fpr[i]), float(thresholds[i])


def _rates_at_threshold(passed: np.ndarray, label: np.ndarray, weight: np.ndarray) -> dict[str, float]:
    from selections.rpv.cuts import weighted_efficiency

    out = {}
    for name, lab in (("tpr", 1), ("fpr", 0)):
        m = label == lab
        eff, err = weighted_efficiency(passed[m], weight[m])
        out[name], out[f"{name}_err"] = eff, err
    return out


def compare_at_cut_point(
    score: np.ndarray, label: np.ndarray, weight: np.ndarray, cut_pass: np.ndarray, *,
    bootstrap: int = 200, seed: int = 0,
) -> dict[str, Any]:
    """CNN vs cut-based on the same events: both points, the TPR ratio and its errors."""
    label = np.asarray(label).astype(np.int64)
    weight = np.asarray(weight, np.float64)
    cut_pass = np.asarray(cut_pass, bool)
    cut = _rates_at_threshold(cut_pass, label, weight)
    fpr, tpr, thr = weighted_roc(score, label, weight)
    t_cnn, f_cnn, threshold = tpr_at_fpr(fpr, tpr, thr, cut["fpr"])
    cnn = _rates_at_threshold(np.asarray(score) >= threshold, label, weight)
    ratio = t_cnn / cut["tpr"] if cut["tpr"] > 0 else float("nan")
    ratio_binom = ratio * np.hypot(cnn["tpr_err"] / max(t_cnn, 1e-300), cut["tpr_err"] / max(cut["tpr"], 1e-300))
    bkg = label == 0
    out = {
        "cut_based": {**cut, "n_background_pass": int(np.sum(cut_pass & bkg)),
                      "n_signal_pass": int(np.sum(cut_pass & ~bkg))},
        # threshold None: no threshold reaches FPR_cut except rejecting everything (TPR 0)
        "cnn_at_cut_fpr": {"tpr": t_cnn, "tpr_err": cnn["tpr_err"], "fpr": f_cnn,
                           "threshold": threshold if np.isfinite(threshold) else None,
                           "n_background_pass": int(np.sum((np.asarray(score) >= threshold) & bkg))},
        "tpr_ratio": ratio,
        "tpr_ratio_err_binomial": float(ratio_binom),
    }
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        reps = []
        for _ in range(bootstrap):
            wb = weight * rng.poisson(1.0, weight.size)
            try:
                c = _rates_at_threshold(cut_pass, label, wb)
                f_, t_, th_ = weighted_roc(score, label, wb)
                t_c, _, _ = tpr_at_fpr(f_, t_, th_, c["fpr"])
            except (ZeroWeightError, ValueError):
                continue
            if c["tpr"] > 0:
                reps.append(t_c / c["tpr"])
        reps_a = np.asarray(reps)
        out["tpr_ratio_err_bootstrap"] = float(reps_a.std(ddof=1)) if reps_a.size > 1 else float("nan")
        out["tpr_ratio_bootstrap_68"] = ([float(np.percentile(reps_a, 16)), float(np.percentile(reps_a, 84))]
                                         if reps_a.size > 1 else [float("nan")] * 2)
        out["bootstrap_replicas"] = int(reps_a.size)
    return out


# --------------------------------------------------------------------------- cut-based join


def cut_flags_for(test: ImageSet, tables: Mapping[str, Mapping[str, np.ndarray]]) -> np.ndarray:
    """The cut-based SR flag of every event of ``test`` from per-sample tables (by event number)."""
    flags = np.zeros(len(test), bool)
    for i, sample in enumerate(test.samples):
        rows = np.flatnonzero(test.sample_id == i)
        if rows.size == 0:
            continue
        if sample not in tables:
            raise CaloInputError(f"no cut-based table for sample {sample!r} (have {sorted(tables)})")
        t = tables[sample]
        order = np.argsort(t["event"])
        ev = np.asarray(t["event"])[order]
        want = test.event[rows]
        pos = np.clip(np.searchsorted(ev, want), 0, max(ev.size - 1, 0))
        found = ev.size > 0
        missing = ~(ev[pos] == want) if found else np.ones(want.size, bool)
        if missing.any():
            raise CaloInputError(
                f"the cut-based table of {sample!r} lacks {int(missing.sum())} test event(s) "
                f"(e.g. event {int(want[missing][0])}); were both made from the same files?"
            )
        flags[rows] = np.asarray(t["sr"], bool)[order][pos]
    return flags


# --------------------------------------------------------------------------- histograms, plots


def score_histograms(test: ImageSet, score: np.ndarray, bins: int, lumi_fb: float) -> dict[str, Any]:
    """σ-weighted score histograms (expected events at ``lumi_fb``) per sample and per class."""
    import hist

    hists: dict[str, Any] = {}
    yield_w = _yield_weights(test, lumi_fb)
    for name, m in [(s, test.sample_id == i) for i, s in enumerate(test.samples)] + [
            ("signal", test.label == 1), ("background", test.label == 0)]:
        h = hist.Hist(hist.axis.Regular(bins, 0.0, 1.0, name="score", label="CNN signal score"),
                      storage=hist.storage.Weight())
        h.fill(score=np.clip(np.asarray(score[m], np.float64), 0.0, 1.0 - 1e-12), weight=yield_w[m])
        hists[name] = h
    return hists


def write_score_root(path: str | os.PathLike[str], hists: Mapping[str, Any], *,
                     provenance: Mapping[str, Any] | None = None) -> None:
    import uproot

    with atomic_path(path, provenance=provenance) as tmp, uproot.recreate(tmp) as f:
        for name, h in hists.items():
            f[f"score_{name}"] = h


def _style() -> Any:
    from analysis.plot.paper import use_file_backend

    use_file_backend()
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.ATLAS)
    return plt, mplhep


def _save(fig: Any, path: str | os.PathLike[str]) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def plot_examples(path: str | os.PathLike[str], images: ImageSet, n_per_class: int = 1) -> None:
    """Example images per channel: rows signal/background events, columns ECAL/HCAL/tracks."""
    plt, _ = _style()
    from matplotlib.colors import LogNorm

    rows = []
    for lab, name in ((1, "signal"), (0, "background")):
        idx = np.flatnonzero(images.label == lab)
        # the event with the most energy among the first few, to show a busy image
        for r in idx[:n_per_class]:
            rows.append((r, name))
    spec = images.spec
    fig, axes = plt.subplots(len(rows), spec.n_channels, figsize=(5.2 * spec.n_channels, 4.6 * len(rows)),
                             squeeze=False)
    units = {"ecal": "ECAL E [GeV]", "hcal": "HCAL E [GeV]", "ntrack": "tracks"}
    dense = images.images.to_dense(np.array([r for r, _ in rows]))
    for i, (r, name) in enumerate(rows):
        for c, ch in enumerate(spec.channels):
            ax = axes[i, c]
            img = dense[i, c]
            vmax = max(float(img.max()), 1e-3)
            m = ax.imshow(np.where(img > 0, img, np.nan), origin="lower", aspect="auto",
                          extent=(-np.pi, np.pi, spec.eta_min, spec.eta_max),
                          norm=LogNorm(vmin=min(0.1, vmax), vmax=vmax), cmap="viridis")
            fig.colorbar(m, ax=ax, label=units.get(ch, ch))
            ax.set_xlabel(r"$\phi$")
            ax.set_ylabel(r"$\eta$")
            ax.set_title(f"{name} ({images.samples[images.sample_id[r]]}), event {int(images.event[r])}",
                         fontsize=11)
    fig.tight_layout()
    _save(fig, path)


def plot_roc(path: str | os.PathLike[str], fpr: np.ndarray, tpr: np.ndarray, comparison: Mapping[str, Any],
             auc: float) -> None:
    plt, mplhep = _style()
    fig, ax = plt.subplots(figsize=(8, 7))
    ok = fpr > 0
    ax.plot(tpr[ok], fpr[ok], color="C0", label=f"CNN (AUC = {auc:.4f})")
    cut = comparison["cut_based"]
    ax.errorbar([cut["tpr"]], [max(cut["fpr"], 1e-7)], xerr=[cut["tpr_err"]], yerr=[cut["fpr_err"]],
                fmt="o", color="black", label="cut-based (large-R jets)")
    cnn = comparison["cnn_at_cut_fpr"]
    ax.plot([cnn["tpr"]], [max(cnn["fpr"], 1e-7)], "s", color="C1",
            label=f"CNN at the cut-based FPR: TPR ratio {comparison['tpr_ratio']:.2f}")
    ax.set_yscale("log")
    ax.set_xlabel("signal efficiency (weighted TPR)")
    ax.set_ylabel("background efficiency (weighted FPR)")
    ax.set_xlim(0, 1)
    ax.legend(loc="lower right", fontsize=11)
    mplhep.label.exp_text("hepline", "Simulation", ax=ax, loc=1)
    _save(fig, path)


def plot_scores(path: str | os.PathLike[str], hists: Mapping[str, Any], samples: Sequence[str]) -> None:
    plt, mplhep = _style()
    fig, ax = plt.subplots(figsize=(8, 7))
    for s in samples:
        h = hists.get(s)
        if h is None or h.sum().value <= 0:
            continue
        mplhep.histplot(h / h.sum().value, ax=ax, label=s)
    ax.set_yscale("log")
    ax.set_ylabel("fraction of events (σ-weighted)")
    ax.legend(fontsize=11)
    mplhep.label.exp_text("hepline", "Simulation", ax=ax, loc=1)
    _save(fig, path)


# --------------------------------------------------------------------------- limits


def _yield_weights(test: ImageSet, lumi_fb: float) -> np.ndarray:
    """Per test event: expected events of its whole sample at ``lumi_fb`` (w · σ/Σ_test w · L)."""
    out = np.zeros(len(test))
    for i, s in enumerate(test.samples):
        m = test.sample_id == i
        if not m.any():
            continue
        tot = test.weight[m].sum()
        if not tot > 0:
            raise ZeroWeightError(f"sample {s!r} has a total test weight of {tot:g}")
        xsec = float(test.sample_info.get(s, {}).get("xsec_pb", tot))
        out[m] = test.weight[m] * (xsec / tot) * lumi_fb * 1000.0
    return out


def limit_score_edges(background_score: np.ndarray, min_events: int) -> np.ndarray:
    """Score bin edges in [0, 1] built from the top down: the highest bin holds ``min_events``
    background MC events, the next twice as many, and so on (empty background bins are avoided)."""
    s = np.sort(np.asarray(background_score, np.float64))[::-1]
    edges = [1.0]
    k, taken = int(min_events), 0
    while taken + k < s.size:
        taken += k
        lo = float(s[taken - 1])
        if lo < edges[-1] and lo > 0.0:
            edges.append(lo)
        k *= 2
    edges.append(0.0)
    return np.unique(np.asarray(edges))


def expected_limits(
    test: ImageSet, score: np.ndarray, cut_pass: np.ndarray, cfg: Mapping[str, Any], *,
    lumi_fb: float, signals: Sequence[str], backgrounds: Sequence[str], min_background_events: int,
) -> dict[str, Any]:
    """Expected CLs upper limits on σ(signal) from the CNN score and from the cut-based SR.

    Both use :func:`analysis.stats.limits.build_workspace` and :func:`analysis.stats.limits.upper_limit`
    (the ``limits`` section's CL, test statistic, luminosity uncertainty, MC-stat and empty-bin
    settings; no shape systematics). The CNN: the score in :func:`limit_score_edges` bins; the
    cut-based search: one bin, the signal region. Yields: the test events scaled to the whole
    sample at ``lumi_fb``. μ is in units of the signal sample's σ; ``expected_xsec_pb`` = μ · σ.
    """
    import hist

    from analysis.stats.limits import build_workspace, limits_config, upper_limit

    lcfg = limits_config(cfg)
    yw = _yield_weights(test, lumi_fb)
    bkg_mask = test.label == 0
    edges = limit_score_edges(score[bkg_mask], min_background_events)
    samples: dict[str, Any] = {}
    for i, s in enumerate(test.samples):
        m = test.sample_id == i
        hs = {}
        for obs, axis, values, sel in (
            ("cnn_score", hist.axis.Variable(edges, name="cnn_score"),
             np.clip(np.asarray(score, np.float64), 0.0, 1.0 - 1e-12), m),
            ("cut_based", hist.axis.Regular(1, 0.0, 1.0, name="cut_based"), np.full(len(test), 0.5), m & cut_pass),
        ):
            h = hist.Hist(hist.axis.StrCategory([obs], name="region"),
                          hist.axis.StrCategory(["nominal"], name="variation"), axis,
                          storage=hist.storage.Weight())
            h.fill(region=obs, variation="nominal", **{obs: values[sel]}, weight=yw[sel])
            hs[obs] = h
        samples[s] = {"hists": hs, "xsec_pb": float(test.sample_info.get(s, {}).get("xsec_pb", np.nan)),
                      "cutflow": None}
    histset = {"kind": "hepline.hists", "version": 1, "lumi_fb": lumi_fb, "normalised": True,
               "samples": samples}
    out: dict[str, Any] = {"cnn_score_edges": [float(e) for e in edges], "lumi_fb": lumi_fb,
                           "confidence_level": lcfg["confidence_level"]}
    for sig in signals:
        if sig not in samples:
            continue
        res = {}
        for obs in ("cnn_score", "cut_based"):
            spec, report = build_workspace(
                histset, signal=sig, backgrounds=[b for b in backgrounds if b in samples], regions=[obs],
                observable=obs, systematics=(), lumi_uncertainty=lcfg["lumi_uncertainty"],
                mc_stat=lcfg["mc_stat"], empty_bin_floor=lcfg["empty_bin_floor"])
            lim = upper_limit(spec, cl=lcfg["confidence_level"], test_statistic=lcfg["test_statistic"],
                              poi_scale=report["poi_scale"], observed=False)
            xs = samples[sig]["xsec_pb"]
            res["cnn" if obs == "cnn_score" else "cut_based"] = {
                "expected_mu": lim["expected"], "expected_xsec_pb": [mu * xs for mu in lim["expected"]],
                "yields": report["yields"][obs], "warnings": report["warnings"]}
        res["cut_over_cnn_median"] = res["cut_based"]["expected_mu"][2] / res["cnn"]["expected_mu"][2]
        out[sig] = res
    return out


# --------------------------------------------------------------------------- the stage


def evaluate(
    cfg: Mapping[str, Any] | None,
    model_path: str | os.PathLike[str],
    image_files: Sequence[str | os.PathLike[str]],
    cut_tables: Sequence[str | os.PathLike[str]],
    outdir: str | os.PathLike[str],
    *,
    normalisation: str | os.PathLike[str] | None = None,
    device: str | None = None,
    plots: bool = True,
) -> dict[str, Any]:
    """Score the test split, compare with the cut-based search, write histograms, plots, summary."""
    from sklearn.metrics import roc_auc_score

    from selections.rpv.cuts import read_table, rpv_config

    full = dict(cfg or {})
    ccfg = calo_config(full)
    rcfg = rpv_config(full)
    ecfg = ccfg["evaluation"]
    outdir = Path(outdir)
    dev = pick_device(device)
    model, normaliser, info = load_model(model_path, dev, normaliser=normalisation)
    test = load_image_files(image_files, split=(ccfg["split"], "test"))
    model.spec.check_same(test.spec, f"the image files ({', '.join(map(str, image_files))})",
                          f"model {model_path}")
    check_training_set(test, "test split")
    tables: dict[str, dict[str, np.ndarray]] = {}
    for t in cut_tables:
        table, summ = read_table(t)
        tables[summ["sample"]] = table
    cut_pass = cut_flags_for(test, tables)

    score, rate = predict(model, test, normaliser, dev, batch_size=int(ecfg["batch_size"]))
    y, w = test.label.astype(np.int64), test.weight
    auc = float(roc_auc_score(y, score, sample_weight=w))
    fpr, tpr, _ = weighted_roc(score, y, w)
    seed = int(full.get("seed", 0))
    comparison = compare_at_cut_point(score, y, w, cut_pass, bootstrap=int(ecfg["bootstrap"]), seed=seed)
    hists = score_histograms(test, score, int(ecfg["score_bins"]), float(rcfg["lumi_fb"]))
    inputs = [model_path, *image_files, *cut_tables, *([normalisation] if normalisation else [])]
    record = provenance_record(stage="calo.evaluate", config=full or {"calo": ccfg},
                               seeds={"bootstrap": seed}, inputs=inputs, extra={"device": str(dev)})
    write_score_root(outdir / "scores.root", hists, provenance=record)
    thr = comparison["cnn_at_cut_fpr"]["threshold"]
    thr = np.inf if thr is None else thr
    per_sample = {}
    for i, s in enumerate(test.samples):
        m = test.sample_id == i
        per_sample[s] = {"label": int(test.label[m][0]) if m.any() else None, "test_events": int(m.sum()),
                         "cut_based_pass": int(cut_pass[m].sum()),
                         "cnn_pass_at_cut_fpr": int((score[m] >= thr).sum()),
                         "expected_events_total": float(hists[s].sum().value)}
    summary = {
        "test_events": {"signal": int(np.sum(y == 1)), "background": int(np.sum(y == 0))},
        "samples": per_sample,
        "auc": auc,
        **comparison,
        "inference": rate,
        "device": str(dev),
        "lumi_fb": rcfg["lumi_fb"],
        "model": {"path": str(model_path), **{k: info.get(k) for k in ("model_cfg", "n_train", "best_epoch",
                                                                     "train_images_per_s", "device")}},
    }
    if ecfg["limits"]:
        try:
            summary["expected_limits"] = expected_limits(
                test, score, cut_pass, full, lumi_fb=float(rcfg["lumi_fb"]), signals=rcfg["signal_samples"],
                backgrounds=rcfg["background_samples"],
                min_background_events=int(ecfg["limit_min_background_events"]))
        except (ValueError, RuntimeError) as exc:  # LimitInputError is a ValueError
            log.warning("expected limits failed: %s", exc)
            summary["expected_limits"] = {"error": f"{type(exc).__name__}: {exc}"}
    with atomic_path(outdir / "roc.npz", provenance=record) as tmp:
        np.savez_compressed(tmp, fpr=fpr, tpr=tpr)
    write_json(outdir / "summary.json", summary, provenance=record)
    if plots:
        plot_examples(outdir / "example_images.png", test, int(ecfg["example_images"]))
        plot_roc(outdir / "roc.png", fpr, tpr, comparison, auc)
        plot_scores(outdir / "scores.png", hists, test.samples)
        for name in ("example_images.png", "roc.png", "scores.png"):
            attach_provenance(outdir / name, record)
    log.info("AUC %.4f; cut-based TPR %.3f at FPR %.3g; CNN TPR %.3f there; ratio %.2f",
             auc, comparison["cut_based"]["tpr"], comparison["cut_based"]["fpr"],
             comparison["cnn_at_cut_fpr"]["tpr"], comparison["tpr_ratio"])
    return summary
