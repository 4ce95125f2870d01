"""Run a coffea processor over a fileset with the executor, workers and chunking from config.

A thin layer over ``coffea.processor.Runner`` (coffea >= 2025: the Runner builds
NanoEvents in ``"virtual"`` mode per chunk; executors are ``IterativeExecutor``,
``FuturesExecutor`` (a loky process pool) and ``DaskExecutor`` (a ``distributed`` client)).
It adds what the project needs around it:

- the input is validated first with :func:`analysis.io.ingest.validate_fileset` (bad files
  raise :class:`~analysis.io.ingest.InputFileError`, or are skipped and reported when
  ``skip_bad_files`` is on);
- the schema follows the input format (:class:`~analysis.io.ingest.HeplineSchema`, NanoAOD,
  PHYSLITE, Delphes), TTree or RNTuple alike;
- the metrics every stage records (physics-reference §7): wall time, events, bytes read and
  the rate per core, written atomically as JSON on request.

Runner configuration (the ``runner`` section of a hepline config, or that section itself;
every key is optional)::

    executor: iterative        # iterative | futures | dask
    workers: 1                 # futures: processes; dask: local-cluster worker processes
    chunksize: 100000          # entries per chunk (coffea splits files evenly)
    maxchunks: null            # at most this many chunks per dataset (null: all)
    skip_bad_files: false      # true: skip and report bad files instead of raising
    deep_validation: false     # true: also read every basket before the run (full read)
    retries: 0                 # coffea retries of a failing chunk
    align_clusters: false      # chunk on ROOT cluster boundaries
    status: false              # coffea/rich progress bar
    dask:
      scheduler_address: null  # connect here instead of starting a LocalCluster
      threads_per_worker: 1
      memory_limit: auto       # per worker, LocalCluster only

Unknown keys raise :class:`analysis.core.config.ConfigError` (a typo must not silently fall back to
a default). The ``dask`` executor needs ``dask[distributed]`` installed.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import platform
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
from coffea import processor
from coffea.processor.accumulator import accumulate

from analysis import __version__ as _hepline_version
from analysis.core.atomic import write_json
from analysis.core.config import RunnerConfig
from analysis.core.config.node import to_plain
from analysis.core.config.runner import JobqueueConfig
from analysis.core.errors import ConfigError, HeplineError
from analysis.io.formats import MEV
from analysis.io.ingest import (
    FORMATS,
    Fileset,
    form_filter,
    quiet_unreadable_branches,
    validate_fileset,
)
from analysis.io.schemas import restricted_schema

log = logging.getLogger(__name__)

__all__ = [
    "EXECUTORS",
    "BranchNames",
    "QuietIterativeExecutor",
    "RunMetrics",
    "RunResult",
    "SummaryProcessor",
    "name_filter",
    "run_processor",
    "write_metrics",
]

EXECUTORS = ("iterative", "futures", "dask")

_SLURM_ONLY = ("walltime", "queue", "account")
_HTCONDOR_ONLY = ("disk",)


def freeze_startup_objects() -> int:
    """Move every object alive now (imported modules, compiled kernels, the config) into the
    garbage collector's permanent generation (``gc.freeze``) and return how many.

    For command-line entry points, once start-up is done: reading allocates many short-lived
    container objects, which trigger full collections that would otherwise traverse the
    ≈ 3 × 10⁵ objects of numba, coffea, awkward and hist every time (frozen, the HH
    selection runs 10 % and a plain uproot read 18 % faster per CPU second,
    docs/benchmarks.md). Frozen objects are still freed by reference counting; objects
    created later are collected as usual.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def _jobqueue_cluster(jq: JobqueueConfig) -> Any:
    """A dask-jobqueue ``SLURMCluster``/``HTCondorCluster`` from ``runner.dask.jobqueue``.

    Only the cluster object and its in-process scheduler are created; no batch job is
    submitted until ``cluster.scale(...)`` (``cluster.job_script()`` shows what would be).
    Raises :class:`~analysis.core.config.ConfigError` when dask-jobqueue is missing or a key
    belongs to the other batch system.
    """
    try:
        import dask_jobqueue
    except ImportError as exc:
        raise ConfigError(
            "runner.dask.jobqueue needs dask-jobqueue installed "
            "(pip install 'hepline[farm]', or pip install dask-jobqueue)"
        ) from exc
    kind = jq.kind
    foreign = _HTCONDOR_ONLY if kind == "slurm" else _SLURM_ONLY
    for key in foreign:
        if getattr(jq, key) is not None:
            raise ConfigError(f"runner.dask.jobqueue.{key} is not a setting of kind {kind!r}")
    extra = to_plain(jq.job_extra_directives) or ([] if kind == "slurm" else {})
    if kind == "slurm" and not isinstance(extra, list):
        raise ConfigError("runner.dask.jobqueue.job_extra_directives: a list of sbatch options for slurm")
    if kind == "htcondor" and not isinstance(extra, Mapping):
        raise ConfigError("runner.dask.jobqueue.job_extra_directives: a mapping of submit commands for htcondor")
    kwargs: dict[str, Any] = {
        "cores": jq.cores,
        "memory": jq.memory,
        "job_extra_directives": extra,
        "job_script_prologue": list(jq.job_script_prologue),
        "scheduler_options": {"dashboard_address": ":0"},
    }
    # unset keys are left out: dask-jobqueue then takes its own default (processes from cores)
    for key in ("processes", "python", "interface", "local_directory", "log_directory"):
        if getattr(jq, key) is not None:
            kwargs[key] = getattr(jq, key)
    if kind == "slurm":
        for key in _SLURM_ONLY:
            if getattr(jq, key) is not None:
                kwargs[key] = getattr(jq, key)
        return dask_jobqueue.SLURMCluster(**kwargs)
    kwargs["disk"] = jq.disk or jq.memory
    return dask_jobqueue.HTCondorCluster(**kwargs)


