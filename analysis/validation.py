"""Sample validation: control histograms of a sample, read through NanoEvents, in any format.

This stage closes the foundation's part of the workflow and doubles as the end-to-end test of
ingestion: it runs a coffea processor (through :func:`analysis.io.runner.run_processor`) over a
sample's files and fills ``hist`` histograms of the quantities later stages rely on.

hepline ntuples (:class:`ValidationProcessor`, :func:`make_histograms`):

* jet pT per truth flavour, and the jet response pT(reco)/pT(truth) against pT(truth);
* the lifetime-signed transverse impact-parameter significance of tracks in jets, per flavour;
* the diphoton mass of the two leading tight photons.

CMS NanoAOD, ATLAS PHYSLITE and Delphes (TTree or RNTuple; :class:`ObjectValidationProcessor`,
:func:`make_object_histograms`), on the common view of :func:`analysis.io.views.object_view`
(GeV):

* jet pT, and per truth flavour where the file has one (simulation);
* the pT of the leading photon, electron and muon;
* the mass of the two leading photons, where the file has photons;
* the jet response against the matched generator jet (NanoAOD simulation).

Outputs: a ROOT file of TH1s, a JSON summary of the key numbers and a PNG of paper-style
plots (mplhep), each with its provenance (:mod:`analysis.core.provenance`: the ROOT file holds
it, the JSON and PNG have sidecars). :func:`validate` computes in memory (a
:class:`ValidationResult`); :func:`validate_sample` also writes the files. Command line::

    hepline validate --config workflows/config/default.yaml --sample ttbar \\
        --output-dir results/validation [--workers N] [--format auto] results/samples/ttbar/ttbar_*.root
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import awkward as ak
import hist
import numpy as np
from coffea import processor

from analysis.core.atomic import atomic_path, write_json
from analysis.core.checks import check_finite, check_finite_lists
from analysis.core.config import Config, RunnerConfig
from analysis.core.provenance import provenance_record
from analysis.io.ingest import Fileset, detect_format
from analysis.io.runner import run_processor
from analysis.io.views import object_view

log = logging.getLogger(__name__)

__all__ = [
    "FLAVOURS",
    "JET_ETA_MAX",
    "JET_PT_MIN_GEV",
    "LEADING_OBJECTS",
    "MIN_EFFECTIVE_ENTRIES",
    "ObjectValidationProcessor",
    "ValidationProcessor",
    "ValidationResult",
    "make_histograms",
    "make_object_histograms",
    "plot",
    "summarise",
    "summarise_objects",
    "validate",
    "validate_sample",
    "write_root",
]

FLAVOURS = {5: "b", 4: "c", 0: "light", 15: "tau"}
JET_PT_MIN_GEV = 20.0
JET_ETA_MAX = 2.5


def _flavour_axis() -> hist.axis.IntCategory:
    return hist.axis.IntCategory(list(FLAVOURS), name="flavour", label="truth flavour")


def make_histograms() -> dict[str, hist.Hist]:
    """Empty validation histograms (weighted storage)."""
    return {
        "jet_pt": hist.Hist(_flavour_axis(), hist.axis.Regular(40, 20, 420, name="pt", label=r"jet $p_T$ [GeV]"),
                            storage=hist.storage.Weight()),
        "jet_response": hist.Hist(
            hist.axis.Variable([20, 30, 50, 80, 120, 200, 500, 2000], name="gen_pt", label=r"truth-jet $p_T$ [GeV]"),
            hist.axis.Regular(60, 0.4, 1.6, name="response", label=r"$p_T^{reco}/p_T^{truth}$"),
            storage=hist.storage.Weight(),
        ),
        "track_sd0": hist.Hist(_flavour_axis(), hist.axis.Regular(80, -20, 20, name="sd0", label=r"signed $d_0/\sigma(d_0)$"),
                               storage=hist.storage.Weight()),
        "m_yy": hist.Hist(hist.axis.Regular(55, 105, 160, name="m_yy", label=r"$m_{\gamma\gamma}$ [GeV]"),
                          storage=hist.storage.Weight()),
    }


class ValidationProcessor(processor.ProcessorABC):
    """Fills :func:`make_histograms` from hepline NanoEvents (one output entry per dataset)."""

    def process(self, events: Any) -> dict[str, Any]:
        dataset = events.metadata.get("dataset", "default")
        h = make_histograms()
        w_evt = ak.values_astype(events.genWeight, np.float64)

        jets = events.Jet
        sel = (jets.pt > JET_PT_MIN_GEV) & (np.abs(jets.eta) < JET_ETA_MAX)
        jets = jets[sel]
        w_jet = ak.broadcast_arrays(w_evt, jets.pt)[0]
        flav = jets.hadronConeExclTruthLabelID
        h["jet_pt"].fill(flavour=_np(flav), pt=_np(jets.pt), weight=_np(w_jet))

        matched = jets[jets.genJetIdx >= 0]
        gen_pt = matched.genJet.pt
        h["jet_response"].fill(gen_pt=_np(gen_pt), response=_np(matched.pt / gen_pt),
                               weight=_np(ak.broadcast_arrays(w_evt, matched.pt)[0]))

        trk = jets.tracks  # events -> jets -> tracks
        jet_b = ak.broadcast_arrays(jets.phi, trk.phi)
        sign = np.sign(np.sin(jet_b[0] - trk.phi) * trk.d0)
        sd0 = sign * np.abs(trk.d0) / trk.d0Err
        tflav = ak.broadcast_arrays(flav, trk.pt)[0]
        tw = ak.broadcast_arrays(w_evt, trk.pt)[0]
        good = np.abs(trk.d0) < 1.0
        h["track_sd0"].fill(flavour=_np(tflav[good]), sd0=_np(sd0[good]), weight=_np(tw[good]))

        ph = events.Photon
        ph = ph[ph.isTight & (ph.isoCalo < 0.065 * ph.pt) & (ph.isoTrack < 0.05 * ph.pt)]
        two = ak.num(ph) >= 2
        pair = ph[two]
        myy = (pair[:, 0] + pair[:, 1]).mass
        h["m_yy"].fill(m_yy=ak.to_numpy(myy), weight=ak.to_numpy(w_evt[two]))

        return {dataset: {"hists": h, "events": len(events), "sumw": float(ak.sum(w_evt))}}

    def postprocess(self, accumulator: Any) -> Any:
        return accumulator


LEADING_OBJECTS = ("photon", "electron", "muon")
"""The collections whose leading-object pT :class:`ObjectValidationProcessor` histograms."""

MIN_EFFECTIVE_ENTRIES = 20
"""Fewest effective entries ((Σw)²/Σw²) for a median in :func:`summarise_objects`; fewer
give ``"insufficient statistics (N)"``."""


def make_object_histograms() -> dict[str, hist.Hist]:
    """Empty histograms of :class:`ObjectValidationProcessor` (weighted storage, GeV)."""
    def pt_axis(label: str) -> hist.axis.Regular:
        return hist.axis.Regular(50, 0, 250, name="pt", label=label)

    out = {
        "jet_pt_all": hist.Hist(hist.axis.Regular(40, 20, 420, name="pt", label=r"jet $p_T$ [GeV]"),
                                storage=hist.storage.Weight()),
        "jet_pt": hist.Hist(_flavour_axis(), hist.axis.Regular(40, 20, 420, name="pt", label=r"jet $p_T$ [GeV]"),
                            storage=hist.storage.Weight()),
        "jet_response": make_histograms()["jet_response"],
        "m_yy": hist.Hist(hist.axis.Regular(60, 0, 300, name="m_yy", label=r"$m_{\gamma\gamma}$ [GeV]"),
                          storage=hist.storage.Weight()),
    }
    for name in LEADING_OBJECTS:
        out[f"lead_{name}_pt"] = hist.Hist(pt_axis(f"leading {name} $p_T$ [GeV]"), storage=hist.storage.Weight())
    return out


class ObjectValidationProcessor(processor.ProcessorABC):
    """Fills :func:`make_object_histograms` from the common object view
    (:func:`analysis.io.views.object_view`) of NanoAOD, PHYSLITE, Delphes (or hepline) events.

    Jets: pT > :data:`JET_PT_MIN_GEV`, |η| < :data:`JET_ETA_MAX`. ``m_yy``: the two
    highest-pT photons, no identification (a control distribution, not a selection).
    The output's ``present`` set names what the files hold (``flavour``, ``photons``,
    ``response``); histograms of what is absent stay empty and are left out of the results.
    """

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt

    def process(self, events: Any) -> dict[str, Any]:
        dataset = events.metadata.get("dataset", "default")
        h = make_object_histograms()
        view = object_view(events, self.fmt)
        _check_finite_view(view, events.metadata)
        w_evt = view.weight
        present: set[str] = set()

        jets = view.jets
        sel = (jets.pt > JET_PT_MIN_GEV) & (np.abs(jets.eta) < JET_ETA_MAX)
        jets = jets[sel]
        w_jet = ak.broadcast_arrays(w_evt, jets.pt)[0]
        h["jet_pt_all"].fill(pt=_np(jets.pt), weight=_np(w_jet))
        if view.has_flavour:
            present.add("flavour")
            h["jet_pt"].fill(flavour=_np(jets.flavour), pt=_np(jets.pt), weight=_np(w_jet))
        if self.fmt == "nanoaod" and "GenJet" in events.fields and "genJetIdx" in events.Jet.fields:
            present.add("response")
            raw = events.Jet[sel]
            matched = raw[raw.genJetIdx >= 0]
            gen = matched.matched_gen
            ok = ~ak.is_none(gen, axis=1)
            matched, gen = matched[ok], gen[ok]
            h["jet_response"].fill(gen_pt=_np(gen.pt), response=_np(matched.pt / gen.pt),
                                   weight=_np(ak.broadcast_arrays(w_evt, matched.pt)[0]))

        for name, coll in zip(LEADING_OBJECTS, (view.photons, view.electrons, view.muons), strict=True):
            lead = ak.max(coll.pt, axis=1)
            has = ak.to_numpy(~ak.is_none(lead))
            h[f"lead_{name}_pt"].fill(pt=ak.to_numpy(lead[has]), weight=w_evt[has])
        if view.has_photons:
            present.add("photons")
            ph = view.photons[ak.argsort(view.photons.pt, axis=1, ascending=False)]
            two = ak.to_numpy(ak.num(ph) >= 2)
            pair = ph[two]
            h["m_yy"].fill(m_yy=ak.to_numpy((pair[:, 0] + pair[:, 1]).mass), weight=w_evt[two])

        return {dataset: {"hists": h, "events": len(events), "sumw": float(w_evt.sum()), "present": present}}

    def postprocess(self, accumulator: Any) -> Any:
        return accumulator


def _slice(h: hist.Hist, index: Any) -> hist.Hist:
    """``h[index]`` as a histogram (hist's typing also allows a scalar for full reductions)."""
    return cast(hist.Hist, h[index])


def _total(h: hist.Hist) -> float:
    """The sum of weights of ``h`` (Weight storage or plain)."""
    s = h.sum()
    return float(getattr(s, "value", s))


def _np(x: ak.Array) -> np.ndarray:
    return ak.to_numpy(ak.flatten(x, axis=None))


def summarise(hists: dict[str, hist.Hist]) -> dict[str, Any]:
    """Key numbers from the validation histograms."""
    out: dict[str, Any] = {}
    jp = hists["jet_pt"]
    counts = {name: _total(_slice(jp, (hist.loc(f), slice(None)))) for f, name in FLAVOURS.items()}
    total = sum(counts.values())
    out["jets"] = total
    out["flavour_fractions"] = {k: (v / total if total else None) for k, v in counts.items()}

    resp = hists["jet_response"].project("response")
    out["jet_response_median"] = _median(resp)
    sd0 = hists["track_sd0"]
    tails = {}
    for f, name in FLAVOURS.items():
        h1 = _slice(sd0, (hist.loc(f), slice(None)))
        vals, edges = h1.values(), h1.axes[0].edges
        tot = vals.sum()
        tails[name] = {
            "tracks": float(tot),
            "frac_sd0_gt_3": float(vals[edges[:-1] >= 3].sum() / tot) if tot else None,
            "frac_sd0_lt_-3": float(vals[edges[1:] <= -3].sum() / tot) if tot else None,
        }
    out["track_sd0_tails"] = tails
    myy = hists["m_yy"]
    out["diphoton_events"] = _total(myy)
    core = _slice(myy, slice(hist.loc(115.0), hist.loc(135.0)))
    if _total(core) > 50:
        out["m_yy_median"] = _median(core)
        out["m_yy_half_width_68"] = 0.5 * (_quantile(core, 0.84) - _quantile(core, 0.16))
    return out


def _effective_entries(h: hist.Hist) -> float:
    """(Σw)²/Σw² of a Weight-storage histogram (the entries for unit weights)."""
    s = h.sum()
    value, variance = float(getattr(s, "value", s)), float(getattr(s, "variance", s))
    return value * value / variance if variance > 0 else 0.0


def _median_or_insufficient(h1: hist.Hist) -> float | str:
    n = _effective_entries(h1)
    if n < MIN_EFFECTIVE_ENTRIES:
        return f"insufficient statistics ({round(n)})"
    median = _median(h1)
    return median if median is not None else f"insufficient statistics ({round(n)})"


def summarise_objects(hists: dict[str, hist.Hist]) -> dict[str, Any]:
    """Key numbers of the :class:`ObjectValidationProcessor` histograms present in ``hists``.

    ``jets`` (Σw of selected jets), ``flavour_fractions`` (with truth flavour),
    ``jet_response_median``, ``leading_pt_median_gev`` (per object), ``diphoton_events`` and
    ``m_yy_median`` (with photons). A median of fewer than :data:`MIN_EFFECTIVE_ENTRIES`
    effective entries is ``"insufficient statistics (N)"``.
    """
    out: dict[str, Any] = {"jets": _total(hists["jet_pt_all"])}
    if "jet_pt" in hists:
        jp = hists["jet_pt"]
        counts = {name: _total(_slice(jp, (hist.loc(f), slice(None)))) for f, name in FLAVOURS.items()}
        total = sum(counts.values())
        out["flavour_fractions"] = {k: (v / total if total else None) for k, v in counts.items()}
    if "jet_response" in hists:
        out["jet_response_median"] = _median_or_insufficient(hists["jet_response"].project("response"))
    out["leading_pt_median_gev"] = {name: _median_or_insufficient(hists[f"lead_{name}_pt"])
                                    for name in LEADING_OBJECTS if f"lead_{name}_pt" in hists}
    if "m_yy" in hists:
        out["diphoton_events"] = _total(hists["m_yy"])
        out["m_yy_median"] = _median_or_insufficient(hists["m_yy"])
    return out


_PRESENCE = {"jet_pt": "flavour", "jet_response": "response", "m_yy": "photons", "lead_photon_pt": "photons"}


def _present_hists(hists: dict[str, hist.Hist], present: set[str]) -> dict[str, hist.Hist]:
    """The histograms of what the files hold (:class:`ObjectValidationProcessor`)."""
    return {k: h for k, h in hists.items() if _PRESENCE.get(k, "") in present or k not in _PRESENCE}


def _quantile(h1: hist.Hist, q: float) -> float:
    vals = h1.values()
    edges = h1.axes[0].edges
    cdf = np.cumsum(vals) / vals.sum()
    i = int(np.searchsorted(cdf, q))
    lo = cdf[i - 1] if i > 0 else 0.0
    frac = (q - lo) / (cdf[i] - lo) if cdf[i] > lo else 0.0
    return float(edges[i] + frac * (edges[i + 1] - edges[i]))


def _median(h1: hist.Hist) -> float | None:
    return _quantile(h1, 0.5) if h1.values().sum() > 0 else None


def write_root(
    path: str | Path, hists: dict[str, hist.Hist], *, provenance: dict[str, Any] | None = None
) -> None:
    """One TH1 per histogram and flavour (``<name>_<flavour>``), written atomically (with
    the ``provenance`` record, if given)."""
    import uproot

    with atomic_path(path, provenance=provenance) as tmp, uproot.recreate(tmp) as f:
        for name, h in hists.items():
            if "flavour" in h.axes.name:
                for fl, label in FLAVOURS.items():
                    f[f"{name}_{label}"] = h[hist.loc(fl), ...]
            elif h.ndim == 1:
                f[name] = h
            else:
                f[name] = h.project(str(list(h.axes.name)[1]))


def plot(hists: dict[str, hist.Hist], sample: str, *, data: bool = False) -> Any:
    """A 2×2 panel of the validation plots (mplhep ATLAS style); returns the Figure.

    hepline histograms (:func:`make_histograms`) or those of the common object view
    (:func:`make_object_histograms`, the ones present); ``data`` labels collision data.
    """
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.ATLAS)
    if "track_sd0" not in hists:
        return _plot_objects(hists, sample, data)
    fig, axes = plt.subplots(2, 2, figsize=(14, 11))
    ax = axes[0, 0]
    for fl, label in FLAVOURS.items():
        h1 = _slice(hists["jet_pt"], (hist.loc(fl), slice(None)))
        if _total(h1) > 0:
            mplhep.histplot(h1, ax=ax, label=f"{label} jets")
    ax.set_yscale("log")
    ax.legend()
    ax = axes[0, 1]
    for fl, label in ((5, "b"), (4, "c"), (0, "light")):
        h1 = _slice(hists["track_sd0"], (hist.loc(fl), slice(None)))
        if _total(h1) > 0:
            mplhep.histplot(h1 / _total(h1), ax=ax, label=f"tracks in {label} jets")
    ax.set_yscale("log")
    ax.set_ylabel("fraction of tracks")
    ax.legend()
    ax = axes[1, 0]
    mplhep.histplot(hists["jet_response"].project("response"), ax=ax, label="jets, $|\\eta|<2.5$")
    ax.legend()
    ax = axes[1, 1]
    mplhep.histplot(hists["m_yy"], ax=ax, label="two leading tight isolated photons")
    ax.legend()
    for a in axes.flat:
        mplhep.label.exp_text("hepline", "Simulation", ax=a, loc=1)
    fig.suptitle(f"hepline validation: {sample}")
    fig.tight_layout()
    return fig


