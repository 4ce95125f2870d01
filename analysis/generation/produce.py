"""Produce one shard of one sample: Pythia → detector → ROOT ntuple, with timing metrics.

:func:`produce_shard` is the I/O function of ``hepline generate`` (one job per shard, as
Snakemake runs it), :func:`write_merged` that of ``hepline merge``::

    python -m analysis.generation produce --config workflows/config/default.yaml \\
        --sample ttbar --shard 0 --output results/samples/ttbar/ttbar_0.root

    python -m analysis.generation merge --output results/samples/ttbar.json \\
        results/samples/ttbar/ttbar_*.root

From Python (notebooks, tests)::

    cfg = load_config("workflows/config/default.yaml")
    result = produce_shard(cfg, "ttbar", 0, "ttbar_0.root", n_events=200)
    result.metadata.xsec_pb, result.metrics.events_per_s
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import analysis
from analysis.core.atomic import write_json
from analysis.core.config import Config, ConfigError, DetectorConfig, config_hash
from analysis.core.errors import InputError
from analysis.core.format import combined_xsec
from analysis.core.provenance import provenance_record
from analysis.generation.detector import simulate
from analysis.generation.pileup import load_pileup
from analysis.generation.processes import process_card
from analysis.generation.pythia import (
    GenerationStats,
    common_settings,
    cross_section_pb,
    event_weights,
    generate_batches,
    make_pythia,
    shard_seed,
)
from analysis.generation.writer import NtupleWriter, compression_from_config
from analysis.io.ingest import read_metadata

__all__ = [
    "EVENT_NUMBER_STRIDE",
    "MergedSample",
    "ShardMetadata",
    "ShardMetrics",
    "ShardResult",
    "WriteFilter",
    "merge_metadata",
    "produce_shard",
    "write_merged",
]

log = logging.getLogger(__name__)

#: event numbers of shard k start at k * EVENT_NUMBER_STRIDE + 1
EVENT_NUMBER_STRIDE = 1_000_000_000


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class WriteFilter:
    """An event selection applied to the simulated events before they are written.

    The selection sees each simulated block (the dict that is written: event-level arrays and
    jagged collections, with the values as stored, e.g. float32 tower energies in GeV) and
    returns a boolean mask of the events to keep. Pythia and the detector run as without it
    (same seed, same events); only the file shrinks. The weighted efficiency
    ε = Σw(kept) / Σw(simulated) is folded into the shard's cross-section (σ → σ·ε), so that
    ``genWeight · σ / Σw`` of the kept events reproduces their unfiltered yields, and is stored
    as ``preselection`` in the metadata. The selection code lives with the analysis that needs
    it (e.g. :mod:`selections.rpv.preselection`); generation only applies it.

    Attributes:
        name: a short name (stored in the metadata).
        description: the selection in words (stored in the metadata).
        select: ``block -> mask`` (one bool per event of the block).
    """

    name: str
    description: str
    select: Callable[[Mapping[str, Any]], np.ndarray]


@dataclass(frozen=True)
class ShardMetadata:
    """The metadata of one shard, as stored in its ntuple (``hepline_metadata``).

    Cross-sections in pb (σ x branching x filter efficiency of the events written, see
    :func:`analysis.generation.pythia.cross_section_pb`). ``sumw`` and ``sumw2`` (Σ genWeight,
    Σ genWeight²) are ``None`` when no file was written.
    """

    sample: str
    process: str
    run_number: int
    shard: int
    #: the shard's Pythia and detector seed (:func:`~analysis.generation.pythia.shard_seed`)
    seed: int
    xsec_pb: float
    xsec_err_pb: float
    #: ``"external"`` (the sample's ``xsec_pb``) or ``"pythia"`` (``sigmaGen``)
    xsec_source: str
    branching: float
    #: the process card's event filter, in words (key ``filter`` in the file)
    filter_description: str
    n_generated: int
    n_accepted: int
    pythia_settings: tuple[str, ...]
    detector: DetectorConfig
    hepline_version: str
    #: :func:`~analysis.core.config.config_hash` of the generation and detector sections and the seed
    config_hash: str
    created_utc: str
    n_events: int
    sumw: float | None = None
    sumw2: float | None = None
    #: ⟨μ⟩ overlaid, the library's hash and file (``None`` without pile-up)
    pileup_mu: float = 0.0
    pileup_library_hash: str | None = None
    pileup_library: str | None = None
    #: the :class:`WriteFilter` applied before writing (name, description, events and Σw
    #: before/after, weighted efficiency folded into ``xsec_pb``); ``None`` without one
    preselection: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object stored in the ntuple (plain lists and dicts)."""
        out: dict[str, Any] = {
            "sample": self.sample,
            "process": self.process,
            "run_number": self.run_number,
            "shard": self.shard,
            "seed": self.seed,
            "xsec_pb": self.xsec_pb,
            "xsec_err_pb": self.xsec_err_pb,
            "xsec_source": self.xsec_source,
            "branching": self.branching,
            "filter": self.filter_description,
            "n_generated": self.n_generated,
            "n_accepted": self.n_accepted,
            "pythia_settings": list(self.pythia_settings),
            "detector": self.detector.to_dict(),
            "hepline_version": self.hepline_version,
            "config_hash": self.config_hash,
            "created_utc": self.created_utc,
            "n_events": self.n_events,
            "pileup": {"mu": self.pileup_mu, "library_hash": self.pileup_library_hash,
                       "library": self.pileup_library},
        }
        if self.sumw is not None:
            out["sumw"] = self.sumw
        if self.sumw2 is not None:
            out["sumw2"] = self.sumw2
        if self.preselection is not None:
            out["preselection"] = dict(self.preselection)
        return out


