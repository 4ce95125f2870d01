"""Histogram conventions shared by every analysis stage: binning, normalisation, systematics,
and the writers (pickle, ROOT TH1s, pyhf workspace JSON).

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

* **A histogram set** (what the stages hand each other, pickled) is a plain dict::

      {"kind": "hepline.hists", "version": 1, "lumi_fb": 139.0, "normalised": True,
       "observables": [...], "regions": [...], "variations": [...],
       "samples": {name: {"hists": {observable: Hist}, "xsec_pb", "sumw", "norm",
                          "n_events", "cutflow": {"steps", "raw", "sumw", "sumw2"} | None,
                          "files": [...], "format"}},
       "provenance": {...}}

Command line (merge the per-sample selection outputs, normalise, write every format)::

    python -m analysis.stats.histograms --config workflows/config/default.yaml \\
        --output-dir results/hh_yybb/histograms results/hh_yybb/selection/*.pkl
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import pickle
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import hist
import numpy as np

from analysis.core.atomic import atomic_path, write_json, write_text
from analysis.core.provenance import provenance_record, write_root_provenance

log = logging.getLogger(__name__)

__all__ = [
    "BINNING",
    "DEFAULT_LUMI_FB",
    "HISTSET_KIND",
    "KINEMATIC_SYSTEMATICS",
    "MIRRORED_SYSTEMATICS",
    "SYSTEMATICS",
    "WEIGHT_SYSTEMATICS",
    "MissingVariationError",
    "axis_for",
    "cutflow_markdown",
    "cutflow_table",
    "add_flat",
    "axis_stride",
    "empty_histset",
    "fill_indexed",
    "flat_index",
    "make_hists",
    "merge_histsets",
    "mirror_down",
    "norm_factor",
    "normalise_histset",
    "read_pickle",
    "root_name",
    "scale_hist",
    "variation_names",
    "write_pickle",
    "write_root",
    "write_workspace",
]

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
    """``["nominal", "<s>Up", "<s>Down", ...]``."""
    out = ["nominal"]
    for s in systematics:
        out += [f"{s}Up", f"{s}Down"]
    return out


def axis_for(observable: str, binning: Mapping[str, Any] | None = None) -> hist.axis.Axis:
    """The observable axis: :data:`BINNING` with the overrides of ``binning`` applied."""
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
) -> dict[str, hist.Hist]:
    """Empty ``{observable: Hist(region, variation, observable)}`` with Weight storage."""
    return {
        obs: hist.Hist(
            hist.axis.StrCategory(list(regions), name="region", growth=False),
            hist.axis.StrCategory(list(variations), name="variation", growth=False),
            axis_for(obs, binning),
            storage=hist.storage.Weight(),
        )
        for obs in observables
    }


def _weight_view(h: hist.Hist) -> np.ndarray:
    view = h.view(flow=True)
    if getattr(view.dtype, "names", None) != ("value", "variance"):
        raise TypeError(f"indexed filling needs a Hist with Weight storage, not {h.storage_type.__name__}")
    return view


def flat_index(h: hist.Hist, **coords: Any) -> np.ndarray:
    """Flat bin index into ``h.view(flow=True)`` of each entry.

    ``coords``: for each category axis the position of the category (an int, or an int
    array per entry, as from ``axis.index(label)``), for every other axis the values
    (under- and overflow go to the flow bins, as in ``fill``).
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


def axis_stride(h: hist.Hist, name: str) -> int:
    """Step of :func:`flat_index` between neighbouring bins of axis ``name``."""
    shape = _weight_view(h).shape
    k = list(h.axes.name).index(name)
    return int(np.prod(shape[k + 1:], dtype=np.int64))


def add_flat(h: hist.Hist, flat: np.ndarray, weight: np.ndarray) -> None:
    """Add ``weight`` (and its square, to the variance) at flat bin indices ``flat``
    (:func:`flat_index`): one ``np.bincount`` per storage field."""
    view = _weight_view(h)
    w = np.asarray(weight, dtype=np.float64)
    size = int(np.prod(view.shape))
    view.value += np.bincount(flat, weights=w, minlength=size).reshape(view.shape)
    view.variance += np.bincount(flat, weights=w * w, minlength=size).reshape(view.shape)


