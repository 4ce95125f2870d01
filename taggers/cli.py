"""``hepline taggers prepare|train|evaluate|decorate`` (registered through the
``hepline.commands`` entry point; each command calls one stage function)::

    hepline taggers prepare  --config C --output-dir D [--seed N] ttbar_*.root
    hepline taggers train    --config C --tagger rnnip|mv2|dl1 --train T --validation V
                             --model-dir M [--rnnip R] [--threads N] [--seed N] [--no-resume]
    hepline taggers evaluate --config C --test T --models M [--ipxd I] --output-dir D
                             [--no-plots] [--no-benchmark] [--seed N] [--taggers ip3d,rnnip]
    hepline taggers decorate --config C --models M [--ipxd I] --output O [--threads N]
                             [--taggers ip3d,rnnip] input.root
"""

from __future__ import annotations

import argparse

from analysis.cli import add_command, add_config_option, add_seed_option, add_subcommands, stage_config
from taggers import TAGGERS

__all__ = ["register"]


def _prepare(args: argparse.Namespace) -> int:
    from taggers.prepare import prepare

    result = prepare(args.files, stage_config(args), args.output_dir)
    for name, counts in result.counts.items():
        flav = ", ".join(f"{k} {v.jets}" for k, v in counts.flavours.items())
        print(f"{name}: {counts.jets} jets ({flav})")  # noqa: T201 - the command's output
    return 0


def _train(args: argparse.Namespace) -> int:
    from taggers.train import train

    cfg = stage_config(args)
    if args.model_seed is not None:
        section = getattr(cfg.tagger_models, args.tagger).replace(seed=args.model_seed)
        cfg = cfg.replace(tagger_models=cfg.tagger_models.replace(**{args.tagger: section}))
    res = train(args.tagger, cfg, args.train, args.validation, args.model_dir, rnnip_path=args.rnnip,
                threads=args.threads, resume=not args.no_resume)
    rate = res.train_jets_per_s
    print(f"{args.tagger}: {res.n_train_jets} training jets, "  # noqa: T201
          f"{'n/a' if rate is None else f'{rate:.0f}'} jets/s, {res.wall_s:.1f} s")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from taggers.evaluate import evaluate
    from taggers.performance import summary_table

    perf = evaluate(stage_config(args), args.test, args.models, args.output_dir, ipxd_dir=args.ipxd,
                    plots=not args.no_plots, benchmark=not args.no_benchmark, taggers=args.taggers)
    print(summary_table(perf))  # noqa: T201
    head = perf.rnnip_over_ip3d
    if head is not None:
        print(f"RNNIP / IP3D light rejection at {perf.headline_wp}%: "  # noqa: T201
              f"{head.value:.3f} ± {head.error:.3f}")
    return 0


def _decorate(args: argparse.Namespace) -> int:
    from taggers.decorate import decorate

    s = decorate(stage_config(args), args.input, args.output, args.models, ipxd_dir=args.ipxd,
                 threads=args.threads, taggers=args.taggers)
    print(f"{s.output}: {s.events} events, {s.taggable_jets} of {s.jets} jets tagged, "  # noqa: T201
          f"{s.wall_s:.1f} s")
    return 0


def _threads_option(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--threads", "--workers", dest="threads", type=int, default=None, help=help)


def _tagger_list(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in names if t not in TAGGERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown tagger(s) {unknown or [text]}; known: {', '.join(TAGGERS)}")
    return names


def _taggers_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--taggers", type=_tagger_list, default=None, metavar="T1,T2",
                   help=f"only these taggers, comma-separated (of {','.join(TAGGERS)}; default: all)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``taggers`` command group to the ``hepline`` parser."""
    group = add_subcommands(add_command(sub, "taggers", None, "flavour tagging: prepare|train|evaluate|decorate"),
                            "taggers")

    p = add_command(group, "prepare", _prepare, "ntuples -> train/validation/test HDF5 and IP templates")
    add_config_option(p)
    p.add_argument("--output-dir", required=True, help="e.g. results/taggers")
    add_seed_option(p, help="override the top-level seed")
    p.add_argument("files", nargs="+", help="ttbar shard ntuples")

    p = add_command(group, "train", _train, "train RNNIP, MV2 or DL1")
    add_config_option(p)
    p.add_argument("--tagger", required=True, choices=("rnnip", "mv2", "dl1"))
    p.add_argument("--train", required=True, help="train.h5 of taggers prepare")
    p.add_argument("--validation", required=True, help="validation.h5 of taggers prepare")
    p.add_argument("--model-dir", required=True, help="e.g. results/taggers/models")
    p.add_argument("--rnnip", default=None, help="DL1 only: the RNNIP model (default <model-dir>/rnnip.pt)")
    _threads_option(p, "torch/xgboost threads (default: taggers.threads, 1)")
    p.add_argument("--seed", dest="model_seed", type=int, default=None, metavar="SEED",
                   help="override tagger_models.<tagger>.seed")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")

    p = add_command(group, "evaluate", _evaluate, "ROC curves, working_points.json, plots")
    add_config_option(p)
    p.add_argument("--test", required=True, help="test.h5 of taggers prepare")
    p.add_argument("--models", required=True, help="model directory of taggers train")
    p.add_argument("--ipxd", default=None, help="IP2D/IP3D templates (default <models>/../ipxd)")
    p.add_argument("--output-dir", required=True, help="e.g. results/taggers")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--no-benchmark", action="store_true", help="skip the inference timing")
    add_seed_option(p, help="override the seed (bootstrap)")
    _taggers_option(p)

    p = add_command(group, "decorate", _decorate, "add b-tagging branches to an ntuple")
    add_config_option(p)
    p.add_argument("--models", required=True, help="model directory of taggers train")
    p.add_argument("--ipxd", default=None, help="IP2D/IP3D templates (default <models>/../ipxd)")
    p.add_argument("--output", required=True, help="decorated ntuple to write")
    _threads_option(p, "torch/ONNX Runtime threads (default: taggers.threads, 1)")
    _taggers_option(p)
    p.add_argument("input", help="hepline ntuple (one shard)")
