"""Compare the physics outputs of two workflow runs, bit for bit (docs/benchmarks.md, "Layout").

A refactor must leave the default workflow's physics outputs unchanged. This tool walks two
``results/`` folders and compares every output both hold:

* ROOT files: every branch of every tree (awkward arrays, NaN-aware), every histogram's
  values and variances, and the JSON strings, except their timestamps and provenance;
* HDF5 files: every dataset, and the JSON attributes except provenance;
* histogram sets (``*.pkl``): every histogram's values and variances, flow bins included;
* torch model files: every tensor of the state dicts; NumPy ``.npz``: every array;
* JSON: every value (paths from the output folder on, so ``output_dir`` may differ), except the keys of run time, throughput, hosts and provenance
  (:data:`VOLATILE`), which no refactor can keep.

PNGs, logs and benchmark files are skipped::

    python -m tests.benchmarks.compare_results results_before results_after
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

#: JSON keys whose values depend on the run (time, speed, machine, file identity), not on the physics
VOLATILE = re.compile(
    r"^(provenance|created_utc|started_utc|hepline_version|versions|host|cwd|command|git|platform"
    r"|.*_s|.*seconds.*|.*per_s|.*per_cpu_s|.*_per_s_.*|.*time.*|inference|bytes.*|.*_bytes|sha256|.*_sha256"
    r"|packages|uuid|mtime.*|size|files?_size.*|path|file|model_path|.*_file|.*_dir|n_threads|threads"
    r"|torch_threads|device|device_name|detector_plus_write(_cpu)?_fraction)$"
)
#: the workflow's output folders: a path is compared from the first of them on, so that two runs
#: with different ``output_dir`` compare equal
_OUTPUT_PATH = re.compile(r"^.*?/?(?=(samples|decorated|taggers|calo|rpv|hh_yybb|validation)/)")
SKIP_SUFFIXES = (".png", ".log", ".tsv", ".md", ".ckpt.pt")


def _json_diff(a: Any, b: Any, where: str) -> Iterator[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if VOLATILE.match(str(key)):
                continue
            if key not in a or key not in b:
                yield f"{where}.{key}: only in {'after' if key not in a else 'before'}"
                continue
            yield from _json_diff(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            yield f"{where}: {len(a)} != {len(b)} items"
            return
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _json_diff(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return
    elif isinstance(a, str) and isinstance(b, str) and _OUTPUT_PATH.sub("", a) == _OUTPUT_PATH.sub("", b):
        return
    elif a != b:
        yield f"{where}: {a!r} != {b!r}"


def _arrays_equal(a: Any, b: Any) -> bool:
    import awkward as ak

    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    try:
        return bool(ak.array_equal(a, b, equal_nan=True, dtype_exact=True, same_content_types=True))
    except (TypeError, ValueError):
        return bool(ak.to_list(a) == ak.to_list(b))


def _hist_diff(a: Any, b: Any, where: str) -> Iterator[str]:
    va, vb = a.view(flow=True), b.view(flow=True)
    if va.dtype.names:
        for field in va.dtype.names:
            if not np.array_equal(va[field], vb[field], equal_nan=True):
                yield f"{where} [{field}] differs"
    elif not np.array_equal(va, vb, equal_nan=True):
        yield f"{where} differs"


def compare_root(a: Path, b: Path) -> Iterator[str]:
    import uproot

    with uproot.open(a) as fa, uproot.open(b) as fb:
        ka = {k.split(";")[0]: fa.classname_of(k) for k in fa.keys(recursive=True)}
        kb = {k.split(";")[0]: fb.classname_of(k) for k in fb.keys(recursive=True)}
        for key in sorted(set(ka) | set(kb)):
            if key == "hepline_provenance":
                continue
            if key not in ka or key not in kb:
                yield f"{key}: only in {'after' if key not in ka else 'before'}"
                continue
            cls = ka[key]
            if cls.startswith("TTree") or cls == "ROOT::RNTuple":
                ta, tb = fa[key], fb[key]
                if set(ta.keys()) != set(tb.keys()):
                    yield f"{key}: branches differ {sorted(set(ta.keys()) ^ set(tb.keys()))}"
                common = sorted(set(ta.keys()) & set(tb.keys()))
                xa, xb = ta.arrays(common, library="ak"), tb.arrays(common, library="ak")
                for br in common:
                    if not _arrays_equal(xa[br], xb[br]):
                        yield f"{key}/{br} differs"
            elif cls.startswith("TH"):
                ha, hb = fa[key].to_hist(), fb[key].to_hist()
                yield from _hist_diff(ha, hb, key)
            elif cls == "TObjString":
                sa, sb = str(fa[key]), str(fb[key])
                try:
                    yield from _json_diff(json.loads(sa), json.loads(sb), key)
                except ValueError:
                    if sa != sb:
                        yield f"{key} differs"


def compare_hdf5(a: Path, b: Path) -> Iterator[str]:
    import h5py

    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        names_a: list[str] = []
        names_b: list[str] = []
        fa.visit(names_a.append)
        fb.visit(names_b.append)
        for name in sorted(set(names_a) | set(names_b)):
            if name not in names_a or name not in names_b:
                yield f"{name}: only in {'after' if name not in names_a else 'before'}"
                continue
            oa, ob = fa[name], fb[name]
            if isinstance(oa, h5py.Dataset) and not _arrays_equal(oa[()], ob[()]):
                yield f"{name} differs"
        for obj_name in ["/", *sorted(set(names_a) & set(names_b))]:
            aa, ab = fa[obj_name].attrs, fb[obj_name].attrs
            for key in sorted(set(aa) | set(ab)):
                if VOLATILE.match(key) or key == "hepline_provenance":
                    continue
                if key not in aa or key not in ab:
                    yield f"{obj_name}@{key}: only in one file"
                    continue
                x, y = aa[key], ab[key]
                if isinstance(x, (str, bytes)):
                    try:
                        yield from _json_diff(json.loads(x), json.loads(y), f"{obj_name}@{key}")
                        continue
                    except ValueError:
                        pass
                if not np.array_equal(np.asarray(x), np.asarray(y)):
                    yield f"{obj_name}@{key} differs"


def compare_histset(a: Path, b: Path) -> Iterator[str]:
    from analysis.stats.histograms import HistSet

    ha, hb = HistSet.read(a), HistSet.read(b)
    if set(ha.samples) != set(hb.samples):
        yield f"samples differ: {sorted(set(ha.samples) ^ set(hb.samples))}"
    for name in sorted(set(ha.samples) & set(hb.samples)):
        sa, sb = ha.samples[name], hb.samples[name]
        for obs in sorted(set(sa.hists) | set(sb.hists)):
            if obs not in sa.hists or obs not in sb.hists:
                yield f"{name}/{obs}: only in one set"
                continue
            yield from _hist_diff(sa.hists[obs], sb.hists[obs], f"{name}/{obs}")
        ca = sa.cutflow.__dict__ if sa.cutflow else None
        cb = sb.cutflow.__dict__ if sb.cutflow else None
        yield from _json_diff(ca, cb, f"{name}/cutflow")
        for key in ("xsec_pb", "sumw", "norm", "n_events"):
            if getattr(sa, key) != getattr(sb, key):
                yield f"{name}.{key}: {getattr(sa, key)!r} != {getattr(sb, key)!r}"


def compare_torch(a: Path, b: Path) -> Iterator[str]:
    import torch

    pa = torch.load(a, map_location="cpu", weights_only=True)
    pb = torch.load(b, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(pa, dict) and key in pa:
            sa, sb = pa[key], pb.get(key, {})
            for name in sorted(set(sa) | set(sb)):
                if name not in sa or name not in sb or not torch.equal(sa[name], sb[name]):
                    yield f"{key}.{name} differs"
            return
    yield "no state dict found"


def compare_npz(a: Path, b: Path) -> Iterator[str]:
    with np.load(a, allow_pickle=False) as za, np.load(b, allow_pickle=False) as zb:
        for key in sorted(set(za.files) | set(zb.files)):
            if key not in za.files or key not in zb.files or not _arrays_equal(za[key], zb[key]):
                yield f"{key} differs"


def compare_file(a: Path, b: Path) -> list[str]:
    name = a.name
    if name.endswith(".json"):
        return list(_json_diff(json.loads(a.read_text()), json.loads(b.read_text()), ""))
    if name.endswith(".root"):
        return list(compare_root(a, b))
    if name.endswith((".h5", ".hdf5")):
        return list(compare_hdf5(a, b))
    if name.endswith(".pkl"):
        return list(compare_histset(a, b))
    if name.endswith(".pt"):
        return list(compare_torch(a, b))
    if name.endswith(".npz"):
        return list(compare_npz(a, b))
    if name.endswith(".onnx"):
        import onnx

        ma, mb = onnx.load(str(a)), onnx.load(str(b))
        inits = {i.name: onnx.numpy_helper.to_array(i) for i in ma.graph.initializer}
        other = {i.name: onnx.numpy_helper.to_array(i) for i in mb.graph.initializer}
        return [f"initializer {k} differs" for k in sorted(set(inits) | set(other))
                if k not in inits or k not in other or not np.array_equal(inits[k], other[k])]
    return [] if a.read_bytes() == b.read_bytes() else ["bytes differ"]


def compare(before: Path, after: Path, *, counted: list[str] | None = None) -> dict[str, list[str]]:
    """``{relative path: [differences]}`` over the outputs both folders hold (plus the files
    only one holds); ``counted`` collects the paths compared."""
    def outputs(root: Path) -> set[str]:
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
                and not p.name.endswith(SKIP_SUFFIXES) and ".provenance." not in p.name
                and not str(p.relative_to(root)).startswith(("logs", "benchmarks"))}

    ra, rb = outputs(before), outputs(after)
    report: dict[str, list[str]] = {}
    for rel in sorted(ra | rb):
        if rel not in ra or rel not in rb:
            report[rel] = [f"only in {'after' if rel not in ra else 'before'}"]
            continue
        if counted is not None:
            counted.append(rel)
        try:
            diffs = compare_file(before / rel, after / rel)
        except (OSError, ValueError, KeyError, pickle.UnpicklingError) as exc:
            diffs = [f"cannot compare: {type(exc).__name__}: {exc}"]
        if diffs:
            report[rel] = diffs
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    counted: list[str] = []
    report = compare(args.before, args.after, counted=counted)
    for rel, diffs in report.items():
        print(f"{rel}:")  # noqa: T201
        for d in diffs[:20]:
            print(f"    {d}")  # noqa: T201
        if len(diffs) > 20:
            print(f"    ... and {len(diffs) - 20} more")  # noqa: T201
    print(f"{len(counted)} outputs compared: "  # noqa: T201
          + (f"{len(report)} differ" if report else "identical physics outputs"))
    return 1 if report else 0


if __name__ == "__main__":
    sys.exit(main())
