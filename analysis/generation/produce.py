"""Produce one shard of one sample: Pythia → detector → ROOT ntuple, with timing metrics.

Command line (one job per shard, as Snakemake runs it)::

    python -m analysis.generation produce --config workflows/config/default.yaml \\
        --sample ttbar --shard 0 --output results/samples/ttbar/ttbar_0.root

    python -m analysis.generation merge --output results/samples/ttbar.json \\
        results/samples/ttbar/ttbar_*.root
"""

from __future__ import annotations

import datetime as _dt
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import analysis
from analysis.core.atomic import write_json
from analysis.core.config import config_hash
from analysis.core.format import combined_xsec
from analysis.generation.detector import simulate
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
from analysis.core.provenance import provenance_record

log = logging.getLogger(__name__)

EVENT_NUMBER_STRIDE = 1_000_000_000


def produce_shard(
    cfg: dict[str, Any],
    sample_name: str,
    shard: int,
    output: str | Path | None,
    *,
    n_events: int | None = None,
    detector: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate, simulate and write one shard; return its metadata and timing metrics.

    ``output=None`` (or ``detector=False``) skips writing; ``detector=False`` also skips the
    detector, which is how the generator-only speed is measured.
    """
    gen = cfg["generation"]
    samples = gen["samples"]
    if sample_name not in samples:
        raise KeyError(f"sample {sample_name!r} is not in the configuration (have: {sorted(samples)})")
    sample = samples[sample_name]
    if not 0 <= shard < sample["shards"]:
        raise ValueError(f"shard {shard} out of range for sample {sample_name!r} ({sample['shards']} shards)")
    n_target = int(n_events if n_events is not None
                   else round(sample["events_per_shard"] * gen.get("event_scale", 1.0)))
    seed = shard_seed(cfg["seed"], sample_name, sample, shard)
    card = process_card(sample, name=sample_name)
    settings = common_settings(seed, gen["sqrt_s_gev"], gen["multiparton_interactions"])
    rng = np.random.default_rng(seed)
    det_cfg = cfg["detector"]

    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"hepline-{sample_name}-{shard}-") as workdir:
        pythia = make_pythia(card, settings, Path(workdir))
        t_init = time.perf_counter() - t_start
        stats = GenerationStats()
        t_det = t_write = c_det = c_write = 0.0
        n_done = 0
        writer = (
            NtupleWriter(output, compression=compression_from_config(gen["compression"]),
                         basket_events=gen["basket_events"])
            if (output is not None and detector) else None
        )
        bar = _progress(n_target, f"{sample_name}[{shard}]", enabled=progress)
        with writer if writer is not None else _null():
            for batch in generate_batches(pythia, card, n_target, gen["batch_size"], stats):
                if not detector:
                    n_done += len(batch)
                    bar.update(len(batch))
                    continue
                t0, c0 = time.perf_counter(), time.process_time()
                block = simulate(batch, rng, det_cfg)
                n = len(batch)
                block.update({
                    "run": np.full(n, sample.get("run_number", 0), dtype=np.uint32),
                    "luminosityBlock": np.full(n, shard, dtype=np.uint32),
                    "event": (shard * EVENT_NUMBER_STRIDE + n_done + 1 + np.arange(n)).astype(np.uint64),
                    "genWeight": event_weights(batch).astype(np.float32),
                })
                t1, c1 = time.perf_counter(), time.process_time()
                t_det += t1 - t0
                c_det += c1 - c0
                if writer is not None:
                    writer.write(block)
                    t_write += time.perf_counter() - t1
                    c_write += time.process_time() - c1
                n_done += n
                bar.update(n)
            bar.close()
            xsec, xsec_err, source = cross_section_pb(pythia, card, stats)
            meta = {
                "sample": sample_name,
                "process": sample["process"],
                "run_number": sample.get("run_number", 0),
                "shard": shard,
                "seed": seed,
                "xsec_pb": xsec,
                "xsec_err_pb": xsec_err,
                "xsec_source": source,
                "branching": card.branching,
                "filter": card.filter_description,
                "n_generated": stats.n_generated,
                "n_accepted": stats.n_accepted,
                "pythia_settings": settings + list(card.settings),
                "detector": det_cfg,
                "hepline_version": analysis.__version__,
                "config_hash": config_hash({"generation": gen, "detector": det_cfg, "seed": cfg["seed"]}),
                "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            }
            if writer is not None:
                meta = writer.finish(meta, provenance=provenance_record(
                    stage="generation.produce", config=cfg, seeds={"base": cfg["seed"], "shard": seed},
                    extra={"sample": sample_name, "shard": shard, "n_events": n_target}))
            else:
                meta.update(n_events=n_done)
    wall = time.perf_counter() - t_start
    metrics = {
        "events": n_done,
        "wall_s": wall,
        "init_s": t_init,
        "pythia_s": stats.seconds,
        "detector_s": t_det,
        "write_s": t_write,
        "pythia_events_per_s": stats.n_generated / stats.seconds if stats.seconds else None,
        "events_per_s": n_done / (wall - t_init) if wall > t_init else None,
        "detector_plus_write_fraction": (t_det + t_write) / stats.seconds if stats.seconds else None,
        # CPU time (time.process_time): robust against other processes sharing the cores
        "pythia_cpu_s": stats.cpu_seconds,
        "detector_cpu_s": c_det,
        "write_cpu_s": c_write,
        "pythia_events_per_cpu_s": stats.n_generated / stats.cpu_seconds if stats.cpu_seconds else None,
        "detector_plus_write_cpu_fraction": (c_det + c_write) / stats.cpu_seconds if stats.cpu_seconds else None,
        "bytes": Path(output).stat().st_size if (writer is not None and Path(output).exists()) else None,
    }
    if metrics["bytes"] is not None and n_done:
        metrics["bytes_per_event"] = metrics["bytes"] / n_done
    log.info(
        "%s shard %d: %d events in %.1f s (Pythia %.1f s, detector %.1f s, write %.1f s); σ = %.4g pb (%s)",
        sample_name, shard, n_done, wall, stats.seconds, t_det, t_write, xsec, source,
    )
    return {"metadata": meta, "metrics": metrics}


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _progress(total: int, desc: str, *, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="ev", disable=not enabled, leave=False)


def merge_metadata(paths: list[str | Path]) -> dict[str, Any]:
    """Combine shard metadata of one sample: Σw and counts add, σ is the generated-event-weighted mean."""
    metas = [read_metadata(p) for p in paths]
    if not metas:
        raise ValueError("no shard files to merge")
    samples = {m["sample"] for m in metas}
    if len(samples) != 1:
        raise ValueError(f"shards of several samples given to one merge: {sorted(samples)}")
    xsec, xsec_err = combined_xsec(metas)
    return {
        "sample": samples.pop(),
        "process": metas[0]["process"],
        "xsec_pb": xsec,
        "xsec_err_pb": xsec_err,
        "xsec_source": metas[0]["xsec_source"],
        "sumw": float(sum(m["sumw"] for m in metas)),
        "sumw2": float(sum(m["sumw2"] for m in metas)),
        "n_events": int(sum(m["n_events"] for m in metas)),
        "n_generated": int(sum(m["n_generated"] for m in metas)),
        "files": [str(p) for p in paths],
        "shards": [s for m in metas for s in m.get("shards", [m.get("shard")])],  # hadd outputs: several
        "config_hash": metas[0]["config_hash"],
        "hepline_version": metas[0]["hepline_version"],
    }


def write_merged(paths: list[str | Path], output: str | Path) -> dict[str, Any]:
    """:func:`merge_metadata` of ``paths`` written to the JSON ``output`` (with provenance)."""
    merged = merge_metadata(paths)
    write_json(output, merged, provenance=provenance_record(
        stage="generation.merge", inputs=paths, extra={"sample": merged["sample"]}))
    return merged