def fill_indexed(h: hist.Hist, weight: np.ndarray, **coords: Any) -> None:
    """``h.fill(**coords, weight=weight)`` with category axes given by position
    (:func:`flat_index`). Same result as ``fill`` with the labels (sums of weights and of
    squared weights per bin, flow bins included), without converting thousands of label
    strings per call. Only for Weight storage."""
    add_flat(h, flat_index(h, **coords), weight)


def empty_histset(lumi_fb: float = DEFAULT_LUMI_FB, **extra: Any) -> dict[str, Any]:
    """A histogram set with no samples."""
    return {
        "kind": HISTSET_KIND,
        "version": 1,
        "lumi_fb": float(lumi_fb),
        "normalised": False,
        "observables": [],
        "regions": [],
        "variations": [],
        "samples": {},
        "provenance": {},
        **extra,
    }


# ---------------------------------------------------------------------------------------
# normalisation
# ---------------------------------------------------------------------------------------
def norm_factor(xsec_pb: float, sumw: float, lumi_fb: float = DEFAULT_LUMI_FB) -> float:
    """``σ × L / Σw`` with σ in pb and L in fb⁻¹ (1 pb = 1000 fb): events per unit weight."""
    if xsec_pb is None or not math.isfinite(xsec_pb) or xsec_pb < 0:
        raise ValueError(f"cannot normalise: cross-section {xsec_pb!r} pb")
    if sumw is None or not math.isfinite(sumw) or sumw <= 0:
        raise ValueError(f"cannot normalise: sum of generator weights {sumw!r}")
    return float(xsec_pb) * 1000.0 * float(lumi_fb) / float(sumw)


def scale_hist(h: hist.Hist, factor: float) -> hist.Hist:
    """A copy of ``h`` with values × factor and variances × factor²."""
    out = h.copy()
    view = out.view(flow=True)
    view.value *= factor
    view.variance *= factor * factor
    return out


def normalise_histset(histset: dict[str, Any], lumi_fb: float | None = None) -> dict[str, Any]:
    """A normalised copy: every sample scaled by :func:`norm_factor` (cutflows too).

    Samples already normalised are left alone; ``lumi_fb`` (default: the set's) is stored.
    A sample without ``xsec_pb``/``sumw`` raises ``ValueError`` naming it.
    """
    out = copy.deepcopy(histset)
    lumi = float(lumi_fb if lumi_fb is not None else histset.get("lumi_fb", DEFAULT_LUMI_FB))
    if histset.get("normalised"):
        if lumi_fb is not None and abs(lumi - histset["lumi_fb"]) > 1e-9:
            raise ValueError("histogram set already normalised to a different luminosity")
        return out
    for name, entry in out["samples"].items():
        if entry.get("is_data"):
            entry["norm"] = 1.0
            continue
        try:
            k = norm_factor(entry.get("xsec_pb"), entry.get("sumw"), lumi)
        except ValueError as exc:
            raise ValueError(f"sample {name!r}: {exc}") from exc
        entry["norm"] = k
        entry["hists"] = {obs: scale_hist(h, k) for obs, h in entry["hists"].items()}
        cf = entry.get("cutflow")
        if cf:
            cf["weighted"] = [k * float(s) for s in cf["sumw"]]
            cf["weighted_err"] = [k * math.sqrt(max(float(s2), 0.0)) for s2 in cf["sumw2"]]
    out["normalised"] = True
    out["lumi_fb"] = lumi
    return out


def mirror_down(h: hist.Hist, systematic: str) -> hist.Hist:
    """Fill ``<syst>Down`` as nominal − (Up − nominal), clipped at 0 (variance: nominal's).

    For one-sided variations such as the photon resolution, where "less smearing than the
    detector" cannot be simulated. Works on any histogram with a ``variation`` axis.
    """
    out = h.copy()
    ax = out.axes["variation"]
    i_nom, i_up, i_dn = (ax.index(v) for v in ("nominal", f"{systematic}Up", f"{systematic}Down"))
    vi = out.axes.name.index("variation")
    view = out.view(flow=True)
    val = np.moveaxis(view.value, vi, 0)
    var = np.moveaxis(view.variance, vi, 0)
    val[i_dn] = np.clip(2.0 * val[i_nom] - val[i_up], 0.0, None)
    var[i_dn] = var[i_nom]
    return out


