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
as the image files, :mod:`selections.rpv.samples`), the jet count, leading pT, Δη12, M_J and the
preselection and SR flags; :func:`rates` turns tables into the weighted TPR (signal efficiency)
and FPR (background efficiency) with binomial errors. Tables and JSON outputs carry their run
provenance (:mod:`analysis.core.provenance`).

In memory: :func:`run_selection` (files → :class:`RpvSelection`), :func:`rates`,
:func:`stage_statistics`. Files (the ``hepline rpv select|rates|stats`` commands):
:func:`select`, :func:`table_rates`, :func:`table_statistics`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analysis.core.atomic import atomic_path, write_json
from analysis.core.checks import check_finite
from analysis.core.config import Config
from analysis.core.config.rpv import RpvConfig, RpvCuts, RpvLargeRJets
from analysis.core.errors import InputError
from analysis.core.provenance import provenance_record
from analysis.io.ingest import unique_inputs
from selections.rpv.samples import (
    SampleNormalisation,
    sample_label,
    sample_normalisation,
    split_mask,
)

log = logging.getLogger(__name__)

__all__ = [
    "COLUMNS",
    "CUTFLOW",
    "RATE_SPLITS",
    "TABLE_FORMAT",
    "CutStatistics",
    "CutTable",
    "CutflowStep",
    "EventVariables",
    "Rates",
    "RatesSummary",
    "RpvSelection",
    "SelectionInputError",
    "TableStatistics",
    "concat_tables",
    "cut_steps",
    "event_variables",
    "large_r_jets",
    "rates",
    "read_table",
    "run_selection",
    "select",
    "select_arrays",
    "stage_statistics",
    "table_rates",
    "table_statistics",
    "weighted_efficiency",
    "write_table",
]

TABLE_FORMAT = "hepline-rpv-cutbased-1"
#: the columns of a per-event table
COLUMNS = ("event", "label", "weight", "n_jets", "lead_pt", "deta12", "mj", "presel", "sr")
#: the cuts of the search, in order (cumulative); "leading pT" is the preselection, "M_J" the SR
CUTFLOW = ("all", "n_jets >= 3", "leading pT", "n_jets >= 4", "|deta12|", "M_J")
#: what ``rates`` may restrict the events to (``all`` or a ``calo.split`` split)
RATE_SPLITS = ("all", "train", "validation", "test")
#: events read from the ROOT files per step
CHUNK_EVENTS = 2000


class SelectionInputError(InputError):
    """Bad input to the cut-based selection (empty sample, zero weights, bad table)."""


# --------------------------------------------------------------------------- jets and cuts


def large_r_jets(
    n_events: int,
    tower_event: np.ndarray,
    tower_eta: np.ndarray,
    tower_phi: np.ndarray,
    tower_eem: np.ndarray,
    tower_ehad: np.ndarray,
    jets: RpvLargeRJets,
) -> Any:
    """Large-R jets from calorimeter towers.

    Args:
        n_events: events (tower events are 0 … n_events − 1).
        tower_event: the event of each tower.
        tower_eta, tower_phi: tower centres.
        tower_eem, tower_ehad: tower energies (GeV); E = eEM + eHad.
        jets: ``rpv.large_r_jets`` (radius, pT and |η| cuts in GeV, tower energy threshold).

    Returns:
        :class:`analysis.generation.jets.Jets`, event-sorted and pT-ordered.
    """
    from analysis.generation.jets import antikt

    e = np.asarray(tower_eem, np.float64) + np.asarray(tower_ehad, np.float64)
    keep = e > float(jets.tower_e_min_gev)
    ev = np.asarray(tower_event, np.int64)[keep]
    order = np.argsort(ev, kind="stable")
    ev, e = ev[order], e[keep][order]
    eta = np.asarray(tower_eta, np.float64)[keep][order]
    phi = np.asarray(tower_phi, np.float64)[keep][order]
    pt = e / np.cosh(eta)
    return antikt(ev, pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), e, n_events,
                  float(jets.radius), float(jets.pt_min_gev), float(jets.abs_eta_max))


