"""The HH → γγbb̄ paper figures: each takes data and returns a matplotlib Figure.

* :func:`plot_stack` — an observable per region on an axes: backgrounds stacked, signals
  overlaid as lines (optionally scaled), MC statistical band on the stack;
* :func:`plot_regions` — a grid of :func:`plot_stack` panels (m_γγ per category, or m*);
* :func:`plot_cutflow` — the cutflow table (σ×L-weighted events, raw MC counts in brackets);
* :func:`plot_brazil` — expected (and observed) limits versus m_X with ±1σ/±2σ bands;
* :func:`plot_fit` — a histogram with a fitted curve (DSCB or sideband exponential).

Nothing here reads or writes files: save a figure with
:func:`analysis.plot.style.save_figure`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from analysis.plot.style import experiment_label, style

if TYPE_CHECKING:
    import hist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from analysis.stats.histograms import CutflowTable

__all__ = [
    "plot_brazil",
    "plot_cutflow",
    "plot_fit",
    "plot_regions",
    "plot_stack",
]

SIGNAL_COLORS = ("black", "crimson", "royalblue", "darkviolet", "darkgreen")
SIGNAL_STYLES = ("-", "--", "-.", ":")


def _h1(h: hist.Hist, region: str, rebin: int = 1) -> Any:
    import hist as hist_

    h1: Any = h[{"region": region, "variation": "nominal"}]
    return h1[:: hist_.rebin(rebin)] if rebin > 1 else h1


def plot_stack(
    ax: Axes,
    hists: Mapping[str, hist.Hist],
    region: str,
    *,
    backgrounds: Sequence[str],
    signals: Sequence[str] = (),
    rebin: int = 1,
    signal_scale: float | Mapping[str, float] = 1.0,
    log_y: bool = False,
) -> None:
    """Draw stacked backgrounds with the MC-stat band and overlaid signals on ``ax``.

    Args:
        ax: the axes.
        hists: sample → ``Hist(region, variation, observable)`` of one observable (the
            nominal variation is drawn); samples not in it are skipped.
        region: the region drawn.
        backgrounds: the stacked samples, bottom first.
        signals: the samples drawn as lines.
        rebin: bins merged into one.
        signal_scale: a factor for every signal, or per signal.
        log_y: logarithmic y axis.
    """
    import mplhep

    bkgs = [b for b in backgrounds if b in hists]
    hs = [_h1(hists[b], region, rebin) for b in bkgs]
    if hs:
        mplhep.histplot(hs, ax=ax, stack=True, histtype="fill", label=bkgs, alpha=0.8)
        tot = sum(h.values() for h in hs)
        err = np.sqrt(sum(h.variances() for h in hs))
        edges = hs[0].axes[0].edges
        ax.stairs(tot + err, edges, baseline=np.clip(tot - err, 0, None), fill=True, hatch="////",
                  alpha=0.0, label="MC stat.")
    for i, s in enumerate(x for x in signals if x in hists):
        k = signal_scale[s] if isinstance(signal_scale, Mapping) else signal_scale
        h = _h1(hists[s], region, rebin)
        mplhep.histplot(h * k, ax=ax, histtype="step", linewidth=2, color=SIGNAL_COLORS[i % len(SIGNAL_COLORS)],
                        linestyle=SIGNAL_STYLES[i % len(SIGNAL_STYLES)], label=s if k == 1 else f"{s} ×{k:g}")
    ax.set_title(region, fontsize=12)
    if log_y:
        ax.set_yscale("log")
    ax.set_ylabel("events / bin")
    ax.legend(fontsize=8, ncol=2)


def plot_regions(
    hists: Mapping[str, hist.Hist],
    regions: Sequence[str],
    *,
    backgrounds: Sequence[str],
    signals: Sequence[str] = (),
    rebin: int = 1,
    signal_scale: float | Mapping[str, float] = 1.0,
    lumi_fb: float | None = None,
    ncols: int = 2,
) -> Figure:
    """A grid of :func:`plot_stack` panels, one per region.

    Args:
        hists: sample → ``Hist(region, variation, observable)`` of one observable
            (:meth:`analysis.stats.histograms.HistSet.hists_of`).
        regions: one panel each.
        backgrounds: stacked samples.
        signals: samples drawn as lines.
        rebin: bins merged into one.
        signal_scale: a factor for every signal, or per signal.
        lumi_fb: the luminosity (fb⁻¹) in the label.
        ncols: panels per row.

    Returns:
        The figure.
    """
    plt = style()
    nrows = int(np.ceil(len(regions) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(7 * ncols, 5.5 * nrows), squeeze=False)
    for ax, region in zip(axes.flat, regions, strict=False):
        plot_stack(ax, hists, region, backgrounds=backgrounds, signals=signals, rebin=rebin,
                   signal_scale=signal_scale)
        experiment_label(ax, lumi_fb)
    for ax in list(axes.flat)[len(regions):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def plot_cutflow(table: CutflowTable, samples: Sequence[str] | None = None) -> Figure:
    """The cutflow table as a figure: weighted events with the raw MC count in brackets.

    Args:
        table: the cutflow (:meth:`analysis.stats.histograms.HistSet.cutflow_table`).
        samples: the columns (default: every sample of the table).

    Returns:
        The figure.
    """
    plt = style()
    names = [s for s in (samples or list(table.samples)) if s in table.samples]
    steps = table.steps
    cells = []
    for i, _ in enumerate(steps):
        row = []
        for n in names:
            c = table.samples[n]
            w = c.weighted[i] if c.weighted is not None else float("nan")
            row.append(f"{w:.3g} ({c.raw[i]})")
        cells.append(row)
    fig, ax = plt.subplots(figsize=(2.0 + 1.7 * max(len(names), 1), 0.8 + 0.32 * len(steps)))
    ax.axis("off")
    if names:
        tab = ax.table(cellText=cells, rowLabels=steps, colLabels=names, loc="center", cellLoc="right")
        tab.auto_set_font_size(False)
        tab.set_fontsize(7)
        tab.scale(1.0, 1.2)
    unit = f"events in {table.lumi_fb or 0:g} fb$^{{-1}}$" if table.normalised else "sum of weights"
    ax.set_title(f"Cutflow: {unit} (raw MC events)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_brazil(
    mass_gev: ArrayLike,
    expected_pb: ArrayLike,
    observed_pb: Sequence[float | None] | None = None,
    *,
    cl: float = 0.95,
    lumi_fb: float | None = None,
    unit: str = "fb",
) -> Figure:
    """Expected limits on σ(pp → X → HH) versus m_X with ±1σ (green) and ±2σ (yellow) bands.

    Args:
        mass_gev: m_X of each point (GeV), increasing.
        expected_pb: per point the expected limits ``[−2σ, −1σ, median, +1σ, +2σ]`` in pb
            (shape ``(n, 5)``).
        observed_pb: per point the observed limit in pb (drawn only if every point has one).
        cl: the confidence level (axis label).
        lumi_fb: the luminosity (fb⁻¹) in the label.
        unit: ``fb`` or ``pb`` on the y axis.

    Returns:
        The figure.

    Raises:
        ValueError: no point.
    """
    m = np.asarray(mass_gev, dtype=float)
    if m.size == 0:
        raise ValueError("no resonant limits to plot")
    plt = style()
    k = 1000.0 if unit == "fb" else 1.0
    e = np.array(expected_pb) * k
    fig, ax = plt.subplots(figsize=(8, 6))
    ax.fill_between(m, e[:, 0], e[:, 4], color="#ffcc00", label=r"Expected $\pm 2\sigma$")
    ax.fill_between(m, e[:, 1], e[:, 3], color="#00cc00", label=r"Expected $\pm 1\sigma$")
    ax.plot(m, e[:, 2], "k--", label="Expected")
    obs = list(observed_pb) if observed_pb is not None else []
    if obs and all(o is not None for o in obs):
        ax.plot(m, np.array(obs, dtype=float) * k, "ko-", label="Observed")
    ax.set_yscale("log")
    ax.set_xlabel(r"$m_X$ [GeV]")
    ax.set_ylabel(rf"{round(100 * cl)}% CL limit on $\sigma(pp\to X\to HH)$ [{unit}]")
    ax.legend()
    experiment_label(ax, lumi_fb)
    fig.tight_layout()
    return fig


def plot_fit(
    edges: ArrayLike,
    values: ArrayLike,
    variances: ArrayLike | None,
    curve: tuple[ArrayLike, ArrayLike],
    *,
    curve_label: str,
    shaded: Sequence[Sequence[float]] = (),
    xlabel: str = r"$m_{\gamma\gamma}$ [GeV]",
    title: str = "",
) -> Figure:
    """Histogram points with a fitted model drawn over them.

    Args:
        edges: bin edges (GeV).
        values: events per bin.
        variances: their variances (None: Poisson, = values).
        curve: (x in GeV, expected events per bin) of the model
            (:meth:`analysis.stats.fits.FitResult.curve`).
        curve_label: the legend entry of the curve.
        shaded: x intervals (GeV) shaded grey, e.g. the sidebands of a sideband fit.
        xlabel: the x axis title.
        title: the figure title.

    Returns:
        The figure.
    """
    plt = style()
    e = np.asarray(edges, dtype=float)
    v = np.asarray(values, dtype=float)
    err = np.sqrt(np.asarray(variances if variances is not None else v, dtype=float))
    c = 0.5 * (e[1:] + e[:-1])
    fig, ax = plt.subplots(figsize=(8, 6))
    ax.errorbar(c, v, yerr=err, fmt="ko", markersize=3, label="MC")
    ax.plot(np.asarray(curve[0]), np.asarray(curve[1]), "r-", label=curve_label)
    for lo, hi in shaded:
        ax.axvspan(lo, hi, color="0.9", zorder=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("events / bin")
    ax.set_title(title, fontsize=11)
    ax.legend()
    experiment_label(ax)
    fig.tight_layout()
    return fig
