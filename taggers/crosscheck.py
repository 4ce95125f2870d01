"""The rejections of hepline's taggers recomputed by the ATLAS FTAG tools from the export.

:func:`crosscheck` reads ``test_scores.h5`` (:mod:`taggers.evaluate`, the FTAG conventions of
:mod:`taggers.ftag`) with the tools' own readers and metrics, with no conversion in between,
and compares their light- and c-jet rejections with those of ``working_points.json``:

* ``ftag``: ``ftag.hdf5.H5Reader`` loads the jets; ``ftag.utils.get_discriminant`` builds
  D = ln(p_b / (f_c p_c + (1 − f_c) p_u)) from ``<tagger>_p{b,c,u,tau}`` with the f_c of the
  working-point file (MV2: ``mv2_discriminant``); ``ftag.utils.calculate_rejection`` gives the
  rejection (a) at hepline's cut (``cut_value``) and (b) at the b-efficiency of the working
  point, with ftag's own cut (a weighted percentile of the b-jet discriminant);
* ``puma`` (when installed): ``puma.hlplots.Results.load_taggers_from_file`` loads each
  tagger with its default settings (all four probabilities; MV2 has none and is skipped) and
  ``Tagger.discriminant`` gives D; the rejection at hepline's cut (unweighted: puma's Results
  take no weights; the test split's weights are 1).

``hepline taggers crosscheck --scores test_scores.h5 --working-points working_points.json``
prints the table. The tools need the ``ftag`` extra (``pip install 'hepline[ftag]'``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis.core.atomic import write_json
from analysis.core.errors import HeplineError, InputFileError, WorkingPointError

__all__ = ["CrossCheck", "RejectionCheck", "crosscheck"]

_LABEL = "HadronConeExclTruthLabelID"
_CODES = {"b": 5, "c": 4, "light": 0}


@dataclass(frozen=True)
class RejectionCheck:
    """One rejection (tagger, working point, background flavour) by hepline and the tools.

    Attributes:
        hepline: the rejection in ``working_points.json``.
        ftag_at_cut: ftag's, at hepline's cut.
        ftag_at_efficiency: ftag's, with ftag's own cut at the nominal b efficiency.
        puma_at_cut: puma's (its Tagger's discriminant), at hepline's cut; ``None``: not run.
        lower_limit: no background jet passes hepline's cut: hepline's value is the lower
            limit N (the jets), the tools' is infinite.
    """

    tagger: str
    wp: str
    flavour: str
    cut: float
    hepline: float
    ftag_at_cut: float
    ftag_at_efficiency: float
    puma_at_cut: float | None
    lower_limit: bool = False

    def agrees(self, tool: float | None) -> bool:
        """Whether a tool's rejection at hepline's cut prints as hepline's (or both say that
        no background jet passes)."""
        if tool is None:
            return True
        if self.lower_limit:
            return math.isinf(tool)
        return _printed(tool) == _printed(self.hepline)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (infinite rejections as None)."""
        def fin(x: float | None) -> float | None:
            return x if x is None or math.isfinite(x) else None

        return {"tagger": self.tagger, "wp": self.wp, "flavour": self.flavour, "cut": self.cut,
                "hepline": self.hepline, "hepline_lower_limit": self.lower_limit,
                "ftag_at_cut": fin(self.ftag_at_cut), "ftag_at_efficiency": fin(self.ftag_at_efficiency),
                "puma_at_cut": fin(self.puma_at_cut)}


def _printed(x: float | None, lower_limit: bool = False) -> str:
    """The precision of docs/taggers-results.md: 4 significant digits; ``inf``: no jet passes."""
    if x is None:
        return "n/a"
    if not math.isfinite(x):
        return "inf"
    return f"> {x:.4g}" if lower_limit else f"{x:.4g}"


@dataclass
class CrossCheck:
    """The comparison of :func:`crosscheck`.

    Attributes:
        scores_file, working_points_file: the inputs.
        rows: one per tagger, working point and background flavour.
        versions: the tools' versions.
    """

    scores_file: str
    working_points_file: str
    rows: list[RejectionCheck] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def equal_at_cut(self) -> bool:
        """Whether every tool's rejection at hepline's cut prints as hepline's (4 digits)."""
        return all(r.agrees(r.ftag_at_cut) and r.agrees(r.puma_at_cut) for r in self.rows)

    def table(self) -> str:
        """Markdown table (4 significant digits)."""
        lines = [("| tagger | WP | background | hepline | ftag (hepline's cut) | puma (hepline's cut) "
                  "| ftag (own cut at the WP's efficiency) |"), "|---|---|---|---|---|---|---|"]
        for r in self.rows:
            lines.append(f"| {r.tagger} | {r.wp} | {r.flavour} | {_printed(r.hepline, r.lower_limit)} "
                         f"| {_printed(r.ftag_at_cut)} "
                         f"| {_printed(r.puma_at_cut)} | {_printed(r.ftag_at_efficiency)} |")
        tools = ", ".join(f"{k} {v}" for k, v in self.versions.items())
        lines.append(f"\nequal to the printed precision at hepline's cut: {self.equal_at_cut} ({tools}; "
                     "'> N': no background jet passes, a lower limit; 'inf': the same for the tools)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"scores_file": self.scores_file, "working_points_file": self.working_points_file,
                "versions": dict(self.versions), "equal_at_cut": self.equal_at_cut,
                "rows": [r.to_dict() for r in self.rows]}