def _plot_objects(hists: dict[str, hist.Hist], sample: str, data: bool) -> Any:
    import matplotlib.pyplot as plt
    import mplhep

    fig, axes = plt.subplots(2, 2, figsize=(14, 11))
    ax = axes[0, 0]
    if "jet_pt" in hists:
        for fl, label in FLAVOURS.items():
            h1 = _slice(hists["jet_pt"], (hist.loc(fl), slice(None)))
            if _total(h1) > 0:
                mplhep.histplot(h1, ax=ax, label=f"{label} jets")
    else:
        mplhep.histplot(hists["jet_pt_all"], ax=ax, label="jets")
    ax.set_yscale("log")
    ax.legend()
    ax = axes[0, 1]
    for name in LEADING_OBJECTS:
        key = f"lead_{name}_pt"
        if key in hists and _total(hists[key]) > 0:
            mplhep.histplot(hists[key], ax=ax, label=f"leading {name}")
    ax.set_xlabel(r"leading-object $p_T$ [GeV]")
    ax.legend()
    ax = axes[1, 0]
    if "m_yy" in hists:
        mplhep.histplot(hists["m_yy"], ax=ax, label="two leading photons")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no photon collection in the files", ha="center", va="center", transform=ax.transAxes)
    ax = axes[1, 1]
    if "jet_response" in hists:
        mplhep.histplot(hists["jet_response"].project("response"), ax=ax, label="jets, $|\\eta|<2.5$")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no matched generator jets", ha="center", va="center", transform=ax.transAxes)
    for a in axes.flat:
        mplhep.label.exp_text("hepline", "Data" if data else "Simulation", ax=a, loc=1)
    fig.suptitle(f"hepline validation: {sample}")
    fig.tight_layout()
    return fig


