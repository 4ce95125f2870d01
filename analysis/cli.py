"""The ``hepline`` command: one entry point for every stage, calling library functions.

::

    hepline generate   --config C --sample S --shard K --output S_K.root [--seed N] [--mu M]
                       [--pileup-library F]
    hepline pileup-library --config C [--output F]    the minimum-bias library of pile-up
    hepline detector-performance --output P.json [--config C] [--jets ...] [--diphoton ...]
                       [--tracks ...] [--fakes NAME=F,...]   resolutions, fakes, IP tails
    hepline merge      --output S.json S_*.root
    hepline hadd       --output S.root S_*.root
    hepline xsec       CONFIG [-n N] [SAMPLE ...]     Pythia cross-sections of the samples
    hepline validate   --config C --sample S --output-dir D [--format F] [--workers N] files...
    hepline taggers    prepare|train|evaluate|decorate ...
    hepline select     --config C --output S.pkl [--seed N] [--workers N] files...
    hepline histograms --config C --output-dir D selection outputs...
    hepline limits     workspaces|limits --config C ...
    hepline plots      --config C --hists H --output-dir D
    hepline calo       images|train|evaluate|bench ...
    hepline rpv        select|rates ...
    hepline benchmarks results/benchmarks          per-rule time of a workflow run
    hepline provenance [--json] FILE...            the provenance record of outputs
    hepline config check FILE                      validate a config, print its hash

This module owns the framework and the commands of the ``analysis`` package. ``taggers`` and
``selections`` add theirs through the ``hepline.commands`` entry-point group (see
``pyproject.toml``), so that ``analysis`` never imports the packages downstream of it.

Common flags: ``--config``; ``--output`` (one file) or ``--output-dir`` (a folder); ``--seed``
overrides the seed a stage uses; ``--workers`` the runner workers or torch threads. Every known
error (:class:`~analysis.core.errors.HeplineError`: a bad config, input file, model or
working-point file) and every missing or unreadable file is printed as one line
``hepline: error: ...`` naming the file and the field, with exit code 2; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

import analysis
from analysis.core.config import Config, load_config
from analysis.core.errors import ConfigError, HeplineError

__all__ = [
    "COMMAND_GROUP",
    "EXIT_ERROR",
    "add_command",
    "add_config_option",
    "add_seed_option",
    "add_workers_option",
    "build_parser",
    "main",
    "stage_config",
]

log = logging.getLogger(__name__)

#: entry-point group through which packages downstream of ``analysis`` add commands
COMMAND_GROUP = "hepline.commands"
#: exit code of a known error (and of a usage error, as argparse does)
EXIT_ERROR = 2

Handler = Callable[[argparse.Namespace], "int | None"]


# --------------------------------------------------------------------------- helpers for commands


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of an error")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="log warnings and errors only")
    return common


def add_command(sub: argparse._SubParsersAction, name: str, func: Handler | None, help: str,
                *, description: str | None = None) -> argparse.ArgumentParser:
    """Add a subcommand ``name`` that runs ``func(args)``; returns its parser for the flags.

    ``func=None`` makes a command group: add its subcommands with ``add_subcommands``.
    """
    parser = sub.add_parser(name, help=help, description=description or help, parents=[_common()],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    if func is not None:
        parser.set_defaults(func=func)
    return parser


def add_subcommands(parser: argparse.ArgumentParser, title: str) -> argparse._SubParsersAction:
    """The subcommands of a command group (``hepline taggers <stage>``)."""
    return parser.add_subparsers(dest=f"{title}_command", metavar="<stage>", required=True, title=title)


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """``--config FILE``: the YAML configuration (validated once, :func:`stage_config`)."""
    parser.add_argument("--config", required=True, help="the YAML configuration file")


def add_seed_option(parser: argparse.ArgumentParser, help: str = "override the configuration's seed") -> None:
    """``--seed N`` (a non-negative integer)."""
    parser.add_argument("--seed", type=_non_negative, default=None, help=help)


def add_workers_option(parser: argparse.ArgumentParser, help: str = "override runner.workers") -> None:
    """``--workers N`` (a positive integer)."""
    parser.add_argument("--workers", type=_positive, default=None, help=help)


def _non_negative(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {value}")
    return value


def _positive(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, not {text!r}") from None


def stage_config(args: argparse.Namespace) -> Config:
    """The validated config of ``--config``, with ``--seed`` and ``--workers`` applied
    (when the command has them and they were given)."""
    cfg = load_config(args.config)
    seed = getattr(args, "seed", None)
    if seed is not None:
        cfg = cfg.replace(seed=seed)
    workers = getattr(args, "workers", None)
    if workers is not None:
        cfg = cfg.replace(runner=cfg.runner.replace(workers=workers))
    return cfg


# --------------------------------------------------------------------------- the analysis commands


def _config_check(args: argparse.Namespace) -> int:
    cfg = load_config(args.file)
    print(f"{args.file}: valid")  # noqa: T201 - the command's output
    print(f"config hash: {cfg.hash}")  # noqa: T201
    return 0


def _provenance(args: argparse.Namespace) -> int:
    from analysis.core.provenance import format_record, read_provenance

    records = {f: read_provenance(f) for f in args.files}
    if args.json:
        print(json.dumps(records, indent=2, sort_keys=True))  # noqa: T201
    else:
        print("\n\n".join(format_record(r, path=f) for f, r in records.items()))  # noqa: T201
    return 0


def _benchmarks(args: argparse.Namespace) -> int:
    from analysis.rule_benchmarks import markdown, summarise

    rows = summarise(args.benchmark_dir)
    print(json.dumps(rows, indent=2) if args.json else markdown(rows), end="")  # noqa: T201
    return 0


def _generate(args: argparse.Namespace) -> int:
    from analysis.generation.produce import produce_shard

    cfg = stage_config(args)
    if args.mu is not None:
        if not args.mu >= 0:
            raise ConfigError(f"--mu: the mean pile-up <mu> must be >= 0 (got {args.mu:g})")
        gen = cfg.generation
        cfg = cfg.replace(generation=gen.replace(pileup=gen.pileup.replace(mu=args.mu)))
    produce_shard(cfg, args.sample, args.shard, args.output, n_events=args.events,
                  detector=not args.no_detector, progress=not getattr(args, "quiet", False),
                  metrics=args.metrics, pileup_library=args.pileup_library)
    return 0


def _pileup_library(args: argparse.Namespace) -> int:
    from analysis.generation.pileup import write_library

    result = write_library(stage_config(args), args.output, progress=not getattr(args, "quiet", False))
    if not getattr(args, "quiet", False):
        print(json.dumps(result.to_dict(), indent=2))  # noqa: T201 - the command's output
    return 0


def _detector_performance(args: argparse.Namespace) -> int:
    from analysis.generation.performance import write_performance

    fakes = dict(item.split("=", 1) for item in args.fakes)
    perf = write_performance(
        args.output, load_config(args.config) if args.config else None, jets=args.jets,
        diphoton=args.diphoton, tracks=args.tracks,
        fakes={name: [p for p in paths.split(",") if p] for name, paths in fakes.items()},
    )
    if not getattr(args, "quiet", False):
        print(json.dumps(perf.to_dict(), indent=2))  # noqa: T201 - the command's output
    return 0


def _merge(args: argparse.Namespace) -> int:
    from analysis.generation.produce import write_merged

    write_merged(args.inputs, args.output)
    return 0


def _hadd(args: argparse.Namespace) -> int:
    from analysis.generation.hadd import hadd

    hadd(args.inputs, args.output, basket_events=args.basket_events)
    return 0


def _xsec(args: argparse.Namespace) -> int:
    from analysis.generation.processes import cross_section_table, measure_samples

    rows = measure_samples(load_config(args.config).generation, args.samples, n_events=args.events,
                           seed=args.seed, fast=not args.full)
    print(cross_section_table(rows))  # noqa: T201 - the command's output
    return 0


def _histograms(args: argparse.Namespace) -> int:
    from analysis.stats.histograms import write_histograms

    write_histograms(stage_config(args), args.inputs, args.output_dir, lumi_fb=args.lumi_fb)
    return 0


def _workspaces(args: argparse.Namespace) -> int:
    from analysis.stats.limits import write_workspaces

    # --seed is the pseudo-data seed here, not the configuration's base seed
    cfg = load_config(args.config)
    write_workspaces(cfg, args.hists, args.output_dir, pseudo_data_seed=args.seed)
    return 0


def _limits(args: argparse.Namespace) -> int:
    from analysis.stats.limits import write_limits

    write_limits(stage_config(args), args.index, args.output_dir)
    return 0


def _plots(args: argparse.Namespace) -> int:
    from analysis.plot.paper import write_paper_plots

    write_paper_plots(stage_config(args), args.hists, args.output_dir, limits=args.limits)
    return 0


def _validate(args: argparse.Namespace) -> int:
    from analysis.validation import validate_sample

    validate_sample(args.files, args.sample, args.output_dir, stage_config(args), format=args.format)
    return 0


def _forward(module: str, *prefix: str) -> Handler:
    """A command still handled by its module's ``main(argv)`` (being moved into this CLI)."""

    def run(args: argparse.Namespace) -> int:
        import importlib

        return int(importlib.import_module(module).main([*prefix, *args.rest]) or 0)

    return run


