"""Histogram conventions shared by every analysis stage: binning, normalisation, systematics,
the typed histogram set (:class:`HistSet`) and its writers (pickle, ROOT TH1s, pyhf JSON).

Conventions
-----------
* **Histograms** are :class:`hist.Hist` with :class:`hist.storage.Weight` (sum of weights and
  sum of squared weights, so the MC statistical uncertainty travels with them) and three
  axes: ``region`` (:class:`~hist.axis.StrCategory`), ``variation``
  (:class:`~hist.axis.StrCategory`: ``"nominal"``, ``"<syst>Up"``, ``"<syst>Down"``) and the
  observable (:data:`BINNING`). Both category axes are *fixed* (no growth), so a region or
  variation that no event reached is present and empty, never missing.
* **Normalisation** to a luminosity: each MC event carries its generator weight (times
  weights such as the b-tagging scale factors); a sample is scaled by
  ``σ × L / Σw`` (:func:`norm_factor`), with σ = the ``xsec_pb`` of the sample metadata (σ ×
  branching × filter efficiency, pb), L in fb⁻¹ (default :data:`DEFAULT_LUMI_FB` = 139) and
  Σw the sum of generator weights of *all* generated events of the sample (the ``Runs``
  trees), not only of those read. Scaling multiplies sums of weights by k and the variances
  by k².
* **Systematic variations** (names are the ROOT/pyhf names, without ``Up``/``Down``):

  ========================  =====================================================  ==========
  name                      what                                                   kind
  ========================  =====================================================  ==========
  ``btag_b/c/light``        b-tagging scale factors per truth flavour (event       weight
                            weights from per-jet SFs and efficiencies)
  ``photon_scale``          photon energy scale ±δ                                 kinematic
  ``photon_resolution``     photon energy resolution: up = extra smearing; down    kinematic
                            = up mirrored about nominal (:func:`mirror_down`)
  ``jet_scale``             jet energy scale ±δ (pT and mass)                      kinematic
  ``lumi``                  luminosity: normalisation only (pyhf ``normsys``)      normsys
  MC stat                   from the Weight storage variances (pyhf ``staterror``)  staterror
  ========================  =====================================================  ==========

* **A histogram set** (what the stages hand each other) is a :class:`HistSet`: the
  luminosity, whether it is normalised, the observables, regions, variations and
  systematics, and per sample a :class:`SampleHists` (``hists``: observable → Hist, σ, Σw,
  the normalisation factor, the event count, the :class:`Cutflow`, the input files and
  their format). On disk (:meth:`HistSet.write`) it is a pickled plain dict::

      {"kind": "hepline.hists", "version": 1, "lumi_fb": 139.0, "normalised": True,
       "observables": [...], "regions": [...], "variations": [...], "systematics": [...],
       "samples": {name: {"hists": {observable: Hist}, "xsec_pb", "sumw", "norm",
                          "n_events", "cutflow": {"steps", "raw", "sumw", "sumw2"} | None,
                          "files": [...], "format", "process"}},
       "provenance": {...}}

Command line (merge the per-sample selection outputs, normalise, write every format;
:func:`write_histograms`)::

    python -m analysis.stats.histograms --config workflows/config/default.yaml \\
        --output-dir results/hh_yybb/histograms results/hh_yybb/selection/*.pkl
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import os
import pickle
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hist
import numpy as np
from hist import Hist

from analysis.core.atomic import atomic_path, write_json, write_text
from analysis.core.errors import InputFileError
from analysis.core.provenance import provenance_record, write_root_provenance

if TYPE_CHECKING:
    from analysis.core.config import Config

log = logging.getLogger(__name__)

__all__ = [
    "BINNING",
    "DEFAULT_LUMI_FB",
    "HISTSET_KIND",
    "KINEMATIC_SYSTEMATICS",
    "MIRRORED_SYSTEMATICS",
    "SYSTEMATICS",
    "WEIGHT_SYSTEMATICS",
    "Cutflow",
    "CutflowColumn",
    "CutflowTable",
    "HistSet",
    "MissingVariationError",
    "SampleHists",
    "add_flat",
    "axis_for",
    "axis_stride",
    "fill_indexed",
    "flat_index",
    "make_hists",
    "mirror_down",
    "mirror_one_sided",
    "norm_factor",
    "root_name",
    "scale_hist",
    "variation_names",
    "write_histograms",
    "write_workspace",
]

PathLike = str | os.PathLike[str]

DEFAULT_LUMI_FB = 139.0
"""ATLAS full Run 2 (physics-reference §4); configurable per stage."""

HISTSET_KIND = "hepline.hists"

BINNING: dict[str, dict[str, Any]] = {
    # 0.5 GeV bins: fine enough for the DSCB fit of a ~1.5 GeV resolution; limits rebin.
    "m_yy": {"bins": 110, "range": [105.0, 160.0], "label": r"$m_{\gamma\gamma}$ [GeV]"},
    "m_bb": {"bins": 32, "range": [40.0, 200.0], "label": r"$m_{bb}$ [GeV]"},
    "m_star": {"bins": 44, "range": [250.0, 1350.0], "label": r"$m^{*}_{bb\gamma\gamma}$ [GeV]"},
}
"""Default binning of the HH → γγbb̄ observables; ``selection.hh_yybb.histograms.binning``
overrides it per observable (``{bins, range}`` or ``{edges}``)."""

WEIGHT_SYSTEMATICS = ("btag_b", "btag_c", "btag_light")
KINEMATIC_SYSTEMATICS = ("photon_scale", "photon_resolution", "jet_scale")
MIRRORED_SYSTEMATICS = ("photon_resolution",)
"""Systematics whose Down variation is the Up shift mirrored about nominal."""
SYSTEMATICS = WEIGHT_SYSTEMATICS + KINEMATIC_SYSTEMATICS


class MissingVariationError(KeyError):
    """A systematic variation a consumer needs is not in a histogram."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


