"""The whole-detector CNN claim: every network against the cut-based search, with honest statistics.

Bhimji et al. (arXiv:1711.03573) found that a CNN on whole-event images reaches about 1.85× the
signal efficiency (TPR) of the RPV multijet search's cuts at the cuts' background efficiency
(FPR). This module measures that ratio on one set of test events for several networks (the
reduced-filter paper CNN and the point-cloud comparator, each trained with several seeds):

* **Cut-based point.** The weighted TPR and FPR of the signal region on the test split, with
  weighted binomial errors, the background events passing, their effective number
  n_eff = (Σw)²/Σw², and each background slice's share of the FPR (a slice without a passing
  test event gets the 95 % upper bound 3·w̄/W of its share, w̄ its mean test weight, W the
  total background test weight).
* **Networks at a working point.** For each network and seed: the weighted ROC and AUC; its
  TPR at the loosest score threshold whose FPR does not exceed (a) the cut-based FPR and
  (b) each ``calo.evaluation.fpr_targets`` value (2.2·10⁻⁴, the published cut-based point);
  the ratio R = TPR_network / TPR_cut.
* **Undefined ratios.** A ratio whose FPR is 0 or rests on fewer than
  ``calo.evaluation.min_effective_events`` effective background events (the cut-based
  passing events for (a), the network's events above its threshold for (b)) is reported as
  the string ``"insufficient statistics (N)"`` with N that effective count, never as a number.
* **Errors.** A bootstrap that resamples the test events with their weights (each event gets a
  Poisson(1) multiplicity per replica, the same for every network, so the correlations are kept):
  per replica the cut-based point, every threshold and every TPR are recomputed; the quoted
  error is the standard deviation of the defined replicas, with their 16–84 % interval and
  the number of replicas where the ratio was undefined. Over seeds: the mean of the defined
  ratios and their standard deviation (the training spread).
* **Expected limits** on σ(g̃g̃) from each selection, through the shared pyhf code
  (:func:`analysis.stats.limits.build_workspace`, :func:`~analysis.stats.limits.upper_limit`, the
  ``limits`` section's settings): the cut-based signal region (one bin), each network at its
  cut-FPR working point (one bin), and each network's score binned from the top down
  (:func:`selections.rpv.compare.limit_score_edges`).

In memory: :func:`claim` (test images, cut flags, scores → :class:`ClaimResult`). Files
(``hepline calo claim``): :func:`run_claim` scores the model files, adds the sample,
throughput, size and CPU records and writes the JSON (``docs/results/cnn_claim.json``) and a
ROC plot.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from analysis.core.atomic import write_json
from analysis.core.config import Config
from analysis.core.config.limits import LimitsConfig
from analysis.core.provenance import provenance_record
from analysis.ml.training import pick_device, torch_threads
from analysis.plot.style import experiment_label, save_figure, style
from selections.rpv.cnn.images import CaloInputError, ImageSet, load_image_files, match_grid
from selections.rpv.cuts import read_table, weighted_efficiency
from selections.rpv.samples import ZeroWeightError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

__all__ = [
    "FORMAT",
    "NETWORKS",
    "ClaimResult",
    "CutBasedClaimPoint",
    "NetworkRun",
    "NetworkSummary",
    "RankedScores",
    "RatioEstimate",
    "SliceShare",
    "WorkingPoint",
    "claim",
    "cpu_seconds_of_histories",
    "cpu_seconds_of_shards",
    "effective_events",
    "plot_claim_roc",
    "run_claim",
    "score_model_file",
    "selection_limits",
    "undefined_label",
]

FORMAT = "hepline-cnn-claim-1"
#: the networks of the claim (``calo.claim.networks``)
NETWORKS = ("cnn", "point_cloud")


# --------------------------------------------------------------------------- statistics helpers


def effective_events(weight: np.ndarray) -> float:
    """(Σw)²/Σw² of the events given (0 without events)."""
    w = np.asarray(weight, np.float64)
    s2 = float(np.sum(w * w))
    return float(np.sum(w)) ** 2 / s2 if s2 > 0 else 0.0


def undefined_label(n_effective: float) -> str:
    """The string reported instead of a ratio that rests on too few events:
    ``insufficient statistics (N)``, N the effective number of background events."""
    return f"insufficient statistics ({n_effective:.3g})"


class RankedScores:
    """One score array sorted once, so that the weighted ROC can be recomputed for any event
    weights (the bootstrap replicas) in O(N).

    Args:
        score: the network's score per event.
        label: 1 signal, 0 background.
    """

    def __init__(self, score: np.ndarray, label: np.ndarray) -> None:
        s = np.asarray(score, np.float64)
        self.order = np.argsort(-s, kind="stable")
        self.is_signal = np.asarray(label)[self.order] == 1
        ss = s[self.order]
        #: the last event of each group of equal scores (one ROC point per distinct score)
        self.last = np.r_[np.flatnonzero(np.diff(ss) != 0), ss.size - 1] if ss.size else np.zeros(0, np.int64)
        self.thresholds = ss[self.last]

    def at_fpr(self, weight: np.ndarray, target: float) -> tuple[float, float, float, float]:
        """``(tpr, fpr, threshold, n_eff_background)`` of the loosest threshold with FPR ≤ ``target``.

        ``threshold`` is +inf (nothing selected, TPR 0) when no score threshold qualifies.

        Raises:
            ZeroWeightError: no positive signal or background weight.
        """
        ws = np.asarray(weight, np.float64)[self.order]
        sig = np.where(self.is_signal, ws, 0.0)
        bkg = np.where(self.is_signal, 0.0, ws)
        cs, cb, cb2 = np.cumsum(sig)[self.last], np.cumsum(bkg)[self.last], np.cumsum(bkg * bkg)[self.last]
        ts, tb = float(sig.sum()), float(bkg.sum())
        if not (ts > 0 and tb > 0):
            raise ZeroWeightError(f"ROC needs positive signal and background weights (got {ts:g}, {tb:g})")
        ok = np.flatnonzero(cb / tb <= target * (1 + 1e-9))
        if ok.size == 0:
            return 0.0, 0.0, math.inf, 0.0
        i = int(ok[-1])  # TPR grows along the list: the last qualifying point is the loosest
        neff = float(cb[i] ** 2 / cb2[i]) if cb2[i] > 0 else 0.0
        return float(cs[i] / ts), float(cb[i] / tb), float(self.thresholds[i]), neff


@dataclass(frozen=True)
class RatioEstimate:
    """A TPR ratio with its statistics, or the reason it is undefined.

    Attributes:
        value: TPR_network / TPR_cut; ``None`` when undefined.
        n_effective: the effective background events the FPR of the ratio rests on.
        undefined: ``"insufficient statistics (N)"`` when the FPR is 0 or ``n_effective`` is below the
            minimum (or TPR_cut is 0); ``None`` otherwise.
        bootstrap_err: standard deviation of the defined bootstrap replicas (None: fewer than 2).
        interval_68: their 16–84 % interval.
        replicas: bootstrap replicas with a defined ratio.
        replicas_undefined: replicas where the ratio was undefined.
    """

    value: float | None
    n_effective: float
    undefined: str | None = None
    bootstrap_err: float | None = None
    interval_68: tuple[float, float] | None = None
    replicas: int = 0
    replicas_undefined: int = 0

    def to_dict(self) -> dict[str, Any]:
        """``ratio`` is the number, or the ``"insufficient statistics (N)"`` string."""
        return {"ratio": self.undefined if self.value is None else self.value, "n_effective": self.n_effective,
                "bootstrap_err": self.bootstrap_err,
                "bootstrap_68": None if self.interval_68 is None else list(self.interval_68),
                "bootstrap_replicas": self.replicas, "bootstrap_replicas_undefined": self.replicas_undefined}

    def describe(self) -> str:
        """The ratio in words: ``1.23 ± 0.20`` or ``insufficient statistics (4.2)``."""
        if self.value is None:
            return str(self.undefined)
        err = "" if self.bootstrap_err is None else f" ± {self.bootstrap_err:.2f}"
        return f"{self.value:.2f}{err}"


@dataclass(frozen=True)
class SliceShare:
    """One background sample at the cut-based point (test events).

    Attributes:
        test_events: its test events.
        passing: those passing the signal region.
        n_effective: their effective number.
        fpr_share: Σw(passing) / Σw(all background test events).
        fpr_share_upper_95: with no passing event, 3·w̄/W (the 95 % upper bound); else None.
    """

    test_events: int
    passing: int
    n_effective: float
    fpr_share: float
    fpr_share_upper_95: float | None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form."""
        return {"test_events": self.test_events, "passing": self.passing, "n_effective": self.n_effective,
                "fpr_share": self.fpr_share, "fpr_share_upper_95": self.fpr_share_upper_95}


