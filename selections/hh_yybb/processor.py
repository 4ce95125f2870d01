"""HH → γγbb̄ event selection, the stage: run a processor over files, and its outputs.

The selection itself (ATLAS-style, physics-reference §4; arXiv:1807.04873 and 2112.11876):
the cuts are written once in :mod:`selections.hh_yybb.cuts`, with their values in the
``selection`` config section (:class:`~analysis.core.config.SelectionConfig`; schema
``analysis/core/config/schema/schema.d/selection.yaml``); what is read, per input format, in
:mod:`selections.hh_yybb.inputs`; the b-tagging (working points, scale factors, truth
tagging) in :mod:`selections.hh_yybb.btag`; the readable coffea processor that applies them
in :mod:`selections.hh_yybb.reference` (:class:`HHyybbProcessor`).

Engines (``selection.hh_yybb.engine``, :func:`make_processor`):

- ``reference`` (the default): :class:`HHyybbProcessor`, coffea ``PackedSelection`` and
  ``Weights``, ``hist`` fills;
- ``numba`` / ``numpy``: the compiled engine (:class:`~selections.hh_yybb.compiled.CompiledProcessor`),
  the same histograms and cutflows, several times faster; usable only while the reference
  is the one it was verified against (:func:`~selections.hh_yybb.compiled.compiled_engine_usable`),
  else an error;
- ``auto`` (the workflow's configs): the compiled engine when usable (numba for large
  datasets, ``numba_min_events``), else the reference with a warning.

b-tagging: the cut values come only from the taggers stage's working-point file
(:class:`~selections.hh_yybb.btag.WorkingPoints`; hepline ntuples decorated with
``Jet_btag_<tagger>``, or raw hepline ntuples with the trained taggers given to
:func:`run_selection` as ``models``) or, for CMS NanoAOD, from the config. A file that lacks
the tagger or WP, or names a branch the input does not have, raises
:class:`WorkingPointError`.

Output: a histogram set (:class:`analysis.stats.histograms.HistSet`) with, per sample,
un-normalised ``Hist(region, variation, observable)`` of m_γγ, m_bb, m* [GeV], the cutflow
(raw and weighted counts after each cut), σ [pb] and Σw.

Data flow: :func:`run_selection` (files and a :class:`~analysis.core.config.Config` in, a
:class:`SelectionResult` out, nothing written) and :func:`select`, the I/O function of
``hepline select`` (writes the histogram set, the cutflow JSON/markdown and the metrics, each
with the stage's provenance record)::

    hepline select --config workflows/config/default.yaml \\
        --working-points results/taggers/working_points.json \\
        --output results/hh_yybb/selection/yy.pkl results/decorated/yy/yy_*.root
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.core.atomic import write_json, write_text
from analysis.core.config import Config, RunnerConfig, SelectionConfig, config_hash
from analysis.core.config.selection import SelectionHhYybb
from analysis.core.errors import ConfigError, InputError, WorkingPointError
from analysis.core.format import combined_xsec
from analysis.core.provenance import provenance_record
from analysis.io.formats import DEFAULT_TREES
from analysis.io.ingest import (
    Fileset,
    InputFileError,
    detect_format,
    form_filter,
    inspect_file,
    read_metadata,
    unique_inputs,
)
from analysis.io.lumi import load_lumi_mask
from analysis.io.runner import RunMetrics, run_processor
from analysis.stats import histograms as H
from selections.hh_yybb.btag import BTagSpec, WorkingPoints, btag_spec, check_decorated_with, load_working_points
from selections.hh_yybb.compiled import CompiledProcessor, compiled_engine_usable, compiled_engine_verified
from selections.hh_yybb.cuts import CUTFLOW_STEPS, OBSERVABLES, REGIONS
from selections.hh_yybb.inputs import SUPPORTED_FORMATS, InputKind, input_kind
from selections.hh_yybb.reference import HHyybbProcessor

if TYPE_CHECKING:
    from taggers.models import TaggerModels

log = logging.getLogger(__name__)

__all__ = [
    "STAGE",
    "HHyybbProcessor",
    "SelectionResult",
    "SelectionSummary",
    "cutflow_report",
    "expects_compiled_engine",
    "make_processor",
    "run_selection",
    "sample_fileset",
    "select",
    "selection_runner",
]

#: what the ``select`` stage's outputs record as their stage, and the histogram set's summary
STAGE = "hh_yybb.select"
SUMMARY_STAGE = "selections.hh_yybb.processor"

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
        nanoaod_era: the NanoAOD era of the input (NanoAOD only).
        is_data: the input is collision data.
        engine: the processor that ran (``HHyybbProcessor``: the reference, or ``CompiledProcessor``).
        lumi_mask: the certified-luminosity JSON applied (collision data), and
        lumi_masked: the events it removed.
    """

    format: str
    btag: BTagSpec
    selection_config_hash: str
    branches: list[str]
    runner: RunMetrics
    read_s: float
    select_fill_s: float
    taggers_in_memory: tuple[str, ...] = ()
    nanoaod_era: str | None = None
    is_data: bool = False
    engine: str = ""
    lumi_mask: str | None = None
    lumi_masked: int = 0

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
        if self.engine:
            out["engine"] = self.engine
        if self.nanoaod_era is not None:
            out["nanoaod_era"] = self.nanoaod_era
        if self.is_data:
            out["is_data"] = True
            out["lumi_mask"] = {"file": self.lumi_mask, "events_removed": self.lumi_masked}
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
    if not extra or format in ("nanoaod", "physlite"):
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
    of shards is normalised correctly), or else the ``sumw`` of ``sample_metadata`` (files
    without a ``Runs`` tree, e.g. skims). σ (``xsec_pb``) comes from ``sample_metadata`` (the
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
    files = unique_inputs(files)  # a repeated file would double its events, not always its Σw
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
        g["files"][path] = DEFAULT_TREES.get(fmt, "Events")
        g["metas"].append(meta)
    out = Fileset()
    for name, g in groups.items():
        metas = g["metas"]
        sumws = [m.get("runs", {}).get("genEventSumw", m.get("sumw")) for m in metas]
        sumw = float(sum(sumws)) if all(s is not None for s in sumws) else None
        sumw_source = "Runs" if sumw is not None else None
        if sumw is None and extra.get(name, {}).get("sumw") is not None:
            sumw, sumw_source = float(extra[name]["sumw"]), "sample metadata"
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
            "sumw": sumw, "sumw_source": sumw_source, "n_files": len(g["files"]),
            "n_events": int(sum(m.get("n_entries", 0) for m in metas)),
        }}
    return out


