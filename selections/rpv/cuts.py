"""Cut-based RPV gluino multijet search on large-R jets (the ATLAS baseline of arXiv:1711.03573).

Large-R jets: anti-kt R = 1.0 (fastjet, through :func:`analysis.generation.jets.antikt`, E-scheme)
clustered from the calorimeter towers, each a massless 4-vector with E = eEM + eHad at the tower
centre; pT > 200 GeV and |η| < 2.0 after clustering. The jets are **not trimmed**: ATLAS trims
(R_sub = 0.2, f_cut = 5 %) to remove pile-up and soft underlying-event energy from the jet
mass; these samples have no pile-up, and trimming would move the M_J scale with respect to the
published cut values without a calibration to tell by how much. The untrimmed M_J is therefore
somewhat higher than ATLAS's for the same event (more background passes the M_J cut).

Selection (``rpv.cuts``, defaults from physics-reference §5):

* preselection: ≥ 3 jets, leading-jet pT > 440 GeV;
* signal region: ≥ 4 jets, |Δη(j1, j2)| < 1.4, and M_J = Σ of the 4 leading jet masses
  > 800 GeV with exactly 4 jets or > 600 GeV with ≥ 5 jets.

Per event the stage writes a table (HDF5): event number, label, weight (genWeight · σ/Σw, pb,
as the image files), the jet count, leading pT, Δη12, M_J and the preselection and SR flags;
:func:`rates` turns tables into the weighted TPR (signal efficiency) and FPR (background
efficiency) with binomial errors. Tables and JSON outputs carry their run provenance
(:mod:`analysis.core.provenance`). Command line::

    python -m selections.rpv.cuts select --config C --sample S --label 1 --output S.h5 files...
    python -m selections.rpv.cuts rates --config C [--split test] S1.h5 S2.h5 ...
    python -m selections.rpv.cuts stats --config C S1.h5 ...   # per cut: ε, n_eff
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analysis.core.errors import InputError
from analysis.core.atomic import atomic_path, write_json
from analysis.core.config import load_raw_config, schema, validate_section
from analysis.core.provenance import provenance_record

log = logging.getLogger(__name__)

TABLE_FORMAT = "hepline-rpv-cutbased-1"
COLUMNS = ("event", "label", "weight", "n_jets", "lead_pt", "deta12", "mj", "presel", "sr")
CUTFLOW = ("all", "n_jets >= 3", "leading pT", "n_jets >= 4", "|deta12|", "M_J")


class SelectionInputError(InputError):
    """Bad input to the cut-based selection (empty sample, zero weights, bad table)."""


def rpv_config(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """The filled ``rpv`` section from a full config, the section itself, or ``None``."""
    own = set(schema()["properties"]["rpv"]["properties"])
    if cfg and set(cfg) <= own:
        return validate_section("rpv", dict(cfg), source="rpv")
    return validate_section("rpv", None if cfg is None else cfg.get("rpv"), source="rpv")


def large_r_jets(
    n_events: int,
    tower_event: np.ndarray,
    tower_eta: np.ndarray,
    tower_phi: np.ndarray,
    tower_eem: np.ndarray,
    tower_ehad: np.ndarray,
    jet_cfg: Mapping[str, Any],
) -> Any:
    """Large-R jets (:class:`analysis.generation.jets.Jets`, event-sorted, pT-ordered) from towers."""
    from analysis.generation.jets import antikt

    e = np.asarray(tower_eem, np.float64) + np.asarray(tower_ehad, np.float64)
    keep = e > float(jet_cfg["tower_e_min_gev"])
    ev = np.asarray(tower_event, np.int64)[keep]
    order = np.argsort(ev, kind="stable")
    ev, e = ev[order], e[keep][order]
    eta = np.asarray(tower_eta, np.float64)[keep][order]
    phi = np.asarray(tower_phi, np.float64)[keep][order]
    pt = e / np.cosh(eta)
    return antikt(ev, pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), e, n_events,
                  float(jet_cfg["radius"]), float(jet_cfg["pt_min_gev"]), float(jet_cfg["abs_eta_max"]))


def event_variables(jets: Any, n_events: int, cuts: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Jet count, leading pT, Δη12, M_J (4 leading masses), preselection and SR flags per event.

    ``jets`` need ``event, pt, eta, mass`` sorted by event then decreasing pT (as ``antikt``
    returns them). Events with fewer than 2 jets get Δη12 = NaN; M_J sums the available jets
    (at most 4).
    """
    ev = np.asarray(jets.event, np.int64)
    n = np.bincount(ev, minlength=n_events)
    offsets = np.zeros(n_events + 1, np.int64)
    np.cumsum(n, out=offsets[1:])
    rank = np.arange(ev.size) - offsets[ev]
    lead_pt = np.zeros(n_events)
    lead_pt[n > 0] = np.asarray(jets.pt)[offsets[:-1][n > 0]]
    deta12 = np.full(n_events, np.nan)
    two = n >= 2
    deta12[two] = np.asarray(jets.eta)[offsets[:-1][two]] - np.asarray(jets.eta)[offsets[:-1][two] + 1]
    mj = np.bincount(ev[rank < 4], weights=np.asarray(jets.mass, np.float64)[rank < 4], minlength=n_events)
    steps = cut_steps(n, lead_pt, deta12, mj, cuts)
    presel, sr = steps["leading pT"], steps["M_J"]
    return {"n_jets": n.astype(np.int16), "lead_pt": lead_pt.astype(np.float32),
            "deta12": deta12.astype(np.float32), "mj": mj.astype(np.float32),
            "presel": presel, "sr": sr, "cutflow": steps}