def merge_histsets(sets: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge histogram sets of disjoint samples (a sample in two sets is summed only if
    neither is normalised: two selection jobs over different shards of one sample)."""
    out: dict[str, Any] | None = None
    for hs in sets:
        if hs.get("kind") != HISTSET_KIND:
            raise ValueError(f"not a hepline histogram set (kind={hs.get('kind')!r})")
        if out is None:
            out = copy.deepcopy(dict(hs))
            continue
        for key in ("normalised", "observables", "regions", "variations"):
            if out[key] != hs[key]:
                raise ValueError(f"cannot merge histogram sets with different {key}")
        for name, entry in hs["samples"].items():
            if name not in out["samples"]:
                out["samples"][name] = copy.deepcopy(entry)
                continue
            if out["normalised"]:
                raise ValueError(f"sample {name!r} appears in two normalised histogram sets")
            mine = out["samples"][name]
            for obs, h in entry["hists"].items():
                mine["hists"][obs] = mine["hists"][obs] + h
            mine["n_events"] = mine.get("n_events", 0) + entry.get("n_events", 0)
            mine["files"] = list(mine.get("files", [])) + list(entry.get("files", []))
            if mine.get("sumw") is not None and entry.get("sumw") is not None:
                mine["sumw"] += entry["sumw"]
            if mine.get("cutflow") and entry.get("cutflow"):
                for k in ("raw", "sumw", "sumw2"):
                    mine["cutflow"][k] = [a + b for a, b in zip(mine["cutflow"][k], entry["cutflow"][k], strict=True)]
    if out is None:
        raise ValueError("no histogram sets to merge")
    return out


# ---------------------------------------------------------------------------------------
# cutflow
# ---------------------------------------------------------------------------------------
def cutflow_table(histset: Mapping[str, Any]) -> dict[str, Any]:
    """``{"steps": [...], "samples": {name: {"raw": [...], "weighted": [...] | None,
    "efficiency": [...]}}, "lumi_fb"}`` from the samples' cutflows (weighted = σ×L-normalised
    when the set is normalised, else the raw sum of weights)."""
    steps: list[str] | None = None
    samples: dict[str, Any] = {}
    for name, entry in histset["samples"].items():
        cf = entry.get("cutflow")
        if not cf:
            continue
        if steps is None:
            steps = list(cf["steps"])
        elif list(cf["steps"]) != steps:
            raise ValueError(f"sample {name!r} has a cutflow with different steps")
        weighted = cf.get("weighted") if histset.get("normalised") else list(map(float, cf["sumw"]))
        first = float(cf["raw"][0]) if cf["raw"] else 0.0
        samples[name] = {
            "raw": [int(x) for x in cf["raw"]],
            "weighted": [float(x) for x in weighted] if weighted is not None else None,
            "efficiency": [float(x) / first if first else 0.0 for x in cf["raw"]],
        }
    return {"steps": steps or [], "samples": samples, "lumi_fb": histset.get("lumi_fb"),
            "normalised": bool(histset.get("normalised"))}


def cutflow_markdown(table: Mapping[str, Any]) -> str:
    """Two markdown tables (raw MC events; σ×L-weighted events) with one column per sample."""
    names = list(table["samples"])
    if not names:
        return "_no cutflow: no sample was processed_\n"
    lines = ["### Raw MC events after each cut\n", "| cut | " + " | ".join(names) + " |",
             "|---|" + "---:|" * len(names)]
    for i, step in enumerate(table["steps"]):
        lines.append(f"| {step} | " + " | ".join(str(table["samples"][n]["raw"][i]) for n in names) + " |")
    unit = f"events in {table['lumi_fb']:g} fb⁻¹" if table.get("normalised") else "sum of weights"
    lines += ["", f"### Weighted ({unit}) after each cut\n", "| cut | " + " | ".join(names) + " |",
              "|---|" + "---:|" * len(names)]
    for i, step in enumerate(table["steps"]):
        cells = []
        for n in names:
            w = table["samples"][n]["weighted"]
            cells.append("–" if w is None else f"{w[i]:.4g}")
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------
# writers
# ---------------------------------------------------------------------------------------
def write_pickle(
    path: str | Path, histset: Mapping[str, Any], *, provenance: Mapping[str, Any] | None = None
) -> Path:
    """Pickle a histogram set atomically (plus the ``provenance`` sidecar, if given)."""
    with atomic_path(path, provenance=provenance) as tmp, open(tmp, "wb") as f:
        pickle.dump(dict(histset), f, protocol=pickle.HIGHEST_PROTOCOL)
    return Path(path)


def read_pickle(path: str | Path) -> dict[str, Any]:
    """Read a histogram set written by :func:`write_pickle` (checks the kind)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"histogram file not found: {p}")
    with open(p, "rb") as f:
        obj = pickle.load(f)
    if not isinstance(obj, dict) or obj.get("kind") != HISTSET_KIND:
        raise ValueError(f"{p}: not a hepline histogram set")
    return obj


