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

Limits: asymptotic CLs with the q̃μ test statistic (:func:`upper_limit`), 95 % CL, expected
median with ±1σ/±2σ bands (Cowan et al.), observed when data are given. For a single
counting bin with small counts, :func:`poisson_cls_upper_limit` gives the exact
(non-asymptotic) CLs limit (b = 0, n = 0 → s = 2.996).

Bad input is reported where it happens, never as a pyhf traceback (:class:`LimitInputError`):
a sample named in the config but absent from the histograms or from ``generation.samples``;
a signal with no selected event (the message quotes the cutflow step where everything went);
a region or systematic variation missing from a histogram (``missing_variation`` policy);
bins with no background (floored at ``empty_bin_floor`` with a warning: pyhf cannot fit a
bin with zero expected events).

Command line::

    python -m analysis.stats.limits workspaces --config C --hists results/hh_yybb/histograms/hists.pkl \\
        --output-dir results/hh_yybb/workspaces
    python -m analysis.stats.limits limits --config C --index results/hh_yybb/workspaces/index.json \\
        --output-dir results/hh_yybb/limits
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analysis.core.errors import InputError
from analysis.stats import histograms as H
from analysis.core.atomic import write_json, write_text
from analysis.core.config import config_section, load_raw_config
from analysis.core.provenance import provenance_record

log = logging.getLogger(__name__)

__all__ = [
    "LimitInputError",
    "brazil_table_markdown",
    "build_workspace",
    "channel_arrays",
    "limits_config",
    "poisson_cls_upper_limit",
    "resonant_limits",
    "run_limits",
    "signal_workspaces",
    "upper_limit",
]


class LimitInputError(InputError):
    """The histograms or the config cannot make a statistical model (message says why)."""