@dataclass(frozen=True)
class CutBasedClaimPoint:
    """The cut-based signal region on the test events.

    Attributes:
        tpr, tpr_err, fpr, fpr_err: weighted rates and binomial errors.
        n_signal_pass, n_background_pass: passing test events.
        n_effective_background: effective number of the passing background events.
        slices: per background sample, its share of the FPR.
    """

    tpr: float
    tpr_err: float
    fpr: float
    fpr_err: float
    n_signal_pass: int
    n_background_pass: int
    n_effective_background: float
    slices: dict[str, SliceShare]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form."""
        return {"tpr": self.tpr, "tpr_err": self.tpr_err, "fpr": self.fpr, "fpr_err": self.fpr_err,
                "n_signal_pass": self.n_signal_pass, "n_background_pass": self.n_background_pass,
                "n_effective_background": self.n_effective_background,
                "slices": {k: v.to_dict() for k, v in self.slices.items()}}


@dataclass(frozen=True)
class WorkingPoint:
    """A network at the loosest threshold whose FPR does not exceed a target.

    Attributes:
        target_fpr: the target (the cut-based FPR, or a ``fpr_targets`` value).
        tpr, tpr_err: the weighted TPR and its binomial error.
        fpr: the weighted FPR reached.
        threshold: the score threshold (None: nothing passes).
        n_background_pass: background test events above it; n_effective_background: their
            effective number.
        per_sample: test events above the threshold, per sample.
        ratio: TPR / TPR_cut (:class:`RatioEstimate`).
    """

    target_fpr: float
    tpr: float
    tpr_err: float
    fpr: float
    threshold: float | None
    n_background_pass: int
    n_effective_background: float
    per_sample: dict[str, int]
    ratio: RatioEstimate

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form."""
        return {"target_fpr": self.target_fpr, "tpr": self.tpr, "tpr_err": self.tpr_err, "fpr": self.fpr,
                "threshold": self.threshold, "n_background_pass": self.n_background_pass,
                "n_effective_background": self.n_effective_background, "per_sample": dict(self.per_sample),
                **self.ratio.to_dict()}


