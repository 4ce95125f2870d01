"""The HH → γγbb̄ selection as a readable coffea processor: the reference engine.

In the style of the Analysis Grand Challenge's ttbar processor: the chunk's objects
(:func:`selections.hh_yybb.inputs.read_inputs`), then, for the nominal pass and each
systematic variation, the object selections and event cuts of
:mod:`selections.hh_yybb.cuts` (each cut written once there), coffea's ``PackedSelection``
for the cuts and categories, coffea's ``Weights`` for the event weights, and one
``Hist.fill`` per region and variation. The regions are the data
:data:`selections.hh_yybb.cuts.REGIONS`.

Systematic variations: the b-tagging scale factors per flavour (event weights), and the
photon energy scale (±δ), the photon energy resolution (extra smearing, up; down mirrored
about nominal) and the jet energy scale (±δ), for which the selection runs again on the
shifted objects. Truth-tagged samples (``selection.hh_yybb.btag.truth_tag_samples``) enter
the b-tagged regions once per way their jets can be tagged, weighted by its probability
(:func:`selections.hh_yybb.btag.truth_tag_rows`).

Definitions (as in :mod:`selections.hh_yybb.cuts`): leptons and jets are removed near the
two diphoton photons only, not near every selected photon; "central jets" are the selected
jets (pT > 25 GeV, |η| < 2.5, jet ID, after that photon overlap removal); j₁ and j₂ of the
category cuts are the two b-jet candidates ordered by pT; no jet is removed near a lepton
(no ΔR < 0.2 jet–lepton removal: an event with a selected lepton is already vetoed).

Only events with two photon candidates (:func:`selections.hh_yybb.cuts.photon_candidates`,
which no energy shift changes) can pass a cut after ``all``: the passes run on those
(≈ 25 % of a γγ sample); the ``all`` row of the cutflow counts every event.

The compiled engine (:mod:`selections.hh_yybb.compiled`) gives the same histograms and
cutflows faster; ``tests/selections/hh_yybb/test_engines.py`` holds them equal.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import awkward as ak
import hist
import numpy as np
from coffea import processor
from coffea.analysis_tools import PackedSelection, Weights

from analysis.core.config import SelectionConfig
from analysis.stats import histograms as H
from selections import objects as O
from selections.hh_yybb import cuts as C
from selections.hh_yybb.btag import (
    BTagSpec,
    BTagTables,
    InMemoryTagger,
    distinct_count,
    truth_tag_rows,
)
from selections.hh_yybb.inputs import (
    EventInputs,
    InputKind,
    needed_branches,
    object_map,
    read_inputs,
)
from selections.hh_yybb.smearing import resolution_factors_numpy

if TYPE_CHECKING:
    from taggers.models import TaggerModels

__all__ = ["HHyybbProcessor"]


def _counts_offsets(mask: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    counts = np.asarray(ak.to_numpy(ak.sum(mask, axis=1)), dtype=np.int64)
    return counts, np.concatenate([[0], np.cumsum(counts)])


class HHyybbProcessor(processor.ProcessorABC):
    """The HH → γγbb̄ selection (module docstring), readable.

    ``process`` returns ``{dataset: {"events", "hists": {observable: Hist(region,
    variation, observable)}, "cutflow": {"raw", "sumw", "sumw2"}}}`` (un-normalised;
    weights: generator weight × b-tag SF weight). Collision data (``kind.is_data``) are
    counted with weight 1 and no systematic variation, after the certified-luminosity mask
    (``lumi_mask``) when one is given (``"lumi_masked"``: the events it removed).

    With ``models`` (trained taggers), the jets' discriminant is computed from each chunk's
    jets and tracks (:class:`selections.hh_yybb.btag.InMemoryTagger`) instead of read, so
    undecorated hepline ntuples can be selected; the chunks are then read through lazy
    NanoEvents (the taggers read their own inputs).

    Args:
        selection: the ``selection`` section.
        kind: the input (:class:`selections.hh_yybb.inputs.InputKind`, or a format: simulation).
        btag: the resolved b-tagging (:func:`selections.hh_yybb.btag.btag_spec`).
        read_mode: ``preload`` or ``nanoevents`` (default ``selection.hh_yybb.read_mode``).
        models: trained taggers that tag the jets in the processor (hepline only).
        lumi_mask: collision data: ``mask(run, luminosityBlock)``, the certified luminosity
            blocks (:func:`analysis.io.lumi.load_lumi_mask`).

    Attributes:
        branches: the ``Events`` branches read (:func:`selections.hh_yybb.inputs.needed_branches`).
        read_mode: how the runner reads them.
    """

    def __init__(self, selection: SelectionConfig, kind: str | InputKind, btag: BTagSpec,
                 read_mode: str | None = None, *, models: TaggerModels | None = None,
                 lumi_mask: Callable[[Any, Any], Any] | None = None):
        self.kind = InputKind.of(kind)
        self.omap = object_map(selection, self.kind)
        self.cfg = selection.hh_yybb
        self.btag = btag
        self._tagger = InMemoryTagger(models, self.kind.format, btag) if models is not None else None
        # trained taggers read their own inputs; PHYSLITE's containers are read lazily by coffea
        lazy = models is not None or self.kind.format == "physlite"
        self.read_mode = "nanoevents" if lazy else (read_mode or self.cfg.read_mode)
        self.lumi_mask = lumi_mask if self.kind.is_data else None
        self.branches = needed_branches(selection, self.kind, btag.field, tagged_in_memory=models is not None)
        if self.lumi_mask is not None:
            self.branches += ["run", "luminosityBlock"]
        self.tables = BTagTables.build(btag, self.cfg.btag.scale_factors)
        self.systematics = list(H.SYSTEMATICS) if self.cfg.systematics.enabled and not self.kind.is_data else []
        self.variations = H.variation_names(self.systematics)
        self.binning = {name: b.to_dict() for name, b in self.cfg.histograms.binning.items()}
        self.truth_tag_samples = set(self.cfg.btag.truth_tag_samples)

    # -- one pass of the selection -------------------------------------------------------
    def _analyse(self, objs: EventInputs, photon_pt: ak.Array | None = None, *, reorder_photons: bool = False,
                 jet_scale: float = 1.0, truth_tables: Sequence[str] | None = None) -> dict[str, Any]:
        """The selection on ``objs`` with the photons' pT replaced by ``photon_pt`` (a shift;
        ``reorder_photons``: a per-photon shift that can change their order) and the jets'
        pT and mass scaled by ``jet_scale``. With ``truth_tables`` (variations of
        :attr:`tables`) the b-tagged regions come from truth-tag rows (key ``rows``)."""
        c = self.cfg
        photons = objs.photons
        if photon_pt is not None:
            photons = ak.with_field(photons, photon_pt, "pt")
        candidates = C.photon_candidates(photons, self.omap.photon, c)
        selected = C.selected_photons(photons, candidates, self.omap.photon, c)
        dp = C.diphoton(photons, selected, by_pt=reorder_photons)

        n_lep = np.zeros(len(objs), dtype=np.int64)
        for kind in ("electron", "muon"):
            leptons = getattr(objs, f"{kind}s")
            mask = C.selected_leptons(leptons, getattr(self.omap, kind), getattr(c.leptons, kind))
            mask = mask & O.overlap_free_of_points(leptons, dp.points(), c.leptons.photon_overlap_dr)
            n_lep = n_lep + np.asarray(ak.to_numpy(ak.sum(mask, axis=1)), dtype=np.int64)

        jets = objs.jets
        if jet_scale != 1.0:
            jets = ak.with_field(ak.with_field(jets, jets["pt"] * jet_scale, "pt"), jets["mass"] * jet_scale, "mass")
        jet_mask = C.selected_jets(jets, self.omap.jet, c)
        jet_mask = jet_mask & O.overlap_free_of_points(jets, dp.points(), c.jets.photon_overlap_dr)
        n_j = np.asarray(ak.to_numpy(ak.sum(jet_mask, axis=1)), dtype=np.int64)
        bins = O.tag_bin(jets[self.btag.field], self.tables.cuts)
        t = self.tables
        tag = C.tag_category(bins, jet_mask, t.bin_two, t.bin_one)

        rows = None
        if truth_tables is not None:
            steps = C.event_cuts(dp, n_lep, n_j, tag, c)
            pre = np.logical_and.reduce([steps[s] for s in C.PRETAG_STEPS])
            rows = self._truth_rows(jets, jet_mask, pre, truth_tables, dp)
            tag = np.zeros(len(objs), dtype=np.int64)  # the event-level tag categories stay empty

        cand, leading = C.jet_candidates(jets, jet_mask, bins, tag, t.bin_two, t.bin_one)
        pair = C.pair_observables(cand.a, cand.b, dp, c.categories.mstar_offset)
        lead_pair = C.pair_observables(leading.a, leading.b, dp, c.categories.mstar_offset)
        masks = {**C.event_cuts(dp, n_lep, n_j, tag, c), "2tag": tag == 2, "1tag": tag == 1,
                 **C.categories(pair, dp.myy, c)}
        selection = PackedSelection()
        selection.add_multiple(masks)
        regions = {name: selection.all(*needs) for name, needs in C.REGIONS.items()}
        return {
            "selection": selection,
            "regions": regions,
            "obs": {"m_yy": dp.myy, "m_bb": pair["m_bb"], "m_star": pair["m_star"]},
            "obs_leading": {"m_yy": dp.myy, "m_bb": lead_pair["m_bb"], "m_star": lead_pair["m_star"]},
            "jets": jets,
            "jet_mask": jet_mask,
            "bins": bins,
            "rows": rows,
        }

    def _eff_class(self, jets: ak.Array, mask: ak.Array) -> tuple[np.ndarray, np.ndarray]:
        """Flat efficiency class and tag bin of the jets in ``mask`` (in event order)."""
        flav = self.omap.jet.flavour
        pt = np.asarray(ak.to_numpy(ak.flatten(jets["pt"][mask])))
        if flav:
            fc = O.flavour_class(np.asarray(ak.to_numpy(ak.flatten(jets[flav][mask]))))
        else:  # collision data: no truth flavour, SF weights are 1
            fc = np.zeros(len(pt), dtype=np.int8)
        return fc.astype(np.int64) * self.tables.n_pt + self.btag.pt_bin(pt), pt

    def _btag_weights(self, res: Mapping[str, Any], names: Sequence[str]) -> dict[str, np.ndarray]:
        mask = res["jet_mask"]
        eff_class, _ = self._eff_class(res["jets"], mask)
        bins = np.asarray(ak.to_numpy(ak.flatten(res["bins"][mask])), dtype=np.int64)
        _, offsets = _counts_offsets(mask)
        return self.tables.event_weights(eff_class, bins, offsets, names)

    def _truth_rows(self, jets: ak.Array, jet_mask: ak.Array, pre: np.ndarray, names: Sequence[str],
                    dp: C.Diphoton) -> dict[str, Any]:
        """Truth-tag rows of the events ``pre`` with their regions and observables."""
        counts = np.asarray(ak.to_numpy(ak.num(jets["pt"], axis=1)), dtype=np.int64)
        evt = np.repeat(np.arange(len(counts)), counts)
        all_jets = ak.ones_like(jets["pt"], dtype=bool)
        eff_class, _ = self._eff_class(jets, all_jets)
        flat_mask = np.asarray(ak.to_numpy(ak.flatten(jet_mask)), dtype=bool)
        tt = truth_tag_rows(evt, len(counts), eff_class, flat_mask, pre,
                            {name: self.tables.truth_efficiencies[name] for name in names})
        e = tt["evt"]
        flat = {f: np.asarray(ak.to_numpy(ak.flatten(jets[f])), dtype=np.float64) for f in ("pt", "eta", "phi", "mass")}
        a = {f: flat[f][tt["c0"]] for f in flat}
        b = {f: flat[f][tt["c1"]] for f in flat}
        dpe = C.Diphoton(pt1=dp.pt1[e], eta1=dp.eta1[e], phi1=dp.phi1[e], pt2=dp.pt2[e], eta2=dp.eta2[e],
                         phi2=dp.phi2[e], myy=dp.myy[e])
        pair = C.pair_observables(a, b, dpe, self.cfg.categories.mstar_offset)
        cats = C.categories(pair, dpe.myy, self.cfg)
        regions = {}
        for t, kind in zip(C.TAGS, (2, 1), strict=True):
            is_t = tt["kind"] == kind
            for name, needs in C.REGIONS.items():
                if t in needs:  # the categories after the tag (the event cuts are the rows' pre-selection)
                    regions[name] = is_t & np.logical_and.reduce([cats[n] for n in needs[needs.index(t) + 1:]])
        return {**tt, "regions": regions, "obs": {"m_yy": dpe.myy, "m_bb": pair["m_bb"], "m_star": pair["m_star"]}}

    # -- filling ----------------------------------------------------------------------------
    def _fill(self, hists: Mapping[str, hist.Hist], res: Mapping[str, Any], weights: Mapping[str, np.ndarray]) -> None:
        """Fill every region of one pass for each weight variation. Events enter the
        inclusive regions with the observables of the two leading jets, the b-tagged ones
        with those of the b-jet candidates; truth-tag rows with the event weight × the
        row's probability for that variation. An observable that an entry lacks (m_bb with
        fewer than two jets) is not filled for it."""
        for region, mask in res["regions"].items():
            obs = res["obs_leading"] if region in C.INCLUSIVE_REGIONS else res["obs"]
            for variation, w in weights.items():
                self._fill_entries(hists, region, variation, obs, mask, w[mask])
        rows = res["rows"]
        if rows is not None:
            p = rows["p"]
            for region, mask in rows["regions"].items():
                for variation, w in weights.items():
                    wr = w[rows["evt"][mask]] * p.get(variation, p["nominal"])[mask]
                    self._fill_entries(hists, region, variation, rows["obs"], mask, wr)

    @staticmethod
    def _fill_entries(hists: Mapping[str, hist.Hist], region: str, variation: str,
                      obs: Mapping[str, np.ndarray], mask: np.ndarray, weight: np.ndarray) -> None:
        for name, h in hists.items():
            x = obs[name][mask]
            ok = np.isfinite(x)
            h.fill(region=region, variation=variation, **{name: x[ok]}, weight=weight[ok])

    # -- the chunk ----------------------------------------------------------------------------
    def process(self, events: Any) -> dict[str, Any]:
        dataset = events.metadata.get("dataset", "default")
        t0 = time.perf_counter()
        n_read = len(events)
        if self.lumi_mask is not None:
            certified = self.lumi_mask(ak.to_numpy(events["run"]), ak.to_numpy(events["luminosityBlock"]))
            events = events[np.asarray(certified, dtype=bool)]
        computed = self._tagger(events) if self._tagger is not None else None
        everything = read_inputs(events, self.omap, self.btag.field, btag_values=computed,
                                 compute_jet_id=self.kind.computes_jet_id)
        # NaN/inf where a cut reads is an error naming the file, branch and event: the photons
        # of every event, the other objects of the events that can pass the two-photon cut
        source = events.metadata.get("filename", "<events>")
        everything.check_finite(source, self.btag.field, self.omap, collections=("photons",))
        candidates = C.photon_candidates(everything.photons, self.omap.photon, self.cfg)
        objs = everything.take(np.asarray(ak.to_numpy(ak.sum(candidates, axis=1) >= 2)))
        objs.check_finite(source, self.btag.field, self.omap, collections=("jets", "electrons", "muons"))
        t_read = time.perf_counter()
        hists = H.make_hists(C.OBSERVABLES, tuple(C.REGIONS), self.variations, self.binning)

        truth = dataset in self.truth_tag_samples
        names = list(self.tables.variations) if self.systematics else ["nominal"]
        nominal = self._analyse(objs, truth_tables=names if truth else None)
        bw = ({name: np.ones(len(objs)) for name in names} if truth or self.kind.is_data  # rows carry it; data: 1
              else self._btag_weights(nominal, names))
        weights = Weights(len(objs), storeIndividual=True)
        weights.add("genWeight", objs.weight)
        weights.add("btagSF", bw["nominal"])
        if self.systematics and not truth:
            with np.errstate(divide="ignore", invalid="ignore"):
                for s in H.WEIGHT_SYSTEMATICS:
                    up = np.where(bw["nominal"] > 0, bw[f"{s}Up"] / bw["nominal"], 1.0)
                    down = np.where(bw["nominal"] > 0, bw[f"{s}Down"] / bw["nominal"], 1.0)
                    weights.add(s, np.ones(len(objs)), up, down)
        w_nom = weights.weight()
        wsets = {"nominal": w_nom}
        for s in H.WEIGHT_SYSTEMATICS if self.systematics else ():
            wsets[f"{s}Up"] = w_nom if truth else weights.weight(f"{s}Up")
            wsets[f"{s}Down"] = w_nom if truth else weights.weight(f"{s}Down")
        self._fill(hists, nominal, wsets)
        cutflow = self._cutflow(nominal, w_nom, everything.weight, truth)

        if self.systematics:
            scfg = self.cfg.systematics
            pt = objs.photons["pt"]
            shifted: list[tuple[str, dict[str, Any]]] = [
                ("photon_scaleUp", {"photon_pt": pt * (1.0 + scfg.photon_energy_scale)}),
                ("photon_scaleDown", {"photon_pt": pt * (1.0 - scfg.photon_energy_scale)}),
                ("photon_resolutionUp", {"photon_pt": pt * self._resolution_factors(objs), "reorder_photons": True}),
                ("jet_scaleUp", {"jet_scale": 1.0 + scfg.jet_energy_scale}),
                ("jet_scaleDown", {"jet_scale": 1.0 - scfg.jet_energy_scale}),
            ]
            for name, shift in shifted:
                res = self._analyse(objs, truth_tables=["nominal"] if truth else None, **shift)
                w = objs.weight if truth else objs.weight * self._btag_weights(res, ["nominal"])["nominal"]
                self._fill(hists, res, {name: w})
        timing = {"read_s": t_read - t0, "select_fill_s": time.perf_counter() - t_read}
        return {dataset: {"events": len(everything), "hists": hists, "timing": timing, "cutflow": cutflow,
                          "lumi_masked": n_read - len(everything)}}

    def _resolution_factors(self, objs: EventInputs) -> ak.Array:
        """Per-photon energy factor 1 + z·σ_extra/E of the resolution-up variation (z: a
        deterministic N(0, 1) of the seed, the event number and the photon's index)."""
        r = self.cfg.systematics.photon_energy_resolution
        counts = np.asarray(ak.to_numpy(ak.num(objs.photons["pt"], axis=1)), dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        flat = resolution_factors_numpy(offsets, np.asarray(ak.to_numpy(ak.flatten(objs.photons["pt"]))),
                                        np.asarray(ak.to_numpy(ak.flatten(objs.photons["eta"]))), objs.event,
                                        seed=r.seed, stochastic=r.stochastic, constant=r.constant,
                                        relative_uncertainty=r.relative_uncertainty)
        return ak.unflatten(flat, counts)

    def _cutflow(self, nominal: Mapping[str, Any], w: np.ndarray, weight_all: np.ndarray,
                 truth: bool) -> dict[str, np.ndarray]:
        """Raw and weighted counts after each row of :data:`selections.hh_yybb.cuts.CUTFLOW_STEPS`
        (``all``: every event with its generator weight; then the nominal weights)."""
        sel: PackedSelection = nominal["selection"]
        steps = list(C.SEQUENTIAL_STEPS[1:])
        masks = [sel.all(*steps[: i + 1]) for i in range(len(steps))]
        masks += [sel.all(*steps, t) for t in C.TAGS]
        masks += [nominal["regions"][r] for r in (*C.NONRES_REGIONS, *C.RES_REGIONS)]
        raw = np.array([len(weight_all)] + [int(np.count_nonzero(m)) for m in masks], dtype=np.int64)
        sumw = np.array([float(weight_all.sum())] + [float(w[m].sum()) for m in masks])
        sumw2 = np.array([float(np.square(weight_all).sum())] + [float(np.square(w)[m].sum()) for m in masks])
        if truth:  # the b-tag rows from the truth-tag rows: Σ w·P, and the MC events that contribute
            rows = nominal["rows"]
            wr = w[rows["evt"]] * rows["p"]["nominal"]
            row_masks = [np.ones(len(wr), dtype=bool), rows["kind"] == 2, rows["kind"] == 1]
            row_masks += [rows["regions"][r] for r in (*C.NONRES_REGIONS, *C.RES_REGIONS)]
            first = len(C.SEQUENTIAL_STEPS) - 1
            evt = rows["evt"]
            in_order = bool((evt[1:] >= evt[:-1]).all())
            for k, m in enumerate(row_masks):
                m = m & (rows["p"]["nominal"] > 0)
                raw[first + k] = distinct_count(evt[m], in_order)
                sumw[first + k] = float(wr[m].sum())
                sumw2[first + k] = float(np.square(np.bincount(evt[m], wr[m])).sum())
        return {"raw": raw, "sumw": sumw, "sumw2": sumw2}

    def postprocess(self, accumulator: Any) -> Any:
        return H.mirror_one_sided(accumulator) if self.systematics else accumulator
