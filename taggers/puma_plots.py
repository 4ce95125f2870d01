"""The FTAG performance plots drawn with puma (the ATLAS flavour-tagging plotting API).

Optional: puma comes with the ``ftag`` extra (``pip install 'hepline[ftag]'``);
:func:`available` tells whether it can be imported, and :mod:`taggers.evaluate` writes these
figures (under ``plots/puma/``) only then. hepline's own figures (:mod:`taggers.plots`) are
always written and do not depend on puma.

The numbers are hepline's (:mod:`taggers.performance`); puma draws them:

* :func:`roc_plot`: light- and c-jet rejection against b-jet efficiency for every tagger,
  ``puma.RocPlot`` with two ratio panels (light, c) to the reference tagger; the bands are
  puma's binomial errors with the background jets of each curve;
* :func:`pt_plot`: the b-jet efficiency, or the light- or c-jet rejection, per jet-pT bin at
  one fixed-cut working point (the inclusive cut of ``working_points.json``), ``puma.VarVsVar``
  with a ratio panel to the reference tagger; the errors are the binomial ones of
  :func:`taggers.performance.binned_efficiencies`.

The per-bin efficiencies are computed by hepline and drawn with ``puma.VarVsVarPlot``:
puma's own ``VarVsEff`` (which would recompute them) fails on numpy ≥ 2.4 in puma 0.4.12
(``puma.utils.histogram.save_divide`` calls ``float()`` on a 1-element array), and the puma
releases without that bug pin numpy < 2.4 (docs/taggers-ftag.md).

Labels: puma's ATLAS-style tag with the brand "hepline" ("hepline Simulation"), not ATLAS.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from analysis.core.atomic import atomic_path
from taggers.performance import TaggerPerformance
from taggers.plots import COLOURS, LABELS

log = logging.getLogger(__name__)

__all__ = ["PUMA_PLOT_FILES", "available", "pt_plot", "roc_plot", "write_puma_figures"]

#: the figures of :func:`write_puma_figures` and their files (under ``plots/puma/``)
PUMA_PLOT_FILES = {
    "roc": "roc.png",
    "b_efficiency_vs_pt": "b_efficiency_vs_pt.png",
    "light_rejection_vs_pt": "light_rejection_vs_pt.png",
    "c_rejection_vs_pt": "c_rejection_vs_pt.png",
}
_FTAG_CLASS = {"b": "bjets", "c": "cjets", "light": "ujets", "tau": "taujets"}
_BRAND = {"atlas_brand": "hepline", "atlas_first_tag": "Simulation"}
_LABELS = LABELS


def available() -> bool:
    """Whether puma can be imported (the ``ftag`` extra is installed)."""
    try:
        import puma  # noqa: F401
    except ImportError:
        return False
    return True


def _tag(perf: TaggerPerformance, extra: str = "") -> str:
    return "\u221as = 13 TeV, " + f"{perf.sample.jets} test jets" + (f"\n{extra}" if extra else "")


def _ratio_top(rocs: Mapping[str, Any], ref: str, bkg: str, ok: np.ndarray, cap: float = 4.0) -> float:
    """The top of a ratio panel: 1.2 × the largest ratio to ``ref`` (at most ``cap``: the few
    points where only a handful of background jets pass would squeeze the rest to a line)."""
    base = rocs[ref].rejection(bkg)[ok]
    top = max((float(np.max(rocs[t].rejection(bkg)[ok] / base)) for t in rocs if ok.any()), default=1.0)
    return 1.2 * min(max(top, 1.0), cap)


def roc_plot(perf: TaggerPerformance, reference: str | None = None) -> Any:
    """The ROC curves of every tagger with light and c ratio panels (a drawn ``puma.RocPlot``).

    Args:
        perf: the performance (its ROC curves on the b-efficiency grid).
        reference: the tagger of the ratio panels (default: ``perf.reference`` when
            evaluated, else the first tagger).

    Returns:
        The drawn ``puma.RocPlot`` (``.fig`` is the figure).
    """
    from puma import Roc, RocPlot

    rocs = perf.rocs
    ref = reference if reference is not None else (perf.reference if perf.reference in rocs else next(iter(rocs)))
    grid = np.asarray(perf.roc_b_efficiency, dtype=np.float64)
    # one grid for all curves of a panel: the points where every tagger has a rejection
    masks = {bkg: (grid >= 0.5) & np.all([np.isfinite(r.rejection(bkg)) for r in rocs.values()], axis=0)
             for bkg in ("light", "c")}
    plot = RocPlot(n_ratio_panels=2, ylabel="Background rejection", xlabel="$b$-jet efficiency",
                   atlas_second_tag=_tag(perf), figsize=(6.5, 6), y_scale=1.4,
                   ymin_ratio=[0.0, 0.0], ymax_ratio=[_ratio_top(rocs, ref, bkg, m) for bkg, m in masks.items()],
                   **_BRAND)
    for bkg in ("light", "c"):
        n_bkg = perf.sample.flavours[bkg].n_eff
        ok = masks[bkg]
        for t in [ref, *(t for t in rocs if t != ref)]:
            plot.add_roc(
                Roc(grid[ok], rocs[t].rejection(bkg)[ok], n_test=int(round(n_bkg)), rej_class=_FTAG_CLASS[bkg],
                    signal_class="bjets", label=_LABELS.get(t, t), colour=COLOURS.get(t)),
                reference=(t == ref),
            )
    plot.set_ratio_class(1, _FTAG_CLASS["light"])
    plot.set_ratio_class(2, _FTAG_CLASS["c"])
    plot.draw()
    return plot


def pt_plot(perf: TaggerPerformance, quantity: str, wp: str = "70", reference: str | None = None) -> Any:
    """``quantity`` per jet-pT bin at the working point ``wp`` (a drawn ``puma.VarVsVarPlot``).

    Args:
        perf: the performance (its efficiency maps against pT in GeV).
        quantity: ``b_efficiency``, ``light_rejection`` or ``c_rejection``.
        wp: the working point (its inclusive cut).
        reference: the tagger of the ratio panel (default as :func:`roc_plot`).

    Returns:
        The drawn plot (``.fig`` is the figure); the bins where a tagger has no value (no
        jet of the flavour, or none passes the cut) are not drawn.

    Raises:
        ValueError: an unknown quantity; no pT bin where every tagger has a value.
    """
    from puma import VarVsVar, VarVsVarPlot

    if quantity not in ("b_efficiency", "light_rejection", "c_rejection"):
        raise ValueError(f"unknown quantity {quantity!r}: b_efficiency, light_rejection or c_rejection")
    maps = {t: r.efficiency_vs_pt for t, r in perf.taggers.items()}
    ref = reference if reference is not None else (perf.reference if perf.reference in maps else next(iter(maps)))
    edges = np.asarray(next(iter(maps.values())).edges, dtype=np.float64)
    centres, widths = 0.5 * (edges[1:] + edges[:-1]), np.diff(edges)
    flavour = quantity.split("_")[0]
    names = {"b_efficiency": "$b$-jet efficiency", "light_rejection": "Light-jet rejection",
             "c_rejection": "$c$-jet rejection"}
    plot = VarVsVarPlot(n_ratio_panels=1, ylabel=names[quantity], xlabel=r"Jet $p_{\mathrm{T}}$ [GeV]",
                        ylabel_ratio=[f"Ratio to {_LABELS.get(ref, ref)}"],
                        logy=quantity != "b_efficiency", figsize=(6.5, 5), y_scale=1.5,
                        atlas_second_tag=_tag(perf, f"fixed-cut {wp}% $b$-jet efficiency WP (inclusive cut)"),
                        **_BRAND)
    values: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for t in [ref, *(t for t in maps if t != ref)]:
        be = maps[t].bins[wp][flavour]
        if quantity == "b_efficiency":
            values[t] = np.asarray(be.eff, np.float64), np.asarray(be.err, np.float64)
        else:
            assert be.rejection is not None and be.rejection_err is not None
            values[t] = np.asarray(be.rejection, np.float64), np.asarray(be.rejection_err, np.float64)
    # the bins where every tagger has a finite value (no empty bin, a jet passes), so that the
    # ratios to the reference are defined
    ok = np.all([np.isfinite(y) & (y > 0) for y, _ in values.values()], axis=0)
    if not ok.any():
        raise ValueError(f"insufficient statistics ({perf.sample.jets} jets): "
                         f"no pT bin where every tagger has a {quantity.replace('_', ' ')}")
    for t, (y, err) in values.items():
        plot.add(VarVsVar(x_var=centres[ok], y_var_mean=y[ok], y_var_std=np.nan_to_num(err[ok]),
                          x_var_widths=widths[ok], label=_LABELS.get(t, t), is_marker=True, fill=False,
                          colour=COLOURS.get(t)),
                 reference=(t == ref))
    plot.draw()
    return plot


def write_puma_figures(
    perf: TaggerPerformance,
    out_dir: str | os.PathLike[str],
    *,
    wp: str = "70",
    reference: str | None = None,
    dpi: int = 100,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Draw and save the figures of :data:`PUMA_PLOT_FILES` (PNG, atomically) in ``out_dir``.

    Args:
        perf: the performance.
        out_dir: the folder (``plots/puma`` of the evaluation).
        wp: the working point of the pT plots (else the first evaluated).
        reference: the tagger of the ratio panels (default as :func:`roc_plot`).
        dpi: the resolution.
        provenance: a run record for each file's sidecar.

    Returns:
        ``{name: path}`` of the figures drawn (a pT figure without a bin where every tagger
        has a value is skipped, with a warning).
    """
    import matplotlib.pyplot as plt

    points = next(iter(perf.taggers.values())).working_points
    wp_use = wp if wp in points else next(iter(points))
    out = Path(out_dir)
    plots: dict[str, Callable[[], Any]] = {"roc": lambda: roc_plot(perf, reference)}
    for q in ("b_efficiency", "light_rejection", "c_rejection"):
        plots[f"{q}_vs_pt"] = partial(pt_plot, perf, q, wp_use, reference)
    written: dict[str, Path] = {}
    for name, make in plots.items():
        try:
            plot = make()
        except ValueError as exc:  # a pT plot without a common bin
            log.warning("%s: not drawn, %s", PUMA_PLOT_FILES[name], exc)
            continue
        path = out / PUMA_PLOT_FILES[name]
        try:
            with atomic_path(path, provenance=provenance) as tmp:
                plot.fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.04)
        finally:
            plt.close(plot.fig)
        written[name] = path
    return written