@dataclass(frozen=True)
class NetworkRun:
    """One trained network (a network and a seed) on the test events.

    Attributes:
        network: ``cnn`` or ``point_cloud``.
        seed: its training seed.
        auc: the weighted AUC.
        at_cut_fpr: the working point at the cut-based FPR.
        at_targets: the working points at ``fpr_targets`` (keyed by the target as ``"2.2e-04"``).
        model: what the model file says of its training (parameters, epochs, images/s, ...).
    """

    network: str
    seed: int
    auc: float
    at_cut_fpr: WorkingPoint
    at_targets: dict[str, WorkingPoint]
    model: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``<network>_s<seed>``."""
        return f"{self.network}_s{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form."""
        return {"network": self.network, "seed": self.seed, "auc": self.auc, "at_cut_fpr": self.at_cut_fpr.to_dict(),
                "at_fpr": {k: v.to_dict() for k, v in self.at_targets.items()}, "model": self.model}


@dataclass(frozen=True)
class NetworkSummary:
    """One network over its seeds: the mean and spread of the defined ratios.

    Attributes:
        seeds: the seeds.
        auc_mean, auc_std: over the seeds.
        ratio_at_cut_fpr, ratio_at_targets: ``{"mean", "seed_std", "bootstrap_err_mean",
            "defined_seeds"}``, or the ``"insufficient statistics (N)"`` string when no seed gives a number
            (N the smallest effective count).
    """

    seeds: list[int]
    auc_mean: float
    auc_std: float
    ratio_at_cut_fpr: dict[str, Any] | str
    ratio_at_targets: dict[str, dict[str, Any] | str]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form."""
        return {"seeds": self.seeds, "auc_mean": self.auc_mean, "auc_std": self.auc_std,
                "ratio_at_cut_fpr": self.ratio_at_cut_fpr, "ratio_at_fpr": self.ratio_at_targets}


def _seed_summary(estimates: Sequence[RatioEstimate]) -> dict[str, Any] | str:
    vals = [e.value for e in estimates if e.value is not None]
    if not vals:
        return undefined_label(min(e.n_effective for e in estimates))
    errs = [e.bootstrap_err for e in estimates if e.value is not None and e.bootstrap_err is not None]
    return {"mean": float(np.mean(vals)), "seed_std": float(np.std(vals, ddof=1)) if len(vals) > 1 else None,
            "bootstrap_err_mean": float(np.mean(errs)) if errs else None, "defined_seeds": len(vals),
            "values": [e.value if e.value is not None else e.undefined for e in estimates]}


def _target_key(target: float) -> str:
    return f"{target:.1e}"


# --------------------------------------------------------------------------- the comparison


def _cut_point(cut_pass: np.ndarray, label: np.ndarray, weight: np.ndarray, sample_id: np.ndarray,
               samples: Sequence[str]) -> CutBasedClaimPoint:
    sig, bkg = label == 1, label == 0
    tpr, tpr_err = weighted_efficiency(cut_pass[sig], weight[sig])
    fpr, fpr_err = weighted_efficiency(cut_pass[bkg], weight[bkg])
    total_b = float(weight[bkg].sum())
    slices = {}
    for i, s in enumerate(samples):
        m = bkg & (sample_id == i)
        if not m.any():
            continue
        p = m & cut_pass
        n_pass = int(p.sum())
        slices[s] = SliceShare(
            test_events=int(m.sum()), passing=n_pass, n_effective=effective_events(weight[p]),
            fpr_share=float(weight[p].sum()) / total_b,
            fpr_share_upper_95=None if n_pass else 3.0 * float(weight[m].mean()) / total_b)
    return CutBasedClaimPoint(tpr, tpr_err, fpr, fpr_err, int(np.sum(cut_pass & sig)), int(np.sum(cut_pass & bkg)),
                              effective_events(weight[cut_pass & bkg]), slices)


def _working_point(ranked: RankedScores, score: np.ndarray, label: np.ndarray, weight: np.ndarray,
                   sample_id: np.ndarray, samples: Sequence[str], target: float, tpr_cut: float,
                   gate_neff: float | None, min_eff: float) -> WorkingPoint:
    """The network at ``target``; the ratio's definedness rests on ``gate_neff`` (the cut-based
    n_eff) when given, else on the network's own background above the threshold."""
    tpr, fpr, thr, neff = ranked.at_fpr(weight, target)
    passed = np.asarray(score) >= thr
    sig = label == 1
    _, tpr_err = weighted_efficiency(passed[sig], weight[sig])
    n_eff_gate = neff if gate_neff is None else gate_neff
    if (gate_neff is None and fpr <= 0) or (gate_neff is not None and target <= 0) or n_eff_gate < min_eff \
            or not tpr_cut > 0:
        ratio = RatioEstimate(None, n_eff_gate, undefined_label(n_eff_gate))
    else:
        ratio = RatioEstimate(tpr / tpr_cut, n_eff_gate)
    return WorkingPoint(
        target_fpr=float(target), tpr=tpr, tpr_err=tpr_err, fpr=fpr, threshold=None if math.isinf(thr) else thr,
        n_background_pass=int(np.sum(passed & (label == 0))), n_effective_background=neff,
        per_sample={s: int(np.sum(passed & (sample_id == i))) for i, s in enumerate(samples)}, ratio=ratio)


