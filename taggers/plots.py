"""Paper-style plots of the tagger evaluation (mplhep, "hepline Simulation" label).

* :func:`plot_roc`: background rejection against b-jet efficiency (log y) for every tagger,
  with a ratio panel to the reference tagger (IP3D) below, in the style of the ATLAS FTAG
  ROC plots; the bands are the relative binomial errors of each curve's rejection.
* :func:`plot_rejection_vs_pt`: light-jet rejection against jet pT at one fixed-cut working
  point (the inclusive cut of the working-point file) for every tagger.
* :func:`plot_discriminants`: the discriminant per flavour, unit-normalised, per tagger.

All take the ``results`` dict of :func:`taggers.evaluate.evaluate` (before or after the JSON
round trip) and write PNG files atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from analysis.core.atomic import atomic_path

LABELS = {"ip2d": "IP2D", "ip3d": "IP3D", "mv2": "MV2", "rnnip": "RNNIP", "dl1": "DL1"}
COLOURS = {
    "ip2d": "#7f7f7f",
    "ip3d": "#1f77b4",
    "mv2": "#2ca02c",
    "rnnip": "#d62728",
    "dl1": "#9467bd",
}
SUBTEXT = (
    "\u221as = 13 TeV, "
    r"$t\bar{t}$ test split"
    "\n"
    r"anti-$k_t$ $R$ = 0.4 jets, $p_T$ > 20 GeV, $|\eta|$ < 2.5"
)


def _setup() -> Any:
    from analysis.plot.paper import use_file_backend

    use_file_backend()
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.ATLAS)
    return plt


def _label(ax: Any, extra: str = "") -> None:
    import mplhep

    mplhep.label.exp_text("hepline", "Simulation", ax=ax, loc=1)
    ax.text(
        0.03,
        0.88,
        SUBTEXT + (f"\n{extra}" if extra else ""),
        transform=ax.transAxes,
        va="top",
        ha="left",
        fontsize="small",
    )


def _save(fig: Any, path: Path) -> str:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return str(path)


def _arr(values: Any) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def plot_roc(
    results: Mapping[str, Any],
    background: str,
    path: str | os.PathLike[str],
    reference: str = "ip3d",
) -> str:
    """``background`` ("light" or "c") rejection vs b efficiency with a ratio panel."""
    plt = _setup()
    grid = _arr(results["roc_b_efficiency"])
    fig, (ax, rax) = plt.subplots(
        2, 1, figsize=(8, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05}
    )
    ref = _arr(results["taggers"][reference]["roc"][f"{background}_rejection"])
    x_lo = max(0.5, float(np.nanmin(grid)))
    show = grid >= x_lo
    y_max = 1.0
    for t, entry in results["taggers"].items():
        rej = _arr(entry["roc"][f"{background}_rejection"])
        rel = _arr(entry["roc"][f"{background}_rejection_rel_err"])
        c = COLOURS.get(t)
        ax.plot(grid[show], rej[show], color=c, label=LABELS.get(t, t))
        ratio = rej / ref
        rax.plot(grid[show], ratio[show], color=c)
        rax.fill_between(
            grid[show],
            (ratio * (1 - rel))[show],
            (ratio * (1 + rel))[show],
            color=c,
            alpha=0.2,
            linewidth=0,
        )
        if np.any(np.isfinite(rej[show])):
            y_max = max(y_max, float(np.nanmax(rej[show])))
    ax.set_yscale("log")
    ax.set_ylim(1, y_max * 30)
    name = "Light-flavour jet" if background == "light" else r"$c$-jet"
    ax.set_ylabel(f"{name} rejection")
    ax.legend(loc="upper right")
    _label(ax)
    rax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    rax.set_ylabel(f"Ratio to {LABELS.get(reference, reference)}")
    rax.set_xlabel(r"$b$-jet efficiency")
    rax.set_xlim(x_lo, 1.0)
    finite = []
    for t in results["taggers"]:
        r = _arr(results["taggers"][t]["roc"][f"{background}_rejection"]) / ref
        finite.extend(r[show][np.isfinite(r[show])].tolist())
    if finite:
        rax.set_ylim(max(0.0, min(finite) * 0.9), max(finite) * 1.1)
    return _save(fig, Path(path))


def plot_rejection_vs_pt(
    results: Mapping[str, Any],
    path: str | os.PathLike[str],
    wp: str = "70",
    background: str = "light",
) -> str:
    """Background rejection per jet-pT bin at the fixed-cut working point ``wp``."""
    plt = _setup()
    edges = np.asarray(results["binning"]["pt_edges_gev"], dtype=np.float64)
    centres, half = 0.5 * (edges[1:] + edges[:-1]), 0.5 * np.diff(edges)
    fig, ax = plt.subplots(figsize=(8, 6.5))
    n = len(results["taggers"])
    for i, (t, entry) in enumerate(results["taggers"].items()):
        rej = entry["efficiency_vs_pt"][wp][background]["rejection"]
        val, err = _arr(rej["value"]), _arr(rej["err"])
        lim = np.array([bool(v) for v in rej["lower_limit"]])
        shift = (i - (n - 1) / 2) * 0.08 * half  # spread the markers inside the bin
        ok = np.isfinite(val) & ~lim
        ax.errorbar(
            centres[ok] + shift[ok],
            val[ok],
            xerr=None,
            yerr=err[ok],
            fmt="o",
            color=COLOURS.get(t),
            label=LABELS.get(t, t),
            markersize=5,
        )
        if lim.any():
            ax.plot(
                centres[lim] + shift[lim],
                val[lim],
                marker="^",
                linestyle="none",
                color=COLOURS.get(t),
                markersize=6,
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(edges[0], edges[-1])
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ticks = [v for v in (20, 30, 50, 100, 200, 300, 500, 1000, 2000) if edges[0] <= v <= edges[-1]]
    ax.set_xticks(ticks)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(r"jet $p_T$ [GeV]")
    name = "Light-flavour jet" if background == "light" else r"$c$-jet"
    ax.set_ylabel(f"{name} rejection")
    shown = [
        v
        for e in results["taggers"].values()
        for v in e["efficiency_vs_pt"][wp][background]["rejection"]["value"]
        if v
    ]
    if shown:
        ax.set_ylim(max(0.5, 0.3 * min(shown)), 30 * max(shown))
    ax.legend(loc="upper right", ncol=2)
    _label(ax, f"fixed-cut {wp}% $b$-jet efficiency WP (inclusive cut)")
    return _save(fig, Path(path))


def plot_discriminants(hists: Mapping[str, Mapping[str, Any]], path: str | os.PathLike[str]) -> str:
    """Unit-normalised discriminant per flavour, one panel per tagger."""
    import mplhep

    plt = _setup()
    taggers = list(hists)
    ncol = min(3, len(taggers))
    nrow = -(-len(taggers) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(6.5 * ncol, 5.5 * nrow), squeeze=False)
    axes = axes.ravel()
    for ax in axes[len(taggers) :]:
        ax.set_visible(False)
    styles = {"b": "#1f77b4", "c": "#ff7f0e", "light": "#2ca02c", "tau": "#9467bd"}
    for ax, t in zip(axes, taggers):
        for fl, h in hists[t].items():
            total = h.sum(flow=True).value
            if total > 0:
                mplhep.histplot(h / total, ax=ax, label=f"{fl} jets", color=styles.get(fl))
        ax.set_yscale("log")
        ax.set_xlabel(f"{LABELS.get(t, t)} discriminant")
        ax.set_ylabel("fraction of jets")
        ax.legend(loc="upper right", fontsize="small")
        mplhep.label.exp_text("hepline", "Simulation", ax=ax, loc=1)
    fig.tight_layout()
    return _save(fig, Path(path))


def make_plots(
    results: Mapping[str, Any],
    hists: Mapping[str, Mapping[str, Any]],
    outdir: str | os.PathLike[str],
    *,
    reference: str = "ip3d",
    wp: str = "70",
) -> dict[str, str]:
    """The four plots of the stage in ``outdir``; returns ``{name: path}``."""
    from taggers.evaluate import PLOT_FILES

    out = Path(outdir)
    wp_use = (
        wp
        if wp in next(iter(results["taggers"].values()))["working_points"]
        else next(iter(next(iter(results["taggers"].values()))["working_points"]))
    )
    return {
        "roc_light": plot_roc(results, "light", out / PLOT_FILES["roc_light"], reference),
        "roc_c": plot_roc(results, "c", out / PLOT_FILES["roc_c"], reference),
        "light_rejection_vs_pt": plot_rejection_vs_pt(
            results, out / PLOT_FILES["light_rejection_vs_pt"], wp_use
        ),
        "discriminants": plot_discriminants(hists, out / PLOT_FILES["discriminants"]),
    }