def _forwarded(sub: argparse._SubParsersAction, name: str, module: str, help: str, *prefix: str) -> None:
    p = sub.add_parser(name, help=help, add_help=False, parents=[_common()])
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=_forward(module, *prefix))


def _register_analysis(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "generate", _generate, "generate, simulate and write one shard")
    add_config_option(p)
    p.add_argument("--sample", required=True, help="sample name in generation.samples")
    p.add_argument("--shard", type=_non_negative, default=0, help="shard index (default 0)")
    p.add_argument("--output", help="ROOT file to write (omit to time without writing)")
    p.add_argument("--events", type=_positive, help="override events_per_shard")
    add_seed_option(p, "override the base seed")
    p.add_argument("--no-detector", action="store_true", help="Pythia only (benchmarking)")
    p.add_argument("--metrics", help="write the timing metrics JSON here")
    p.add_argument("--mu", type=float, default=None,
                   help="override generation.pileup.mu, the mean pile-up <mu> (0: none); "
                        "recorded in the shard's metadata")
    p.add_argument("--pileup-library",
                   help="the minimum-bias library when generation.pileup.mu > 0 "
                        "(default: generation.pileup.library under output_dir)")

    p = add_command(sub, "pileup-library", _pileup_library,
                    "generate the minimum-bias library that pile-up overlays (once per config)")
    add_config_option(p)
    p.add_argument("--output", help="HDF5 file to write (default: generation.pileup.library "
                                    "under output_dir)")

    p = add_command(sub, "detector-performance", _detector_performance,
                    "measure jet/photon resolutions, fake photons, IP tails on ntuples")
    p.add_argument("--config", help="the configuration the samples were made with (provenance)")
    p.add_argument("--output", required=True, help="JSON file to write")
    p.add_argument("--jets", nargs="*", default=[], help="dijet ntuples (JES closure, JER)")
    p.add_argument("--diphoton", nargs="*", default=[], help="H -> yy ntuples (m_yy, photon energy)")
    p.add_argument("--tracks", nargs="*", default=[], help="ntuples with light jets (IP tails)")
    p.add_argument("--fakes", nargs="*", default=[], metavar="NAME=FILE[,FILE...]",
                   help="samples for the jet -> photon fake rate, e.g. dijet=a.root,b.root")

    p = add_command(sub, "merge", _merge, "merge the metadata of a sample's shards")
    p.add_argument("--output", required=True, help="JSON file to write")
    p.add_argument("inputs", nargs="+", help="shard ROOT files")

    p = add_command(sub, "hadd", _hadd, "concatenate one sample's ntuples into one ROOT file")
    p.add_argument("--output", required=True, help="ROOT file to write")
    p.add_argument("--basket-events", type=_positive, default=10000, help="events per basket written")
    p.add_argument("inputs", nargs="+", help="hepline ntuples of one sample")

    p = add_command(sub, "xsec", _xsec, "measure the Pythia cross-sections of a config's samples")
    p.add_argument("config", help="the YAML configuration file")
    p.add_argument("samples", nargs="*", help="sample names (default: all)")
    p.add_argument("-n", "--events", type=_positive, default=2000, help="events per sample")
    p.add_argument("--full", action="store_true", help="keep MPI and hadronisation on")
    p.add_argument("--seed", type=_non_negative, default=1, help="Pythia seed")

    p = add_command(sub, "validate", _validate, "control histograms of one sample")
    add_config_option(p)
    p.add_argument("--sample", required=True, help="the sample's name (labels the outputs)")
    p.add_argument("--output-dir", required=True, help="<sample>.root, .json and .png go here")
    p.add_argument("--format", default="auto", choices=["auto", "hepline", "nanoaod", "physlite", "delphes"],
                   help="input format (default: detected from the first file)")
    add_workers_option(p)
    p.add_argument("files", nargs="+", help="the sample's files (hepline, NanoAOD, PHYSLITE or Delphes; "
                                            "TTree or RNTuple)")

    p = add_command(sub, "histograms", _histograms, "merge and normalise the selection's histogram sets")
    add_config_option(p)
    p.add_argument("--output-dir", required=True, help="hists.pkl, hists.root, cutflow.md/json go here")
    p.add_argument("--lumi-fb", type=float, default=None,
                   help="integrated luminosity in fb^-1 (default: selection.hh_yybb.histograms.lumi_fb)")
    p.add_argument("inputs", nargs="+", help="histogram sets (one per selection job)")

    p = add_command(sub, "limits", None, "pyhf workspaces and CLs limits")
    steps = add_subcommands(p, "limits")
    w = add_command(steps, "workspaces", _workspaces, "one pyhf workspace per configured signal")
    add_config_option(w)
    w.add_argument("--hists", required=True, help="the normalised histogram set (hepline histograms)")
    w.add_argument("--output-dir", required=True, help="<signal>.json and index.json go here")
    w.add_argument("--seed", "--pseudo-data-seed", dest="seed", type=_non_negative, default=None,
                   help="Poisson pseudo-data from the background model with this seed (observed limits); "
                        "overrides limits.pseudo_data_seed")
    lim = add_command(steps, "limits", _limits, "CLs limits of the workspaces of an index")
    add_config_option(lim)
    lim.add_argument("--index", required=True, help="index.json written by 'limits workspaces'")
    lim.add_argument("--output-dir", required=True, help="limits.json and limits.md go here")

    p = add_command(sub, "plots", _plots, "paper-style plots of histograms and limits")
    add_config_option(p)
    p.add_argument("--hists", required=True, help="the normalised histogram set")
    p.add_argument("--limits", default=None, help="limits.json of 'hepline limits limits' (Brazil plot)")
    p.add_argument("--output-dir", required=True, help="the PNGs and summary.json go here")

    p = add_command(sub, "benchmarks", _benchmarks, "per-rule time of a workflow run (benchmark files)")
    p.add_argument("benchmark_dir", help="the workflow's <output_dir>/benchmarks")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")

    p = add_command(sub, "provenance", _provenance, "print the provenance record of output files")
    p.add_argument("--json", action="store_true", help="JSON ({path: record}) instead of text")
    p.add_argument("files", nargs="+")

    p = add_command(sub, "config", None, "configuration tools")
    c = add_subcommands(p, "config")
    check = add_command(c, "check", _config_check, "validate a config file and print its hash")
    check.add_argument("file")


