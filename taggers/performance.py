"""Performance of the taggers on a labelled jet sample, in memory: working points, rejections,
ROC curves, efficiency maps, ratios to a reference tagger.

All taggers are evaluated on the same jets (in the workflow: the test split of
``taggers.prepare``, ``event % 10 == 9``). All numbers use the jets' weights; the test split is
not reweighted by default (``taggers.reweighting.apply_to`` = train, validation), so its jets
carry unit weights and the natural (pT, |η|) spectra of each flavour.

* **Working points** (fixed cut): for each b efficiency ε in ``taggers.working_points`` the
  cut is the midpoint between two adjacent distinct D values of the b jets (the discriminant
  rounded to float32 like the decorated branches) whose weighted fraction of b jets above it
  is closest to ε (:func:`working_point_cut`); a jet is *tagged* when ``D > cut``.
* **Efficiencies and rejections:** ``ε = Σw(pass) / Σw``, ``R = 1/ε``, binomial errors
  ``σ_ε = sqrt(ε (1 − ε) / N)`` and ``σ_R = R sqrt((1 − ε) / (ε N))`` with ``N`` the Kish
  effective count ``(Σw)² / Σw²`` of the flavour's jets (``taggers.evaluation.error_count``;
  equal to the plain count for unit weights). If no jet passes, ε is replaced by ``1/N``
  (``R = N`` is then a lower limit, flagged).
* **Ratios** to the reference tagger (IP3D) at every working point: the value, the error
  from uncorrelated propagation of the two binomial errors, and the standard deviation over
  ``taggers.evaluation.bootstrap`` Poisson-bootstrap replicas of the jets in which the cuts
  are re-derived (this accounts for the correlation of taggers evaluated on the same jets and
  for the statistical error of the cut).
* **ROC curves** (:func:`sklearn.metrics.roc_curve` with the weights): light and c rejection
  against b efficiency, on the grid ``taggers.evaluation.roc_b_efficiency``.
* Efficiency per flavour against jet pT (GeV) and |η| at every working point; discriminant
  histograms per flavour.

:func:`evaluate_dataset` runs the taggers on a dataset and returns the
:class:`TaggerPerformance`; its :meth:`~TaggerPerformance.to_dict` and
:meth:`~TaggerPerformance.working_points_dict` are the content of ``results.json`` and
``working_points.json`` (without the provenance the stage adds, :mod:`taggers.evaluate`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.core.config.taggers import TaggersConfig
from taggers.features import TaggingDataset
from taggers.models import Predictions, TaggerModels, branch_name
from taggers.training import TaggerInputError

__all__ = [
    "FLAVOURS",
    "BinnedEfficiency",
    "BootstrapRatios",
    "Efficiency",
    "EfficiencyMap",
    "FlavourSummary",
    "Rejection",
    "RejectionRatio",
    "RocCurves",
    "SampleSummary",
    "TaggerPerformance",
    "TaggerResult",
    "WorkingPoint",
    "binned_efficiencies",
    "binomial_efficiency",
    "bootstrap_ratios",
    "check_sample",
    "clean_json",
    "discriminant_histograms",
    "effective_count",
    "evaluate_dataset",
    "evaluate_predictions",
    "rejection",
    "roc_curves",
    "roc_grid",
    "summary_table",
    "working_point_cut",
    "working_point_numbers",
    "wp_name",
]

#: flavour name -> HadronConeExclTruthLabelID
FLAVOURS: dict[str, int] = {"b": 5, "c": 4, "light": 0, "tau": 15}
#: what the numbers mean (stored in results.json)
DEFINITIONS: dict[str, str] = {
    "tagged": "D > cut",
    "rejection": "1 / efficiency",
    "rejection_error": "R * sqrt((1 - eps) / (eps * N))",
    "ratio_error_uncorrelated": "r * sqrt((sR1/R1)^2 + (sR2/R2)^2)",
    "ratio_error_bootstrap": "std over Poisson-bootstrap replicas, cuts re-derived",
}


def wp_name(eff: float) -> str:
    """``0.7 -> "70"``, ``0.775 -> "77.5"``."""
    return f"{100 * eff:.10g}"


def clean_json(x: Any) -> Any:
    """JSON-safe: numpy to lists, NaN/inf to None, keys to strings."""
    if isinstance(x, dict):
        return {str(k): clean_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean_json(v) for v in x]
    if isinstance(x, np.ndarray):
        return clean_json(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Efficiency:
    """A weighted efficiency with its binomial error.

    Attributes:
        eff: ``Σw(pass) / Σw`` (NaN for no jet or no weight).
        err: ``sqrt(eff (1 − eff) / n_eff)``.
        n: jets.
        n_eff: the ``N`` of the error (Kish effective count or ``n``).
    """

    eff: float
    err: float
    n: int
    n_eff: float


@dataclass(frozen=True)
class Rejection:
    """``R = 1/ε`` with its binomial error; ``lower_limit``: no jet passed (ε set to ``1/N``)."""

    value: float
    err: float
    lower_limit: bool


def effective_count(w: np.ndarray, how: str = "kish") -> float:
    """``N`` of the binomial errors: Kish ``(Σw)²/Σw²`` or (``unweighted``) the number of entries."""
    w = np.asarray(w, dtype=np.float64)
    if how == "unweighted":
        return float(w.size)
    s2 = float(np.sum(w * w))
    return float(np.sum(w)) ** 2 / s2 if s2 > 0 else 0.0


def binomial_efficiency(passed: np.ndarray, w: np.ndarray | None = None, how: str = "kish") -> Efficiency:
    """The :class:`Efficiency` of a weighted pass mask (``eff`` NaN when empty)."""
    passed = np.asarray(passed, dtype=bool)
    w = np.ones(passed.size) if w is None else np.asarray(w, dtype=np.float64)
    total = float(w.sum())
    n_eff = effective_count(w, how)
    if passed.size == 0 or total <= 0:
        return Efficiency(math.nan, math.nan, int(passed.size), n_eff)
    eff = float(w[passed].sum()) / total
    err = math.sqrt(max(eff * (1 - eff), 0.0) / n_eff) if n_eff > 0 else math.nan
    return Efficiency(eff, err, int(passed.size), n_eff)


def rejection(eff: float, n_eff: float) -> Rejection:
    """``R = 1/ε`` and ``σ_R = R sqrt((1 − ε)/(ε N))``. For ``ε = 0`` (no jet passes) the
    one-jet-equivalent ``ε = 1/N`` is used and ``lower_limit`` is True.

    Raises:
        TaggerInputError: no jet (``N = 0`` or ε NaN).
    """
    if not n_eff > 0 or not math.isfinite(eff):
        raise TaggerInputError("rejection of an empty jet sample")
    limit = eff <= 0.0
    e = 1.0 / n_eff if limit else eff
    r = 1.0 / e
    return Rejection(r, r * math.sqrt(max(1.0 - e, 0.0) / (e * n_eff)), limit)


def working_point_cut(d: np.ndarray, w: np.ndarray, eff: float) -> tuple[float, float]:
    """Fixed cut on ``d`` giving the (weighted) efficiency closest to ``eff`` for ``D > cut``.

    The candidate cuts are the midpoints between adjacent distinct values (and one below the
    smallest), so ties are never split.

    Returns:
        ``(cut, achieved efficiency)``.

    Raises:
        TaggerInputError: no jet or no weight.
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


