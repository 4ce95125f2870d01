"""``hepline select``, ``hepline calo ...`` and ``hepline rpv ...`` (registered through the
``hepline.commands`` entry point).

::

    hepline select        --config C --working-points W --output S.pkl [--cutflow-json J] [--cutflow-md M]
                          [--metrics X] [--sample-metadata S.json] [--lumi-mask G.json] [--seed N] [--workers N]
                          [--set KEY=VALUE ...] [--no-gc-freeze] files...
    hepline calo images   --config C --sample S --output S.h5 [--metrics S.metrics.json] files...
    hepline calo train    --config C --output-dir D [--network cnn|point_cloud] [--seed N] [--threads N] images/*.h5
    hepline calo evaluate --config C --model D/calo_cnn.pt --output-dir E --images images/*.h5 \\
                          --cut-tables rpv/*.h5
    hepline calo bench    --config C [--filters 128] [--batches 5] images/*.h5
    hepline calo throughput --config C [--output T.json] images/*.h5
    hepline calo claim    --config C --models M1.pt ... --images images/*.h5 --cut-tables rpv/*.h5 \
                          --output claim.json [--plot roc.png] [--throughput T.json] \
                          [--image-metrics images/*.metrics.json] [--shard-metrics samples/*/*.metrics.json]
    hepline rpv generate  --config C --sample S --shard K --output S_K.root [--events N] [--metrics M.json]
    hepline rpv select    --config C --sample S --output S.h5 [--summary S.json] files...
    hepline rpv rates     --config C [--split test] [--output R.json] rpv/*.h5
    hepline rpv stats     --config C [--output T.json] rpv/*.h5
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from analysis.cli import (
    add_command,
    add_config_option,
    add_seed_option,
    add_subcommands,
    add_workers_option,
    stage_config,
)
from analysis.core.config import Config, ConfigError, config_from_dict, load_config

__all__ = ["SMEARING_SEED", "apply_overrides", "register", "select_setup"]

log = logging.getLogger(__name__)

#: the one seed of the HH selection, the photon-resolution smearing (what ``select --seed`` sets)
SMEARING_SEED = ("selection", "hh_yybb", "systematics", "photon_energy_resolution", "seed")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the selections' commands to the ``hepline`` parser."""
    _register_select(sub)
    _register_calo(sub)
    _register_rpv(sub)


# --------------------------------------------------------------------------- shared


def _threads_option(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--threads", "--workers", dest="threads", type=int, default=None, help=help)


def _config(args: argparse.Namespace) -> Config:
    """The configuration of ``--config`` with ``--seed`` (the top-level seed) and ``--threads``
    (``calo.training.threads``) applied when the command has them."""
    cfg = stage_config(args)
    threads = getattr(args, "threads", None)
    if threads is not None:
        cfg = cfg.replace(calo=cfg.calo.replace(training=cfg.calo.training.replace(threads=threads)))
    return cfg


def _print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2))  # noqa: T201 - the command's output


# --------------------------------------------------------------------------- select