def cut_steps(n_jets: np.ndarray, lead_pt: np.ndarray, deta12: np.ndarray, mj: np.ndarray,
              cuts: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Masks after each cut of the search (cumulative, in order): ``all``, ``n_jets >= 3``,
    ``leading pT`` (the preselection), ``n_jets >= 4``, ``|deta12|``, ``M_J`` (the SR).
    Inputs per event: large-R jet count, leading pT [GeV], Δη(j1, j2), M_J [GeV]."""
    n = np.asarray(n_jets)
    presel = (n >= cuts["presel_n_jets_min"]) & (np.asarray(lead_pt) > cuts["leading_pt_min_gev"])
    n4 = cuts["sr_n_jets_min"]
    mj = np.asarray(mj)
    mj_ok = ((n == n4) & (mj > cuts["mj_min_4j_gev"])) | ((n > n4) & (mj > cuts["mj_min_5j_gev"]))
    with np.errstate(invalid="ignore"):
        deta_ok = np.abs(np.asarray(deta12)) < cuts["abs_deta12_max"]
    steps = {"all": np.ones(len(n), bool), "n_jets >= 3": n >= cuts["presel_n_jets_min"], "leading pT": presel}
    steps["n_jets >= 4"] = presel & (n >= n4)
    steps["|deta12|"] = steps["n_jets >= 4"] & deta_ok
    steps["M_J"] = steps["|deta12|"] & mj_ok
    return steps


def stage_statistics(table: Mapping[str, np.ndarray], cuts: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Per cut of :func:`cut_steps`: raw events passing, the weighted efficiency with its
    error (:func:`weighted_efficiency`), and the effective number of passing events
    n_eff = (Σw)²/Σw² — what sets the statistical precision of a weighted (e.g. pT-hat
    biased) sample at that cut."""
    w = np.asarray(table["weight"], np.float64)
    out = {}
    for name, m in cut_steps(table["n_jets"], table["lead_pt"], table["deta12"], table["mj"], cuts).items():
        eff, err = weighted_efficiency(m, w)
        sw, sw2 = float(w[m].sum()), float((w[m] ** 2).sum())
        out[name] = {"raw": int(m.sum()), "efficiency": eff, "efficiency_err": err,
                     "n_eff": sw * sw / sw2 if sw2 > 0 else 0.0}
    return out


def select_arrays(arrays: Any, rcfg: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Selection of an awkward array with ``Tower_eta/phi/eEM/eHad`` (one entry per event)."""
    import awkward as ak

    n = len(arrays)
    counts = ak.to_numpy(ak.num(arrays["Tower_eta"], axis=1)).astype(np.int64)
    flat = {k: ak.to_numpy(ak.flatten(arrays[k], axis=1)) for k in ("Tower_eta", "Tower_phi", "Tower_eEM", "Tower_eHad")}
    jets = large_r_jets(n, np.repeat(np.arange(n), counts), flat["Tower_eta"], flat["Tower_phi"],
                        flat["Tower_eEM"], flat["Tower_eHad"], rcfg["large_r_jets"])
    return event_variables(jets, n, rcfg["cuts"])


def run_selection(
    files: Sequence[str | os.PathLike[str]],
    sample: str,
    label: int,
    cfg: Mapping[str, Any] | None,
    *,
    chunk_events: int = 2000,
    max_events: int | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Per-event table and a summary (weighted cutflow, σ, Σw) of one sample's ROOT files."""
    from selections.rpv.cnn.images import sample_normalisation
    from analysis.io.ingest import iter_chunks

    rcfg = rpv_config(cfg)
    norm = sample_normalisation([str(f) for f in files], sample)
    cols: dict[str, list[np.ndarray]] = {c: [] for c in COLUMNS}
    flow = {k: 0.0 for k in CUTFLOW}
    flow_raw = {k: 0 for k in CUTFLOW}
    done = 0
    branches = ["event", "genWeight", "Tower_eta", "Tower_phi", "Tower_eEM", "Tower_eHad"]
    for _, start, stop, arrays in iter_chunks(files, branches, chunk_events=chunk_events,
                                              max_events=max_events):
        var = select_arrays(arrays, rcfg)
        w = np.asarray(arrays["genWeight"], np.float64) * norm["xsec_pb"] / norm["sumw"]
        cols["event"].append(np.asarray(arrays["event"], np.uint64))
        cols["label"].append(np.full(len(w), label, np.int8))
        cols["weight"].append(w)
        for c in ("n_jets", "lead_pt", "deta12", "mj", "presel", "sr"):
            cols[c].append(var[c])
        for k in CUTFLOW:
            flow[k] += float(w[var["cutflow"][k]].sum())
            flow_raw[k] += int(var["cutflow"][k].sum())
        done += stop - start
    if done == 0:
        raise SelectionInputError(f"sample {sample!r}: no events in {list(map(str, files))}")
    table = {c: np.concatenate(v) for c, v in cols.items()}
    lumi_pb = rcfg["lumi_fb"] * 1000.0
    summary = {
        "sample": sample, "label": int(label), "events": done, **norm,
        "lumi_fb": rcfg["lumi_fb"],
        "cutflow": [{"cut": k, "events": flow_raw[k], "sigma_pb": flow[k],
                     "yield": flow[k] * lumi_pb * norm["n_events"] / done} for k in CUTFLOW],
        "efficiency_sr": float(table["weight"][table["sr"]].sum() / table["weight"].sum()),
        "config": {"large_r_jets": rcfg["large_r_jets"], "cuts": rcfg["cuts"]},
    }
    return table, summary


def write_table(path: str | os.PathLike[str], table: Mapping[str, np.ndarray], summary: Mapping[str, Any],
                *, provenance: Mapping[str, Any] | None = None) -> None:
    """The per-event table as HDF5 (one gzip dataset per column, the summary as an attribute;
    ``provenance`` in ``attrs["provenance"]``), written atomically."""
    import h5py

    with atomic_path(path, provenance=provenance) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = TABLE_FORMAT
        f.attrs["summary"] = json.dumps(summary, default=str)
        for c in COLUMNS:
            f.create_dataset(c, data=np.asarray(table[c]), compression="gzip", shuffle=True)


def read_table(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    import h5py

    p = Path(path)
    if not p.is_file():
        raise SelectionInputError(f"cut-based table not found: {p}")
    with h5py.File(p, "r") as f:
        if f.attrs.get("format") != TABLE_FORMAT:
            raise SelectionInputError(f"{p}: not a cut-based selection table (format {f.attrs.get('format')!r})")
        return {c: f[c][:] for c in COLUMNS}, json.loads(f.attrs["summary"])


def weighted_efficiency(passed: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
    """Weighted efficiency ε = Σw_pass/Σw and its binomial error √(Σ w² (pass − ε)²) / Σw."""
    w = np.asarray(weight, np.float64)
    p = np.asarray(passed, bool)
    tot = w.sum()
    if not tot > 0:
        raise SelectionInputError(f"total weight {tot:g}: efficiency undefined")
    eff = float(w[p].sum() / tot)
    err = float(np.sqrt(np.sum(w**2 * (p - eff) ** 2)) / tot)
    return eff, err


def rates(table: Mapping[str, np.ndarray], mask: np.ndarray | None = None, flag: str = "sr") -> dict[str, Any]:
    """Weighted TPR (signal) and FPR (background) of ``flag`` over the events in ``mask``."""
    sel = np.ones(len(table["event"]), bool) if mask is None else np.asarray(mask, bool)
    out: dict[str, Any] = {}
    for name, lab in (("tpr", 1), ("fpr", 0)):
        m = sel & (table["label"] == lab)
        if not m.any():
            raise SelectionInputError(f"no {'signal' if lab else 'background'} events to compute the {name.upper()}")
        eff, err = weighted_efficiency(table[flag][m], table["weight"][m])
        out[name], out[f"{name}_err"] = eff, err
        out[f"n_{'signal' if lab else 'background'}"] = int(m.sum())
        out[f"n_{'signal' if lab else 'background'}_pass"] = int(table[flag][m].sum())
    return out


def concat_tables(tables: Sequence[Mapping[str, np.ndarray]], samples: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    out = {c: np.concatenate([np.asarray(t[c]) for t in tables]) for c in COLUMNS}
    if samples is not None:
        out["sample"] = np.concatenate([np.full(len(t["event"]), s, dtype=object) for t, s in zip(tables, samples)])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m selections.rpv.cuts", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("select", help="large-R jets and the cuts for one sample's ROOT files")
    s.add_argument("--config", required=True)
    s.add_argument("--sample", required=True)
    s.add_argument("--label", type=int, choices=(0, 1),
                   help="1 signal, 0 background (default: from rpv.signal_samples/background_samples)")
    s.add_argument("--output", required=True, help="per-event HDF5 table")
    s.add_argument("--summary", help="cutflow JSON (default: <output>.json)")
    s.add_argument("--max-events", type=int)
    s.add_argument("files", nargs="+")
    r = sub.add_parser("rates", help="weighted TPR and FPR of tables")
    r.add_argument("--config", required=True)
    r.add_argument("--split", choices=("all", "train", "validation", "test"), default="all",
                   help="restrict to a calo.split by event number")
    r.add_argument("--output", help="JSON to write (default: print)")
    r.add_argument("tables", nargs="+")
    t = sub.add_parser("stats", help="per cut: raw, weighted efficiency and effective events of each table")
    t.add_argument("--config", required=True)
    t.add_argument("--output", help="JSON to write (default: print)")
    t.add_argument("tables", nargs="+")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    cfg = load_raw_config(args.config)
    if args.command == "select":
        rcfg = rpv_config(cfg)
        label = args.label
        if label is None:
            if args.sample in rcfg["signal_samples"]:
                label = 1
            elif args.sample in rcfg["background_samples"]:
                label = 0
            else:
                parser.error(f"sample {args.sample!r} is in neither rpv.signal_samples nor rpv.background_samples")
        table, summary = run_selection(args.files, args.sample, label, cfg, max_events=args.max_events)
        record = provenance_record(stage="rpv.select", config=cfg, inputs=args.files,
                                   extra={"sample": args.sample, "label": label, "max_events": args.max_events})
        write_table(args.output, table, summary, provenance=record)
        write_json(args.summary or str(Path(args.output).with_suffix(".json")), summary, provenance=record)
        log.info("%s: SR efficiency %.4g (%d events)", args.sample, summary["efficiency_sr"], summary["events"])
    elif args.command == "stats":
        cuts = rpv_config(cfg)["cuts"]
        out = {}
        for path in args.tables:
            table, summary = read_table(path)
            out[summary.get("sample", str(path))] = {"events": len(table["weight"]),
                                                     "stages": stage_statistics(table, cuts)}
        if args.output:
            write_json(args.output, out, provenance=provenance_record(stage="rpv.stats", config=cfg,
                                                                      inputs=args.tables))
        else:
            print(json.dumps(out, indent=2))
    else:
        from selections.rpv.cnn.images import split_mask

        loaded = [read_table(t) for t in args.tables]
        table = concat_tables([t for t, _ in loaded])
        mask = None
        if args.split != "all":
            mask = split_mask(table["event"], validate_section("calo", cfg.get("calo"))["split"], args.split)
        out = {"split": args.split, **rates(table, mask),
               "samples": [s["sample"] for _, s in loaded]}
        if args.output:
            write_json(args.output, out, provenance=provenance_record(
                stage="rpv.rates", config=cfg, inputs=args.tables, extra={"split": args.split}))
        else:
            print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