@dataclass(frozen=True)
class WorkingPoint:
    """A fixed-cut working point of one tagger.

    Attributes:
        b_efficiency: the nominal b-jet efficiency.
        cut: a jet is tagged when ``D > cut``.
        b: the measured b-jet efficiency.
        efficiency: per background flavour present (``light``, ``c``, ``tau``).
        rejection: per flavour (``light``, ``c``) present.
    """

    b_efficiency: float
    cut: float
    b: Efficiency
    efficiency: Mapping[str, Efficiency]
    rejection: Mapping[str, Rejection]

    @property
    def light_rejection(self) -> float:
        """Light-jet rejection ``1/ε_light``."""
        return self.rejection["light"].value

    @property
    def c_rejection(self) -> float:
        """c-jet rejection ``1/ε_c``."""
        return self.rejection["c"].value

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``results.json``: ``taggers.<t>.working_points.<wp>``)."""
        out: dict[str, Any] = {"cut": self.cut, "b_efficiency": self.b_efficiency,
                               "b_efficiency_measured": self.b.eff, "b_efficiency_err": self.b.err}
        for fl, e in self.efficiency.items():
            out[f"{fl}_efficiency"] = e.eff
            out[f"{fl}_efficiency_err"] = e.err
            if fl in self.rejection:
                r = self.rejection[fl]
                out[f"{fl}_rejection"] = r.value
                out[f"{fl}_rejection_err"] = r.err
                out[f"{fl}_rejection_lower_limit"] = r.lower_limit
        return out


def working_point_numbers(
    d: np.ndarray, label: np.ndarray, w: np.ndarray, effs: Sequence[float], how: str = "kish"
) -> dict[str, WorkingPoint]:
    """The working points of one tagger.

    Args:
        d: the discriminant of every jet.
        label: HadronConeExclTruthLabelID of every jet.
        w: the jet weights.
        effs: the nominal b-jet efficiencies.
        how: ``kish`` or ``unweighted`` (the ``N`` of the binomial errors).

    Returns:
        ``{"70": WorkingPoint, ...}`` (:func:`wp_name` of each efficiency).
    """
    is_b = label == FLAVOURS["b"]
    out = {}
    for eff in effs:
        cut, _ = working_point_cut(d[is_b], w[is_b], eff)
        tagged = d > cut
        b = binomial_efficiency(tagged[is_b], w[is_b], how)
        efficiency: dict[str, Efficiency] = {}
        rejections: dict[str, Rejection] = {}
        for fl in ("light", "c", "tau"):
            sel = label == FLAVOURS[fl]
            if not sel.any():
                continue
            e = binomial_efficiency(tagged[sel], w[sel], how)
            efficiency[fl] = e
            if fl != "tau":
                rejections[fl] = rejection(e.eff, e.n_eff)
        out[wp_name(eff)] = WorkingPoint(float(eff), cut, b, efficiency, rejections)
    return out


@dataclass(frozen=True)
class BinnedEfficiency:
    """The efficiency of one flavour at one working point in bins of a variable.

    Attributes:
        eff, err: per bin (NaN: no jet in the bin).
        n: jets per bin.
        rejection, rejection_err: ``1/eff`` and its error per bin (light and c jets; NaN
            where not defined), ``None`` for b and tau jets.
        rejection_lower_limit: per bin, no jet passed (``rejection`` is a lower limit).
    """

    eff: np.ndarray
    err: np.ndarray
    n: np.ndarray
    rejection: np.ndarray | None = None
    rejection_err: np.ndarray | None = None
    rejection_lower_limit: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``None`` in empty bins)."""
        out: dict[str, Any] = {
            "eff": [None if math.isnan(v) else v for v in self.eff.tolist()],
            "err": [None if math.isnan(v) else v for v in self.err.tolist()],
            "n": [int(v) for v in self.n],
        }
        if self.rejection is not None:
            assert self.rejection_err is not None and self.rejection_lower_limit is not None
            undefined = np.isnan(self.rejection)
            out["rejection"] = {
                "value": [None if u else v for u, v in zip(undefined, self.rejection.tolist())],
                "err": [None if u else v for u, v in zip(undefined, self.rejection_err.tolist())],
                "lower_limit": [None if u else bool(v) for u, v in zip(undefined, self.rejection_lower_limit)],
            }
        return out


