"""``hepline taggers prepare|train|evaluate|decorate|crosscheck`` (registered through the
``hepline.commands`` entry point; each command calls one stage function)::

    hepline taggers prepare  --config C --output-dir D [--seed N] ttbar_*.root
    hepline taggers train    --config C --tagger rnnip|mv2|dl1 --train T --validation V
                             --model-dir M [--rnnip R] [--threads N] [--seed N] [--no-resume]
    hepline taggers evaluate --config C --test T --models M [--ipxd I] --output-dir D
                             [--no-plots] [--no-benchmark] [--seed N] [--taggers ip3d,rnnip]
    hepline taggers evaluate --config C --discriminant Jet_btagDeepFlavB --label Jet_hadronFlavour
                             --input F [F ...] --output-dir D [--name N] [--weight W] [--fc F] [--no-plots]
    hepline taggers crosscheck --scores test_scores.h5 --working-points working_points.json
    hepline taggers decorate --config C --models M [--ipxd I] --output O [--threads N]
                             [--taggers ip3d,rnnip] input.root
"""

from __future__ import annotations

import argparse

from analysis.cli import add_command, add_config_option, add_seed_option, add_subcommands, stage_config
from analysis.core.errors import ConfigError
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
    from taggers.evaluate import evaluate, evaluate_external
    from taggers.performance import summary_table

    if args.discriminant is not None:
        if args.label is None or not args.input:
            raise ConfigError("taggers evaluate --discriminant needs --label and --input FILE [FILE ...]")
        perf = evaluate_external(stage_config(args), args.input, args.discriminant, args.label, args.output_dir,
                                 name=args.name, weight=args.weight, fraction_c=args.fc, plots=not args.no_plots)
        print(summary_table(perf))  # noqa: T201
        return 0
    if args.test is None or args.models is None:
        raise ConfigError("taggers evaluate needs --test and --models (or --discriminant, --label and --input "
                          "for an external discriminant)")
    perf = evaluate(stage_config(args), args.test, args.models, args.output_dir, ipxd_dir=args.ipxd,
                    plots=not args.no_plots, benchmark=not args.no_benchmark, taggers=args.taggers)
    print(summary_table(perf))  # noqa: T201
    head = perf.rnnip_over_ip3d
    if head is not None:
        print(f"RNNIP / IP3D light rejection at {perf.headline_wp}%: "  # noqa: T201
              f"{head.value:.3f} ± {head.error:.3f}")
    return 0


def _crosscheck(args: argparse.Namespace) -> int:
    from taggers.crosscheck import crosscheck

    result = crosscheck(args.scores, args.working_points, output=args.output)
    print(result.table())  # noqa: T201 - the command's output
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
    group = add_subcommands(add_command(sub, "taggers", None, "flavour tagging: prepare|train|evaluate|decorate|crosscheck"),
                            "taggers")

    p = add_command(group, "prepare", _prepare, "ntuples -> train/validation/test HDF5 and IP templates")
    add_config_option(p)
    p.add_argument("--output-dir", required=True, help="e.g. results/taggers")
    add_seed_option(p, help="override the top-level seed")
    p.add_argument("files", nargs="+", help="ttbar shard ntuples, or training-dataset-dumper HDF5 files")

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
    p.add_argument("--test", default=None, help="test.h5 of taggers prepare")
    p.add_argument("--models", default=None, help="model directory of taggers train")
    p.add_argument("--ipxd", default=None, help="IP2D/IP3D templates (default <models>/../ipxd)")
    p.add_argument("--output-dir", required=True, help="e.g. results/taggers")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--no-benchmark", action="store_true", help="skip the inference timing")
    add_seed_option(p, help="override the seed (bootstrap)")
    _taggers_option(p)
    ext = p.add_argument_group("an external discriminant (instead of --test and --models)")
    ext.add_argument("--discriminant", default=None, metavar="BRANCH",
                     help="the discriminant's branch or HDF5 jets field, e.g. Jet_btagDeepFlavB; PHYSLITE: "
                          "a tagger of the b-tagging container, e.g. DL1dv01")
    ext.add_argument("--label", default=None, metavar="BRANCH",
                     help="the truth-flavour branch (5 b, 4 c, 0 light), e.g. Jet_hadronFlavour")
    ext.add_argument("--input", nargs="+", default=None, metavar="FILE",
                     help="files of a supported format (ROOT: hepline, NanoAOD, Delphes; dumper HDF5)")
    ext.add_argument("--name", default=None, help="the tagger's name in the outputs (default: from the branch)")
    ext.add_argument("--weight", default=None, metavar="BRANCH", help="a jet or event weight (default: 1)")
    ext.add_argument("--fc", type=float, default=None, metavar="F",
                     help="PHYSLITE: f_c of the tagger's discriminant (default: selection.objects.physlite.jet.btag's "
                          "fraction_c when it names the same tagger)")

    p = add_command(group, "crosscheck", _crosscheck,
                    "rejections from test_scores.h5 with the FTAG tools (ftag, puma) against working_points.json")
    p.add_argument("--scores", required=True, help="test_scores.h5 of taggers evaluate")
    p.add_argument("--working-points", required=True, help="working_points.json of the same evaluation")
    p.add_argument("--output", default=None, help="write the comparison as JSON here")

    p = add_command(group, "decorate", _decorate, "add b-tagging branches to an ntuple")
    add_config_option(p)
    p.add_argument("--models", required=True, help="model directory of taggers train")
    p.add_argument("--ipxd", default=None, help="IP2D/IP3D templates (default <models>/../ipxd)")
    p.add_argument("--output", required=True, help="decorated ntuple to write")
    _threads_option(p, "torch/ONNX Runtime threads (default: taggers.threads, 1)")
    _taggers_option(p)
    p.add_argument("input", help="hepline ntuple (one shard)")
