"""Sample validation: control histograms of every generated sample, read through NanoEvents.

This stage closes the foundation's part of the workflow and doubles as the end-to-end test of
ingestion: it runs a coffea processor (through :func:`analysis.io.runner.run_processor`) over a
sample's shards and fills ``hist`` histograms of the quantities later stages rely on:

* jet pT per truth flavour, and the jet response pT(reco)/pT(truth) against pT(truth);
* the lifetime-signed transverse impact-parameter significance of tracks in jets, per flavour;
* the diphoton mass of the two leading tight photons.

Outputs: a ROOT file of TH1s, a JSON summary of the key numbers and a PNG of paper-style
plots (mplhep), each with its provenance (:mod:`analysis.core.provenance`: the ROOT file holds
it, the JSON and PNG have sidecars). Command line::

    python -m analysis.validation --config workflows/config/default.yaml --sample ttbar \\
        --output-dir results/validation [--workers N] results/samples/ttbar/ttbar_*.root
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import awkward as ak
import hist
import numpy as np
from coffea import processor

from analysis.core.atomic import atomic_path, write_json
from analysis.core.config import load_raw_config
from analysis.core.provenance import provenance_record
from analysis.io.runner import run_module_main, run_processor

log = logging.getLogger(__name__)

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


def _np(x: ak.Array) -> np.ndarray:
    return ak.to_numpy(ak.flatten(x, axis=None))


def summarise(hists: dict[str, hist.Hist]) -> dict[str, Any]:
    """Key numbers from the validation histograms."""
    out: dict[str, Any] = {}
    jp = hists["jet_pt"]
    counts = {name: float(jp[hist.loc(f), :].sum().value) for f, name in FLAVOURS.items()}
    total = sum(counts.values())
    out["jets"] = total
    out["flavour_fractions"] = {k: (v / total if total else None) for k, v in counts.items()}

    resp = hists["jet_response"].project("response")
    out["jet_response_median"] = _median(resp)
    sd0 = hists["track_sd0"]
    tails = {}
    for f, name in FLAVOURS.items():
        h1 = sd0[hist.loc(f), :]
        vals, edges = h1.values(), h1.axes[0].edges
        tot = vals.sum()
        tails[name] = {
            "tracks": float(tot),
            "frac_sd0_gt_3": float(vals[edges[:-1] >= 3].sum() / tot) if tot else None,
            "frac_sd0_lt_-3": float(vals[edges[1:] <= -3].sum() / tot) if tot else None,
        }
    out["track_sd0_tails"] = tails
    myy = hists["m_yy"]
    out["diphoton_events"] = float(myy.sum().value)
    core = myy[hist.loc(115.0):hist.loc(135.0)]
    if core.sum().value > 50:
        out["m_yy_median"] = _median(core)
        out["m_yy_half_width_68"] = 0.5 * (_quantile(core, 0.84) - _quantile(core, 0.16))
    return out


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
                f[name] = h.project(h.axes.name[1])


def plot(
    path: str | Path, hists: dict[str, hist.Hist], sample: str, *,
    provenance: dict[str, Any] | None = None,
) -> None:
    """A 2×2 panel of the validation plots (mplhep ATLAS style), written atomically (plus
    the ``provenance`` sidecar, if given)."""
    from analysis.plot.paper import use_file_backend

    use_file_backend()
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.ATLAS)
    fig, axes = plt.subplots(2, 2, figsize=(14, 11))
    ax = axes[0, 0]
    for fl, label in FLAVOURS.items():
        h1 = hists["jet_pt"][hist.loc(fl), :]
        if h1.sum().value > 0:
            mplhep.histplot(h1, ax=ax, label=f"{label} jets")
    ax.set_yscale("log")
    ax.legend()
    ax = axes[0, 1]
    for fl, label in ((5, "b"), (4, "c"), (0, "light")):
        h1 = hists["track_sd0"][hist.loc(fl), :]
        if h1.sum().value > 0:
            mplhep.histplot(h1 / h1.sum().value, ax=ax, label=f"tracks in {label} jets")
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
    with atomic_path(path, provenance=provenance) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def validate_sample(files: list[str], sample: str, output_dir: str | Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """Run the validation on one sample's files; write ROOT, JSON and PNG outputs."""
    out_dir = Path(output_dir)
    result = run_processor(ValidationProcessor(), {sample: {"files": {f: "Events" for f in files}}}, cfg,
                           format="hepline")
    entry = result.output[sample]
    summary = {"sample": sample, "events": entry["events"], "sumw": entry["sumw"], **summarise(entry["hists"]),
               "runner": {k: result.metrics[k] for k in ("events", "wall_time_s", "events_per_s_per_core")
                          if k in result.metrics}}
    record = provenance_record(stage="validation", config=cfg, inputs=files, extra={"sample": sample})
    write_root(out_dir / f"{sample}.root", entry["hists"], provenance=record)
    plot(out_dir / f"{sample}.png", entry["hists"], sample, provenance=record)
    write_json(out_dir / f"{sample}.json", summary, provenance=record)
    log.info("validated %s: %d events", sample, entry["events"])
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--sample", required=True)
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--workers", type=int, help="override runner.workers")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    cfg = load_raw_config(args.config)
    if args.workers is not None:
        cfg["runner"]["workers"] = args.workers
    validate_sample(args.files, args.sample, args.output_dir, cfg)
    return 0


if __name__ == "__main__":  # the importable module's main (its processor pickles by reference)
    run_module_main("analysis.validation")