@dataclass(frozen=True)
class EfficiencyMap:
    """Efficiencies per flavour against a jet variable at every working point.

    Attributes:
        edges: the bin edges (GeV for pT); jets beyond the outer edges are not counted.
        bins: ``bins[wp][flavour]``.
    """

    edges: np.ndarray
    bins: Mapping[str, Mapping[str, BinnedEfficiency]]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``results.json``: ``efficiency_vs_pt``)."""
        return {wp: {fl: be.to_dict() for fl, be in per.items()} for wp, per in self.bins.items()}


def binned_efficiencies(
    d: np.ndarray,
    label: np.ndarray,
    w: np.ndarray,
    x: np.ndarray,
    edges: Sequence[float],
    cuts: Mapping[str, float],
    how: str,
) -> EfficiencyMap:
    """Per working point and flavour: efficiency, error, jets per bin of ``x``, and the light
    and c rejection with errors.

    Args:
        d: the discriminant; label, w: flavour labels and weights of the jets.
        x: the binning variable (e.g. pT in GeV).
        edges: the bin edges.
        cuts: ``{wp: cut}``.
        how: the ``N`` of the binomial errors.
    """
    e = np.asarray(edges, dtype=np.float64)
    ibin = np.searchsorted(e, x, side="right") - 1
    inside = (ibin >= 0) & (ibin < e.size - 1)
    out: dict[str, dict[str, BinnedEfficiency]] = {}
    n_bins = e.size - 1
    for wp, cut in cuts.items():
        tagged = d > cut
        per: dict[str, BinnedEfficiency] = {}
        for fl, lab in FLAVOURS.items():
            eff, err, n = np.full(n_bins, np.nan), np.full(n_bins, np.nan), np.zeros(n_bins, np.int64)
            rej, rej_err, limit = np.full(n_bins, np.nan), np.full(n_bins, np.nan), np.zeros(n_bins, bool)
            for k in range(n_bins):
                sel = inside & (ibin == k) & (label == lab)
                r = binomial_efficiency(tagged[sel], w[sel], how)
                eff[k], err[k], n[k] = r.eff, r.err, r.n
                if fl in ("light", "c") and r.n and r.n_eff > 0:
                    rr = rejection(r.eff, r.n_eff)
                    rej[k], rej_err[k], limit[k] = rr.value, rr.err, rr.lower_limit
            if fl in ("light", "c"):
                per[fl] = BinnedEfficiency(eff, err, n, rej, rej_err, limit)
            else:
                per[fl] = BinnedEfficiency(eff, err, n)
        out[wp] = per
    return EfficiencyMap(e, out)


@dataclass(frozen=True)
class RocCurves:
    """Light and c rejection against b-jet efficiency, on a grid, with the AUCs.

    Attributes:
        b_efficiency: the grid.
        light_rejection, c_rejection: ``1/ε_bkg`` at each grid point (NaN where no
            background jet passes).
        light_rejection_rel_err, c_rejection_rel_err: their relative binomial errors.
        auc_b_vs_light, auc_b_vs_c: the areas under the ROC curves.
    """

    b_efficiency: np.ndarray
    light_rejection: np.ndarray
    light_rejection_rel_err: np.ndarray
    c_rejection: np.ndarray
    c_rejection_rel_err: np.ndarray
    auc_b_vs_light: float
    auc_b_vs_c: float

    def rejection(self, background: str) -> np.ndarray:
        """The ``light`` or ``c`` rejection curve."""
        return np.asarray(getattr(self, f"{background}_rejection"))

    def rejection_rel_err(self, background: str) -> np.ndarray:
        """The relative error of the ``light`` or ``c`` rejection curve."""
        return np.asarray(getattr(self, f"{background}_rejection_rel_err"))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``results.json``: ``taggers.<t>.roc``; NaN as None)."""
        return clean_json({
            "light_rejection": self.light_rejection,
            "light_rejection_rel_err": self.light_rejection_rel_err,
            "c_rejection": self.c_rejection,
            "c_rejection_rel_err": self.c_rejection_rel_err,
        })