def _with_bootstrap(r: RatioEstimate, reps: list[float], undefined: int) -> RatioEstimate:
    a = np.asarray(reps, np.float64)
    return RatioEstimate(
        r.value, r.n_effective, r.undefined,
        bootstrap_err=float(a.std(ddof=1)) if a.size > 1 else None,
        interval_68=(float(np.percentile(a, 16)), float(np.percentile(a, 84))) if a.size > 1 else None,
        replicas=int(a.size), replicas_undefined=int(undefined))


def _bootstrap(runs: list[NetworkRun], ranked: Mapping[str, RankedScores], cut_pass: np.ndarray,
               label: np.ndarray, weight: np.ndarray, targets: Sequence[float], min_eff: float, replicas: int,
               seed: int, canonical: np.ndarray) -> list[NetworkRun]:
    """The runs with the bootstrap errors of their ratios (common Poisson multiplicities, drawn
    in the ``canonical`` event order so that the replicas do not depend on the file order)."""
    if replicas <= 0:
        return runs
    rng = np.random.default_rng(seed)
    mult = np.empty(weight.size, np.int64)
    sig, bkg = label == 1, label == 0
    reps: dict[tuple[str, str], list[float]] = {(r.name, k): [] for r in runs for k in ["cut", *map(_target_key, targets)]}
    undefined = dict.fromkeys(reps, 0)
    for _ in range(replicas):
        mult[canonical] = rng.poisson(1.0, weight.size)
        wb = weight * mult
        ts, tb = float(wb[sig].sum()), float(wb[bkg].sum())
        if not (ts > 0 and tb > 0):
            for k in undefined:
                undefined[k] += 1
            continue
        tpr_cut = float(wb[sig & cut_pass].sum()) / ts
        fpr_cut = float(wb[bkg & cut_pass].sum()) / tb
        neff_cut = effective_events(wb[bkg & cut_pass])
        for r in runs:
            rk = ranked[r.name]
            if fpr_cut > 0 and neff_cut >= min_eff and tpr_cut > 0:
                reps[(r.name, "cut")].append(rk.at_fpr(wb, fpr_cut)[0] / tpr_cut)
            else:
                undefined[(r.name, "cut")] += 1
            for t in targets:
                tpr, fpr, _, neff = rk.at_fpr(wb, t)
                if fpr > 0 and neff >= min_eff and tpr_cut > 0:
                    reps[(r.name, _target_key(t))].append(tpr / tpr_cut)
                else:
                    undefined[(r.name, _target_key(t))] += 1
    out = []
    for r in runs:
        at_cut = replace(r.at_cut_fpr, ratio=_with_bootstrap(r.at_cut_fpr.ratio, reps[(r.name, "cut")],
                                                             undefined[(r.name, "cut")]))
        at_t = {k: replace(wp, ratio=_with_bootstrap(wp.ratio, reps[(r.name, k)], undefined[(r.name, k)]))
                for k, wp in r.at_targets.items()}
        out.append(replace(r, at_cut_fpr=at_cut, at_targets=at_t))
    return out


# --------------------------------------------------------------------------- limits


