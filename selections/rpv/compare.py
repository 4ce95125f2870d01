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
* Plots (mplhep, functions returning figures): example images per channel for signal and
  background, the ROC curve with the cut-based point, and the score distributions.
* Expected CLs limits on σ(signal) from the CNN score and from the cut-based signal region,
  through the shared pyhf code (:func:`expected_limits`, :mod:`analysis.stats.limits`).

In memory: :func:`compare` (a model, its normaliser, test images and cut-based flags →
:class:`CnnEvaluation`). Files (``hepline calo evaluate``): :func:`evaluate`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from analysis.core.atomic import atomic_path, write_json
from analysis.core.config import Config
from analysis.core.config.limits import LimitsConfig
from analysis.core.config.rpv import CaloModel
from analysis.core.provenance import provenance_record
from analysis.ml.normaliser import Normaliser
from analysis.ml.training import pick_device, torch_threads
from analysis.plot.style import experiment_label, save_figure, style
from selections.rpv.cnn.images import CaloInputError, ImageSet, load_image_files, match_grid
from selections.rpv.cnn.model import CaloCNN, LoadedModel, load_model
from selections.rpv.cnn.train import InferenceRate, check_training_set, predict
from selections.rpv.cuts import read_table, weighted_efficiency
from selections.rpv.samples import ZeroWeightError

if TYPE_CHECKING:
    import hist
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

__all__ = [
    "CnnEvaluation",
    "CnnPoint",
    "CutBasedPoint",
    "CutPointComparison",
    "ExpectedLimits",
    "ModelSummary",
    "ObservableLimit",
    "RatioBootstrap",
    "SampleScores",
    "SignalLimits",
    "compare",
    "compare_at_cut_point",
    "cut_flags_for",
    "evaluate",
    "expected_limits",
    "limit_score_edges",
    "plot_examples",
    "plot_roc",
    "plot_scores",
    "score_histograms",
    "tpr_at_fpr",
    "weighted_roc",
    "write_score_root",
    "yield_weights",
]


# --------------------------------------------------------------------------- ROC helpers