def roc_grid(first: float, last: float, step: float) -> np.ndarray:
    """The b-efficiency grid ``first, first + step, ..., last`` within (0, 1]."""
    grid = np.round(np.arange(first, last + 0.5 * step, step), 10)
    return np.asarray(grid[(grid > 0) & (grid <= 1)])


def roc_curves(d: np.ndarray, label: np.ndarray, w: np.ndarray, grid: np.ndarray) -> RocCurves:
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
    return RocCurves(b_efficiency=np.asarray(grid), **out)


@dataclass(frozen=True)
class BootstrapRatios:
    """Poisson-bootstrap spread of the rejection ratios to the reference tagger.

    Attributes:
        replicas: replicas drawn (0: off).
        skipped_replicas: replicas in which some tagger had no passing background jet.
        std: ``std[tagger][wp][flavour]``: standard deviation of the ratio over the replicas
            (``None`` with fewer than two).
    """

    replicas: int
    skipped_replicas: int = 0
    std: Mapping[str, Mapping[str, Mapping[str, float | None]]] = field(default_factory=dict)

    def error(self, tagger: str, wp: str, flavour: str) -> float | None:
        """The bootstrap error of one ratio (``None`` when not available)."""
        return self.std.get(tagger, {}).get(wp, {}).get(flavour)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``results.json``: ``bootstrap``; empty when off)."""
        return {} if self.replicas <= 0 else {"replicas": self.replicas, "skipped_replicas": self.skipped_replicas}


def bootstrap_ratios(
    disc: Mapping[str, np.ndarray],
    label: np.ndarray,
    w: np.ndarray,
    effs: Sequence[float],
    reference: str,
    n_replicas: int,
    seed: int,
) -> BootstrapRatios:
    """Standard deviation, over Poisson-bootstrap replicas of the jets, of each tagger's
    light and c rejection divided by the reference tagger's (cuts re-derived per replica).

    Args:
        disc: the discriminant of every tagger.
        label, w: flavour labels and weights of the jets.
        effs: the nominal b-jet efficiencies.
        reference: the reference tagger.
        n_replicas: replicas (0: off).
        seed: seeds ``numpy.random.default_rng``.
    """
    if n_replicas <= 0:
        return BootstrapRatios(replicas=0)
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
    std: dict[str, dict[str, dict[str, float | None]]] = {}
    for (t, wp, fl), vals in samples.items():
        std.setdefault(t, {}).setdefault(wp, {})[fl] = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
    return BootstrapRatios(replicas=n_replicas, skipped_replicas=skipped, std=std)


def discriminant_histograms(
    disc: Mapping[str, np.ndarray], label: np.ndarray, w: np.ndarray, bins: int
) -> dict[str, dict[str, Any]]:
    """``{tagger: {flavour: hist.Hist}}`` (weighted storage), range from the 0.1 % and 99.9 %
    quantiles of all jets (under/overflow kept in the flow bins)."""
    import hist

    out: dict[str, dict[str, Any]] = {}
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


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class TaggerResult:
    """The performance of one tagger.

    Attributes:
        name: the tagger.
        fc: the f_c of its discriminant (``None`` for MV2).
        working_points: ``{"70": WorkingPoint, ...}``.
        roc: the ROC curves.
        efficiency_vs_pt: efficiencies against jet pT (GeV).
        efficiency_vs_abs_eta: efficiencies against jet |η|.
        discriminant_min, discriminant_max: the range of the discriminant.
    """

    name: str
    fc: float | None
    working_points: Mapping[str, WorkingPoint]
    roc: RocCurves
    efficiency_vs_pt: EfficiencyMap
    efficiency_vs_abs_eta: EfficiencyMap
    discriminant_min: float
    discriminant_max: float

    @property
    def variable(self) -> str:
        """The decorated branch (``Jet_btag_<tagger>``)."""
        return branch_name(self.name)

    @property
    def cuts(self) -> dict[str, float]:
        """``{wp: cut}``."""
        return {wp: e.cut for wp, e in self.working_points.items()}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``results.json``: ``taggers.<t>``; NaN as None)."""
        return clean_json({
            "variable": self.variable,
            "fc": self.fc,
            "auc_b_vs_light": self.roc.auc_b_vs_light,
            "auc_b_vs_c": self.roc.auc_b_vs_c,
            "working_points": {wp: e.to_dict() for wp, e in self.working_points.items()},
            "roc": self.roc.to_dict(),
            "efficiency_vs_pt": self.efficiency_vs_pt.to_dict(),
            "efficiency_vs_abs_eta": self.efficiency_vs_abs_eta.to_dict(),
            "discriminant_min": self.discriminant_min,
            "discriminant_max": self.discriminant_max,
        })

    def working_points_dict(self) -> dict[str, Any]:
        """The JSON form in ``working_points.json``: the cuts with their efficiencies and
        rejections, and the efficiency maps against pT for truth tagging and b-tag scale
        factors downstream (per WP and flavour, the efficiency in each pT bin, ``None``: no
        jet in the bin, its binomial error, and the jets behind it)."""
        keep = ("cut", "b_efficiency", "light_rejection", "light_rejection_err", "c_rejection",
                "c_rejection_err", "b_efficiency_measured", "b_efficiency_err",
                "light_rejection_lower_limit", "c_rejection_lower_limit")
        #: added later: the efficiency of every background flavour present, with its error
        optional = tuple(f"{fl}_efficiency{s}" for fl in ("light", "c", "tau") for s in ("", "_err"))
        maps = self.efficiency_vs_pt.to_dict()
        return {
            "variable": self.variable,
            "fc": self.fc,
            "working_points": {wp: {k: d[k] for k in (*keep, *optional) if k in d}
                               for wp, d in ((wp, e.to_dict()) for wp, e in self.working_points.items())},
            "efficiency_vs_pt": {
                "pt_edges_gev": [float(x) for x in self.efficiency_vs_pt.edges],
                "working_points": {wp: {fl: list(v["eff"]) for fl, v in per.items()} for wp, per in maps.items()},
                "errors": {wp: {fl: list(v["err"]) for fl, v in per.items()} for wp, per in maps.items()},
                "jets": {wp: {fl: [int(n) for n in v["n"]] for fl, v in per.items()} for wp, per in maps.items()},
            },
        }