def selection_runner(cfg: Config) -> RunnerConfig:
    """The runner settings this selection runs with: ``cfg.runner``, with
    ``selection.hh_yybb.chunksize`` (when not null) as the chunk size."""
    chunksize = cfg.selection.hh_yybb.chunksize
    return cfg.runner if chunksize is None else cfg.runner.replace(chunksize=int(chunksize))


def make_processor(selection: SelectionConfig, kind: str | InputKind, btag: BTagSpec, *,
                   models: TaggerModels | None = None, engine: str | None = None,
                   lumi_mask: Callable[[Any, Any], Any] | None = None) -> HHyybbProcessor | CompiledProcessor:
    """The processor of ``engine`` (default ``selection.hh_yybb.engine``; module docstring)
    for inputs of ``kind`` (a format, or an :class:`~selections.hh_yybb.inputs.InputKind`).

    Raises:
        ConfigError: ``numba`` or ``numpy`` asked for, but the compiled engine does not read
            ``kind`` or was not verified against the reference as it is now.
    """
    engine = engine or selection.hh_yybb.engine
    if engine == "reference":
        return HHyybbProcessor(selection, kind, btag, models=models, lumi_mask=lumi_mask)
    usable, why = compiled_engine_usable(kind)
    if usable:
        return CompiledProcessor(selection, kind, btag, models=models)
    if engine == "auto":
        level = logging.INFO if compiled_engine_verified() else logging.WARNING
        log.log(level, "selection.hh_yybb.engine auto: %s; running the reference engine", why)
        return HHyybbProcessor(selection, kind, btag, models=models, lumi_mask=lumi_mask)
    raise ConfigError(f"selection.hh_yybb.engine {engine}: {why}")