def apply_overrides(cfg: Config, items: Sequence[str] = (), *, extra: Mapping[tuple[str, ...], Any] | None = None,
                    source: str = "config") -> Config:
    """``cfg`` with ``extra`` (``{key path: value}``) and the ``--set KEY=VALUE`` ``items``
    (dotted key, YAML value; they win over ``extra``) applied, validated again as a whole
    (:func:`analysis.core.config.config_from_dict`; ``source``, the config file, names it in
    errors); ``cfg`` itself without any.

    Raises:
        ConfigError: an item that is not KEY=VALUE, a key below a value that is not a
            mapping, or a value the schema refuses (the message names the key).
    """
    overrides: dict[tuple[str, ...], Any] = dict(extra or {})
    for item in items:
        dotted, sep, text = item.partition("=")
        if not sep or not dotted:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        overrides[tuple(dotted.split("."))] = yaml.safe_load(text)
    if not overrides:
        return cfg
    data = cfg.to_dict()
    for key, value in overrides.items():
        node = data
        for i, part in enumerate(key[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {'.'.join(key)}: {'.'.join(key[:i + 1])} is not a mapping")
        node[key[-1]] = value
    with_ = ", ".join(f"{'.'.join(k)}={v}" for k, v in overrides.items())
    return config_from_dict(data, source=f"{source} (with {with_})")


def select_setup(args: argparse.Namespace) -> Config:
    """The selection's config from the ``select`` flags (``--config``, ``--set``, ``--seed``:
    the photon-resolution smearing seed, ``--workers``) and, unless ``--no-gc-freeze``, the
    process made ready: numba's kernels compiled when the compiled engine will run, then every
    start-up object frozen (:func:`analysis.io.runner.freeze_startup_objects`). The throughput
    benchmark (tests/benchmarks/hh_yybb_throughput.py) starts the same way."""
    from analysis.io.runner import freeze_startup_objects
    from selections.hh_yybb import kernel
    from selections.hh_yybb.processor import expects_compiled_engine

    extra: dict[tuple[str, ...], Any] = {}
    if args.seed is not None:
        extra[SMEARING_SEED] = args.seed
    if args.workers is not None:
        extra[("runner", "workers")] = args.workers
    cfg = apply_overrides(load_config(args.config), args.set, extra=extra, source=args.config)
    if not args.no_gc_freeze:
        if expects_compiled_engine(cfg.selection.hh_yybb, args.sample_metadata):
            kernel.warm_up()  # numba's start-up objects are frozen with the rest
        log.debug("garbage collector: %d start-up objects frozen", freeze_startup_objects())
    return cfg


def _select(args: argparse.Namespace) -> int:
    from selections.hh_yybb.processor import select

    cfg = select_setup(args)
    select(cfg, args.files, output=args.output, working_points=args.working_points, cutflow_json=args.cutflow_json,
           cutflow_md=args.cutflow_md, metrics=args.metrics, format=args.format, dataset=args.dataset,
           sample_metadata=args.sample_metadata, lumi_mask=args.lumi_mask)
    return 0


def _register_select(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "select", _select, "the HH->yybb selection of one sample (histogram set, cutflow)")
    add_config_option(p)
    p.add_argument("--working-points", default=None, help="the taggers stage's working_points.json")
    p.add_argument("--output", required=True,
                   help="histogram-set pickle (un-normalised; 'hepline histograms' merges)")
    p.add_argument("--cutflow-json", help="the cutflow table (JSON)")
    p.add_argument("--cutflow-md", help="the cutflow table (markdown)")
    p.add_argument("--metrics", help="runner metrics JSON")
    p.add_argument("--format", default="auto", choices=["auto", "hepline", "nanoaod", "physlite"])
    p.add_argument("--sample-metadata", nargs="*", default=None,
                   help="merged <sample>.json files of the generation stage (sigma per sample)")
    p.add_argument("--dataset", default=None, help="dataset name for NanoAOD input (default: folder name)")
    p.add_argument("--lumi-mask", default=None, metavar="JSON",
                   help="collision data: the certified-luminosity JSON (golden JSON) to keep "
                        "(default selection.hh_yybb.lumi_mask)")
    add_seed_option(p, help="override the photon-resolution smearing seed (" + ".".join(SMEARING_SEED) + ")")
    add_workers_option(p, help="override runner.workers")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (dotted path, YAML value; validated), e.g. "
                        "--set selection.hh_yybb.engine=numba")
    p.add_argument("--no-gc-freeze", action="store_true",
                   help="leave the start-up objects to the garbage collector (for comparison; by default "
                        "they are frozen: analysis.io.runner.freeze_startup_objects)")
    p.add_argument("files", nargs="+",
                   help="the sample's files (decorated hepline ntuples, CMS NanoAOD of any era or ATLAS "
                        "PHYSLITE; TTree or RNTuple; simulation or collision data)")


# --------------------------------------------------------------------------- calo


def _calo_images(args: argparse.Namespace) -> int:
    from selections.rpv.cnn.images import make_images

    make_images(_config(args), args.files, sample=args.sample, output=args.output, label=args.label,
                metrics=args.metrics, max_events=args.max_events)
    return 0


def _calo_train(args: argparse.Namespace) -> int:
    from selections.rpv.cnn.pointcloud import train_point_cloud_model
    from selections.rpv.cnn.train import train_model

    trainer = train_point_cloud_model if args.network == "point_cloud" else train_model
    trainer(_config(args), args.images, args.output_dir, seed=args.seed, device=args.device,
            resume=not args.no_resume, progress=False if getattr(args, "quiet", False) else None)
    return 0


def _calo_throughput(args: argparse.Namespace) -> int:
    from selections.rpv.cnn.bench import throughput

    _print_json(throughput(_config(args), args.images, device=args.device, output=args.output))
    return 0


def _calo_claim(args: argparse.Namespace) -> int:
    from selections.rpv.claim import run_claim

    run_claim(_config(args), args.models, args.images, args.cut_tables, args.output, plot=args.plot,
              throughput=args.throughput, image_metrics=args.image_metrics or (),
              shard_metrics=args.shard_metrics or (), device=args.device)
    return 0


def _calo_evaluate(args: argparse.Namespace) -> int:
    from selections.rpv.compare import evaluate

    evaluate(_config(args), args.model, args.images, args.cut_tables, args.output_dir,
             normalisation=args.normalisation, device=args.device, plots=not args.no_plots)
    return 0


def _calo_bench(args: argparse.Namespace) -> int:
    from selections.rpv.cnn.bench import bench

    result = bench(_config(args), args.images, device=args.device, filters=args.filters, batches=args.batches,
                   max_events=args.max_events, output=args.output)
    _print_json(result.to_dict())
    return 0


def _register_calo(sub: argparse._SubParsersAction) -> None:
    group = add_command(sub, "calo", None, "whole-detector CNN: images|train|evaluate|bench")
    calo = add_subcommands(group, "calo")

    p = add_command(calo, "images", _calo_images, "sparse images of one sample's ROOT files -> HDF5")
    add_config_option(p)
    p.add_argument("--sample", required=True, help="the sample's name")
    p.add_argument("--label", type=int, choices=(0, 1), help="1 signal, 0 background (default: from the rpv section)")
    p.add_argument("--output", required=True, help="the image file (HDF5)")
    p.add_argument("--metrics", help="size/time metrics JSON")
    p.add_argument("--max-events", type=int, help="read at most this many events")
    p.add_argument("files", nargs="+", help="the sample's ntuples")

    p = add_command(calo, "train", _calo_train, "train the CNN on image files (-q: no progress bar)")
    add_config_option(p)
    p.add_argument("--output-dir", required=True,
                   help="calo_cnn.pt (or point_cloud.pt), normalisation.json, history.json go here")
    p.add_argument("--network", choices=("cnn", "point_cloud"), default="cnn",
                   help="the CNN (calo.model) or the point-cloud comparator (calo.point_cloud)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when present)")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    _threads_option(p, "torch CPU threads (overrides calo.training.threads)")
    add_seed_option(p, help="override the training seed (calo.training.seed, else seed)")
    p.add_argument("images", nargs="+", help="one image file per sample")

    p = add_command(calo, "evaluate", _calo_evaluate,
                    "ROC, comparison with the cut-based search, histograms, limits, plots")
    add_config_option(p)
    p.add_argument("--model", required=True, help="the model file (calo_cnn.pt)")
    p.add_argument("--normalisation", help="check this normalisation file against the model's")
    p.add_argument("--output-dir", required=True, help="summary.json, roc.npz, scores.root, plots go here")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when present)")
    p.add_argument("--images", nargs="+", required=True, help="one image file per sample")
    p.add_argument("--cut-tables", nargs="+", required=True, help="the cut-based tables of the same samples")
    p.add_argument("--no-plots", action="store_true", help="no PNG plots")
    _threads_option(p, "torch CPU threads (overrides calo.training.threads)")
    add_seed_option(p, help="override the top-level seed (bootstrap)")

    p = add_command(calo, "bench", _calo_bench, "training and inference throughput (images/s, loader included)")
    add_config_option(p)
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when present)")
    p.add_argument("--filters", type=int, help="override calo.model.filters")
    p.add_argument("--batches", type=int, default=5, help="timed training batches (after 1 warm-up)")
    p.add_argument("--max-events", type=int, default=2000, help="events read per image file")
    p.add_argument("--output", help="JSON to write (the result is printed in any case)")
    p.add_argument("images", nargs="+", help="image files")

    p = add_command(calo, "throughput", _calo_throughput,
                    "training and inference images/s of the claim's networks and the paper CNN, side by side")
    add_config_option(p)
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when present)")
    p.add_argument("--output", help="JSON to write (the result is printed in any case)")
    _threads_option(p, "torch CPU threads (overrides calo.training.threads)")
    p.add_argument("images", nargs="+", help="image files")

    p = add_command(calo, "claim", _calo_claim,
                    "every trained network against the cut-based search: TPR ratios, bootstrap, limits")
    add_config_option(p)
    p.add_argument("--models", nargs="+", required=True, help="calo_cnn.pt and point_cloud.pt files")
    p.add_argument("--images", nargs="+", required=True, help="one image file per sample")
    p.add_argument("--cut-tables", nargs="+", required=True, help="the cut-based tables of the same samples")
    p.add_argument("--output", required=True, help="the claim JSON")
    p.add_argument("--plot", help="the ROC plot (PNG)")
    p.add_argument("--throughput", help="the JSON of hepline calo throughput, included")
    p.add_argument("--image-metrics", nargs="*", help="hepline calo images --metrics JSONs (bytes per event)")
    p.add_argument("--shard-metrics", nargs="*", help="generation metrics JSONs of the shards (CPU time)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when present)")
    _threads_option(p, "torch CPU threads (overrides calo.training.threads)")
    add_seed_option(p, help="override the top-level seed (bootstrap)")


