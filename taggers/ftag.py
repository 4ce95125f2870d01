"""The ATLAS flavour-tagging (FTAG) conventions at hepline's edge: names, units, dumper files.

Inside hepline the tagging dataset (:class:`taggers.features.TaggingDataset`) holds GeV and
snake_case names. The ATLAS tools (the training-dataset-dumper, atlas-ftag-tools ``ftag``,
puma, salt) read HDF5 files in the dumper's layout: a 1-D structured ``jets`` dataset and a
2-D ``tracks`` dataset ``(n_jets, n_tracks)`` with a boolean ``valid`` mask, **MeV** for
energies, and the dumper's variable names. This module converts between the two, and only
here:

* :func:`to_file_arrays` / :func:`from_file_arrays`: a dataset to the dumper-layout arrays
  and back, exactly (the MeV columns are float64, so GeV → MeV → GeV is the identity on the
  float32 values; :mod:`taggers.export` writes and reads the files with them);
* :func:`read_dumper`: a dumper-format file (a real one, the ``ftag.get_mock_file()`` mock, or
  a hepline export) to a tagging dataset, with hepline's jet and track selection, the tracks
  sorted by |sd0| and padded exactly as :func:`taggers.features.build_dataset` does for
  ntuples. The track grade comes from the hit counts (:func:`grade_from_hits`).

Names (hepline → file; those not listed keep their name, e.g. ``eta``, ``d0``, ``dr``):

* jets: ``pt`` (GeV → MeV), ``label`` → ``HadronConeExclTruthLabelID``, ``event`` →
  ``eventNumber``, ``mc_event_weight`` → ``mcEventWeight``, the SV1 outputs → the dumper's
  ``SV1_masssvx`` (GeV → MeV), ``SV1_efracsvx``, ``SV1_N2Tpair``, ``SV1_NGTinSvx``,
  ``SV1_Lxy``, ``SV1_L3d``, ``SV1_significance3d``, ``SV1_deltaR``; every tagger's outputs
  as ``<tagger>_p{b,c,u,tau}`` (IP2D/IP3D have no τ hypothesis: ``_ptau`` = 0) and MV2 as
  ``mv2_discriminant`` (:func:`tagger_columns`);
* tracks: ``sd0`` → ``IP3D_signed_d0_significance``, ``sz0`` → ``IP3D_signed_z0_significance``,
  ``pt_frac`` → ``ptfrac``, ``z0sintheta`` → ``z0SinTheta``, ``d0_err`` → ``d0Uncertainty``,
  ``z0sintheta_err`` → ``z0SinThetaUncertainty``, ``origin`` → ``ftagTruthOriginLabel``,
  ``pt`` (GeV → MeV); the grade as the hit counts of :data:`HIT_COUNTS`, the charge as the
  sign of ``qOverP`` (MeV⁻¹), and ``deta = η_trk − η_jet``, ``dphi = φ_trk − φ_jet`` (wrapped).

The bad inputs of dumper files raise one-line :class:`~analysis.core.errors.InputFileError`
naming the file and the variable: a missing required variable, a ``valid`` mask that is not
boolean, and jet pT on the wrong scale (median below 1 GeV after the
MeV → GeV conversion, i.e. GeV read as MeV; :func:`taggers.features.check_pt_scale`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from analysis.core.checks import check_finite
from analysis.core.config import config_hash
from analysis.core.config.taggers import TaggersConfig
from analysis.core.errors import InputFileError
from taggers.features import (
    TRACK_FIELDS,
    TaggingDataset,
    check_pt_scale,
    concatenate,
    delta_phi,
    pad_sequences,
)

log = logging.getLogger(__name__)


class _TaggerOutputs(Protocol):
    """What :func:`tagger_columns` reads of a :class:`taggers.models.Predictions` (a protocol,
    so that this module, below :mod:`taggers.models`, does not import it)."""

    dataset: TaggingDataset
    discriminants: dict[str, np.ndarray]
    rnnip: np.ndarray | None
    dl1: np.ndarray | None


__all__ = [
    "GRADES_FROM_HITS",
    "HIT_COUNTS",
    "JET_NAMES",
    "MEV_PER_GEV",
    "PROBABILITY_SUFFIXES",
    "REQUIRED_JET_VARIABLES",
    "REQUIRED_TRACK_VARIABLES",
    "TRACK_NAMES",
    "check_valid_mask",
    "from_file_arrays",
    "grade_from_hits",
    "hits_from_grade",
    "is_hdf5",
    "load_inputs",
    "read_dumper",
    "tagger_columns",
    "to_file_arrays",
]

MEV_PER_GEV = 1000.0
#: hepline jet field -> dumper name (fields not listed keep their name)
JET_NAMES: dict[str, str] = {
    "label": "HadronConeExclTruthLabelID",
    "event": "eventNumber",
    "mc_event_weight": "mcEventWeight",
    "sv1_mass": "SV1_masssvx",
    "sv1_efrac": "SV1_efracsvx",
    "sv1_n2t": "SV1_N2Tpair",
    "sv1_ntrk": "SV1_NGTinSvx",
    "sv1_lxy": "SV1_Lxy",
    "sv1_l3d": "SV1_L3d",
    "sv1_sig3d": "SV1_significance3d",
    "sv1_dr": "SV1_deltaR",
}
#: hepline track field -> dumper name (fields not listed keep their name)
TRACK_NAMES: dict[str, str] = {
    "sd0": "IP3D_signed_d0_significance",
    "sz0": "IP3D_signed_z0_significance",
    "pt_frac": "ptfrac",
    "z0sintheta": "z0SinTheta",
    "d0_err": "d0Uncertainty",
    "z0sintheta_err": "z0SinThetaUncertainty",
    "origin": "ftagTruthOriginLabel",
}
#: hepline fields in GeV (MeV in the files)
_JET_GEV = ("pt", "sv1_mass")
_TRACK_GEV = ("pt",)
#: the hit counts that define the grade (uint8 in the files)
HIT_COUNTS: tuple[str, ...] = (
    "numberOfInnermostPixelLayerHits",
    "numberOfNextToInnermostPixelLayerHits",
    "numberOfPixelSharedHits",
    "numberOfSCTSharedHits",
)
#: grade <- hits, in order of precedence (analysis.generation.tracking.GRADE_*)
GRADES_FROM_HITS: dict[int, str] = {
    3: "no hit in the innermost and next-to-innermost pixel layers",
    2: "no hit in the innermost pixel layer",
    1: "a shared pixel or SCT hit (numberOfPixelSharedHits + numberOfSCTSharedHits > 0)",
    0: "otherwise",
}
#: the four class probabilities of every tagger, ``<tagger>_<suffix>`` (ftag/puma: ``Label.px``)
PROBABILITY_SUFFIXES: tuple[str, ...] = ("pb", "pc", "pu", "ptau")
#: the track variables a dumper file must hold (the rest are derived when absent)
REQUIRED_TRACK_VARIABLES: tuple[str, ...] = (
    "IP3D_signed_d0_significance", "IP3D_signed_z0_significance", "d0", "z0SinTheta",
    "deta", "dphi", "qOverP", *HIT_COUNTS, "valid",
)  # fmt: skip
REQUIRED_JET_VARIABLES: tuple[str, ...] = ("pt", "eta", "HadronConeExclTruthLabelID")
#: written for the FTAG tools, consumed (grade, charge) or recomputed when a hepline file is read
_DERIVED_TRACK_FIELDS = ("deta", "dphi", "qOverP", *HIT_COUNTS)
_PAD_INT = -1
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


# --------------------------------------------------------------------------- grades and units


def grade_from_hits(
    innermost: np.ndarray, next_to_innermost: np.ndarray, pixel_shared: np.ndarray, sct_shared: np.ndarray
) -> np.ndarray:
    """The hit-pattern grade (int8) of tracks from their hit counts (:data:`GRADES_FROM_HITS`).

    The grades are those of hepline's detector (``analysis.generation.tracking``): 0 all hits,
    1 shared hits, 2 no innermost-layer hit, 3 no hit in the two innermost layers.
    """
    inner = np.asarray(innermost).astype(np.int64)
    nxt = np.asarray(next_to_innermost).astype(np.int64)
    shared = np.asarray(pixel_shared).astype(np.int64) + np.asarray(sct_shared).astype(np.int64)
    grade = np.where(shared > 0, 1, 0)
    grade = np.where(inner <= 0, 2, grade)
    grade = np.where((inner <= 0) & (nxt <= 0), 3, grade)
    return np.asarray(grade, dtype=np.int8)


def hits_from_grade(grade: np.ndarray, valid: np.ndarray) -> dict[str, np.ndarray]:
    """Hit counts (uint8, 0 or 1; 0 for padding) that :func:`grade_from_hits` maps back to
    ``grade``. The parametric detector simulates grades, not hits: these counts encode the
    grade and nothing more.

    Raises:
        ValueError: a valid track's grade is not 0–3.
    """
    g = np.asarray(grade).astype(np.int64)
    v = np.asarray(valid, dtype=bool)
    bad = v & ((g < 0) | (g > 3))
    if bad.any():
        raise ValueError(f"track grade {int(g[bad][0])} has no hit-count encoding (grades 0-3)")
    inner = v & (g <= 1)
    nxt = v & (g <= 2)
    shared = v & (g == 1)
    zero = np.zeros(g.shape, dtype=np.uint8)
    return {
        HIT_COUNTS[0]: inner.astype(np.uint8),
        HIT_COUNTS[1]: nxt.astype(np.uint8),
        HIT_COUNTS[2]: shared.astype(np.uint8),
        HIT_COUNTS[3]: zero,
    }


def _to_mev(values: np.ndarray) -> np.ndarray:
    # float64: x * 1000 is exact for a float32 x, and so is the division back
    return np.asarray(values, dtype=np.float64) * MEV_PER_GEV


def _to_gev(values: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
    return (np.asarray(values, dtype=np.float64) / MEV_PER_GEV).astype(dtype)


def check_valid_mask(dtype: np.dtype, *, source: str, variable: str = "tracks/valid") -> None:
    """Refuse a track mask that is not boolean (the dumper's ``valid`` is ``bool``: True for a
    real track, False for padding).

    Raises:
        InputFileError: naming the file, the variable and its dtype.
    """
    if np.dtype(dtype) != np.dtype(bool):
        raise InputFileError(source, f"{variable} has dtype {np.dtype(dtype)}, expected bool "
                                     "(the dumper's mask: True for a track, False for padding)")


# --------------------------------------------------------------------------- dataset <-> file


def _structured(columns: Mapping[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    dtype = np.dtype([(name, np.asarray(col).dtype) for name, col in columns.items()])
    out = np.empty(shape, dtype=dtype)
    for name, col in columns.items():
        out[name] = col
    return out


def _jet_file_name(name: str) -> str:
    return JET_NAMES.get(name, name)


def to_file_arrays(
    ds: TaggingDataset, jet_order: Sequence[str] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """``(jets, tracks)`` structured arrays of ``ds`` in the dumper's names and units.

    Args:
        ds: the dataset (GeV).
        jet_order: jet fields written first, in this order (the rest follow in the dataset's
            order).

    Returns:
        ``jets`` (1-D) and ``tracks`` ``(n_jets, n_max)``. IP2D/IP3D outputs gain ``<t>_ptau``
        (0: no τ hypothesis) so that every tagger has its four probabilities.

    Raises:
        ValueError: a valid track grade that has no hit-count encoding.
    """
    n = len(ds)
    ordered = [k for k in jet_order if k in ds.jets] + [k for k in ds.jets if k not in jet_order]
    jets: dict[str, np.ndarray] = {}
    for k in ordered:
        v = ds.jets[k]
        jets[_jet_file_name(k)] = _to_mev(v) if k in _JET_GEV else np.asarray(v)
    for t in ("ip2d", "ip3d"):
        if f"{t}_pb" in ds.jets and f"{t}_ptau" not in ds.jets:
            jets[f"{t}_ptau"] = np.zeros(n, dtype=np.asarray(ds.jets[f"{t}_pb"]).dtype)
    t_in = ds.tracks
    valid = np.asarray(t_in["valid"], dtype=bool)
    tracks: dict[str, np.ndarray] = {}
    for k, v in t_in.items():
        if k == "grade":
            tracks.update(hits_from_grade(v, valid))
        elif k == "charge":
            continue  # the sign of qOverP
        else:
            tracks[TRACK_NAMES.get(k, k)] = _to_mev(v) if k in _TRACK_GEV else np.asarray(v)
    if {"charge", "pt", "eta"} <= set(t_in):
        p_mev = _to_mev(t_in["pt"]) * np.cosh(np.asarray(t_in["eta"], dtype=np.float64))
        with np.errstate(divide="ignore", invalid="ignore"):
            qop = np.where(valid & (p_mev > 0), np.asarray(t_in["charge"], np.float64) / p_mev, 0.0)
        tracks["qOverP"] = qop.astype(np.float32)
    if {"eta", "phi"} <= set(t_in) and {"eta", "phi"} <= set(ds.jets):
        jeta = np.asarray(ds.jets["eta"], np.float64)[:, None]
        jphi = np.asarray(ds.jets["phi"], np.float64)[:, None]
        deta = np.asarray(t_in["eta"], np.float64) - jeta
        dphi = delta_phi(np.asarray(t_in["phi"], np.float64), jphi)
        tracks["deta"] = np.where(valid, deta, 0.0).astype(np.float32)
        tracks["dphi"] = np.where(valid, dphi, 0.0).astype(np.float32)
    return _structured(jets, (n,)), _structured(tracks, (n, ds.n_max))


def from_file_arrays(
    jets: np.ndarray, tracks: np.ndarray, meta: Mapping[str, Any] | None = None
) -> TaggingDataset:
    """The dataset of :func:`to_file_arrays`' arrays (the exact inverse: same fields, values
    and dtypes, plus the IP2D/IP3D ``_ptau`` columns).

    ``tracks`` must hold what :func:`to_file_arrays` wrote: the grade comes from the hit
    counts and the charge from the sign of ``qOverP`` (−1 in padded slots, as in
    :func:`taggers.features.build_dataset`); ``deta``/``dphi`` are dropped (``eta``/``phi``
    are there).
    """
    back_j = {v: k for k, v in JET_NAMES.items()}
    out_j: dict[str, np.ndarray] = {}
    for name in jets.dtype.names or ():
        k = back_j.get(name, name)
        v = np.asarray(jets[name])
        out_j[k] = _to_gev(v) if k in _JET_GEV else v
    back_t = {v: k for k, v in TRACK_NAMES.items()}
    names = set(tracks.dtype.names or ())
    valid = np.asarray(tracks["valid"], dtype=bool)
    out_t: dict[str, np.ndarray] = {}
    for name in tracks.dtype.names or ():
        if name in _DERIVED_TRACK_FIELDS:
            continue
        k = back_t.get(name, name)
        v = np.asarray(tracks[name])
        out_t[k] = _to_gev(v) if k in _TRACK_GEV else v
    if set(HIT_COUNTS) <= names:
        g = grade_from_hits(*(tracks[h] for h in HIT_COUNTS))
        out_t["grade"] = np.where(valid, g, _PAD_INT).astype(np.int8)
    if "qOverP" in names:
        q = np.sign(np.asarray(tracks["qOverP"], np.float64))
        out_t["charge"] = np.where(valid, q, _PAD_INT).astype(np.int8)
    order = [f for f in TRACK_FIELDS if f in out_t] + [f for f in out_t if f not in TRACK_FIELDS]
    return TaggingDataset(out_j, {k: out_t[k] for k in order}, dict(meta or {}))


def tagger_columns(predictions: _TaggerOutputs) -> dict[str, np.ndarray]:
    """Every tagger's outputs as the FTAG tools name them: ``<tagger>_p{b,c,u,tau}`` (float32)
    for IP2D, IP3D (``_ptau`` = 0), RNNIP and DL1, and ``mv2_discriminant`` (float64, the
    ``ln(s / (1 − s))`` of the BDT score that the working points cut on); only the taggers
    that were run."""
    jets = predictions.dataset.jets
    out: dict[str, np.ndarray] = {}
    for t in ("ip2d", "ip3d"):
        if t in predictions.discriminants:
            for s in ("pb", "pc", "pu"):
                out[f"{t}_{s}"] = np.asarray(jets[f"{t}_{s}"], dtype=np.float32)
            out[f"{t}_ptau"] = np.zeros(len(predictions.dataset), dtype=np.float32)
    for t, probs in (("rnnip", predictions.rnnip), ("dl1", predictions.dl1)):
        if probs is not None and t in predictions.discriminants:
            for i, s in enumerate(PROBABILITY_SUFFIXES):
                out[f"{t}_{s}"] = np.asarray(probs[:, i], dtype=np.float32)
    if "mv2" in predictions.discriminants:
        out["mv2_discriminant"] = np.asarray(predictions.discriminants["mv2"], dtype=np.float64)
    return out


# --------------------------------------------------------------------------- dumper files


def is_hdf5(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` starts with the HDF5 signature (a dumper-format file, not a ROOT ntuple)."""
    try:
        with open(path, "rb") as f:
            return f.read(8) == _HDF5_SIGNATURE
    except OSError:
        return False


