"""HH → γγbb̄ event selection: a coffea processor, its cutflow and σ-weighted histograms.

ATLAS-style (physics-reference §4; arXiv:1807.04873 and 2112.11876), every cut from the
``selection`` config section (:class:`~analysis.core.config.SelectionConfig`; schema
``analysis/core/config/schema/schema.d/selection.yaml``):

1. ``two_photons``: ≥ 2 photons passing acceptance (pT > 25 GeV, |η| < 2.37 outside
   1.37–1.52), identification and isolation (hepline: ``isTight``, isoCalo/E_T < 0.065,
   isoTrack/E_T < 0.05); the two leading ones form the diphoton;
2. ``photon_pt_over_myy``: E_T/m_γγ > 0.35 and > 0.25;
3. ``myy_window``: 105 < m_γγ < 160 GeV;
4. ``lepton_veto``: no isolated e/μ (leptons within ΔR < 0.4 of a photon removed first);
5. ``two_jets``: ≥ 2 jets with pT > 25 GeV, |η| < 2.5, removed within ΔR < 0.4 of the photons
   (and within 0.2 of a selected lepton);
6. ``max_central_jets``: fewer than 6 central jets;
7. ``btag_1or2``: 2-tag (≥ 2 jets at the 70 % WP) or else 1-tag (a jet at the 60 % WP). The
   two b-jet candidates are the two leading tagged jets (2-tag), or the tagged jet and the
   leading other jet (1-tag).

Categories (2018 style, ×2021 m* split): ``{2tag,1tag}_{loose,tight}_{lowmstar,highmstar}``
with loose: j1 > 40, j2 > 25, 80 < m_bb < 140 GeV; tight: j1 > 100, j2 > 30, 90 < m_bb < 140
GeV; m* = m_bbγγ − m_bb − m_γγ + 250 GeV split at 350 GeV (tight ⊂ loose: they are alternative
selections, as in 2018, not exclusive categories). Resonant mode: ``res_{2tag,1tag}_{loose,
tight}`` with |m_γγ − 125| < 4.7 GeV; its observable is m*. Two inclusive regions are also
filled: ``diphoton`` (after step 3) and ``pretag`` (after step 6, two leading jets).

b-tagging: the cut values come only from the taggers stage's working-point file
(:class:`WorkingPoints`; hepline ntuples decorated with ``Jet_btag_<tagger>``, or raw hepline
ntuples with the trained taggers given to :func:`run_selection` as ``models``, which computes
the discriminant in the processor) or, for CMS NanoAOD, from the config (``Jet_btagDeepFlavB``,
2018 UL DeepJet medium 0.2783 / tight 0.7100). A file that lacks the tagger or WP, or names a
branch the input does not have, raises :class:`WorkingPointError`.

Systematic variations (``analysis.stats.histograms``): b-tag SFs per flavour (weights), photon
energy scale and resolution and jet energy scale (the selection is rerun on shifted
objects). Output: a histogram set (:class:`analysis.stats.histograms.HistSet`) with, per
sample, un-normalised ``Hist(region, variation, observable)`` of m_γγ, m_bb, m* [GeV], the
cutflow (raw and weighted counts after each cut), σ [pb] and Σw.

Data flow: :func:`run_selection` (files and a :class:`~analysis.core.config.Config` in, a
:class:`SelectionResult` out, nothing written) and :func:`select`, the I/O function of
``hepline select`` (writes the histogram set, the cutflow JSON/markdown and the metrics, each
with the stage's provenance record)::

    hepline select --config workflows/config/default.yaml \\
        --working-points results/taggers/working_points.json \\
        --output results/hh_yybb/selection/yy.pkl results/decorated/yy/yy_*.root
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np
from coffea import processor
from coffea.analysis_tools import Weights

from analysis.core.atomic import write_json, write_text
from analysis.core.config import Config, RunnerConfig, SelectionConfig, config_hash
from analysis.core.config.selection import CmsBTagConfig, ObjectsHepline, ObjectsNanoaod, SelectionHhYybb
from analysis.core.errors import InputError, WorkingPointError
from analysis.core.format import combined_xsec
from analysis.core.provenance import provenance_record
from analysis.io.ingest import Fileset, InputFileError, detect_format, form_filter, read_metadata
from analysis.io.runner import RunMetrics, run_processor
from analysis.stats import histfill as HF
from analysis.stats import histograms as H
from selections import objects as O
from selections.hh_yybb import kernel as K
from selections.hh_yybb import shifted as KS
from selections.hh_yybb.packed import PackedSelection, packed_dtype

if TYPE_CHECKING:
    from taggers.models import TaggerModels

log = logging.getLogger(__name__)

__all__ = [
    "CUTFLOW_STEPS",
    "OBSERVABLES",
    "REGIONS",
    "SEQUENTIAL_STEPS",
    "STAGE",
    "SUPPORTED_FORMATS",
    "BTagSpec",
    "FlatCollection",
    "HHyybbProcessor",
    "SelectionResult",
    "SelectionSummary",
    "TaggerWorkingPoints",
    "WorkingPoint",
    "WorkingPointError",
    "WorkingPoints",
    "btag_spec",
    "cutflow_report",
    "distinct_count",
    "expects_compiled_engine",
    "load_working_points",
    "needed_branches",
    "object_map",
    "run_selection",
    "sample_fileset",
    "select",
    "selection_runner",
    "truth_tag_rows",
]

SEQUENTIAL_STEPS = (
    "all",
    "two_photons",
    "photon_pt_over_myy",
    "myy_window",
    "lepton_veto",
    "two_jets",
    "max_central_jets",
    "btag_1or2",
)
"""The sequential cuts of the cutflow, in order."""
TAGS = ("2tag", "1tag")
KINEMATIC = ("loose", "tight")
MSTAR = ("lowmstar", "highmstar")
NONRES_REGIONS = tuple(f"{t}_{k}_{m}" for t in TAGS for k in KINEMATIC for m in MSTAR)
RES_REGIONS = tuple(f"res_{t}_{k}" for t in TAGS for k in KINEMATIC)
REGIONS = ("diphoton", "pretag", *NONRES_REGIONS, *RES_REGIONS)
"""The region axis of the histograms, in this order."""
assert len(REGIONS) == KS.N_REGION_BITS  # the region bits of selections.hh_yybb.shifted, in this order
CUTFLOW_STEPS = (*SEQUENTIAL_STEPS, *TAGS, *NONRES_REGIONS, *RES_REGIONS)
"""Rows of the cutflow: the sequential cuts, then the tag categories and every region."""
OBSERVABLES = ("m_yy", "m_bb", "m_star")
"""The histogrammed observables [GeV]."""
SUPPORTED_FORMATS = ("hepline", "nanoaod")
"""Input formats the selection reads (the keys of ``selection.objects``)."""
#: what the ``select`` stage's outputs record as their stage, and the histogram set's summary
STAGE = "hh_yybb.select"
SUMMARY_STAGE = "selections.hh_yybb.processor"

ObjectMap = ObjectsHepline | ObjectsNanoaod


def object_map(selection: SelectionConfig, fmt: str) -> ObjectMap:
    """The object mapping of input format ``fmt`` (``selection.objects.<fmt>``)."""
    if fmt == "hepline":
        return selection.objects.hepline
    if fmt == "nanoaod":
        return selection.objects.nanoaod
    raise InputError(f"HH -> yybb selection reads {SUPPORTED_FORMATS} files, not {fmt!r}")


# ---------------------------------------------------------------------------------------
# working points
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkingPoint:
    """One working point of one tagger: its cut and MC performance (taggers stage).

    Attributes:
        cut: the discriminant cut (``Jet_btag_<tagger> > cut`` is tagged).
        b_efficiency: b-jet efficiency.
        c_rejection, light_rejection: 1 / efficiency of c and light jets.
    """

    cut: float
    b_efficiency: float
    c_rejection: float
    light_rejection: float

    @property
    def efficiencies(self) -> dict[str, float]:
        """MC tagging efficiencies ``{"b", "c", "light"}`` (c, light: 1 / rejection)."""
        return {"b": self.b_efficiency, "c": 1.0 / self.c_rejection, "light": 1.0 / self.light_rejection}


@dataclass(frozen=True)
class TaggerWorkingPoints:
    """One tagger's entry of a working-point file (``taggers.<tagger>``).

    Attributes:
        tagger: the tagger's name (``dl1``, ``mv2``, ...).
        variable: the branch its cuts apply to (``Jet_btag_<tagger>``), as the file names it.
        points: the working-point entries by name (``"70"``), as in the file; read one with
            :meth:`point` (checked then, so a file's unused entries are not).
        efficiency_vs_pt: the per-pT-bin efficiencies (``pt_edges_gev``, ``working_points``,
            optionally ``jets``), if the file has them.
        source: the file (errors name it).
    """

    tagger: str
    variable: str | None
    points: Mapping[str, Any]
    efficiency_vs_pt: Mapping[str, Any] | None
    source: str

    @property
    def where(self) -> str:
        """``<file>: taggers.<tagger>``, the prefix of this entry's error messages."""
        return f"{self.source}: taggers.{self.tagger}"

    def point(self, name: str) -> WorkingPoint:
        """The working point ``name``, checked (numbers, finite, non-zero rejections).

        Raises:
            WorkingPointError: the entry is missing or a value is not a finite number
                (naming the file and the key).
        """
        if name not in self.points:
            raise WorkingPointError(f"{self.where}.working_points has no working point {name!r} "
                                    f"(it has: {', '.join(sorted(self.points)) or 'none'})")
        entry = self.points[name]
        values: dict[str, float] = {}
        for key in ("cut", "b_efficiency", "c_rejection", "light_rejection"):
            raw = entry.get(key) if isinstance(entry, Mapping) else None
            try:
                values[key] = float(raw)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise WorkingPointError(f"{self.where}.working_points.{name}.{key}: expected a number, "
                                        f"got {raw!r}") from None
            if not math.isfinite(values[key]):
                raise WorkingPointError(f"{self.where}.working_points.{name}.{key}: not finite ({raw!r})")
        for key in ("c_rejection", "light_rejection"):
            if values[key] == 0.0:
                raise WorkingPointError(f"{self.where}.working_points.{name}.{key}: must not be 0")
        return WorkingPoint(**values)


@dataclass(frozen=True)
class WorkingPoints:
    """The taggers stage's working-point file (``working_points.json``), or its content.

    Attributes:
        taggers: per tagger, its entry (:class:`TaggerWorkingPoints`).
        source: the file, or ``<in-memory working points>``.
    """

    taggers: Mapping[str, TaggerWorkingPoints]
    source: str = "<in-memory working points>"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<in-memory working points>") -> WorkingPoints:
        """From the JSON content (``{"taggers": {tagger: {"variable", "working_points", ...}}}``,
        e.g. :meth:`taggers.performance.TaggerPerformance.working_points_dict`).

        Raises:
            WorkingPointError: no ``taggers`` mapping, or a tagger entry that is not one.
        """
        taggers = data.get("taggers") if isinstance(data, Mapping) else None
        if not isinstance(taggers, Mapping):
            raise WorkingPointError(f"{source}: no 'taggers' mapping (not a working-point file of the taggers stage)")
        out: dict[str, TaggerWorkingPoints] = {}
        for name, entry in taggers.items():
            if not isinstance(entry, Mapping):
                raise WorkingPointError(f"{source}: taggers.{name}: expected a mapping, got {type(entry).__name__}")
            points = entry.get("working_points") or {}
            if not isinstance(points, Mapping):
                raise WorkingPointError(f"{source}: taggers.{name}.working_points: expected a mapping")
            out[name] = TaggerWorkingPoints(tagger=name, variable=entry.get("variable"), points=points,
                                            efficiency_vs_pt=entry.get("efficiency_vs_pt"), source=source)
        return cls(taggers=out, source=source)

    def tagger(self, name: str) -> TaggerWorkingPoints:
        """The entry of tagger ``name``.

        Raises:
            WorkingPointError: the file has no such tagger.
        """
        if name not in self.taggers:
            raise WorkingPointError(
                f"{self.source}: taggers has no tagger {name!r} (it has: "
                f"{', '.join(sorted(self.taggers)) or 'none'}); selection.hh_yybb.btag.tagger must name one of them"
            )
        return self.taggers[name]


def load_working_points(path: str | os.PathLike[str]) -> WorkingPoints:
    """Read the taggers stage's working-point JSON (its layout checked; each working point
    when it is used, :meth:`TaggerWorkingPoints.point`).

    Raises:
        WorkingPointError: the file is missing, not JSON or has no ``taggers`` mapping.
    """
    p = Path(path)
    if not p.is_file():
        raise WorkingPointError(f"{p}: working-point file not found")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise WorkingPointError(f"{p}: working-point file is not valid JSON ({exc})") from exc
    return WorkingPoints.from_dict(data, source=os.fspath(p))


@dataclass(frozen=True)
class BTagSpec:
    """Resolved b-tagging: discriminant field, working-point cuts and efficiencies.

    Attributes:
        field: field of the jet collection, e.g. ``btag_dl1``.
        branch: branch in the file, e.g. ``Jet_btag_dl1``.
        two_tag_wp, one_tag_wp: the working points of the 2-tag and 1-tag categories.
        cuts: the used working points, name → cut (D > cut passes).
        efficiencies: per used WP, the MC efficiencies ``{"b", "c", "light"}``.
        source: provenance (the working-point file, or ``config``).
        tagger: the tagger (or the config's discriminant variable).
        pt_edges: jet pT bin edges [GeV] of ``efficiency_maps``.
        efficiency_maps: per WP and flavour, the efficiency per pT bin.
    """

    field: str
    branch: str
    two_tag_wp: str
    one_tag_wp: str
    cuts: dict[str, float]
    efficiencies: dict[str, dict[str, float]]
    source: str
    tagger: str = ""
    pt_edges: tuple[float, ...] | None = None
    efficiency_maps: dict[str, dict[str, tuple[float, ...]]] | None = None

    def efficiency_table(self, wps: Sequence[str]) -> np.ndarray:
        """Efficiencies ``[pT bin, WP, flavour class]`` (one pT bin without maps)."""
        if self.efficiency_maps is None or self.pt_edges is None:
            return np.array([[[self.efficiencies[wp][f] for f in O.FLAVOUR_CLASSES] for wp in wps]])
        n_pt = len(self.pt_edges) - 1
        maps = self.efficiency_maps
        return np.array([[[maps[wp][f][k] for f in O.FLAVOUR_CLASSES] for wp in wps] for k in range(n_pt)])

    def pt_bin(self, pt: np.ndarray) -> np.ndarray:
        """pT bin of each jet (pT in GeV) for :meth:`efficiency_table` (outside the edges: the
        nearest bin)."""
        if self.pt_edges is None:
            return np.zeros(len(pt), dtype=np.int64)
        k = np.searchsorted(np.asarray(self.pt_edges[1:-1]), np.asarray(pt), side="right")
        return k.astype(np.int64)

    @property
    def ordered_wps(self) -> list[str]:
        """Used working points ordered loose → tight (increasing cut)."""
        return sorted(self.cuts, key=lambda wp: self.cuts[wp])

    def to_dict(self) -> dict[str, Any]:
        """The summary of the histogram set's provenance (tagger, branch, source, WPs, cuts,
        efficiencies)."""
        return {"tagger": self.tagger, "branch": self.branch, "source": self.source,
                "two_tag_wp": self.two_tag_wp, "one_tag_wp": self.one_tag_wp, "cuts": self.cuts,
                "efficiencies": self.efficiencies}


def btag_spec(
    selection: SelectionConfig,
    fmt: str,
    working_points: WorkingPoints | str | os.PathLike[str] | None = None,
) -> BTagSpec:
    """Resolve the b-tagging of format ``fmt`` from the config and (hepline) the WP file.

    hepline: tagger and WP names from ``selection.hh_yybb.btag``; cuts, branch and
    efficiencies (b: ``b_efficiency``, c: 1/``c_rejection``, light: 1/``light_rejection``)
    from the working points (``working_points``, else
    ``selection.hh_yybb.btag.working_points_file``), which must name the branch
    ``Jet_btag_<tagger>``. nanoaod: everything from ``selection.objects.nanoaod.jet.btag``.

    Args:
        selection: the ``selection`` section.
        fmt: ``hepline`` or ``nanoaod``.
        working_points: the working points, or their file.

    Returns:
        The :class:`BTagSpec`.

    Raises:
        WorkingPointError: no working points, or they lack the tagger or a WP (naming the
            file and the key).
    """
    jet_map = object_map(selection, fmt).jet
    coll = jet_map.collection
    bcfg = jet_map.btag
    if isinstance(bcfg, CmsBTagConfig):  # source: config
        wps = dict(bcfg.working_points)
        two, one = bcfg.two_tag_wp, bcfg.one_tag_wp
        for wp in (two, one):
            if wp not in wps:
                raise WorkingPointError(
                    f"selection.objects.{fmt}.jet.btag: working point {wp!r} not in "
                    f"working_points ({', '.join(wps)})"
                )
            if wp not in bcfg.efficiencies:
                raise WorkingPointError(
                    f"selection.objects.{fmt}.jet.btag.efficiencies: no efficiencies for working point {wp!r}"
                )
        cfg_cuts = {wp: float(wps[wp]) for wp in {two, one}}
        cfg_effs = {wp: bcfg.efficiencies[wp].to_dict() for wp in cfg_cuts}
        var = bcfg.variable
        return BTagSpec(field=var, branch=f"{coll}_{var}", two_tag_wp=two, one_tag_wp=one,
                        cuts=cfg_cuts, efficiencies=cfg_effs, source="config", tagger=var)

    # working-point file (hepline)
    hcfg = selection.hh_yybb.btag
    tagger, two, one = hcfg.tagger, hcfg.two_tag_wp, hcfg.one_tag_wp
    wp_source = working_points if working_points is not None else hcfg.working_points_file
    if wp_source is None:
        raise WorkingPointError(
            "b-tagging needs the taggers stage's working-point file: pass --working-points "
            "or set selection.hh_yybb.btag.working_points_file"
        )
    data = wp_source if isinstance(wp_source, WorkingPoints) else load_working_points(wp_source)
    src = data.source
    entry = data.tagger(tagger)
    var = f"{coll}_btag_{tagger}"
    if entry.variable != var:
        raise WorkingPointError(
            f"{entry.where}.variable is {entry.variable!r}, expected {var!r} "
            "(a working-point file for another tagger or ntuple?)"
        )
    used: dict[str, float] = {}
    effs: dict[str, dict[str, float]] = {}
    for wp in (two, one):
        point = entry.point(wp)
        used[wp] = point.cut
        effs[wp] = point.efficiencies
    field_name = var[len(coll) + 1:]
    edges, maps = None, None
    if hcfg.efficiency_maps and entry.efficiency_vs_pt is not None:
        edges, maps = _efficiency_maps(entry.efficiency_vs_pt, used, effs, f"{entry.where}.efficiency_vs_pt",
                                       min_tagged=float(hcfg.efficiency_map_min_tagged))
    return BTagSpec(field=field_name, branch=var, two_tag_wp=two, one_tag_wp=one, cuts=used,
                    efficiencies=effs, source=src, tagger=tagger, pt_edges=edges, efficiency_maps=maps)


def _efficiency_maps(block: Any, wps: Mapping[str, float], inclusive: Mapping[str, Mapping[str, float]],
                     where: str, min_tagged: float = 0.0,
                     ) -> tuple[tuple[float, ...], dict[str, dict[str, tuple[float, ...]]]]:
    """Validated per-pT-bin efficiencies of the used WPs. Empty bins (None), and bins whose
    efficiency × test jets (the map's ``jets`` counts, when it has them) is below
    ``min_tagged``, take the inclusive efficiency. Raises :class:`WorkingPointError` naming
    what is wrong (``where``: ``<file>: taggers.<tagger>.efficiency_vs_pt``)."""
    try:
        edges = tuple(float(x) for x in block["pt_edges_gev"])
        per_wp = block["working_points"]
    except (KeyError, TypeError, ValueError) as exc:
        raise WorkingPointError(f"{where}: needs pt_edges_gev and working_points ({exc!r})") from exc
    if len(edges) < 2 or any(b <= a for a, b in itertools.pairwise(edges)):
        raise WorkingPointError(f"{where}.pt_edges_gev: must increase, got {list(edges)}")
    maps: dict[str, dict[str, tuple[float, ...]]] = {}
    for wp in wps:
        if wp not in per_wp:
            raise WorkingPointError(f"{where}.working_points: no working point {wp!r}")
        maps[wp] = {}
        for fl in O.FLAVOUR_CLASSES:
            values = per_wp[wp].get(fl)
            if values is None or len(values) != len(edges) - 1:
                raise WorkingPointError(f"{where}.working_points.{wp}.{fl}: needs "
                                        f"{len(edges) - 1} values (one per pT bin)")
            jets = ((block.get("jets") or {}).get(wp) or {}).get(fl)
            if jets is not None and len(jets) != len(values):
                raise WorkingPointError(f"{where}.jets.{wp}.{fl}: needs {len(values)} counts")
            out = []
            for k, v in enumerate(values):
                thin = v is not None and jets is not None and float(v) * float(jets[k]) < min_tagged
                x = inclusive[wp][fl] if v is None or thin else float(v)
                if not (math.isfinite(x) and 0.0 <= x <= 1.0):
                    raise WorkingPointError(f"{where}.working_points.{wp}.{fl}: bin {k} has {v!r}")
                out.append(x)
            maps[wp][fl] = tuple(out)
    return edges, maps


def needed_branches(selection: SelectionConfig, fmt: str, btag: BTagSpec, *,
                    tagged_in_memory: bool = False) -> list[str]:
    """Exactly the ``Events`` branches the selection reads (counters included).

    ``tagged_in_memory``: the b-tagging discriminant is computed in the processor (the
    ``models`` of :func:`run_selection`), so ``btag.branch`` is not read from the file.
    """
    omap = object_map(selection, fmt)
    out: list[str] = []
    for key in (omap.weight, omap.event_number):
        if key:
            out.append(key)

    def coll(m: Any, fields: list[str]) -> None:
        c = m.collection
        fs = list(dict.fromkeys(fields + [s.field for s in O.object_requirements(m) if s]))
        out.append(f"n{c}")
        out.extend(f"{c}_{f}" for f in fs)

    coll(omap.photon, ["pt", "eta", "phi"])
    jet_fields = ["pt", "eta", "phi", "mass"] + ([] if tagged_in_memory else [btag.field])
    if omap.jet.flavour:
        jet_fields.append(omap.jet.flavour)
    coll(omap.jet, jet_fields)
    coll(omap.electron, ["pt", "eta", "phi"])
    coll(omap.muon, ["pt", "eta", "phi"])
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------------------------------
# the processor
# ---------------------------------------------------------------------------------------
def _np(x: Any) -> np.ndarray:
    return ak.to_numpy(x)


def distinct_count(values: np.ndarray, in_order: bool = False) -> int:
    """Number of distinct ``values``; ``in_order``: they are non-decreasing (counted from
    the changes, without sorting)."""
    if not in_order:
        return int(np.unique(values).size)
    return int(np.count_nonzero(values[1:] != values[:-1])) + 1 if values.size else 0


class FlatCollection(dict):
    """One collection of a chunk as flat numpy arrays: ``{field: array over all objects}``
    plus ``offsets`` (n + 1 event boundaries from 0), ``counts`` (per event) and ``evt``
    (event index per object); ``counts`` and ``evt`` are built on first use.

    Built from ``counts`` or from ``offsets`` (given both, they must agree). The object
    functions of :mod:`selections.objects` take it like an awkward record array.
    """

    def __init__(self, counts: np.ndarray | None, fields: Mapping[str, np.ndarray],
                 offsets: np.ndarray | None = None):
        super().__init__(fields)
        if offsets is None:
            if counts is None:
                raise ValueError("FlatCollection needs counts or offsets")
            counts = np.asarray(counts, dtype=np.int64)
            offsets = np.empty(len(counts) + 1, dtype=np.int64)
            offsets[0] = 0
            np.cumsum(counts, out=offsets[1:])
        self.offsets = offsets
        self._counts = None if counts is None else np.asarray(counts, dtype=np.int64)
        self._shared: dict[str, np.ndarray] = {}  # with the with_field copies (same events)

    @property
    def counts(self) -> np.ndarray:
        """Objects per event."""
        if self._counts is None:
            self._counts = np.diff(self.offsets)
        return self._counts

    @property
    def evt(self) -> np.ndarray:
        """Event index of every object (built on first use)."""
        if "evt" not in self._shared:
            self._shared["evt"] = np.repeat(np.arange(self.n_events), self.counts)
        return self._shared["evt"]

    def subset(self, events: np.ndarray, compiled: bool = False) -> FlatCollection:
        """The objects of the events where the boolean ``events`` is true, or of the events
        listed (increasing) in the integer ``events`` (one index gather per field;
        ``compiled``: the index and the new offsets from one compiled pass,
        :func:`selections.hh_yybb.kernel.objects_and_offsets`)."""
        events = np.asarray(events)
        if events.dtype == np.bool_:
            events = np.flatnonzero(events)
        if compiled:
            idx, offsets = K.objects_and_offsets(self.offsets, events)
            return FlatCollection(None, {k: v.take(idx) for k, v in self.items()}, offsets)
        mask = np.zeros(self.n_events, dtype=bool)
        mask[events] = True
        idx = np.flatnonzero(np.repeat(mask, self.counts))
        return FlatCollection(self.counts.take(events), {k: v.take(idx) for k, v in self.items()})

    @property
    def n_events(self) -> int:
        return len(self.offsets) - 1

    def permuted(self, order: np.ndarray) -> FlatCollection:
        """The same collection with objects reordered by ``order`` (within events)."""
        return FlatCollection(self._counts, {k: v[order] for k, v in self.items()}, self.offsets)

    def with_field(self, name: str, values: np.ndarray) -> FlatCollection:
        out = FlatCollection.__new__(FlatCollection)
        dict.__init__(out, self)
        out[name] = values
        out._counts, out.offsets, out._shared = self._counts, self.offsets, self._shared
        return out

    def count(self, mask: np.ndarray) -> np.ndarray:
        """Selected objects per event."""
        return K.count_per_event(self.offsets, mask)

    def is_sorted(self, field: str = "pt") -> bool:
        """True if ``field`` decreases within every event."""
        return K.sorted_within(self.offsets, self[field])

    def sorted_by(self, field: str = "pt") -> FlatCollection:
        """Objects ordered by decreasing ``field`` within events (no copy if already)."""
        if self.is_sorted(field):
            return self
        return self.permuted(np.lexsort((-self[field], self.evt)))


def _flat_layout(arr: Any) -> tuple[np.ndarray, np.ndarray]:
    """(counts, flat values) of a jagged awkward array of numbers."""
    layout = arr.layout if isinstance(arr, ak.Array) else arr
    if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, ak.contents.NumpyArray):
        offsets = np.asarray(layout.offsets.data, dtype=np.int64)
        data = np.asarray(layout.content.data)[offsets[0]:offsets[-1]]
        return np.diff(offsets), data
    return _np(ak.num(arr, axis=1)), _np(ak.flatten(arr, axis=1))


