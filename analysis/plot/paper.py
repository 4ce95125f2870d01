"""mplhep plotting helpers and the HH → γγbb̄ paper plots.

Every figure is written atomically (PNG); a ``provenance`` record, if given, goes to its
sidecar ``<figure>.png.provenance.json`` (:mod:`analysis.core.provenance`). Plots:

* :func:`plot_stack` — an observable (m_γγ by default) per region: backgrounds stacked,
  signals overlaid as lines (optionally scaled), MC statistical band on the stack;
* :func:`plot_regions` — a grid of :func:`plot_stack` panels (m_γγ per category, or m*);
* :func:`plot_cutflow` — the cutflow table (σ×L-weighted events, raw MC counts in brackets);
* :func:`plot_brazil` — expected (and observed) limits versus m_X with ±1σ/±2σ bands;
* :func:`plot_fit` — a histogram with a fitted curve (DSCB or sideband exponential).

Command line (all paper plots of a normalised histogram set and, if given, the limits)::

    python -m analysis.plot.paper --config C --hists results/hh_yybb/histograms/hists.pkl \\
        --limits results/hh_yybb/limits/limits.json --output-dir results/hh_yybb/plots
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analysis.core.atomic import atomic_path, write_json
from analysis.core.provenance import provenance_record

log = logging.getLogger(__name__)

__all__ = [
    "EXPERIMENT_LABEL",
    "plot_brazil",
    "plot_cutflow",
    "plot_fit",
    "plot_regions",
    "plot_stack",
    "save",
    "style",
]

EXPERIMENT_LABEL = "hepline"


INLINE_BACKENDS = ("inline", "ipympl", "widget", "nbagg")
"""Substrings of notebook backends that :func:`use_file_backend` leaves in place."""


def use_file_backend() -> None:
    """Select the non-interactive Agg backend for writing files, except in a notebook whose
    inline/widget backend is already active (switching would turn off its inline plots)."""
    import matplotlib

    backend = str(matplotlib.rcParams["backend"]).lower()
    if any(name in backend for name in INLINE_BACKENDS):
        return
    matplotlib.use("Agg")


def style() -> Any:
    """Select the file backend (:func:`use_file_backend`) and the mplhep ATLAS style; returns
    ``matplotlib.pyplot``."""
    use_file_backend()
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.ATLAS)
    return plt


def label(ax: Any, lumi_fb: float | None = None, text: str = "Simulation") -> None:
    """Experiment label (and luminosity) in the mplhep style."""
    import mplhep

    lumi = f"{lumi_fb:g} fb$^{{-1}}$ (13 TeV)" if lumi_fb else None
    mplhep.label.exp_text(EXPERIMENT_LABEL, text, lumi=lumi, ax=ax, loc=1)


def save(
    fig: Any, path: str | Path, dpi: int = 90, *, provenance: Mapping[str, Any] | None = None
) -> Path:
    """Save ``fig`` as PNG atomically and close it (plus the ``provenance`` sidecar, if given)."""
    import matplotlib.pyplot as plt

    with atomic_path(path, provenance=provenance) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return Path(path)


def _h1(histset: Mapping[str, Any], sample: str, observable: str, region: str, rebin: int = 1) -> Any:
    import hist

    h = histset["samples"][sample]["hists"][observable][{"region": region, "variation": "nominal"}]
    return h[:: hist.rebin(rebin)] if rebin > 1 else h


def plot_stack(
    ax: Any,
    histset: Mapping[str, Any],
    region: str,
    *,
    backgrounds: Sequence[str],
    signals: Sequence[str] = (),
    observable: str = "m_yy",
    rebin: int = 1,
    signal_scale: float | Mapping[str, float] = 1.0,
    log_y: bool = False,
) -> None:
    """Stacked backgrounds with the MC-stat band and overlaid signals on ``ax``."""
    import mplhep

    bkgs = [b for b in backgrounds if b in histset["samples"]]
    hs = [_h1(histset, b, observable, region, rebin) for b in bkgs]
    if hs:
        mplhep.histplot(hs, ax=ax, stack=True, histtype="fill", label=bkgs, alpha=0.8)
        tot = sum(h.values() for h in hs)
        err = np.sqrt(sum(h.variances() for h in hs))
        edges = hs[0].axes[0].edges
        ax.stairs(tot + err, edges, baseline=np.clip(tot - err, 0, None), fill=True, hatch="////",
                  alpha=0.0, label="MC stat.")
    sig_colors = ("black", "crimson", "royalblue", "darkviolet", "darkgreen")
    styles = ("-", "--", "-.", ":")
    for i, s in enumerate(x for x in signals if x in histset["samples"]):
        k = signal_scale[s] if isinstance(signal_scale, Mapping) else signal_scale
        h = _h1(histset, s, observable, region, rebin)
        mplhep.histplot(h * k, ax=ax, histtype="step", linewidth=2, color=sig_colors[i % len(sig_colors)],
                        linestyle=styles[i % len(styles)], label=s if k == 1 else f"{s} ×{k:g}")
    ax.set_title(region, fontsize=12)
    if log_y:
        ax.set_yscale("log")
    ax.set_ylabel("events / bin")
    ax.legend(fontsize=8, ncol=2)


def plot_regions(
    path: str | Path,
    histset: Mapping[str, Any],
    regions: Sequence[str],
    *,
    backgrounds: Sequence[str],
    signals: Sequence[str] = (),
    observable: str = "m_yy",
    rebin: int = 1,
    signal_scale: float | Mapping[str, float] = 1.0,
    ncols: int = 2,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """A grid of :func:`plot_stack` panels, one per region."""
    plt = style()
    nrows = int(np.ceil(len(regions) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(7 * ncols, 5.5 * nrows), squeeze=False)
    for ax, region in zip(axes.flat, regions, strict=False):
        plot_stack(ax, histset, region, backgrounds=backgrounds, signals=signals, observable=observable,
                   rebin=rebin, signal_scale=signal_scale)
        label(ax, histset.get("lumi_fb"))
    for ax in list(axes.flat)[len(regions):]:
        ax.set_visible(False)
    fig.tight_layout()
    return save(fig, path, provenance=provenance)


def plot_cutflow(path: str | Path, table: Mapping[str, Any], samples: Sequence[str] | None = None, *,
                 provenance: Mapping[str, Any] | None = None) -> Path:
    """The cutflow table as a figure: weighted events with the raw MC count in brackets."""
    plt = style()
    names = [s for s in (samples or list(table["samples"])) if s in table["samples"]]
    steps = table["steps"]
    cells = []
    for i, _ in enumerate(steps):
        row = []
        for n in names:
            e = table["samples"][n]
            w = e["weighted"][i] if e["weighted"] is not None else float("nan")
            row.append(f"{w:.3g} ({e['raw'][i]})")
        cells.append(row)
    fig, ax = plt.subplots(figsize=(2.0 + 1.7 * max(len(names), 1), 0.8 + 0.32 * len(steps)))
    ax.axis("off")
    if names:
        tab = ax.table(cellText=cells, rowLabels=steps, colLabels=names, loc="center", cellLoc="right")
        tab.auto_set_font_size(False)
        tab.set_fontsize(7)
        tab.scale(1.0, 1.2)
    unit = f"events in {table.get('lumi_fb', 0):g} fb$^{{-1}}$" if table.get("normalised") else "sum of weights"
    ax.set_title(f"Cutflow: {unit} (raw MC events)", fontsize=10)
    fig.tight_layout()
    return save(fig, path, provenance=provenance)


def plot_brazil(path: str | Path, rows: Sequence[Mapping[str, Any]], *, lumi_fb: float | None = None,
                unit: str = "fb", provenance: Mapping[str, Any] | None = None) -> Path:
    """Expected limits on σ(pp → X → HH) versus m_X with ±1σ (green) and ±2σ (yellow) bands."""
    plt = style()
    res = sorted((r for r in rows if r["mode"] == "resonant"), key=lambda r: r["mass_gev"])
    if not res:
        raise ValueError("no resonant limits to plot")
    k = 1000.0 if unit == "fb" else 1.0
    m = np.array([r["mass_gev"] for r in res])
    e = np.array([r["sigma_limit_pb"]["expected"] for r in res]) * k
    fig, ax = plt.subplots(figsize=(8, 6))
    ax.fill_between(m, e[:, 0], e[:, 4], color="#ffcc00", label=r"Expected $\pm 2\sigma$")
    ax.fill_between(m, e[:, 1], e[:, 3], color="#00cc00", label=r"Expected $\pm 1\sigma$")
    ax.plot(m, e[:, 2], "k--", label="Expected")
    obs = [r["sigma_limit_pb"]["observed"] for r in res]
    if all(o is not None for o in obs):
        ax.plot(m, np.array(obs) * k, "ko-", label="Observed")
    ax.set_yscale("log")
    ax.set_xlabel(r"$m_X$ [GeV]")
    cl = round(100 * res[0]["mu"]["cl"])
    ax.set_ylabel(rf"{cl}% CL limit on $\sigma(pp\to X\to HH)$ [{unit}]")
    ax.legend()
    label(ax, lumi_fb)
    fig.tight_layout()
    return save(fig, path, provenance=provenance)


def plot_fit(path: str | Path, edges: Sequence[float], values: Sequence[float], variances: Sequence[float] | None,
             fit: Any, *, xlabel: str = r"$m_{\gamma\gamma}$ [GeV]", title: str = "",
             provenance: Mapping[str, Any] | None = None) -> Path:
    """Histogram points with the fitted model (per-bin expectation and smooth curve)."""
    plt = style()
    e = np.asarray(edges, dtype=float)
    v = np.asarray(values, dtype=float)
    err = np.sqrt(np.asarray(variances if variances is not None else v, dtype=float))
    c = 0.5 * (e[1:] + e[:-1])
    fig, ax = plt.subplots(figsize=(8, 6))
    ax.errorbar(c, v, yerr=err, fmt="ko", markersize=3, label="MC")
    x = np.linspace(fit.fit_range[0], fit.fit_range[1], 600)
    width = float(np.mean(np.diff(e)))
    y = np.array([fit.integral(a - width / 2, a + width / 2) for a in x])
    lab = ("DSCB, " + rf"$\sigma$ = {fit.params['sigma']:.2f} GeV") if fit.model == "dscb" else (
        rf"exp($a\,m$), $a$ = {fit.params['slope']:.4f} GeV$^{{-1}}$ (sidebands)")
    ax.plot(x, y, "r-", label=lab)
    if fit.model == "exponential":
        for lo, hi in fit.extras.get("sidebands", []):
            ax.axvspan(lo, hi, color="0.9", zorder=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("events / bin")
    ax.set_title(title, fontsize=11)
    ax.legend()
    label(ax)
    fig.tight_layout()
    return save(fig, path, provenance=provenance)


def main(argv: list[str] | None = None) -> int:
    from analysis.stats import fits as F
    from analysis.stats import histograms as H
    from analysis.core.config import load_raw_config
    from analysis.stats.limits import limits_config

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--hists", required=True)
    parser.add_argument("--limits", default=None, help="limits.json of analysis.stats.limits")
    parser.add_argument("--output-dir", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    cfg = load_raw_config(args.config)
    lcfg = limits_config(cfg)
    rec = provenance_record(stage="plots", config=cfg,
                            inputs=[args.hists, *([args.limits] if args.limits else [])])
    hs = H.read_pickle(args.hists)
    out = Path(args.output_dir)
    bkgs = [b for b in lcfg["backgrounds"] if b in hs["samples"]]
    sigs = [s for s in lcfg["resonant"]["signals"] + ([lcfg["nonresonant"]["signal"]] if lcfg["nonresonant"]["signal"] else [])
            if s in hs["samples"]]
    nonres = list(lcfg["nonresonant"]["regions"])
    plot_regions(out / "m_yy_categories.png", hs, ["diphoton", "pretag", *nonres], backgrounds=bkgs, signals=sigs,
                 observable="m_yy", rebin=5, provenance=rec)
    res_regions = sorted({r for c in lcfg["resonant"]["mass_categories"] for r in c["regions"]})
    plot_regions(out / "m_star.png", hs, ["pretag", *res_regions], backgrounds=bkgs, signals=sigs,
                 observable="m_star", provenance=rec)
    table = H.cutflow_table(hs)
    plot_cutflow(out / "cutflow.png", table, provenance=rec)
    summary: dict[str, Any] = {"resolution": {}}
    for s in sigs:  # the m_yy resolution of every signal (diphoton region: most statistics)
        h = hs["samples"][s]["hists"]["m_yy"][{"region": "diphoton", "variation": "nominal"}]
        edges, v, var = F.hist_arrays(h)
        if v.sum() <= 0:
            continue
        try:
            fit = F.fit_dscb(edges, v, var, fit_range=(110.0, 140.0))
        except (ValueError, RuntimeError, ArithmeticError) as exc:
            log.warning("DSCB fit of %s failed: %s", s, exc)
            continue
        summary["resolution"][s] = fit.to_dict()
        plot_fit(out / f"dscb_{s}.png", edges, v, var, fit, title=f"{s}: diphoton region", provenance=rec)
    if args.limits:
        rows = json.loads(Path(args.limits).read_text())["rows"]
        if any(r["mode"] == "resonant" for r in rows):
            plot_brazil(out / "brazil.png", rows, lumi_fb=hs.get("lumi_fb"), provenance=rec)
    write_json(out / "summary.json", summary, provenance=rec)
    log.info("plots written to %s", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