@dataclass(frozen=True)
class EventVariables:
    """The search's variables and flags per event.

    Attributes:
        n_jets: large-R jets (int16).
        lead_pt: leading-jet pT (GeV, float32; 0 without jets).
        deta12: η(j1) − η(j2) (float32; NaN with fewer than 2 jets).
        mj: M_J, the summed mass of the (at most) 4 leading jets (GeV, float32).
        presel: passes the preselection.
        sr: passes the signal region.
        cutflow: the mask after each cut of :data:`CUTFLOW` (:func:`cut_steps`).
    """

    n_jets: np.ndarray
    lead_pt: np.ndarray
    deta12: np.ndarray
    mj: np.ndarray
    presel: np.ndarray
    sr: np.ndarray
    cutflow: dict[str, np.ndarray]


def event_variables(jets: Any, n_events: int, cuts: RpvCuts) -> EventVariables:
    """Jet count, leading pT, Δη12, M_J (4 leading masses), preselection and SR flags per event.

    Args:
        jets: needs ``event, pt, eta, mass`` (GeV) sorted by event then decreasing pT (as
            ``antikt`` returns them).
        n_events: events.
        cuts: ``rpv.cuts``.

    Returns:
        The :class:`EventVariables`. Events with fewer than 2 jets get Δη12 = NaN; M_J sums
        the available jets (at most 4).
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
    return EventVariables(n_jets=n.astype(np.int16), lead_pt=lead_pt.astype(np.float32),
                          deta12=deta12.astype(np.float32), mj=mj.astype(np.float32),
                          presel=steps["leading pT"], sr=steps["M_J"], cutflow=steps)


def cut_steps(n_jets: np.ndarray, lead_pt: np.ndarray, deta12: np.ndarray, mj: np.ndarray,
              cuts: RpvCuts) -> dict[str, np.ndarray]:
    """Masks after each cut of the search (cumulative, in the order of :data:`CUTFLOW`).

    Args:
        n_jets: large-R jet count per event.
        lead_pt: leading-jet pT (GeV).
        deta12: Δη(j1, j2).
        mj: M_J (GeV).
        cuts: ``rpv.cuts``.

    Returns:
        ``{cut: mask}``: ``all``, ``n_jets >= 3``, ``leading pT`` (the preselection),
        ``n_jets >= 4``, ``|deta12|``, ``M_J`` (the SR).
    """
    n = np.asarray(n_jets)
    presel = (n >= cuts.presel_n_jets_min) & (np.asarray(lead_pt) > cuts.leading_pt_min_gev)
    n4 = cuts.sr_n_jets_min
    mj = np.asarray(mj)
    mj_ok = ((n == n4) & (mj > cuts.mj_min_4j_gev)) | ((n > n4) & (mj > cuts.mj_min_5j_gev))
    with np.errstate(invalid="ignore"):
        deta_ok = np.abs(np.asarray(deta12)) < cuts.abs_deta12_max
    steps = {"all": np.ones(len(n), bool), "n_jets >= 3": n >= cuts.presel_n_jets_min, "leading pT": presel}
    steps["n_jets >= 4"] = presel & (n >= n4)
    steps["|deta12|"] = steps["n_jets >= 4"] & deta_ok
    steps["M_J"] = steps["|deta12|"] & mj_ok
    return steps


def select_arrays(arrays: Any, rpv: RpvConfig, *, source: str = "<arrays>") -> EventVariables:
    """The selection of an awkward array with ``Tower_eta/phi/eEM/eHad`` (one entry per event).

    Args:
        arrays: the events (``analysis.io.ingest`` arrays).
        rpv: the ``rpv`` section (large-R jets and cuts).
        source: what the arrays come from (errors name it).

    Raises:
        NonFiniteInputError: NaN or inf in a tower field (naming ``source``, the branch and the
            event), which would give NaN large-R jets and Δη.
    """
    import awkward as ak

    n = len(arrays)
    counts = ak.to_numpy(ak.num(arrays["Tower_eta"], axis=1)).astype(np.int64)
    flat = {k: ak.to_numpy(ak.flatten(arrays[k], axis=1)) for k in ("Tower_eta", "Tower_phi", "Tower_eEM", "Tower_eHad")}
    number = np.asarray(arrays["event"]) if "event" in arrays.fields else np.arange(n)
    for name, values in flat.items():
        check_finite(values, name, source=source, entry=np.repeat(number, counts), entry_name="event")
    jets = large_r_jets(n, np.repeat(np.arange(n), counts), flat["Tower_eta"], flat["Tower_phi"],
                        flat["Tower_eEM"], flat["Tower_eHad"], rpv.large_r_jets)
    return event_variables(jets, n, rpv.cuts)


# --------------------------------------------------------------------------- efficiencies


def weighted_efficiency(passed: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
    """Weighted efficiency ε = Σw_pass/Σw and its binomial error √(Σ w² (pass − ε)²) / Σw.

    Raises:
        SelectionInputError: Σw ≤ 0.
    """
    w = np.asarray(weight, np.float64)
    p = np.asarray(passed, bool)
    tot = w.sum()
    if not tot > 0:
        raise SelectionInputError(f"total weight {tot:g}: efficiency undefined")
    eff = float(w[p].sum() / tot)
    err = float(np.sqrt(np.sum(w**2 * (p - eff) ** 2)) / tot)
    return eff, err


@dataclass(frozen=True)
class CutStatistics:
    """One cut of :func:`stage_statistics`.

    Attributes:
        raw: events passing (unweighted).
        efficiency, efficiency_err: the weighted efficiency and its binomial error.
        n_eff: effective passing events (Σw)²/Σw².
    """

    raw: int
    efficiency: float
    efficiency_err: float
    n_eff: float

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (the keys of the written outputs, in their order)."""
        return {"raw": self.raw, "efficiency": self.efficiency, "efficiency_err": self.efficiency_err,
                "n_eff": self.n_eff}