@dataclass(frozen=True)
class RejectionRatio:
    """A tagger's rejection divided by the reference tagger's at one working point.

    Attributes:
        value: the ratio.
        error_uncorrelated: from the two binomial errors, propagated as uncorrelated.
        error_bootstrap: the Poisson-bootstrap standard deviation (``None`` when off).
        lower_limit_involved: a rejection of the two is a lower limit.
    """

    value: float
    error_uncorrelated: float
    error_bootstrap: float | None
    lower_limit_involved: bool

    @property
    def error(self) -> float:
        """The bootstrap error if available, else the uncorrelated one."""
        return self.error_bootstrap if self.error_bootstrap is not None else self.error_uncorrelated

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``results.json``: ``ratios_to_reference``)."""
        return {"value": self.value, "error_uncorrelated": self.error_uncorrelated,
                "error_bootstrap": self.error_bootstrap, "lower_limit_involved": self.lower_limit_involved}


@dataclass(frozen=True)
class FlavourSummary:
    """Jets of one flavour in the evaluated sample: number, summed weight, effective count."""

    jets: int
    sum_weights: float
    n_eff: float


@dataclass(frozen=True)
class SampleSummary:
    """The evaluated jets.

    Attributes:
        source: the file (or description) they come from.
        jets: their number.
        reweighted: the split was reweighted in ``taggers.prepare``.
        unit_weights: every weight is 1.
        flavours: per flavour (``b``, ``c``, ``light``, ``tau``).
    """

    source: str
    jets: int
    reweighted: bool
    unit_weights: bool
    flavours: Mapping[str, FlavourSummary]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``results.json``: ``test_split``)."""
        return {
            "file": self.source,
            "jets": self.jets,
            "reweighted": self.reweighted,
            "weights": "unit" if self.unit_weights else "reweighted",
            "flavours": {fl: {"jets": s.jets, "sum_weights": s.sum_weights, "n_eff": s.n_eff}
                         for fl, s in self.flavours.items()},
        }