@dataclass(frozen=True)
class ShardMetrics:
    """Timing and size of one shard's production (seconds, events/s, bytes).

    Wall-clock times (``*_s``) and CPU times of this process (``*_cpu_s``, robust against
    other processes sharing the cores); rates and fractions are ``None`` when their
    denominator is zero, ``bytes`` when no file was written.
    """

    events: int
    wall_s: float
    init_s: float
    pythia_s: float
    detector_s: float
    write_s: float
    pythia_events_per_s: float | None
    events_per_s: float | None
    detector_plus_write_fraction: float | None
    pythia_cpu_s: float
    detector_cpu_s: float
    write_cpu_s: float
    pythia_events_per_cpu_s: float | None
    detector_plus_write_cpu_fraction: float | None
    bytes: int | None
    #: only when a file was written and holds events
    bytes_per_event: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The metrics JSON object (``bytes_per_event`` only where it is defined)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if self.bytes_per_event is None:
            del out["bytes_per_event"]
        return out


@dataclass(frozen=True)
class ShardResult:
    """What :func:`produce_shard` made: the shard's metadata and timing metrics."""

    metadata: ShardMetadata
    metrics: ShardMetrics
    #: the ntuple written, or ``None``
    output: Path | None

    def to_dict(self) -> dict[str, Any]:
        """``{"metadata": ..., "metrics": ...}`` as JSON-ready dicts."""
        return {"metadata": self.metadata.to_dict(), "metrics": self.metrics.to_dict()}