@dataclass
class QuietIterativeExecutor(processor.IterativeExecutor):
    """coffea's :class:`~coffea.processor.IterativeExecutor` that, with ``status`` off,
    skips the rich progress bar coffea builds, updates and renders (to a silenced console)
    anyway: ≈ 1.6 ms of CPU per call (coffea 2026.9). With ``status`` on, coffea's own."""

    def __call__(self, items: Any, function: Any, accumulator: Any) -> Any:
        if self.status:
            return super().__call__(items, function, accumulator)
        if len(items) == 0:  # coffea's return values in both cases
            return accumulator
        return accumulate(map(function, items), accumulator), 0


@contextlib.contextmanager
def _executor(cfg: RunnerConfig) -> Iterator[tuple[processor.ExecutorBase, int]]:
    """The coffea executor for ``cfg`` and the number of cores it computes on.

    dask: a client of ``dask.scheduler_address``, of batch-job workers from
    ``dask.jobqueue`` (Slurm/HTCondor via dask-jobqueue; cores = jobs x cores per job), or of
    a ``LocalCluster`` of ``workers`` processes.
    """
    kind, workers = cfg.executor, cfg.workers
    common = {"status": cfg.status, "retries": cfg.retries}
    if kind == "iterative":
        yield QuietIterativeExecutor(**common), 1
    elif kind == "futures":
        yield processor.FuturesExecutor(workers=workers, **common), workers
    else:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigError(
                "runner.executor 'dask' needs dask[distributed] installed "
                "(pip install 'dask[distributed]')"
            ) from exc
        dcfg = cfg.dask
        jq = dcfg.jobqueue
        if jq and dcfg.scheduler_address:
            raise ConfigError(
                "runner.dask: give scheduler_address (an existing cluster) or jobqueue "
                "(start one), not both"
            )
        with contextlib.ExitStack() as stack:
            if dcfg.scheduler_address:
                client = stack.enter_context(Client(dcfg.scheduler_address))
                cores = sum(client.nthreads().values()) or workers
            elif jq:
                # closing the cluster (last, after the client) cancels the batch jobs
                cluster = stack.enter_context(_jobqueue_cluster(jq))
                cluster.scale(jobs=jq.jobs)
                client = stack.enter_context(Client(cluster))
                if jq.wait_for_workers:
                    log.info("waiting for %d dask worker(s) from %s batch jobs",
                             jq.wait_for_workers, jq.kind)
                    client.wait_for_workers(jq.wait_for_workers, timeout=jq.wait_timeout_s)
                cores = jq.jobs * jq.cores
            else:
                cluster = stack.enter_context(
                    LocalCluster(
                        n_workers=workers,
                        threads_per_worker=dcfg.threads_per_worker,
                        processes=True,
                        memory_limit=dcfg.memory_limit,
                        dashboard_address=":0",
                    )
                )
                client = stack.enter_context(Client(cluster))
                cores = sum(client.nthreads().values()) or workers
            yield processor.DaskExecutor(client=client, **common), cores


@contextlib.contextmanager
def _quiet_progress(quiet: bool) -> Iterator[None]:
    """Silence coffea's rich progress bars (its executors draw some even with status=False)."""
    from coffea.util import coffea_console

    previous = coffea_console.quiet
    coffea_console.quiet = quiet or previous
    try:
        yield
    finally:
        coffea_console.quiet = previous


