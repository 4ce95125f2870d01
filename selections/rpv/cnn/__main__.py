"""``python -m selections.rpv.cnn {images,train,evaluate,bench}``: the calo CNN stages (docs/calo-cnn.md).

    python -m selections.rpv.cnn images --config C --sample S --output S.h5 [--metrics S.metrics.json] files...
    python -m selections.rpv.cnn train --config C --output-dir D images/*.h5
    python -m selections.rpv.cnn evaluate --config C --model D/calo_cnn.pt --output-dir E \\
        --images images/*.h5 --cut-tables rpv/*.h5
    python -m selections.rpv.cnn bench --config C [--filters 128] [--batches 5] images/*.h5
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from analysis.core.atomic import write_json
from analysis.core.config import load_raw_config
from analysis.core.provenance import provenance_record

log = logging.getLogger("selections.rpv.cnn")


def _label(cfg: dict, sample: str, given: int | None) -> int:
    if given is not None:
        return given
    rpv = cfg.get("rpv", {})
    if sample in rpv.get("signal_samples", []):
        return 1
    if sample in rpv.get("background_samples", []):
        return 0
    raise SystemExit(f"sample {sample!r} is in neither rpv.signal_samples nor rpv.background_samples; pass --label")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m selections.rpv.cnn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("images", help="sparse images of one sample's ROOT files -> HDF5")
    p.add_argument("--config", required=True)
    p.add_argument("--sample", required=True)
    p.add_argument("--label", type=int, choices=(0, 1), help="default: from the rpv section")
    p.add_argument("--output", required=True)
    p.add_argument("--metrics", help="size/time metrics JSON")
    p.add_argument("--max-events", type=int)
    p.add_argument("files", nargs="+")

    t = sub.add_parser("train", help="train the CNN on image files")
    t.add_argument("--config", required=True)
    t.add_argument("--output-dir", required=True)
    t.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when present)")
    t.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--threads", "--workers", dest="threads", type=int,
                   help="torch CPU threads (overrides calo.training.threads)")
    t.add_argument("--seed", type=int, help="override the training seed (calo.training.seed, else seed)")
    t.add_argument("images", nargs="+")

    e = sub.add_parser("evaluate", help="ROC, comparison with the cut-based search, histograms, plots")
    e.add_argument("--config", required=True)
    e.add_argument("--model", required=True)
    e.add_argument("--normalisation", help="check this normalisation file against the model's")
    e.add_argument("--output-dir", required=True)
    e.add_argument("--device")
    e.add_argument("--images", nargs="+", required=True)
    e.add_argument("--cut-tables", nargs="+", required=True)
    e.add_argument("--no-plots", action="store_true")
    e.add_argument("--threads", "--workers", dest="threads", type=int, help="torch CPU threads")
    e.add_argument("--seed", type=int, help="override the top-level seed (bootstrap)")

    b = sub.add_parser("bench", help="training and inference throughput (images/s, loader included)")
    b.add_argument("--config", required=True)
    b.add_argument("--device")
    b.add_argument("--filters", type=int, help="override calo.model.filters")
    b.add_argument("--batches", type=int, default=5, help="timed training batches (after 1 warm-up)")
    b.add_argument("--max-events", type=int, default=2000, help="events read per image file")
    b.add_argument("--output", help="JSON to write")
    b.add_argument("images", nargs="+")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    cfg = load_raw_config(args.config)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
        cfg.setdefault("calo", {}).setdefault("training", {})["threads"] = args.threads

    if args.command == "images":
        from selections.rpv.cnn.images import ImageSpec, build_images, write_images
        from selections.rpv.cnn.train import calo_config

        icfg = calo_config(cfg)["image"]
        t0 = time.perf_counter()
        imgs = build_images(args.files, args.sample, _label(cfg, args.sample, args.label),
                            ImageSpec.from_config(icfg), empty_events=icfg["empty_events"],
                            chunk_events=icfg["read_chunk_events"], max_events=args.max_events)
        t1 = time.perf_counter()
        record = provenance_record(stage="calo.images", config=cfg, inputs=args.files,
                                   extra={"sample": args.sample, "max_events": args.max_events})
        stats = write_images(args.output, imgs, compression=icfg["compression"],
                             compression_level=icfg["compression_level"], pixel_chunk=icfg["pixel_chunk"],
                             provenance=record)
        stats.update(sample=args.sample, build_seconds=t1 - t0, write_seconds=time.perf_counter() - t1,
                     events_per_s=len(imgs) / (t1 - t0) if t1 > t0 else None, files=args.files)
        log.info("%s: %d images, %.0f bytes/event in memory (dense/sparse %.1f), %.0f on disk (%.1f)",
                     args.sample, stats["events"], stats["sparse_bytes_per_event_memory"],
                     stats["dense_over_sparse_memory"], stats["sparse_bytes_per_event_file"],
                     stats["dense_over_sparse_file"])
        if args.metrics:
            write_json(args.metrics, stats, provenance=record)
    elif args.command == "train":
        from selections.rpv.cnn.train import train

        summary = train(cfg, args.images, args.output_dir, seed=args.seed, device=args.device,
                        resume=not args.no_resume, progress=not args.quiet)
        log.info("trained: best epoch %d, val loss %.5f, %.1f images/s on %s", summary["best_epoch"] + 1,
                     summary["best_val_loss"], summary["train_images_per_s"], summary["device"])
    elif args.command == "evaluate":
        from selections.rpv.compare import evaluate

        if args.seed is not None:
            cfg["seed"] = args.seed
        evaluate(cfg, args.model, args.images, args.cut_tables, args.output_dir,
                 normalisation=args.normalisation, device=args.device, plots=not args.no_plots)
    else:
        from selections.rpv.cnn.train import benchmark

        out = benchmark(cfg, args.images, device=args.device, filters=args.filters, batches=args.batches,
                        max_events=args.max_events)
        print(json.dumps(out, indent=2))
        if args.output:
            write_json(args.output, out, provenance=provenance_record(
                stage="calo.bench", config=cfg, inputs=args.images,
                extra={"device": args.device, "filters": args.filters, "batches": args.batches}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
