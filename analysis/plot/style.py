"""The look of every hepline figure and the one way figures are saved.

* :func:`use_file_backend` / :func:`style`: the non-interactive Agg backend (left alone under
  a notebook's inline backend) and the mplhep ATLAS style;
* :func:`experiment_label`: the experiment label (and luminosity) on an axes;
* :func:`save_figure`: a figure written atomically as PNG (plus the provenance sidecar
  ``<figure>.png.provenance.json`` when a record is given), then closed.

Plot functions take data and return a :class:`matplotlib.figure.Figure`; the stage I/O
functions own the file names and call :func:`save_figure`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.core.atomic import atomic_path

if TYPE_CHECKING:
    from types import ModuleType

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "DEFAULT_DPI",
    "EXPERIMENT_LABEL",
    "INLINE_BACKENDS",
    "experiment_label",
    "save_figure",
    "style",
    "use_file_backend",
]

EXPERIMENT_LABEL = "hepline"

DEFAULT_DPI = 90
"""Resolution of the saved PNGs (dots per inch)."""

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


def style() -> ModuleType:
    """Select the file backend (:func:`use_file_backend`) and the mplhep ATLAS style.

    Returns:
        ``matplotlib.pyplot``.
    """
    use_file_backend()
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.ATLAS)
    return plt


def experiment_label(ax: Axes, lumi_fb: float | None = None, text: str = "Simulation") -> None:
    """Draw the experiment label (and the luminosity, fb⁻¹, at 13 TeV) in the mplhep style.

    Args:
        ax: the axes to label.
        lumi_fb: the integrated luminosity in fb⁻¹ (None or 0: not shown).
        text: the text after the experiment name.
    """
    import mplhep

    lumi = f"{lumi_fb:g} fb$^{{-1}}$ (13 TeV)" if lumi_fb else None
    mplhep.label.exp_text(EXPERIMENT_LABEL, text, lumi=lumi, ax=ax, loc=1)


def save_figure(
    fig: Figure,
    path: str | os.PathLike[str],
    *,
    dpi: int = DEFAULT_DPI,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Save ``fig`` as PNG atomically and close it.

    Args:
        fig: the figure.
        path: the ``.png`` file.
        dpi: the resolution (dots per inch).
        provenance: a record for the sidecar ``<path>.provenance.json``.

    Returns:
        ``path``.
    """
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path, provenance=provenance) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return Path(path)
