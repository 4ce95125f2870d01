"""Per-jet track sequences for flavour tagging: selection, lifetime signs, sorting, masks.

Conventions (physics-reference §2-3, docs/taggers-inputs.md):

* ``d0`` is the measured transverse impact parameter w.r.t. the reconstructed PV (mm, ATLAS
  sign), ``z0`` is ``z_perigee - PV_z`` (mm); the tagger uses ``z0 sinθ`` and its error
  ``z0Err · sinθ`` (``Track_z0Err`` is the error of ``z0`` itself).
* lifetime signs w.r.t. the jet axis: ``sign(d0) = sign(sin(φ_jet − φ_trk) · d0)`` and
  ``sign(z0) = sign((η_jet − η_trk) · z0 sinθ)``; a product of exactly 0 counts as positive.
  ``sd0 = sign(d0) · |d0| / σ(d0)`` and ``sz0 = sign(z0) · |z0 sinθ| / σ(z0 sinθ)``.
* per jet the selected tracks are sorted by ``|sd0|`` (largest first, ties in file order)
  and the first ``n_max`` are kept; the rest of the row is padding with ``valid = False``,
  floats 0 and ``grade = origin = charge = -1``. A jet without selected tracks is an
  all-padding row with ``n_tracks = 0``: never NaN.
* a non-finite jet or track input (NaN/inf), or a non-positive track error, raises
  :class:`NonFiniteInputError` naming the branch; nothing is dropped silently.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np

from analysis.core.checks import check_finite
from analysis.core.config import config_hash
from analysis.core.config.taggers import TaggersConfig
from analysis.core.errors import InputError, InputFileError, NonFiniteInputError

log = logging.getLogger(__name__)

__all__ = [
    "FLAVOUR_NAMES",
    "JET_FIELDS",
    "PT_MEDIAN_RANGE_GEV",
    "TRACK_FIELDS",
    "TaggingDataset",
    "build_dataset",
    "check_pt_scale",
    "concatenate",
    "delta_phi",
    "lifetime_signs",
    "load_dataset",
    "pad_sequences",
    "track_features",
]

#: HadronConeExclTruthLabelID values and their names
FLAVOUR_NAMES: dict[int, str] = {5: "b", 4: "c", 0: "light", 15: "tau"}

JET_FIELDS = ("pt", "eta", "phi", "label", "event", "n_tracks", "weight")
TRACK_FIELDS = (
    "sd0", "sz0", "pt_frac", "dr", "d0", "z0sintheta", "d0_err", "z0sintheta_err",
    "pt", "eta", "phi", "grade", "origin", "charge", "valid",
)  # fmt: skip

#: a median jet pT (GeV) outside this range means the input's unit was misread
PT_MEDIAN_RANGE_GEV = (1.0, 1.0e4)

_INT_TRACK_FIELDS = {"grade": np.int8, "origin": np.int8, "charge": np.int8}
_PAD_INT = -1

_JET_BRANCHES = ("pt", "eta", "phi", "hadronConeExclTruthLabelID")
_TRACK_BRANCHES = (
    "pt", "eta", "phi", "charge", "d0", "z0", "d0Err", "z0Err", "grade", "truthOrigin", "jetIdx",
)  # fmt: skip
_FINITE_TRACK_BRANCHES = ("pt", "eta", "phi", "d0", "z0", "d0Err", "z0Err")


@dataclass
class TaggingDataset:
    """Jets and their padded track sequences, the in-memory contract of all taggers.

    ``jets``: 1-D arrays, one row per jet: ``pt`` (GeV), ``eta``, ``phi``, ``label``
    (HadronConeExclTruthLabelID, int32), ``event`` (uint64), ``n_tracks`` (valid tracks,
    int32), ``weight`` (float32, 1 unless reweighted), plus ``jet_index`` (position in the
    event's ``Jet`` collection), ``n_tracks_selected`` (before the ``n_max`` cut),
    ``mc_event_weight`` (float32: the event's ``genWeight``, 1 when the input has none;
    ``mcEventWeight`` in the FTAG files) and any tagger outputs added later (``ip3d_pb``,
    ``sv1_mass``, ...).

    ``tracks``: 2-D arrays ``(n_jets, n_max)``: ``sd0``, ``sz0``, ``pt_frac``, ``dr``, ``d0``,
    ``z0sintheta``, ``d0_err``, ``z0sintheta_err`` (mm), ``pt`` (GeV), ``eta``, ``phi``
    (float32); ``grade``, ``origin``, ``charge`` (int8, −1 when padded); ``valid`` (bool).

    ``meta``: provenance (config hash, sources, detector parameters when known).
    """

    jets: dict[str, np.ndarray]
    tracks: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = {k: len(v) for k, v in self.jets.items()}
        n.update({f"tracks.{k}": len(v) for k, v in self.tracks.items()})
        if len(set(n.values())) > 1:
            raise ValueError(f"TaggingDataset arrays differ in length: {n}")
        shapes = {v.shape[1:] for v in self.tracks.values()}
        if len(shapes) > 1:
            raise ValueError(f"track arrays differ in shape: {shapes}")

    def __len__(self) -> int:
        return len(self.jets["pt"])

    @property
    def n_max(self) -> int:
        """Length of the track sequences."""
        return int(self.tracks["valid"].shape[1])

    def subset(self, mask_or_index: np.ndarray | slice) -> TaggingDataset:
        """Jets selected by a boolean mask, an index array or a slice (arrays are copied)."""
        sel = mask_or_index
        if isinstance(sel, np.ndarray) and sel.dtype == bool and len(sel) != len(self):
            raise ValueError(f"mask of length {len(sel)} for a dataset of {len(self)} jets")
        return TaggingDataset(
            jets={k: np.array(v[sel], copy=True) for k, v in self.jets.items()},
            tracks={k: np.array(v[sel], copy=True) for k, v in self.tracks.items()},
            meta=dict(self.meta),
        )

    def with_jet_fields(self, fields: Mapping[str, np.ndarray]) -> TaggingDataset:
        """A copy with extra (or replaced) per-jet arrays, e.g. tagger outputs."""
        for k, v in fields.items():
            if len(v) != len(self):
                raise ValueError(f"jet field {k!r} has {len(v)} rows, dataset has {len(self)}")
        return TaggingDataset({**self.jets, **dict(fields)}, dict(self.tracks), dict(self.meta))


def concatenate(parts: Sequence[TaggingDataset]) -> TaggingDataset:
    """Concatenate datasets with the same fields and ``n_max``.

    The meta is the first part's, with the sources of all parts.
    """
    if not parts:
        raise ValueError("nothing to concatenate")
    keys_j, keys_t = set(parts[0].jets), set(parts[0].tracks)
    for p in parts[1:]:
        if set(p.jets) != keys_j or set(p.tracks) != keys_t or p.n_max != parts[0].n_max:
            raise ValueError("datasets to concatenate differ in fields or n_max")
    meta = dict(parts[0].meta)
    meta["sources"] = [s for p in parts for s in p.meta.get("sources", [])]
    return TaggingDataset(
        {k: np.concatenate([p.jets[k] for p in parts]) for k in parts[0].jets},
        {k: np.concatenate([p.tracks[k] for p in parts]) for k in parts[0].tracks},
        meta,
    )


def check_pt_scale(pt_gev: np.ndarray, *, source: str, variable: str, file_unit: str = "GeV") -> None:
    """Refuse jet pT on the wrong scale: MeV and GeV mixed up.

    Args:
        pt_gev: the jets' pT in GeV, as read (and converted from ``file_unit``).
        source: the file (named in the error).
        variable: the branch or dataset field (named in the error).
        file_unit: the unit the file is read in (``GeV``: hepline ntuples; ``MeV``: FTAG
            files, converted).

    Raises:
        InputFileError: the median jet pT is below 1 GeV (e.g. GeV read as MeV) or above
            10⁴ GeV (e.g. MeV read as GeV); one line naming the file and the variable.
    """
    pt = np.asarray(pt_gev, dtype=np.float64)
    pt = pt[np.isfinite(pt)]
    if pt.size == 0:
        return
    med = float(np.median(pt))
    lo, hi = PT_MEDIAN_RANGE_GEV
    conv = " after the MeV → GeV conversion" if file_unit == "MeV" else ""
    if med < lo:
        why = "GeV read as MeV (FTAG files hold MeV)" if file_unit == "MeV" else f"the file is not in {file_unit}"
        raise InputFileError(source, f"{variable}: median jet pT {med:.4g} GeV{conv}, below {lo:g} GeV: {why}")
    if med > hi:
        why = "MeV read as GeV (hepline ntuples hold GeV)" if file_unit == "GeV" else f"the file is not in {file_unit}"
        raise InputFileError(source, f"{variable}: median jet pT {med:.4g} GeV{conv}, above {hi:g} GeV: {why}")


# ---------------------------------------------------------------------------------------
# Pure feature functions (flat numpy arrays, one entry per track)
# ---------------------------------------------------------------------------------------
def delta_phi(phi1: np.ndarray, phi2: np.ndarray) -> np.ndarray:
    """φ1 − φ2 wrapped into [−π, π)."""
    return (np.asarray(phi1) - np.asarray(phi2) + np.pi) % (2 * np.pi) - np.pi


def lifetime_signs(
    jet_eta: np.ndarray,
    jet_phi: np.ndarray,
    trk_eta: np.ndarray,
    trk_phi: np.ndarray,
    d0: np.ndarray,
    z0sintheta: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Lifetime signs (+1/−1) of d0 and z0 sinθ w.r.t. the jet axis (0 products count as +1)."""
    s_d0 = np.where(np.sin(jet_phi - trk_phi) * d0 >= 0, 1.0, -1.0)
    s_z0 = np.where((jet_eta - trk_eta) * z0sintheta >= 0, 1.0, -1.0)
    return s_d0, s_z0


def track_features(
    jet_pt: np.ndarray,
    jet_eta: np.ndarray,
    jet_phi: np.ndarray,
    trk_pt: np.ndarray,
    trk_eta: np.ndarray,
    trk_phi: np.ndarray,
    d0: np.ndarray,
    z0: np.ndarray,
    d0_err: np.ndarray,
    z0_err: np.ndarray,
) -> dict[str, np.ndarray]:
    """Tagging features of tracks, each given with the kinematics of its jet (float64).

    ``d0``, ``z0``, ``d0_err``, ``z0_err`` in mm (``z0_err`` is σ(z0), not σ(z0 sinθ)).
    Returns ``sd0``, ``sz0``, ``pt_frac``, ``dr``, ``z0sintheta``, ``z0sintheta_err``.
    """
    sin_theta = 1.0 / np.cosh(trk_eta)
    z0s = z0 * sin_theta
    z0s_err = z0_err * sin_theta
    s_d0, s_z0 = lifetime_signs(jet_eta, jet_phi, trk_eta, trk_phi, d0, z0s)
    return {
        "sd0": s_d0 * np.abs(d0) / d0_err,
        "sz0": s_z0 * np.abs(z0s) / z0s_err,
        "pt_frac": trk_pt / jet_pt,
        "dr": np.hypot(jet_eta - trk_eta, delta_phi(jet_phi, trk_phi)),
        "z0sintheta": z0s,
        "z0sintheta_err": z0s_err,
    }


def pad_sequences(
    jet_of_track: np.ndarray, sort_key: np.ndarray, n_jets: int, n_max: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Slots of flat tracks in ``(n_jets, n_max)`` sequences, sorted by ``sort_key`` descending.

    Returns ``(track, row, col, n_selected)``: the indices of the kept tracks, their jet row
    and position in the sequence, and the number of tracks per jet before the ``n_max`` cut.
    Ties keep the input order.
    """
    order = np.lexsort((-sort_key, jet_of_track))
    jets_sorted = jet_of_track[order]
    n_selected = np.bincount(jet_of_track, minlength=n_jets).astype(np.int32)
    first = np.concatenate([[0], np.cumsum(n_selected)[:-1]])
    rank = np.arange(order.size) - first[jets_sorted]
    keep = rank < n_max
    return order[keep], jets_sorted[keep], rank[keep], n_selected


# ---------------------------------------------------------------------------------------
# Events -> TaggingDataset
# ---------------------------------------------------------------------------------------
def _flat(array: Any) -> np.ndarray:
    return np.asarray(ak.to_numpy(ak.flatten(array, axis=None)))


def _field(coll: Any, name: str, source: str, coll_name: str) -> Any:
    try:
        return coll[name]
    except Exception as exc:  # awkward raises several types for a missing field
        raise InputFileError(source, f"no {coll_name}_{name} branch (needed by the taggers)") from exc


def build_dataset(
    events: Any,
    cfg: TaggersConfig,
    *,
    source: str = "<memory>",
    detector: Mapping[str, Any] | None = None,
) -> TaggingDataset:
    """Select the jets and tracks of ``events`` and build the padded tagging dataset.

    Args:
        events: coffea NanoEvents or an awkward array with ``Jet`` and ``Track`` records and
            an ``event`` field (e.g. ``read_arrays(path, how="zip")``); tracks are matched to
            jets through ``Track.jetIdx`` (local index). Momenta in GeV, impact parameters
            and their errors in mm.
        cfg: the ``taggers`` section (``jets``, ``tracks``: acceptance, track selection, n_max).
        source: names the input in errors and in ``meta["sources"]``.
        detector: the generation's detector parameters (file metadata: magnetic field in T,
            PV resolution in mm), stored in ``meta["detector"]`` for the vertexing.

    Returns:
        The :class:`TaggingDataset` (jets in the acceptance, their selected tracks).

    Raises:
        NonFiniteInputError: NaN/inf in a jet or track input, or a non-positive track error
            (naming the source, the branch and the first event).
        InputFileError: a branch the taggers need is missing; the median jet pT is outside
            1–10⁴ GeV (:func:`check_pt_scale`: MeV read as GeV).
    """
    jcfg, tcfg = cfg.jets, cfg.tracks
    n_max = int(tcfg.n_max)

    jets_in, tracks_in = events["Jet"], events["Track"]
    event_number = np.asarray(ak.to_numpy(events["event"])).astype(np.uint64)
    has_weight = "genWeight" in (events if isinstance(events, Mapping) else getattr(events, "fields", ()))
    gen_weight = (np.asarray(ak.to_numpy(events["genWeight"])).astype(np.float32)
                  if has_weight else np.ones(len(event_number), dtype=np.float32))
    n_jets_evt = np.asarray(ak.to_numpy(ak.num(jets_in, axis=1))).astype(np.int64)
    n_trk_evt = np.asarray(ak.to_numpy(ak.num(tracks_in, axis=1))).astype(np.int64)
    jet_evt = np.repeat(np.arange(len(n_jets_evt)), n_jets_evt)
    jet_off = np.concatenate([[0], np.cumsum(n_jets_evt)[:-1]]).astype(np.int64)

    j = {b: _flat(_field(jets_in, b, source, "Jet")) for b in _JET_BRANCHES}
    for b in ("pt", "eta", "phi"):
        check_finite(j[b], f"Jet_{b}", source=source, entry=event_number[jet_evt], entry_name="event")
    check_pt_scale(j["pt"], source=source, variable="Jet_pt")
    jet_sel = (j["pt"] > jcfg.pt_min_gev) & (np.abs(j["eta"]) < jcfg.abs_eta_max)
    new_index = np.full(jet_sel.size, -1, dtype=np.int64)
    new_index[jet_sel] = np.arange(int(jet_sel.sum()))
    n_jets = int(jet_sel.sum())

    t = {b: _flat(_field(tracks_in, b, source, "Track")) for b in _TRACK_BRANCHES}
    trk_evt = np.repeat(np.arange(len(n_trk_evt)), n_trk_evt)
    local = t["jetIdx"].astype(np.int64)
    assoc = (local >= 0) & (local < n_jets_evt[trk_evt])
    jet_of = np.full(local.size, -1, dtype=np.int64)
    jet_of[assoc] = new_index[jet_off[trk_evt[assoc]] + local[assoc]]
    use = np.flatnonzero(jet_of >= 0)  # tracks of selected jets
    t = {k: v[use] for k, v in t.items()}
    jet_of, trk_evt = jet_of[use], trk_evt[use]
    for b in _FINITE_TRACK_BRANCHES:
        check_finite(t[b], f"Track_{b}", source=source, entry=event_number[trk_evt], entry_name="event")
    for b in ("d0Err", "z0Err"):
        bad = t[b] <= 0
        if bad.any():
            raise NonFiniteInputError(
                f"{source}: Track_{b} holds {int(bad.sum())} non-positive value(s), the first in "
                f"event {int(event_number[trk_evt[np.argmax(bad)]])}"
            )

    sj = {
        k: v[jet_sel].astype(np.float64) for k, v in j.items() if k != "hadronConeExclTruthLabelID"
    }
    f64 = {k: t[k].astype(np.float64) for k in ("pt", "eta", "phi", "d0", "z0", "d0Err", "z0Err")}
    feats = track_features(
        sj["pt"][jet_of],
        sj["eta"][jet_of],
        sj["phi"][jet_of],
        f64["pt"],
        f64["eta"],
        f64["phi"],
        f64["d0"],
        f64["z0"],
        f64["d0Err"],
        f64["z0Err"],
    )
    grades = np.asarray(tcfg.grades, dtype=np.int64)
    sel = (
        (f64["pt"] > tcfg.pt_min_gev)
        & (np.abs(f64["d0"]) < tcfg.abs_d0_max_mm)
        & (np.abs(feats["z0sintheta"]) < tcfg.abs_z0sintheta_max_mm)
        & np.isin(t["grade"].astype(np.int64), grades)
    )
    idx, row, col, n_selected = pad_sequences(jet_of[sel], np.abs(feats["sd0"][sel]), n_jets, n_max)
    kept = np.flatnonzero(sel)[idx]

    flat_values = {
        **{k: feats[k] for k in ("sd0", "sz0", "pt_frac", "dr", "z0sintheta", "z0sintheta_err")},
        "d0": f64["d0"],
        "d0_err": f64["d0Err"],
        "pt": f64["pt"],
        "eta": f64["eta"],
        "phi": f64["phi"],
        "grade": t["grade"],
        "origin": t["truthOrigin"],
        "charge": t["charge"],
    }
    tracks: dict[str, np.ndarray] = {}
    for name in TRACK_FIELDS:
        if name == "valid":
            arr = np.zeros((n_jets, n_max), dtype=bool)
            arr[row, col] = True
        elif name in _INT_TRACK_FIELDS:
            arr = np.full((n_jets, n_max), _PAD_INT, dtype=_INT_TRACK_FIELDS[name])
            arr[row, col] = flat_values[name][kept]
        else:
            arr = np.zeros((n_jets, n_max), dtype=np.float32)
            arr[row, col] = flat_values[name][kept]
        tracks[name] = arr

    jet_local = (np.arange(jet_sel.size) - jet_off[jet_evt])[jet_sel]
    jets = {
        "pt": j["pt"][jet_sel].astype(np.float32),
        "eta": j["eta"][jet_sel].astype(np.float32),
        "phi": j["phi"][jet_sel].astype(np.float32),
        "label": j["hadronConeExclTruthLabelID"][jet_sel].astype(np.int32),
        "event": event_number[jet_evt[jet_sel]],
        "n_tracks": tracks["valid"].sum(axis=1).astype(np.int32),
        "weight": np.ones(n_jets, dtype=np.float32),
        "jet_index": jet_local.astype(np.int32),
        "n_tracks_selected": n_selected,
        "mc_event_weight": gen_weight[jet_evt[jet_sel]],
    }
    meta: dict[str, Any] = {"config_hash": config_hash(cfg), "n_max": n_max, "sources": [source]}
    if detector is not None:
        meta["detector"] = dict(detector)
    log.info(
        "%s: %d jets (of %d), %d tracks kept, %d jets without tracks",
        source,
        n_jets,
        jet_sel.size,
        int(tracks["valid"].sum()),
        int((jets["n_tracks"] == 0).sum()),
    )
    return TaggingDataset(jets, tracks, meta)


def load_dataset(paths: Sequence[str | os.PathLike[str]], cfg: TaggersConfig) -> TaggingDataset:
    """Read hepline ntuples with :func:`analysis.io.ingest.read_arrays` and build one dataset.

    Args:
        paths: the ntuple files (e.g. the ttbar shards).
        cfg: the ``taggers`` section.

    Returns:
        The concatenated :class:`TaggingDataset`; the detector parameters of the files'
        metadata (magnetic field, PV resolution) are in ``meta["detector"]``.

    Raises:
        InputError: no input files.
        InputFileError: a file whose detector settings differ from the first file's.
    """
    from analysis.io.ingest import read_arrays, read_metadata

    if not paths:
        raise InputError("load_dataset: no input files")
    branches = (
        ["event", "genWeight", "nJet", "nTrack"]
        + [f"Jet_{b}" for b in _JET_BRANCHES]
        + [f"Track_{b}" for b in _TRACK_BRANCHES]
    )
    parts, detector, first = [], None, None
    for p in paths:
        path = os.fspath(p)
        det = read_metadata(path).get("detector")
        if det is not None and detector is not None and det != detector:
            raise InputFileError(path, f"detector parameters differ from those of {first}")
        if det is not None and detector is None:
            detector, first = det, path
        arrays = read_arrays(path, branches, how="zip")
        parts.append(build_dataset(arrays, cfg, source=path, detector=det))
    out = concatenate(parts)
    if detector is not None:
        out.meta["detector"] = detector
    return out