# ---------------------------------------------------------------------------------------
# axes and booking
# ---------------------------------------------------------------------------------------
def variation_names(systematics: Iterable[str]) -> list[str]:
    """The variation axis labels of ``systematics``.

    Args:
        systematics: systematic names without ``Up``/``Down``.

    Returns:
        ``["nominal", "<s>Up", "<s>Down", ...]``.
    """
    out = ["nominal"]
    for s in systematics:
        out += [f"{s}Up", f"{s}Down"]
    return out


def axis_for(observable: str, binning: Mapping[str, Any] | None = None) -> hist.axis.Regular | hist.axis.Variable:
    """The observable axis: :data:`BINNING` with the overrides of ``binning`` applied.

    Args:
        observable: ``m_yy``, ``m_bb``, ``m_star`` or any name ``binning`` defines.
        binning: per observable ``{bins, range}`` (GeV) or ``{edges}`` (GeV), overriding
            :data:`BINNING`.

    Returns:
        A :class:`hist.axis.Regular` or :class:`hist.axis.Variable` named ``observable``.

    Raises:
        KeyError: no binning is known for ``observable``.
    """
    spec = dict(BINNING.get(observable, {}))
    if binning and observable in binning:
        over = dict(binning[observable])
        if "edges" in over:
            spec.pop("bins", None)
            spec.pop("range", None)
        spec.update(over)
    label = spec.get("label", observable)
    if "edges" in spec:
        return hist.axis.Variable(spec["edges"], name=observable, label=label)
    if "bins" not in spec:
        raise KeyError(f"no binning for observable {observable!r} (give {{bins, range}} or {{edges}})")
    lo, hi = spec["range"]
    return hist.axis.Regular(int(spec["bins"]), float(lo), float(hi), name=observable, label=label)


def make_hists(
    observables: Sequence[str],
    regions: Sequence[str],
    variations: Sequence[str],
    binning: Mapping[str, Any] | None = None,
) -> dict[str, Hist]:
    """Empty histograms of one sample.

    Args:
        observables: observable names (:func:`axis_for`).
        regions: labels of the (fixed) region axis.
        variations: labels of the (fixed) variation axis (:func:`variation_names`).
        binning: binning overrides (:func:`axis_for`).

    Returns:
        ``{observable: Hist(region, variation, observable)}`` with Weight storage.
    """
    return {
        obs: Hist(
            hist.axis.StrCategory(list(regions), name="region", growth=False),
            hist.axis.StrCategory(list(variations), name="variation", growth=False),
            axis_for(obs, binning),
            storage=hist.storage.Weight(),
        )
        for obs in observables
    }


