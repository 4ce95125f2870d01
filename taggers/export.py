"""Exchange formats of the tagging dataset. HDF5 in the ATLAS training-dataset-dumper layout.

HDF5 file (:func:`write_h5`):

* ``jets``: 1-D structured array, one row per jet: ``pt`` (GeV), ``eta``, ``phi``,
  ``HadronConeExclTruthLabelID``, ``eventNumber``, ``n_tracks``, ``weight``, then every other
  per-jet array of the dataset (``jet_index``, tagger outputs such as ``ip3d_log_pb_pu`` or
  ``sv1_mass``, ...) and the ``jet_features`` passed in;
* ``tracks``: 2-D structured array ``(n_jets, n_max)`` with the track fields of
  :class:`taggers.features.TaggingDataset` and the boolean ``valid``;
* file attributes: ``hepline_version``, ``config_hash``, ``created_utc``, ``n_max``,
  ``format`` and ``metadata`` / ``dataset_meta`` (JSON).

Written with h5py (gzip) through :func:`analysis.core.atomic.atomic_path`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np

import analysis
from analysis.core.atomic import atomic_path
from analysis.core.serialise import json_default
from taggers.features import TaggingDataset

H5_FORMAT = "hepline-ftag-h5/1"
#: dataset name -> HDF5 name of the jet fields that are renamed (training-dataset-dumper)
JET_NAMES = {"label": "HadronConeExclTruthLabelID", "event": "eventNumber"}
_JET_FIRST = ("pt", "eta", "phi", "label", "event", "n_tracks", "weight")


def _structured(columns: Mapping[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    dtype = np.dtype([(name, np.asarray(col).dtype) for name, col in columns.items()])
    out = np.empty(shape, dtype=dtype)
    for name, col in columns.items():
        out[name] = col
    return out


def write_h5(
    path: str | os.PathLike[str],
    ds: TaggingDataset,
    metadata: Mapping[str, Any] | None = None,
    *,
    jet_features: Mapping[str, np.ndarray] | None = None,
    compression: str | None = "gzip",
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Write ``ds`` (plus ``jet_features``, e.g. high-level tagger inputs) to ``path``.

    ``metadata`` (JSON-serialisable) is stored as the ``metadata`` attribute; its
    ``config_hash`` (else the dataset's) becomes the ``config_hash`` attribute. A
    ``provenance`` record (:mod:`analysis.core.provenance`) goes to ``attrs["provenance"]``.
    """
    meta = dict(metadata or {})
    n = len(ds)
    extra = dict(jet_features or {})
    for k, v in extra.items():
        if len(v) != n:
            raise ValueError(f"jet feature {k!r} has {len(v)} rows, the dataset {n}")
    ordered = [k for k in _JET_FIRST if k in ds.jets] + [k for k in ds.jets if k not in _JET_FIRST]
    cols = {JET_NAMES.get(k, k): ds.jets[k] for k in ordered}
    for k, v in extra.items():
        if k in cols:
            raise ValueError(f"jet feature {k!r} is already a dataset field")
        cols[k] = np.asarray(v)
    jets = _structured(cols, (n,))
    tracks = _structured(ds.tracks, (n, ds.n_max))
    opts: dict[str, Any] = {"compression": compression} if (compression and n) else {}
    with atomic_path(path, provenance=provenance) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("jets", data=jets, **opts)
        f.create_dataset("tracks", data=tracks, **opts)
        f.attrs["format"] = H5_FORMAT
        f.attrs["hepline_version"] = analysis.__version__
        f.attrs["config_hash"] = str(meta.get("config_hash", ds.meta.get("config_hash", "")))
        f.attrs["created_utc"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        f.attrs["n_max"] = ds.n_max
        f.attrs["metadata"] = json.dumps(meta, sort_keys=True, default=json_default)
        f.attrs["dataset_meta"] = json.dumps(ds.meta, sort_keys=True, default=json_default)


def read_h5(path: str | os.PathLike[str]) -> TaggingDataset:
    """Read a file of :func:`write_h5` back into a :class:`TaggingDataset`.

    ``meta`` is the stored dataset meta plus ``h5_metadata`` (the ``metadata`` attribute),
    ``hepline_version`` and ``created_utc`` of the file.
    """
    with h5py.File(path, "r") as f:
        for name in ("jets", "tracks"):
            if name not in f:
                raise ValueError(f"{path}: no '{name}' dataset (not a tagging HDF5 file)")
        jets_raw = f["jets"][()]
        tracks_raw = f["tracks"][()]
        attrs = dict(f.attrs)
    back = {v: k for k, v in JET_NAMES.items()}
    jets = {back.get(name, name): np.asarray(jets_raw[name]) for name in jets_raw.dtype.names}
    tracks = {name: np.asarray(tracks_raw[name]) for name in tracks_raw.dtype.names}
    if tracks_raw.ndim == 1:  # zero jets: h5py keeps (0, n_max); be safe anyway
        tracks = {k: v.reshape(0, int(attrs.get("n_max", 0))) for k, v in tracks.items()}
    meta = json.loads(attrs.get("dataset_meta", "{}"))
    meta["h5_metadata"] = json.loads(attrs.get("metadata", "{}"))
    for key in ("hepline_version", "created_utc", "config_hash"):
        if key in attrs:
            meta[f"h5_{key}"] = str(attrs[key])
    return TaggingDataset(jets, tracks, meta)
