"""Where the CPU time of the HH → γγbb̄ selection goes, component by component.

Wraps the runner's validation, the coffea NanoEvents factory and the processor's read,
selection (and, inside it, the per-event pass of :mod:`selections.hh_yybb.kernel`), fill
and candidate steps with CPU-time counters, runs :func:`run_selection`
``--repeat`` times (after a warm-up) and prints the medians next to a plain
``uproot.arrays`` read of the same branches::

    python -m tests.benchmarks.hh_yybb_breakdown --config workflows/config/default.yaml \\
        --working-points results_full/taggers/working_points.json --sample-metadata yy.json \\
        --set selection.hh_yybb.engine=numba yy_0.root yy_1.root

A measurement tool: it patches the wrapped functions in this process only.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from coffea import processor

from analysis.core.config import Config, load_config
from analysis.io import runner
from selections.cli import apply_overrides
from selections.hh_yybb import compiled as CP
from selections.hh_yybb import kernel as K
from selections.hh_yybb import processor as S
from selections.hh_yybb import shifted as KS
from tests.benchmarks.hh_yybb_throughput import plain_read
from tests.benchmarks.script import run_module_main

log = logging.getLogger(__name__)

PROCESSOR_STEPS = ("_read", "_analyse", "_fill", "_btag_weights", "_shift_candidates", "_fill_shifted_compiled")
"""Processor methods timed one by one (``_fill_shifted_compiled``: the compiled engine's five
shifted passes and their fills, resolution factors included; the numpy engine runs those
passes through ``_analyse`` and ``_fill``)."""


def _timed(fn: Callable[..., Any], key: str, acc: dict[str, float]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        c0 = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            acc[key] = acc.get(key, 0.0) + time.process_time() - c0

    return wrapper


class ColumnsOnly(processor.ProcessorABC):
    """The framework floor: a processor that only takes the preloaded columns out of the
    events' layout (what :class:`~selections.hh_yybb.compiled.CompiledProcessor` reads) and counts."""

    def __init__(self, branches: Sequence[str]):
        self.branches = list(branches)

    def process(self, events: Any) -> dict[str, int]:
        get = CP.CompiledProcessor._source(events)
        values = 0
        for b in self.branches:
            coll, _, field = b.partition("_")
            values += len(get.column(coll, field) if field else get.column(None, b))
        return {"events": len(events), "values": values}

    def postprocess(self, accumulator: Any) -> Any:
        return accumulator