def _need(arr: np.ndarray, names: Sequence[str], source: str, dataset: str) -> None:
    have = set(arr.dtype.names or ())
    for name in names:
        if name not in have:
            raise InputFileError(source, f"{dataset}/{name} is missing (a required {dataset[:-1]} "
                                         "variable of the dumper format, needed by the taggers)")


def _uncertainty(value: np.ndarray, significance: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """σ = |value| / |significance|; where the significance is 0, the median σ of the file."""
    v, s = np.abs(value), np.abs(significance)
    ok = valid & (s > 0) & (v > 0)
    sigma = np.zeros(v.shape, dtype=np.float64)
    sigma[ok] = v[ok] / s[ok]
    fill = float(np.median(sigma[ok])) if ok.any() else 1.0
    return np.where(ok, sigma, fill)


def read_dumper(
    path: str | os.PathLike[str],
    cfg: TaggersConfig,
    *,
    jets_name: str = "jets",
    tracks_name: str = "tracks",
) -> TaggingDataset:
    """Read a dumper-format HDF5 file into the tagging dataset, with hepline's selection.

    Jets: ``pt`` (MeV), ``eta``, ``HadronConeExclTruthLabelID`` (required); ``phi``
    (default 0: only Δφ enters the taggers), ``eventNumber`` (default: the row, so that the
    ``event % 10`` split still works; a warning), ``mcEventWeight`` (default 1), ``jet_index``
    (default −1). Tracks: :data:`REQUIRED_TRACK_VARIABLES`; ``pt``, ``eta``, ``phi`` when
    present (else from ``qOverP``, ``deta``, ``dphi`` and the jet), ``ptfrac`` and ``dr`` when
    present (else computed), ``d0Uncertainty``/``z0SinThetaUncertainty`` when present (else
    |d0| / |sd0|, the file's median where the significance is 0), ``ftagTruthOriginLabel``
    (default −1). The grade comes from the hit counts (:func:`grade_from_hits`).

    The selection and ordering are those of :func:`taggers.features.build_dataset`: jets with
    pT > ``cfg.jets.pt_min_gev`` and |η| < ``abs_eta_max``; valid tracks with pT >
    ``cfg.tracks.pt_min_gev``, |d0| < ``abs_d0_max_mm``, |z0 sinθ| < ``abs_z0sintheta_max_mm``
    and a grade in ``grades``; per jet the ``n_max`` largest |sd0| first (ties in file
    order), the rest padding.

    Args:
        path: the file.
        cfg: the ``taggers`` section.
        jets_name, tracks_name: the datasets (the dumper's defaults).

    Returns:
        The :class:`TaggingDataset`; ``meta["detector"]`` is that of a hepline export's
        ``dataset_meta`` attribute, if present.

    Raises:
        InputFileError: no such dataset; a required variable missing; a ``valid`` mask that
            is not bool; jet pT on the wrong scale (:func:`check_pt_scale`).
        NonFiniteInputError: NaN/inf in a jet or valid-track input.
    """
    import h5py

    source = os.fspath(path)
    try:
        f = h5py.File(source, "r")
    except OSError as exc:
        raise InputFileError(source, f"not a readable HDF5 file ({exc})") from exc
    with f:
        for name in (jets_name, tracks_name):
            if name not in f or not isinstance(f[name], h5py.Dataset):
                raise InputFileError(source, f"no '{name}' dataset (not a dumper-format file)")
        jraw = f[jets_name][()]
        tds = f[tracks_name]
        if tds.dtype.names is None or "valid" not in tds.dtype.names:
            raise InputFileError(source, f"{tracks_name}/valid is missing (a required track variable "
                                         "of the dumper format, needed by the taggers)")
        check_valid_mask(tds.dtype["valid"], source=source, variable=f"{tracks_name}/valid")
        traw = tds[()]
        attrs = dict(f.attrs)
    _need(jraw, REQUIRED_JET_VARIABLES, source, jets_name)
    _need(traw, REQUIRED_TRACK_VARIABLES, source, tracks_name)
    if traw.ndim != 2 or traw.shape[0] != jraw.shape[0]:
        raise InputFileError(source, f"{tracks_name} has shape {traw.shape}, expected "
                                     f"({jraw.shape[0]}, n_tracks)")
    n_all = int(jraw.shape[0])
    jn = set(jraw.dtype.names or ())
    tn = set(traw.dtype.names or ())

    event = (np.asarray(jraw["eventNumber"]).astype(np.uint64) if "eventNumber" in jn
             else np.arange(n_all, dtype=np.uint64))
    pt = _to_gev(jraw["pt"], np.float64)
    eta = np.asarray(jraw["eta"], dtype=np.float64)
    phi = np.asarray(jraw["phi"], dtype=np.float64) if "phi" in jn else np.zeros(n_all)
    for name, values in (("pt", pt), ("eta", eta), ("phi", phi)):
        check_finite(values, f"{jets_name}/{name}", source=source, entry=event, entry_name="event")
    check_pt_scale(pt, source=source, variable=f"{jets_name}/pt", file_unit="MeV")
    if "eventNumber" not in jn:
        log.warning("%s: no %s/eventNumber: the jets are split by their row number", source, jets_name)
    jsel = (pt > cfg.jets.pt_min_gev) & (np.abs(eta) < cfg.jets.abs_eta_max)
    rows = np.flatnonzero(jsel)
    n_jets = int(rows.size)
    t = traw[rows]
    valid = np.asarray(t["valid"], dtype=bool)
    ev_t = np.broadcast_to(event[rows][:, None], valid.shape)

    def trk(name: str) -> np.ndarray:
        return np.asarray(t[name], dtype=np.float64)

    sd0, sz0 = trk("IP3D_signed_d0_significance"), trk("IP3D_signed_z0_significance")
    d0, z0s = trk("d0"), trk("z0SinTheta")
    deta, dphi, qop = trk("deta"), trk("dphi"), trk("qOverP")
    for name, values in (("IP3D_signed_d0_significance", sd0), ("IP3D_signed_z0_significance", sz0),
                         ("d0", d0), ("z0SinTheta", z0s), ("deta", deta), ("dphi", dphi), ("qOverP", qop)):
        check_finite(values, f"{tracks_name}/{name}", source=source, mask=valid, entry=ev_t, entry_name="event")
    jeta, jphi, jpt = eta[rows][:, None], phi[rows][:, None], pt[rows][:, None]
    t_eta = trk("eta") if "eta" in tn else jeta + deta
    t_phi = trk("phi") if "phi" in tn else delta_phi(jphi + dphi, np.zeros(1))
    if "pt" in tn:
        t_pt = _to_gev(t["pt"], np.float64)
    else:
        with np.errstate(divide="ignore"):
            t_pt = np.where(qop != 0, 1.0 / np.abs(np.where(qop != 0, qop, 1.0)), 0.0) / MEV_PER_GEV / np.cosh(t_eta)
    ptfrac = trk("ptfrac") if "ptfrac" in tn else t_pt / jpt
    dr = trk("dr") if "dr" in tn else np.hypot(deta, dphi)
    d0_err = trk("d0Uncertainty") if "d0Uncertainty" in tn else _uncertainty(d0, sd0, valid)
    z0s_err = (trk("z0SinThetaUncertainty") if "z0SinThetaUncertainty" in tn
               else _uncertainty(z0s, sz0, valid))
    origin = (np.asarray(t["ftagTruthOriginLabel"]).astype(np.int64) if "ftagTruthOriginLabel" in tn
              else np.full(valid.shape, _PAD_INT))
    grade = grade_from_hits(*(t[h] for h in HIT_COUNTS)).astype(np.int64)
    charge = np.sign(qop)

    grades = np.asarray(cfg.tracks.grades, dtype=np.int64)
    tc = cfg.tracks
    sel = (valid & (t_pt > tc.pt_min_gev) & (np.abs(d0) < tc.abs_d0_max_mm)
           & (np.abs(z0s) < tc.abs_z0sintheta_max_mm) & np.isin(grade, grades))
    jet_of, slot = np.nonzero(sel)  # row-major: file order within each jet
    n_max = int(tc.n_max)
    idx, row, col, n_selected = pad_sequences(jet_of, np.abs(sd0[jet_of, slot]), n_jets, n_max)
    r_src, s_src = jet_of[idx], slot[idx]
    flat = {
        "sd0": sd0, "sz0": sz0, "pt_frac": ptfrac, "dr": dr, "d0": d0, "z0sintheta": z0s,
        "d0_err": d0_err, "z0sintheta_err": z0s_err, "pt": t_pt, "eta": t_eta, "phi": t_phi,
        "grade": grade, "origin": origin, "charge": charge,
    }  # fmt: skip
    tracks: dict[str, np.ndarray] = {}
    for name in TRACK_FIELDS:
        if name == "valid":
            arr = np.zeros((n_jets, n_max), dtype=bool)
            arr[row, col] = True
        elif name in ("grade", "origin", "charge"):
            arr = np.full((n_jets, n_max), _PAD_INT, dtype=np.int8)
            arr[row, col] = flat[name][r_src, s_src]
        else:
            arr = np.zeros((n_jets, n_max), dtype=np.float32)
            arr[row, col] = flat[name][r_src, s_src]
        tracks[name] = arr
    jets = {
        "pt": pt[rows].astype(np.float32),
        "eta": eta[rows].astype(np.float32),
        "phi": phi[rows].astype(np.float32),
        "label": np.asarray(jraw["HadronConeExclTruthLabelID"][rows]).astype(np.int32),
        "event": event[rows],
        "n_tracks": tracks["valid"].sum(axis=1).astype(np.int32),
        "weight": np.ones(n_jets, dtype=np.float32),
        "jet_index": (np.asarray(jraw["jet_index"][rows]).astype(np.int32) if "jet_index" in jn
                      else np.full(n_jets, -1, dtype=np.int32)),
        "n_tracks_selected": n_selected,
        "mc_event_weight": (np.asarray(jraw["mcEventWeight"][rows]).astype(np.float32) if "mcEventWeight" in jn
                            else np.ones(n_jets, dtype=np.float32)),
    }
    meta: dict[str, Any] = {"config_hash": config_hash(cfg), "n_max": n_max, "sources": [source]}
    stored = attrs.get("dataset_meta")
    if stored is not None:
        det = json.loads(stored).get("detector")
        if det is not None:
            meta["detector"] = det
    log.info("%s: %d jets (of %d), %d tracks kept, %d jets without tracks", source, n_jets, n_all,
             int(tracks["valid"].sum()), int((jets["n_tracks"] == 0).sum()))
    return TaggingDataset(jets, tracks, meta)


def load_inputs(paths: Sequence[str | os.PathLike[str]], cfg: TaggersConfig) -> TaggingDataset:
    """The tagging dataset of hepline ntuples and dumper-format HDF5 files (by content:
    :func:`is_hdf5`), concatenated in the order given.

    Raises:
        InputError: no files. InputFileError: files whose detector parameters differ.
    """
    from analysis.core.errors import InputError
    from taggers.features import load_dataset

    if not paths:
        raise InputError("load_inputs: no input files")
    parts: list[TaggingDataset] = []
    detector, first = None, None
    run: list[str] = []

    def flush() -> None:
        if run:
            parts.append(load_dataset(list(run), cfg))
            run.clear()

    for p in paths:
        if is_hdf5(p):
            flush()
            parts.append(read_dumper(p, cfg))
        else:
            run.append(os.fspath(p))
    flush()
    for part in parts:
        det = part.meta.get("detector")
        src = (part.meta.get("sources") or ["?"])[0]
        if det is not None and detector is not None and det != detector:
            raise InputFileError(src, f"detector parameters differ from those of {first}")
        if det is not None and detector is None:
            detector, first = det, src
    out = concatenate(parts) if len(parts) > 1 else parts[0]
    if detector is not None:
        out.meta["detector"] = detector
    return out