def _weight_view(h: Hist) -> Any:
    view = h.view(flow=True)
    if getattr(view.dtype, "names", None) != ("value", "variance"):
        raise TypeError(f"indexed filling needs a Hist with Weight storage, not {h.storage_type.__name__}")
    return view


def flat_index(h: Hist, **coords: Any) -> np.ndarray:
    """Flat bin index into ``h.view(flow=True)`` of each entry.

    Args:
        h: a histogram with Weight storage.
        **coords: for each category axis the position of the category (an int, or an int
            array per entry, as from ``axis.index(label)``), for every other axis the values
            (under- and overflow go to the flow bins, as in ``fill``).

    Returns:
        int64 flat indices, one per entry.

    Raises:
        KeyError: an axis has no coordinate. IndexError: a category position is out of range.
    """
    shape = _weight_view(h).shape
    n = max((np.size(c) for c in coords.values()), default=0)
    flat = np.zeros(n, dtype=np.int64)
    for k, ax in enumerate(h.axes):
        if ax.name not in coords:
            raise KeyError(f"flat_index: no coordinate for axis {ax.name!r}")
        c = coords[ax.name]
        if isinstance(ax, (hist.axis.StrCategory, hist.axis.IntCategory)):
            idx = np.asarray(c, dtype=np.int64)  # categories: no underflow bin in the flow view
            if np.any((idx < 0) | (idx > len(ax))):
                raise IndexError(f"flat_index: category index out of range for axis {ax.name!r}")
        else:
            idx = np.asarray(ax.index(np.asarray(c, dtype=np.float64)), dtype=np.int64)
            if ax.traits.underflow:
                idx = idx + 1
            idx = np.clip(idx, 0, shape[k] - 1)
        flat = flat * shape[k] + idx
    return flat


def axis_stride(h: Hist, name: str) -> int:
    """Step of :func:`flat_index` between neighbouring bins of axis ``name``.

    Args:
        h: a histogram with Weight storage.
        name: the axis name.

    Returns:
        The stride in flat bins.
    """
    shape = _weight_view(h).shape
    k = list(h.axes.name).index(name)
    return int(np.prod(shape[k + 1:], dtype=np.int64))


def add_flat(h: Hist, flat: np.ndarray, weight: np.ndarray) -> None:
    """Add ``weight`` (and its square, to the variance) at flat bin indices ``flat``
    (:func:`flat_index`): one ``np.bincount`` per storage field.

    Args:
        h: a histogram with Weight storage, filled in place.
        flat: flat bin indices (:func:`flat_index`).
        weight: one weight per index.
    """
    view = _weight_view(h)
    w = np.asarray(weight, dtype=np.float64)
    size = int(np.prod(view.shape))
    view.value += np.bincount(flat, weights=w, minlength=size).reshape(view.shape)
    view.variance += np.bincount(flat, weights=w * w, minlength=size).reshape(view.shape)


def fill_indexed(h: Hist, weight: np.ndarray, **coords: Any) -> None:
    """``h.fill(**coords, weight=weight)`` with category axes given by position
    (:func:`flat_index`). Same result as ``fill`` with the labels (sums of weights and of
    squared weights per bin, flow bins included), without converting thousands of label
    strings per call. Only for Weight storage.

    Args:
        h: a histogram with Weight storage, filled in place.
        weight: one weight per entry.
        **coords: as for :func:`flat_index`.
    """
    add_flat(h, flat_index(h, **coords), weight)


# ---------------------------------------------------------------------------------------
# normalisation
# ---------------------------------------------------------------------------------------
def norm_factor(xsec_pb: float | None, sumw: float | None, lumi_fb: float = DEFAULT_LUMI_FB) -> float:
    """Events per unit generator weight: ``σ × L / Σw``.

    Args:
        xsec_pb: σ × branching × filter efficiency in pb (1 pb = 1000 fb).
        sumw: sum of generator weights of all generated events.
        lumi_fb: integrated luminosity in fb⁻¹.

    Returns:
        The factor k (events per unit weight).

    Raises:
        ValueError: σ is missing, negative or not finite, or Σw is not positive.
    """
    if xsec_pb is None or not math.isfinite(xsec_pb) or xsec_pb < 0:
        raise ValueError(f"cannot normalise: cross-section {xsec_pb!r} pb")
    if sumw is None or not math.isfinite(sumw) or sumw <= 0:
        raise ValueError(f"cannot normalise: sum of generator weights {sumw!r}")
    return float(xsec_pb) * 1000.0 * float(lumi_fb) / float(sumw)