@dataclass
class TaggerPerformance:
    """The performance of the taggers on one labelled jet sample (:func:`evaluate_dataset`).

    Attributes:
        taggers: per tagger, its :class:`TaggerResult`.
        sample: the evaluated jets.
        roc_b_efficiency: the b-efficiency grid of the ROC curves.
        reference: the reference tagger of the ratios.
        error_count: ``kish`` or ``unweighted``.
        pt_edges_gev, abs_eta_edges: the binning of the efficiency maps.
        ratios: ``ratios[tagger][wp][flavour]`` to the reference tagger.
        bootstrap: the bootstrap of the ratios.
        histograms: ``histograms[tagger][flavour]``: the discriminant (``hist.Hist``).
        discriminants: per tagger, the discriminant of every jet (float32 values, as the
            decorated branches hold them, in float64).
        predictions: the taggers' outputs the numbers come from.
    """

    taggers: dict[str, TaggerResult]
    sample: SampleSummary
    roc_b_efficiency: np.ndarray
    reference: str
    error_count: str
    pt_edges_gev: tuple[float, ...]
    abs_eta_edges: tuple[float, ...]
    ratios: dict[str, dict[str, dict[str, RejectionRatio]]]
    bootstrap: BootstrapRatios
    histograms: dict[str, dict[str, Any]]
    discriminants: dict[str, np.ndarray]
    predictions: Predictions | None = None

    @property
    def rocs(self) -> dict[str, RocCurves]:
        """The ROC curves per tagger."""
        return {t: r.roc for t, r in self.taggers.items()}

    @property
    def headline_wp(self) -> str:
        """The working point of the headline ratio: 70 % when evaluated, else the first."""
        first = next(iter(self.taggers.values()))
        return "70" if "70" in first.working_points else next(iter(first.working_points))

    @property
    def rnnip_over_ip3d(self) -> RejectionRatio | None:
        """RNNIP / IP3D light rejection at :attr:`headline_wp` (when IP3D is the reference and
        RNNIP was evaluated)."""
        if self.reference != "ip3d" or "rnnip" not in self.ratios:
            return None
        return self.ratios["rnnip"][self.headline_wp]["light"]

    def to_dict(self) -> dict[str, Any]:
        """The in-memory part of ``results.json`` (JSON-ready: NaN as None): the sample,
        definitions, ROC grid, per-tagger results, binning, ratios, bootstrap, headline."""
        out: dict[str, Any] = {
            "test_split": self.sample.to_dict(),
            "definitions": {**DEFINITIONS, "error_count": self.error_count, "reference_tagger": self.reference},
            "roc_b_efficiency": self.roc_b_efficiency,
            "taggers": {t: r.to_dict() for t, r in self.taggers.items()},
            "binning": {"pt_edges_gev": list(self.pt_edges_gev), "abs_eta_edges": list(self.abs_eta_edges)},
            "ratios_to_reference": {t: {wp: {fl: r.to_dict() for fl, r in per_fl.items()}
                                        for wp, per_fl in per_wp.items()} for t, per_wp in self.ratios.items()},
            "bootstrap": self.bootstrap.to_dict(),
        }
        head = self.rnnip_over_ip3d
        if head is not None:
            out["rnnip_over_ip3d_light_rejection"] = {"wp": self.headline_wp, **head.to_dict(), "error": head.error}
        return clean_json(out)

    def working_points_dict(self) -> dict[str, Any]:
        """The ``taggers`` part of ``working_points.json`` (JSON-ready)."""
        return clean_json({"taggers": {t: r.working_points_dict() for t, r in self.taggers.items()}})


