"""A NanoAOD file made of N copies of a real one's events, for throughput measurements.

The real NanoAOD files that can be shipped with the tests hold 40–200 events, too few to
time a selection per event (a run is then start-up cost). This tool writes their events
again and again, every branch kept with its type and its collection counter, so that
per-event rates are measured on real CMS event content::

    python -m tests.benchmarks.nanoaod_replica --copies 500 --output nano_dy_x500.root \\
        tests/data/nano_dy.root

The ``Runs`` tree is written with its sums multiplied by the number of copies, so the
normalisation stays that of the original file. A measurement tool, not part of the product.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections import defaultdict
from typing import Any

import awkward as ak
import uproot

from analysis.core.atomic import atomic_path
from tests.benchmarks.script import run_module_main

log = logging.getLogger(__name__)

__all__ = ["main", "write_replica"]


def _grouped(tree: Any) -> dict[str, Any]:
    """The tree's branches as uproot's writer takes them: each collection (branches sharing a
    counter ``n<Coll>``) one zipped record ``<Coll>``, every other branch as it is."""
    arrays = tree.arrays(library="ak")
    collections: dict[str, list[str]] = defaultdict(list)
    counters = set()
    for name in tree.keys():
        count = tree[name].count_branch
        if count is not None and count.name.startswith("n") and name.startswith(count.name[1:] + "_"):
            collections[count.name[1:]].append(name)
            counters.add(count.name)
    out: dict[str, Any] = {}
    for name in tree.keys():
        if name in counters or any(name in v for v in collections.values()):
            continue
        out[name] = arrays[name]
    for coll, names in collections.items():
        out[coll] = ak.zip({n[len(coll) + 1:]: arrays[n] for n in names})
    return out


def write_replica(source: str | os.PathLike[str], output: str | os.PathLike[str], copies: int) -> int:
    """Write ``copies`` copies of ``source``'s ``Events`` (and its ``Runs`` sums × copies) to
    ``output``; return the number of events written."""
    with uproot.open(source) as f:
        events = _grouped(f["Events"])
        runs = f["Runs"].arrays(library="np") if "Runs" in f else None
    repeated = {name: ak.concatenate([array] * copies) for name, array in events.items()}
    n = len(next(iter(repeated.values())))
    with atomic_path(output) as tmp, uproot.recreate(tmp) as out:
        # a TTree, as NanoAOD is written (assigning awkward arrays would make an RNTuple)
        tree = out.mktree("Events", {name: a.type.content for name, a in repeated.items()})
        tree.extend(repeated)  # one basket per branch
        if runs is not None:
            scaled = {name: (a * copies if name.startswith("genEvent") and a.dtype.kind in "fiu" and a.ndim == 1
                             else a) for name, a in runs.items() if a.dtype != object and a.ndim == 1}
            out["Runs"] = scaled
    log.info("%s: %d events (%d copies of %s)", output, n, copies, source)
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("source")
    args = parser.parse_args(argv)
    write_replica(args.source, args.output, args.copies)
    return 0


if __name__ == "__main__":
    run_module_main("tests.benchmarks.nanoaod_replica")