def _flat(coll: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(counts, flat values) of one field of a NanoEvents collection."""
    return _flat_layout(coll[name])


def preloaded_arrays(events: Any) -> Mapping[str, Any] | None:
    """The branches coffea's factory read in bulk for this chunk (``preload``), as uproot
    returned them (``{branch: awkward array}``), or None where the events do not come from a
    preloading factory (lazy NanoEvents, a coffea whose factory keeps them elsewhere).

    Taken from the factory that built ``events`` (``events.attrs["@events_factory"]``): its
    source mapping holds them for NanoEvents' virtual buffers. Reading a column through those
    buffers costs, per jagged branch, a copy of its offsets (awkward's ``Index.to64`` copies
    even int64 offsets) and, per collection, the cumulative sum of its counts branch; the
    same numbers are in the bulk-read arrays already (docs/hh_yybb.md, "Ninth session")."""
    attrs = getattr(events, "attrs", None)
    factory = attrs.get("@events_factory") if isinstance(attrs, Mapping) else None
    found = getattr(getattr(factory, "_mapping", None), "preloaded_arrays", None)
    if not isinstance(found, Mapping):
        return None
    out = {}
    for name, wrapped in found.items():
        arr = getattr(wrapped, "_array", None)  # coffea's slice guard around the array
        if isinstance(arr, ak.Array) and len(arr) == len(events):
            out[name] = arr
    return out


class _ColumnSource:
    """A reader of a chunk's columns: ``column(coll, field)`` gives the flat values of
    ``Coll_field`` (``column(None, name)``: an event-level branch), ``offsets(coll)`` and
    ``counts(coll)`` the event boundaries and object counts of a collection already read.
    In ``preload`` mode the runner's factory has already read every needed branch in bulk
    (``run_processor(preload=)``): the columns are the buffers of those arrays
    (:func:`preloaded_arrays`; a collection's offsets are those of its first field read,
    and every other field must end at the same object count). In ``nanoevents`` mode, or
    for a column the factory did not preload, each column is read through the events'
    layout (lazily, on first access); a layout other than a list of records per collection
    falls back to high-level access. Each collection's offsets and counts are taken once.
    A column computed in memory (the tagger discriminant of :func:`run_selection`'s
    ``models``) is served from :meth:`provide`."""

    def __init__(self, events: Any):
        self.events = events
        self.layout = events.layout
        self.preloaded = preloaded_arrays(events) or {}
        self.provided: dict[tuple[str | None, str], np.ndarray] = {}
        self._offsets: dict[str, np.ndarray] = {}  # per collection, as read
        self._counts: dict[str, np.ndarray] = {}

    def provide(self, coll: str | None, name: str, values: np.ndarray) -> None:
        """Serve ``values`` (flat, one per object of the chunk) as the column ``Coll_name``."""
        self.provided[(coll, name)] = values

    def _collection_offsets(self, coll: str, o: np.ndarray, name: str) -> None:
        """Keep a collection's offsets (the first field's); check another field's total."""
        if coll not in self._offsets:
            self._offsets[coll] = o.astype(np.int64, copy=False)
            return
        co = self._offsets[coll]
        if int(o[-1] - o[0]) != int(co[-1] - co[0]):
            meta = getattr(self.events, "metadata", None) or {}
            raise InputFileError(
                meta.get("filename", "<chunk>"),
                f"branch {coll}_{name} holds {int(o[-1] - o[0])} objects in entries "
                f"{meta.get('entrystart', '?')}–{meta.get('entrystop', '?')}, but the other {coll} branches "
                f"hold {int(co[-1] - co[0])}",
            )

    def _from_preload(self, coll: str | None, name: str) -> np.ndarray | None:
        arr = self.preloaded.get(name if coll is None else f"{coll}_{name}")
        if arr is None:
            return None
        layout = arr.layout
        if coll is None:
            return np.asarray(layout.data) if isinstance(layout, ak.contents.NumpyArray) else None
        if not (isinstance(layout, ak.contents.ListOffsetArray)
                and isinstance(layout.content, ak.contents.NumpyArray)):
            return None
        o = np.asarray(layout.offsets.data)
        self._collection_offsets(coll, o, name)
        return np.asarray(layout.content.data)[o[0]:o[-1]]

    def column(self, coll: str | None, name: str) -> np.ndarray:
        """The flat values of ``Coll_field`` (or of the event-level branch ``name``)."""
        if self.provided and (coll, name) in self.provided:
            values = self.provided[(coll, name)]
            if coll is not None and coll in self._offsets:
                o = self._offsets[coll]
                if len(values) != int(o[-1] - o[0]):
                    raise RuntimeError(f"{coll}_{name}: {len(values)} values computed in memory for "
                                       f"{int(o[-1] - o[0])} objects")
            return values
        if self.preloaded:
            got = self._from_preload(coll, name)
            if got is not None:
                return got
        layout = self.layout
        if coll is None:
            col = layout.content(name) if isinstance(layout, ak.contents.RecordArray) else None
            if isinstance(col, ak.contents.NumpyArray):
                return np.asarray(col.data)
            return _np(self.events[name])
        lst = layout.content(coll) if isinstance(layout, ak.contents.RecordArray) else None
        if isinstance(lst, ak.contents.ListOffsetArray) and isinstance(lst.content, ak.contents.RecordArray):
            field = lst.content.content(name)
            if isinstance(field, ak.contents.NumpyArray):
                o = np.asarray(lst.offsets.data, dtype=np.int64)
                self._collection_offsets(coll, o, name)
                return np.asarray(field.data)[o[0]:o[-1]]
        counts, values = _flat(self.events[coll], name)
        o = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=o[1:])
        self._collection_offsets(coll, o, name)
        return values

    def counts(self, coll: str) -> np.ndarray:
        """Objects per event of a collection already read."""
        if coll not in self._counts:
            self._counts[coll] = np.diff(self._offsets[coll])
        return self._counts[coll]

    def offsets(self, coll: str) -> np.ndarray | None:
        """The event boundaries (from 0) of a collection already read, else None."""
        if coll not in self._offsets:
            return None
        o = self._offsets[coll]
        return o if o[0] == 0 else o - o[0]


