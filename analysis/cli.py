"""The ``hepline`` command: one entry point for every stage (docs/provenance.md, README).

Each stage subcommand hands its arguments to the stage module's own ``main(argv)``, so
``hepline <stage> --help`` shows that stage's flags::

    hepline generate   --config C --sample S --shard K --output S_K.root [--seed N]
    hepline merge      --output S.json S_*.root
    hepline validate   --config C --sample S --output-dir D [--workers N] files...
    hepline taggers    prepare|train|evaluate|decorate ...   (taggers.<stage>)
    hepline select     --config C --output S.pkl [--seed N] [--workers N] files...
    hepline histograms --config C --output-dir D pickles...
    hepline limits     workspaces|limits --config C ... [--seed N]
    hepline plots      --config C --hists H --output-dir D
    hepline calo       images|train|evaluate|bench ...
    hepline rpv        select|rates ...
    hepline provenance [--json] FILE...          the provenance record of outputs
    hepline config check FILE                    validate a config, print its hash

Common flags: ``--config``; ``--output`` (one file) or ``--output-dir`` (a folder);
``--seed`` overrides the seed a stage uses; ``--workers`` the runner workers or torch
threads. A bad configuration is reported as ``hepline: error: ...`` (the file, the key path,
the schema's message) with exit code 2 and no traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

EXIT_USAGE = 2


@dataclass(frozen=True)
class Stage:
    """A subcommand that delegates to ``<module>.main(prefix + argv)``.

    ``overrides``: hepline flags the module does not know, applied to a temporary copy of
    ``--config`` (flag → dotted config key). ``renames``: hepline flag → the module's flag.
    """

    module: str
    help: str
    prefix: tuple[str, ...] = ()
    overrides: dict[str, str] = field(default_factory=dict)
    renames: dict[str, str] = field(default_factory=dict)


STAGES: dict[str, Stage] = {
    "generate": Stage("analysis.generation.__main__", "generate, simulate and write one shard",
                      prefix=("produce",)),
    "merge": Stage("analysis.generation.__main__", "merge a sample's shard metadata",
                   prefix=("merge",)),
    "validate": Stage("analysis.validation", "control histograms of one sample"),
    "select": Stage("selections.hh_yybb.processor", "the HH->yybb selection (histogram-set pickle)"),
    "histograms": Stage("analysis.stats.histograms", "merge and normalise histogram sets"),
    "limits": Stage("analysis.stats.limits", "pyhf workspaces and CLs limits",
                    renames={"--seed": "--pseudo-data-seed"}),
    "plots": Stage("analysis.plot.paper", "paper-style plots of histograms and limits"),
    "calo": Stage("selections.rpv.cnn.__main__", "calorimeter-image CNN: images|train|evaluate|bench"),
    "rpv": Stage("selections.rpv.cuts", "cut-based RPV multijet search: select|rates"),
    "benchmarks": Stage("analysis.rule_benchmarks", "per-rule time of a workflow run (benchmark files)"),
}

TAGGER_STAGES: dict[str, Stage] = {
    "prepare": Stage("taggers.prepare", "ntuples -> train/validation/test HDF5 and IP templates"),
    "train": Stage("taggers.train", "train RNNIP, MV2 or DL1"),
    "evaluate": Stage("taggers.evaluate", "ROC curves, working_points.json, plots"),
    "decorate": Stage("taggers.decorate", "add b-tagging branches to an ntuple"),
}


class UsageError(Exception):
    """A command-line or configuration problem: reported in one line, exit code 2."""


# --------------------------------------------------------------------------- dispatch


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hepline``; returns the exit code."""
    from analysis.core.config import ConfigError
    from analysis.core.provenance import ProvenanceError

    args = list(sys.argv[1:] if argv is None else argv)
    parser = _top_parser()
    if not args or args[0] in ("-h", "--help"):
        parser.print_help(sys.stdout if args else sys.stderr)
        return 0 if args else EXIT_USAGE
    if args[0] == "--version":
        import analysis

        print(f"hepline {analysis.__version__}")
        return 0
    command, rest = args[0], args[1:]
    try:
        if command == "taggers":
            return _taggers(rest)
        if command == "provenance":
            return _provenance(rest)
        if command == "config":
            return _config(rest)
        if command in STAGES:
            return run_stage(STAGES[command], rest)
    except (ConfigError, ProvenanceError, UsageError, FileNotFoundError) as exc:
        print(f"hepline: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `hepline provenance f | head`: the reader left, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    parser.error(f"unknown command {command!r} (see hepline --help)")
    return EXIT_USAGE  # not reached: parser.error exits


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hepline", description="hepline: one entry point for every analysis stage.",
        epilog="hepline <command> --help shows the flags of a command.",
    )
    parser.add_argument("--version", action="store_true", help="print the hepline version")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name, stage in STAGES.items():
        sub.add_parser(name, help=stage.help, add_help=False)
    sub.add_parser("taggers", help="flavour tagging: " + "|".join(TAGGER_STAGES), add_help=False)
    sub.add_parser("provenance", help="print the provenance record of output files", add_help=False)
    sub.add_parser("config", help="config check FILE: validate a config, print its hash",
                   add_help=False)
    return parser


