"""Paper-style plots of the tagger performance (mplhep, "hepline Simulation" label).

* :func:`plot_roc`: background rejection against b-jet efficiency (log y) for every tagger,
  with a ratio panel to the reference tagger (IP3D) below, in the style of the ATLAS FTAG
  ROC plots; the bands are the relative binomial errors of each curve's rejection.
* :func:`plot_rejection_vs_pt`: light-jet rejection against jet pT (GeV) at one fixed-cut
  working point (the inclusive cut of the working-point file) for every tagger.
* :func:`plot_discriminants`: the discriminant per flavour, unit-normalised, per tagger.
* :func:`performance_figures`: the four figures of the evaluation stage.

They take the data (:mod:`taggers.performance` results, ``hist`` histograms) and return
:class:`matplotlib.figure.Figure` objects; :mod:`taggers.evaluate` saves them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.plot.style import style
from taggers.performance import EfficiencyMap, RocCurves, TaggerPerformance

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "COLOURS",
    "LABELS",
    "performance_figures",
    "plot_discriminants",
    "plot_rejection_vs_pt",
    "plot_roc",
]

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


def _label(ax: Axes, extra: str = "") -> None:
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


def plot_roc(rocs: Mapping[str, RocCurves], background: str, reference: str = "ip3d") -> Figure:
    """Background rejection against b-jet efficiency with a ratio panel to ``reference``.

    Args:
        rocs: the ROC curves per tagger (:attr:`TaggerPerformance.rocs`).
        background: ``"light"`` or ``"c"``.
        reference: the tagger of the ratio panel.

    Returns:
        The figure.
    """
    plt = style()
    ref_roc = rocs[reference]
    grid = np.asarray(ref_roc.b_efficiency, dtype=np.float64)
    fig, (ax, rax) = plt.subplots(
        2, 1, figsize=(8, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05}
    )
    ref = ref_roc.rejection(background)
    x_lo = max(0.5, float(np.nanmin(grid)))
    show = grid >= x_lo
    y_max = 1.0
    finite: list[float] = []
    for t, roc in rocs.items():
        rej = roc.rejection(background)
        rel = roc.rejection_rel_err(background)
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
        finite.extend(ratio[show][np.isfinite(ratio[show])].tolist())
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
    if finite:
        rax.set_ylim(max(0.0, min(finite) * 0.9), max(finite) * 1.1)
    return fig


def plot_rejection_vs_pt(maps: Mapping[str, EfficiencyMap], wp: str = "70", background: str = "light") -> Figure:
    """Background rejection per jet-pT bin at the fixed-cut working point ``wp``.

    Args:
        maps: the efficiency maps against pT (GeV) per tagger.
        wp: the working point (``"70"``).
        background: ``"light"`` or ``"c"``.

    Returns:
        The figure (upward triangles: lower limits, no jet passed).
    """
    plt = style()
    edges = np.asarray(next(iter(maps.values())).edges, dtype=np.float64)
    centres, half = 0.5 * (edges[1:] + edges[:-1]), 0.5 * np.diff(edges)
    fig, ax = plt.subplots(figsize=(8, 6.5))
    n = len(maps)
    shown: list[float] = []
    for i, (t, m) in enumerate(maps.items()):
        be = m.bins[wp][background]
        assert be.rejection is not None and be.rejection_err is not None and be.rejection_lower_limit is not None
        val, err = be.rejection, be.rejection_err
        lim = be.rejection_lower_limit & np.isfinite(val)
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
        shown.extend(val[np.isfinite(val) & (val != 0)].tolist())
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
    if shown:
        ax.set_ylim(max(0.5, 0.3 * min(shown)), 30 * max(shown))
    ax.legend(loc="upper right", ncol=2)
    _label(ax, f"fixed-cut {wp}% $b$-jet efficiency WP (inclusive cut)")
    return fig


def plot_discriminants(hists: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Unit-normalised discriminant per flavour, one panel per tagger.

    Args:
        hists: ``hists[tagger][flavour]``: ``hist.Hist`` of the discriminant
            (:attr:`TaggerPerformance.histograms`).

    Returns:
        The figure.
    """
    import mplhep

    plt = style()
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
    return fig


def performance_figures(perf: TaggerPerformance, wp: str = "70", reference: str | None = None) -> dict[str, Figure]:
    """The figures of the evaluation stage: ``roc_light``, ``roc_c`` (ratios to ``reference``,
    default the configured reference tagger; not drawn when it was not evaluated),
    ``light_rejection_vs_pt`` (at ``wp``, else the first working point) and ``discriminants``."""
    points = next(iter(perf.taggers.values())).working_points
    wp_use = wp if wp in points else next(iter(points))
    figures: dict[str, Figure] = {}
    ref = reference if reference is not None else perf.reference
    if ref in perf.taggers:
        figures["roc_light"] = plot_roc(perf.rocs, "light", ref)
        figures["roc_c"] = plot_roc(perf.rocs, "c", ref)
    figures["light_rejection_vs_pt"] = plot_rejection_vs_pt(
        {t: r.efficiency_vs_pt for t, r in perf.taggers.items()}, wp_use)
    figures["discriminants"] = plot_discriminants(perf.histograms)
    return figures