def truth_tag_rows(jets: FlatCollection, jet_mask: np.ndarray, event_mask: np.ndarray,
                   efficiencies: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Truth tagging: every way an event's selected jets can make it 2-tag or 1-tag, with its
    probability, instead of cutting on the discriminant.

    ``jets`` are ordered by decreasing pT in each event; ``jet_mask`` selects the jets,
    ``event_mask`` the events to expand. ``efficiencies[name] = (ε_2tag, ε_1tag)``, each
    indexed by the jets' ``eff_class`` field when they have one (flavour class × number of
    pT bins + pT bin, for pT-dependent efficiency maps), else by their flavour class
    (:data:`selections.objects.FLAVOUR_CLASSES`); the 1-tag WP is nested inside the 2-tag
    one (ε_1tag ≤ ε_2tag per jet). The rows reproduce the cut-based
    categories of the selection exactly in expectation:

    - 2-tag with candidates (a, b), a < b: a and b are the two leading jets tagged at the
      2-tag WP, P = ε_a ε_b Π_{k<b, k≠a} (1 − ε_k);
    - 1-tag with tagged jet a: a is the only jet at the 2-tag WP and passes the 1-tag WP,
      P = ε¹_a Π_{k≠a} (1 − ε_k); the second candidate is the leading other jet.

    Returns ``{"evt", "kind" (2 or 1), "c0", "c1" (flat jet indices), "p": {name: P}}``.
    Summed over an event's rows, P is P(2-tag) + P(1-tag) ≤ 1.
    """
    m = np.asarray(jet_mask) & np.asarray(event_mask)[jets.evt]
    idx = np.flatnonzero(m)
    ev = jets.evt[idx]
    counts = np.bincount(ev, minlength=jets.n_events)
    starts = np.concatenate([[0], np.cumsum(counts)])[:-1]
    rank = np.arange(len(idx)) - starts[ev]
    events = np.flatnonzero(counts > 0)
    nmax = int(counts.max()) if len(idx) else 0
    row_of = np.full(jets.n_events, -1, dtype=np.int64)
    row_of[events] = np.arange(len(events))
    J = np.full((len(events), nmax), -1, dtype=np.int64)
    J[row_of[ev], rank] = idx
    present = J >= 0
    cls = jets["eff_class"] if "eff_class" in jets else jets["flavour_class"]
    fc = np.asarray(cls, dtype=np.intp)[np.where(present, J, 0)]

    combos = [(2, a, b) for b in range(nmax) for a in range(b)]
    combos += [(1, a, 1 if a == 0 else 0) for a in range(nmax)]
    out_p: dict[str, list[np.ndarray]] = {name: [] for name in efficiencies}
    # per table: the 2-tag efficiency of every (event, jet rank), 0 for padding
    eps_all = {name: np.where(present, np.asarray(e2)[fc], 0.0) for name, (e2, _) in efficiencies.items()}
    evt_parts, kind_parts, c0_parts, c1_parts = [], [], [], []
    for kind, a, b in combos:
        if b >= nmax:
            continue
        ok = present[:, a] & present[:, b]
        if not ok.any():
            continue
        evt_parts.append(events[ok])
        kind_parts.append(np.full(int(ok.sum()), kind, dtype=np.int8))
        c0_parts.append(J[ok, a])
        c1_parts.append(J[ok, b])
        for name, (_, e1) in efficiencies.items():
            eps = eps_all[name][ok]
            q = 1.0 - eps
            if kind == 2:
                others = [k for k in range(b) if k != a]
                p = eps[:, a] * eps[:, b]
            else:
                others = [k for k in range(nmax) if k != a]
                p = np.asarray(e1)[fc[ok, a]].astype(np.float64)
            if others:
                p = p * np.prod(q[:, others], axis=1)
            out_p[name].append(p)

    def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

    return {
        "evt": cat(evt_parts, np.int64),
        "kind": cat(kind_parts, np.int8),
        "c0": cat(c0_parts, np.int64),
        "c1": cat(c1_parts, np.int64),
        "p": {name: cat(v, np.float64) for name, v in out_p.items()},
    }


class HHyybbProcessor(processor.ProcessorABC):
    """HH → γγbb̄ selection (module docstring) on hepline or CMS NanoAOD events.

    ``process`` returns ``{dataset: {"events", "hists": {obs: Hist}, "cutflow": {"raw",
    "sumw", "sumw2"}}}`` with un-normalised histograms (weights: generator weight × b-tag
    SF weight); :func:`run_selection` adds σ, Σw and the step names.

    Implementation: the objects of the events with two photon candidates are read once per
    chunk into flat numpy arrays (:class:`FlatCollection`); the per-object masks of
    :mod:`selections.objects` run on those, and the per-event walk over the objects is
    :mod:`selections.hh_yybb.kernel` (one numba loop, or its numpy reference: ``engine``).
    Each pass fills all regions and variations of an observable at once
    (:func:`analysis.stats.histfill.fill_regions`). With the compiled engine, the five shifted
    passes and their fills are one call per chunk
    (:func:`selections.hh_yybb.shifted.shifted_entries`, :func:`analysis.stats.histfill.fill_entries`);
    the numpy engine runs them pass by pass, the reference the tests compare with. Costs:
    docs/hh_yybb.md, "Selection throughput".

    With ``models`` (trained taggers, :class:`taggers.models.TaggerModels`), the jets'
    ``Jet_btag_<tagger>`` discriminant is computed from each chunk's jets and tracks
    (:func:`taggers.decorate.decorate_events`, as the decoration stage does) instead of
    being read: undecorated hepline ntuples in, no decorated copy needed. The chunks are
    then read through lazy NanoEvents (``read_mode`` ``nanoevents``: the taggers read
    their own inputs).

    Args:
        selection: the ``selection`` section.
        fmt: the input format (``hepline`` or ``nanoaod``).
        btag: the resolved b-tagging (:func:`btag_spec`).
        read_mode: ``preload`` or ``nanoevents`` (default ``selection.hh_yybb.read_mode``).
        models: trained taggers that tag the jets in the processor (hepline only).
    """

    def __init__(self, selection: SelectionConfig, fmt: str, btag: BTagSpec, read_mode: str | None = None,
                 *, models: TaggerModels | None = None):
        self.omap: ObjectMap = object_map(selection, fmt)
        self.cfg: SelectionHhYybb = selection.hh_yybb
        self.fmt = fmt
        self.btag = btag
        self.models = models
        if models is not None:
            if fmt != "hepline" or not btag.tagger:
                raise WorkingPointError(f"in-memory tagging (models) needs hepline input tagged with a working-point "
                                        f"file, not {fmt} input b-tagged from {btag.source}")
            if btag.tagger not in models.taggers:
                raise WorkingPointError(f"the taggers given hold {', '.join(models.taggers)}, not "
                                        f"selection.hh_yybb.btag.tagger {btag.tagger!r}")
        self._detectors: dict[str, Any] = {}  # per input file, its detector parameters (models only)
        syst = self.cfg.systematics
        self.systematics = list(H.SYSTEMATICS) if syst.enabled else []
        self.variations = H.variation_names(self.systematics)
        self._region_index = {r: i for i, r in enumerate(REGIONS)}
        self._region_of_bit = np.arange(len(REGIONS))  # bit i of the compiled shifted passes: REGIONS[i]
        self._variation_index = {v: i for i, v in enumerate(self.variations)}
        self.binning = {name: b.to_dict() for name, b in self.cfg.histograms.binning.items()}
        self.read_mode = "nanoevents" if models is not None else (read_mode or self.cfg.read_mode)
        self._use_engine(compiled=self.cfg.engine == "numba")
        self.branches = needed_branches(selection, fmt, btag, tagged_in_memory=models is not None)
        wps = btag.ordered_wps
        self._cuts = [btag.cuts[wp] for wp in wps]
        self._bin_two = wps.index(btag.two_tag_wp) + 1   # jets in bin >= this pass the 2-tag WP
        self._bin_one = wps.index(btag.one_tag_wp) + 1
        # efficiencies [pT bin, WP, flavour class] (one pT bin without maps); every table
        # below is indexed by a jet's efficiency class = flavour class × n_pt + pT bin
        eff = btag.efficiency_table(wps)
        self._n_pt = eff.shape[0]
        sfs = self.cfg.btag.scale_factors
        nom = np.array([getattr(sfs, f).nominal for f in O.FLAVOUR_CLASSES])
        unc = np.array([getattr(sfs, f).uncertainty for f in O.FLAVOUR_CLASSES])
        i_two, i_one = wps.index(btag.two_tag_wp), wps.index(btag.one_tag_wp)

        # the efficiencies as [WP, efficiency class]: btag_weight_table works column by column
        eff_by_class = eff.transpose(1, 2, 0).reshape(len(wps), len(O.FLAVOUR_CLASSES) * self._n_pt)

        def sf_table(s: np.ndarray) -> np.ndarray:
            """Pseudo-continuous SF weights [efficiency class, tag bin]."""
            return O.btag_weight_table(eff_by_class, np.tile(np.repeat(s, self._n_pt), (len(wps), 1)))

        def tt_eff(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """Truth tagging: the data efficiency SF × ε per efficiency class at the 2-tag
            and 1-tag WPs."""
            return tuple(np.clip(s[:, None] * eff[:, i, :].T, 0, 1).ravel() for i in (i_two, i_one))

        self._sf_tables = {"nominal": sf_table(nom)}
        self._tt_eff = {"nominal": tt_eff(nom)}
        for i, fl in enumerate(O.FLAVOUR_CLASSES):
            for sign, tag in ((+1, "Up"), (-1, "Down")):
                s = nom.copy()
                s[i] = nom[i] + sign * unc[i]
                self._sf_tables[f"btag_{fl}{tag}"] = sf_table(s)
                self._tt_eff[f"btag_{fl}{tag}"] = tt_eff(s)
        self.truth_tag_samples = set(self.cfg.btag.truth_tag_samples)
        if self.truth_tag_samples and not self.omap.jet.flavour:
            raise WorkingPointError(
                f"selection.hh_yybb.btag.truth_tag_samples {sorted(self.truth_tag_samples)} needs the "
                f"jet truth flavour, but selection.objects.{fmt}.jet has no 'flavour' field"
            )

    # -- reading ------------------------------------------------------------------------
    @staticmethod
    def _source(events: Any) -> _ColumnSource:
        """A reader of this chunk's columns (:class:`_ColumnSource`)."""
        return _ColumnSource(events)

    def _collection(self, get: _ColumnSource, kind: str, fields: Sequence[str],
                    events: np.ndarray | None = None) -> FlatCollection:
        """The ``fields`` (and the fields the object requirements use) of one collection,
        pT-ordered within events; only the events ``events`` (a mask or increasing indices) if given."""
        m = getattr(self.omap, kind)
        names = list(dict.fromkeys([*fields, *(s.field for s in O.object_requirements(m) if s)]))
        data = {n: get.column(m.collection, n) for n in names}
        coll = FlatCollection(None, data, get.offsets(m.collection))
        return (coll if events is None else coll.subset(events, self._compiled)).sorted_by("pt")

    def _read(self, events: Any) -> dict[str, Any]:
        """The chunk's objects as flat arrays, for the events with two photon candidates
        (:meth:`_shift_candidates`) only; the generator weights of all events are kept
        for the cutflow's first row (``n_all``, ``weight_all``)."""
        n = len(events)
        get = self._source(events)
        if self.models is not None:
            get.provide(self.omap.jet.collection, self.btag.field, self._discriminant(events))
        wname = self.omap.weight
        w = get.column(None, wname).astype(np.float64) if wname else np.ones(n)
        ename = self.omap.event_number
        evt = get.column(None, ename).astype(np.uint64) if ename else np.arange(n, dtype=np.uint64)
        photons = self._collection(get, "photon", ["pt", "eta", "phi"])
        photons = photons.with_field("_fixed", self._fixed_photon_mask(photons))
        cand = np.flatnonzero(self._shift_candidates(photons))  # increasing event indices
        jet_fields = ["pt", "eta", "phi", "mass", self.btag.field]
        flav = self.omap.jet.flavour
        if flav:
            jet_fields.append(flav)
        jets = self._collection(get, "jet", jet_fields, cand)
        if flav:
            fc = O.flavour_class(np.asarray(jets[flav]))
        else:  # data: no truth flavour, SF weights are 1
            fc = np.zeros(len(jets["pt"]), dtype=np.int8)
        jets["flavour_class"] = fc
        jets["class_base"] = fc.astype(np.int64) * self._n_pt  # + pT bin = efficiency class
        jets["tag_bin"] = np.asarray(O.tag_bin(jets[self.btag.field], self._cuts), dtype=np.int8)
        for f in ("pt", "mass"):
            jets[f] = jets[f].astype(np.float64)
        return {
            "n_all": n,
            "weight_all": w,
            "n": len(cand),
            "weight": w.take(cand),
            "event": evt.take(cand),
            "photons": photons.subset(cand, self._compiled),
            "electrons": self._collection(get, "electron", ["pt", "eta", "phi"], cand),
            "muons": self._collection(get, "muon", ["pt", "eta", "phi"], cand),
            "jets": jets,
        }

    def _discriminant(self, events: Any) -> np.ndarray:
        """The ``Jet_btag_<tagger>`` values of every jet of the chunk (flat, float32), computed
        by the ``models`` from the chunk's jets and tracks (:func:`taggers.decorate.decorate_events`,
        with the detector parameters of the chunk's file, as the decoration stage does)."""
        from taggers.decorate import decorate_events

        assert self.models is not None
        source = str((getattr(events, "metadata", None) or {}).get("filename", "<chunk>"))
        if source not in self._detectors:
            self._detectors[source] = read_metadata(source).get("detector") if source != "<chunk>" else None
        out = decorate_events(events, self.models, detector=self._detectors[source], source=source)
        return np.asarray(ak.to_numpy(ak.flatten(out[self.btag.branch], axis=None)))

    # -- one pass of the selection ---------------------------------------------------------
    def _analyse(self, obj: dict[str, Any], photon_scale: Any = None, jet_scale: float = 1.0,
                 packed: bool = False, truth_tables: Sequence[str] | None = None,
                 event_mask: np.ndarray | None = None) -> dict[str, Any]:
        """One pass of the selection. With ``truth_tables`` (names of :attr:`_tt_eff`) the
        b-tag categories come from :func:`truth_tag_rows` (result key ``rows``) and the
        event-level tag categories are empty. Only the nominal (``packed``) pass without
        truth tagging computes everything for every event (its cutflow carries the b-tag SF
        weight of events failing the diphoton cuts); the other passes skip what no region or
        cutflow row can use, and only the events of ``event_mask`` are looked at.

        The per-object masks are numpy (:mod:`selections.objects`); the per-event walk over
        the objects (diphoton, overlap removal, counts, b-jet candidates, masses) is
        :func:`selections.hh_yybb.kernel.event_arrays` (``engine: numba``) or its numpy
        reference."""
        c = self.cfg
        pc = c.photons
        photons: FlatCollection = obj["photons"]
        if photon_scale is not None:
            photons = photons.with_field("pt", photons["pt"] * photon_scale)
        pmask = self._photon_mask(obj, photons, shifted=photon_scale is not None)

        lc = c.leptons
        if "lepton_masks" not in obj:  # no variation changes a lepton: once per chunk
            obj["lepton_masks"] = {
                kind: np.asarray(self._lepton_mask(obj[f"{kind}s"], kind), dtype=bool).reshape(-1)
                if len(obj[f"{kind}s"]["pt"]) else np.zeros(0, dtype=bool)
                for kind in ("electron", "muon")
            }
        jc = c.jets
        jets, j_sel = self._scaled_jets(obj, jet_scale)
        ele, mu = obj["electrons"], obj["muons"]
        # (no jet-lepton overlap removal: events with a selected lepton are vetoed before any
        # jet requirement, so it could not change a result)
        ev = self._event_arrays(K.PassInput(
            ph_off=photons.offsets, ph_pt=photons["pt"], ph_eta=photons["eta"], ph_phi=photons["phi"],
            ph_mask=pmask, top2=photon_scale is not None and bool(np.ndim(photon_scale)),
            e_off=ele.offsets, e_eta=ele["eta"], e_phi=ele["phi"], e_mask=obj["lepton_masks"]["electron"],
            mu_off=mu.offsets, mu_eta=mu["eta"], mu_phi=mu["phi"], mu_mask=obj["lepton_masks"]["muon"],
            lep_dr=lc.photon_overlap_dr,
            j_off=jets.offsets, j_pt=jets["pt"], j_eta=jets["eta"], j_phi=jets["phi"], j_mass=jets["mass"],
            j_mask=j_sel, j_bin=jets["tag_bin"],
            jet_dr=jc.photon_overlap_dr, bin_two=self._bin_two, bin_one=self._bin_one,
            mstar_offset=c.categories.mstar_offset, lead_frac=pc.leading_pt_over_myy,
            sub_frac=pc.subleading_pt_over_myy, myy_window=pc.myy_window,
            # b-tag SF weights of events failing the diphoton cuts: only without truth tagging
            event_mask=event_mask, full=packed and truth_tables is None,
            all_myy=packed,  # only the nominal pass's cutflow uses m_γγ of events failing the diphoton cuts
        ))
        myy, i2, n_lep, n_j, tag, jmask = ev["myy"], ev["i2"], ev["n_lep"], ev["n_j"], ev["tag"], ev["jet_mask"]
        with np.errstate(invalid="ignore"):
            frac = (ev["g1pt"] > pc.leading_pt_over_myy * myy) & (ev["g2pt"] > pc.subleading_pt_over_myy * myy)
            window = (myy > pc.myy_window[0]) & (myy < pc.myy_window[1])

        def kin_masks(mbb: np.ndarray, mstar: np.ndarray, j1: np.ndarray, j2: np.ndarray) -> dict[str, np.ndarray]:
            with np.errstate(invalid="ignore"):
                out = {}
                for k in KINEMATIC:
                    kc = getattr(c.categories, k)
                    out[k] = ((j1 > kc.leading_jet_pt_min) & (j2 > kc.subleading_jet_pt_min)
                              & (mbb > kc.mbb_window[0]) & (mbb < kc.mbb_window[1]))
                out["lowmstar"] = mstar < c.categories.mstar_split
                out["highmstar"] = mstar >= c.categories.mstar_split
            return out

        mbb, mstar = ev["mbb"], ev["mstar"]
        km = kin_masks(mbb, mstar, ev["j1"], ev["j2"])
        kin = {k: km[k] for k in KINEMATIC}
        low, high = km["lowmstar"], km["highmstar"]
        with np.errstate(invalid="ignore"):
            res = np.abs(myy - c.resonant.higgs_mass) < c.resonant.myy_half_window

        rows = None
        if truth_tables is not None:
            pre = ((i2 >= 0) & frac & window & (n_lep == 0) & (n_j >= jc.min_jets)
                   & (n_j <= jc.max_central_jets))
            tt = self._truth_rows(jets, jmask, pre, {t: self._tt_eff[t] for t in truth_tables}, ev, photons)
            r_mbb, r_mstar = tt["m_bb"], tt["m_star"]
            rk = kin_masks(r_mbb, r_mstar, tt["j1"], tt["j2"])
            r_res = res[tt["evt"]]
            r_regions = {}
            for t, kind in zip(TAGS, (2, 1), strict=True):
                is_t = tt["kind"] == kind
                for k in KINEMATIC:
                    for m in MSTAR:
                        r_regions[f"{t}_{k}_{m}"] = is_t & rk[k] & rk[m]
                    r_regions[f"res_{t}_{k}"] = is_t & rk[k] & r_res
            rows = {**tt, "regions": r_regions,
                    "obs": {"m_yy": myy[tt["evt"]], "m_bb": r_mbb, "m_star": r_mstar}}
            tag = np.zeros(obj["n"], dtype=np.int64)  # the event-level tag categories stay empty

        steps = {
            "two_photons": (i2 >= 0),
            "photon_pt_over_myy": frac,
            "myy_window": window,
            "lepton_veto": n_lep == 0,
            "two_jets": n_j >= jc.min_jets,
            "max_central_jets": n_j <= jc.max_central_jets,
            "btag_1or2": tag > 0,
        }
        base = list(steps)
        cats = {"2tag": tag == 2, "1tag": tag == 1}
        sel = None
        if packed:
            # coffea PackedSelection (selections.hh_yybb.packed: its eager add without the masked
            # ufunc) for the nominal pass: the cutflow's cuts and the tag categories (the
            # kinematic categories are ANDed with numpy below); the shifted passes AND the
            # same masks with numpy
            masks = {**steps, **cats}
            sel = PackedSelection(dtype=packed_dtype(len(masks)))
            sel.add_multiple(masks)
            diphoton, pretag = sel.all(*base[:3]), sel.all(*base[:6])
            in_tag = {t: sel.all(*base, t) for t in TAGS}
        else:  # the same ANDs, sharing the common prefixes
            diphoton = steps["two_photons"] & steps["photon_pt_over_myy"] & steps["myy_window"]
            pretag = diphoton & steps["lepton_veto"] & steps["two_jets"] & steps["max_central_jets"]
            tagged = pretag & steps["btag_1or2"]
            in_tag = {t: tagged & cats[t] for t in TAGS}
        regions = {"diphoton": diphoton, "pretag": pretag}
        mstar_masks = {"lowmstar": low, "highmstar": high}
        for t in TAGS:
            for k in KINEMATIC:
                in_tk = in_tag[t] & kin[k]
                for m in MSTAR:
                    regions[f"{t}_{k}_{m}"] = in_tk & mstar_masks[m]
                regions[f"res_{t}_{k}"] = in_tk & res
        return {
            "sel": sel,
            "steps": base,
            "tag": tag,
            "regions": regions,
            "obs": {"m_yy": myy, "m_bb": mbb, "m_star": mstar},
            "obs_leading": {"m_yy": myy, "m_bb": ev["mjj_lead"], "m_star": ev["mstar_lead"]},
            "jet_mask": jmask,
            "jets": jets,
            "rows": rows,
            "i1": ev["i1"],
            "i2": i2,
            "angle": ev["angle"],
        }

    def _scaled_jets(self, obj: dict[str, Any], scale: float) -> tuple[FlatCollection, np.ndarray]:
        """The chunk's jets with pT and mass × ``scale`` and the jet selection mask (before
        overlap removal); computed once per scale and chunk (the nominal and the
        photon-shifted passes share scale 1). The efficiency classes (they depend on pT) are
        computed only for the jets that need one (:meth:`_eff_class`)."""
        cache = obj.setdefault("scaled_jets", {})
        if scale not in cache:
            jets: FlatCollection = obj["jets"]
            if scale != 1.0:
                jets = jets.with_field("pt", jets["pt"] * scale).with_field("mass", jets["mass"] * scale)
            jc = self.cfg.jets
            mask = O.jet_selection(jets, O.object_requirements(self.omap.jet), pt_min=jc.pt_min, eta_max=jc.eta_max)
            cache[scale] = (jets, np.asarray(mask, dtype=bool))
        return cache[scale]

    def _truth_rows(self, jets: FlatCollection, jet_ok: np.ndarray, pre: np.ndarray,
                    efficiencies: Mapping[str, tuple[np.ndarray, np.ndarray]], ev: Mapping[str, np.ndarray],
                    photons: FlatCollection) -> dict[str, Any]:
        """Truth-tag rows of the events ``pre`` with m_bb, m*, j1, j2 [GeV]: compiled
        (:func:`selections.hh_yybb.kernel.truth_rows`) or :func:`truth_tag_rows` and the
        numpy pair masses."""
        off = self.cfg.categories.mstar_offset
        if self._compiled:
            edges = () if self.btag.pt_edges is None else self.btag.pt_edges[1:-1]
            return K.truth_rows(jets, jet_ok, pre, efficiencies, ev["i1"], ev["i2"], ev["myy"], photons, off,
                                class_base=jets["class_base"], pt_edges=edges)
        jets = jets.with_field("eff_class", self._eff_class(jets))
        tt = truth_tag_rows(jets, jet_ok, pre, efficiencies)
        e = tt["evt"]
        mbb, mstar, j1, j2 = K.pair_rows_numpy(tt["c0"], tt["c1"], ev["i1"][e], ev["i2"][e], ev["myy"][e], jets,
                                               photons, off)
        return {**tt, "m_bb": mbb, "m_star": mstar, "j1": j1, "j2": j2}

    def _eff_class(self, jets: FlatCollection, mask: np.ndarray | None = None) -> np.ndarray:
        """Efficiency class (flavour class × number of pT bins + pT bin) of the jets, or of
        the jets in ``mask``."""
        base, pt = (jets["class_base"], jets["pt"]) if mask is None else (jets["class_base"][mask], jets["pt"][mask])
        return base + self.btag.pt_bin(pt)

    def _btag_weights(self, res: dict[str, Any], names: Sequence[str]) -> dict[str, np.ndarray]:
        jets: FlatCollection = res["jets"]
        m = res["jet_mask"]
        offsets = np.concatenate([[0], np.cumsum(jets.count(m))])
        f, b = self._eff_class(jets, m), jets["tag_bin"][m]
        return {name: O.btag_event_weight_flat(f, b, offsets, self._sf_tables[name]) for name in names}

    def _fill(self, fillers: Mapping[str, HF.RegionFiller], res: dict[str, Any],
              weights: Mapping[str, np.ndarray]) -> None:
        """Fill every observable of one pass for each weight variation, all regions at once
        (``fillers[observable]``, :class:`analysis.stats.histfill.RegionFiller`: compiled with the
        numba engine, its numpy reference otherwise).

        The entries come in three groups: the inclusive regions, with the leading-jet
        observables; the other event regions; the truth-tagged rows (``res["rows"]``),
        filled with the event weight times the row's tag probability for that variation
        (the nominal one for non-b-tag variations). Variations with the same weights share
        one weight row."""
        rows = res.get("rows")
        inclusive = ("diphoton", "pretag")
        # the entries: every inclusive region lies inside "diphoton", every other event region
        # inside the b-tagged "pretag" events (none for truth-tagged samples: their rows carry
        # the tags)
        sources: list[tuple[dict[str, np.ndarray], Mapping[str, np.ndarray], Any, np.ndarray | None]] = [
            ({r: m for r, m in res["regions"].items() if r in inclusive}, res["obs_leading"], None,
             np.flatnonzero(res["regions"]["diphoton"])),
            ({r: m for r, m in res["regions"].items() if r not in inclusive}, res["obs"], None,
             np.flatnonzero(res["regions"]["pretag"] & (res["tag"] > 0))),
        ]
        if rows is not None:
            sources.append((rows["regions"], rows["obs"], rows, None))
        variations = np.array([self._variation_index[v] for v in weights], dtype=np.int64)
        for regions, obs, src, used in sources:
            if not regions:
                continue
            if used is None:
                masks = np.stack(list(regions.values()))
                used = np.flatnonzero(masks.any(axis=0))  # the entries in any of these regions
                masks = masks[:, used]
            elif used.size:
                masks = np.stack([m[used] for m in regions.values()])
            if not used.size:
                continue
            if src is None:
                w_rows, w_of = self._weight_rows(weights, used)
            else:
                p = src["p"]
                w_rows, w_of = self._weight_rows(weights, used, src["evt"], {v: p.get(v, p["nominal"]) for v in weights})
            region_ids = np.array([self._region_index[r] for r in regions], dtype=np.int64)
            xbins = HF.RegionFiller.bins_together(list(fillers.values()), [obs[name][used] for name in fillers])
            HF.RegionFiller.fill_together(list(fillers.values()), masks, region_ids, xbins, w_rows, w_of,
                                          variations, compiled=self._compiled)

    @staticmethod
    def _weight_rows(weights: Mapping[str, np.ndarray], entries: np.ndarray, evt: np.ndarray | None = None,
                     probs: Mapping[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The distinct weight arrays of ``weights`` at the ``entries`` (events; with ``evt``
        and ``probs``: truth-tag rows, the event weight × the row's probability) stacked, one
        gather per distinct array, and the row of each variation."""
        rows: list[np.ndarray] = []
        seen: dict[tuple[int, int], int] = {}
        of = []
        for v, w in weights.items():
            p = None if probs is None else probs[v]
            key = (id(w), id(p))
            if key not in seen:
                seen[key] = len(rows)
                rows.append(w[entries] if p is None else w[evt[entries]] * p[entries])  # type: ignore[index]
            of.append(seen[key])
        return np.stack(rows), np.array(of, dtype=np.int64)

    def _use_engine(self, compiled: bool) -> None:
        """The per-event pass, truth-tag rows and smearing factors: compiled (numba) or their
        numpy references."""
        self._compiled = compiled
        self._event_arrays = K.event_arrays if compiled else K.event_arrays_numpy
        self._resolution_factors = K.resolution_factors if compiled else K.resolution_factors_numpy

    def _choose_engine(self, metadata: Mapping[str, Any]) -> None:
        """``engine: auto``: the compiled pass for large datasets (its JIT start, ≈ 1 s of
        CPU per process, pays back after ≈ 10⁶ events) or once it is loaded anyway."""
        if self.cfg.engine != "auto":
            return
        big = int(metadata.get("n_events") or 0) >= self.cfg.numba_min_events
        self._use_engine(compiled=big or K.kernel_loaded())

    def process(self, events: Any) -> dict[str, Any]:
        dataset = events.metadata.get("dataset", "default")
        self._choose_engine(events.metadata)
        t0 = time.perf_counter()
        obj = self._read(events)
        t_read = time.perf_counter()
        hists = H.make_hists(OBSERVABLES, REGIONS, self.variations, self.binning)
        # obj holds only the events with two photon candidates, the only ones that can pass
        # any cut after "all" in any variation (≈ 25 % of a γγ sample)
        n_events = obj["n_all"]
        gen_all = obj["weight_all"]

        truth = dataset in self.truth_tag_samples
        names = list(self._sf_tables) if self.systematics else ["nominal"]
        nominal = self._analyse(obj, packed=True, truth_tables=names if truth else None)
        if truth:  # the tag probabilities carry the b-tagging (SFs included) in the rows
            bw = {name: np.ones(obj["n"]) for name in names}
        else:
            bw = self._btag_weights(nominal, names)
        weights = Weights(obj["n"], storeIndividual=True)
        weights.add("genWeight", obj["weight"])
        weights.add("btagSF", bw["nominal"])
        if self.systematics and not truth:  # truth tagging: the rows carry the SF variations
            with np.errstate(divide="ignore", invalid="ignore"):
                for s in H.WEIGHT_SYSTEMATICS:
                    up = np.where(bw["nominal"] > 0, bw[f"{s}Up"] / bw["nominal"], 1.0)
                    dn = np.where(bw["nominal"] > 0, bw[f"{s}Down"] / bw["nominal"], 1.0)
                    weights.add(s, np.ones(obj["n"]), up, dn)
        w_nom = weights.weight()
        wsets = {"nominal": w_nom}
        if self.systematics:
            for s in H.WEIGHT_SYSTEMATICS:
                wsets[f"{s}Up"] = weights.weight(f"{s}Up") if not truth else w_nom
                wsets[f"{s}Down"] = weights.weight(f"{s}Down") if not truth else w_nom
        fillers = {name: HF.RegionFiller(h) for name, h in hists.items()}
        self._fill(fillers, nominal, wsets)

        # cutflow (nominal weights): sequential cuts, tag categories, regions
        sel = nominal["sel"]
        steps = nominal["steps"]
        # "all": every event of the chunk with its generator weight (Σ = σ·L after
        # normalisation); the later rows also carry the b-tag SF weight
        masks = [sel.all(*steps[: i + 1]) for i in range(len(steps))]
        masks += [sel.all(*steps, t) for t in TAGS]
        masks += [nominal["regions"][r] for r in (*NONRES_REGIONS, *RES_REGIONS)]
        raw = np.array([n_events] + [int(np.count_nonzero(m)) for m in masks], dtype=np.int64)
        w2_nom = np.square(w_nom)
        # one index per row for both sums (rows without events are 0.0, as the sum of an
        # empty selection: no gather for them)
        sumw = np.zeros(len(masks) + 1)
        sumw2 = np.zeros(len(masks) + 1)
        sumw[0], sumw2[0] = float(gen_all.sum()), float(np.square(gen_all).sum())
        for i, (m, r) in enumerate(zip(masks, raw[1:], strict=True), start=1):
            if r:
                idx = np.flatnonzero(m)
                sumw[i], sumw2[i] = float(w_nom.take(idx).sum()), float(w2_nom.take(idx).sum())
        if truth:
            # b-tag rows of the cutflow from the truth-tag rows: weighted = Σ w·P, raw = the
            # MC events that contribute
            rows = nominal["rows"]
            wr = w_nom[rows["evt"]] * rows["p"]["nominal"]
            row_masks = [np.ones(len(wr), dtype=bool), rows["kind"] == 2, rows["kind"] == 1]
            row_masks += [rows["regions"][r] for r in (*NONRES_REGIONS, *RES_REGIONS)]
            first = len(SEQUENTIAL_STEPS) - 1  # "btag_1or2"
            evt = rows["evt"]
            in_order = bool((evt[1:] >= evt[:-1]).all())  # rows come event by event
            for k, m in enumerate(row_masks):
                m = m & (rows["p"]["nominal"] > 0)
                e, we = evt[m], wr[m]
                raw[first + k] = distinct_count(e, in_order)
                sumw[first + k] = float(we.sum())
                sumw2[first + k] = float(np.square(np.bincount(e, we)).sum())

        if self.systematics:
            gen_w = obj["weight"]
            scfg = self.cfg.systematics
            dpes, djes = scfg.photon_energy_scale, scfg.jet_energy_scale
            if self._compiled:  # the five passes and their fills in one compiled call
                self._fill_shifted_compiled(fillers, obj, nominal, truth, dpes, djes)
            else:
                shifted: list[tuple[str, dict[str, Any]]] = [
                    ("photon_scaleUp", {"photon_scale": 1.0 + dpes}),
                    ("photon_scaleDown", {"photon_scale": 1.0 - dpes}),
                    ("photon_resolutionUp", {"photon_scale": self._per_factor(obj)}),
                    # photons untouched: only the events whose nominal diphoton passed matter
                    ("jet_scaleUp", {"jet_scale": 1.0 + djes, "event_mask": nominal["regions"]["diphoton"]}),
                    ("jet_scaleDown", {"jet_scale": 1.0 - djes, "event_mask": nominal["regions"]["diphoton"]}),
                ]
                for name, kw in shifted:
                    if truth:
                        r = self._analyse(obj, truth_tables=["nominal"], **kw)
                        w = gen_w
                    else:
                        r = self._analyse(obj, **kw)
                        w = gen_w * self._btag_weights(r, ["nominal"])["nominal"]
                    self._fill(fillers, r, {name: w})
        t_end = time.perf_counter()
        timing = {"read_s": t_read - t0, "select_fill_s": t_end - t_read}
        return {dataset: {"events": n_events, "hists": hists, "timing": timing,
                          "cutflow": {"raw": raw, "sumw": sumw, "sumw2": sumw2}}}

    def _fill_shifted_compiled(self, fillers: Mapping[str, HF.RegionFiller], obj: dict[str, Any],
                               nominal: Mapping[str, Any], truth: bool, dpes: float, djes: float) -> None:
        """The shifted passes (photon scale up/down, resolution up, jet scale up/down) and
        their fills in one compiled call (:func:`selections.hh_yybb.shifted.shifted_entries`):
        the same entries as :meth:`_analyse` and :meth:`_fill` pass by pass."""
        photons: FlatCollection = obj["photons"]
        ok = photons["_fixed"]
        iso = []
        for spec in self.omap.photon.isolation:
            if not spec.relative:
                continue
            if spec.max is not None:
                iso.append((photons[spec.field], float(spec.max)))
            else:  # a relative flag without a maximum does not depend on pT
                ok = ok & np.asarray(O.requirement_mask(photons, spec), dtype=bool)
        jets: FlatCollection = obj["jets"]
        jet_fixed = np.asarray(O.jet_selection(jets, O.object_requirements(self.omap.jet), pt_min=None,
                                               eta_max=self.cfg.jets.eta_max), dtype=bool)
        vi = self._variation_index
        passes = [(KS.PASS_PHOTON_SCALE, 1.0 + dpes, vi["photon_scaleUp"]),
                  (KS.PASS_PHOTON_SCALE, 1.0 - dpes, vi["photon_scaleDown"]),
                  (KS.PASS_PHOTON_FACTORS, 0.0, vi["photon_resolutionUp"]),
                  (KS.PASS_JET_SCALE, 1.0 + djes, vi["jet_scaleUp"]),
                  (KS.PASS_JET_SCALE, 1.0 - djes, vi["jet_scaleDown"])]
        lm = obj["lepton_masks"]
        out = KS.shifted_entries(
            passes, photons=photons, photon_ok=ok, iso=iso, photon_pt_min=self.cfg.photons.pt_min,
            factors=self._per_factor(obj, mask=ok),  # only the photons a pass can select
            nominal={"i1": nominal["i1"], "i2": nominal["i2"], "myy": nominal["obs"]["m_yy"],
                     "diphoton": nominal["regions"]["diphoton"], "angle": nominal["angle"]},
            electrons=obj["electrons"], electron_mask=lm["electron"], muons=obj["muons"], muon_mask=lm["muon"],
            lepton_dr=self.cfg.leptons.photon_overlap_dr, jets=jets, jet_fixed=jet_fixed,
            jet_pt_min=self.cfg.jets.pt_min,
            pt_edges=() if self.btag.pt_edges is None else self.btag.pt_edges[1:-1],
            jet_dr=self.cfg.jets.photon_overlap_dr, bin_two=self._bin_two, bin_one=self._bin_one,
            cfg=self.cfg, truth=truth, eps=self._tt_eff["nominal"] if truth else None,
            sf_table=None if truth else self._sf_tables["nominal"], gen_weight=obj["weight"])
        xbins = HF.RegionFiller.bins_together(list(fillers.values()), list(out["obs"]))
        HF.fill_entries(list(fillers.values()), out["bits"], self._region_of_bit, xbins, out["variation"],
                        out["weight"], compiled=True)

    def _lepton_mask(self, leptons: FlatCollection, kind: str) -> Any:
        """:func:`selections.objects.lepton_selection` of the chunk's electrons or muons
        (``kind``): the object mapping's requirements and ``selection.hh_yybb.leptons``' cuts."""
        cuts = getattr(self.cfg.leptons, kind)
        return O.lepton_selection(leptons, O.object_requirements(getattr(self.omap, kind)), pt_min=cuts.pt_min,
                                  eta_max=cuts.eta_max, crack=getattr(cuts, "crack", None))

    def _fixed_photon_mask(self, ph: FlatCollection) -> np.ndarray:
        """Photons passing every requirement no energy shift can change: ID, non-relative
        isolation and other requirements, and the η acceptance (the rest of
        :func:`selections.objects.photon_selection`, the pT threshold and the relative
        isolation, is applied per pass by :meth:`_photon_mask`)."""
        pc = self.cfg.photons
        pm_ = self.omap.photon
        fixed = [pm_.id, *pm_.require, *(x for x in pm_.isolation if not x.relative)]
        pmask = O.kinematic_mask(ph, None, pc.eta_max, pc.crack)
        req = O.requirements_mask(ph, fixed)
        return np.asarray(pmask if req is True else pmask & req, dtype=bool)

    def _photon_mask(self, obj: dict[str, Any], photons: FlatCollection, shifted: bool) -> np.ndarray:
        """:func:`selections.objects.photon_selection` of this pass's ``photons``: the chunk's
        fixed requirements (:meth:`_fixed_photon_mask`, field ``_fixed``) and the pT
        threshold and relative isolation of the (possibly shifted) pT. The unshifted mask is
        computed once per chunk."""
        if not shifted and "photon_mask" in obj:
            return obj["photon_mask"]
        pc = self.cfg.photons
        mask = photons["_fixed"].copy()
        if pc.pt_min is not None:
            mask &= photons["pt"] > pc.pt_min
        for spec in self.omap.photon.isolation:
            if spec.relative:
                mask &= np.asarray(O.requirement_mask(photons, spec), dtype=bool)
        if not shifted:
            obj["photon_mask"] = mask
        return mask

    def _shift_candidates(self, ph: FlatCollection) -> np.ndarray:
        """Events with ≥ 2 photons passing the requirements no energy shift can change
        (field ``_fixed``, :meth:`_fixed_photon_mask`). A superset of the events the nominal
        or any shifted pass can put past ``two_photons`` (pT thresholds and relative
        isolation are left out; jets are not required: the ``diphoton`` region has none), so
        every pass runs on these events only."""
        return ph.count(ph["_fixed"]) >= 2

    def _per_factor(self, obj: dict[str, Any], mask: np.ndarray | None = None) -> np.ndarray:
        """Per-photon energy factor 1 + z·σ_extra/E of the resolution-up variation, with z a
        deterministic N(0,1) of (seed, event number, photon index); compiled with ``mask``:
        only for the photons in it (the others 1)."""
        cfg = self.cfg.systematics.photon_energy_resolution
        ph: FlatCollection = obj["photons"]
        kw = {"mask": mask} if mask is not None else {}
        return self._resolution_factors(ph.offsets, ph["pt"], ph["eta"], obj["event"], seed=cfg.seed,
                                        stochastic=cfg.stochastic, constant=cfg.constant,
                                        relative_uncertainty=cfg.relative_uncertainty, **kw)

    def postprocess(self, accumulator: Any) -> Any:
        if self.systematics:
            for entry in accumulator.values():
                for obs, h in entry["hists"].items():
                    for s in H.MIRRORED_SYSTEMATICS:
                        entry["hists"][obs] = H.mirror_down(h, s)
        return accumulator


# ---------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------
#: the run metrics a histogram set's summary keeps (:attr:`SelectionSummary.runner`)
RUNNER_SUMMARY = ("events", "wall_time_s", "process_time_s", "events_per_s_per_core", "cores", "executor")


@dataclass(frozen=True)
class SelectionSummary:
    """What made a histogram set: stored as its ``provenance`` (:meth:`to_dict`).

    Attributes:
        format: the input format.
        btag: the b-tagging used.
        selection_config_hash: :func:`~analysis.core.config.config_hash` of the ``selection`` section.
        branches: the ``Events`` branches read.
        runner: the run's metrics (the summary keeps :data:`RUNNER_SUMMARY` of them).
        read_s, select_fill_s: CPU-clock seconds in the processor reading the columns and
            selecting and filling, summed over chunks.
        taggers_in_memory: the taggers run in the processor (``models``), else empty.
    """

    format: str
    btag: BTagSpec
    selection_config_hash: str
    branches: list[str]
    runner: RunMetrics
    read_s: float
    select_fill_s: float
    taggers_in_memory: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (``HistSet.provenance`` of the selection's output)."""
        out: dict[str, Any] = {
            "stage": SUMMARY_STAGE,
            "format": self.format,
            "btag": self.btag.to_dict(),
            "selection_config_hash": self.selection_config_hash,
            "branches": self.branches,
            "runner": {k: getattr(self.runner, k) for k in RUNNER_SUMMARY},
            "processor_timing_s": {"read_s": self.read_s, "select_fill_s": self.select_fill_s},
        }
        if self.taggers_in_memory:
            out["taggers_in_memory"] = list(self.taggers_in_memory)
        return out


@dataclass(frozen=True)
class SelectionResult:
    """What :func:`run_selection` returns.

    Attributes:
        histset: the un-normalised histogram set, one sample per dataset (its ``provenance``
            is ``summary.to_dict()``).
        metrics: the runner's metrics of the run.
        summary: what made it (:class:`SelectionSummary`).
    """

    histset: H.HistSet
    metrics: RunMetrics
    summary: SelectionSummary


def _fileset_from_sample_metadata(files: Sequence[Any], extra: Mapping[str, Mapping[str, Any]],
                                  format: str) -> Fileset | None:
    """The fileset straight from merged generation metadata, without opening any file, when
    the files given are exactly the shards it lists (same file names: decorated ntuples keep
    the shard names) and it carries σ and Σw; None otherwise."""
    if not extra or format == "nanoaod":
        return None
    owner: dict[str, str] = {}
    for name, m in extra.items():
        if m.get("xsec_pb") is None or m.get("sumw") is None or not m.get("files"):
            return None
        for f in m["files"]:
            owner[Path(f).name] = name
    groups: dict[str, dict[str, str]] = {}
    for p in files:
        owner_name = owner.get(Path(os.fspath(p)).name)
        if owner_name is None:
            return None
        groups.setdefault(owner_name, {})[os.fspath(p)] = "Events"
    out = Fileset()
    for name, fs in groups.items():
        m = extra[name]
        if sorted(Path(f).name for f in fs) != sorted(Path(f).name for f in m["files"]):
            return None  # a subset of the shards: Σw must come from the files' Runs trees
        out[name] = {"files": fs, "metadata": {
            "format": "hepline", "sample": name, "process": m.get("process"), "xsec_pb": float(m["xsec_pb"]),
            "sumw": float(m["sumw"]), "n_files": len(fs), "n_events": int(m.get("n_events", 0)),
            "source": "sample metadata"}}
    return out


def sample_fileset(
    files: Sequence[str | os.PathLike[str]],
    *,
    format: str = "auto",
    dataset: str | None = None,
    sample_metadata: Mapping[str, Mapping[str, Any]] | Sequence[str | os.PathLike[str]] | None = None,
) -> Fileset:
    """Group ``files`` into one dataset per sample, with σ and Σw in the dataset metadata.

    hepline files go to the ``sample`` of their metadata (NanoAOD files to ``dataset``, or
    their folder's name). Σw is the sum of the ``Runs`` trees of the files given (so a subset
    of shards is normalised correctly). σ (``xsec_pb``) comes from ``sample_metadata`` (the
    generation stage's merged ``<sample>.json`` files, or ``{sample: {"xsec_pb": ...}}``)
    when it has the sample, else it is combined from the files like
    ``analysis.generation merge`` does (generated-event-weighted mean: Pythia's σ differs a
    little between shards, which is why ``Fileset.from_files`` cannot group them).
    When the merged metadata lists exactly the shards given (by file name), σ, Σw and the
    grouping are taken from it and no file is opened here.
    """
    extra: dict[str, dict[str, Any]] = {}
    if sample_metadata is not None:
        if isinstance(sample_metadata, Mapping):
            extra = {k: dict(v) for k, v in sample_metadata.items()}
        else:
            for p in sample_metadata:
                m = json.loads(Path(p).read_text())
                if "sample" not in m:
                    raise InputFileError(os.fspath(p), "sample metadata without a 'sample' key")
                extra[m["sample"]] = m
    fast = _fileset_from_sample_metadata(files, extra, format)
    if fast is not None:
        return fast
    groups: dict[str, dict[str, Any]] = {}
    for p in files:
        path = os.fspath(p)
        meta = read_metadata(path)
        fmt = meta["format"] if format == "auto" else format
        name = dataset or (str(meta["sample"]) if "sample" in meta else Path(path).resolve().parent.name)
        g = groups.setdefault(name, {"files": {}, "metas": [], "format": fmt})
        if g["format"] != fmt:
            raise InputFileError(path, f"format {fmt!r} differs from the {g['format']!r} files of {name!r}")
        g["files"][path] = "Events"
        g["metas"].append(meta)
    out = Fileset()
    for name, g in groups.items():
        metas = g["metas"]
        sumws = [m.get("runs", {}).get("genEventSumw", m.get("sumw")) for m in metas]
        sumw = float(sum(sumws)) if all(s is not None for s in sumws) else None
        xsec = None
        if name in extra and extra[name].get("xsec_pb") is not None:
            xsec = float(extra[name]["xsec_pb"])
            if extra[name].get("sumw") and sumw and abs(extra[name]["sumw"] - sumw) > 1e-6 * sumw:
                log.warning("sample %s: the files given hold sum(w) = %g of the sample's %g "
                            "(a subset of shards); normalising to the files given", name, sumw,
                            extra[name]["sumw"])
        elif all(m.get("xsec_pb") is not None for m in metas):
            xsec = combined_xsec(metas)[0]
        procs = {m.get("process") for m in metas}
        if len(procs) > 1:
            raise InputFileError(list(g["files"])[-1], f"files of sample {name!r} come from different processes {sorted(map(str, procs))}")
        out[name] = {"files": g["files"], "metadata": {
            "format": g["format"], "sample": name, "process": procs.pop(), "xsec_pb": xsec,
            "sumw": sumw, "n_files": len(g["files"]),
            "n_events": int(sum(m.get("n_entries", 0) for m in metas)),
        }}
    return out


def selection_runner(cfg: Config) -> RunnerConfig:
    """The runner settings this selection runs with: ``cfg.runner``, with
    ``selection.hh_yybb.chunksize`` (when not null) as the chunk size."""
    chunksize = cfg.selection.hh_yybb.chunksize
    return cfg.runner if chunksize is None else cfg.runner.replace(chunksize=int(chunksize))


def run_selection(
    files: Any,
    cfg: Config,
    working_points: WorkingPoints | str | os.PathLike[str] | None = None,
    *,
    models: TaggerModels | None = None,
    format: str = "auto",
    dataset: str | None = None,
    sample_metadata: Any = None,
    metrics_path: str | os.PathLike[str] | None = None,
) -> SelectionResult:
    """Run the HH → γγbb̄ selection over ``files``; nothing is written (but ``metrics_path``).

    Args:
        files: paths, or a ready :class:`~analysis.io.ingest.Fileset` (or coffea-style
            mapping) whose dataset metadata carries ``xsec_pb`` [pb] and ``sumw``.
        cfg: the configuration (its ``selection`` and ``runner`` sections are used;
            :func:`selection_runner`).
        working_points: the taggers stage's working points (:class:`WorkingPoints`, or the
            file) for hepline input (default ``selection.hh_yybb.btag.working_points_file``).
        models: trained taggers (:class:`taggers.models.TaggerModels`, e.g. from
            :func:`taggers.models.load_models`): the processor computes the jets'
            ``Jet_btag_<tagger>`` from their tracks instead of reading it, so undecorated
            hepline ntuples can be selected (the histograms equal those of the decorated
            ntuples).
        format: ``auto``, ``hepline`` or ``nanoaod``.
        dataset, sample_metadata: see :func:`sample_fileset`.
        metrics_path: the runner also writes its metrics (with its own provenance) here.

    Returns:
        The :class:`SelectionResult`: the un-normalised histogram set (one sample per
        dataset), the runner metrics and the summary.

    Raises:
        WorkingPointError: the working points do not fit (file, tagger, WP, branch).
        InputFileError: an unreadable or inconsistent input file.
        InputError: no input files, or a format the selection does not read.
    """
    selection = cfg.selection
    runner_cfg = selection_runner(cfg)
    if isinstance(files, Fileset):
        fileset = files
    elif isinstance(files, Mapping):
        fileset = Fileset.coerce(files, format=format)
    else:
        files = [files] if isinstance(files, (str, os.PathLike)) else list(files)
        if not files:
            raise InputError("HH -> yybb selection: no input files")
        fileset = sample_fileset(files, format=format, dataset=dataset, sample_metadata=sample_metadata)
    fmt = format
    if fmt == "auto":  # the datasets' format when they all name the same one, else the first file's
        named = {(e.get("metadata") or {}).get("format") for e in fileset.values()}
        fmt = str(named.pop()) if len(named) == 1 and None not in named else detect_format(fileset.files()[0])
    if fmt not in SUPPORTED_FORMATS:
        raise InputError(f"HH -> yybb selection reads {SUPPORTED_FORMATS} files, got {fmt!r}")
    btag = btag_spec(selection, fmt, working_points)
    proc = HHyybbProcessor(selection, fmt, btag, models=models)
    branches = proc.branches
    try:
        result = run_processor(proc, fileset, runner_cfg, format=fmt,
                               required_branches=form_filter(branches, fmt, strict=True) or branches,
                               metrics_path=metrics_path,
                               preload=branches if proc.read_mode == "preload" else None)
    except InputFileError as err:
        if btag.branch in err.reason:
            raise WorkingPointError(
                f"{err.path}: no branch {btag.branch!r}, which the b-tagging ({btag.source}, "
                f"tagger {btag.tagger!r}) cuts on; is the input decorated with this tagger, or is "
                "the working-point file for other ntuples?"
            ) from err
        raise
    hcfg = selection.hh_yybb
    hs = H.HistSet(
        lumi_fb=float(hcfg.histograms.lumi_fb),
        observables=list(OBSERVABLES),
        regions=list(REGIONS),
        variations=list(proc.variations),
        systematics=list(proc.systematics),
    )
    for name, entry in fileset.items():
        md = entry.get("metadata", {})
        out = result.output.get(name)
        if out is None:  # every chunk of the dataset was skipped; keep an empty entry
            out = {"events": 0, "hists": H.make_hists(OBSERVABLES, REGIONS, proc.variations, proc.binning),
                   "cutflow": {"raw": np.zeros(len(CUTFLOW_STEPS), np.int64),
                               "sumw": np.zeros(len(CUTFLOW_STEPS)), "sumw2": np.zeros(len(CUTFLOW_STEPS))}}
        hs.samples[name] = H.SampleHists(
            hists=out["hists"],
            xsec_pb=md.get("xsec_pb"),
            sumw=md.get("sumw"),
            n_events=int(out["events"]),
            files=list(entry["files"]),
            format=fmt,
            process=md.get("process"),
            cutflow=H.Cutflow(
                steps=list(CUTFLOW_STEPS),
                raw=[int(x) for x in out["cutflow"]["raw"]],
                sumw=[float(x) for x in out["cutflow"]["sumw"]],
                sumw2=[float(x) for x in out["cutflow"]["sumw2"]],
            ),
        )
    timing = {k: float(sum(o.get("timing", {}).get(k, 0.0) for o in result.output.values()))
              for k in ("read_s", "select_fill_s")}
    summary = SelectionSummary(
        format=fmt, btag=btag, selection_config_hash=config_hash(selection), branches=branches,
        runner=result.metrics, read_s=timing["read_s"], select_fill_s=timing["select_fill_s"],
        taggers_in_memory=tuple(models.taggers) if models is not None else (),
    )
    hs.provenance = summary.to_dict()
    return SelectionResult(histset=hs, metrics=result.metrics, summary=summary)


def cutflow_report(histset: H.HistSet) -> tuple[H.CutflowTable, str]:
    """(table, markdown) of the cutflow, σ×L-weighted where the samples carry σ [pb] and Σw
    (else the sums of weights, with a warning)."""
    try:
        normed = histset.normalise()
    except ValueError as exc:
        log.warning("cutflow not normalised (%s); weighted = sum of weights", exc)
        normed = histset
    table = normed.cutflow_table()
    return table, table.markdown()


def expects_compiled_engine(hh: SelectionHhYybb, sample_metadata: Sequence[str | os.PathLike[str]] | None) -> bool:
    """True if the compiled engine will run: ``engine: numba``, or ``auto`` with sample
    metadata files (the generation stage's merged ``<sample>.json``) of at least
    ``numba_min_events`` events (unreadable metadata counts as none). A command line warms
    the kernel up before freezing its start-up objects when it does
    (:func:`analysis.io.runner.freeze_startup_objects`)."""
    if hh.engine != "auto":
        return hh.engine == "numba"
    n = 0
    for path in sample_metadata or []:
        try:
            n += int(json.loads(Path(path).read_text()).get("n_events") or 0)
        except (OSError, ValueError, TypeError, AttributeError):
            continue
    return n >= hh.numba_min_events


def select(
    cfg: Config,
    files: Sequence[str],
    *,
    output: str | os.PathLike[str],
    working_points: str | os.PathLike[str] | None = None,
    cutflow_json: str | os.PathLike[str] | None = None,
    cutflow_md: str | os.PathLike[str] | None = None,
    metrics: str | os.PathLike[str] | None = None,
    format: str = "auto",
    dataset: str | None = None,
    sample_metadata: Sequence[str] | None = None,
) -> SelectionResult:
    """The ``hepline select`` stage: :func:`run_selection` on ``files`` and its outputs written.

    Writes (atomically, each with the stage's provenance record ``hh_yybb.select``: the
    config's hash, the smearing seed, the identities of the inputs) the histogram set
    (``output``, :meth:`analysis.stats.histograms.HistSet.write`), and when asked the runner
    metrics JSON, the cutflow table as JSON and as markdown (:func:`cutflow_report`).

    Args:
        cfg: the configuration.
        files: the sample's ntuples (paths or URLs; URLs are recorded by name only).
        output: the histogram-set pickle (un-normalised; ``hepline histograms`` merges).
        working_points: the taggers stage's ``working_points.json``.
        cutflow_json, cutflow_md: the cutflow table files.
        metrics: the runner metrics file.
        format, dataset, sample_metadata: as for :func:`run_selection` (``sample_metadata``:
            the generation stage's merged ``<sample>.json`` files).

    Returns:
        The :class:`SelectionResult`.
    """
    remote = [f for f in files if "://" in f]  # URLs have no local identity: named only
    rec = provenance_record(
        stage=STAGE, config=cfg, seeds={"smearing": cfg.selection.hh_yybb.systematics.photon_energy_resolution.seed},
        inputs=[*(f for f in files if "://" not in f), *([working_points] if working_points else []),
                *(sample_metadata or [])],
        extra={"format": format, "dataset": dataset, **({"remote_inputs": remote} if remote else {})},
    )
    res = run_selection(files, cfg, working_points, format=format, dataset=dataset, sample_metadata=sample_metadata)
    if metrics:
        write_json(metrics, res.metrics.to_dict(), provenance=rec)
    res.histset.write(output, provenance=rec)
    table, md = cutflow_report(res.histset)
    if cutflow_json:
        write_json(cutflow_json, table.to_dict(), provenance=rec)
    if cutflow_md:
        write_text(cutflow_md, md, provenance=rec)
    m = res.metrics
    log.info("selected %d events in %.1f s (%.0f events/s/core)\n%s", m.events, m.wall_time_s,
             m.events_per_s_per_core or 0.0, md)
    return res