def limits_config(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The validated ``limits`` section (defaults filled) of a whole config, or the section."""
    return config_section(config, "limits")


# ---------------------------------------------------------------------------------------
# histograms -> arrays
# ---------------------------------------------------------------------------------------
def _require_sample(histset: Mapping[str, Any], name: str, role: str) -> Mapping[str, Any]:
    if name not in histset["samples"]:
        have = ", ".join(sorted(histset["samples"])) or "none"
        raise LimitInputError(
            f"{role} sample {name!r} is not in the histograms (they hold: {have}); was the "
            "selection run on it, and is it spelled as in generation.samples?"
        )
    return histset["samples"][name]


def _edges_and_slices(h: Any, observable: str, rebin: int, window: Sequence[float] | None) -> tuple[np.ndarray, slice]:
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
    h: Any,
    region: str,
    variation: str,
    observable: str,
    rebin: int = 1,
    window: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(edges, values, variances) of one region and variation, rebinned and windowed."""
    if region not in list(h.axes["region"]):
        raise LimitInputError(f"region {region!r} is not in the histogram (it has: {', '.join(h.axes['region'])})")
    if variation not in list(h.axes["variation"]):
        raise H.MissingVariationError(variation)
    h1 = h[{"region": region, "variation": variation}]
    edges, sl = _edges_and_slices(h1, observable, rebin, window)
    v = h1.values()[sl].reshape(-1, rebin).sum(axis=1)
    var = h1.variances()[sl].reshape(-1, rebin).sum(axis=1)
    return edges, v.astype(float), var.astype(float)


def _cutflow_diagnosis(entry: Mapping[str, Any], name: str) -> str:
    cf = entry.get("cutflow")
    if not cf:
        return f"sample {name!r} has no cutflow"
    steps, raw = cf["steps"], cf["raw"]
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
    histset: Mapping[str, Any],
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
    poi_scale: float | str = "auto",
    poi_name: str = "mu",
    continuum_fit: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A pyhf workspace spec and a report (yields, floored bins, dropped modifiers).

    ``histset`` must be normalised (:func:`analysis.stats.histograms.normalise_histset`).
    ``data``: None → Asimov background-only observations (expected limits); a sample name →
    that sample's nominal; a ``numpy.random.Generator`` → Poisson pseudo-data from the
    background model. ``poi_scale``: the factor the signal is pre-multiplied by ("auto": a
    rough expected limit, so the fitted μ is O(1)).

    ``continuum_fit`` (m_γγ only): ``{"samples": [...], "shape_region": "pretag",
    "sidebands": [[105, 120], [130, 160]]}`` replaces the MC templates of those backgrounds
    by an exponential fitted to the sidebands of their m_γγ in ``shape_region`` (a looser
    region with more MC), normalised in each region (and variation) to the MC yield there
    (:func:`analysis.stats.fits.fit_exponential_sidebands`); the MC-stat uncertainty of the yield
    is kept, fully correlated over the bins of the region.
    """
    if not histset.get("normalised"):
        raise LimitInputError("histograms are not normalised to a luminosity (run analysis.stats.histograms first)")
    if missing_variation not in ("error", "symmetrize", "drop"):
        raise ValueError(f"missing_variation must be error|symmetrize|drop, not {missing_variation!r}")
    if signal in backgrounds:
        raise LimitInputError(f"sample {signal!r} is both the signal and a background")
    sig_entry = _require_sample(histset, signal, "signal")
    bkg_entries = {b: _require_sample(histset, b, "background") for b in backgrounds}
    for name, entry in {signal: sig_entry, **bkg_entries}.items():
        if observable not in entry["hists"]:
            raise LimitInputError(f"sample {name!r} has no {observable!r} histogram")
    report: dict[str, Any] = {"signal": signal, "regions": list(regions), "observable": observable,
                              "floored_bins": [], "dropped_modifiers": [], "symmetrized": [],
                              "yields": {}, "warnings": []}

    smooth: dict[str, Any] = {}
    if continuum_fit and continuum_fit.get("samples"):
        from analysis.stats import fits as F
        if observable != "m_yy":
            raise LimitInputError(f"continuum_fit models m_yy, not {observable!r}")
        report["continuum_fits"] = {}
        for name in continuum_fit["samples"]:
            if name not in bkg_entries:
                continue
            h = bkg_entries[name]["hists"]["m_yy"]
            shape_region = continuum_fit.get("shape_region", "pretag")
            if shape_region not in list(h.axes["region"]):
                raise LimitInputError(f"continuum_fit.shape_region {shape_region!r} is not a region of the histograms")
            e, v, var = F.hist_arrays(h[{"region": shape_region, "variation": "nominal"}])
            try:
                fit = F.fit_exponential_sidebands(
                    e, v, var, sidebands=continuum_fit.get("sidebands", ((105.0, 120.0), (130.0, 160.0))),
                    fit_range=(float(e[0]), float(e[-1])))
            except (ValueError, RuntimeError) as exc:
                msg = f"continuum fit of {name} in {shape_region} failed ({exc}); its MC template is used"
                log.warning(msg)
                report["warnings"].append(msg)
                continue
            smooth[name] = (F, fit)
            report["continuum_fits"][name] = fit.to_dict()

    def arrays(name: str, entry: Mapping[str, Any], region: str, variation: str = "nominal"):
        edges, v, var = channel_arrays(entry["hists"][observable], region, variation, observable, rebin, window)
        if name in smooth:
            fmod, fit = smooth[name]
            full = entry["hists"][observable][{"region": region, "variation": variation}]
            y, yv = float(full.values().sum()), float(full.variances().sum())
            v = y * fmod.continuum_template(fit, edges) / fit.params["n"]
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
        report["yields"][region] = {n: float(v.sum()) for n, (v, _) in nominal[region].items()}
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
        b_tot = sum(nominal[region][b][0] for b in backgrounds)
        low = b_tot < empty_bin_floor
        if low.any():
            totals = {b: nominal[region][b][0].sum() for b in backgrounds}
            target = max(backgrounds, key=lambda b: totals[b])
            add = np.where(low, empty_bin_floor - b_tot, 0.0)
            v, var = nominal[region][target]
            # the floor is a regulator, not MC: no MC-stat uncertainty on the added amount
            # (pyhf fixes the staterror parameter of a bin with zero uncertainty)
            nominal[region][target] = (v + add, var)
            added[(region, target)] = add
            bins = [f"[{edges_of[region][i]:g}, {edges_of[region][i + 1]:g})" for i in np.flatnonzero(low)]
            msg = (f"region {region}: {int(low.sum())}/{len(low)} {observable} bins have background "
                   f"< {empty_bin_floor:g} events; floored (added to {target}): {', '.join(bins)}")
            if not totals[target] > 0:
                msg += " — no background MC at all in this region: the limit is not trustworthy"
            log.warning(msg)
            report["warnings"].append(msg)
            report["floored_bins"].append({"region": region, "sample": target,
                                           "bins": [int(i) for i in np.flatnonzero(low)]})

    # poi scale
    if poi_scale == "auto":
        s_all = np.concatenate([nominal[r][signal][0] for r in regions])
        b_all = np.concatenate([sum(nominal[r][b][0] for b in backgrounds) for r in regions])
        gauss = 1.96 / math.sqrt(float(np.sum(s_all**2 / np.maximum(b_all, empty_bin_floor))))
        poi_scale = max(gauss, 3.0 / float(s_all.sum()))
    poi_scale = float(poi_scale)
    report["poi_scale"] = poi_scale

    channels = []
    observations = []
    rng = data if isinstance(data, np.random.Generator) else None
    for region in regions:
        samples = []
        for name in [signal, *backgrounds]:
            entry = sig_entry if name == signal else bkg_entries[name]
            v, var = nominal[region][name]
            scale = poi_scale if name == signal else 1.0
            mods: list[dict[str, Any]] = []
            if name == signal:
                mods.append({"name": poi_name, "type": "normfactor", "data": None})
            if lumi_uncertainty > 0:
                mods.append({"name": "lumi", "type": "normsys",
                             "data": {"hi": 1.0 + lumi_uncertainty, "lo": 1.0 - lumi_uncertainty}})
            add = added.get((region, name), 0.0)
            for syst in systematics:
                hi = lo = None
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
                        report["symmetrized"].append(msg)
                    else:
                        msg = f"{', '.join(missing)} missing for {where}: modifier {syst} dropped"
                        report["dropped_modifiers"].append(msg)
                        log.warning(msg)
                        report["warnings"].append(msg)
                        continue
                    log.warning(msg)
                    report["warnings"].append(msg)
                mods.append({"name": syst, "type": "histosys",
                             "data": {"hi_data": ((hi + add) * scale).tolist(),
                                      "lo_data": ((lo + add) * scale).tolist()}})
            if mc_stat and (name != signal or mc_stat_signal):
                mods.append({"name": f"staterror_{region}", "type": "staterror",
                             "data": (np.sqrt(var) * scale).tolist()})
            samples.append({"name": name, "data": (v * scale).tolist(), "modifiers": mods})
        channels.append({"name": region, "samples": samples})
        b_nom = sum(nominal[region][b][0] for b in backgrounds)
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
    report["observed"] = "asimov" if data is None else ("pseudo" if rng is not None else str(data))
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
) -> dict[str, Any]:
    """Asymptotic CLs upper limit on the POI of a workspace spec.

    Returns ``{"expected": [−2σ, −1σ, median, +1σ, +2σ], "observed": float | None,
    "cl", "test_statistic", "poi_scale", "hypotests"}`` with every μ multiplied by
    ``poi_scale`` (the signal pre-scaling of :func:`build_workspace`). Expected limits use
    the workspace's observations as given (Asimov background-only for an expected-only
    workspace); ``observed`` False leaves the observed limit out.

    Search: ``pyhf.infer.hypotest`` (all six CLs curves from one set of fits per μ) on a
    geometric bracket around μ = 1, then secant/bisection in log μ on each curve to a
    relative tolerance ``rtol``. A μ whose fit fails with scipy is retried with minuit and
    skipped if both fail, so one pathological point does not lose the limit.
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
        ca, cb = cls(a)[k], cls(b)[k]
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
    return {
        "expected": [x * poi_scale for x in exp],
        "observed": obs * poi_scale if observed else None,
        "cl": cl,
        "test_statistic": test_statistic,
        "poi_scale": poi_scale,
        "hypotests": sum(v is not None for v in cache.values()),
        "failed_hypotests": sum(v is None for v in cache.values()),
    }