@dataclass(frozen=True)
class MergedSample:
    """The combined metadata of one sample's shards (``<sample>.json`` of ``hepline merge``).

    Σw, Σw² and the counts add up; σ (pb) is the generated-event-weighted mean of the shards'
    (:func:`analysis.core.format.combined_xsec`).
    """

    sample: str
    process: str
    xsec_pb: float
    xsec_err_pb: float
    xsec_source: str
    sumw: float
    sumw2: float
    n_events: int
    n_generated: int
    files: tuple[str, ...]
    shards: tuple[int | None, ...]
    config_hash: str
    hepline_version: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written by :func:`write_merged`."""
        return {
            "sample": self.sample,
            "process": self.process,
            "xsec_pb": self.xsec_pb,
            "xsec_err_pb": self.xsec_err_pb,
            "xsec_source": self.xsec_source,
            "sumw": self.sumw,
            "sumw2": self.sumw2,
            "n_events": self.n_events,
            "n_generated": self.n_generated,
            "files": list(self.files),
            "shards": list(self.shards),
            "config_hash": self.config_hash,
            "hepline_version": self.hepline_version,
        }


# --------------------------------------------------------------------------- produce


def produce_shard(
    cfg: Config,
    sample_name: str,
    shard: int,
    output: str | os.PathLike[str] | None,
    *,
    n_events: int | None = None,
    detector: bool = True,
    progress: bool = True,
    metrics: str | os.PathLike[str] | None = None,
    write_filter: WriteFilter | None = None,
    pileup_library: str | os.PathLike[str] | None = None,
) -> ShardResult:
    """Generate, simulate and write one shard of a sample.

    The shard's seed is ``cfg.seed`` + the sample's offset + ``shard``
    (:func:`~analysis.generation.pythia.shard_seed`): the same config and shard give the same
    events, bit for bit.

    Args:
        cfg: the configuration (``generation``, ``detector`` and ``seed`` are used).
        sample_name: a key of ``cfg.generation.samples``.
        shard: the shard index, ``0 <= shard < shards``.
        output: the ROOT file to write (atomically); ``None`` skips writing.
        n_events: events to write; default ``events_per_shard`` x ``event_scale`` (rounded).
        detector: ``False`` runs Pythia only and writes nothing (the generator-only speed).
        progress: show a progress bar.
        metrics: also write the timing metrics as JSON here (with provenance).
        write_filter: keep only the simulated events it selects (:class:`WriteFilter`); σ is
            multiplied by its weighted efficiency. Event numbers stay those of the unfiltered
            run (gaps where events were dropped).
        pileup_library: the minimum-bias library to overlay when ``generation.pileup.mu`` > 0;
            default :func:`~analysis.generation.pileup.library_path` of ``cfg``.

    Returns:
        The shard's metadata (as stored in the file) and timing metrics.

    Raises:
        ConfigError: the sample is not in the configuration or ``shard`` is out of range.
        InputFileError: pile-up is on and its library is missing or was made with another
            configuration.
    """
    gen = cfg.generation
    samples = gen.samples
    if sample_name not in samples:
        raise ConfigError(f"generation.samples: no sample {sample_name!r} in the configuration "
                          f"(have: {', '.join(sorted(samples))})")
    sample = samples[sample_name]
    if not 0 <= shard < sample.shards:
        raise ConfigError(f"generation.samples.{sample_name}.shards: shard {shard} out of range "
                          f"for sample {sample_name!r} ({sample.shards} shards)")
    n_target = int(n_events if n_events is not None
                   else round(sample.events_per_shard * gen.event_scale))
    seed = shard_seed(cfg.seed, sample_name, sample, shard)
    card = process_card(sample, name=sample_name)
    settings = common_settings(seed, gen.sqrt_s_gev, gen.multiparton_interactions)
    rng = np.random.default_rng(seed)
    det = cfg.detector
    mu = gen.pileup.mu
    library = load_pileup(cfg, pileup_library) if detector else None

    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"hepline-{sample_name}-{shard}-") as workdir:
        pythia = make_pythia(card, settings, Path(workdir))
        t_init = time.perf_counter() - t_start
        stats = GenerationStats()
        t_det = t_write = c_det = c_write = 0.0
        n_done = 0
        presel = {"n_before": 0, "n_after": 0, "sumw_before": 0.0, "sumw_after": 0.0}
        writer = (
            NtupleWriter(output, compression=compression_from_config(gen.compression),
                         basket_events=gen.basket_events)
            if (output is not None and detector) else None
        )
        bar = _progress(n_target, f"{sample_name}[{shard}]", enabled=progress)
        with writer if writer is not None else nullcontext():
            for batch in generate_batches(pythia, card, n_target, gen.batch_size, stats):
                if not detector:
                    n_done += len(batch)
                    bar.update(len(batch))
                    continue
                t0, c0 = time.perf_counter(), time.process_time()
                block = simulate(batch, rng, det, library, mu)
                n = len(batch)
                block.update({
                    "run": np.full(n, sample.run_number, dtype=np.uint32),
                    "luminosityBlock": np.full(n, shard, dtype=np.uint32),
                    "event": (shard * EVENT_NUMBER_STRIDE + n_done + 1 + np.arange(n)).astype(np.uint64),
                    "genWeight": event_weights(batch).astype(np.float32),
                })
                kept: dict[str, Any] | None = block
                if write_filter is not None:
                    kept = _apply_write_filter(write_filter, block, presel,
                                               first=writer is not None and presel["n_before"] == 0)
                t1, c1 = time.perf_counter(), time.process_time()
                t_det += t1 - t0
                c_det += c1 - c0
                if writer is not None and kept is not None:
                    writer.write(kept)
                    t_write += time.perf_counter() - t1
                    c_write += time.process_time() - c1
                n_done += n
                bar.update(n)
            bar.close()
            xsec, xsec_err, source = cross_section_pb(pythia, card, stats)
            presel_meta = None
            if write_filter is not None and detector:
                eff = presel["sumw_after"] / presel["sumw_before"] if presel["sumw_before"] > 0 else 0.0
                xsec, xsec_err = xsec * eff, xsec_err * eff
                presel_meta = {"name": write_filter.name, "description": write_filter.description,
                               **presel, "efficiency": eff}
                log.info("%s shard %d: preselection %r kept %d of %d events (weighted efficiency %.4g)",
                         sample_name, shard, write_filter.name, presel["n_after"], presel["n_before"], eff)
            meta = ShardMetadata(
                sample=sample_name,
                process=sample.process,
                run_number=sample.run_number,
                shard=shard,
                seed=seed,
                xsec_pb=xsec,
                xsec_err_pb=xsec_err,
                xsec_source=source,
                branching=card.branching,
                filter_description=card.filter_description,
                n_generated=stats.n_generated,
                n_accepted=stats.n_accepted,
                pythia_settings=(*settings, *card.settings),
                detector=det,
                hepline_version=analysis.__version__,
                config_hash=config_hash({"generation": gen, "detector": det, "seed": cfg.seed}),
                created_utc=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                n_events=n_done,
                preselection=presel_meta,
                pileup_mu=mu if library is not None else 0.0,
                pileup_library_hash=library.library_hash if library is not None else None,
                pileup_library=str(library.path) if library is not None and library.path else None,
            )
            if writer is not None:
                writer.finish(meta.to_dict(), provenance=provenance_record(
                    stage="generation.produce", config=cfg, seeds={"base": cfg.seed, "shard": seed},
                    inputs=[library.path] if library is not None and library.path is not None else (),
                    extra={"sample": sample_name, "shard": shard, "n_events": n_target}))
                meta = dataclasses.replace(meta, n_events=writer.n_events, sumw=writer.sumw,
                                           sumw2=writer.sumw2)
    wall = time.perf_counter() - t_start
    n_bytes = Path(output).stat().st_size if (writer is not None and output is not None
                                              and Path(output).exists()) else None
    timing = ShardMetrics(
        events=n_done,
        wall_s=wall,
        init_s=t_init,
        pythia_s=stats.seconds,
        detector_s=t_det,
        write_s=t_write,
        pythia_events_per_s=stats.n_generated / stats.seconds if stats.seconds else None,
        events_per_s=n_done / (wall - t_init) if wall > t_init else None,
        detector_plus_write_fraction=(t_det + t_write) / stats.seconds if stats.seconds else None,
        pythia_cpu_s=stats.cpu_seconds,
        detector_cpu_s=c_det,
        write_cpu_s=c_write,
        pythia_events_per_cpu_s=stats.n_generated / stats.cpu_seconds if stats.cpu_seconds else None,
        detector_plus_write_cpu_fraction=(c_det + c_write) / stats.cpu_seconds if stats.cpu_seconds else None,
        bytes=n_bytes,
        bytes_per_event=n_bytes / n_done if (n_bytes is not None and n_done) else None,
    )
    log.info(
        "%s shard %d: %d events in %.1f s (Pythia %.1f s, detector %.1f s, write %.1f s); σ = %.4g pb (%s)",
        sample_name, shard, n_done, wall, stats.seconds, t_det, t_write, xsec, source,
    )
    result = ShardResult(metadata=meta, metrics=timing,
                         output=Path(output) if writer is not None and output is not None else None)
    if metrics is not None:
        write_json(metrics, timing.to_dict(), provenance=provenance_record(
            stage="generation.produce.metrics", config=cfg,
            seeds={"base": cfg.seed, "shard": seed},
            inputs=[output] if output else (),
            extra={"sample": sample_name, "shard": shard}))
    return result


def _apply_write_filter(write_filter: WriteFilter, block: dict[str, Any], counts: dict[str, Any], *,
                        first: bool) -> dict[str, Any] | None:
    """The events of ``block`` that ``write_filter`` keeps (``None`` if none, except for the
    first block of a file, which is kept empty so that the tree gets its branches); adds the
    events and Σ genWeight before and after to ``counts``."""
    keep = np.asarray(write_filter.select(block), dtype=bool)
    w = np.asarray(block["genWeight"], dtype=np.float64)
    if keep.shape != w.shape:
        raise ValueError(f"write filter {write_filter.name!r} returned {keep.shape} flags for {w.size} events")
    counts["n_before"] += int(w.size)
    counts["n_after"] += int(keep.sum())
    counts["sumw_before"] += float(w.sum())
    counts["sumw_after"] += float(w[keep].sum())
    if not keep.any() and not first:
        return None
    return {k: v[keep] for k, v in block.items()}


def _progress(total: int, desc: str, *, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="ev", disable=not enabled, leave=False)


# --------------------------------------------------------------------------- merge


def merge_metadata(paths: Sequence[str | os.PathLike[str]]) -> MergedSample:
    """Combine the metadata of one sample's shards (ntuples or hadd outputs).

    Args:
        paths: the shard files, all of one sample.

    Returns:
        The merged record: Σw, Σw² and counts add, σ (pb) is the generated-event-weighted mean.

    Raises:
        InputError: no files, or files of several samples.
    """
    metas = [read_metadata(p) for p in paths]
    return _merge(metas, paths)


def _merge(metas: list[dict[str, Any]], paths: Sequence[str | os.PathLike[str]]) -> MergedSample:
    if not metas:
        raise InputError("merge: no shard files to merge")
    samples = {m["sample"] for m in metas}
    if len(samples) != 1:
        raise InputError(f"merge: shards of several samples given to one merge: {sorted(samples)}")
    xsec, xsec_err = combined_xsec(metas)
    return MergedSample(
        sample=samples.pop(),
        process=metas[0]["process"],
        xsec_pb=xsec,
        xsec_err_pb=xsec_err,
        xsec_source=metas[0]["xsec_source"],
        sumw=float(sum(m["sumw"] for m in metas)),
        sumw2=float(sum(m["sumw2"] for m in metas)),
        n_events=int(sum(m["n_events"] for m in metas)),
        n_generated=int(sum(m["n_generated"] for m in metas)),
        files=tuple(str(p) for p in paths),
        shards=tuple(s for m in metas for s in m.get("shards", [m.get("shard")])),  # hadd outputs: several
        config_hash=metas[0]["config_hash"],
        hepline_version=metas[0]["hepline_version"],
    )


def write_merged(inputs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str]) -> MergedSample:
    """Merge the metadata of one sample's shards and write it as JSON (``hepline merge``).

    Args:
        inputs: the shard ntuples of one sample.
        output: the JSON file to write (atomically, with a provenance sidecar).

    Returns:
        The merged record written (:func:`merge_metadata`).
    """
    merged = merge_metadata(inputs)
    write_json(output, merged.to_dict(), provenance=provenance_record(
        stage="generation.merge", inputs=inputs, extra={"sample": merged.sample}))
    return merged
