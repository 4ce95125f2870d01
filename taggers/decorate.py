"""Stage 4 of the tagger chain: b-tagging discriminants added to hepline ntuples.

The decorated ntuple is a copy of the input (every ``Events`` branch with its type and
values, the ``Runs`` tree, the ``hepline_metadata`` JSON) plus, per jet:

* ``Jet_btag_<tagger>`` (float32) for ip2d, ip3d, mv2, rnnip, dl1: the discriminant of
  :mod:`taggers.models` (larger = more b-like; the working-point file's cuts apply as
  ``Jet_btag_<tagger> > cut``);
* ``Jet_rnnip_pb``, ``Jet_rnnip_pc``, ``Jet_rnnip_pu``, ``Jet_rnnip_ptau`` (float32).

Jets outside the tagging acceptance (``taggers.jets``: pT > 20 GeV, |η| < 2.5) get the
sentinel ``taggers.decoration.sentinel`` (−99) in all these branches; it lies below every
discriminant (a computed value at or below it raises). Jets inside the acceptance always get
finite values, also without tracks (IP2D/IP3D D = ln 1 = 0 for f_c-weighted equal
likelihoods, RNNIP's learned no-track state, SV1 defaults). NaN/inf in the jet or track
inputs raise :class:`taggers.features.NonFiniteInputError` naming the file, the branch and the
event: nothing is decorated silently with garbage.

The metadata gains ``taggers``: the model files and their SHA-256, the prepared dataset id,
f_c per tagger, the sentinel, the branches added; the file gets its own run provenance
(``hepline_provenance``, :mod:`analysis.core.provenance`; inputs: the source ntuple and the models). The file is written atomically, reading,
decorating and writing ``taggers.decoration.chunk_events`` events at a time.

In memory (notebooks): :func:`decorate_events` returns the new branches for NanoEvents or
``read_arrays(path, how="zip")`` records.

Command line::

    python -m taggers.decorate --config workflows/config/default.yaml \\
        --models results/taggers/models --output results/decorated/yy/yy_0.root \\
        results/samples/yy/yy_0.root
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import awkward as ak
import numpy as np
import uproot

import analysis
from analysis.core.atomic import atomic_path
from analysis.core.serialise import json_default
from analysis.core.config import load_raw_config
from analysis.core.format import HEPLINE_METADATA_KEY
from analysis.generation.writer import (
    branch_types,
    collection_groups,
    compression_from_config,
    event_block,
)
from analysis.core.provenance import provenance_record, write_root_provenance
from taggers.features import build_dataset
from taggers.models import RNNIP_COLUMNS, TAGGERS, TaggerModels, load_models

log = logging.getLogger(__name__)

#: the per-jet branches added (without the ``Jet_`` prefix)
DECORATION_FIELDS: tuple[str, ...] = (
    *(f"btag_{t}" for t in TAGGERS),
    *(c for c in RNNIP_COLUMNS),
)


def _flat_np(a: Any) -> np.ndarray:
    return np.asarray(ak.to_numpy(ak.flatten(a, axis=None)))


def decorate_events(
    events: Any,
    models: TaggerModels,
    *,
    detector: Mapping[str, Any] | None = None,
    source: str = "<memory>",
) -> dict[str, ak.Array]:
    """The decoration branches of ``events``: ``{"Jet_btag_dl1": jagged float32, ...,
    "Jet_rnnip_pb": ...}``, one entry per jet of ``events["Jet"]`` (aligned with it).

    ``events``: NanoEvents, ``read_arrays(path, how="zip")`` records or a mapping with
    ``Jet``, ``Track`` and ``event``. ``detector``: the generation's detector parameters
    (file metadata) for SV1; without them the detector defaults are used (with a warning).
    """
    cfg = models.cfg
    sentinel = float(cfg["decoration"]["sentinel"])
    jets = events["Jet"]
    counts = np.asarray(ak.to_numpy(ak.num(jets, axis=1))).astype(np.int64)
    pt = _flat_np(jets["pt"])
    eta = _flat_np(jets["eta"])
    n_flat = pt.size
    sel = (pt > cfg["jets"]["pt_min_gev"]) & (np.abs(eta) < cfg["jets"]["abs_eta_max"])
    values = {f: np.full(n_flat, sentinel, dtype=np.float32) for f in DECORATION_FIELDS}
    if not sel.any():  # no taggable jet (or no event at all): nothing to run
        return {f"Jet_{f}": ak.unflatten(v, counts) for f, v in values.items()}
    ds = build_dataset(events, cfg, source=source, detector=detector)
    local = np.arange(n_flat) - np.repeat(np.cumsum(counts) - counts, counts)
    if int(sel.sum()) != len(ds) or not np.array_equal(local[sel], ds.jets["jet_index"]):
        raise RuntimeError(f"{source}: decorated jets do not line up with the tagging dataset")
    if len(ds):
        pred = models.predict(ds)
        for t, d in pred["discriminants"].items():
            if np.any(d <= sentinel):
                raise ValueError(
                    f"{source}: a {t} discriminant ({float(d.min()):.4g}) is not above the "
                    f"sentinel {sentinel}; choose a lower taggers.decoration.sentinel"
                )
            values[f"btag_{t}"][sel] = d.astype(np.float32)
        for i, c in enumerate(RNNIP_COLUMNS):
            values[c][sel] = pred["rnnip"][:, i]
    return {f"Jet_{f}": ak.unflatten(v, counts) for f, v in values.items()}


# --------------------------------------------------------------------------- files


_group_branches = collection_groups
_block = event_block
_types = branch_types


def decorate_file(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    models: TaggerModels,
    config: Mapping[str, Any],
) -> dict[str, Any]:
    """Write the decorated copy of ``input_path`` to ``output_path`` (atomically); returns a
    summary (events, jets, taggable jets, seconds)."""
    t0 = time.perf_counter()
    cfg = models.cfg
    chunk = int(cfg["decoration"]["chunk_events"])
    comp = compression_from_config((config.get("generation") or {}).get("compression") or {})
    src = str(input_path)
    n_jets = n_tag = 0
    with uproot.open(src) as fin:
        if "Events" not in fin or HEPLINE_METADATA_KEY not in fin:
            raise ValueError(
                f"{src}: not a hepline ntuple (needs Events and {HEPLINE_METADATA_KEY})"
            )
        meta = json.loads(str(fin[HEPLINE_METADATA_KEY]))
        tree = fin["Events"]
        groups = _group_branches(tree)
        if "Jet" not in dict(groups) or "Track" not in dict(groups):
            raise ValueError(f"{src}: no Jet/Track collections to tag")
        runs = fin["Runs"].arrays(library="np") if "Runs" in fin else None
        runs_types = (
            None if runs is None else {k: v.dtype.newbyteorder("=") for k, v in runs.items()}
        )
        n_entries = int(tree.num_entries)
        detector = meta.get("detector")
        with atomic_path(output_path) as tmp, uproot.recreate(tmp, compression=comp) as fout:
            out_tree = None
            for start in range(0, max(n_entries, 1), chunk):
                stop = min(start + chunk, n_entries)
                arrays = tree.arrays(entry_start=start, entry_stop=stop)
                block = _block(arrays, groups)
                new = decorate_events(block, models, detector=detector, source=src)
                jets = block["Jet"]
                for name, v in new.items():
                    jets = ak.with_field(jets, v, name[len("Jet_") :])
                block["Jet"] = jets
                n_jets += int(ak.sum(ak.num(jets, axis=1)))
                n_tag += int(np.sum(_flat_np(jets["btag_dl1"]) > cfg["decoration"]["sentinel"]))
                if out_tree is None:
                    out_tree = fout.mktree("Events", _types(block))
                if stop > start:
                    out_tree.extend(block)
            if runs is not None:
                rt = fout.mktree("Runs", runs_types)
                rt.extend({k: np.asarray(v, dtype=runs_types[k]) for k, v in runs.items()})
            meta["taggers"] = {
                **models.describe(),
                "hepline_version": analysis.__version__,
                "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "input": src,
                "sentinel": float(cfg["decoration"]["sentinel"]),
                "branches": [f"Jet_{f}" for f in DECORATION_FIELDS],
                "acceptance": dict(cfg["jets"]),
                "rnnip_backend": models.rnnip_backend,
                "cut_definition": "b-tagged at a working point when Jet_btag_<tagger> > cut",
            }
            fout[HEPLINE_METADATA_KEY] = json.dumps(meta, sort_keys=True, default=json_default)
            write_root_provenance(fout, provenance_record(
                stage="taggers.decorate", config=config,
                inputs=[src, *(str(v["path"]) for v in (models.provenance.get("files") or {}).values())],
                extra={"threads": models.threads},
            ))
    wall = time.perf_counter() - t0
    summary = {
        "input": src,
        "output": str(output_path),
        "events": n_entries,
        "jets": n_jets,
        "taggable_jets": n_tag,
        "wall_s": wall,
        "events_per_s": n_entries / wall if wall > 0 else None,
    }
    log.info(
        "decorated %s: %d events, %d of %d jets tagged, %.1f s", src, n_entries, n_tag, n_jets, wall
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help="hepline YAML config")
    parser.add_argument("--models", required=True, help="model directory of taggers.train")
    parser.add_argument(
        "--ipxd", default=None, help="IP2D/IP3D templates (default <models>/../ipxd)"
    )
    parser.add_argument("--output", required=True, help="decorated ntuple to write")
    parser.add_argument(
        "--threads", "--workers", dest="threads", type=int, default=None,
        help="default: taggers.threads (1)",
    )
    parser.add_argument("input", help="hepline ntuple (one shard)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s"
    )
    cfg = load_raw_config(args.config)
    models = load_models(args.models, cfg, ipxd_dir=args.ipxd, threads=args.threads)
    s = decorate_file(args.input, args.output, models, cfg)
    print(
        f"{s['output']}: {s['events']} events, {s['taggable_jets']} of {s['jets']} jets tagged, "
        f"{s['wall_s']:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