def poisson_cls_upper_limit(n_obs: int, b: float, cl: float = 0.95) -> float:
    """Exact CLs upper limit on s for a counting experiment (test statistic n, no systematics):
    CLs(s) = P(n ≤ n_obs | s + b) / P(n ≤ n_obs | b) = 1 − cl. For b = 0, n_obs = 0: −ln 0.05 = 2.996."""
    from scipy import optimize, stats

    if n_obs < 0 or b < 0:
        raise ValueError("n_obs and b must be non-negative")
    alpha = 1.0 - cl
    pb = stats.poisson.cdf(n_obs, b) if b > 0 else 1.0

    def f(s: float) -> float:
        return stats.poisson.cdf(n_obs, s + b) / pb - alpha

    hi = 10.0 + 10.0 * (n_obs + math.sqrt(n_obs + b + 1))
    return float(optimize.brentq(f, 0.0, hi, xtol=1e-10))


# ---------------------------------------------------------------------------------------
# the HH -> yybb limits from config
# ---------------------------------------------------------------------------------------
def _regions_for_mass(lcfg: Mapping[str, Any], mass: float) -> list[str]:
    for cat in lcfg["resonant"]["mass_categories"]:
        if cat.get("max_mass_gev") is None or mass < cat["max_mass_gev"]:
            return list(cat["regions"])
    raise LimitInputError(f"no limits.resonant.mass_categories entry covers mX = {mass} GeV")