def stage_statistics(table: Mapping[str, np.ndarray], cuts: RpvCuts) -> dict[str, CutStatistics]:
    """Per cut of :func:`cut_steps`: raw events passing, the weighted efficiency with its
    error (:func:`weighted_efficiency`), and the effective number of passing events
    n_eff = (Σw)²/Σw², what sets the statistical precision of a weighted (e.g. pT-hat
    biased) sample at that cut.

    Args:
        table: a per-event table (:data:`COLUMNS`).
        cuts: ``rpv.cuts``.
    """
    w = np.asarray(table["weight"], np.float64)
    out = {}
    for name, m in cut_steps(table["n_jets"], table["lead_pt"], table["deta12"], table["mj"], cuts).items():
        eff, err = weighted_efficiency(m, w)
        sw, sw2 = float(w[m].sum()), float((w[m] ** 2).sum())
        out[name] = CutStatistics(raw=int(m.sum()), efficiency=eff, efficiency_err=err,
                                  n_eff=sw * sw / sw2 if sw2 > 0 else 0.0)
    return out


@dataclass(frozen=True)
class Rates:
    """Weighted TPR (signal efficiency) and FPR (background efficiency) of a flag.

    Attributes:
        tpr, tpr_err: signal efficiency and its binomial error.
        fpr, fpr_err: background efficiency and its binomial error.
        n_signal, n_signal_pass: signal events, and those passing.
        n_background, n_background_pass: background events, and those passing.
    """

    tpr: float
    tpr_err: float
    n_signal: int
    n_signal_pass: int
    fpr: float
    fpr_err: float
    n_background: int
    n_background_pass: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (the keys of the written outputs, in their order)."""
        return {"tpr": self.tpr, "tpr_err": self.tpr_err, "n_signal": self.n_signal,
                "n_signal_pass": self.n_signal_pass, "fpr": self.fpr, "fpr_err": self.fpr_err,
                "n_background": self.n_background, "n_background_pass": self.n_background_pass}


def rates(table: Mapping[str, np.ndarray], mask: np.ndarray | None = None, flag: str = "sr") -> Rates:
    """Weighted TPR (signal) and FPR (background) of ``flag`` over the events in ``mask``.

    Args:
        table: needs ``event``, ``label``, ``weight`` and ``flag``.
        mask: the events to use (default: all).
        flag: the boolean column that selects.

    Raises:
        SelectionInputError: no signal or no background event.
    """
    sel = np.ones(len(table["event"]), bool) if mask is None else np.asarray(mask, bool)
    out: dict[str, Any] = {}
    for name, lab in (("tpr", 1), ("fpr", 0)):
        m = sel & (table["label"] == lab)
        what = "signal" if lab else "background"
        if not m.any():
            raise SelectionInputError(f"no {what} events to compute the {name.upper()}")
        out[name], out[f"{name}_err"] = weighted_efficiency(table[flag][m], table["weight"][m])
        out[f"n_{what}"] = int(m.sum())
        out[f"n_{what}_pass"] = int(table[flag][m].sum())
    return Rates(**out)


def concat_tables(tables: Sequence[Mapping[str, np.ndarray]], samples: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Per-event tables joined (:data:`COLUMNS`); with ``samples`` also a ``sample`` column."""
    out = {c: np.concatenate([np.asarray(t[c]) for t in tables]) for c in COLUMNS}
    if samples is not None:
        out["sample"] = np.concatenate([np.full(len(t["event"]), s, dtype=object) for t, s in zip(tables, samples)])
    return out