def run_stage(stage: Stage, argv: Sequence[str]) -> int:
    """Call the stage module's ``main`` with ``argv`` (overrides and renames applied)."""
    args = list(argv)
    for ours, theirs in stage.renames.items():
        args = [theirs if a == ours else (theirs + a[len(ours):] if a.startswith(ours + "=") else a)
                for a in args]
    module = importlib.import_module(stage.module)
    entry: Callable[[list[str]], int] = module.main
    with _overridden_config(args, stage.overrides) as args:
        return int(entry([*stage.prefix, *args]) or 0)


def _taggers(argv: Sequence[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        lines = [f"  {k:<9} {s.help}" for k, s in TAGGER_STAGES.items()]
        print("usage: hepline taggers {" + ",".join(TAGGER_STAGES) + "} ...\n\n" + "\n".join(lines))
        return 0 if argv else EXIT_USAGE
    if argv[0] not in TAGGER_STAGES:
        raise UsageError(f"unknown taggers stage {argv[0]!r}; choose from {', '.join(TAGGER_STAGES)}")
    return run_stage(TAGGER_STAGES[argv[0]], argv[1:])


# --------------------------------------------------------------------------- overrides


def _pop_option(args: list[str], flag: str) -> tuple[list[str], str | None]:
    """Remove ``flag VALUE`` / ``flag=VALUE`` from ``args``; returns (rest, last value)."""
    out: list[str] = []
    value = None
    i = 0
    while i < len(args):
        a = args[i]
        if a == flag:
            if i + 1 >= len(args):
                raise UsageError(f"{flag} needs a value")
            value = args[i + 1]
            i += 2
            continue
        if a.startswith(flag + "="):
            value = a[len(flag) + 1:]
        else:
            out.append(a)
        i += 1
    return out, value


@contextlib.contextmanager
def _overridden_config(args: list[str], overrides: dict[str, str]) -> Iterator[list[str]]:
    """Strip the ``overrides`` flags from ``args``; if any was given, point ``--config`` at a
    temporary validated copy of the config with the values set (removed afterwards)."""
    values: dict[str, int] = {}
    for flag, key in overrides.items():
        args, value = _pop_option(args, flag)
        if value is not None:
            try:
                values[key] = int(value)
            except ValueError:
                raise UsageError(f"{flag} must be an integer, not {value!r}") from None
    if not values:
        yield args
        return
    import yaml

    from analysis.core.config import load_raw_config, validate

    args, config_path = _pop_option(args, "--config")
    if config_path is None:
        raise UsageError("--config is required")
    cfg = load_raw_config(config_path)
    for key, value in values.items():
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    cfg = validate(cfg, source=f"{config_path} (with {', '.join(f'{k}={v}' for k, v in values.items())})")
    with tempfile.TemporaryDirectory(prefix="hepline-config-") as tmp:
        path = Path(tmp) / Path(config_path).name
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        yield ["--config", str(path), *args]


# --------------------------------------------------------------------------- provenance, config


def _provenance(argv: Sequence[str]) -> int:
    from analysis.core.provenance import format_record, read_provenance

    p = argparse.ArgumentParser(prog="hepline provenance",
                                description="Print the provenance record of hepline outputs.")
    p.add_argument("--json", action="store_true", help="JSON ({path: record}) instead of text")
    p.add_argument("files", nargs="+")
    args = p.parse_args(list(argv))
    records = {f: read_provenance(f) for f in args.files}
    if args.json:
        print(json.dumps(records, indent=2, sort_keys=True))
    else:
        print("\n\n".join(format_record(r, path=f) for f, r in records.items()))
    return 0


def _config(argv: Sequence[str]) -> int:
    from analysis.core.config import config_hash, load_raw_config

    p = argparse.ArgumentParser(prog="hepline config", description="Configuration tools.")
    sub = p.add_subparsers(dest="action", required=True)
    c = sub.add_parser("check", help="validate a config file and print its hash")
    c.add_argument("file")
    args = p.parse_args(list(argv))
    cfg = load_raw_config(args.file)
    print(f"{args.file}: valid")
    print(f"config hash: {config_hash(cfg)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
