"""b-tagging of the HH → γγbb̄ selection: working points, scale-factor weights, truth tagging.

Shared by both engines of the selection (the readable :mod:`selections.hh_yybb.reference`
and the compiled :mod:`selections.hh_yybb.compiled`):

- :class:`WorkingPoints`: the taggers stage's working-point file (``working_points.json``),
  checked where it is used, errors naming the file and the key;
- :func:`btag_spec` → :class:`BTagSpec`: the discriminant, the cuts and the MC
  efficiencies of the 2-tag and 1-tag working points, from the working-point file (hepline)
  or the config (CMS NanoAOD, ATLAS PHYSLITE);
- :class:`BTagTables`: per variation (nominal, b-tag SF up/down per flavour), the per-jet
  weights of the pseudo-continuous scale-factor method and the truth-tagging efficiencies;
- :func:`truth_tag_rows`: truth tagging, every way an event's jets can make it 2-tag or
  1-tag, with its probability.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np

from analysis.core.config import SelectionConfig
from analysis.core.config.selection import AtlasBTagConfig, CmsBTagConfig, FlavourScaleFactor
from analysis.core.errors import WorkingPointError
from selections import objects as O
from selections.hh_yybb.inputs import InputKind, object_map

if TYPE_CHECKING:
    from taggers.models import TaggerModels

log = logging.getLogger(__name__)

__all__ = [
    "BTagSpec",
    "BTagTables",
    "InMemoryTagger",
    "TaggerWorkingPoints",
    "WorkingPoint",
    "WorkingPoints",
    "btag_spec",
    "check_decorated_with",
    "distinct_count",
    "load_working_points",
    "truth_tag_rows",
]


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
    provenance: Mapping[str, Any] = field(default_factory=dict)

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
        prov = data.get("provenance")
        return cls(taggers=out, source=source, provenance=dict(prov) if isinstance(prov, Mapping) else {})

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


def check_decorated_with(wps: WorkingPoints, tagger: str, decorated: Mapping[str, Any], path: str) -> None:
    """Check that ``path``, an ntuple decorated with ``decorated`` (its metadata's ``taggers``
    entry), was decorated by the training whose working points ``wps`` are: the same model
    file of ``tagger`` (SHA-256) and the same prepared dataset (``dataset_id``). A fact that
    either side does not record is not compared.

    Raises:
        WorkingPointError: naming both files, the tagger and what differs.
    """
    models = wps.provenance.get("models") or {}
    wp_sha = (models.get(tagger) or {}).get("sha256") if isinstance(models, Mapping) else None
    files = decorated.get("files") or {}
    nt_sha = (files.get(tagger) or {}).get("sha256") if isinstance(files, Mapping) else None
    if wp_sha and nt_sha and wp_sha != nt_sha:
        raise WorkingPointError(f"{wps.source}: the working points of {tagger} come from model sha256 {wp_sha[:12]}, "
                                f"but {path} was decorated by model sha256 {nt_sha[:12]} (another training); use "
                                "the working points of the models that decorated the ntuples")
    wp_ds, nt_ds = wps.provenance.get("dataset_id"), decorated.get("dataset_id")
    if wp_ds and nt_ds and wp_ds != nt_ds:
        raise WorkingPointError(f"{wps.source}: working points of prepared dataset {wp_ds}, but {path} was "
                                f"decorated by taggers trained on dataset {nt_ds} (another training)")


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


def _atlas_btag_spec(bcfg: AtlasBTagConfig, kind: InputKind) -> BTagSpec:
    """The :class:`BTagSpec` of PHYSLITE b-tagging from config (``field``: the tagger, whose
    discriminant :func:`selections.hh_yybb.inputs.read_inputs` computes)."""
    key = "selection.objects.physlite.jet.btag"
    two, one = bcfg.two_tag_wp, bcfg.one_tag_wp
    for wp in (two, one):
        if wp not in bcfg.working_points:
            raise WorkingPointError(f"{key}: working point {wp!r} not in working_points "
                                    f"({', '.join(bcfg.working_points)})")
        if wp not in bcfg.efficiencies:
            raise WorkingPointError(f"{key}.efficiencies: no efficiencies for working point {wp!r}")
    cuts = {wp: float(bcfg.working_points[wp]) for wp in {two, one}}
    log.info("%s: b-tagging %s (f_c = %g), %s > %g (2-tag), %s > %g (1-tag), from %s", kind.describe(),
             bcfg.tagger, bcfg.fraction_c, two, cuts[two], one, cuts[one], key)
    return BTagSpec(field=bcfg.tagger, branch=f"{bcfg.container}.{bcfg.tagger}", two_tag_wp=two, one_tag_wp=one,
                    cuts=cuts, efficiencies={wp: bcfg.efficiencies[wp].to_dict() for wp in cuts},
                    source="config", tagger=bcfg.tagger)


def btag_spec(
    selection: SelectionConfig,
    kind: str | InputKind,
    working_points: WorkingPoints | str | os.PathLike[str] | None = None,
) -> BTagSpec:
    """Resolve the b-tagging of the input ``kind`` from the config and (hepline) the WP file.

    hepline: tagger and WP names from ``selection.hh_yybb.btag``; cuts, branch and
    efficiencies (b: ``b_efficiency``, c: 1/``c_rejection``, light: 1/``light_rejection``)
    from the working points (``working_points``, else
    ``selection.hh_yybb.btag.working_points_file``), which must name the branch
    ``Jet_btag_<tagger>``. nanoaod: from ``selection.objects.nanoaod.jet.btag``, the
    discriminant and working points of the era (``selection.objects.nanoaod.eras.<era>.btag``)
    where it leaves them null; physlite: from ``selection.objects.physlite.jet.btag`` (the
    tagger, f_c and the cuts on its discriminant). The cuts used are logged.

    Args:
        selection: the ``selection`` section.
        kind: the input format (``hepline``, ``nanoaod``, ``physlite``) or :class:`InputKind`.
        working_points: the working points, or their file.

    Returns:
        The :class:`BTagSpec`.

    Raises:
        WorkingPointError: no working points, or they lack the tagger or a WP (naming the
            file and the key); truth tagging asked for without the jets' truth flavour.
    """
    kind = InputKind.of(kind)
    fmt = kind.format
    omap = object_map(selection, kind)
    jet_map = omap.jet
    truth_tagged = selection.hh_yybb.btag.truth_tag_samples
    if truth_tagged and not jet_map.flavour and not kind.is_data:  # data: no truth-tagged sample (run_selection)
        raise WorkingPointError(f"selection.hh_yybb.btag.truth_tag_samples {sorted(truth_tagged)} needs the jet "
                                f"truth flavour, but selection.objects.{fmt}.jet has no 'flavour' field")
    coll = jet_map.collection
    bcfg = jet_map.btag
    if isinstance(bcfg, (AtlasBTagConfig, CmsBTagConfig)) and working_points is not None:
        source = working_points.source if isinstance(working_points, WorkingPoints) else os.fspath(working_points)
        log.warning("%s: the working-point file %s is not used: the b-tagging of %s files comes from "
                    "selection.objects.%s.jet.btag (an external evaluation writes that section: "
                    "hepline taggers evaluate --discriminant ... -> selection_btag.json)", kind.describe(), source,
                    fmt, fmt)
    if isinstance(bcfg, AtlasBTagConfig):  # PHYSLITE, source: config
        return _atlas_btag_spec(bcfg, kind)
    if isinstance(bcfg, CmsBTagConfig):  # source: config
        era_key = f"selection.objects.{fmt}.eras.{getattr(omap, 'version', '?')}.btag"
        common = selection.objects.nanoaod.jet.btag
        era_variable = getattr(selection.objects.nanoaod.eras, str(getattr(omap, "version", ""))).btag.variable
        if common.variable is not None and common.working_points is None and common.variable != era_variable:
            raise WorkingPointError(f"selection.objects.{fmt}.jet.btag.variable is {common.variable!r} but its "
                                    f"working points are the era's, for {era_variable!r} ({era_key}); set "
                                    f"selection.objects.{fmt}.jet.btag.working_points too")
        if bcfg.working_points is None:
            raise WorkingPointError(f"{kind.describe()}: no b-tagging working points known for "
                                    f"Jet_{bcfg.variable}; set {era_key}.working_points (BTV's for your year) "
                                    f"or selection.objects.{fmt}.jet.btag.working_points")
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
        assert var is not None  # object_map fills in the era's
        log.info("%s: b-tagging Jet_%s, %s > %g (2-tag), %s > %g (1-tag), from %s", kind.describe(), var, two,
                 cfg_cuts[two], one, cfg_cuts[one],
                 f"selection.objects.{fmt}.jet.btag" if common.working_points is not None else era_key)
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


@dataclass(frozen=True)
class BTagTables:
    """Per variation, what the b-tagging weights need: the pseudo-continuous SF weight of a
    jet by (efficiency class, tag bin), and the truth-tagging efficiencies (ε_2tag, ε_1tag)
    by efficiency class. The efficiency class of a jet is flavour class × number of pT
    bins + its pT bin (:meth:`BTagSpec.pt_bin`; one bin without efficiency maps).

    Attributes:
        wps: the used working points, loose → tight.
        cuts: their cuts, same order (:func:`selections.objects.tag_bin`).
        bin_two, bin_one: the tag bins from which a jet passes the 2-tag / 1-tag WP.
        n_pt: pT bins of the efficiency maps.
        sf_tables: variation → weight table [efficiency class, tag bin].
        truth_efficiencies: variation → (ε_2tag, ε_1tag) per efficiency class (data
            efficiencies: SF × MC efficiency, clipped to [0, 1]).
    """

    wps: tuple[str, ...]
    cuts: tuple[float, ...]
    bin_two: int
    bin_one: int
    n_pt: int
    sf_tables: Mapping[str, np.ndarray]
    truth_efficiencies: Mapping[str, tuple[np.ndarray, np.ndarray]]

    @classmethod
    def build(cls, btag: BTagSpec, scale_factors: Any) -> BTagTables:
        """From the resolved b-tagging and ``selection.hh_yybb.btag.scale_factors`` (per truth
        flavour class, a nominal SF and its uncertainty: the variations are
        ``btag_<flavour>Up/Down`` = nominal ± uncertainty of that flavour)."""
        wps = btag.ordered_wps
        eff = btag.efficiency_table(wps)  # [pT bin, WP, flavour class]
        n_pt = eff.shape[0]
        sfs: list[FlavourScaleFactor] = [getattr(scale_factors, f) for f in O.FLAVOUR_CLASSES]
        nom = np.array([s.nominal for s in sfs])
        unc = np.array([s.uncertainty for s in sfs])
        i_two, i_one = wps.index(btag.two_tag_wp), wps.index(btag.one_tag_wp)
        # the efficiencies as [WP, efficiency class]: btag_weight_table works column by column
        eff_by_class = eff.transpose(1, 2, 0).reshape(len(wps), len(O.FLAVOUR_CLASSES) * n_pt)

        def sf_table(s: np.ndarray) -> np.ndarray:
            return O.btag_weight_table(eff_by_class, np.tile(np.repeat(s, n_pt), (len(wps), 1)))

        def truth(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            e2, e1 = (np.clip(s[:, None] * eff[:, i, :].T, 0, 1).ravel() for i in (i_two, i_one))
            return e2, e1

        tables = {"nominal": sf_table(nom)}
        truth_eff = {"nominal": truth(nom)}
        for i, fl in enumerate(O.FLAVOUR_CLASSES):
            for sign, tag in ((+1, "Up"), (-1, "Down")):
                s = nom.copy()
                s[i] = nom[i] + sign * unc[i]
                tables[f"btag_{fl}{tag}"] = sf_table(s)
                truth_eff[f"btag_{fl}{tag}"] = truth(s)
        return cls(wps=tuple(wps), cuts=tuple(btag.cuts[wp] for wp in wps), bin_two=i_two + 1, bin_one=i_one + 1,
                   n_pt=n_pt, sf_tables=tables, truth_efficiencies=truth_eff)

    @property
    def variations(self) -> tuple[str, ...]:
        """``nominal`` and the b-tag SF variations."""
        return tuple(self.sf_tables)

    def event_weights(self, eff_class: np.ndarray, tag_bin: np.ndarray, offsets: np.ndarray,
                      names: Sequence[str]) -> dict[str, np.ndarray]:
        """Per variation of ``names``, the SF event weight: the product over each event's
        jets (flat ``eff_class`` and ``tag_bin`` of the jets that count, ``offsets``: n + 1
        event boundaries) of the jet weights."""
        return {name: O.btag_event_weight_flat(eff_class, tag_bin, offsets, self.sf_tables[name]) for name in names}


def truth_tag_rows(evt: np.ndarray, n_events: int, eff_class: np.ndarray, jet_mask: np.ndarray,
                   event_mask: np.ndarray, efficiencies: Mapping[str, tuple[np.ndarray, np.ndarray]],
                   ) -> dict[str, Any]:
    """Truth tagging: every way an event's selected jets can make it 2-tag or 1-tag, with its
    probability, instead of cutting on the discriminant.

    The jets are flat arrays (``evt``: the event index of each, of ``n_events`` events),
    ordered by decreasing pT within each event; ``jet_mask`` selects the jets,
    ``event_mask`` the events to expand. ``efficiencies[name] = (ε_2tag, ε_1tag)``, each
    indexed by the jets' ``eff_class`` (flavour class × number of pT bins + pT bin, for
    pT-dependent efficiency maps; the flavour class,
    :data:`selections.objects.FLAVOUR_CLASSES`, without maps); the 1-tag WP is nested
    inside the 2-tag one (ε_1tag ≤ ε_2tag per jet). The rows reproduce the cut-based
    categories of the selection exactly in expectation:

    - 2-tag with candidates (a, b), a < b: a and b are the two leading jets tagged at the
      2-tag WP, P = ε_a ε_b Π_{k<b, k≠a} (1 − ε_k);
    - 1-tag with tagged jet a: a is the only jet at the 2-tag WP and passes the 1-tag WP,
      P = ε¹_a Π_{k≠a} (1 − ε_k); the second candidate is the leading other jet.

    Returns ``{"evt", "kind" (2 or 1), "c0", "c1" (flat jet indices), "p": {name: P}}``,
    rows ordered by event, then 2-tag pairs (b = 1, 2, ...; a < b), then 1-tag jets.
    Summed over an event's rows, P is P(2-tag) + P(1-tag) ≤ 1.
    """
    m = np.asarray(jet_mask) & np.asarray(event_mask)[evt]
    idx = np.flatnonzero(m)
    ev = evt[idx]
    counts = np.bincount(ev, minlength=n_events)
    starts = np.concatenate([[0], np.cumsum(counts)])[:-1]
    rank = np.arange(len(idx)) - starts[ev]
    events = np.flatnonzero(counts > 0)
    nmax = int(counts.max()) if len(idx) else 0
    row_of = np.full(n_events, -1, dtype=np.int64)
    row_of[events] = np.arange(len(events))
    J = np.full((len(events), nmax), -1, dtype=np.int64)
    J[row_of[ev], rank] = idx
    present = J >= 0
    fc = np.asarray(eff_class, dtype=np.intp)[np.where(present, J, 0)]

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

    # rows by event, then as combined above (2-tag pairs by b then a, then 1-tag jets)
    order = np.argsort(cat(evt_parts, np.int64), kind="stable")
    return {
        "evt": cat(evt_parts, np.int64)[order],
        "kind": cat(kind_parts, np.int8)[order],
        "c0": cat(c0_parts, np.int64)[order],
        "c1": cat(c1_parts, np.int64)[order],
        "p": {name: cat(v, np.float64)[order] for name, v in out_p.items()},
    }


def distinct_count(values: np.ndarray, in_order: bool = False) -> int:
    """Number of distinct ``values``; ``in_order``: they are non-decreasing (counted from
    the changes, without sorting)."""
    if not in_order:
        return int(np.unique(values).size)
    return int(np.count_nonzero(values[1:] != values[:-1])) + 1 if values.size else 0


class InMemoryTagger:
    """The jets' b-tagging discriminant computed from a chunk's jets and tracks by trained
    taggers (:func:`taggers.decorate.decorate_events`, as the decoration stage does, with the
    detector parameters of the chunk's file), instead of read from a decorated file.

    Args:
        models: the trained taggers (:func:`taggers.models.load_models`).
        fmt: the input format (hepline only: the taggers read hepline's tracks).
        btag: the b-tagging the selection cuts with (its tagger must be one of ``models``).

    Raises:
        WorkingPointError: the input is not hepline, or the taggers do not hold the tagger.
    """

    def __init__(self, models: TaggerModels, fmt: str, btag: BTagSpec):
        if fmt != "hepline" or not btag.tagger:
            raise WorkingPointError(f"in-memory tagging (models) needs hepline input tagged with a working-point "
                                    f"file, not {fmt} input b-tagged from {btag.source}")
        if btag.tagger not in models.taggers:
            raise WorkingPointError(f"the taggers given hold {', '.join(models.taggers)}, not "
                                    f"selection.hh_yybb.btag.tagger {btag.tagger!r}")
        self.models = models
        self.branch = btag.branch
        self._detectors: dict[str, Any] = {}  # per input file, its detector parameters

    def __call__(self, events: Any) -> ak.Array:
        """The discriminant of every jet of ``events`` (one list per event, file order)."""
        from analysis.io.ingest import read_metadata
        from taggers.decorate import decorate_events

        source = str((getattr(events, "metadata", None) or {}).get("filename", "<chunk>"))
        if source not in self._detectors:
            self._detectors[source] = read_metadata(source).get("detector") if source != "<chunk>" else None
        out = decorate_events(events, self.models, detector=self._detectors[source], source=source)
        return out[self.branch]