@dataclass(frozen=True)
class RunMetrics:
    """What one :func:`run_processor` run did and how fast (the ``*.metrics.json`` files).

    Rates are per wall-clock second; ``events_per_s_per_core`` divides by ``cores``.
    """

    processor: str
    format: str
    schema: str
    executor: str
    workers: int
    cores: int
    chunksize: int
    chunks: int
    datasets: list[str]
    files: int
    skipped_files: list[dict[str, str]]
    events: int
    events_in_files: int
    bytes_read: int | None
    wall_time_s: float
    process_time_s: float
    events_per_s: float | None
    events_per_s_per_core: float | None
    bytes_per_s_per_core: float | None
    columns_read: list[str]
    config: dict[str, Any]
    versions: dict[str, str]
    started_utc: str
    #: fewer events processed than the files hold (chunks skipped at run time)
    incomplete: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``stage: run_processor``; ``incomplete`` only when true)."""
        out: dict[str, Any] = {"stage": "run_processor"}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "incomplete" and not value:
                continue
            out[f.name] = value
        return out


@dataclass
class RunResult:
    """What :func:`run_processor` returns: the accumulated output and the run's metrics."""

    output: Any
    metrics: RunMetrics
    fileset: Fileset = field(repr=False)

    @property
    def skipped(self) -> list[dict[str, str]]:
        """``[{"file", "reason"}]`` of input files left out under the skip-bad policy."""
        return self.metrics.skipped_files

    def write_metrics(
        self, path: str | os.PathLike[str], *, provenance: Mapping[str, Any] | None = None
    ) -> Path:
        """Write :attr:`metrics` as JSON, atomically (plus the ``provenance`` sidecar, if
        given); returns the path."""
        return write_metrics(path, self.metrics.to_dict(), provenance=provenance)