def _f32(d: np.ndarray) -> np.ndarray:
    """The discriminant as the decorated float32 branch holds it (back in float64)."""
    return np.asarray(d, dtype=np.float32).astype(np.float64)


def check_sample(label: np.ndarray, source: str) -> None:
    """Check that the jets can be evaluated: at least one b, c and light jet.

    Args:
        label: HadronConeExclTruthLabelID of every jet.
        source: names the jets in errors.

    Raises:
        TaggerInputError: no jet, or no b, c or light jet.
    """
    n = len(label)
    if n == 0:
        raise TaggerInputError(f"the test set {source} is empty (0 jets): nothing to evaluate")
    for fl in ("b", "c", "light"):
        if not np.any(label == FLAVOURS[fl]):
            raise TaggerInputError(
                f"the test set {source} ({n} jets) has no {fl} jets "
                f"(HadronConeExclTruthLabelID {FLAVOURS[fl]}): cannot derive working points "
                "and rejections"
            )


def evaluate_predictions(
    predictions: Predictions,
    cfg: TaggersConfig,
    *,
    seed: int,
    fc: Mapping[str, float | None],
    source: str = "<memory>",
    reweighted: bool = False,
) -> TaggerPerformance:
    """The performance of the taggers from their predictions on labelled jets.

    Args:
        predictions: the discriminants and the jets (``label``, ``weight``, ``pt``, ``eta``).
        cfg: the ``taggers`` section (``working_points``, ``evaluation``).
        seed: seeds the bootstrap of the ratios.
        fc: the f_c of every tagger's discriminant (``None`` for MV2).
        source: names the jets (the test file) in the results and in errors.
        reweighted: the jets' weights come from the reweighting of ``taggers.prepare``.

    Returns:
        The :class:`TaggerPerformance`.

    Raises:
        TaggerInputError: no jet, or no b, c or light jet.
    """
    jets = predictions.dataset.jets
    ecfg = cfg.evaluation
    how = ecfg.error_count
    label = np.asarray(jets["label"])
    check_sample(label, source)
    disc = {t: _f32(d) for t, d in predictions.discriminants.items()}
    w = np.asarray(jets["weight"], dtype=np.float64)
    effs = [float(e) for e in cfg.working_points]
    first, last, step = (float(v) for v in ecfg.roc_b_efficiency)
    grid = roc_grid(first, last, step)
    ref = ecfg.reference_tagger
    pt = np.asarray(jets["pt"], np.float64)
    abs_eta = np.abs(np.asarray(jets["eta"], np.float64))

    results: dict[str, TaggerResult] = {}
    for t, d in disc.items():
        wps = working_point_numbers(d, label, w, effs, how)
        cuts = {wp: e.cut for wp, e in wps.items()}
        results[t] = TaggerResult(
            name=t,
            fc=fc.get(t),
            working_points=wps,
            roc=roc_curves(d, label, w, grid),
            efficiency_vs_pt=binned_efficiencies(d, label, w, pt, ecfg.pt_edges_gev, cuts, how),
            efficiency_vs_abs_eta=binned_efficiencies(d, label, w, abs_eta, ecfg.abs_eta_edges, cuts, how),
            discriminant_min=float(d.min()),
            discriminant_max=float(d.max()),
        )

    ratios: dict[str, dict[str, dict[str, RejectionRatio]]] = {}
    boot = BootstrapRatios(replicas=0)  # no ratios without the reference tagger
    if ref in results:
        boot = bootstrap_ratios(disc, label, w, effs, ref, int(ecfg.bootstrap), seed=int(seed))
        for t in results:
            if t == ref:
                continue
            for wp in (wp_name(e) for e in effs):
                for fl in ("light", "c"):
                    a = results[t].working_points[wp].rejection[fl]
                    b = results[ref].working_points[wp].rejection[fl]
                    r = a.value / b.value
                    unc = r * math.hypot(a.err / a.value, b.err / b.value)
                    ratios.setdefault(t, {}).setdefault(wp, {})[fl] = RejectionRatio(
                        value=r,
                        error_uncorrelated=unc,
                        error_bootstrap=boot.error(t, wp, fl),
                        lower_limit_involved=bool(a.lower_limit or b.lower_limit),
                    )
    sample = SampleSummary(
        source=source,
        jets=len(label),
        reweighted=reweighted,
        unit_weights=bool(np.all(w == 1.0)),
        flavours={
            fl: FlavourSummary(jets=int((label == lab).sum()), sum_weights=float(w[label == lab].sum()),
                               n_eff=effective_count(w[label == lab], how))
            for fl, lab in FLAVOURS.items()
        },
    )
    return TaggerPerformance(
        taggers=results,
        sample=sample,
        roc_b_efficiency=grid,
        reference=ref,
        error_count=how,
        pt_edges_gev=tuple(ecfg.pt_edges_gev),
        abs_eta_edges=tuple(ecfg.abs_eta_edges),
        ratios=ratios,
        bootstrap=boot,
        histograms=discriminant_histograms(disc, label, w, int(ecfg.discriminant_bins)),
        discriminants=disc,
        predictions=predictions,
    )