def selection_limits(
    test: ImageSet, selections: Mapping[str, np.ndarray], binned: Mapping[str, tuple[np.ndarray, np.ndarray]],
    limits: LimitsConfig, *, lumi_fb: float, signals: Sequence[str], backgrounds: Sequence[str],
    min_effective_events: float = 0.0,
) -> dict[str, dict[str, Any]]:
    """Expected CLs limits on σ(signal) of each selection (one bin) and each binned score.

    Args:
        test: the test events (σ-weighted, scaled to their whole samples at ``lumi_fb``).
        selections: name → per-event mask (a one-bin counting region).
        binned: name → (per-event value in [0, 1], bin edges): a shape fit.
        limits: the ``limits`` section (CL, test statistic, lumi uncertainty, MC stat, floor).
        lumi_fb: the luminosity (fb⁻¹).
        signals, backgrounds: the samples (those absent from ``test`` are skipped).
        min_effective_events: a one-bin selection whose background rests on fewer effective
            events (of the yield weights) gets no limit: its ``expected_xsec_pb`` is
            ``"insufficient statistics (N)"`` (a background of 0 or 2 MC events would give a
            limit set by the empty-bin floor, not by the background).

    Returns:
        name → ``{"expected_xsec_pb": [−2σ … +2σ], "expected_mu": [...], "yields": {...},
        "warnings": [...]}`` (the first signal), ``{"expected_xsec_pb": "insufficient statistics
        (N)", "n_effective_background": N}``, or ``{"error": ...}`` when the fit fails.
    """
    import hist

    from analysis.stats.histograms import HistSet, SampleHists
    from analysis.stats.limits import build_workspace, upper_limit
    from selections.rpv.compare import yield_weights

    yw = yield_weights(test, lumi_fb)
    xsec = {s: float(test.sample_info.get(s, {}).get("xsec_pb", np.nan)) for s in test.samples}
    regions: dict[str, tuple[Any, np.ndarray, np.ndarray]] = {}
    for name, mask in selections.items():
        regions[name] = (hist.axis.Regular(1, 0.0, 1.0, name=name), np.full(len(test), 0.5), np.asarray(mask, bool))
    for name, (values, edges) in binned.items():
        regions[name] = (hist.axis.Variable(edges, name=name), np.clip(np.asarray(values, np.float64), 0.0, 1.0 - 1e-12),
                         np.ones(len(test), bool))
    samples: dict[str, SampleHists] = {}
    for i, s in enumerate(test.samples):
        m = test.sample_id == i
        hs = {}
        for obs, (axis, values, sel) in regions.items():
            h = hist.Hist(hist.axis.StrCategory([obs], name="region"), hist.axis.StrCategory(["nominal"], name="variation"),
                          axis, storage=hist.storage.Weight())
            keep = m & sel
            h.fill(region=obs, variation="nominal", **{obs: values[keep]}, weight=yw[keep])
            hs[obs] = h
        samples[s] = SampleHists(hists=hs, xsec_pb=xsec[s])
    histset = HistSet(lumi_fb=lumi_fb, normalised=True, samples=samples)
    sig = next((s for s in signals if s in samples), None)
    out: dict[str, dict[str, Any]] = {}
    if sig is None:
        return out
    is_bkg = np.isin(np.asarray(test.samples)[test.sample_id], list(backgrounds))
    for obs in regions:
        if obs in selections:
            neff = effective_events(yw[np.asarray(selections[obs], bool) & is_bkg])
            if neff < min_effective_events:
                out[obs] = {"expected_xsec_pb": undefined_label(neff), "n_effective_background": neff}
                continue
        try:
            spec, report = build_workspace(
                histset, signal=sig, backgrounds=[b for b in backgrounds if b in samples], regions=[obs], observable=obs,
                systematics=(), lumi_uncertainty=limits.lumi_uncertainty, mc_stat=limits.mc_stat,
                empty_bin_floor=limits.empty_bin_floor)
            lim = upper_limit(spec, cl=limits.confidence_level, test_statistic=limits.test_statistic,
                              poi_scale=report.poi_scale, observed=False)
        except (ValueError, RuntimeError) as exc:  # LimitInputError is a ValueError
            log.warning("expected limit of %s failed: %s", obs, exc)
            out[obs] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        out[obs] = {"signal": sig, "expected_mu": list(lim.expected),
                    "expected_xsec_pb": [mu * xsec[sig] for mu in lim.expected],
                    "yields": report.yields[obs], "warnings": report.warnings}
    return out


# --------------------------------------------------------------------------- the claim