def write_metrics(
    path: str | os.PathLike[str],
    metrics: Mapping[str, Any],
    *,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Write a metrics dict as sorted, indented JSON via a temporary file and rename (plus
    the ``provenance`` sidecar ``<path>.provenance.json``, if given)."""
    write_json(path, dict(metrics), provenance=provenance)
    return Path(path)


def _versions() -> dict[str, str]:
    import awkward
    import coffea
    import uproot

    return {
        "hepline": _hepline_version,
        "coffea": coffea.__version__,
        "uproot": uproot.__version__,
        "awkward": awkward.__version__,
        "python": platform.python_version(),
    }


@dataclass(frozen=True)
class BranchNames:
    """uproot ``filter_name`` of exact branch names, as one set lookup per name.

    uproot turns a list of names into one matcher per name and tries each in turn, for
    every branch of the tree and its ``/``-prefixed path: coffea's form of a hepline tree
    restricted to 30 of its 92 branches takes 1.23 ms with the list, 0.82 ms with this. A
    picklable object, so that it travels to the futures and dask workers."""

    names: frozenset[str]

    def __call__(self, name: str) -> bool:
        return name in self.names


_GLOB_CHARACTERS = frozenset("*?[")


def name_filter(names: Sequence[str]) -> BranchNames | list[str]:
    """:class:`BranchNames` of ``names``; the list itself where a name is an uproot glob or
    regular expression (uproot matches those)."""
    if any(_GLOB_CHARACTERS & set(n) or n.startswith("/") for n in names):
        return list(names)
    return BranchNames(frozenset(names))


def _metadata_cache(fileset: Fileset) -> dict[Any, dict[str, Any]]:
    """coffea's per-file preprocessing metadata (entries, UUID) from our validation.

    The validation already opened every tree; handing coffea what it learned saves its
    preprocessing pass, which would open every file once more (≈ 15 ms of CPU per
    184-branch hepline tree). Files without a recorded UUID are left to coffea.
    """
    from coffea.processor.executor import FileMeta

    cache: dict[Any, dict[str, Any]] = {}
    for dataset, entry in fileset.items():
        for path, tree in entry["files"].items():
            uuid = fileset.uuids.get(path)
            if uuid and path in fileset.num_entries:
                # coffea replaces a file's metadata by the cached entry: keep the dataset's
                cache[FileMeta(dataset, path, tree)] = {
                    **(entry.get("metadata") or {}),
                    "numentries": fileset.num_entries[path], "uuid": uuid,
                }
    return cache


def run_processor(
    processor_instance: processor.ProcessorABC,
    fileset: Any,
    runner: RunnerConfig | None = None,
    *,
    format: str = "auto",
    required_branches: Any = None,
    metrics_path: str | os.PathLike[str] | None = None,
    uproot_options: Mapping[str, Any] | None = None,
    preload: Sequence[str] | None = None,
    provenance_config: Any = None,
) -> RunResult:
    """Run ``processor_instance`` over ``fileset`` and return output plus metrics.

    ``fileset``: a :class:`~analysis.io.ingest.Fileset`, a coffea-style mapping, or paths (a
    list of paths is grouped into datasets with :meth:`Fileset.from_files`, i.e. by the
    ``sample`` of hepline files, and the dataset metadata, ``xsec_pb``, ``sumw``, ... reach
    ``events.metadata`` in ``process``). ``runner``: the executor, workers, chunking and
    bad-file policy (default: :meth:`RunnerConfig.default`).
    ``format``: ``"auto"`` or a key of :data:`analysis.io.ingest.FORMATS`; it picks the
    schema. ``required_branches``: as in :func:`~analysis.io.ingest.validate_file` (default:
    the format's). With ``metrics_path`` the metrics are also written there (atomically),
    with a provenance sidecar (stage ``runner``: the hash of ``provenance_config``, default
    the runner section, and the good files).
    ``preload``: the branches ``process`` reads. coffea's factory then reads them for each
    chunk in one bulk ``arrays`` call, and builds the NanoEvents form over those branches
    only (:func:`analysis.io.ingest.form_filter`): one tree open per chunk, no per-column
    round trips, and no form work for the other branches of the file (TTrees; an RNTuple's
    form is not restricted).

    Metrics: ``events``, ``bytes_read``, ``wall_time_s``, ``process_time_s`` (time inside
    ``process`` summed over chunks), ``cores``, ``events_per_s``, ``events_per_s_per_core``
    (wall-clock events/s divided by cores), ``bytes_per_s_per_core``, ``chunks``,
    ``files``, ``datasets``, ``events_in_files`` (entries of the good files),
    ``skipped_files``, ``columns_read``, the runner config, ``format``, ``schema``,
    ``versions`` and ``started_utc``.
    """
    cfg = runner if runner is not None else RunnerConfig.default()
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    t0 = time.perf_counter()

    if isinstance(fileset, (Fileset, Mapping)):
        fs_in = fileset
    else:
        fs_in = Fileset.from_files(
            fileset, format=format, skip_bad=cfg.skip_bad_files,
            required_branches=required_branches,
        )  # fmt: skip
    good, fmt = validate_fileset(
        fs_in,
        required_branches,
        skip_bad=cfg.skip_bad_files,
        format=format,
        deep=cfg.deep_validation,
    )
    schema = FORMATS[fmt].schema
    events_in_files = sum(good.num_entries.values())
    fileset_in: dict[str, Any] = dict(good)
    iteritems: dict[str, Any] = {}
    if preload is not None:
        fileset_in = {name: {**entry, "preload": list(preload)} for name, entry in fileset_in.items()}
        names = form_filter(preload, fmt)
        # an RNTuple's form is built from its fields (``_collection<N>`` for a NanoAOD
        # collection), which the branch names of a restricted form do not name
        if names is not None and not any(i.storage == "RNTuple" for i in good.infos.values()):
            iteritems = {"filter_name": name_filter(names)}
            schema = restricted_schema(schema)

    with _quiet_progress(not cfg.status), quiet_unreadable_branches(), _executor(cfg) as (executor, cores):
        coffea_runner = processor.Runner(
            executor=executor,
            chunksize=cfg.chunksize,
            maxchunks=cfg.maxchunks,
            skipbadfiles=cfg.skip_bad_files,
            align_clusters=cfg.align_clusters,
            savemetrics=True,
            schema=schema,
            metadata_cache=_metadata_cache(good),
        )
        try:
            output, coffea_metrics = coffea_runner(
                fileset_in, processor_instance, uproot_options=dict(uproot_options or {}),
                iteritems_options=iteritems,
            )
        except Exception as exc:  # coffea wraps a processor's error: "Failed processing file ..."
            cause = _hepline_cause(exc)
            if cause is None:
                raise
            raise cause from exc
    wall = time.perf_counter() - t0

    events = int(coffea_metrics.get("entries", 0))
    bytes_read = coffea_metrics.get("bytesread")
    incomplete = cfg.maxchunks is None and events != events_in_files
    if incomplete:
        log.warning(
            "processed %d events but the input files hold %d (chunks skipped at run time?)",
            events,
            events_in_files,
        )
    metrics = RunMetrics(
        processor=type(processor_instance).__name__,
        format=fmt,
        schema=schema.__name__,
        executor=cfg.executor,
        workers=cfg.workers,
        cores=cores,
        chunksize=cfg.chunksize,
        chunks=int(coffea_metrics.get("chunks", 0)),
        datasets=sorted(good),
        files=len(good.files()),
        skipped_files=list(good.skipped),
        events=events,
        events_in_files=events_in_files,
        bytes_read=int(bytes_read) if bytes_read is not None else None,
        wall_time_s=wall,
        process_time_s=float(coffea_metrics.get("processtime", 0.0)),
        events_per_s=events / wall if wall > 0 else None,
        events_per_s_per_core=events / wall / cores if wall > 0 else None,
        bytes_per_s_per_core=bytes_read / wall / cores if wall > 0 and bytes_read is not None else None,
        columns_read=sorted({str(c).rsplit("-", 1)[0] for c in coffea_metrics.get("columns", [])}),
        config=cfg.to_dict(),
        versions=_versions(),
        started_utc=started,
        incomplete=incomplete,
    )
    result = RunResult(output=output, metrics=metrics, fileset=good)
    if metrics_path is not None:
        from analysis.core.provenance import provenance_record

        files = good.files()  # remote URLs have no local identity: listed by name only
        remote = [f for f in files if "://" in f]
        record = provenance_record(stage="runner", config=provenance_config if provenance_config is not None else cfg,
                                   inputs=[f for f in files if "://" not in f],
                                   extra={"remote_inputs": remote} if remote else None)
        result.write_metrics(metrics_path, provenance=record)
    return result


# ---------------------------------------------------------------------------------------
# A small processor for smoke tests, benchmarks and the docs
# ---------------------------------------------------------------------------------------
def _hepline_cause(exc: BaseException) -> HeplineError | None:
    """The project's own error (one line naming the file and the field) behind an exception
    coffea raised around it, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, HeplineError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _event_weight(events: Any) -> ak.Array:
    fields = events.fields
    if "genWeight" in fields:
        return events.genWeight
    if "Event" in fields and "Weight" in events.Event.fields:  # Delphes
        return events.Event.Weight
    if "EventInfo" in fields and "mcEventWeights" in events.EventInfo.fields:  # PHYSLITE: nominal first
        return ak.fill_none(ak.firsts(events.EventInfo.mcEventWeights), 1.0)
    return ak.Array(np.ones(len(events), dtype=np.float32))


class SummaryProcessor(processor.ProcessorABC):
    """Per-dataset counts that work on hepline, NanoAOD, PHYSLITE and Delphes events alike.

    Output ``{dataset: {"events", "sumw", "jets", "sum_jet_pt", "njet_hist",
    "tracks_in_jets"}}`` for jets above ``jet_pt_min`` (GeV; PHYSLITE's MeV converted);
    ``njet_hist`` is a numpy histogram
    of the jet multiplicity (last bin: ``max_jets`` or more); ``tracks_in_jets`` (hepline
    only, else 0) counts ``Jet.tracks`` and so exercises the cross-reference in workers.
    """

    def __init__(self, jet_pt_min: float = 20.0, max_jets: int = 12) -> None:
        self.jet_pt_min = float(jet_pt_min)
        self.max_jets = int(max_jets)

    def process(self, events: Any) -> dict[str, Any]:
        dataset = events.metadata.get("dataset", "default")
        if "Jets" in events.fields:  # PHYSLITE, MeV
            jets = events.Jets[events.Jets.pt * MEV > self.jet_pt_min]
            jet_pt = jets.pt * MEV
        else:
            jets = events.Jet[events.Jet.pt > self.jet_pt_min]
            jet_pt = jets.pt
        n_jets = ak.to_numpy(ak.num(jets, axis=1))
        hist = np.bincount(np.minimum(n_jets, self.max_jets), minlength=self.max_jets + 1)
        tracks = 0
        if "trackIdxG" in ak.fields(jets):
            tracks = int(ak.sum(ak.num(jets.tracks, axis=2)))
        return {
            dataset: {
                "events": len(events),
                "sumw": float(ak.sum(ak.values_astype(_event_weight(events), np.float64))),
                "jets": int(n_jets.sum()),
                "sum_jet_pt": float(ak.sum(ak.values_astype(jet_pt, np.float64))),
                "njet_hist": hist.astype(np.int64),
                "tracks_in_jets": tracks,
            }
        }

    def postprocess(self, accumulator: Any) -> Any:
        return accumulator