def evaluate_dataset(
    test: TaggingDataset,
    models: TaggerModels,
    cfg: TaggersConfig,
    taggers: Collection[str] | None = None,
    *,
    seed: int,
    high_level: bool = False,
    source: str = "<memory>",
) -> TaggerPerformance:
    """Run the taggers on labelled jets and measure their performance (in memory).

    Args:
        test: the jets (in the workflow: the test split of :mod:`taggers.prepare`, whose
            IP2D/IP3D and SV1 columns are used).
        models: the trained taggers (:func:`taggers.models.load_models`).
        cfg: the ``taggers`` section (``working_points``, ``evaluation``).
        taggers: the taggers to evaluate (default: all of ``models``).
        seed: seeds the bootstrap of the ratios (the configuration's ``seed``).
        high_level: recompute the IP2D/IP3D/SV1 columns from the tracks (a dataset that
            did not come from ``taggers.prepare``).
        source: names the jets in the results and in errors.

    Returns:
        The :class:`TaggerPerformance`.

    Raises:
        TaggerInputError: an empty sample, or no b, c or light jets.
    """
    check_sample(np.asarray(test.jets["label"]), source)
    predictions = models.predict(test, high_level=high_level, taggers=taggers)
    reweighted = bool((test.meta.get("h5_metadata") or {}).get("reweighted", False))
    return evaluate_predictions(predictions, cfg, seed=seed, fc={t: models.fc(t) for t in predictions.discriminants},
                                source=source, reweighted=reweighted)


def summary_table(perf: TaggerPerformance, wps: Sequence[str] = ("70", "77")) -> str:
    """Markdown table of the light and c rejections (with errors) at ``wps``."""
    head = "| tagger | " + " | ".join(f"light rej. {wp}% | c rej. {wp}%" for wp in wps) + " |"
    lines = [head, "|---" * (1 + 2 * len(wps)) + "|"]
    for t, entry in perf.taggers.items():
        cells = []
        for wp in wps:
            point = entry.working_points[wp]
            for fl in ("light", "c"):
                r = point.rejection[fl]
                cells.append(f"{'>' if r.lower_limit else ''}{r.value:.4g} ± {r.err:.2g}")
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