def scale_hist(h: Hist, factor: float) -> Hist:
    """A copy of ``h`` with values × factor and variances × factor².

    Args:
        h: a histogram with Weight storage.
        factor: the scale factor.

    Returns:
        The scaled copy (``h`` is untouched).
    """
    out = h.copy()
    view: Any = out.view(flow=True)
    view.value *= factor
    view.variance *= factor * factor
    return out


def mirror_down(h: Hist, systematic: str) -> Hist:
    """Fill ``<syst>Down`` as nominal − (Up − nominal), clipped at 0 (variance: nominal's).

    For one-sided variations such as the photon resolution, where "less smearing than the
    detector" cannot be simulated. Works on any histogram with a ``variation`` axis.

    Args:
        h: a histogram with a ``variation`` axis holding nominal, Up and Down.
        systematic: the systematic name without ``Up``/``Down``.

    Returns:
        A copy with the Down variation replaced.
    """
    out = h.copy()
    ax = out.axes["variation"]
    i_nom, i_up, i_dn = (ax.index(v) for v in ("nominal", f"{systematic}Up", f"{systematic}Down"))
    vi = out.axes.name.index("variation")
    view: Any = out.view(flow=True)
    val = np.moveaxis(view.value, vi, 0)
    var = np.moveaxis(view.variance, vi, 0)
    val[i_dn] = np.clip(2.0 * val[i_nom] - val[i_up], 0.0, None)
    var[i_dn] = var[i_nom]
    return out


def mirror_one_sided(output: Mapping[str, Any]) -> Mapping[str, Any]:
    """A processor's output (``{dataset: {"hists": {observable: Hist}, ...}}``) with the Down
    variation of every one-sided systematic (:data:`MIRRORED_SYSTEMATICS`) mirrored about the
    nominal (:func:`mirror_down`), in place; histograms without the variation are left alone."""
    for entry in output.values():
        hists = entry["hists"]
        for obs in hists:
            for s in MIRRORED_SYSTEMATICS:
                if f"{s}Up" in list(hists[obs].axes["variation"]):
                    hists[obs] = mirror_down(hists[obs], s)
    return output


def root_name(region: str, sample: str, variation: str = "nominal") -> str:
    """The TH1 name of a region, sample and variation.

    Returns:
        ``{region}_{sample}`` for nominal, ``{region}_{sample}_{syst}Up/Down`` otherwise.
    """
    return f"{region}_{sample}" if variation == "nominal" else f"{region}_{sample}_{variation}"