@dataclass
class ClaimResult:
    """Every network against the cut-based search on the same test events (:func:`claim`).

    Attributes:
        test_events: signal and background test events.
        cut_based: the cut-based point.
        runs: each trained network (network, seed).
        networks: each network over its seeds.
        limits: expected limits per selection (``cut_based``, ``<run>_wp``, ``<run>_score``).
        settings: what the comparison used (targets, minimum n_eff, bootstrap replicas, seed, L).
        samples: per sample, what the claim's inputs say of it (σ·ε, preselection, test events).
        throughput, sizes, cpu: the measured throughput, bytes per event and CPU time
            (filled by :func:`run_claim`).
        rocs: per run, ``(fpr, tpr)`` of its weighted ROC (for the plot, not the JSON).
    """

    test_events: dict[str, int]
    cut_based: CutBasedClaimPoint
    runs: list[NetworkRun]
    networks: dict[str, NetworkSummary]
    limits: dict[str, dict[str, Any]]
    settings: dict[str, Any]
    samples: dict[str, dict[str, Any]] = field(default_factory=dict)
    throughput: dict[str, Any] | None = None
    sizes: dict[str, Any] | None = None
    cpu: dict[str, Any] | None = None
    rocs: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The claim JSON."""
        return {"format": FORMAT, "settings": self.settings, "test_events": self.test_events,
                "samples": self.samples, "cut_based": self.cut_based.to_dict(),
                "networks": {k: v.to_dict() for k, v in self.networks.items()},
                "runs": {r.name: r.to_dict() for r in self.runs}, "expected_limits": self.limits,
                "throughput": self.throughput, "sizes": self.sizes, "cpu": self.cpu}


def claim(
    cfg: Config,
    test: ImageSet,
    cut_pass: np.ndarray,
    scores: Sequence[tuple[str, int, np.ndarray, Mapping[str, Any]]],
    *,
    limits: bool | None = None,
) -> ClaimResult:
    """Compare networks with the cut-based search on the same test events.

    Args:
        cfg: the configuration (``calo.evaluation``: ``fpr_targets``, ``min_effective_events``,
            ``bootstrap``, ``limits``, ``limit_min_background_events``; ``rpv``; ``limits``;
            the top-level ``seed`` seeds the bootstrap).
        test: the test events (both classes).
        cut_pass: their cut-based signal-region flags.
        scores: per trained network ``(network, seed, score per test event, model summary)``.
        limits: compute the expected limits (default ``calo.evaluation.limits``).

    Returns:
        The :class:`ClaimResult`.

    Raises:
        CaloInputError: scores of the wrong length or no network.
        ZeroWeightError: a class without positive weight.
    """
    from sklearn.metrics import roc_auc_score

    from selections.rpv.compare import limit_score_edges, weighted_roc

    ev, rpv = cfg.calo.evaluation, cfg.rpv
    if not scores:
        raise CaloInputError("the claim needs at least one trained network")
    label = np.asarray(test.label).astype(np.int64)
    weight = np.asarray(test.weight, np.float64)
    cut_pass = np.asarray(cut_pass, bool)
    if not ((label == 1).any() and (label == 0).any()):
        raise CaloInputError("the claim's test events need both signal and background")
    min_eff = float(ev.min_effective_events)
    targets = [float(t) for t in ev.fpr_targets]
    cut = _cut_point(cut_pass, label, weight, test.sample_id, test.samples)
    runs, ranked, rocs = [], {}, {}
    for network, seed, score, model in scores:
        score = np.asarray(score, np.float64)
        if score.shape != label.shape:
            raise CaloInputError(f"{network} seed {seed}: {score.size} scores for {label.size} test events")
        rk = RankedScores(score, label)
        name = f"{network}_s{seed}"
        ranked[name] = rk
        fpr, tpr, _ = weighted_roc(score, label, weight)
        rocs[name] = (fpr, tpr)
        at_cut = _working_point(rk, score, label, weight, test.sample_id, test.samples, cut.fpr, cut.tpr,
                                cut.n_effective_background, min_eff)
        at_t = {_target_key(t): _working_point(rk, score, label, weight, test.sample_id, test.samples, t, cut.tpr,
                                               None, min_eff) for t in targets}
        runs.append(NetworkRun(network, int(seed), float(roc_auc_score(label, score, sample_weight=weight)), at_cut,
                               at_t, dict(model)))
    # (sample name, event number): the same replicas whatever order the image files came in
    canonical = np.lexsort((np.asarray(test.event), np.asarray(test.samples)[test.sample_id]))
    runs = _bootstrap(runs, ranked, cut_pass, label, weight, targets, min_eff, int(ev.bootstrap), int(cfg.seed),
                      canonical)
    networks: dict[str, NetworkSummary] = {}
    for net in dict.fromkeys(r.network for r in runs):
        rs = [r for r in runs if r.network == net]
        aucs = [r.auc for r in rs]
        networks[net] = NetworkSummary(
            seeds=[r.seed for r in rs], auc_mean=float(np.mean(aucs)),
            auc_std=float(np.std(aucs, ddof=1)) if len(aucs) > 1 else 0.0,
            ratio_at_cut_fpr=_seed_summary([r.at_cut_fpr.ratio for r in rs]),
            ratio_at_targets={_target_key(t): _seed_summary([r.at_targets[_target_key(t)].ratio for r in rs])
                              for t in targets})
    lims: dict[str, dict[str, Any]] = {}
    if ev.limits if limits is None else limits:
        selections: dict[str, np.ndarray] = {"cut_based": cut_pass}
        binned: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        bkg = label == 0
        for (network, seed, score, _), r in zip(scores, runs):
            thr = r.at_cut_fpr.threshold
            selections[f"{r.name}_wp"] = np.asarray(score) >= (math.inf if thr is None else thr)
            s = np.asarray(score, np.float64)
            binned[f"{r.name}_score"] = (s, limit_score_edges(s[bkg], int(ev.limit_min_background_events)))
        lims = selection_limits(test, selections, binned, cfg.limits, lumi_fb=float(rpv.lumi_fb),
                                signals=rpv.signal_samples, backgrounds=rpv.background_samples,
                                min_effective_events=min_eff)
    settings = {"fpr_targets": targets, "min_effective_events": min_eff, "bootstrap_replicas": int(ev.bootstrap),
                "bootstrap_seed": int(cfg.seed), "lumi_fb": float(rpv.lumi_fb), "split": cfg.calo.split.to_dict(),
                "signal_samples": list(rpv.signal_samples), "background_samples": list(rpv.background_samples)}
    for r in runs:
        log.info("%s: AUC %.5f; TPR ratio at the cut-based FPR %s; at %s", r.name, r.auc,
                 r.at_cut_fpr.ratio.describe(),
                 ", ".join(f"{k}: {v.ratio.describe()}" for k, v in r.at_targets.items()))
    return ClaimResult(
        test_events={"signal": int(np.sum(label == 1)), "background": int(np.sum(label == 0))}, cut_based=cut,
        runs=runs, networks=networks, limits=lims, settings=settings, rocs=rocs)


# --------------------------------------------------------------------------- model files, records


def score_model_file(path: str | os.PathLike[str], test: ImageSet, device: torch.device,
                     batch_size: int = 512) -> tuple[str, int, np.ndarray, dict[str, Any]]:
    """Score the test events with a CNN (``calo_cnn.pt``) or point-cloud (``point_cloud.pt``)
    model file.

    Returns:
        ``(network, seed, scores, model summary)``; the summary is the file's training record
        plus the inference rate (images/s).

    Raises:
        ModelMismatchError: a file that is neither.
    """
    from analysis.core.errors import ModelMismatchError
    from selections.rpv.cnn import model as cnn_model
    from selections.rpv.cnn import pointcloud
    from selections.rpv.cnn.train import predict

    p = Path(path)
    if not p.is_file():
        raise CaloInputError(f"model file not found: {p}")
    kind = torch.load(p, map_location="cpu", weights_only=True).get("kind")
    if kind == cnn_model.MODEL_KIND:
        loaded = cnn_model.load_model(p, device)
        images = match_grid(test, loaded.model.spec, "the test images", f"model {p}")
        score, rate = predict(loaded.model, images, loaded.normaliser, device, batch_size=batch_size)
        info, network = dict(loaded.info), "cnn"
        info["model_cfg"] = loaded.model_cfg.to_dict()
        info["image"] = loaded.model.spec.to_dict()
    elif kind == pointcloud.MODEL_KIND:
        pc = pointcloud.load_point_cloud(p, device)
        score, rate = pointcloud.predict_point_cloud(pc.model, test, device, batch_size=batch_size)
        info, network = dict(pc.info), "point_cloud"
        info["model_cfg"] = pc.cfg.to_dict()
    else:
        raise ModelMismatchError(f"{p}: neither a calo CNN nor a point-cloud model file (kind {kind!r})")
    info["path"] = str(p)
    info["inference_images_per_s"] = rate.images_per_s
    info["inference_images"] = rate.images
    history = p.parent / "history.json"
    if history.is_file():
        hist = json.loads(history.read_text()).get("history", [])
        info["training_cpu_seconds"] = float(sum(h.get("cpu_seconds", 0.0) for h in hist))
        info["training_wall_seconds"] = float(sum(h.get("seconds", 0.0) for h in hist))
        info["val_loss_per_epoch"] = [h.get("val_loss") for h in hist]
    return network, int(info.get("seed", -1)), score, info


def cpu_seconds_of_shards(metrics: Sequence[str | os.PathLike[str]]) -> dict[str, Any]:
    """Generation time of shards from their metrics JSONs (``hepline generate --metrics``).

    Returns:
        ``{"shards", "events_generated", "cpu_seconds", "wall_seconds", "core_hours",
        "events_per_cpu_second"}`` (CPU = Pythia + detector + write of the process).
    """
    cpu = wall = 0.0
    events = 0
    for m in metrics:
        d = json.loads(Path(m).read_text())
        cpu += float(d.get("pythia_cpu_s", 0.0)) + float(d.get("detector_cpu_s", 0.0)) + float(d.get("write_cpu_s", 0.0))
        wall += float(d.get("wall_s", 0.0))
        events += int(d.get("events", 0))
    return {"shards": len(metrics), "events_generated": events, "cpu_seconds": cpu, "wall_seconds": wall,
            "core_hours": cpu / 3600.0, "events_per_cpu_second": events / cpu if cpu > 0 else None}


def cpu_seconds_of_histories(models: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Training CPU time per network from the model summaries of :func:`score_model_file`."""
    out: dict[str, Any] = {}
    for m in models:
        net = str(m.get("network", "?"))
        rec = out.setdefault(net, {"runs": 0, "cpu_seconds": 0.0, "wall_seconds": 0.0})
        rec["runs"] += 1
        rec["cpu_seconds"] += float(m.get("training_cpu_seconds", 0.0))
        rec["wall_seconds"] += float(m.get("training_wall_seconds", 0.0))
    for rec in out.values():
        rec["core_hours"] = rec["cpu_seconds"] / 3600.0
    return out


