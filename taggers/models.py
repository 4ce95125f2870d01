"""The trained set of flavour taggers, loaded from a directory, and their discriminants.

Shared by :mod:`taggers.evaluate` and :mod:`taggers.decorate` (docs/taggers-results.md).

Files (written by :mod:`taggers.prepare` and :mod:`taggers.train`)::

    <model_dir>/rnnip.pt  rnnip.onnx  rnnip.metrics.json
    <model_dir>/mv2.json              mv2.metrics.json
    <model_dir>/dl1.pt    dl1.onnx    dl1.metrics.json
    <ipxd_dir>/ip2d.npz  ip3d.npz          (default: <model_dir>/../ipxd)

The ``*.metrics.json`` sidecars record what each model was trained on: the ``dataset``
provenance of the prepared HDF5 files (``dataset_id``, ``features_hash``, the SHA-256 of the
IP2D/IP3D templates) and, for DL1, the SHA-256 of the RNNIP model whose outputs it reads.
:func:`load_models` checks them against each other, against the template files and against
the configuration; any disagreement raises :class:`~taggers.training.ModelMismatchError`.

Discriminants (float64, larger = more b-like):

* IP2D / IP3D: ``D = ln(p_b / (f_c p_c + (1 - f_c) p_u))`` with the template likelihoods,
  computed exactly from the log-ratios as ``log_pb_pu - ln(f_c exp(log_pc_pu) + 1 - f_c)``
  (no clipping; ``f_c = 0`` gives the classic Σ ln(p_b/p_u));
* RNNIP, DL1: :func:`taggers.discriminant.tagger_discriminant` (|D| <= 23.03);
* MV2: ``ln(s / (1 - s))`` of the BDT score (:func:`taggers.algorithms.mv2.mv2_discriminant`, |D| <= 16.2).

``f_c`` of every tagger comes from ``taggers.discriminant_fc``; MV2 has none.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis.core.config import config_hash
from analysis.core.provenance import file_sha256
from taggers.discriminant import tagger_discriminant, tagger_fc
from taggers.features import TaggingDataset, tagger_config
from taggers.algorithms.ipxd import IPTemplates
from taggers.algorithms.ipxd import evaluate as ipxd_evaluate
from taggers.training import ModelMismatchError, TaggerInputError

log = logging.getLogger(__name__)

#: every tagger of the stages, in the order of tables and plots
TAGGERS: tuple[str, ...] = ("ip2d", "ip3d", "mv2", "rnnip", "dl1")
IPXD_TAGGERS: tuple[str, ...] = ("ip2d", "ip3d")
MODEL_FILES: dict[str, str] = {"rnnip": "rnnip.pt", "mv2": "mv2.json", "dl1": "dl1.pt"}
ONNX_FILES: dict[str, str] = {"rnnip": "rnnip.onnx", "dl1": "dl1.onnx"}
IPXD_FILES: dict[str, str] = {k: f"{k}.npz" for k in IPXD_TAGGERS}
RNNIP_COLUMNS: tuple[str, ...] = ("rnnip_pb", "rnnip_pc", "rnnip_pu", "rnnip_ptau")
#: taggers.* sub-sections that define the jet columns the models read
FEATURE_SECTIONS: tuple[str, ...] = ("jets", "tracks", "sv1")


class MissingModelError(FileNotFoundError):
    """A model directory lacks a model (or template) file; the message lists them."""


def metrics_file(model_dir: str | os.PathLike[str], tagger: str) -> Path:
    """The training sidecar ``<model_dir>/<tagger>.metrics.json``."""
    return Path(model_dir) / f"{tagger}.metrics.json"


def read_split(path: str | os.PathLike[str]) -> TaggingDataset:
    """:func:`taggers.export.read_h5` with every array made contiguous (the HDF5 structured
    arrays' fields are strided views, which torch cannot wrap)."""
    from taggers.export import read_h5

    ds = read_h5(path)
    return TaggingDataset(
        {k: np.ascontiguousarray(v) for k, v in ds.jets.items()},
        {k: np.ascontiguousarray(v) for k, v in ds.tracks.items()},
        ds.meta,
    )


def features_hash(cfg_taggers: Mapping[str, Any] | None) -> str:
    """Hash of the configuration that defines the tagger input columns (jet and track
    selection, n_max, SV1); models are only valid on columns built with the same one."""
    cfg = tagger_config(cfg_taggers)
    return config_hash({k: cfg[k] for k in FEATURE_SECTIONS})


# --------------------------------------------------------------------------- discriminants


def ip_discriminant(log_pb_pu: Any, log_pc_pu: Any, fc: float) -> np.ndarray:
    """``ln(p_b / (f_c p_c + (1 - f_c) p_u))`` from the IP2D/IP3D log-likelihood ratios (exact)."""
    if not 0.0 <= fc <= 1.0:
        raise ValueError(f"f_c must lie in [0, 1], got {fc}")
    a = np.asarray(log_pb_pu, dtype=np.float64)
    b = np.asarray(log_pc_pu, dtype=np.float64)
    if fc == 0.0:
        return a.copy()
    if fc == 1.0:
        return a - b
    return a - np.logaddexp(np.log(fc) + b, np.log1p(-fc))


def high_level_columns(
    ds: TaggingDataset,
    templates: Mapping[str, IPTemplates],
    cfg_taggers: Mapping[str, Any] | None,
) -> dict[str, np.ndarray]:
    """IP2D/IP3D outputs, SV1 features and ``abs_eta`` of every jet of ``ds`` (the columns
    prepare writes to the HDF5 files and decorate computes on the fly)."""
    from taggers.algorithms.sv1 import sv1

    cols: dict[str, np.ndarray] = {}
    for kind in IPXD_TAGGERS:
        cols.update(ipxd_evaluate(templates[kind], ds))
    cols.update(sv1(ds, cfg_taggers))
    cols["abs_eta"] = np.abs(ds.jets["eta"]).astype(np.float32)
    return cols


# --------------------------------------------------------------------------- the model set


@dataclass
class TaggerModels:
    """IP2D/IP3D templates, RNNIP, MV2 and DL1 with the ``taggers`` config they belong to."""

    templates: dict[str, IPTemplates]
    rnnip: Any  # taggers.nn.rnnip.RNNIP
    mv2: Any  # taggers.algorithms.mv2.MV2Model
    dl1: Any  # taggers.nn.dl1.DL1
    cfg: dict[str, Any]  # validated taggers section
    model_dir: Path | None = None
    ipxd_dir: Path | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    threads: int | None = 1
    rnnip_backend: str = "torch"

    # ---- meta
    def fc(self, tagger: str) -> float | None:
        """f_c of ``tagger``'s discriminant (None for MV2)."""
        return None if tagger == "mv2" else tagger_fc(tagger, self.cfg)

    @property
    def mv2_features(self) -> list[str]:
        return list(self.mv2.feature_names)

    @property
    def dl1_features(self) -> list[str]:
        return list(self.dl1.meta["feature_names"])

    # ---- predictions
    def rnnip_probabilities(self, ds: TaggingDataset) -> np.ndarray:
        """RNNIP (n, 4) probabilities (torch, or ONNX Runtime with ``rnnip_backend='onnx'``)."""
        if self.rnnip_backend == "onnx":
            from taggers.onnx_export import load_onnx

            if self.model_dir is None:
                raise MissingModelError("the ONNX backend needs the model directory")
            return load_onnx(self.model_dir / ONNX_FILES["rnnip"], threads=self.threads).predict(ds)
        from taggers.nn.rnnip import predict_rnnip

        return predict_rnnip(self.rnnip, ds, threads=self.threads)

    def add_inputs(self, ds: TaggingDataset, *, high_level: bool = True) -> TaggingDataset:
        """``ds`` with the IP2D/IP3D, SV1, ``abs_eta`` columns (``high_level=True``: recomputed
        from the tracks with this set's templates) and the RNNIP output columns."""
        from taggers.nn.rnnip import rnnip_columns

        cols = high_level_columns(ds, self.templates, self.cfg) if high_level else {}
        out = ds.with_jet_fields(cols)
        return out.with_jet_fields(rnnip_columns(self.rnnip_probabilities(out)))

    def predict(self, ds: TaggingDataset, *, high_level: bool = True) -> dict[str, Any]:
        """Every tagger on ``ds``: ``{"discriminants": {tagger: float64 array}, "rnnip":
        (n, 4), "dl1": (n, 4), "mv2_score": (n,), "dataset": ds with all input columns}``.

        ``high_level=False`` takes the IP/SV1 columns from ``ds.jets`` (a prepared HDF5 file)
        instead of recomputing them. Raises :class:`TaggerInputError` on an empty dataset.
        """
        from taggers.nn.dl1 import predict_dl1
        from taggers.algorithms.mv2 import mv2_discriminant, predict_mv2

        if len(ds) == 0:
            raise TaggerInputError("no jets to tag (empty dataset)")
        full = self.add_inputs(ds, high_level=high_level)
        p_rnn = np.stack([full.jets[c] for c in RNNIP_COLUMNS], axis=1)
        p_dl1 = predict_dl1(self.dl1, full, threads=self.threads)
        score = predict_mv2(self.mv2, full)
        disc: dict[str, np.ndarray] = {}
        for kind in IPXD_TAGGERS:
            disc[kind] = ip_discriminant(
                full.jets[f"{kind}_log_pb_pu"], full.jets[f"{kind}_log_pc_pu"], self.fc(kind)
            )
        disc["mv2"] = mv2_discriminant(score)
        disc["rnnip"] = tagger_discriminant(p_rnn, "rnnip", self.cfg)
        disc["dl1"] = tagger_discriminant(p_dl1, "dl1", self.cfg)
        for name, d in disc.items():
            if not np.all(np.isfinite(d)):
                raise TaggerInputError(f"{name} discriminant holds NaN/inf values")
        return {
            "discriminants": {t: disc[t] for t in TAGGERS},
            "rnnip": p_rnn,
            "dl1": p_dl1,
            "mv2_score": score,
            "dataset": full,
        }

    def describe(self) -> dict[str, Any]:
        """Provenance for metadata: files, hashes, f_c, the dataset the models were trained on."""
        return {
            **self.provenance,
            "fc": {t: self.fc(t) for t in TAGGERS},
            "features_hash": features_hash(self.cfg),
        }


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelMismatchError(f"{path}: not valid JSON ({exc})") from exc


def load_models(
    model_dir: str | os.PathLike[str],
    cfg: Mapping[str, Any] | None = None,
    *,
    ipxd_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    rnnip_backend: str | None = None,
    device: str | None = "cpu",
) -> TaggerModels:
    """Load and cross-check the trained tagger set.

    ``cfg``: a full hepline config or its ``taggers`` section (defaults if ``None``).
    ``ipxd_dir``: the IP2D/IP3D templates (default ``<model_dir>/../ipxd``). ``threads``:
    torch / ONNX Runtime threads (default ``taggers.threads``).

    Raises :class:`MissingModelError` listing every missing file, and
    :class:`~taggers.training.ModelMismatchError` when the models, templates and config do
    not belong together (different prepared dataset, templates, RNNIP model for DL1, feature
    configuration, n_max or inputs).
    """
    from taggers.nn.dl1 import load_dl1
    from taggers.algorithms.mv2 import load_mv2
    from taggers.nn.rnnip import load_rnnip

    full = dict(cfg or {})
    tcfg = tagger_config(
        full.get("taggers") if ("taggers" in full or "generation" in full) else full
    )
    mdir = Path(model_dir)
    idir = Path(ipxd_dir) if ipxd_dir is not None else mdir.parent / "ipxd"
    wanted = {t: mdir / f for t, f in MODEL_FILES.items()} | {
        t: idir / f for t, f in IPXD_FILES.items()
    }
    backend = rnnip_backend or tcfg["decoration"]["rnnip_backend"]
    if backend == "onnx":
        wanted["rnnip.onnx"] = mdir / ONNX_FILES["rnnip"]
    missing = [str(p) for p in wanted.values() if not p.is_file()]
    if missing:
        raise MissingModelError(
            f"the tagger model set is incomplete: missing {', '.join(missing)} "
            f"(run taggers.prepare and taggers.train for every tagger first)"
        )
    sha = {t: file_sha256(p) for t, p in wanted.items()}
    templates = {t: IPTemplates.load(wanted[t]) for t in IPXD_TAGGERS}
    for t, tpl in templates.items():
        if tpl.kind != t:
            raise ModelMismatchError(f"{wanted[t]} holds {tpl.kind} templates, not {t}")
        if tpl.n_grades != int(tcfg["tracks"]["n_grades"]):
            raise ModelMismatchError(
                f"mismatched model and feature configuration: {wanted[t]} has {tpl.n_grades} "
                f"grades, taggers.tracks.n_grades is {tcfg['tracks']['n_grades']}"
            )
    rnnip = load_rnnip(wanted["rnnip"], n_max=int(tcfg["tracks"]["n_max"]), device=device)
    mv2 = load_mv2(wanted["mv2"])
    dl1 = load_dl1(wanted["dl1"], device=device)

    # inputs the models read must be columns the stages produce
    available = {
        "pt",
        "eta",
        "abs_eta",
        *(
            f"{k}_{s}"
            for k in IPXD_TAGGERS
            for s in ("log_pb_pu", "log_pb_pc", "log_pc_pu", "pb", "pc", "pu")
        ),
        *(
            f"sv1_{s}"
            for s in (
                "mass",
                "efrac",
                "n2t",
                "ntrk",
                "lxy",
                "l3d",
                "sig3d",
                "dr",
                "x",
                "y",
                "z",
                "chi2",
                "has_sv",
            )
        ),
    }
    for name, feats, extra in (
        ("mv2", mv2.feature_names, set()),
        ("dl1", dl1.meta["feature_names"], set(RNNIP_COLUMNS)),
    ):
        unknown = [f for f in feats if f not in available | extra]
        if unknown:
            raise ModelMismatchError(
                f"mismatched model and feature file: {wanted[name]} reads {unknown}, which "
                f"taggers.prepare / taggers.decorate do not provide"
            )

    # provenance cross-checks
    sidecars = {t: _read_sidecar(metrics_file(mdir, t)) for t in MODEL_FILES}
    datasets = {t: (s or {}).get("dataset") for t, s in sidecars.items()}
    if any(s is None for s in sidecars.values()):
        log.warning(
            "no training sidecar for %s: provenance checks skipped for them",
            [t for t, s in sidecars.items() if s is None],
        )
    ids = {t: d.get("dataset_id") for t, d in datasets.items() if d}
    if len(set(ids.values())) > 1:
        raise ModelMismatchError(
            f"mismatched models in {mdir}: trained on different prepared datasets {ids}"
        )
    fh = features_hash(tcfg)
    for t, d in datasets.items():
        if not d:
            continue
        if d.get("features_hash") not in (None, fh):
            raise ModelMismatchError(
                f"mismatched model and feature configuration: {wanted[t]} was trained on jet "
                f"columns built with another taggers.jets/tracks/sv1 config "
                f"({d.get('features_hash')} != {fh})"
            )
        for k in IPXD_TAGGERS:
            rec = (d.get("ipxd_sha256") or {}).get(k)
            if rec is not None and rec != sha[k]:
                raise ModelMismatchError(
                    f"mismatched model and feature file: {wanted[t]} was trained with other "
                    f"{k} templates than {wanted[k]}"
                )
    rec = (sidecars["dl1"] or {}).get("rnnip_sha256")
    if rec is not None and rec != sha["rnnip"]:
        raise ModelMismatchError(
            f"mismatched models: {wanted['dl1']} was trained on the outputs of another RNNIP "
            f"model than {wanted['rnnip']} (retrain DL1)"
        )
    provenance = {
        "model_dir": str(mdir),
        "ipxd_dir": str(idir),
        "files": {t: {"path": str(p), "sha256": sha[t]} for t, p in wanted.items()},
        "dataset_id": next(iter(ids.values()), None),
    }
    return TaggerModels(
        templates=templates,
        rnnip=rnnip,
        mv2=mv2,
        dl1=dl1,
        cfg=tcfg,
        model_dir=mdir,
        ipxd_dir=idir,
        provenance=provenance,
        threads=int(threads if threads is not None else tcfg["threads"]),
        rnnip_backend=backend,
    )