class _GCTimer:
    """CPU seconds spent inside the garbage collector while installed (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.process_time()
        else:
            self.total += time.process_time() - self._start


def breakdown(files: Sequence[str], config: Config, working_points: Any, sample_metadata: Any = None,
              repeat: int = 5, process_repeat: int = 0, shifted_repeat: int = 0) -> dict[str, Any]:
    """Median CPU seconds per component over ``repeat`` runs, the total and the plain read,
    and ``framework_only``: the same runner, preload and column extraction with
    :class:`ColumnsOnly` instead of the selection (the ceiling of the ratio).
    ``garbage_collection``: the collector's CPU time within a selection run (it overlaps
    the other components). ``process_repeat`` > 0: also ``process_only``, the processor's
    ``process`` alone called that many more times on the last run's (already read) chunk,
    min and median CPU seconds: the selection's own cost without the I/O and with less of
    the machine's noise. ``shifted_repeat`` > 0 (compiled engine): also ``shifted_only``, the
    compiled shifted passes (:func:`selections.hh_yybb.shifted.shifted_entries`) alone on the
    last run's inputs, min and median CPU seconds, and ``fastest_by_passes``: the fastest of
    as many calls with each pass alone (``pass_<k>_<kind>``), the photon passes together
    and the jet-scale passes together (a pass that follows another reuses its objects, so
    these do not add up to the whole)."""
    from coffea.nanoevents import NanoEventsFactory

    acc: dict[str, float] = {}
    saved: list[tuple[Any, str, Any]] = []
    captured: dict[str, Any] = {}
    process = CP.CompiledProcessor.__dict__["process"]

    def capture(self: Any, events: Any) -> Any:
        captured["processor"], captured["events"] = self, events
        return process(self, events)

    def patch(owner: Any, name: str, key: str) -> None:
        saved.append((owner, name, owner.__dict__[name]))
        setattr(owner, name, _timed(getattr(owner, name), key, acc))

    patch(runner, "validate_fileset", "validate")
    for fn in ("event_arrays", "event_arrays_numpy"):  # inside "analyse"
        patch(K, fn, "analyse_per_event_pass")
    for step in PROCESSOR_STEPS:
        patch(CP.CompiledProcessor, step, step.lstrip("_"))
    factory = NanoEventsFactory.__dict__["from_root"]
    saved.append((NanoEventsFactory, "from_root", factory))
    NanoEventsFactory.from_root = classmethod(_timed(factory.__func__, "nanoevents_factory", acc))
    if process_repeat:
        saved.append((CP.CompiledProcessor, "process", process))
        CP.CompiledProcessor.process = capture
    shifted_entries = KS.shifted_entries
    if shifted_repeat:
        def capture_shifted(passes: Any, **kw: Any) -> Any:
            captured["shifted"] = (passes, kw)
            return shifted_entries(passes, **kw)

        saved.append((KS, "shifted_entries", shifted_entries))
        KS.shifted_entries = capture_shifted
    shifted_only: list[float] = []
    shifted_groups: dict[str, float] = {}
    gc_timer = _GCTimer()
    process_only: list[float] = []
    try:
        res = S.run_selection(files, config, working_points, sample_metadata=sample_metadata)  # warm-up
        branches = res.summary.branches
        fileset = S.sample_fileset(list(files), sample_metadata=sample_metadata)
        floor = ColumnsOnly([b for b in branches if not b.startswith("n")])
        runner.run_processor(floor, fileset, S.selection_runner(config), preload=branches)  # warm-up
        runs = []
        for _ in range(repeat):
            acc.clear()
            gc_timer.total = 0.0
            gc.callbacks.append(gc_timer)
            c0 = time.process_time()
            try:
                res = S.run_selection(files, config, working_points, sample_metadata=sample_metadata)
            finally:
                total = time.process_time() - c0
                gc.callbacks.remove(gc_timer)
            parts = {**acc, "garbage_collection": gc_timer.total}
            c0 = time.process_time()
            runner.run_processor(floor, fileset, S.selection_runner(config), preload=branches)
            framework = time.process_time() - c0
            n, _, read_cpu = plain_read(files, branches)
            runs.append({"total": total, "plain_read": read_cpu, "framework_only": framework, **parts})
        if process_repeat:
            proc, events = captured["processor"], captured["events"]
            for _ in range(process_repeat):
                c0 = time.process_time()
                process(proc, events)
                process_only.append(time.process_time() - c0)
        if shifted_repeat and "shifted" in captured:
            passes, kw = captured["shifted"]
            for _ in range(shifted_repeat):
                c0 = time.process_time()
                shifted_entries(passes, **kw)
                shifted_only.append(time.process_time() - c0)
            # each pass alone, and the photon passes / jet-scale passes together
            groups = {f"pass_{k}_{KS.PASS_NAMES[p[0]]}": [p] for k, p in enumerate(passes)}
            groups["photon_passes"] = [p for p in passes if p[0] != KS.PASS_JET_SCALE]
            groups["jet_scale_passes"] = [p for p in passes if p[0] == KS.PASS_JET_SCALE]
            for name, subset in groups.items():
                times = []
                for _ in range(shifted_repeat):
                    c0 = time.process_time()
                    shifted_entries(subset, **kw)
                    times.append(time.process_time() - c0)
                shifted_groups[name] = min(times)
        captured.clear()
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)
    keys = list(runs[0])
    med = {k: statistics.median(r.get(k, 0.0) for r in runs) for k in keys}
    overlapping = ("total", "plain_read", "framework_only", "analyse_per_event_pass", "garbage_collection")
    med["other"] = med["total"] - sum(v for k, v in med.items() if k not in overlapping)
    out = {"events": n, "repeat": repeat, "cpu_s": med, "ratio_cpu": med["plain_read"] / med["total"],
           "ratio_cpu_framework_only": med["plain_read"] / med["framework_only"]}
    if process_only:
        out["process_only_cpu_s"] = {"min": min(process_only), "median": statistics.median(process_only),
                                     "repeat": len(process_only)}
    if shifted_only:
        out["shifted_only_cpu_s"] = {"min": min(shifted_only), "median": statistics.median(shifted_only),
                                     "repeat": len(shifted_only), "fastest_by_passes": shifted_groups}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--working-points", required=True)
    parser.add_argument("--sample-metadata", nargs="*", default=None)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--process-repeat", type=int, default=0,
                        help="also time the processor's process() alone this many times on the read chunk")
    parser.add_argument("--shifted-repeat", type=int, default=0,
                        help="also time the compiled shifted passes alone this many times (engine numba)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, as for hepline select")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    cfg = apply_overrides(load_config(args.config), args.set, source=args.config)
    if S.expects_compiled_engine(cfg.selection.hh_yybb, args.sample_metadata):  # as hepline select does
        K.warm_up()
    runner.freeze_startup_objects()
    out = breakdown(args.files, cfg, args.working_points,
                    sample_metadata=args.sample_metadata, repeat=args.repeat, process_repeat=args.process_repeat,
                    shifted_repeat=args.shifted_repeat)
    print(json.dumps(out, indent=2))  # noqa: T201 - the requested output
    return 0


if __name__ == "__main__":  # the importable module's main (its processor pickles by reference)
    run_module_main("tests.benchmarks.hh_yybb_breakdown")