def signal_workspaces(
    histset: Mapping[str, Any],
    config: Mapping[str, Any],
    *,
    pseudo_data_seed: int | None = None,
) -> list[dict[str, Any]]:
    """One workspace per configured signal: the resonant grid and the non-resonant sample.

    Returns ``[{"signal", "mode", "mass_gev", "sigma_ref_pb", "spec", "report"}]``.
    Signals must be in ``generation.samples`` (mass, reference σ) and in the histograms.
    """
    lcfg = limits_config(config)
    gen = (config.get("generation") or {}).get("samples", {})
    seed = pseudo_data_seed if pseudo_data_seed is not None else lcfg["pseudo_data_seed"]
    out = []
    common = {"backgrounds": lcfg["backgrounds"], "systematics": lcfg["systematics"],
                  "lumi_uncertainty": lcfg["lumi_uncertainty"], "mc_stat": lcfg["mc_stat"],
                  "mc_stat_signal": lcfg["mc_stat_signal"],
                  "empty_bin_floor": lcfg["empty_bin_floor"], "missing_variation": lcfg["missing_variation"]}

    def data_for(i: int) -> Any:
        if lcfg["data_sample"]:
            return lcfg["data_sample"]
        if seed is not None:
            return np.random.default_rng([int(seed), i])
        return None

    cfit = lcfg["nonresonant"]["continuum_fit"]
    for i, sig in enumerate(lcfg["resonant"]["signals"]):
        if sig not in gen:
            raise LimitInputError(
                f"resonant signal {sig!r} (limits.resonant.signals) is not in generation.samples "
                f"of the config ({', '.join(gen) or 'none'}): its mass and reference σ are unknown"
            )
        g = gen[sig]
        if "mass_gev" not in g:
            raise LimitInputError(f"generation.samples.{sig} has no mass_gev: not a resonant signal")
        mass = float(g["mass_gev"])
        rc = lcfg["resonant"]
        window = None
        if rc["window_fraction"] is not None:
            window = (mass * (1 - rc["window_fraction"]), mass * (1 + rc["window_fraction"]))
        spec, report = build_workspace(
            histset, signal=sig, regions=_regions_for_mass(lcfg, mass), observable=rc["observable"],
            rebin=rc["rebin"], window=window, data=data_for(i), **common)
        sigma_ref = g.get("xsec_pb")
        if sigma_ref is None:
            entry = histset["samples"][sig]
            sigma_ref = entry.get("xsec_pb")
            report["warnings"].append(f"{sig}: no xsec_pb in generation.samples; reference σ = σ×B of the metadata")
        out.append({"signal": sig, "mode": "resonant", "mass_gev": mass, "sigma_ref_pb": float(sigma_ref),
                    "spec": spec, "report": report})
    nr = lcfg["nonresonant"]
    if nr["signal"]:
        sig = nr["signal"]
        if sig not in gen:
            raise LimitInputError(f"non-resonant signal {sig!r} (limits.nonresonant.signal) is not in generation.samples")
        spec, report = build_workspace(
            histset, signal=sig, regions=nr["regions"], observable=nr["observable"], rebin=nr["rebin"],
            window=nr["window"], data=data_for(len(out)),
            continuum_fit=cfit if cfit["enabled"] and nr["observable"] == "m_yy" else None, **common)
        out.append({"signal": sig, "mode": "nonresonant", "mass_gev": None, "sigma_ref_pb": None,
                    "spec": spec, "report": report})
    return out