def plot_claim_roc(result: ClaimResult) -> Figure:
    """Every run's weighted ROC (background efficiency, log, against signal efficiency), the
    cut-based point with its errors and the ``fpr_targets`` lines."""
    plt = style()
    fig, ax = plt.subplots(figsize=(8, 7))
    colours = {"cnn": "C0", "point_cloud": "C2"}
    seen: set[str] = set()
    for r in result.runs:
        fpr, tpr = result.rocs[r.name]
        ok = fpr > 0
        lab = None if r.network in seen else f"{r.network} ({len(result.networks[r.network].seeds)} seeds)"
        seen.add(r.network)
        ax.plot(tpr[ok], fpr[ok], color=colours.get(r.network, "C3"), lw=1.2, alpha=0.8, label=lab)
    cut = result.cut_based
    ax.errorbar([cut.tpr], [max(cut.fpr, 1e-8)], xerr=[cut.tpr_err], yerr=[cut.fpr_err], fmt="o", color="black",
                label=f"cut-based ({cut.n_background_pass} bkg. test events)")
    for t in result.settings.get("fpr_targets", []):
        ax.axhline(t, color="grey", ls="--", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("signal efficiency (weighted TPR)")
    ax.set_ylabel("background efficiency (weighted FPR)")
    ax.set_xlim(0, 1)
    ax.legend(loc="lower right", fontsize=11)
    experiment_label(ax)
    return fig


def run_claim(
    cfg: Config,
    models: Sequence[str | os.PathLike[str]],
    image_files: Sequence[str | os.PathLike[str]],
    cut_tables: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    plot: str | os.PathLike[str] | None = None,
    throughput: str | os.PathLike[str] | None = None,
    image_metrics: Sequence[str | os.PathLike[str]] = (),
    shard_metrics: Sequence[str | os.PathLike[str]] = (),
    device: str | torch.device | None = None,
) -> ClaimResult:
    """``hepline calo claim``: score every model file on the test split, compare with the cuts,
    and write the claim JSON (and a ROC plot).

    Args:
        cfg: the configuration.
        models: CNN and point-cloud model files (each with its ``history.json`` beside it).
        image_files: one image file per sample.
        cut_tables: the cut-based tables of the same samples.
        output: the claim JSON.
        plot: the ROC plot (PNG); ``None``: none.
        throughput: the side-by-side throughput JSON (``hepline calo throughput``) to include.
        image_metrics: the image metrics JSONs (``hepline calo images --metrics``): bytes per event.
        shard_metrics: the generation metrics JSONs of the shards: CPU time.
        device: where to score.

    Returns:
        The :class:`ClaimResult` written.
    """
    from selections.rpv.compare import cut_flags_for
    from selections.rpv.preselection import preselection_summary

    dev = pick_device(device)
    with torch_threads(cfg.calo.training.threads):
        test = load_image_files(image_files, split=(cfg.calo.split, "test"))
        tables = {t.sample: t.columns for t in map(read_table, cut_tables)}
        cut_pass = cut_flags_for(test, tables)
        scored = [score_model_file(m, test, dev, int(cfg.calo.evaluation.batch_size)) for m in models]
    result = claim(cfg, test, cut_pass, scored)
    for i, s in enumerate(test.samples):
        info = dict(test.sample_info.get(s, {}))
        files = [f for f in info.get("files", []) if Path(f).is_file()]
        rec: dict[str, Any] = {"label": info.get("label"), "xsec_pb_after_preselection": info.get("xsec_pb"),
                               "test_events": int(np.sum(test.sample_id == i)),
                               "test_cut_based_pass": int(np.sum(cut_pass & (test.sample_id == i)))}
        if files:
            rec["preselection"] = preselection_summary(files, s).to_dict()
        result.samples[s] = rec
    if throughput is not None:
        result.throughput = json.loads(Path(throughput).read_text())
    if image_metrics:
        result.sizes = {}
        for m in image_metrics:
            d = json.loads(Path(m).read_text())
            result.sizes[str(d.get("sample", m))] = {k: d.get(k) for k in (
                "events", "nnz_per_event", "occupancy", "dense_bytes_per_event_float32", "sparse_bytes_per_event_memory",
                "dense_over_sparse_memory", "sparse_bytes_per_event_file", "dense_over_sparse_file", "events_per_s")}
    result.cpu = {"training": cpu_seconds_of_histories([{**m, "network": n} for n, _, _, m in scored])}
    if shard_metrics:
        result.cpu["generation"] = cpu_seconds_of_shards(shard_metrics)
    record = provenance_record(stage="calo.claim", config=cfg, seeds={"bootstrap": int(cfg.seed)},
                               inputs=[*models, *image_files, *cut_tables], extra={"device": str(dev)})
    write_json(output, result.to_dict(), provenance=record)
    if plot is not None:
        save_figure(plot_claim_roc(result), plot, provenance=record)
    return result
