"""``python -m analysis.generation {produce,merge,hadd}``: see :mod:`analysis.generation.produce`
and :mod:`analysis.generation.hadd`."""

from __future__ import annotations

import argparse
import logging
import sys

from analysis.core.atomic import write_json
from analysis.core.config import load_raw_config
from analysis.core.provenance import provenance_record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.generation", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("produce", help="generate, simulate and write one shard")
    p.add_argument("--config", required=True, help="YAML configuration")
    p.add_argument("--sample", required=True, help="sample name in generation.samples")
    p.add_argument("--shard", type=int, default=0)
    p.add_argument("--output", help="ROOT file to write (omit to time without writing)")
    p.add_argument("--events", type=int, help="override events_per_shard")
    p.add_argument("--seed", type=int, help="override the base seed")
    p.add_argument("--no-detector", action="store_true", help="Pythia only (benchmarking)")
    p.add_argument("--metrics", help="write timing metrics JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    m = sub.add_parser("merge", help="merge the metadata of a sample's shards")
    m.add_argument("--output", required=True, help="JSON file to write")
    m.add_argument("inputs", nargs="+", help="shard ROOT files")

    h = sub.add_parser("hadd", help="concatenate ntuples of one sample into one ROOT file")
    h.add_argument("--output", required=True, help="ROOT file to write")
    h.add_argument("--basket-events", type=int, default=10000, help="events per basket written")
    h.add_argument("inputs", nargs="+", help="hepline ntuples of one sample")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")

    from analysis.generation.produce import produce_shard, write_merged

    if args.command == "produce":
        cfg = load_raw_config(args.config)
        if args.seed is not None:
            cfg["seed"] = args.seed
        result = produce_shard(
            cfg, args.sample, args.shard, args.output, n_events=args.events,
            detector=not args.no_detector, progress=not args.quiet,
        )
        if args.metrics:
            write_json(args.metrics, result["metrics"], provenance=provenance_record(
                stage="generation.produce.metrics", config=cfg,
                seeds={"base": cfg["seed"], "shard": result["metadata"]["seed"]},
                inputs=[args.output] if args.output else (),
                extra={"sample": args.sample, "shard": args.shard}))
    elif args.command == "hadd":
        from analysis.generation.hadd import hadd

        hadd(args.inputs, args.output, basket_events=args.basket_events)
    else:
        write_merged(args.inputs, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