# ---------------------------------------------------------------------------------------
# cutflows
# ---------------------------------------------------------------------------------------
@dataclass
class Cutflow:
    """Events of one sample after each selection step.

    ``raw``: MC events; ``sumw``/``sumw2``: sums of (squared) event weights; ``weighted``
    and ``weighted_err``: σ×L-normalised events and their MC-stat error, set by
    :meth:`HistSet.normalise` (None before).
    """

    steps: list[str]
    raw: list[int]
    sumw: list[float]
    sumw2: list[float]
    weighted: list[float] | None = None
    weighted_err: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The plain dict of the pickle layout (``weighted*`` only when set)."""
        out: dict[str, Any] = {"steps": self.steps, "raw": self.raw, "sumw": self.sumw, "sumw2": self.sumw2}
        if self.weighted is not None:
            out["weighted"] = self.weighted
        if self.weighted_err is not None:
            out["weighted_err"] = self.weighted_err
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cutflow:
        """The inverse of :meth:`to_dict`."""
        return cls(steps=list(data["steps"]), raw=list(data["raw"]), sumw=list(data["sumw"]),
                   sumw2=list(data["sumw2"]), weighted=data.get("weighted"), weighted_err=data.get("weighted_err"))


@dataclass(frozen=True)
class CutflowColumn:
    """One sample's column of a :class:`CutflowTable`.

    ``raw``: MC events per step; ``weighted``: σ×L-normalised events (normalised set) or the
    sum of weights (None if unknown); ``efficiency``: raw / raw of the first step.
    """

    raw: list[int]
    weighted: list[float] | None
    efficiency: list[float]

    def to_dict(self) -> dict[str, Any]:
        """``{"raw", "weighted", "efficiency"}``."""
        return {"raw": self.raw, "weighted": self.weighted, "efficiency": self.efficiency}


@dataclass(frozen=True)
class CutflowTable:
    """The cutflow of every sample of a histogram set (:meth:`HistSet.cutflow_table`).

    ``lumi_fb`` in fb⁻¹; ``normalised``: whether ``weighted`` holds σ×L-normalised events.
    """

    steps: list[str]
    samples: dict[str, CutflowColumn]
    lumi_fb: float | None
    normalised: bool

    def to_dict(self) -> dict[str, Any]:
        """The ``cutflow.json`` content: ``{"steps", "samples": {name: {"raw", "weighted",
        "efficiency"}}, "lumi_fb", "normalised"}``."""
        return {"steps": self.steps, "samples": {n: c.to_dict() for n, c in self.samples.items()},
                "lumi_fb": self.lumi_fb, "normalised": self.normalised}

    def markdown(self) -> str:
        """Two markdown tables (raw MC events; σ×L-weighted events) with one column per sample."""
        names = list(self.samples)
        if not names:
            return "_no cutflow: no sample was processed_\n"
        lines = ["### Raw MC events after each cut\n", "| cut | " + " | ".join(names) + " |",
                 "|---|" + "---:|" * len(names)]
        for i, step in enumerate(self.steps):
            lines.append(f"| {step} | " + " | ".join(str(self.samples[n].raw[i]) for n in names) + " |")
        unit = f"events in {self.lumi_fb:g} fb⁻¹" if self.normalised else "sum of weights"
        lines += ["", f"### Weighted ({unit}) after each cut\n", "| cut | " + " | ".join(names) + " |",
                  "|---|" + "---:|" * len(names)]
        for i, step in enumerate(self.steps):
            cells = []
            for n in names:
                w = self.samples[n].weighted
                cells.append("–" if w is None else f"{w[i]:.4g}")
            lines.append(f"| {step} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------
# the histogram set
# ---------------------------------------------------------------------------------------
@dataclass
class SampleHists:
    """The histograms of one sample and what normalising them needs.

    ``hists``: observable → ``Hist(region, variation, observable)`` (Weight storage);
    ``xsec_pb``: σ × B × filter efficiency in pb; ``sumw``: sum of generator weights of all
    generated events; ``norm``: the factor the histograms were scaled by (set by
    :meth:`HistSet.normalise`); ``n_events``: events read; ``files``/``format``: the inputs;
    ``process``: the generator process; ``is_data``: data are never scaled.
    """

    hists: dict[str, Hist]
    xsec_pb: float | None = None
    sumw: float | None = None
    n_events: int = 0
    cutflow: Cutflow | None = None
    files: list[str] = field(default_factory=list)
    format: str | None = None
    process: str | None = None
    norm: float | None = None
    is_data: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The plain dict of the pickle layout (``norm`` and ``is_data`` only when set)."""
        out: dict[str, Any] = {
            "hists": self.hists, "xsec_pb": self.xsec_pb, "sumw": self.sumw, "n_events": self.n_events,
            "files": self.files, "format": self.format, "process": self.process,
            "cutflow": None if self.cutflow is None else self.cutflow.to_dict(),
        }
        if self.norm is not None:
            out["norm"] = self.norm
        if self.is_data:
            out["is_data"] = True
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SampleHists:
        """The inverse of :meth:`to_dict` (absent keys take their defaults)."""
        cf = data.get("cutflow")
        return cls(hists=dict(data["hists"]), xsec_pb=data.get("xsec_pb"), sumw=data.get("sumw"),
                   n_events=data.get("n_events", 0), cutflow=Cutflow.from_dict(cf) if cf else None,
                   files=list(data.get("files", [])), format=data.get("format"), process=data.get("process"),
                   norm=data.get("norm"), is_data=bool(data.get("is_data", False)))