@dataclass
class ValidationResult:
    """The validation of one sample: its histograms and the key numbers.

    Attributes:
        sample: the sample's name.
        events: events read.
        sumw: their sum of generator weights (the number of events for collision data).
        hists: hepline: ``jet_pt`` (GeV, per flavour), ``jet_response``, ``track_sd0`` (per
            flavour), ``m_yy`` (GeV); other formats: those of :func:`make_object_histograms`
            that the files allow.
        numbers: the medians and fractions of :func:`summarise` (hepline) or
            :func:`summarise_objects` (other formats, with ``format``, ``storage``,
            ``is_data`` and, for NanoAOD, ``nanoaod_version`` first).
        runner: events, wall time and rate of the coffea run.
        format: the input format.
        is_data: collision data.
    """

    sample: str
    events: int
    sumw: float
    hists: dict[str, hist.Hist] = field(repr=False)
    numbers: dict[str, Any]
    runner: dict[str, Any]
    format: str = "hepline"
    is_data: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary written next to the histograms."""
        return {"sample": self.sample, "events": self.events, "sumw": self.sumw, **self.numbers,
                "runner": self.runner}


def validate(files: Sequence[str], sample: str, runner: RunnerConfig | None = None, *,
             format: str = "auto") -> ValidationResult:
    """Fill the validation histograms of one sample's files (in memory).

    Args:
        files: the sample's files (one format; TTree or RNTuple).
        sample: the sample's name.
        runner: how the coffea processor runs (default: :meth:`RunnerConfig.default`).
        format: ``"auto"`` (detected from the first file), ``"hepline"``, ``"nanoaod"``,
            ``"physlite"`` or ``"delphes"``. hepline files get the hepline histograms
            (:class:`ValidationProcessor`), the others those of the common object view
            (:class:`ObjectValidationProcessor`).
    """
    fmt = detect_format(files[0]) if format == "auto" and files else format
    if fmt == "hepline":
        result = run_processor(ValidationProcessor(), {sample: {"files": {f: "Events" for f in files}}}, runner,
                               format="hepline")
        entry = result.output[sample]
        numbers = summarise(entry["hists"])
        hists = entry["hists"]
        is_data = False
    else:
        fileset = Fileset.coerce({sample: list(files)}, format=fmt)
        result = run_processor(ObjectValidationProcessor(fmt), fileset, runner, format=fmt)
        entry = result.output[sample]
        hists = _present_hists(entry["hists"], entry["present"])
        metadata = result.fileset[sample]["metadata"]
        is_data = bool(metadata["is_data"])
        storages = sorted({i.storage for i in result.fileset.infos.values()})
        facts = {"format": fmt, "storage": "+".join(storages), "is_data": is_data}
        if fmt == "nanoaod":
            facts["nanoaod_version"] = metadata.get("nanoaod_version")
        numbers = {**facts, **summarise_objects(hists)}
    return ValidationResult(
        sample=sample, events=entry["events"], sumw=entry["sumw"], hists=hists,
        numbers=numbers,
        runner={"events": result.metrics.events, "wall_time_s": result.metrics.wall_time_s,
                "events_per_s_per_core": result.metrics.events_per_s_per_core},
        format=fmt, is_data=is_data,
    )


def _check_finite_view(view: Any, metadata: Any) -> None:
    """hepline's non-finite policy (:mod:`analysis.core.checks`): NaN or inf in an object's
    pT, η, φ or mass, or in the event weight, is an error naming the file, the field and the
    first entry (the tree entry), never a silently dropped object."""
    source = str(metadata.get("filename", "<events>"))
    start = int(metadata.get("entrystart", 0) or 0)
    entries = start + np.arange(len(view.weight))
    check_finite(view.weight, "event weight", source=source, entry=entries)
    for name in ("jets", "photons", "electrons", "muons"):
        for var in ("pt", "eta", "phi", "mass"):
            check_finite_lists(getattr(view, name)[var], f"{name}.{var}", source=source, entry=entries)


def validate_sample(files: Sequence[str], sample: str, output_dir: str | Path, cfg: Config, *,
                    format: str = "auto") -> ValidationResult:
    """Validate one sample and write ``<sample>.root``, ``.png`` and ``.json`` (with provenance)
    into ``output_dir``. ``format``: as for :func:`validate`."""
    from analysis.plot.style import save_figure, use_file_backend

    use_file_backend()
    out_dir = Path(output_dir)
    result = validate(files, sample, cfg.runner, format=format)
    record = provenance_record(stage="validation", config=cfg, inputs=files, extra={"sample": sample})
    write_root(out_dir / f"{sample}.root", result.hists, provenance=record)
    save_figure(plot(result.hists, sample, data=result.is_data), out_dir / f"{sample}.png", dpi=90,
                provenance=record)
    write_json(out_dir / f"{sample}.json", result.to_dict(), provenance=record)
    log.info("validated %s: %d events", sample, result.events)
    return result
