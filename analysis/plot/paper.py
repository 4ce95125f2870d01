"""The ``plots`` stage: every HH → γγbb̄ paper plot of a normalised histogram set and, if
given, of the limits (:func:`write_paper_plots`).

Writes into the output folder, each with the ``plots`` provenance record:

* ``m_yy_categories.png`` — m_γγ in the diphoton, pretag and non-resonant regions;
* ``m_star.png`` — m* in the pretag and resonant regions;
* ``cutflow.png`` — the cutflow table;
* ``dscb_<signal>.png`` — the DSCB fit of each signal's m_γγ (diphoton region);
* ``brazil.png`` — the resonant limits (with ``limits``);
* ``summary.json`` — ``{"resolution": {signal: DSCB fit}}``.

The figures come from :mod:`analysis.plot.hh`, the limits from ``limits.json`` as written by
the limits stage. Command line::

    hepline plots --config C --hists results/hh_yybb/histograms/hists.pkl \\
        --limits results/hh_yybb/limits/limits.json --output-dir results/hh_yybb/plots
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.core.atomic import write_json
from analysis.core.errors import InputFileError
from analysis.core.provenance import provenance_record
from analysis.plot.hh import plot_brazil, plot_cutflow, plot_fit, plot_regions
from analysis.plot.style import save_figure
from analysis.stats import fits as F
from analysis.stats.histograms import HistSet

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from analysis.core.config import Config
    from analysis.stats.limits import LimitTable

log = logging.getLogger(__name__)

__all__ = ["PaperPlots", "brazil_arrays", "brazil_figure", "fit_label", "write_paper_plots"]

PathLike = str | os.PathLike[str]

DSCB_RANGE_GEV = (110.0, 140.0)
"""m_γγ range of the signal DSCB fits (GeV)."""


@dataclass
class PaperPlots:
    """What :func:`write_paper_plots` wrote: the files and the signals' m_γγ resolution fits."""

    files: list[Path] = field(default_factory=list)
    resolution: dict[str, F.FitResult] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The ``summary.json`` content ``{"resolution": {signal: fit}}``."""
        return {"resolution": {s: fit.to_dict() for s, fit in self.resolution.items()}}


def fit_label(fit: F.FitResult) -> str:
    """The legend entry of a fit: the DSCB σ (GeV) or the exponential slope (GeV⁻¹)."""
    if fit.model == "dscb":
        return "DSCB, " + rf"$\sigma$ = {fit.params['sigma']:.2f} GeV"
    return rf"exp($a\,m$), $a$ = {fit.params['slope']:.4f} GeV$^{{-1}}$ (sidebands)"


def brazil_arrays(
    rows: Sequence[Mapping[str, Any]],
) -> tuple[list[float], list[list[float]], list[float | None], float]:
    """The resonant rows of ``limits.json`` as :func:`analysis.plot.hh.plot_brazil` data.

    Args:
        rows: the ``rows`` of ``limits.json``.

    Returns:
        (m_X in GeV, expected σ limits in pb, observed σ limits in pb, confidence level),
        ordered by mass.
    """
    res = sorted((r for r in rows if r["mode"] == "resonant"), key=lambda r: r["mass_gev"])
    return ([r["mass_gev"] for r in res], [r["sigma_limit_pb"]["expected"] for r in res],
            [r["sigma_limit_pb"]["observed"] for r in res], res[0]["mu"]["cl"] if res else 0.95)


def brazil_figure(limits: LimitTable, *, unit: str = "fb") -> Figure:
    """The Brazil plot of the resonant limits of ``limits`` (:func:`analysis.plot.hh.plot_brazil`).

    Args:
        limits: the limits (:func:`analysis.stats.limits.run_limits` in a ``LimitTable``).
        unit: ``fb`` or ``pb`` on the y axis.
    """
    mass, expected, observed, cl = brazil_arrays(limits.to_dict()["rows"])
    return plot_brazil(mass, expected, observed, cl=cl, lumi_fb=limits.lumi_fb, unit=unit)


def write_paper_plots(
    config: Config,
    hists: PathLike,
    output_dir: PathLike,
    *,
    limits: PathLike | None = None,
) -> PaperPlots:
    """The ``plots`` stage (module docstring).

    Args:
        config: the whole configuration (the ``limits`` section names the signals,
            backgrounds and regions drawn; hashed into the record).
        hists: the normalised histogram set (``hists.pkl``).
        output_dir: the output folder.
        limits: ``limits.json`` of the limits stage (the Brazil plot; optional).

    Returns:
        The files written and the resolution fits.
    """
    lcfg = config.limits
    rec = provenance_record(stage="plots", config=config, inputs=[hists, *([limits] if limits else [])])
    hs = HistSet.read(hists)
    out = Path(output_dir)
    result = PaperPlots()

    def save(fig: Any, name: str) -> None:
        result.files.append(save_figure(fig, out / name, provenance=rec))

    bkgs = [b for b in lcfg.backgrounds if b in hs.samples]
    nonres_signal = [lcfg.nonresonant.signal] if lcfg.nonresonant.signal else []
    sigs = [s for s in [*lcfg.resonant.signals, *nonres_signal] if s in hs.samples]
    nonres = list(lcfg.nonresonant.regions)
    save(plot_regions(hs.hists_of("m_yy"), ["diphoton", "pretag", *nonres], backgrounds=bkgs, signals=sigs,
                      rebin=5, lumi_fb=hs.lumi_fb), "m_yy_categories.png")
    res_regions = sorted({r for c in lcfg.resonant.mass_categories for r in c.regions})
    save(plot_regions(hs.hists_of("m_star"), ["pretag", *res_regions], backgrounds=bkgs, signals=sigs,
                      lumi_fb=hs.lumi_fb), "m_star.png")
    save(plot_cutflow(hs.cutflow_table()), "cutflow.png")
    for s in sigs:  # the m_yy resolution of every signal (diphoton region: most statistics)
        edges, v, var = F.hist_arrays(hs.hist(s, "m_yy", "diphoton"))
        if v.sum() <= 0:
            continue
        try:
            fit = F.fit_dscb(edges, v, var, fit_range=DSCB_RANGE_GEV)
        except (ValueError, RuntimeError, ArithmeticError) as exc:
            log.warning("DSCB fit of %s failed: %s", s, exc)
            continue
        result.resolution[s] = fit
        curve = fit.curve(float(np.mean(np.diff(edges))))
        save(plot_fit(edges, v, var, curve, curve_label=fit_label(fit), title=f"{s}: diphoton region"),
             f"dscb_{s}.png")
    if limits:
        try:
            rows = json.loads(Path(limits).read_text())["rows"]
        except (OSError, ValueError, KeyError) as exc:
            raise InputFileError(limits, f"not a limits.json ({type(exc).__name__}: {exc})") from exc
        mass, expected, observed, cl = brazil_arrays(rows)
        if mass:
            save(plot_brazil(mass, expected, observed, cl=cl, lumi_fb=hs.lumi_fb), "brazil.png")
    write_json(out / "summary.json", result.summary(), provenance=rec)
    result.files.append(out / "summary.json")
    log.info("plots written to %s", out)
    return result