@dataclass
class HistSet:
    """Histograms of several samples in one convention: what the stages hand each other.

    ``lumi_fb``: the luminosity (fb⁻¹) the set is (or will be) normalised to;
    ``normalised``: whether every MC sample is scaled to σ × L; ``observables``,
    ``regions``, ``variations``, ``systematics``: the axes every sample's histograms share;
    ``samples``: name → :class:`SampleHists`; ``provenance``: what made it (stage details).
    """

    lumi_fb: float = DEFAULT_LUMI_FB
    normalised: bool = False
    observables: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    variations: list[str] = field(default_factory=list)
    systematics: list[str] = field(default_factory=list)
    samples: dict[str, SampleHists] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    version: int = 1

    # -- access ---------------------------------------------------------------------------
    def hist(self, sample: str, observable: str, region: str, variation: str = "nominal") -> Hist:
        """The 1-D histogram of one sample, observable, region and variation.

        Raises:
            KeyError: the sample or observable is not in the set, or the region or variation
                is not on the axes.
        """
        if sample not in self.samples:
            raise KeyError(f"sample {sample!r} is not in the histogram set (it has: {', '.join(self.samples)})")
        h1: Hist = self.samples[sample].hists[observable][{"region": region, "variation": variation}]  # type: ignore[assignment]
        return h1

    def hists_of(self, observable: str) -> dict[str, Hist]:
        """``{sample: Hist(region, variation, observable)}`` of the samples that have it."""
        return {n: s.hists[observable] for n, s in self.samples.items() if observable in s.hists}

    # -- merging and normalisation --------------------------------------------------------
    @classmethod
    def merged(cls, sets: Iterable[HistSet]) -> HistSet:
        """Merge histogram sets of disjoint samples.

        A sample in two sets is summed (histograms, events, files, Σw, cutflows) only if
        neither set is normalised: two selection jobs over different shards of one sample.
        The inputs are not modified.

        Args:
            sets: the sets, with the same ``normalised``, observables, regions and variations.

        Returns:
            A new set (the first set's luminosity, systematics and provenance).

        Raises:
            ValueError: no set, sets that differ, or a sample in two normalised sets.
        """
        out: HistSet | None = None
        for hs in sets:
            if not isinstance(hs, HistSet):
                raise ValueError(f"not a hepline histogram set: {type(hs).__name__}")
            if out is None:
                out = copy.deepcopy(hs)
                continue
            for key in ("normalised", "observables", "regions", "variations"):
                if getattr(out, key) != getattr(hs, key):
                    raise ValueError(f"cannot merge histogram sets with different {key}")
            for name, entry in hs.samples.items():
                if name not in out.samples:
                    out.samples[name] = copy.deepcopy(entry)
                    continue
                if out.normalised:
                    raise ValueError(f"sample {name!r} appears in two normalised histogram sets")
                mine = out.samples[name]
                for obs, h in entry.hists.items():
                    mine.hists[obs] = mine.hists[obs] + h
                mine.n_events = mine.n_events + entry.n_events
                mine.files = list(mine.files) + list(entry.files)
                if mine.sumw is not None and entry.sumw is not None:
                    mine.sumw += entry.sumw
                if mine.cutflow is not None and entry.cutflow is not None:
                    a, b = mine.cutflow, entry.cutflow
                    a.raw = [x + y for x, y in zip(a.raw, b.raw, strict=True)]
                    a.sumw = [x + y for x, y in zip(a.sumw, b.sumw, strict=True)]
                    a.sumw2 = [x + y for x, y in zip(a.sumw2, b.sumw2, strict=True)]
        if out is None:
            raise ValueError("no histogram sets to merge")
        return out

    def merge(self, others: Iterable[HistSet]) -> HistSet:
        """:meth:`merged` of this set and ``others`` (a new set)."""
        return HistSet.merged([self, *others])

    def normalise(self, lumi_fb: float | None = None) -> HistSet:
        """A normalised copy: every MC sample scaled by :func:`norm_factor` (cutflows too).

        A set already normalised is returned as a copy; data samples get ``norm`` 1.

        Args:
            lumi_fb: the luminosity in fb⁻¹ (default: the set's), stored in the copy.

        Returns:
            The normalised copy (this set is untouched).

        Raises:
            ValueError: a sample without σ or Σw (naming it), or a set already normalised to
                another luminosity.
        """
        lumi = float(lumi_fb if lumi_fb is not None else self.lumi_fb)
        out = copy.deepcopy(self)
        if self.normalised:
            if lumi_fb is not None and abs(lumi - self.lumi_fb) > 1e-9:
                raise ValueError("histogram set already normalised to a different luminosity")
            return out
        for name, entry in out.samples.items():
            if entry.is_data:
                entry.norm = 1.0
                continue
            try:
                k = norm_factor(entry.xsec_pb, entry.sumw, lumi)
            except ValueError as exc:
                raise ValueError(f"sample {name!r}: {exc}") from exc
            entry.norm = k
            entry.hists = {obs: scale_hist(h, k) for obs, h in entry.hists.items()}
            cf = entry.cutflow
            if cf is not None:
                cf.weighted = [k * float(s) for s in cf.sumw]
                cf.weighted_err = [k * math.sqrt(max(float(s2), 0.0)) for s2 in cf.sumw2]
        out.normalised = True
        out.lumi_fb = lumi
        return out

    # -- cutflow --------------------------------------------------------------------------
    def cutflow_table(self) -> CutflowTable:
        """The cutflow table of the samples that have a cutflow: weighted = σ×L-normalised
        events when the set is normalised, else the raw sum of weights.

        Raises:
            ValueError: two samples with different cutflow steps.
        """
        steps: list[str] | None = None
        samples: dict[str, CutflowColumn] = {}
        for name, entry in self.samples.items():
            cf = entry.cutflow
            if cf is None:
                continue
            if steps is None:
                steps = list(cf.steps)
            elif list(cf.steps) != steps:
                raise ValueError(f"sample {name!r} has a cutflow with different steps")
            weighted = cf.weighted if self.normalised else list(map(float, cf.sumw))
            first = float(cf.raw[0]) if cf.raw else 0.0
            samples[name] = CutflowColumn(
                raw=[int(x) for x in cf.raw],
                weighted=[float(x) for x in weighted] if weighted is not None else None,
                efficiency=[float(x) / first if first else 0.0 for x in cf.raw],
            )
        return CutflowTable(steps=steps or [], samples=samples, lumi_fb=self.lumi_fb, normalised=bool(self.normalised))

    # -- files ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The plain dict of the pickle layout (module docstring); histograms are shared, not copied."""
        return {
            "kind": HISTSET_KIND, "version": self.version, "lumi_fb": self.lumi_fb, "normalised": self.normalised,
            "observables": self.observables, "regions": self.regions, "variations": self.variations,
            "samples": {n: s.to_dict() for n, s in self.samples.items()}, "provenance": self.provenance,
            "systematics": self.systematics,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: PathLike = "<histogram set>") -> HistSet:
        """The inverse of :meth:`to_dict`.

        Raises:
            InputFileError: ``data`` is not a hepline histogram set (naming ``source``).
        """
        if not isinstance(data, Mapping) or data.get("kind") != HISTSET_KIND:
            kind = data.get("kind") if isinstance(data, Mapping) else type(data).__name__
            raise InputFileError(source, f"not a hepline histogram set (kind {kind!r}, expected {HISTSET_KIND!r})")
        return cls(
            lumi_fb=float(data.get("lumi_fb", DEFAULT_LUMI_FB)), normalised=bool(data.get("normalised", False)),
            observables=list(data.get("observables", [])), regions=list(data.get("regions", [])),
            variations=list(data.get("variations", [])), systematics=list(data.get("systematics", [])),
            samples={n: SampleHists.from_dict(s) for n, s in data.get("samples", {}).items()},
            provenance=dict(data.get("provenance", {})), version=int(data.get("version", 1)),
        )

    def write(self, path: PathLike, *, provenance: Mapping[str, Any] | None = None) -> Path:
        """Pickle the set (the dict of :meth:`to_dict`) atomically.

        Args:
            path: the ``.pkl`` file.
            provenance: a record for the sidecar ``<path>.provenance.json``.

        Returns:
            ``path``.
        """
        with atomic_path(path, provenance=provenance) as tmp, open(tmp, "wb") as f:
            pickle.dump(self.to_dict(), f, protocol=pickle.HIGHEST_PROTOCOL)
        return Path(path)

    @classmethod
    def read(cls, path: PathLike) -> HistSet:
        """Read a set written by :meth:`write`.

        Raises:
            InputFileError: the file is missing, unreadable or not a hepline histogram set.
        """
        p = Path(path)
        if not p.is_file():
            raise InputFileError(p, "histogram file not found")
        try:
            with open(p, "rb") as f:
                obj = pickle.load(f)
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as exc:
            raise InputFileError(p, f"not a readable histogram pickle ({type(exc).__name__}: {exc})") from exc
        return cls.from_dict(obj, source=p)

    def write_root(
        self,
        path: PathLike,
        observables: Sequence[str] | None = None,
        *,
        provenance: Mapping[str, Any] | None = None,
    ) -> Path:
        """One TH1 per observable, region, sample and variation, written atomically with uproot.

        Layout: a directory per observable, holding TH1s named :func:`root_name`, e.g.
        ``m_yy/2tag_loose_lowmstar_yy`` and ``m_yy/2tag_loose_lowmstar_yy_jet_scaleUp``. The
        TH1 errors are sqrt(Σw²). With ``provenance``, the record is the top-level
        ``TObjString`` ``hepline_provenance`` (:data:`analysis.core.provenance.PROVENANCE_KEY`), the
        only key that is not an observable directory. It is written with the histograms, not by
        :func:`analysis.core.provenance.embed_provenance`: uproot 5.7's ``uproot.update`` cannot
        test ``key in file`` on a file with directories (``AttributeError``).

        Args:
            path: the ``.root`` file.
            observables: the observables to write (default: all of the set's).
            provenance: the record to store in the file.

        Returns:
            ``path``.
        """
        import uproot

        obs_list = list(observables or self.observables)
        with atomic_path(path) as tmp, uproot.recreate(tmp) as f:
            for sample, entry in self.samples.items():
                for obs in obs_list:
                    h = entry.hists[obs]
                    for region in h.axes["region"]:
                        for variation in h.axes["variation"]:
                            f[f"{obs}/{root_name(region, sample, variation)}"] = h[
                                {"region": region, "variation": variation}
                            ]
            if provenance is not None:
                write_root_provenance(f, provenance)
        return Path(path)