def root_name(region: str, sample: str, variation: str = "nominal") -> str:
    """``{region}_{sample}`` for nominal, ``{region}_{sample}_{syst}Up/Down`` otherwise."""
    return f"{region}_{sample}" if variation == "nominal" else f"{region}_{sample}_{variation}"


def write_root(
    path: str | Path,
    histset: Mapping[str, Any],
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
    :func:`analysis.core.provenance.embed_provenance`: uproot 5.7's ``uproot.update`` cannot test
    ``key in file`` on a file with directories (``AttributeError``).
    """
    import uproot

    obs_list = list(observables or histset["observables"])
    with atomic_path(path) as tmp, uproot.recreate(tmp) as f:
        for sample, entry in histset["samples"].items():
            for obs in obs_list:
                h = entry["hists"][obs]
                for region in h.axes["region"]:
                    for variation in h.axes["variation"]:
                        f[f"{obs}/{root_name(region, sample, variation)}"] = h[
                            {"region": region, "variation": variation}
                        ]
        if provenance is not None:
            write_root_provenance(f, provenance)
    return Path(path)


def write_workspace(
    path: str | Path, spec: Mapping[str, Any], *, provenance: Mapping[str, Any] | None = None
) -> Path:
    """Validate ``spec`` against the pyhf workspace schema, then write it atomically (plus
    the ``provenance`` sidecar, if given)."""
    import pyhf

    pyhf.Workspace(dict(spec))  # raises pyhf.exceptions.InvalidSpecification
    write_json(path, dict(spec), provenance=provenance)
    return Path(path)


# ---------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    from analysis.core.config import load_raw_config

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--output-dir", required=True, help="hists.pkl, hists.root, cutflow.md/json go here")
    parser.add_argument("--lumi-fb", type=float, default=None, help="override selection.hh_yybb.histograms.lumi_fb")
    parser.add_argument("inputs", nargs="+", help="histogram-set pickles (one per selection job)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    cfg = load_raw_config(args.config)
    lumi = args.lumi_fb or cfg["selection"]["hh_yybb"]["histograms"]["lumi_fb"]
    rec = provenance_record(stage="histograms", config=cfg, inputs=args.inputs, extra={"lumi_fb": lumi})
    merged = merge_histsets(read_pickle(p) for p in args.inputs)
    hs = normalise_histset(merged, lumi)
    out = Path(args.output_dir)
    write_pickle(out / "hists.pkl", hs, provenance=rec)
    write_root(out / "hists.root", hs, provenance=rec)
    table = cutflow_table(hs)
    write_json(out / "cutflow.json", table, provenance=rec)
    md = cutflow_markdown(table)
    write_text(out / "cutflow.md", md, provenance=rec)
    log.info("histograms of %d samples normalised to %g fb^-1 -> %s\n%s", len(hs["samples"]), lumi, out, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