def run_limits(entries: Sequence[Mapping[str, Any]], config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Limits of :func:`signal_workspaces` entries (or index entries with their ``spec``).

    Resonant rows also carry the limit on σ(pp → X → HH) = μ × σ_ref in pb; the
    non-resonant row is μ_HH.
    """
    lcfg = limits_config(config)
    rows = []
    for e in entries:
        observed = e["report"].get("observed", "asimov") != "asimov"
        lim = upper_limit(e["spec"], cl=lcfg["confidence_level"], test_statistic=lcfg["test_statistic"],
                          poi_scale=e["report"]["poi_scale"], observed=observed)
        row = {"signal": e["signal"], "mode": e["mode"], "mass_gev": e["mass_gev"],
               "regions": e["report"]["regions"], "mu": lim, "warnings": e["report"]["warnings"]}
        if e["mode"] == "resonant":
            s = e["sigma_ref_pb"]
            row["sigma_ref_pb"] = s
            row["sigma_limit_pb"] = {
                "expected": [x * s for x in lim["expected"]],
                "observed": None if lim["observed"] is None else lim["observed"] * s,
            }
        rows.append(row)
        log.info("%s: expected %s limit %.4g (+1σ %.4g, -1σ %.4g)%s", e["signal"],
                 "σ" if e["mode"] == "resonant" else "μ_HH",
                 row.get("sigma_limit_pb", lim)["expected"][2], row.get("sigma_limit_pb", lim)["expected"][3],
                 row.get("sigma_limit_pb", lim)["expected"][1],
                 "" if lim["observed"] is None else f", observed μ {lim['observed']:.4g}")
    return rows


def resonant_limits(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The resonant rows ordered by mass."""
    return sorted((r for r in rows if r["mode"] == "resonant"), key=lambda r: r["mass_gev"])


def brazil_table_markdown(rows: Sequence[Mapping[str, Any]], lumi_fb: float | None = None) -> str:
    """Markdown table of the limits (σ in fb for the resonant grid, μ for non-resonant)."""
    lines = []
    res = resonant_limits(rows)
    cl = round(100 * rows[0]["mu"]["cl"]) if rows else 95
    if res:
        lumi = f", {lumi_fb:g} fb⁻¹" if lumi_fb else ""
        lines += [f"### {cl}% CL upper limits on σ(pp → X → HH) [fb]{lumi}\n",
                  "| m_X [GeV] | regions | −2σ | −1σ | expected | +1σ | +2σ | observed |",
                  "|---:|---|---:|---:|---:|---:|---:|---:|"]
        for r in res:
            e = [1000.0 * x for x in r["sigma_limit_pb"]["expected"]]
            o = r["sigma_limit_pb"]["observed"]
            lines.append(f"| {r['mass_gev']:g} | {', '.join(r['regions'])} | " + " | ".join(f"{x:.4g}" for x in e)
                         + f" | {'–' if o is None else f'{1000.0 * o:.4g}'} |")
    nr = [r for r in rows if r["mode"] == "nonresonant"]
    for r in nr:
        e = r["mu"]["expected"]
        o = r["mu"]["observed"]
        lines += ["", f"### {cl}% CL upper limit on μ_HH ({r['signal']})\n",
                  "| −2σ | −1σ | expected | +1σ | +2σ | observed |", "|---:|---:|---:|---:|---:|---:|",
                  "| " + " | ".join(f"{x:.4g}" for x in e) + f" | {'–' if o is None else f'{o:.4g}'} |"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("workspaces", help="build one pyhf workspace per configured signal")
    w.add_argument("--config", required=True)
    w.add_argument("--hists", required=True, help="normalised histogram set (analysis.stats.histograms)")
    w.add_argument("--output-dir", required=True)
    w.add_argument("--pseudo-data-seed", type=int, default=None)
    l_ = sub.add_parser("limits", help="CLs limits of the workspaces of an index")
    l_.add_argument("--config", required=True)
    l_.add_argument("--index", required=True, help="index.json written by 'workspaces'")
    l_.add_argument("--output-dir", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    cfg = load_raw_config(args.config)
    out = Path(args.output_dir)
    if args.cmd == "workspaces":
        seed = args.pseudo_data_seed  # the seed actually used: the flag, else the config's
        seed = seed if seed is not None else limits_config(cfg)["pseudo_data_seed"]
        rec = provenance_record(stage="limits.workspaces", config=cfg, seeds={"pseudo_data": seed},
                                inputs=[args.hists])
        hs = H.read_pickle(args.hists)
        entries = signal_workspaces(hs, cfg, pseudo_data_seed=args.pseudo_data_seed)
        index = []
        for e in entries:
            path = out / f"{e['signal']}.json"
            H.write_workspace(path, e["spec"], provenance=rec)
            index.append({k: v for k, v in e.items() if k != "spec"} | {"workspace": path.name})
        write_json(out / "index.json", {"lumi_fb": hs.get("lumi_fb"), "entries": index}, provenance=rec)
        log.info("wrote %d workspaces to %s", len(index), out)
        return 0
    import json

    idx_path = Path(args.index)
    index = json.loads(idx_path.read_text())
    ws_paths = [idx_path.parent / e["workspace"] for e in index["entries"]]
    rec = provenance_record(stage="limits", config=cfg, inputs=[idx_path, *ws_paths])
    entries = []
    for e, ws_path in zip(index["entries"], ws_paths, strict=True):
        e = copy.deepcopy(e)
        e["spec"] = json.loads(ws_path.read_text())
        entries.append(e)
    rows = run_limits(entries, cfg)
    write_json(out / "limits.json", {"lumi_fb": index.get("lumi_fb"), "rows": rows}, provenance=rec)
    write_text(out / "limits.md", brazil_table_markdown(rows, index.get("lumi_fb")), provenance=rec)
    if resonant_limits(rows):
        from analysis.plot.paper import plot_brazil

        plot_brazil(out / "brazil.png", rows, lumi_fb=index.get("lumi_fb"), provenance=rec)
    log.info("limits written to %s\n%s", out, brazil_table_markdown(rows, index.get("lumi_fb")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