def write_workspace(path: PathLike, spec: Mapping[str, Any], *, provenance: Mapping[str, Any] | None = None) -> Path:
    """Validate ``spec`` against the pyhf workspace schema, then write it atomically.

    Args:
        path: the ``.json`` file.
        spec: a pyhf workspace specification.
        provenance: a record for the sidecar ``<path>.provenance.json``.

    Returns:
        ``path``.

    Raises:
        pyhf.exceptions.InvalidSpecification: ``spec`` is not a valid workspace (nothing written).
    """
    import pyhf

    pyhf.Workspace(dict(spec))  # raises pyhf.exceptions.InvalidSpecification
    write_json(path, dict(spec), provenance=provenance)
    return Path(path)


# ---------------------------------------------------------------------------------------
# the histograms stage
# ---------------------------------------------------------------------------------------
def write_histograms(
    config: Config,
    inputs: Sequence[PathLike],
    output_dir: PathLike,
    *,
    lumi_fb: float | None = None,
) -> HistSet:
    """Merge the per-job histogram sets, normalise them and write every format.

    Writes ``hists.pkl`` (:meth:`HistSet.write`), ``hists.root`` (:meth:`HistSet.write_root`),
    ``cutflow.json`` and ``cutflow.md`` into ``output_dir``, each with the ``histograms``
    provenance record.

    Args:
        config: the whole configuration (``selection.hh_yybb.histograms.lumi_fb``; hashed
            into the record).
        inputs: histogram-set pickles, one per selection job.
        output_dir: the output folder.
        lumi_fb: overrides the configured luminosity (fb⁻¹).

    Returns:
        The normalised, merged set.
    """
    lumi = lumi_fb or config.selection.hh_yybb.histograms.lumi_fb
    rec = provenance_record(stage="histograms", config=config, inputs=list(inputs),
                            extra={"lumi_fb": lumi})
    hs = HistSet.merged(HistSet.read(p) for p in inputs).normalise(lumi)
    out = Path(output_dir)
    hs.write(out / "hists.pkl", provenance=rec)
    hs.write_root(out / "hists.root", provenance=rec)
    table = hs.cutflow_table()
    write_json(out / "cutflow.json", table.to_dict(), provenance=rec)
    md = table.markdown()
    write_text(out / "cutflow.md", md, provenance=rec)
    log.info("histograms of %d samples normalised to %g fb^-1 -> %s\n%s", len(hs.samples), lumi, out, md)
    return hs
