"""Benchmarks of sample production: generator speed, detector+writing overhead, file size.

``python -m tests.benchmarks.generation --config workflows/config/default.yaml \\
    --events 1000 --samples ttbar xhh_500 --compression-sample ttbar --output bench.json``

For every sample two runs with the same seed (hence the same Pythia events) are made:
Pythia alone (``nextBatch``, no detector, no output) and the full chain (Pythia, detector,
ROOT writing). The overhead is (detector + writing time) / Pythia time within the full run,
and the ratio of the two wall-clock rates is reported as a cross-check. The compression
study writes the *same* simulated blocks with each algorithm and basket size and reads them
back with uproot.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import uproot

from analysis.core.atomic import write_json
from analysis.core.config import CompressionConfig, Config, load_config
from analysis.generation.detector import simulate
from analysis.generation.processes import process_card
from analysis.generation.produce import produce_shard
from analysis.generation.pythia import (
    GenerationStats,
    common_settings,
    event_weights,
    generate_batches,
    make_pythia,
    shard_seed,
)
from analysis.generation.writer import NtupleWriter, compression_from_config

log = logging.getLogger(__name__)

COMPRESSIONS = [
    CompressionConfig(algorithm="none", level=0),
    CompressionConfig(algorithm="lz4", level=1),
    CompressionConfig(algorithm="lz4", level=4),
    CompressionConfig(algorithm="zlib", level=1),
    CompressionConfig(algorithm="zlib", level=4),
    CompressionConfig(algorithm="zstd", level=1),
    CompressionConfig(algorithm="zstd", level=3),
    CompressionConfig(algorithm="zstd", level=5),
    CompressionConfig(algorithm="lzma", level=4),
]


def bench_sample(cfg: Config, sample: str, n_events: int) -> dict[str, Any]:
    """Pythia-only and full-chain rates for one sample (one core)."""
    # warm-up: numba caches, fastjet, Pythia data tables (not part of any rate)
    produce_shard(cfg, sample, 0, None, n_events=min(20, n_events), progress=False)
    t0 = time.perf_counter()
    gen_only = produce_shard(cfg, sample, 0, None, n_events=n_events, detector=False, progress=False)
    wall_gen = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        full = produce_shard(cfg, sample, 0, Path(tmp) / "b.root", n_events=n_events, progress=False)
        wall_full = time.perf_counter() - t0
    m_gen, m_full = gen_only.metrics, full.metrics
    rate_gen = m_gen.events / (m_gen.wall_s - m_gen.init_s)
    rate_full = m_full.events / (m_full.wall_s - m_full.init_s)
    return {
        "sample": sample,
        "events": n_events,
        "pythia_only_events_per_s": rate_gen,
        "full_events_per_s": rate_full,
        "pythia_s": m_full.pythia_s,
        "detector_s": m_full.detector_s,
        "write_s": m_full.write_s,
        "overhead_fraction": m_full.detector_plus_write_fraction,
        "overhead_cpu_fraction": m_full.detector_plus_write_cpu_fraction,
        "pythia_events_per_cpu_s": m_full.pythia_events_per_cpu_s,
        "full_events_per_cpu_s": m_full.events / (m_full.pythia_cpu_s + m_full.detector_cpu_s + m_full.write_cpu_s),
        "rate_ratio_overhead": rate_gen / rate_full - 1.0,
        "bytes_per_event": m_full.bytes_per_event,
        "wall_gen_s": wall_gen,
        "wall_full_s": wall_full,
        "xsec_pb": full.metadata.xsec_pb,
    }


def bench_compression(cfg: Config, sample: str, n_events: int,
                      basket_sizes: tuple[int, ...] = (100, 200, 500, 1000)) -> list[dict[str, Any]]:
    """Bytes per event, write and read rates for each compression setting and basket size."""
    gen = cfg.generation
    spec = gen.samples[sample]
    seed = shard_seed(cfg.seed, sample, spec, 0)
    card = process_card(spec, name=sample)
    rng = np.random.default_rng(seed)
    blocks = []
    with tempfile.TemporaryDirectory() as workdir:
        pythia = make_pythia(card, common_settings(seed, gen.sqrt_s_gev, gen.multiparton_interactions),
                             Path(workdir))
        stats = GenerationStats()
        done = 0
        for batch in generate_batches(pythia, card, n_events, min(basket_sizes), stats):
            block = simulate(batch, rng, cfg.detector)
            n = len(batch)
            block.update(run=np.zeros(n, np.uint32), luminosityBlock=np.zeros(n, np.uint32),
                         event=np.arange(done, done + n, dtype=np.uint64),
                         genWeight=event_weights(batch).astype(np.float32))
            blocks.append(block)
            done += n
    results = []
    import awkward as ak

    def regroup(size: int) -> list[dict[str, Any]]:
        per = len(blocks[0]["genWeight"])
        k = max(size // per, 1)
        out = []
        for i in range(0, len(blocks), k):
            group = blocks[i:i + k]
            out.append({key: (ak.concatenate([b[key] for b in group]) if isinstance(group[0][key], ak.Array)
                              else np.concatenate([b[key] for b in group])) for key in group[0]})
        return out

    with tempfile.TemporaryDirectory() as tmp:
        for basket in basket_sizes:
            grouped = regroup(basket)
            settings = COMPRESSIONS if basket == 200 else [CompressionConfig(algorithm="zstd", level=3),
                                                            CompressionConfig(algorithm="lz4", level=4)]
            for comp in settings:
                path = Path(tmp) / f"{comp.algorithm}{comp.level}_{basket}.root"
                t0 = time.perf_counter()
                with NtupleWriter(path, compression=compression_from_config(comp)) as w:
                    for b in grouped:
                        w.write(b)
                    w.finish({"sample": sample})
                t_write = time.perf_counter() - t0
                t0 = time.perf_counter()
                with uproot.open(path) as f:
                    f["Events"].arrays(library="ak")
                t_read = time.perf_counter() - t0
                size = path.stat().st_size
                results.append({
                    "algorithm": comp.algorithm, "level": comp.level, "basket_events": basket,
                    "bytes_per_event": size / done, "write_events_per_s": done / t_write,
                    "read_events_per_s": done / t_read, "read_mb_per_s": size / t_read / 1e6,
                })
                path.unlink()
    return results


def _table(rows: list[dict[str, Any]], cols: list[tuple[str, str, str]]) -> str:
    head = "| " + " | ".join(c[1] for c in cols) + " |\n|" + "---|" * len(cols) + "\n"
    body = "".join("| " + " | ".join(format(r[c[0]], c[2]) for c in cols) + " |\n" for r in rows)
    return head + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--samples", nargs="*", help="default: every sample in the config")
    parser.add_argument("--compression-sample", help="also run the compression study on this sample")
    parser.add_argument("--compression-events", type=int, default=1000)
    parser.add_argument("--output", help="JSON results")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cfg = load_config(args.config)
    samples = args.samples or list(cfg.generation.samples)
    rows = [bench_sample(cfg, s, args.events) for s in samples]
    print(_table(rows, [
        ("sample", "sample", "s"), ("events", "events", "d"),
        ("pythia_only_events_per_s", "Pythia only [ev/s]", ".1f"),
        ("full_events_per_s", "full chain [ev/s]", ".1f"),
        ("pythia_events_per_cpu_s", "Pythia [ev/CPU-s]", ".1f"),
        ("full_events_per_cpu_s", "full [ev/CPU-s]", ".1f"),
        ("overhead_cpu_fraction", "(det+write)/Pythia, CPU", ".3f"),
        ("overhead_fraction", "(det+write)/Pythia, wall", ".3f"),
        ("bytes_per_event", "bytes/event", ".0f"),
    ]))
    result: dict[str, Any] = {"samples": rows}
    if args.compression_sample:
        comp = bench_compression(cfg, args.compression_sample, args.compression_events)
        print(_table(comp, [
            ("algorithm", "algorithm", "s"), ("level", "level", "d"), ("basket_events", "basket [events]", "d"),
            ("bytes_per_event", "bytes/event", ".0f"), ("write_events_per_s", "write [ev/s]", ".0f"),
            ("read_events_per_s", "read [ev/s]", ".0f"), ("read_mb_per_s", "read [MB/s]", ".1f"),
        ]))
        result["compression"] = comp
    if args.output:
        write_json(args.output, result)
    print(json.dumps({"config": args.config, "events": args.events}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