def _input_kind(selection: SelectionConfig, fileset: Fileset, fmt: str) -> InputKind:
    """The kind of a run's files: hepline files are simulation; NanoAOD and PHYSLITE files
    are looked at (the first file of each dataset: :func:`~analysis.io.ingest.inspect_file`)."""
    if fmt not in ("nanoaod", "physlite"):
        return InputKind(fmt)
    infos = [inspect_file(next(iter(entry["files"])), format=fmt) for entry in fileset.values() if entry["files"]]
    return input_kind(selection, infos)


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
    lumi_mask: str | os.PathLike[str] | None = None,
) -> SelectionResult:
    """Run the HH → γγbb̄ selection over ``files``; nothing is written (but ``metrics_path``).

    The files of one run are of one kind (:func:`~selections.hh_yybb.inputs.input_kind`:
    format, NanoAOD era, collision data or simulation). Collision data are counted with
    weight 1, without systematic variations and without normalisation, after the
    certified-luminosity mask (``lumi_mask``, else ``selection.hh_yybb.lumi_mask``).

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
        format: ``auto``, ``hepline``, ``nanoaod`` or ``physlite``.
        dataset, sample_metadata: see :func:`sample_fileset`.
        metrics_path: the runner also writes its metrics (with its own provenance) here.
        lumi_mask: a certified-luminosity JSON (CMS golden-JSON format) for collision data.

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
    kind = _input_kind(selection, fileset, fmt)
    hcfg = selection.hh_yybb
    if kind.is_data:
        tagged = sorted(set(fileset) & set(hcfg.btag.truth_tag_samples))
        if tagged:
            raise ConfigError(f"selection.hh_yybb.btag.truth_tag_samples names {', '.join(tagged)}, which is "
                              f"collision data ({fileset.files()[0]}): truth tagging is for simulation")
    mask_path = lumi_mask if lumi_mask is not None else hcfg.lumi_mask
    mask = None
    if mask_path is not None and kind.is_data:
        mask = load_lumi_mask(mask_path)
    elif mask_path is not None:
        log.warning("lumi mask %s not applied: the input is %s", mask_path, kind.describe())
    elif kind.is_data:
        log.warning("collision data selected without a certified-luminosity mask (selection.hh_yybb.lumi_mask "
                    "or --lumi-mask)")
    if kind.format == "hepline" and models is None:  # decorated ntuples: by the taggers of these working points?
        source = working_points if working_points is not None else hcfg.btag.working_points_file
        if source is not None:
            working_points = source if isinstance(source, WorkingPoints) else load_working_points(source)
            for entry in fileset.values():
                first = next(iter(entry["files"]), None)
                if first is None:
                    continue
                decorated = read_metadata(first).get("taggers")
                if isinstance(decorated, Mapping):
                    check_decorated_with(working_points, hcfg.btag.tagger, decorated, str(first))
    btag = btag_spec(selection, kind, working_points)
    proc = make_processor(selection, kind, btag, models=models, lumi_mask=mask)
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
        if kind.format == "nanoaod" and "missing required" in err.reason:
            raise InputFileError(err.path, f"{err.reason}, which the {kind.describe()} mapping reads "
                                           f"(selection.objects.nanoaod, eras.{kind.era})") from err
        if kind.format == "physlite" and "missing required" in err.reason:
            raise InputFileError(err.path, f"{err.reason}, which the {kind.describe()} mapping reads "
                                           "(selection.objects.physlite)") from err
        raise
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
            out = {"events": 0, "hists": H.make_hists(OBSERVABLES, tuple(REGIONS), proc.variations, proc.binning),
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
            is_data=kind.is_data,
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
        nanoaod_era=kind.era, is_data=kind.is_data, engine=type(proc).__name__,
        lumi_mask=os.fspath(mask_path) if mask is not None and mask_path is not None else None,
        lumi_masked=int(sum(o.get("lumi_masked", 0) for o in result.output.values())),
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
    """True if the compiled numba kernel will run: ``engine: numba``, or ``auto`` with the
    compiled engine usable and sample metadata files (the generation stage's merged
    ``<sample>.json``) of at least ``numba_min_events`` events (unreadable metadata counts as
    none). A command line warms the kernel up before freezing its start-up objects when it
    does (:func:`analysis.io.runner.freeze_startup_objects`)."""
    if hh.engine in ("reference", "numpy"):
        return False
    if hh.engine == "numba":
        return True
    if not compiled_engine_usable("hepline")[0]:
        return False
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
    lumi_mask: str | os.PathLike[str] | None = None,
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
        lumi_mask: collision data: the certified-luminosity JSON (as for :func:`run_selection`).

    Returns:
        The :class:`SelectionResult`.
    """
    remote = [f for f in files if "://" in f]  # URLs have no local identity: named only
    mask = lumi_mask if lumi_mask is not None else cfg.selection.hh_yybb.lumi_mask
    rec = provenance_record(
        stage=STAGE, config=cfg, seeds={"smearing": cfg.selection.hh_yybb.systematics.photon_energy_resolution.seed},
        inputs=[*(f for f in files if "://" not in f), *([working_points] if working_points else []),
                *(sample_metadata or []), *([mask] if mask is not None else [])],
        extra={"format": format, "dataset": dataset, **({"remote_inputs": remote} if remote else {})},
    )
    res = run_selection(files, cfg, working_points, format=format, dataset=dataset, sample_metadata=sample_metadata,
                        lumi_mask=lumi_mask)
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