def _rejection_at_cut(d: np.ndarray, label: np.ndarray, w: np.ndarray, flavour: str, cut: float) -> float:
    from ftag.utils import calculate_rejection

    is_b, bkg = label == _CODES["b"], label == _CODES[flavour]
    # one-element lists: ftag 0.2's save_divide cannot return a scalar under numpy >= 2.4
    rej = calculate_rejection(d[is_b], d[bkg], cut_value=[cut], sig_weights=w[is_b], bkg_weights=w[bkg])
    return float(np.asarray(rej).ravel()[0])


def crosscheck(
    scores: str | os.PathLike[str],
    working_points: str | os.PathLike[str],
    *,
    output: str | os.PathLike[str] | None = None,
    use_puma: bool = True,
) -> CrossCheck:
    """Recompute the rejections of ``working_points`` from ``scores`` with ftag (and puma).

    Args:
        scores: ``test_scores.h5`` of ``taggers evaluate``.
        working_points: the ``working_points.json`` of the same evaluation.
        output: write :meth:`CrossCheck.to_dict` there (JSON), if given.
        use_puma: also with puma, when it is installed.

    Returns:
        The :class:`CrossCheck`.

    Raises:
        HeplineError: ftag (atlas-ftag-tools) is not installed.
        WorkingPointError: the working-point file is not one.
        InputFileError: the scores file lacks a tagger's outputs.
    """
    try:
        import ftag
        from ftag import Flavours
        from ftag.hdf5 import H5Reader
        from ftag.utils import calculate_rejection, get_discriminant
    except ImportError as exc:
        raise HeplineError(f"the cross-check needs atlas-ftag-tools ({exc}): pip install 'hepline[ftag]'") from exc

    wp_path, sc_path = os.fspath(working_points), os.fspath(scores)
    try:
        data = json.loads(Path(wp_path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise WorkingPointError(f"{wp_path}: cannot read the working-point file ({exc})") from exc
    taggers: Mapping[str, Any] = data.get("taggers") if isinstance(data, Mapping) else None  # type: ignore[assignment]
    if not isinstance(taggers, Mapping):
        raise WorkingPointError(f"{wp_path}: no 'taggers' mapping (not a working-point file)")
    import h5py

    with h5py.File(sc_path, "r") as f:
        have = set(f["jets"].dtype.names or ())
    columns = {_LABEL, "weight"}
    probs = {"pb", "pc", "pu", "ptau"}
    for t in taggers:
        need = {"mv2_discriminant"} if t == "mv2" else {f"{t}_{p}" for p in probs}
        missing = sorted(need - have)
        if missing:
            raise InputFileError(sc_path, f"jets lacks {missing} (the outputs of tagger {t})")
        columns |= need
    jets = H5Reader(sc_path, shuffle=False, precision="full").load({"jets": sorted(columns)})["jets"]
    label = np.asarray(jets[_LABEL])
    w = np.asarray(jets["weight"], dtype=np.float64)
    flavours = Flavours.by_category("single-btag")
    result = CrossCheck(scores_file=sc_path, working_points_file=wp_path, versions={"ftag": ftag.__version__})
    puma_discs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if use_puma:
        puma_discs = _puma_discriminants(sc_path, taggers, result.versions)
    for t, entry in taggers.items():
        if t == "mv2":
            d = np.asarray(jets["mv2_discriminant"], dtype=np.float64)
        else:
            fc = float(entry["fc"])
            d = get_discriminant(jets, t, Flavours["bjets"], flavours, {"fc": fc, "fu": 1.0 - fc, "ftau": 0.0})
        is_b = label == _CODES["b"]
        for wp, point in entry["working_points"].items():
            cut = float(point["cut"])
            for fl in ("light", "c"):
                bkg = label == _CODES[fl]
                own_rej = calculate_rejection(d[is_b], d[bkg], target_eff=[float(point["b_efficiency"])],
                                              sig_weights=w[is_b], bkg_weights=w[bkg])
                own = float(np.asarray(own_rej).ravel()[0])
                pd = puma_discs.get(t)
                result.rows.append(RejectionCheck(
                    tagger=t, wp=wp, flavour=fl, cut=cut, hepline=float(point[f"{fl}_rejection"]),
                    ftag_at_cut=_rejection_at_cut(d, label, w, fl, cut), ftag_at_efficiency=own,
                    puma_at_cut=None if pd is None else _rejection_at_cut(pd[0], pd[1], np.ones(pd[1].size), fl, cut),
                    lower_limit=bool(point.get(f"{fl}_rejection_lower_limit", False)),
                ))
    if output is not None:
        write_json(output, result.to_dict())
    return result


def _puma_discriminants(
    path: str, taggers: Mapping[str, Any], versions: dict[str, str]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``(D, label)`` of every tagger with probabilities, loaded and computed by puma's
    defaults (puma's own jet order; unweighted: its Results take no weights)."""
    try:
        import puma
        from puma.hlplots import Results, Tagger
    except ImportError:
        return {}
    versions["puma"] = puma.__version__
    results = Results(signal="bjets", sample="ttbar", perf_vars="pt")
    loaded = [Tagger(t, fxs={"fc": float(e["fc"]), "fu": 1.0 - float(e["fc"]), "ftau": 0.0},
                     output_flavours=["bjets", "cjets", "ujets", "taujets"])
              for t, e in taggers.items() if t != "mv2"]
    results.load_taggers_from_file(loaded, path)
    return {tg.name: (np.asarray(tg.discriminant("bjets"), dtype=np.float64),
                      np.asarray(tg.labels[_LABEL]))
            for tg in loaded}
