"""Exchange formats of the tagging dataset: HDF5 in the ATLAS training-dataset-dumper layout.

HDF5 file (:func:`write_h5`), in the FTAG conventions of :mod:`taggers.ftag` (the dumper's
names, **MeV** for energies; the conversion to and from hepline's GeV happens here, at the
edge), so that ``ftag.hdf5.H5Reader`` and puma read it as they read dumper files:

* ``jets``: 1-D structured array, one row per jet: ``pt`` (MeV), ``eta``, ``phi``,
  ``HadronConeExclTruthLabelID``, ``eventNumber``, ``n_tracks``, ``weight`` (hepline's
  training weight, 1 unless reweighted), ``mcEventWeight``, then every other per-jet array of
  the dataset (``jet_index``, tagger outputs ``ip3d_p{b,c,u,tau}``, ``ip3d_log_pb_pu``,
  ``SV1_masssvx`` (MeV), ...) and the ``jet_features`` passed in;
* ``tracks``: 2-D structured array ``(n_jets, n_max)``: ``IP3D_signed_d0_significance``,
  ``IP3D_signed_z0_significance``, ``ptfrac``, ``dr``, ``d0``, ``z0SinTheta``,
  ``d0Uncertainty``, ``z0SinThetaUncertainty`` (mm), ``pt`` (MeV), ``eta``, ``phi``,
  ``ftagTruthOriginLabel``, the hit counts that encode the grade, ``qOverP`` (MeV⁻¹),
  ``deta``, ``dphi`` and the boolean ``valid``;
* file attributes: ``format`` (``hepline-ftag-h5/2``), ``units`` (JSON: the MeV columns),
  ``hepline_version``, ``config_hash``, ``created_utc``, ``n_max`` and ``metadata`` /
  ``dataset_meta`` (JSON).

:func:`read_h5` returns the dataset with identical arrays and dtypes (the MeV columns are
float64, so the conversion is exact), plus the IP2D/IP3D ``_ptau`` columns (0). Files of the
first layout (``hepline-ftag-h5/1``: GeV, hepline's track names) are still read.

Written with h5py (gzip) through :func:`analysis.core.atomic.atomic_path`.

The ``metadata`` attribute of the files of :mod:`taggers.prepare` holds the ``dataset``
provenance (:class:`DatasetProvenance`) that training copies into the model sidecars and that
evaluation and decoration check.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

import analysis
from analysis.core.atomic import atomic_path
from analysis.core.errors import InputFileError, ModelMismatchError
from analysis.core.serialise import json_default
from taggers.features import TaggingDataset
from taggers.ftag import JET_NAMES as FTAG_JET_NAMES
from taggers.ftag import from_file_arrays, to_file_arrays

__all__ = ["H5_FORMAT", "JET_NAMES", "UNITS", "DatasetProvenance", "read_h5", "read_split", "write_h5"]

H5_FORMAT = "hepline-ftag-h5/2"
_H5_FORMAT_V1 = "hepline-ftag-h5/1"
#: dataset name -> HDF5 name of the renamed jet fields (training-dataset-dumper; taggers.ftag)
JET_NAMES = dict(FTAG_JET_NAMES)
#: the units of the file's columns that differ from hepline's (the ``units`` attribute)
UNITS = {"jets/pt": "MeV", "jets/SV1_masssvx": "MeV", "tracks/pt": "MeV", "tracks/qOverP": "1/MeV",
         "lengths": "mm"}
_JET_FIRST = ("pt", "eta", "phi", "label", "event", "n_tracks", "weight", "mc_event_weight")


def write_h5(
    path: str | os.PathLike[str],
    ds: TaggingDataset,
    metadata: Mapping[str, Any] | None = None,
    *,
    jet_features: Mapping[str, np.ndarray] | None = None,
    compression: str | None = "gzip",
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Write ``ds`` (plus ``jet_features``, e.g. high-level tagger inputs) to ``path``, atomically,
    in the FTAG layout (names and MeV: :mod:`taggers.ftag`).

    Args:
        path: the HDF5 file.
        ds: the jets and their tracks (GeV).
        metadata: JSON-serialisable, stored as the ``metadata`` attribute; its ``config_hash``
            (else the dataset's) becomes the ``config_hash`` attribute.
        jet_features: extra per-jet columns (not already dataset fields).
        compression: h5py compression of the datasets (``None``: none).
        provenance: a run record (:mod:`analysis.core.provenance`), stored in the file.

    Raises:
        ValueError: a jet feature with another number of rows, or one that is a dataset field;
            a track grade outside 0–3 (the grade is stored as hit counts).
    """
    meta = dict(metadata or {})
    n = len(ds)
    extra = dict(jet_features or {})
    for k, v in extra.items():
        if len(v) != n:
            raise ValueError(f"jet feature {k!r} has {len(v)} rows, the dataset {n}")
        if k in ds.jets:
            raise ValueError(f"jet feature {k!r} is already a dataset field")
    full = ds.with_jet_fields({k: np.asarray(v) for k, v in extra.items()}) if extra else ds
    jets, tracks = to_file_arrays(full, _JET_FIRST)
    opts: dict[str, Any] = {"compression": compression} if (compression and n) else {}
    with atomic_path(path, provenance=provenance) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("jets", data=jets, **opts)
        f.create_dataset("tracks", data=tracks, **opts)
        f.attrs["format"] = H5_FORMAT
        f.attrs["units"] = json.dumps(UNITS, sort_keys=True)
        f.attrs["hepline_version"] = analysis.__version__
        f.attrs["config_hash"] = str(meta.get("config_hash", ds.meta.get("config_hash", "")))
        f.attrs["created_utc"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        f.attrs["n_max"] = ds.n_max
        f.attrs["metadata"] = json.dumps(meta, sort_keys=True, default=json_default)
        f.attrs["dataset_meta"] = json.dumps(ds.meta, sort_keys=True, default=json_default)


def _read_v1(jets_raw: np.ndarray, tracks_raw: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The first layout (GeV, hepline's track names; only ``label``/``event`` renamed)."""
    back = {"HadronConeExclTruthLabelID": "label", "eventNumber": "event"}
    jets = {back.get(name, name): np.asarray(jets_raw[name]) for name in jets_raw.dtype.names or ()}
    tracks = {name: np.asarray(tracks_raw[name]) for name in tracks_raw.dtype.names or ()}
    return jets, tracks


def read_h5(path: str | os.PathLike[str]) -> TaggingDataset:
    """Read a file of :func:`write_h5` back into a :class:`TaggingDataset` (GeV, hepline names).

    Returns:
        The dataset; ``meta`` is the stored dataset meta plus ``h5_metadata`` (the
        ``metadata`` attribute), ``h5_hepline_version``, ``h5_created_utc`` and
        ``h5_config_hash`` of the file.

    Raises:
        InputFileError: the file lacks the ``jets`` or ``tracks`` dataset, or is a dumper file
            not written by hepline (read those with :func:`taggers.ftag.read_dumper`, or
            ``taggers prepare``).
    """
    with h5py.File(path, "r") as f:
        for name in ("jets", "tracks"):
            if name not in f:
                raise InputFileError(path, f"no '{name}' dataset (not a tagging HDF5 file)")
        jets_raw = f["jets"][()]
        tracks_raw = f["tracks"][()]
        attrs = dict(f.attrs)
    fmt = str(attrs.get("format", ""))
    if fmt == _H5_FORMAT_V1:
        jets, tracks = _read_v1(jets_raw, tracks_raw)
    elif fmt == H5_FORMAT:
        if tracks_raw.dtype.names is None or "valid" not in tracks_raw.dtype.names:
            raise InputFileError(path, "tracks/valid is missing (not a tagging HDF5 file)")
        back = from_file_arrays(jets_raw, tracks_raw)
        jets, tracks = back.jets, back.tracks
    else:
        raise InputFileError(path, f"format attribute {fmt or 'missing'!r} is not {H5_FORMAT!r}: not written by "
                                   "hepline (read dumper files with taggers prepare)")
    if tracks_raw.ndim == 1:  # zero jets: h5py keeps (0, n_max); be safe anyway
        tracks = {k: v.reshape(0, int(attrs.get("n_max", 0))) for k, v in tracks.items()}
    meta = json.loads(attrs.get("dataset_meta", "{}"))
    meta["h5_metadata"] = json.loads(attrs.get("metadata", "{}"))
    for key in ("hepline_version", "created_utc", "config_hash"):
        if key in attrs:
            meta[f"h5_{key}"] = str(attrs[key])
    return TaggingDataset(jets, tracks, meta)


def read_split(path: str | os.PathLike[str]) -> TaggingDataset:
    """:func:`read_h5` with every array made contiguous (the HDF5 structured arrays' fields
    are strided views, which torch cannot wrap)."""
    ds = read_h5(path)
    return TaggingDataset(
        {k: np.ascontiguousarray(v) for k, v in ds.jets.items()},
        {k: np.ascontiguousarray(v) for k, v in ds.tracks.items()},
        ds.meta,
    )


@dataclass(frozen=True)
class DatasetProvenance:
    """What a prepared dataset was built from; every HDF5 file of one ``taggers.prepare`` run
    holds the same record, and the model sidecars copy it.

    Attributes:
        dataset_id: hash of the feature configuration, split, reweighting, IP templates and
            jets (event, pT, label, weight of every split).
        features_hash: hash of ``taggers.jets``, ``tracks`` and ``sv1`` (the input columns).
        ipxd_sha256: SHA-256 of the IP2D/IP3D template files.
        taggers_config_hash: hash of the whole ``taggers`` section.
    """

    dataset_id: str
    features_hash: str
    ipxd_sha256: Mapping[str, str] = field(default_factory=dict)
    taggers_config_hash: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (HDF5 ``metadata["dataset"]``, ``prepare.json``, model sidecars)."""
        out: dict[str, Any] = {"dataset_id": self.dataset_id, "features_hash": self.features_hash,
                               "ipxd_sha256": dict(self.ipxd_sha256)}
        if self.taggers_config_hash is not None:
            out["taggers_config_hash"] = self.taggers_config_hash
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "<dataset>") -> DatasetProvenance:
        """The record of :meth:`to_dict` (``source`` names the file in errors)."""
        try:
            return cls(dataset_id=str(d["dataset_id"]), features_hash=str(d["features_hash"]),
                       ipxd_sha256=dict(d.get("ipxd_sha256") or {}),
                       taggers_config_hash=d.get("taggers_config_hash"))
        except (KeyError, TypeError) as exc:
            raise ModelMismatchError(f"{source}: not a dataset provenance record (missing {exc})") from exc

    @classmethod
    def of(cls, ds: TaggingDataset, path: str | os.PathLike[str]) -> DatasetProvenance:
        """The record in the metadata of a prepared HDF5 file read by :func:`read_split`.

        Raises:
            ModelMismatchError: the file was not written by :mod:`taggers.prepare`.
        """
        prov = (ds.meta.get("h5_metadata") or {}).get("dataset")
        if not prov:
            raise ModelMismatchError(
                f"{path}: no 'dataset' provenance in the HDF5 metadata (not written by taggers.prepare)"
            )
        return cls.from_dict(prov, source=os.fspath(path))