# --------------------------------------------------------------------------- parser and main


def build_parser() -> argparse.ArgumentParser:
    """The ``hepline`` parser: the analysis commands and those of the installed packages."""
    parser = argparse.ArgumentParser(
        prog="hepline", description="hepline: one entry point for every analysis stage.",
        epilog="hepline <command> --help shows the flags of a command.", parents=[_common()],
    )
    parser.add_argument("--version", action="version", version=f"hepline {analysis.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    _register_analysis(sub)
    for ep in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        ep.load()(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hepline``; returns the exit code (2 for a known error, printed as one line)."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    debug = bool(getattr(args, "debug", False))
    logging.basicConfig(level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except HeplineError as exc:
        return _report(exc, debug)
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):  # `hepline provenance f | head`: the reader left
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 0
        return _report(exc, debug, _os_message(exc))


def _os_message(exc: OSError) -> str:
    """``<file>: <what>`` for an OSError (missing, unreadable, a directory, a full disk)."""
    what = exc.strerror or (errno.errorcode.get(exc.errno or 0) if exc.errno else None) or str(exc)
    if exc.filename is not None:
        return f"{exc.filename}: {what}"
    return str(exc) or what


def _report(exc: BaseException, debug: bool, message: str | None = None) -> int:
    if debug:
        traceback.print_exception(exc)
    text = " ".join((message or str(exc)).split())
    print(f"hepline: error: {text}", file=sys.stderr)  # noqa: T201
    return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