# --------------------------------------------------------------------------- one sample


@dataclass(frozen=True)
class CutflowStep:
    """One cut of a sample's weighted cutflow.

    Attributes:
        cut: the cut's name (:data:`CUTFLOW`).
        events: MC events passing.
        sigma_pb: the cross-section passing (pb): Σ w over the events read.
        expected_events: events expected at ``lumi_fb`` for the whole sample (``yield`` in JSON).
    """

    cut: str
    events: int
    sigma_pb: float
    expected_events: float

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (the keys of the written outputs, in their order)."""
        return {"cut": self.cut, "events": self.events, "sigma_pb": self.sigma_pb, "yield": self.expected_events}


@dataclass(frozen=True)
class RpvSelection:
    """The cut-based selection of one sample: its per-event table and weighted cutflow.

    Attributes:
        sample: the sample's name.
        label: 1 signal, 0 background.
        events: events read.
        normalisation: σ and Σw of its files.
        lumi_fb: the luminosity (fb⁻¹) of the expected events.
        cutflow: the weighted cutflow (:data:`CUTFLOW`).
        efficiency_sr: Σw(SR) / Σw.
        large_r_jets, cuts: the configuration used.
        table: the per-event table (:data:`COLUMNS`).
    """

    sample: str
    label: int
    events: int
    normalisation: SampleNormalisation
    lumi_fb: float
    cutflow: tuple[CutflowStep, ...]
    efficiency_sr: float
    large_r_jets: RpvLargeRJets
    cuts: RpvCuts
    table: dict[str, np.ndarray]

    def to_dict(self) -> dict[str, Any]:
        """The summary JSON (and the table file's ``summary`` attribute)."""
        return {
            "sample": self.sample, "label": self.label, "events": self.events, **self.normalisation.to_dict(),
            "lumi_fb": self.lumi_fb,
            "cutflow": [step.to_dict() for step in self.cutflow],
            "efficiency_sr": self.efficiency_sr,
            "config": {"large_r_jets": self.large_r_jets.to_dict(), "cuts": self.cuts.to_dict()},
        }


def run_selection(
    files: Sequence[str | os.PathLike[str]],
    sample: str,
    label: int,
    rpv: RpvConfig,
    *,
    chunk_events: int = CHUNK_EVENTS,
    max_events: int | None = None,
) -> RpvSelection:
    """The selection of one sample's ROOT files, read in chunks.

    Args:
        files: the sample's ntuples.
        sample: its name.
        label: 1 signal, 0 background.
        rpv: the ``rpv`` section.
        chunk_events: events read per step.
        max_events: read at most this many events.

    Returns:
        The :class:`RpvSelection` (per-event table, weighted cutflow, σ, Σw).

    Raises:
        SelectionInputError: no events.
    """
    from analysis.io.ingest import iter_chunks

    norm = sample_normalisation([str(f) for f in files], sample)
    cols: dict[str, list[np.ndarray]] = {c: [] for c in COLUMNS}
    flow = {k: 0.0 for k in CUTFLOW}
    flow_raw = {k: 0 for k in CUTFLOW}
    done = 0
    branches = ["event", "genWeight", "Tower_eta", "Tower_phi", "Tower_eEM", "Tower_eHad"]
    for path, start, stop, arrays in iter_chunks(files, branches, chunk_events=chunk_events,
                                              max_events=max_events):
        source = f"{path} entries {start}-{stop}"
        var = select_arrays(arrays, rpv, source=source)
        check_finite(np.asarray(arrays["genWeight"]), "genWeight", source=source,
                     entry=np.asarray(arrays["event"]), entry_name="event")
        w = norm.event_weights(arrays["genWeight"])
        cols["event"].append(np.asarray(arrays["event"], np.uint64))
        cols["label"].append(np.full(len(w), label, np.int8))
        cols["weight"].append(w)
        for c in ("n_jets", "lead_pt", "deta12", "mj", "presel", "sr"):
            cols[c].append(getattr(var, c))
        for k in CUTFLOW:
            flow[k] += float(w[var.cutflow[k]].sum())
            flow_raw[k] += int(var.cutflow[k].sum())
        done += stop - start
    if done == 0:
        raise SelectionInputError(f"sample {sample!r}: no events in {list(map(str, files))}")
    table = {c: np.concatenate(v) for c, v in cols.items()}
    lumi_pb = rpv.lumi_fb * 1000.0
    return RpvSelection(
        sample=sample, label=int(label), events=done, normalisation=norm, lumi_fb=rpv.lumi_fb,
        cutflow=tuple(CutflowStep(k, flow_raw[k], flow[k], flow[k] * lumi_pb * norm.n_events / done)
                      for k in CUTFLOW),
        efficiency_sr=float(table["weight"][table["sr"]].sum() / table["weight"].sum()),
        large_r_jets=rpv.large_r_jets, cuts=rpv.cuts, table=table,
    )


# --------------------------------------------------------------------------- table files


@dataclass(frozen=True)
class CutTable:
    """A per-event table read back from its file.

    Attributes:
        columns: ``{column: array}`` (:data:`COLUMNS`).
        summary: the stored summary (:meth:`RpvSelection.to_dict`).
    """

    columns: dict[str, np.ndarray]
    summary: dict[str, Any]

    @property
    def sample(self) -> str:
        """The sample's name (from the summary)."""
        return str(self.summary["sample"])


def write_table(path: str | os.PathLike[str], table: Mapping[str, np.ndarray], summary: Mapping[str, Any],
                *, provenance: Mapping[str, Any] | None = None) -> None:
    """Write a per-event table as HDF5, atomically.

    Args:
        path: the output file.
        table: the columns (:data:`COLUMNS`), one gzip dataset each.
        summary: stored as JSON in ``attrs["summary"]``.
        provenance: stored in ``attrs["provenance"]``.
    """
    import h5py

    with atomic_path(path, provenance=provenance) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = TABLE_FORMAT
        f.attrs["summary"] = json.dumps(summary, default=str)
        for c in COLUMNS:
            f.create_dataset(c, data=np.asarray(table[c]), compression="gzip", shuffle=True)


def read_table(path: str | os.PathLike[str]) -> CutTable:
    """Read a per-event table written by :func:`write_table`.

    Raises:
        SelectionInputError: no such file, or not a cut-based table.
    """
    import h5py

    p = Path(path)
    if not p.is_file():
        raise SelectionInputError(f"cut-based table not found: {p}")
    with h5py.File(p, "r") as f:
        if f.attrs.get("format") != TABLE_FORMAT:
            raise SelectionInputError(f"{p}: not a cut-based selection table (format {f.attrs.get('format')!r})")
        return CutTable({c: f[c][:] for c in COLUMNS}, json.loads(f.attrs["summary"]))


# --------------------------------------------------------------------------- the commands


def select(
    cfg: Config,
    files: Sequence[str | os.PathLike[str]],
    *,
    sample: str,
    output: str | os.PathLike[str],
    summary: str | os.PathLike[str] | None = None,
    label: int | None = None,
    max_events: int | None = None,
) -> RpvSelection:
    """``hepline rpv select``: select one sample's ROOT files, write its table and cutflow.

    Args:
        cfg: the configuration (``rpv``).
        files: the sample's ntuples.
        sample: its name.
        output: the per-event HDF5 table.
        summary: the cutflow JSON (default: ``output`` with suffix ``.json``).
        label: 1 signal, 0 background (default: from ``rpv.signal_samples/background_samples``).
        max_events: read at most this many events.

    Returns:
        The :class:`RpvSelection`.
    """
    label = sample_label(cfg.rpv, sample, label)
    files = unique_inputs(files)  # a repeated file would enter twice
    result = run_selection(files, sample, label, cfg.rpv, max_events=max_events)
    record = provenance_record(stage="rpv.select", config=cfg, inputs=files,
                               extra={"sample": sample, "label": label, "max_events": max_events})
    summary_dict = result.to_dict()
    write_table(output, result.table, summary_dict, provenance=record)
    write_json(summary if summary is not None else Path(output).with_suffix(".json"), summary_dict,
               provenance=record)
    log.info("%s: SR efficiency %.4g (%d events)", sample, result.efficiency_sr, result.events)
    return result


@dataclass(frozen=True)
class RatesSummary:
    """The weighted TPR and FPR of the SR over tables of several samples.

    Attributes:
        split: ``all`` or the ``calo.split`` split the events come from.
        rates: the :class:`Rates`.
        samples: the samples of the tables.
    """

    split: str
    rates: Rates
    samples: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (the keys of the written outputs, in their order)."""
        return {"split": self.split, **self.rates.to_dict(), "samples": list(self.samples)}


def table_rates(
    cfg: Config,
    tables: Sequence[str | os.PathLike[str]],
    *,
    split: str = "all",
    output: str | os.PathLike[str] | None = None,
) -> RatesSummary:
    """``hepline rpv rates``: the weighted TPR and FPR of the SR over per-event tables.

    Args:
        cfg: the configuration (``calo.split`` for ``split``).
        tables: table files (:func:`select`).
        split: ``all``, or only the events of that ``calo.split`` split.
        output: a JSON file to write (with provenance); ``None``: none.
    """
    if split not in RATE_SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {RATE_SPLITS}")
    loaded = [read_table(t) for t in tables]
    table = concat_tables([t.columns for t in loaded])
    mask = None if split == "all" else split_mask(table["event"], cfg.calo.split, split)
    result = RatesSummary(split, rates(table, mask), tuple(t.sample for t in loaded))
    if output is not None:
        write_json(output, result.to_dict(), provenance=provenance_record(
            stage="rpv.rates", config=cfg, inputs=tables, extra={"split": split}))
    return result


@dataclass(frozen=True)
class TableStatistics:
    """:func:`stage_statistics` of one table: its events and the statistics per cut."""

    events: int
    stages: dict[str, CutStatistics]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (the keys of the written outputs, in their order)."""
        return {"events": self.events, "stages": {k: v.to_dict() for k, v in self.stages.items()}}


def table_statistics(
    cfg: Config,
    tables: Sequence[str | os.PathLike[str]],
    *,
    output: str | os.PathLike[str] | None = None,
) -> dict[str, TableStatistics]:
    """``hepline rpv stats``: per table (keyed by sample) and cut, raw events, the weighted
    efficiency and the effective events (:func:`stage_statistics`).

    Args:
        cfg: the configuration (``rpv.cuts``).
        tables: table files (:func:`select`).
        output: a JSON file to write (with provenance); ``None``: none.
    """
    out = {}
    for path in tables:
        t = read_table(path)
        out[str(t.summary.get("sample", str(path)))] = TableStatistics(
            len(t.columns["weight"]), stage_statistics(t.columns, cfg.rpv.cuts))
    if output is not None:
        write_json(output, {k: v.to_dict() for k, v in out.items()},
                   provenance=provenance_record(stage="rpv.stats", config=cfg, inputs=tables))
    return out