def weighted_roc(score: np.ndarray, label: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` for "score ≥ threshold", starting at (0, 0).

    Ties are kept together (one point per distinct score), as in ``sklearn.metrics.roc_curve``.

    Raises:
        ZeroWeightError: no positive signal or background weight.
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
    out = {}
    for name, lab in (("tpr", 1), ("fpr", 0)):
        m = label == lab
        eff, err = weighted_efficiency(passed[m], weight[m])
        out[name], out[f"{name}_err"] = eff, err
    return out


@dataclass(frozen=True)
class CutBasedPoint:
    """The cut-based search on the test events: weighted TPR and FPR with binomial errors and
    the events passing."""

    tpr: float
    tpr_err: float
    fpr: float
    fpr_err: float
    n_background_pass: int
    n_signal_pass: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (the keys of the written outputs, in their order)."""
        return {"tpr": self.tpr, "tpr_err": self.tpr_err, "fpr": self.fpr, "fpr_err": self.fpr_err,
                "n_background_pass": self.n_background_pass, "n_signal_pass": self.n_signal_pass}


@dataclass(frozen=True)
class CnnPoint:
    """The CNN at the loosest score threshold whose FPR does not exceed the cut-based FPR.

    ``threshold`` is None when no threshold reaches that FPR except rejecting everything
    (TPR 0).
    """

    tpr: float
    tpr_err: float
    fpr: float
    threshold: float | None
    n_background_pass: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (the keys of the written outputs, in their order)."""
        return {"tpr": self.tpr, "tpr_err": self.tpr_err, "fpr": self.fpr, "threshold": self.threshold,
                "n_background_pass": self.n_background_pass}


@dataclass(frozen=True)
class RatioBootstrap:
    """The bootstrap of the TPR ratio: its standard deviation, the 16–84 % interval and the
    replicas used (NaN with fewer than 2)."""

    err: float
    interval_68: tuple[float, float]
    replicas: int


@dataclass(frozen=True)
class CutPointComparison:
    """CNN against cut-based on the same events (:func:`compare_at_cut_point`).

    Attributes:
        cut_based: the cut-based point.
        cnn_at_cut_fpr: the CNN at the cut-based FPR.
        tpr_ratio: TPR_CNN / TPR_cut (NaN when TPR_cut is 0).
        tpr_ratio_err_binomial: the ratio's error from the two binomial errors.
        bootstrap: the bootstrap error of the ratio (None without replicas requested).
    """

    cut_based: CutBasedPoint
    cnn_at_cut_fpr: CnnPoint
    tpr_ratio: float
    tpr_ratio_err_binomial: float
    bootstrap: RatioBootstrap | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (the keys of the written outputs, in their order)."""
        out: dict[str, Any] = {"cut_based": self.cut_based.to_dict(), "cnn_at_cut_fpr": self.cnn_at_cut_fpr.to_dict(),
                               "tpr_ratio": self.tpr_ratio, "tpr_ratio_err_binomial": self.tpr_ratio_err_binomial}
        if self.bootstrap is not None:
            out["tpr_ratio_err_bootstrap"] = self.bootstrap.err
            out["tpr_ratio_bootstrap_68"] = list(self.bootstrap.interval_68)
            out["bootstrap_replicas"] = self.bootstrap.replicas
        return out


def compare_at_cut_point(
    score: np.ndarray, label: np.ndarray, weight: np.ndarray, cut_pass: np.ndarray, *,
    bootstrap: int = 200, seed: int = 0,
) -> CutPointComparison:
    """CNN vs cut-based on the same events: both points, the TPR ratio and its errors.

    Args:
        score: the CNN score per event.
        label: 1 signal, 0 background.
        weight: event weights.
        cut_pass: the cut-based SR flag per event.
        bootstrap: Poisson bootstrap replicas of the ratio (0: none).
        seed: the bootstrap's seed (``numpy.random.default_rng``).
    """
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
    boot = None
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
        boot = RatioBootstrap(
            err=float(reps_a.std(ddof=1)) if reps_a.size > 1 else float("nan"),
            interval_68=((float(np.percentile(reps_a, 16)), float(np.percentile(reps_a, 84)))
                         if reps_a.size > 1 else (float("nan"), float("nan"))),
            replicas=int(reps_a.size),
        )
    return CutPointComparison(
        cut_based=CutBasedPoint(cut["tpr"], cut["tpr_err"], cut["fpr"], cut["fpr_err"],
                                n_background_pass=int(np.sum(cut_pass & bkg)),
                                n_signal_pass=int(np.sum(cut_pass & ~bkg))),
        cnn_at_cut_fpr=CnnPoint(t_cnn, cnn["tpr_err"], f_cnn, threshold if np.isfinite(threshold) else None,
                                n_background_pass=int(np.sum((np.asarray(score) >= threshold) & bkg))),
        tpr_ratio=ratio, tpr_ratio_err_binomial=float(ratio_binom), bootstrap=boot,
    )


# --------------------------------------------------------------------------- cut-based join


def cut_flags_for(test: ImageSet, tables: Mapping[str, Mapping[str, np.ndarray]]) -> np.ndarray:
    """The cut-based SR flag of every event of ``test`` from per-sample tables (by event number).

    Args:
        test: the test images.
        tables: per sample, its per-event table (:data:`selections.rpv.cuts.COLUMNS`).

    Raises:
        CaloInputError: a sample without a table, or a test event missing from its table.
    """
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


def yield_weights(test: ImageSet, lumi_fb: float) -> np.ndarray:
    """Per test event: expected events of its whole sample at ``lumi_fb`` (w · σ/Σ_test w · L).

    Raises:
        ZeroWeightError: a sample with a total test weight ≤ 0.
    """
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


def score_histograms(test: ImageSet, score: np.ndarray, bins: int, lumi_fb: float) -> dict[str, hist.Hist]:
    """σ-weighted score histograms per sample and per class (``signal``, ``background``).

    Args:
        test: the test images.
        score: their CNN scores.
        bins: bins in [0, 1].
        lumi_fb: the luminosity (fb⁻¹): each histogram holds the expected events of the whole
            sample at it.
    """
    import hist

    hists: dict[str, hist.Hist] = {}
    yield_w = yield_weights(test, lumi_fb)
    for name, m in [(s, test.sample_id == i) for i, s in enumerate(test.samples)] + [
            ("signal", test.label == 1), ("background", test.label == 0)]:
        h = hist.Hist(hist.axis.Regular(bins, 0.0, 1.0, name="score", label="CNN signal score"),
                      storage=hist.storage.Weight())
        h.fill(score=np.clip(np.asarray(score[m], np.float64), 0.0, 1.0 - 1e-12), weight=yield_w[m])
        hists[name] = h
    return hists


def _total(h: hist.Hist) -> float:
    """The sum of a Weight-storage histogram's values (without the flow bins)."""
    return float(h.sum().value)  # type: ignore[attr-defined]


def write_score_root(path: str | os.PathLike[str], hists: Mapping[str, hist.Hist], *,
                     provenance: Mapping[str, Any] | None = None) -> None:
    """Write the score histograms as ROOT TH1 ``score_<name>``, atomically."""
    import uproot

    with atomic_path(path, provenance=provenance) as tmp, uproot.recreate(tmp) as f:
        for name, h in hists.items():
            f[f"score_{name}"] = h


def plot_examples(images: ImageSet, n_per_class: int = 1) -> Figure:
    """Example images per channel: rows the first signal and background events, columns the
    channels (ECAL, HCAL energy in GeV, tracks), log colour scale."""
    plt = style()
    from matplotlib.colors import LogNorm

    rows = []
    for lab, name in ((1, "signal"), (0, "background")):
        idx = np.flatnonzero(images.label == lab)
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
    return fig


def plot_roc(fpr: np.ndarray, tpr: np.ndarray, comparison: CutPointComparison, auc: float) -> Figure:
    """The weighted ROC curve (background efficiency, log, against signal efficiency) with the
    cut-based point and the CNN at the cut-based FPR."""
    plt = style()
    fig, ax = plt.subplots(figsize=(8, 7))
    ok = fpr > 0
    ax.plot(tpr[ok], fpr[ok], color="C0", label=f"CNN (AUC = {auc:.4f})")
    cut = comparison.cut_based
    ax.errorbar([cut.tpr], [max(cut.fpr, 1e-7)], xerr=[cut.tpr_err], yerr=[cut.fpr_err],
                fmt="o", color="black", label="cut-based (large-R jets)")
    cnn = comparison.cnn_at_cut_fpr
    ax.plot([cnn.tpr], [max(cnn.fpr, 1e-7)], "s", color="C1",
            label=f"CNN at the cut-based FPR: TPR ratio {comparison.tpr_ratio:.2f}")
    ax.set_yscale("log")
    ax.set_xlabel("signal efficiency (weighted TPR)")
    ax.set_ylabel("background efficiency (weighted FPR)")
    ax.set_xlim(0, 1)
    ax.legend(loc="lower right", fontsize=11)
    experiment_label(ax)
    return fig


def plot_scores(hists: Mapping[str, hist.Hist], samples: Sequence[str]) -> Figure:
    """The score distribution of each of ``samples``, normalised to unit area (σ-weighted)."""
    plt = style()
    import mplhep

    fig, ax = plt.subplots(figsize=(8, 7))
    for s in samples:
        h = hists.get(s)
        if h is None or _total(h) <= 0:
            continue
        mplhep.histplot(h / _total(h), ax=ax, label=s)
    ax.set_yscale("log")
    ax.set_ylabel("fraction of events (σ-weighted)")
    ax.legend(fontsize=11)
    experiment_label(ax)
    return fig


# --------------------------------------------------------------------------- limits


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


@dataclass(frozen=True)
class ObservableLimit:
    """The expected limit of one observable.

    Attributes:
        expected_mu: expected upper limits on μ (units of the signal's σ): −2σ, −1σ, median,
            +1σ, +2σ.
        expected_xsec_pb: the same on σ (pb).
        yields: expected events per sample.
        warnings: the statistical model's warnings (floored bins, ...).
    """

    expected_mu: list[float]
    expected_xsec_pb: list[float]
    yields: dict[str, float]
    warnings: list[str]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (the keys of the written outputs, in their order)."""
        return {"expected_mu": self.expected_mu, "expected_xsec_pb": self.expected_xsec_pb,
                "yields": self.yields, "warnings": self.warnings}


@dataclass(frozen=True)
class SignalLimits:
    """The expected limits on one signal from the CNN score and from the cut-based SR."""

    cnn: ObservableLimit
    cut_based: ObservableLimit

    @property
    def cut_over_cnn_median(self) -> float:
        """The cut-based median expected limit over the CNN's (> 1: the CNN is more sensitive)."""
        return self.cut_based.expected_mu[2] / self.cnn.expected_mu[2]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (the keys of the written outputs, in their order)."""
        return {"cnn": self.cnn.to_dict(), "cut_based": self.cut_based.to_dict(),
                "cut_over_cnn_median": self.cut_over_cnn_median}


@dataclass(frozen=True)
class ExpectedLimits:
    """Expected CLs limits of :func:`expected_limits`.

    Attributes:
        cnn_score_edges: the CNN score bins of the fit.
        lumi_fb: the luminosity (fb⁻¹).
        confidence_level: the CL.
        signals: per signal sample, its limits.
    """

    cnn_score_edges: list[float]
    lumi_fb: float
    confidence_level: float
    signals: dict[str, SignalLimits]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (the keys of the written outputs, in their order)."""
        return {"cnn_score_edges": self.cnn_score_edges, "lumi_fb": self.lumi_fb,
                "confidence_level": self.confidence_level,
                **{sig: lim.to_dict() for sig, lim in self.signals.items()}}


def expected_limits(
    test: ImageSet, score: np.ndarray, cut_pass: np.ndarray, limits: LimitsConfig, *,
    lumi_fb: float, signals: Sequence[str], backgrounds: Sequence[str], min_background_events: int,
) -> ExpectedLimits:
    """Expected CLs upper limits on σ(signal) from the CNN score and from the cut-based SR.

    Both use :func:`analysis.stats.limits.build_workspace` and :func:`analysis.stats.limits.upper_limit`
    (the ``limits`` section's CL, test statistic, luminosity uncertainty, MC-stat and empty-bin
    settings; no shape systematics). The CNN: the score in :func:`limit_score_edges` bins; the
    cut-based search: one bin, the signal region. Yields: the test events scaled to the whole
    sample at ``lumi_fb``. μ is in units of the signal sample's σ; ``expected_xsec_pb`` = μ · σ.

    Args:
        test: the test images.
        score: their CNN scores.
        cut_pass: their cut-based SR flags.
        limits: the ``limits`` section.
        lumi_fb: the luminosity (fb⁻¹).
        signals: signal samples (those absent from ``test`` are skipped).
        backgrounds: background samples.
        min_background_events: background MC events in the highest score bin.

    Raises:
        ValueError, RuntimeError: the statistical model cannot be built or fitted.
    """
    import hist

    from analysis.stats.histograms import HistSet, SampleHists
    from analysis.stats.limits import build_workspace, upper_limit

    yw = yield_weights(test, lumi_fb)
    bkg_mask = test.label == 0
    edges = limit_score_edges(score[bkg_mask], min_background_events)
    xsec = {s: float(test.sample_info.get(s, {}).get("xsec_pb", np.nan)) for s in test.samples}
    samples: dict[str, SampleHists] = {}
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
        samples[s] = SampleHists(hists=hs, xsec_pb=xsec[s])
    histset = HistSet(lumi_fb=lumi_fb, normalised=True, samples=samples)
    out: dict[str, SignalLimits] = {}
    for sig in signals:
        if sig not in samples:
            continue
        res = {}
        for obs in ("cnn_score", "cut_based"):
            spec, report = build_workspace(
                histset, signal=sig, backgrounds=[b for b in backgrounds if b in samples], regions=[obs],
                observable=obs, systematics=(), lumi_uncertainty=limits.lumi_uncertainty,
                mc_stat=limits.mc_stat, empty_bin_floor=limits.empty_bin_floor)
            lim = upper_limit(spec, cl=limits.confidence_level, test_statistic=limits.test_statistic,
                              poi_scale=report.poi_scale, observed=False)
            xs = xsec[sig]
            res[obs] = ObservableLimit(expected_mu=lim.expected, expected_xsec_pb=[mu * xs for mu in lim.expected],
                                       yields=report.yields[obs], warnings=report.warnings)
        out[sig] = SignalLimits(cnn=res["cnn_score"], cut_based=res["cut_based"])
    return ExpectedLimits(cnn_score_edges=[float(e) for e in edges], lumi_fb=lumi_fb,
                          confidence_level=limits.confidence_level, signals=out)


# --------------------------------------------------------------------------- the comparison


@dataclass(frozen=True)
class SampleScores:
    """One sample's test events: how many, passing the cuts, passing the CNN at the cut-based
    FPR, and the expected events of the whole sample (at the luminosity)."""

    label: int | None
    test_events: int
    cut_based_pass: int
    cnn_pass_at_cut_fpr: int
    expected_events_total: float

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (the keys of the written outputs, in their order)."""
        return {"label": self.label, "test_events": self.test_events, "cut_based_pass": self.cut_based_pass,
                "cnn_pass_at_cut_fpr": self.cnn_pass_at_cut_fpr, "expected_events_total": self.expected_events_total}


@dataclass(frozen=True)
class ModelSummary:
    """The evaluated model file: its path, settings and training summary."""

    path: str
    model_cfg: CaloModel
    n_train: int | None
    best_epoch: int | None
    train_images_per_s: float | None
    device: str | None

    @classmethod
    def of(cls, loaded: LoadedModel) -> ModelSummary:
        """The summary of a model file read with :func:`~selections.rpv.cnn.model.load_model`."""
        info = loaded.info
        return cls(loaded.path, loaded.model_cfg, info.get("n_train"), info.get("best_epoch"),
                   info.get("train_images_per_s"), info.get("device"))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (the keys of the written outputs, in their order)."""
        return {"path": self.path, "model_cfg": self.model_cfg.to_dict(), "n_train": self.n_train,
                "best_epoch": self.best_epoch, "train_images_per_s": self.train_images_per_s,
                "device": self.device}


@dataclass
class CnnEvaluation:
    """The CNN against the cut-based search on the test split (:func:`compare`).

    Attributes:
        test: the test images.
        score: their CNN scores.
        cut_pass: their cut-based SR flags.
        fpr, tpr: the weighted ROC curve (:func:`weighted_roc`).
        auc: the weighted AUC.
        comparison: the two at the cut-based point.
        hists: σ-weighted score histograms (per sample, ``signal``, ``background``).
        samples: per sample, its test events.
        inference: the inference rate.
        device: where the model ran.
        lumi_fb: the luminosity (fb⁻¹) of the expected events.
        model: the model file evaluated (None for a model in memory).
        limits: expected limits (None when ``calo.evaluation.limits`` is off or they failed).
        limits_error: why the limits failed.
    """

    test: ImageSet
    score: np.ndarray
    cut_pass: np.ndarray
    fpr: np.ndarray
    tpr: np.ndarray
    auc: float
    comparison: CutPointComparison
    hists: dict[str, hist.Hist]
    samples: dict[str, SampleScores]
    inference: InferenceRate
    device: str
    lumi_fb: float
    model: ModelSummary | None = None
    limits: ExpectedLimits | None = None
    limits_error: str | None = None

    @property
    def test_events(self) -> dict[str, int]:
        """Signal and background test events."""
        return {"signal": int(np.sum(self.test.label == 1)), "background": int(np.sum(self.test.label == 0))}

    def to_dict(self) -> dict[str, Any]:
        """The ``summary.json`` content."""
        out: dict[str, Any] = {
            "test_events": self.test_events,
            "samples": {s: v.to_dict() for s, v in self.samples.items()},
            "auc": self.auc,
            **self.comparison.to_dict(),
            "inference": self.inference.to_dict(),
            "device": self.device,
            "lumi_fb": self.lumi_fb,
        }
        if self.model is not None:
            out["model"] = self.model.to_dict()
        if self.limits is not None:
            out["expected_limits"] = self.limits.to_dict()
        elif self.limits_error is not None:
            out["expected_limits"] = {"error": self.limits_error}
        return out


def compare(
    cfg: Config,
    model: CaloCNN,
    normaliser: Normaliser,
    test: ImageSet,
    cut_pass: np.ndarray,
    *,
    device: str | torch.device | None = None,
    model_summary: ModelSummary | None = None,
) -> CnnEvaluation:
    """Score the test images, compare with the cut-based search, histogram the scores and
    compute the expected limits (``calo.evaluation.limits``).

    Args:
        cfg: the configuration (``calo.evaluation``, ``rpv``, ``limits``; ``seed`` for the bootstrap).
        model: the CNN.
        normaliser: its input normaliser.
        test: the test images.
        cut_pass: their cut-based SR flags (:func:`cut_flags_for`).
        device: where to score (default :func:`~analysis.ml.training.pick_device`).
        model_summary: the model file, for the summary.

    Returns:
        The :class:`CnnEvaluation`.

    Raises:
        CaloInputError, ZeroWeightError: a test split without both classes or with bad weights.
    """
    from sklearn.metrics import roc_auc_score

    evaluation, rpv = cfg.calo.evaluation, cfg.rpv
    dev = pick_device(device)
    check_training_set(test, "test split")
    score, rate = predict(model, test, normaliser, dev, batch_size=int(evaluation.batch_size))
    y, w = test.label.astype(np.int64), test.weight
    auc = float(roc_auc_score(y, score, sample_weight=w))
    fpr, tpr, _ = weighted_roc(score, y, w)
    comparison = compare_at_cut_point(score, y, w, cut_pass, bootstrap=int(evaluation.bootstrap), seed=int(cfg.seed))
    hists = score_histograms(test, score, int(evaluation.score_bins), float(rpv.lumi_fb))
    thr = comparison.cnn_at_cut_fpr.threshold
    thr_v = np.inf if thr is None else thr
    samples = {}
    for i, s in enumerate(test.samples):
        m = test.sample_id == i
        samples[s] = SampleScores(label=int(test.label[m][0]) if m.any() else None, test_events=int(m.sum()),
                                  cut_based_pass=int(cut_pass[m].sum()),
                                  cnn_pass_at_cut_fpr=int((score[m] >= thr_v).sum()),
                                  expected_events_total=_total(hists[s]))
    limits, limits_error = None, None
    if evaluation.limits:
        try:
            limits = expected_limits(test, score, cut_pass, cfg.limits, lumi_fb=float(rpv.lumi_fb),
                                     signals=rpv.signal_samples, backgrounds=rpv.background_samples,
                                     min_background_events=int(evaluation.limit_min_background_events))
        except (ValueError, RuntimeError) as exc:  # LimitInputError is a ValueError
            log.warning("expected limits failed: %s", exc)
            limits_error = f"{type(exc).__name__}: {exc}"
    log.info("AUC %.4f; cut-based TPR %.3f at FPR %.3g; CNN TPR %.3f there; ratio %.2f",
             auc, comparison.cut_based.tpr, comparison.cut_based.fpr, comparison.cnn_at_cut_fpr.tpr,
             comparison.tpr_ratio)
    return CnnEvaluation(test=test, score=score, cut_pass=np.asarray(cut_pass, bool), fpr=fpr, tpr=tpr, auc=auc,
                         comparison=comparison, hists=hists, samples=samples, inference=rate, device=str(dev),
                         lumi_fb=rpv.lumi_fb, model=model_summary, limits=limits, limits_error=limits_error)


def evaluate(
    cfg: Config,
    model_path: str | os.PathLike[str],
    image_files: Sequence[str | os.PathLike[str]],
    cut_tables: Sequence[str | os.PathLike[str]],
    output_dir: str | os.PathLike[str],
    *,
    normalisation: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    plots: bool = True,
) -> CnnEvaluation:
    """``hepline calo evaluate``: :func:`compare` on the test split of image files; writes
    ``summary.json``, ``roc.npz``, ``scores.root`` and (``plots``) ``example_images.png``,
    ``roc.png``, ``scores.png`` into ``output_dir``, each with its provenance.

    Args:
        cfg: the configuration (torch threads from ``calo.training.threads``).
        model_path: the model file (``calo_cnn.pt``).
        image_files: one image file per sample.
        cut_tables: the cut-based tables of the same samples (:func:`selections.rpv.cuts.select`).
        output_dir: the output folder.
        normalisation: a ``normalisation.json`` that must match the model's.
        device: where to score.
        plots: write the plots.

    Returns:
        The :class:`CnnEvaluation`.

    Raises:
        ImageSizeError: images of another grid than the model's.
        CaloInputError: a test event without a cut-based entry.
    """
    out = Path(output_dir)
    dev = pick_device(device)
    with torch_threads(cfg.calo.training.threads):
        loaded = load_model(model_path, dev, normalisation=normalisation)
        test = load_image_files(image_files, split=(cfg.calo.split, "test"))
        test = match_grid(test, loaded.model.spec, f"the image files ({', '.join(map(str, image_files))})",
                          f"model {model_path}")
        tables = {t.sample: t.columns for t in map(read_table, cut_tables)}
        result = compare(cfg, loaded.model, loaded.normaliser, test, cut_flags_for(test, tables), device=dev,
                         model_summary=ModelSummary.of(loaded))
    inputs = [model_path, *image_files, *cut_tables, *([normalisation] if normalisation else [])]
    record = provenance_record(stage="calo.evaluate", config=cfg, seeds={"bootstrap": int(cfg.seed)}, inputs=inputs,
                               extra={"device": str(dev)})
    write_score_root(out / "scores.root", result.hists, provenance=record)
    with atomic_path(out / "roc.npz", provenance=record) as tmp:
        np.savez_compressed(tmp, fpr=result.fpr, tpr=result.tpr)
    write_json(out / "summary.json", result.to_dict(), provenance=record)
    if plots:
        save_figure(plot_examples(test, int(cfg.calo.evaluation.example_images)), out / "example_images.png",
                    provenance=record)
        save_figure(plot_roc(result.fpr, result.tpr, result.comparison, result.auc), out / "roc.png",
                    provenance=record)
        save_figure(plot_scores(result.hists, test.samples), out / "scores.png", provenance=record)
    return result