# --------------------------------------------------------------------------- rpv


def _rpv_generate(args: argparse.Namespace) -> int:
    from selections.rpv.preselection import generate

    generate(_config(args), args.sample, args.shard, args.output, n_events=args.events,
             progress=not getattr(args, "quiet", False), metrics=args.metrics)
    return 0


def _rpv_select(args: argparse.Namespace) -> int:
    from selections.rpv.cuts import select

    select(_config(args), args.files, sample=args.sample, output=args.output, summary=args.summary,
           label=args.label, max_events=args.max_events)
    return 0


def _rpv_rates(args: argparse.Namespace) -> int:
    from selections.rpv.cuts import table_rates

    result = table_rates(_config(args), args.tables, split=args.split, output=args.output)
    if args.output is None:
        _print_json(result.to_dict())
    return 0


def _rpv_stats(args: argparse.Namespace) -> int:
    from selections.rpv.cuts import table_statistics

    result = table_statistics(_config(args), args.tables, output=args.output)
    if args.output is None:
        _print_json({k: v.to_dict() for k, v in result.items()})
    return 0


def _register_rpv(sub: argparse._SubParsersAction) -> None:
    group = add_command(sub, "rpv", None, "cut-based RPV multijet search: generate|select|rates|stats")
    rpv = add_subcommands(group, "rpv")

    p = add_command(rpv, "generate", _rpv_generate,
                    "one shard of an rpv sample with the multijet preselection applied at write time")
    add_config_option(p)
    p.add_argument("--sample", required=True, help="an rpv signal or background sample")
    p.add_argument("--shard", type=int, default=0, help="shard index (default 0)")
    p.add_argument("--output", required=True, help="ROOT file to write")
    p.add_argument("--events", type=int, help="events to generate before the preselection (default: events_per_shard)")
    p.add_argument("--metrics", help="write the timing metrics JSON here")
    add_seed_option(p, "override the base seed")

    p = add_command(rpv, "select", _rpv_select, "large-R jets and the cuts for one sample's ROOT files")
    add_config_option(p)
    p.add_argument("--sample", required=True, help="the sample's name")
    p.add_argument("--label", type=int, choices=(0, 1),
                   help="1 signal, 0 background (default: from rpv.signal_samples/background_samples)")
    p.add_argument("--output", required=True, help="per-event HDF5 table")
    p.add_argument("--summary", help="cutflow JSON (default: <output>.json)")
    p.add_argument("--max-events", type=int, help="read at most this many events")
    p.add_argument("files", nargs="+", help="the sample's ntuples")

    p = add_command(rpv, "rates", _rpv_rates, "weighted TPR and FPR of tables")
    add_config_option(p)
    p.add_argument("--split", choices=("all", "train", "validation", "test"), default="all",
                   help="restrict to a calo.split by event number")
    p.add_argument("--output", help="JSON to write (default: print)")
    p.add_argument("tables", nargs="+", help="per-event tables (rpv select)")

    p = add_command(rpv, "stats", _rpv_stats,
                    "per cut: raw, weighted efficiency and effective events of each table")
    add_config_option(p)
    p.add_argument("--output", help="JSON to write (default: print)")
    p.add_argument("tables", nargs="+", help="per-event tables (rpv select)")
