"""CLs upper limits with pyhf from histograms in the :mod:`analysis.stats.histograms` convention.

Shared by every stage that sets limits (HH → γγbb̄ now, the calorimeter CNN later).

Model (HistFactory, built by :func:`build_workspace`)
------------------------------------------------------
* one channel per region, the observable rebinned (``rebin``) and optionally cut to a
  window; samples = the signal and the backgrounds of the config;
* signal: ``normfactor`` ``mu`` (the POI; internally the signal is pre-scaled by
  ``poi_scale`` so that the expected limit on the fit's μ is O(1), and every reported μ is
  multiplied back: μ is always "in units of the signal sample's σ");
* every MC sample: ``normsys`` ``lumi`` (±``lumi_uncertainty``) and ``histosys`` per shape
  systematic from the ``<syst>Up/Down`` variations; the backgrounds (and the signal with
  ``mc_stat_signal``) ``staterror``: MC statistics from the Weight-storage variances, one
  γ per bin shared by the samples (Barlow–Beeston lite). The signal is left out by
  default: a shared γ with a statistically poor signal template lets the fit scale the
  signal away in its own bins (seen on small samples), which is not an uncertainty on the
  background prediction;
* observations: Asimov (background only) for expected limits; a data sample or Poisson
  pseudo-data for observed ones.

Limits: asymptotic CLs with the q̃μ test statistic (:func:`upper_limit`, an
:class:`UpperLimit`), 95 % CL, expected median with ±1σ/±2σ bands (Cowan et al.), observed
when data are given. For a single counting bin with small counts,
:func:`poisson_cls_upper_limit` gives the exact (non-asymptotic) CLs limit (b = 0, n = 0 →
s = 2.996). The HH grid from the ``limits`` config: :func:`signal_workspaces` (one
:class:`SignalWorkspace` per signal) and :func:`run_limits` (one :class:`LimitResult` per
signal, collected in a :class:`LimitTable`).

Bad input is reported where it happens, never as a pyhf traceback (:class:`LimitInputError`):
a sample named in the config but absent from the histograms or from ``generation.samples``;
a signal with no selected event (the message quotes the cutflow step where everything went);
a region or systematic variation missing from a histogram (``missing_variation`` policy);
bins with no background (floored at ``empty_bin_floor`` with a warning: pyhf cannot fit a
bin with zero expected events).

Stage I/O: :func:`write_workspaces` (histograms → workspace JSONs + ``index.json``,
``hepline limits workspaces``) and :func:`write_limits` (``index.json`` → ``limits.json`` and
``limits.md``, ``hepline limits limits``). The Brazil plot is drawn from ``limits.json`` by
the plots step; this module does not import the plotting.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import hist
import numpy as np

from analysis.core.atomic import write_json, write_text
from analysis.core.errors import InputError, InputFileError
from analysis.core.provenance import provenance_record
from analysis.stats import fits as F
from analysis.stats import histograms as H
from analysis.stats.fits import FitResult

if TYPE_CHECKING:
    from analysis.core.config import Config, LimitsConfig, SampleConfig
    from analysis.core.config.limits import NonresonantContinuumFit

log = logging.getLogger(__name__)

__all__ = [
    "FlooredBins",
    "LimitBand",
    "LimitInputError",
    "LimitResult",
    "LimitTable",
    "SignalWorkspace",
    "UpperLimit",
    "WorkspaceIndex",
    "WorkspaceReport",
    "build_workspace",
    "channel_arrays",
    "poisson_cls_upper_limit",
    "run_limits",
    "signal_workspaces",
    "upper_limit",
    "write_limits",
    "write_workspaces",
]

PathLike = str | os.PathLike[str]
Mode = Literal["resonant", "nonresonant"]


class LimitInputError(InputError):
    """The histograms or the config cannot make a statistical model (message says why)."""


# ---------------------------------------------------------------------------------------
# result types
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FlooredBins:
    """Bins of a region whose total background was raised to the empty-bin floor
    (the amount added to ``sample``, the region's largest background)."""

    region: str
    sample: str
    bins: list[int]

    def to_dict(self) -> dict[str, Any]:
        """``{"region", "sample", "bins"}``."""
        return {"region": self.region, "sample": self.sample, "bins": self.bins}


@dataclass
class WorkspaceReport:
    """What :func:`build_workspace` did besides the spec.

    ``yields``: region → sample → nominal events (before the floor and the POI scaling);
    ``floored_bins``, ``dropped_modifiers``, ``symmetrized``: the bad-input policies applied;
    ``warnings``: every warning logged; ``continuum_fits``: sample → sideband fit (only with a
    continuum fit); ``poi_scale``: the factor the signal was pre-multiplied by; ``observed``:
    ``"asimov"``, ``"pseudo"`` or the data sample's name.
    """

    signal: str
    regions: list[str]
    observable: str
    floored_bins: list[FlooredBins] = field(default_factory=list)
    dropped_modifiers: list[str] = field(default_factory=list)
    symmetrized: list[str] = field(default_factory=list)
    yields: dict[str, dict[str, float]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    continuum_fits: dict[str, FitResult] | None = None
    poi_scale: float = 1.0
    observed: str = "asimov"

    def to_dict(self) -> dict[str, Any]:
        """The ``report`` of an ``index.json`` entry."""
        out: dict[str, Any] = {
            "signal": self.signal, "regions": self.regions, "observable": self.observable,
            "floored_bins": [f.to_dict() for f in self.floored_bins], "dropped_modifiers": self.dropped_modifiers,
            "symmetrized": self.symmetrized, "yields": self.yields, "warnings": self.warnings,
        }
        if self.continuum_fits is not None:
            out["continuum_fits"] = {n: f.to_dict() for n, f in self.continuum_fits.items()}
        out["poi_scale"] = self.poi_scale
        out["observed"] = self.observed
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkspaceReport:
        """The inverse of :meth:`to_dict`."""
        fits = data.get("continuum_fits")
        return cls(
            signal=data["signal"], regions=list(data["regions"]), observable=data["observable"],
            floored_bins=[FlooredBins(f["region"], f["sample"], list(f["bins"])) for f in data.get("floored_bins", [])],
            dropped_modifiers=list(data.get("dropped_modifiers", [])), symmetrized=list(data.get("symmetrized", [])),
            yields={r: dict(y) for r, y in data.get("yields", {}).items()}, warnings=list(data.get("warnings", [])),
            continuum_fits=None if fits is None else {n: FitResult.from_dict(f) for n, f in fits.items()},
            poi_scale=float(data["poi_scale"]), observed=data.get("observed", "asimov"),
        )


@dataclass
class SignalWorkspace:
    """The workspace of one configured signal (:func:`signal_workspaces`).

    ``mass_gev``: m_X in GeV (resonant); ``sigma_ref_pb``: the reference σ(pp → X → HH) in pb
    that μ is in units of (resonant; None for the non-resonant μ_HH).
    """

    signal: str
    mode: Mode
    mass_gev: float | None
    sigma_ref_pb: float | None
    spec: dict[str, Any]
    report: WorkspaceReport

    def index_entry(self, workspace: str) -> dict[str, Any]:
        """The ``index.json`` entry: everything but the spec, and the spec's file name."""
        return {"signal": self.signal, "mode": self.mode, "mass_gev": self.mass_gev,
                "sigma_ref_pb": self.sigma_ref_pb, "report": self.report.to_dict(), "workspace": workspace}


@dataclass(frozen=True)
class LimitBand:
    """Expected limits ``[−2σ, −1σ, median, +1σ, +2σ]`` and the observed one (None if
    expected only), in the unit of the quantity limited."""

    expected: list[float]
    observed: float | None

    @property
    def median(self) -> float:
        """The expected median."""
        return self.expected[2]

    def to_dict(self) -> dict[str, Any]:
        """``{"expected", "observed"}``."""
        return {"expected": self.expected, "observed": self.observed}


@dataclass(frozen=True)
class UpperLimit(LimitBand):
    """A CLs upper limit on the POI μ (:func:`upper_limit`): the band on μ, the confidence
    level, the test statistic, the signal pre-scaling μ was multiplied back by, and the
    number of hypothesis tests run (and failed)."""

    cl: float
    test_statistic: str
    poi_scale: float
    hypotests: int
    failed_hypotests: int

    def to_dict(self) -> dict[str, Any]:
        """``{"expected", "observed", "cl", "test_statistic", "poi_scale", "hypotests",
        "failed_hypotests"}`` (the ``mu`` of a ``limits.json`` row)."""
        return {"expected": self.expected, "observed": self.observed, "cl": self.cl,
                "test_statistic": self.test_statistic, "poi_scale": self.poi_scale,
                "hypotests": self.hypotests, "failed_hypotests": self.failed_hypotests}


@dataclass(frozen=True)
class LimitResult:
    """The limit of one signal (a ``limits.json`` row).

    ``mu``: the limit on μ (units of the signal sample's σ); resonant signals also carry the
    reference σ and the limit on σ(pp → X → HH) = μ × σ_ref (``sigma_limit_pb``, pb).
    """

    signal: str
    mode: Mode
    mass_gev: float | None
    regions: list[str]
    mu: UpperLimit
    warnings: list[str]
    sigma_ref_pb: float | None = None
    sigma_limit_pb: LimitBand | None = None

    @property
    def limit(self) -> LimitBand:
        """The reported limit: on σ in pb (resonant), else on μ_HH."""
        return self.sigma_limit_pb if self.sigma_limit_pb is not None else self.mu

    def to_dict(self) -> dict[str, Any]:
        """The ``limits.json`` row."""
        row: dict[str, Any] = {"signal": self.signal, "mode": self.mode, "mass_gev": self.mass_gev,
                               "regions": self.regions, "mu": self.mu.to_dict(), "warnings": self.warnings}
        if self.mode == "resonant":
            row["sigma_ref_pb"] = self.sigma_ref_pb
            row["sigma_limit_pb"] = None if self.sigma_limit_pb is None else self.sigma_limit_pb.to_dict()
        return row


@dataclass(frozen=True)
class LimitTable:
    """The limits of every configured signal (``limits.json``); ``lumi_fb`` in fb⁻¹."""

    rows: list[LimitResult]
    lumi_fb: float | None = None

    def resonant(self) -> list[LimitResult]:
        """The resonant rows ordered by mass."""
        return sorted((r for r in self.rows if r.mode == "resonant"), key=lambda r: r.mass_gev or 0.0)

    def to_dict(self) -> dict[str, Any]:
        """The ``limits.json`` content ``{"lumi_fb", "rows"}``."""
        return {"lumi_fb": self.lumi_fb, "rows": [r.to_dict() for r in self.rows]}

    def markdown(self) -> str:
        """Markdown tables of the limits (σ in fb for the resonant grid, μ for non-resonant)."""
        lines = []
        res = self.resonant()
        cl = round(100 * self.rows[0].mu.cl) if self.rows else 95
        if res:
            lumi = f", {self.lumi_fb:g} fb⁻¹" if self.lumi_fb else ""
            lines += [f"### {cl}% CL upper limits on σ(pp → X → HH) [fb]{lumi}\n",
                      "| m_X [GeV] | regions | −2σ | −1σ | expected | +1σ | +2σ | observed |",
                      "|---:|---|---:|---:|---:|---:|---:|---:|"]
            for r in res:
                band = r.limit
                e = [1000.0 * x for x in band.expected]
                o = band.observed
                lines.append(f"| {r.mass_gev:g} | {', '.join(r.regions)} | " + " | ".join(f"{x:.4g}" for x in e)
                             + f" | {'–' if o is None else f'{1000.0 * o:.4g}'} |")
        for r in (r for r in self.rows if r.mode == "nonresonant"):
            e = r.mu.expected
            o = r.mu.observed
            lines += ["", f"### {cl}% CL upper limit on μ_HH ({r.signal})\n",
                      "| −2σ | −1σ | expected | +1σ | +2σ | observed |", "|---:|---:|---:|---:|---:|---:|",
                      "| " + " | ".join(f"{x:.4g}" for x in e) + f" | {'–' if o is None else f'{o:.4g}'} |"]
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------
# histograms -> arrays
# ---------------------------------------------------------------------------------------
def _require_sample(histset: H.HistSet, name: str, role: str) -> H.SampleHists:
    if name not in histset.samples:
        have = ", ".join(sorted(histset.samples)) or "none"
        raise LimitInputError(
            f"{role} sample {name!r} is not in the histograms (they hold: {have}); was the "
            "selection run on it, and is it spelled as in generation.samples?"
        )
    return histset.samples[name]


def _edges_and_slices(h: hist.Hist, observable: str, rebin: int,
                      window: Sequence[float] | None) -> tuple[np.ndarray, slice]:
    edges = np.asarray(h.axes[observable].edges)
    lo_i, hi_i = 0, len(edges) - 1
    if window is not None:
        lo, hi = window
        lo_i = int(np.searchsorted(edges, lo, side="right") - 1)
        hi_i = int(np.searchsorted(edges, hi, side="left"))
        lo_i, hi_i = max(lo_i, 0), min(hi_i, len(edges) - 1)
        if hi_i <= lo_i:
            raise LimitInputError(f"window {window} selects no {observable} bin (axis {edges[0]}–{edges[-1]})")
    nb = hi_i - lo_i
    nb -= nb % rebin
    if nb <= 0:
        raise LimitInputError(f"rebin {rebin} larger than the {hi_i - lo_i} bins of {observable} in the window")
    sl = slice(lo_i, lo_i + nb)
    return edges[lo_i: lo_i + nb + 1: rebin], sl


def channel_arrays(
    h: hist.Hist,
    region: str,
    variation: str,
    observable: str,
    rebin: int = 1,
    window: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One region and variation of a ``Hist(region, variation, observable)``, rebinned and windowed.

    Args:
        h: the histogram (Weight storage).
        region: the region label.
        variation: the variation label (``nominal``, ``<syst>Up``, ...).
        observable: the observable axis name.
        rebin: bins merged into one (trailing bins that do not fill a group are dropped).
        window: keep the bins overlapping ``[lo, hi]`` (observable units, GeV).

    Returns:
        (edges, values, variances).

    Raises:
        LimitInputError: unknown region, or a window/rebin that leaves no bin.
        MissingVariationError: the variation is not on the axis.
    """
    if region not in list(h.axes["region"]):
        raise LimitInputError(f"region {region!r} is not in the histogram (it has: {', '.join(h.axes['region'])})")
    if variation not in list(h.axes["variation"]):
        raise H.MissingVariationError(variation)
    h1: Any = h[{"region": region, "variation": variation}]
    edges, sl = _edges_and_slices(h1, observable, rebin, window)
    v = h1.values()[sl].reshape(-1, rebin).sum(axis=1)
    var = h1.variances()[sl].reshape(-1, rebin).sum(axis=1)
    return edges, v.astype(float), var.astype(float)


def _cutflow_diagnosis(entry: H.SampleHists, name: str) -> str:
    cf = entry.cutflow
    if cf is None:
        return f"sample {name!r} has no cutflow"
    steps, raw = cf.steps, cf.raw
    if not raw or raw[0] == 0:
        return f"sample {name!r}: no input events were processed"
    for i in range(1, len(steps)):
        if raw[i] == 0:
            return (f"sample {name!r}: {raw[0]} events read; everything lost at cut "
                    f"{steps[i]!r} ({raw[i - 1]} -> 0; cutflow: "
                    + ", ".join(f"{s}={r}" for s, r in zip(steps[: i + 1], raw[: i + 1], strict=True)) + ")")
    return (f"sample {name!r}: cutflow " + ", ".join(f"{s}={r}" for s, r in zip(steps, raw, strict=True)))


# ---------------------------------------------------------------------------------------
# workspace
# ---------------------------------------------------------------------------------------
def build_workspace(
    histset: H.HistSet,
    *,
    signal: str,
    backgrounds: Sequence[str],
    regions: Sequence[str],
    observable: str,
    rebin: int = 1,
    window: Sequence[float] | None = None,
    systematics: Sequence[str] = H.SYSTEMATICS,
    lumi_uncertainty: float = 0.017,
    mc_stat: bool = True,
    mc_stat_signal: bool = False,
    empty_bin_floor: float = 1e-3,
    missing_variation: str = "error",
    data: str | np.random.Generator | None = None,
    poi_scale: float | Literal["auto"] = "auto",
    poi_name: str = "mu",
    continuum_fit: NonresonantContinuumFit | None = None,
) -> tuple[dict[str, Any], WorkspaceReport]:
    """A pyhf workspace spec of one signal and its report.

    Args:
        histset: a normalised histogram set (:meth:`~analysis.stats.histograms.HistSet.normalise`).
        signal: the signal sample.
        backgrounds: the background samples.
        regions: the regions, one channel each.
        observable: the observable fitted.
        rebin: bins merged into one.
        window: keep the observable bins within ``[lo, hi]`` (GeV).
        systematics: shape systematics (``histosys`` from the ``<syst>Up/Down`` variations).
        lumi_uncertainty: relative luminosity uncertainty (``normsys``; 0: none).
        mc_stat: MC-stat ``staterror`` on the backgrounds.
        mc_stat_signal: the signal under the shared ``staterror`` too.
        empty_bin_floor: bins with less total background (events) are raised to it.
        missing_variation: ``error``, ``symmetrize`` (mirror the other side) or ``drop``.
        data: None → Asimov background-only observations (expected limits); a sample name →
            that sample's nominal; a ``numpy.random.Generator`` → Poisson pseudo-data from
            the background model.
        poi_scale: the factor the signal is pre-multiplied by ("auto": a rough expected
            limit, so the fitted μ is O(1)).
        poi_name: the POI's name.
        continuum_fit: (m_γγ only) replaces the MC templates of ``continuum_fit.samples`` by
            an exponential fitted to the sidebands of their m_γγ in ``shape_region`` (a looser
            region with more MC), normalised in each region (and variation) to the MC yield
            there (:func:`analysis.stats.fits.fit_exponential_sidebands`); the MC-stat
            uncertainty of the yield is kept, fully correlated over the bins of the region.
            Ignored unless ``enabled``.

    Returns:
        (spec, report).

    Raises:
        LimitInputError: histograms that cannot make the model (the message says why).
    """
    if not histset.normalised:
        raise LimitInputError("histograms are not normalised to a luminosity (run analysis.stats.histograms first)")
    if missing_variation not in ("error", "symmetrize", "drop"):
        raise ValueError(f"missing_variation must be error|symmetrize|drop, not {missing_variation!r}")
    if signal in backgrounds:
        raise LimitInputError(f"sample {signal!r} is both the signal and a background")
    sig_entry = _require_sample(histset, signal, "signal")
    bkg_entries = {b: _require_sample(histset, b, "background") for b in backgrounds}
    for name, entry in {signal: sig_entry, **bkg_entries}.items():
        if observable not in entry.hists:
            raise LimitInputError(f"sample {name!r} has no {observable!r} histogram")
    report = WorkspaceReport(signal=signal, regions=list(regions), observable=observable)

    smooth: dict[str, FitResult] = {}
    if continuum_fit is not None and continuum_fit.enabled and continuum_fit.samples:
        if observable != "m_yy":
            raise LimitInputError(f"continuum_fit models m_yy, not {observable!r}")
        report.continuum_fits = {}
        for name in continuum_fit.samples:
            if name not in bkg_entries:
                continue
            h = bkg_entries[name].hists["m_yy"]
            shape_region = continuum_fit.shape_region
            if shape_region not in list(h.axes["region"]):
                raise LimitInputError(f"continuum_fit.shape_region {shape_region!r} is not a region of the histograms")
            e, v, var = F.hist_arrays(h[{"region": shape_region, "variation": "nominal"}])
            try:
                fit = F.fit_exponential_sidebands(
                    e, v, var, sidebands=continuum_fit.sidebands, fit_range=(float(e[0]), float(e[-1])))
            except (ValueError, RuntimeError) as exc:
                msg = f"continuum fit of {name} in {shape_region} failed ({exc}); its MC template is used"
                log.warning(msg)
                report.warnings.append(msg)
                continue
            smooth[name] = fit
            report.continuum_fits[name] = fit

    def arrays(name: str, entry: H.SampleHists, region: str,
               variation: str = "nominal") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        edges, v, var = channel_arrays(entry.hists[observable], region, variation, observable, rebin, window)
        if name in smooth:
            fit = smooth[name]
            full: Any = entry.hists[observable][{"region": region, "variation": variation}]
            y, yv = float(full.values().sum()), float(full.variances().sum())
            v = y * F.continuum_template(fit, edges) / fit.params["n"]
            var = (yv / y**2 if y > 0 else 0.0) * v**2
        return edges, v, var

    # nominal yields and the signal check
    nominal: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    edges_of: dict[str, np.ndarray] = {}
    for region in regions:
        nominal[region] = {}
        for name, entry in {signal: sig_entry, **bkg_entries}.items():
            edges, v, var = arrays(name, entry, region)
            nominal[region][name] = (np.clip(v, 0.0, None), np.clip(var, 0.0, None))
            edges_of[region] = edges
        report.yields[region] = {n: float(v.sum()) for n, (v, _) in nominal[region].items()}
    s_tot = sum(nominal[r][signal][0].sum() for r in regions)
    if not s_tot > 0:
        raise LimitInputError(
            f"signal {signal!r} has no selected events in regions {list(regions)} "
            f"({observable}{'' if window is None else f' in {list(window)}'}): "
            + _cutflow_diagnosis(sig_entry, signal)
        )

    # empty-bin floor on the total background
    added: dict[tuple[str, str], np.ndarray] = {}
    for region in regions:
        b_tot: Any = sum(nominal[region][b][0] for b in backgrounds)
        low = np.asarray(b_tot < empty_bin_floor)
        if low.any():
            totals = {b: nominal[region][b][0].sum() for b in backgrounds}
            target = max(backgrounds, key=lambda b: totals[b])
            floor_add = np.where(low, empty_bin_floor - b_tot, 0.0)
            v, var = nominal[region][target]
            # the floor is a regulator, not MC: no MC-stat uncertainty on the added amount
            # (pyhf fixes the staterror parameter of a bin with zero uncertainty)
            nominal[region][target] = (v + floor_add, var)
            added[(region, target)] = floor_add
            bins = [f"[{edges_of[region][i]:g}, {edges_of[region][i + 1]:g})" for i in np.flatnonzero(low)]
            msg = (f"region {region}: {int(low.sum())}/{len(low)} {observable} bins have background "
                   f"< {empty_bin_floor:g} events; floored (added to {target}): {', '.join(bins)}")
            if not totals[target] > 0:
                msg += " — no background MC at all in this region: the limit is not trustworthy"
            log.warning(msg)
            report.warnings.append(msg)
            report.floored_bins.append(FlooredBins(region=region, sample=target,
                                                   bins=[int(i) for i in np.flatnonzero(low)]))

    # poi scale
    if poi_scale == "auto":
        s_all = np.concatenate([nominal[r][signal][0] for r in regions])
        b_all = np.concatenate([sum(nominal[r][b][0] for b in backgrounds) for r in regions])
        gauss = 1.96 / math.sqrt(float(np.sum(s_all**2 / np.maximum(b_all, empty_bin_floor))))
        poi_scale = max(gauss, 3.0 / float(s_all.sum()))
    scale_poi = float(poi_scale)
    report.poi_scale = scale_poi

    channels = []
    observations = []
    rng = data if isinstance(data, np.random.Generator) else None
    for region in regions:
        samples = []
        for name in [signal, *backgrounds]:
            entry = sig_entry if name == signal else bkg_entries[name]
            v, var = nominal[region][name]
            scale = scale_poi if name == signal else 1.0
            mods: list[dict[str, Any]] = []
            if name == signal:
                mods.append({"name": poi_name, "type": "normfactor", "data": None})
            if lumi_uncertainty > 0:
                mods.append({"name": "lumi", "type": "normsys",
                             "data": {"hi": 1.0 + lumi_uncertainty, "lo": 1.0 - lumi_uncertainty}})
            add: Any = added.get((region, name), 0.0)
            for syst in systematics:
                hi: np.ndarray | None = None
                lo: np.ndarray | None = None
                try:
                    hi = np.clip(arrays(name, entry, region, f"{syst}Up")[1], 0.0, None)
                except H.MissingVariationError:
                    pass
                try:
                    lo = np.clip(arrays(name, entry, region, f"{syst}Down")[1], 0.0, None)
                except H.MissingVariationError:
                    pass
                if hi is None or lo is None:
                    missing = [s for s, x in ((f"{syst}Up", hi), (f"{syst}Down", lo)) if x is None]
                    where = f"sample {name!r}, region {region!r}, observable {observable!r}"
                    if missing_variation == "error":
                        raise LimitInputError(
                            f"systematic variation(s) {', '.join(missing)} missing for {where} "
                            "(set limits.missing_variation to symmetrize or drop to proceed, or drop "
                            f"{syst!r} from limits.systematics)"
                        )
                    if missing_variation == "symmetrize" and (hi is not None or lo is not None):
                        nom0 = nominal[region][name][0] - add
                        if hi is None:
                            hi = np.clip(2 * nom0 - lo, 0.0, None)
                        else:
                            lo = np.clip(2 * nom0 - hi, 0.0, None)
                        msg = f"{', '.join(missing)} missing for {where}: mirrored the other side"
                        report.symmetrized.append(msg)
                    else:
                        msg = f"{', '.join(missing)} missing for {where}: modifier {syst} dropped"
                        report.dropped_modifiers.append(msg)
                        log.warning(msg)
                        report.warnings.append(msg)
                        continue
                    log.warning(msg)
                    report.warnings.append(msg)
                assert hi is not None and lo is not None
                mods.append({"name": syst, "type": "histosys",
                             "data": {"hi_data": ((hi + add) * scale).tolist(),
                                      "lo_data": ((lo + add) * scale).tolist()}})
            if mc_stat and (name != signal or mc_stat_signal):
                mods.append({"name": f"staterror_{region}", "type": "staterror",
                             "data": (np.sqrt(var) * scale).tolist()})
            samples.append({"name": name, "data": (v * scale).tolist(), "modifiers": mods})
        channels.append({"name": region, "samples": samples})
        b_nom: Any = sum(nominal[region][b][0] for b in backgrounds)
        if data is None:
            obs = b_nom
        elif rng is not None:
            obs = rng.poisson(b_nom).astype(float)
        else:
            d_entry = _require_sample(histset, str(data), "data")
            obs = np.clip(arrays(str(data), d_entry, region)[1], 0.0, None)
        observations.append({"name": region, "data": [float(x) for x in obs]})
    spec = {
        "channels": channels,
        "observations": observations,
        "measurements": [{"name": "measurement",
                          "config": {"poi": poi_name, "parameters": []}}],
        "version": "1.0.0",
    }
    report.observed = "asimov" if data is None else ("pseudo" if rng is not None else str(data))
    return spec, report


# ---------------------------------------------------------------------------------------
# limits
# ---------------------------------------------------------------------------------------
def _hypotest(pyhf: Any, mu: float, data: Any, model: Any, test_statistic: str) -> np.ndarray | None:
    """[CLs_obs, CLs_exp(−2σ..+2σ)] at ``mu``; scipy first, minuit if that fit fails."""
    bounds = model.config.suggested_bounds()
    poi = model.config.poi_index
    bounds[poi] = (0.0, max(10.0, 10.0 * mu))
    for opt in (pyhf.optimize.scipy_optimizer(), pyhf.optimize.minuit_optimizer(tolerance=1e-3)):
        pyhf.set_backend("numpy", opt)
        try:
            obs, exp = pyhf.infer.hypotest(mu, data, model, test_stat=test_statistic,
                                           return_expected_set=True, par_bounds=bounds)
        except (pyhf.exceptions.FailedMinimization, ValueError, RuntimeError) as exc:
            log.debug("hypotest at mu=%g failed with %s: %s", mu, type(opt).__name__, exc)
            continue
        vals = np.array([float(obs), *(float(x) for x in exp)])
        if np.all(np.isfinite(vals)):
            return vals
    return None


def upper_limit(
    spec: Mapping[str, Any],
    *,
    cl: float = 0.95,
    test_statistic: str = "qtilde",
    poi_scale: float = 1.0,
    observed: bool = True,
    rtol: float = 5e-3,
) -> UpperLimit:
    """Asymptotic CLs upper limit on the POI of a workspace spec.

    Search: ``pyhf.infer.hypotest`` (all six CLs curves from one set of fits per μ) on a
    geometric bracket around μ = 1, then secant/bisection in log μ on each curve to a
    relative tolerance ``rtol``. A μ whose fit fails with scipy is retried with minuit and
    skipped if both fail, so one pathological point does not lose the limit.

    Args:
        spec: a pyhf workspace spec (:func:`build_workspace`).
        cl: the confidence level.
        test_statistic: ``qtilde`` or ``q``.
        poi_scale: every μ is multiplied by it (the signal pre-scaling of
            :func:`build_workspace`).
        observed: False leaves the observed limit out. Expected limits use the workspace's
            observations as given (Asimov background-only for an expected-only workspace).
        rtol: relative tolerance on each limit.

    Returns:
        The :class:`UpperLimit` (μ in units of the signal sample's σ).

    Raises:
        RuntimeError: CLs = 1 − cl could not be bracketed.
    """
    import pyhf

    ws = pyhf.Workspace(dict(spec))
    model = ws.model()
    data = ws.data(model)
    alpha = 1.0 - cl
    cache: dict[float, np.ndarray | None] = {}

    def cls(mu: float) -> np.ndarray | None:
        if mu not in cache:
            cache[mu] = _hypotest(pyhf, mu, data, model, test_statistic)
        return cache[mu]

    def known(mu: float) -> np.ndarray:
        v = cls(mu)
        assert v is not None  # only called at points already found good
        return v

    # bracket: every curve above alpha at lo and below at hi
    lo, hi = 0.5, 2.0
    for _ in range(12):
        v = cls(lo)
        if v is not None and np.all(v > alpha):
            break
        lo /= 3.0
    for _ in range(12):
        v = cls(hi)
        if v is not None and np.all(v < alpha):
            break
        hi *= 2.0
    vlo, vhi = cls(lo), cls(hi)
    if vlo is None or vhi is None or not (np.all(vlo > alpha) and np.all(vhi < alpha)):
        raise RuntimeError(f"CLs = {alpha:g} not bracketed for mu in [{lo:g}, {hi:g}] x {poi_scale:g}")
    # a coarse geometric grid, then refine each curve between its bracketing points
    grid = list(np.geomspace(lo, hi, 7))
    for mu in grid:
        cls(float(mu))
    limits = []
    for k in range(6):
        pts = sorted((m, v[k]) for m, v in cache.items() if v is not None)
        a = max((m for m, c in pts if c > alpha), default=lo)
        b = min((m for m, c in pts if c < alpha and m > a), default=hi)
        ca, cb = known(a)[k], known(b)[k]
        for _ in range(30):
            if b / a - 1.0 < rtol:
                break
            # secant in (log mu, log CLs), kept inside the bracket
            la, lb = math.log(a), math.log(b)
            ya, yb = math.log(max(ca, 1e-300)) - math.log(alpha), math.log(max(cb, 1e-300)) - math.log(alpha)
            x = la - ya * (lb - la) / (yb - ya) if yb != ya else 0.5 * (la + lb)
            x = min(max(x, la + 0.05 * (lb - la)), lb - 0.05 * (lb - la))
            m = math.exp(x)
            v = cls(m)
            if v is None:
                m = math.sqrt(a * b)
                v = cls(m)
                if v is None:
                    break
            if v[k] > alpha:
                a, ca = m, v[k]
            else:
                b, cb = m, v[k]
        la, lb = math.log(a), math.log(b)
        ya, yb = math.log(max(ca, 1e-300)), math.log(max(cb, 1e-300))
        x = la + (math.log(alpha) - ya) * (lb - la) / (yb - ya) if yb != ya else 0.5 * (la + lb)
        limits.append(math.exp(x))
    obs, exp = limits[0], limits[1:]
    return UpperLimit(
        expected=[x * poi_scale for x in exp],
        observed=obs * poi_scale if observed else None,
        cl=cl,
        test_statistic=test_statistic,
        poi_scale=poi_scale,
        hypotests=sum(v is not None for v in cache.values()),
        failed_hypotests=sum(v is None for v in cache.values()),
    )


def poisson_cls_upper_limit(n_obs: int, b: float, cl: float = 0.95) -> float:
    """Exact CLs upper limit on s for a counting experiment (test statistic n, no systematics):
    CLs(s) = P(n ≤ n_obs | s + b) / P(n ≤ n_obs | b) = 1 − cl. For b = 0, n_obs = 0: −ln 0.05 = 2.996.

    Args:
        n_obs: observed events.
        b: expected background events.
        cl: the confidence level.

    Returns:
        The upper limit on the signal events s.
    """
    from scipy import optimize, stats

    if n_obs < 0 or b < 0:
        raise ValueError("n_obs and b must be non-negative")
    alpha = 1.0 - cl
    pb = stats.poisson.cdf(n_obs, b) if b > 0 else 1.0

    def f(s: float) -> float:
        return float(stats.poisson.cdf(n_obs, s + b) / pb - alpha)

    hi = 10.0 + 10.0 * (n_obs + math.sqrt(n_obs + b + 1))
    return float(optimize.brentq(f, 0.0, hi, xtol=1e-10))


# ---------------------------------------------------------------------------------------
# the HH -> yybb limits from config
# ---------------------------------------------------------------------------------------
def _regions_for_mass(limits: LimitsConfig, mass: float) -> list[str]:
    for cat in limits.resonant.mass_categories:
        if cat.max_mass_gev is None or mass < cat.max_mass_gev:
            return list(cat.regions)
    raise LimitInputError(f"no limits.resonant.mass_categories entry covers mX = {mass} GeV")


def signal_workspaces(
    histset: H.HistSet,
    limits: LimitsConfig,
    samples: Mapping[str, SampleConfig],
    *,
    pseudo_data_seed: int | None = None,
) -> list[SignalWorkspace]:
    """One workspace per configured signal: the resonant grid and the non-resonant sample.

    Args:
        histset: the normalised histogram set.
        limits: the ``limits`` section (signals, backgrounds, systematics, binning).
        samples: ``generation.samples`` (each signal's mass in GeV and reference σ in pb).
        pseudo_data_seed: overrides ``limits.pseudo_data_seed`` (Poisson pseudo-data of
            signal i from ``default_rng([seed, i])``; None and no seed configured: expected only).

    Returns:
        The workspaces, resonant ones first in the configured order.

    Raises:
        LimitInputError: a signal missing from ``samples`` or the histograms, or any
            :func:`build_workspace` error.
    """
    seed = pseudo_data_seed if pseudo_data_seed is not None else limits.pseudo_data_seed
    out: list[SignalWorkspace] = []
    common: dict[str, Any] = {
        "backgrounds": limits.backgrounds, "systematics": limits.systematics,
        "lumi_uncertainty": limits.lumi_uncertainty, "mc_stat": limits.mc_stat,
        "mc_stat_signal": limits.mc_stat_signal, "empty_bin_floor": limits.empty_bin_floor,
        "missing_variation": limits.missing_variation}

    def data_for(i: int) -> str | np.random.Generator | None:
        if limits.data_sample:
            return limits.data_sample
        if seed is not None:
            return np.random.default_rng([int(seed), i])
        return None

    rc = limits.resonant
    for i, sig in enumerate(rc.signals):
        if sig not in samples:
            raise LimitInputError(
                f"resonant signal {sig!r} (limits.resonant.signals) is not in generation.samples "
                f"of the config ({', '.join(samples) or 'none'}): its mass and reference σ are unknown"
            )
        g = samples[sig]
        if g.mass_gev is None:
            raise LimitInputError(f"generation.samples.{sig} has no mass_gev: not a resonant signal")
        mass = float(g.mass_gev)
        window = None
        if rc.window_fraction is not None:
            window = (mass * (1 - rc.window_fraction), mass * (1 + rc.window_fraction))
        spec, report = build_workspace(
            histset, signal=sig, regions=_regions_for_mass(limits, mass), observable=rc.observable,
            rebin=rc.rebin, window=window, data=data_for(i), **common)
        sigma_ref = g.xsec_pb
        if sigma_ref is None:
            sigma_ref = histset.samples[sig].xsec_pb
            report.warnings.append(f"{sig}: no xsec_pb in generation.samples; reference σ = σ×B of the metadata")
        if sigma_ref is None:
            raise LimitInputError(f"resonant signal {sig!r} has no xsec_pb, neither in generation.samples "
                                  "nor in the histograms' sample metadata: its reference σ is unknown")
        out.append(SignalWorkspace(signal=sig, mode="resonant", mass_gev=mass, sigma_ref_pb=float(sigma_ref),
                                   spec=spec, report=report))
    nr = limits.nonresonant
    if nr.signal:
        sig = nr.signal
        if sig not in samples:
            raise LimitInputError(f"non-resonant signal {sig!r} (limits.nonresonant.signal) is not in generation.samples")
        spec, report = build_workspace(
            histset, signal=sig, regions=nr.regions, observable=nr.observable, rebin=nr.rebin,
            window=nr.window, data=data_for(len(out)),
            continuum_fit=nr.continuum_fit if nr.observable == "m_yy" else None, **common)
        out.append(SignalWorkspace(signal=sig, mode="nonresonant", mass_gev=None, sigma_ref_pb=None,
                                   spec=spec, report=report))
    return out


def run_limits(entries: Sequence[SignalWorkspace], limits: LimitsConfig) -> list[LimitResult]:
    """The CLs limits of :func:`signal_workspaces` entries (or of a :class:`WorkspaceIndex`).

    Resonant rows also carry the limit on σ(pp → X → HH) = μ × σ_ref in pb; the
    non-resonant row is μ_HH. Observed limits are computed where the workspace holds
    (pseudo-)data.

    Args:
        entries: the workspaces.
        limits: the ``limits`` section (confidence level, test statistic).

    Returns:
        One :class:`LimitResult` per entry, in order.
    """
    rows = []
    for e in entries:
        observed = e.report.observed != "asimov"
        lim = upper_limit(e.spec, cl=limits.confidence_level, test_statistic=limits.test_statistic,
                          poi_scale=e.report.poi_scale, observed=observed)
        sigma_limit = None
        if e.mode == "resonant":
            s = e.sigma_ref_pb
            assert s is not None  # resonant workspaces carry their reference sigma
            sigma_limit = LimitBand(expected=[x * s for x in lim.expected],
                                    observed=None if lim.observed is None else lim.observed * s)
        row = LimitResult(signal=e.signal, mode=e.mode, mass_gev=e.mass_gev, regions=e.report.regions, mu=lim,
                          warnings=e.report.warnings, sigma_ref_pb=e.sigma_ref_pb if e.mode == "resonant" else None,
                          sigma_limit_pb=sigma_limit)
        rows.append(row)
        band = row.limit
        log.info("%s: expected %s limit %.4g (+1σ %.4g, -1σ %.4g)%s", e.signal,
                 "σ" if e.mode == "resonant" else "μ_HH", band.expected[2], band.expected[3], band.expected[1],
                 "" if lim.observed is None else f", observed μ {lim.observed:.4g}")
    return rows


# ---------------------------------------------------------------------------------------
# stage I/O
# ---------------------------------------------------------------------------------------
@dataclass
class WorkspaceIndex:
    """The workspaces of an ``index.json`` (:func:`write_workspaces`), specs loaded.

    ``lumi_fb``: the histograms' luminosity (fb⁻¹); ``paths``: the index and the workspace
    files (the inputs of the ``limits`` step).
    """

    lumi_fb: float | None
    entries: list[SignalWorkspace]
    paths: list[Path]

    @classmethod
    def read(cls, path: PathLike) -> WorkspaceIndex:
        """Read ``index.json`` and the workspace JSONs it names (next to it).

        Raises:
            InputFileError: the index or a workspace is missing or not JSON.
        """
        idx_path = Path(path)
        index = _read_json(idx_path)
        entries: list[SignalWorkspace] = []
        paths = [idx_path]
        for e in index["entries"]:
            ws_path = idx_path.parent / e["workspace"]
            paths.append(ws_path)
            entries.append(SignalWorkspace(
                signal=e["signal"], mode=e["mode"], mass_gev=e["mass_gev"], sigma_ref_pb=e["sigma_ref_pb"],
                spec=_read_json(ws_path), report=WorkspaceReport.from_dict(e["report"])))
        return cls(lumi_fb=index.get("lumi_fb"), entries=entries, paths=paths)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InputFileError(path, "file not found") from exc
    except json.JSONDecodeError as exc:
        raise InputFileError(path, f"not JSON ({exc})") from exc


def write_workspaces(
    config: Config,
    hists: PathLike,
    output_dir: PathLike,
    *,
    pseudo_data_seed: int | None = None,
) -> list[SignalWorkspace]:
    """The ``workspaces`` step: one pyhf workspace per configured signal.

    Writes ``<signal>.json`` (validated against the pyhf schema) and ``index.json``
    (``{"lumi_fb", "entries": [...]}``, each entry :meth:`SignalWorkspace.index_entry`) into
    ``output_dir``, with the ``limits.workspaces`` provenance record (the pseudo-data seed
    actually used among its seeds).

    Args:
        config: the whole configuration (``limits`` and ``generation.samples``).
        hists: the normalised histogram set (``hists.pkl`` of :mod:`analysis.stats.histograms`).
        output_dir: the output folder.
        pseudo_data_seed: overrides ``limits.pseudo_data_seed``.

    Returns:
        The workspaces.
    """
    seed = pseudo_data_seed if pseudo_data_seed is not None else config.limits.pseudo_data_seed
    rec = provenance_record(stage="limits.workspaces", config=config, seeds={"pseudo_data": seed},
                            inputs=[hists])
    hs = H.HistSet.read(hists)
    entries = signal_workspaces(hs, config.limits, config.generation.samples, pseudo_data_seed=pseudo_data_seed)
    out = Path(output_dir)
    index = []
    for e in entries:
        path = out / f"{e.signal}.json"
        H.write_workspace(path, e.spec, provenance=rec)
        index.append(e.index_entry(path.name))
    write_json(out / "index.json", {"lumi_fb": hs.lumi_fb, "entries": index}, provenance=rec)
    log.info("wrote %d workspaces to %s", len(index), out)
    return entries


def write_limits(config: Config, index: str | os.PathLike[str], output_dir: str | os.PathLike[str]) -> LimitTable:
    """The ``limits`` step: the CLs limits of every workspace of ``index``.

    Writes ``limits.json`` (:meth:`LimitTable.to_dict`) and ``limits.md``
    (:meth:`LimitTable.markdown`) into ``output_dir``, each with the ``limits`` provenance
    record (inputs: the index and its workspaces). The Brazil plot is drawn from
    ``limits.json`` by the plots step (:func:`analysis.plot.paper.write_paper_plots`).

    Args:
        config: the whole configuration (``limits``: confidence level, test statistic;
            hashed into the record).
        index: ``index.json`` of :func:`write_workspaces`.
        output_dir: the output folder.

    Returns:
        The limits.
    """
    idx = WorkspaceIndex.read(index)
    rec = provenance_record(stage="limits", config=config, inputs=idx.paths)
    table = LimitTable(rows=run_limits(idx.entries, config.limits), lumi_fb=idx.lumi_fb)
    out = Path(output_dir)
    write_json(out / "limits.json", table.to_dict(), provenance=rec)
    md = table.markdown()
    write_text(out / "limits.md", md, provenance=rec)
    log.info("limits written to %s\n%s", out, md)
    return table
