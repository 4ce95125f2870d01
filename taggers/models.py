"""The trained set of flavour taggers, loaded from a directory, and their predictions.

Shared by :mod:`taggers.evaluate` and :mod:`taggers.decorate` (docs/taggers-results.md).

Files (written by :mod:`taggers.prepare` and :mod:`taggers.train`)::

    <model_dir>/rnnip.pt  rnnip.onnx  rnnip.metrics.json
    <model_dir>/mv2.json  mv2.onnx    mv2.metrics.json
    <model_dir>/dl1.pt    dl1.onnx    dl1.metrics.json
    <ipxd_dir>/ip2d.npz  ip3d.npz          (default: <model_dir>/../ipxd)

The ``*.metrics.json`` sidecars record what each model was trained on: the ``dataset``
provenance of the prepared HDF5 files (``dataset_id``, ``features_hash``, the SHA-256 of the
IP2D/IP3D templates) and, for DL1, the SHA-256 of the RNNIP model whose outputs it reads.
:func:`load_models` checks them against each other, against the template files and against
the configuration; any disagreement raises :class:`~analysis.core.errors.ModelMismatchError`.
``load_models(..., taggers=("ip3d", "rnnip"))`` loads only what those taggers need (DL1
needs RNNIP; MV2 and DL1 read the IP2D/IP3D and SV1 columns, so they need both templates).

Discriminants (float64, larger = more b-like), :meth:`TaggerModels.predict`:

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
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.core.config import config_hash
from analysis.core.config.taggers import TaggersConfig
from analysis.core.errors import HeplineError, ModelMismatchError
from analysis.core.provenance import file_sha256
from taggers import TAGGERS
from taggers.algorithms.ipxd import IPTemplates
from taggers.algorithms.ipxd import evaluate as ipxd_evaluate
from taggers.discriminant import tagger_discriminant, tagger_fc
from taggers.export import DatasetProvenance
from taggers.features import TaggingDataset
from taggers.training import TaggerInputError

if TYPE_CHECKING:  # the model modules import xgboost and torch: loaded when a model is
    from taggers.algorithms.mv2 import MV2Model
    from taggers.nn.dl1 import DL1
    from taggers.nn.rnnip import RNNIP

log = logging.getLogger(__name__)

__all__ = [
    "BRANCH_PREFIX",
    "FEATURE_SECTIONS",
    "IPXD_FILES",
    "IPXD_TAGGERS",
    "MODEL_FILES",
    "ONNX_FILES",
    "RNNIP_COLUMNS",
    "TAGGERS",
    "MissingModelError",
    "Predictions",
    "TaggerModels",
    "branch_name",
    "features_hash",
    "high_level_columns",
    "ip_discriminant",
    "load_models",
    "metrics_file",
    "select_taggers",
]

IPXD_TAGGERS: tuple[str, ...] = ("ip2d", "ip3d")
MODEL_FILES: dict[str, str] = {"rnnip": "rnnip.pt", "mv2": "mv2.json", "dl1": "dl1.pt"}
ONNX_FILES: dict[str, str] = {"rnnip": "rnnip.onnx", "dl1": "dl1.onnx", "mv2": "mv2.onnx"}
IPXD_FILES: dict[str, str] = {k: f"{k}.npz" for k in IPXD_TAGGERS}
RNNIP_COLUMNS: tuple[str, ...] = ("rnnip_pb", "rnnip_pc", "rnnip_pu", "rnnip_ptau")
#: taggers.* sub-sections that define the jet columns the models read
FEATURE_SECTIONS: tuple[str, ...] = ("jets", "tracks", "sv1")
#: the decorated discriminant branch of tagger ``t`` is ``BRANCH_PREFIX + t``
BRANCH_PREFIX = "Jet_btag_"
#: the model and template files each tagger needs (DL1 reads the RNNIP outputs; MV2 and
#: DL1 read the IP2D/IP3D columns)
_NEEDS: dict[str, tuple[str, ...]] = {
    "ip2d": ("ip2d",),
    "ip3d": ("ip3d",),
    "rnnip": ("rnnip",),
    "mv2": ("mv2", "ip2d", "ip3d"),
    "dl1": ("dl1", "rnnip", "ip2d", "ip3d"),
}
#: the jet columns prepare and decorate provide to MV2 and DL1
_HIGH_LEVEL_COLUMNS: frozenset[str] = frozenset({
    "pt", "eta", "abs_eta",
    *(f"{k}_{s}" for k in IPXD_TAGGERS for s in ("log_pb_pu", "log_pb_pc", "log_pc_pu", "pb", "pc", "pu")),
    *(f"sv1_{s}" for s in ("mass", "efrac", "n2t", "ntrk", "lxy", "l3d", "sig3d", "dr", "x", "y", "z",
                           "chi2", "has_sv")),
})  # fmt: skip


class MissingModelError(HeplineError, FileNotFoundError):
    """A model directory lacks a model (or template) file; the message lists them."""


def branch_name(tagger: str) -> str:
    """The decorated discriminant branch of ``tagger`` (``Jet_btag_dl1``)."""
    return f"{BRANCH_PREFIX}{tagger}"


def select_taggers(taggers: Collection[str] | None) -> tuple[str, ...]:
    """``taggers`` in the order of :data:`TAGGERS` (``None``: all of them).

    Raises:
        ValueError: an unknown tagger name.
    """
    if taggers is None:
        return TAGGERS
    unknown = sorted(set(taggers) - set(TAGGERS))
    if unknown:
        raise ValueError(f"unknown tagger(s) {unknown}; known: {list(TAGGERS)}")
    return tuple(t for t in TAGGERS if t in taggers)


def metrics_file(model_dir: str | os.PathLike[str], tagger: str) -> Path:
    """The training sidecar ``<model_dir>/<tagger>.metrics.json``."""
    return Path(model_dir) / f"{tagger}.metrics.json"


def features_hash(cfg: TaggersConfig) -> str:
    """Hash of the configuration that defines the tagger input columns (jet and track
    selection, n_max, SV1); models are only valid on columns built with the same one."""
    return config_hash({k: getattr(cfg, k) for k in FEATURE_SECTIONS})


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
    return np.asarray(a - np.logaddexp(np.log(fc) + b, np.log1p(-fc)))


def high_level_columns(
    ds: TaggingDataset,
    templates: Mapping[str, IPTemplates],
    cfg: TaggersConfig,
    *,
    sv1: bool = True,
) -> dict[str, np.ndarray]:
    """The jet columns that prepare writes to the HDF5 files and decorate computes on the fly.

    Args:
        ds: the jets and their tracks.
        templates: the IP2D and/or IP3D templates (the outputs of each one present).
        cfg: the ``taggers`` section (``sv1``).
        sv1: also the SV1 features (vertexing: the expensive part).

    Returns:
        ``{ip2d,ip3d}_{log_pb_pu,...}``, ``sv1_*`` and ``abs_eta`` of every jet.
    """
    from taggers.algorithms.sv1 import sv1 as sv1_features

    cols: dict[str, np.ndarray] = {}
    for kind in IPXD_TAGGERS:
        if kind in templates:
            cols.update(ipxd_evaluate(templates[kind], ds))
    if sv1:
        cols.update(sv1_features(ds, cfg.sv1))
    cols["abs_eta"] = np.abs(ds.jets["eta"]).astype(np.float32)
    return cols


# --------------------------------------------------------------------------- the model set


@dataclass
class Predictions:
    """The outputs of the taggers on one dataset (:meth:`TaggerModels.predict`).

    Attributes:
        dataset: the input jets with every column the taggers read (IP2D/IP3D, SV1,
            ``abs_eta`` when recomputed; the RNNIP outputs ``rnnip_pb, ...``).
        discriminants: float64 discriminant per tagger (larger = more b-like).
        rnnip: RNNIP probabilities (n, 4) in the order (b, c, light, tau), if run.
        dl1: DL1 probabilities (n, 4), if run.
        mv2_score: the MV2 BDT score P(b) in [0, 1], if run.
    """

    dataset: TaggingDataset
    discriminants: dict[str, np.ndarray]
    rnnip: np.ndarray | None = None
    dl1: np.ndarray | None = None
    mv2_score: np.ndarray | None = None


@dataclass
class TaggerModels:
    """The loaded taggers (:func:`load_models`) with the ``taggers`` config they belong to.

    Attributes:
        cfg: the ``taggers`` section (f_c, acceptance, SV1, decoration settings).
        taggers: the taggers this set evaluates (of :data:`TAGGERS`).
        templates: the IP2D/IP3D templates loaded.
        rnnip, mv2, dl1: the models loaded (``None`` when not needed by ``taggers``).
        model_dir, ipxd_dir: where they were read from.
        provenance: files and their SHA-256, the prepared dataset id.
        threads: torch / ONNX Runtime threads of the predictions.
        rnnip_backend: ``torch`` or ``onnx`` (ONNX Runtime on ``rnnip.onnx``).
    """

    cfg: TaggersConfig
    taggers: tuple[str, ...]
    templates: dict[str, IPTemplates]
    rnnip: RNNIP | None = None
    mv2: MV2Model | None = None
    dl1: DL1 | None = None
    model_dir: Path | None = None
    ipxd_dir: Path | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    threads: int | None = 1
    rnnip_backend: str = "torch"

    # ---- meta
    def fc(self, tagger: str) -> float | None:
        """f_c of ``tagger``'s discriminant (None for MV2)."""
        return None if tagger == "mv2" else tagger_fc(tagger, self.cfg.discriminant_fc)

    @property
    def mv2_features(self) -> list[str]:
        """The MV2 input columns."""
        return self._need(self.mv2, "mv2").feature_names

    @property
    def dl1_features(self) -> list[str]:
        """The DL1 input columns."""
        meta = self._need(self.dl1, "dl1").meta
        assert meta is not None
        return list(meta["feature_names"])

    def _need(self, model: Any, name: str) -> Any:
        if model is None:
            raise MissingModelError(f"{name} was not loaded (load_models(..., taggers=...) without it)")
        return model

    # ---- predictions
    def rnnip_probabilities(self, ds: TaggingDataset) -> np.ndarray:
        """RNNIP (n, 4) probabilities (torch, or ONNX Runtime with ``rnnip_backend='onnx'``)."""
        if self.rnnip_backend == "onnx":
            from taggers.onnx_export import load_onnx

            if self.model_dir is None:
                raise MissingModelError("the ONNX backend needs the model directory")
            return load_onnx(self.model_dir / ONNX_FILES["rnnip"], threads=self.threads).predict(ds)
        from taggers.nn.rnnip import predict_rnnip

        return predict_rnnip(self._need(self.rnnip, "rnnip"), ds, threads=self.threads)

    def add_inputs(
        self, ds: TaggingDataset, *, high_level: bool = True, taggers: Collection[str] | None = None
    ) -> TaggingDataset:
        """``ds`` with the columns ``taggers`` read: IP2D/IP3D, SV1, ``abs_eta``
        (``high_level=True``: recomputed from the tracks with this set's templates) and the
        RNNIP output columns."""
        chosen = self._chosen(taggers)
        cols = {}
        if high_level:
            kinds = {k for t in chosen for k in _NEEDS[t] if k in IPXD_TAGGERS}
            cols = high_level_columns(ds, {k: v for k, v in self.templates.items() if k in kinds}, self.cfg,
                                      sv1=bool({"mv2", "dl1"} & set(chosen)))
        out = ds.with_jet_fields(cols)
        if {"rnnip", "dl1"} & set(chosen):
            from taggers.nn.rnnip import rnnip_columns

            out = out.with_jet_fields(rnnip_columns(self.rnnip_probabilities(out)))
        return out

    def _chosen(self, taggers: Collection[str] | None) -> tuple[str, ...]:
        chosen = self.taggers if taggers is None else select_taggers(taggers)
        missing = [t for t in chosen if t not in self.taggers]
        if missing:
            raise MissingModelError(f"taggers {missing} were not loaded (loaded: {list(self.taggers)})")
        return chosen

    def predict(
        self, ds: TaggingDataset, *, high_level: bool = True, taggers: Collection[str] | None = None
    ) -> Predictions:
        """Run the taggers on ``ds``.

        Args:
            ds: the jets with their tracks.
            high_level: recompute the IP2D/IP3D/SV1 columns from the tracks (``False``: take
                them from ``ds.jets``, as in a prepared HDF5 file).
            taggers: a subset of this set's taggers (default: all loaded).

        Returns:
            The :class:`Predictions`.

        Raises:
            TaggerInputError: an empty dataset or a non-finite discriminant.
        """
        chosen = self._chosen(taggers)
        if len(ds) == 0:
            raise TaggerInputError("no jets to tag (empty dataset)")
        full = self.add_inputs(ds, high_level=high_level, taggers=chosen)
        p_rnn = np.stack([full.jets[c] for c in RNNIP_COLUMNS], axis=1) if "rnnip" in chosen else None
        from taggers.algorithms.mv2 import mv2_discriminant, predict_mv2
        from taggers.nn.dl1 import predict_dl1

        p_dl1 = predict_dl1(self._need(self.dl1, "dl1"), full, threads=self.threads) if "dl1" in chosen else None
        score = predict_mv2(self._need(self.mv2, "mv2"), full) if "mv2" in chosen else None
        disc: dict[str, np.ndarray] = {}
        for t in chosen:
            if t in IPXD_TAGGERS:
                fc = self.fc(t)
                assert fc is not None
                disc[t] = ip_discriminant(full.jets[f"{t}_log_pb_pu"], full.jets[f"{t}_log_pc_pu"], fc)
            elif t == "mv2":
                disc[t] = mv2_discriminant(score)
            else:
                disc[t] = tagger_discriminant(p_rnn if t == "rnnip" else p_dl1, t, self.cfg.discriminant_fc)
        for name, d in disc.items():
            if not np.all(np.isfinite(d)):
                raise TaggerInputError(f"{name} discriminant holds NaN/inf values")
        return Predictions(dataset=full, discriminants=disc, rnnip=p_rnn, dl1=p_dl1, mv2_score=score)

    def describe(self) -> dict[str, Any]:
        """Provenance for metadata: files, hashes, f_c, the dataset the models were trained on."""
        return {
            **self.provenance,
            "fc": {t: self.fc(t) for t in self.taggers},
            "features_hash": features_hash(self.cfg),
        }

    def model_files(self) -> list[str]:
        """The model and template files this set was loaded from (for provenance records)."""
        files = self.provenance.get("files") or {}
        return [str(v["path"]) for v in files.values() if isinstance(v, Mapping) and "path" in v]


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelMismatchError(f"{path}: not valid JSON ({exc})") from exc
    return dict(data)


def load_models(
    model_dir: str | os.PathLike[str],
    cfg: TaggersConfig,
    *,
    ipxd_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    rnnip_backend: str | None = None,
    device: str | None = "cpu",
    taggers: Collection[str] | None = None,
) -> TaggerModels:
    """Load and cross-check the trained taggers.

    Args:
        model_dir: the model directory of :mod:`taggers.train`.
        cfg: the ``taggers`` section the models were trained with.
        ipxd_dir: the IP2D/IP3D templates (default ``<model_dir>/../ipxd``).
        threads: torch / ONNX Runtime threads (default ``taggers.threads``).
        rnnip_backend: ``torch`` or ``onnx`` (default ``taggers.decoration.rnnip_backend``).
        device: where the networks run.
        taggers: the taggers needed (default: all); only their files are read.

    Returns:
        The :class:`TaggerModels`.

    Raises:
        MissingModelError: listing every missing file.
        ModelMismatchError: the models, templates and config do not belong together
            (different prepared dataset, templates, RNNIP model for DL1, feature
            configuration, n_max or inputs).
    """
    chosen = select_taggers(taggers)
    needed = {k for t in chosen for k in _NEEDS[t]}
    mdir = Path(model_dir)
    idir = Path(ipxd_dir) if ipxd_dir is not None else mdir.parent / "ipxd"
    wanted = {t: mdir / f for t, f in MODEL_FILES.items() if t in needed} | {
        t: idir / f for t, f in IPXD_FILES.items() if t in needed
    }
    backend = rnnip_backend or cfg.decoration.rnnip_backend
    if backend == "onnx" and "rnnip" in needed:
        wanted["rnnip.onnx"] = mdir / ONNX_FILES["rnnip"]
    missing = [str(p) for p in wanted.values() if not p.is_file()]
    if missing:
        raise MissingModelError(
            f"the tagger model set is incomplete: missing {', '.join(missing)} "
            f"(run taggers.prepare and taggers.train for every tagger first)"
        )
    sha = {t: file_sha256(p) for t, p in wanted.items()}
    templates = {t: IPTemplates.load(wanted[t]) for t in IPXD_TAGGERS if t in needed}
    for t, tpl in templates.items():
        if tpl.kind != t:
            raise ModelMismatchError(f"{wanted[t]} holds {tpl.kind} templates, not {t}")
        if tpl.n_grades != int(cfg.tracks.n_grades):
            raise ModelMismatchError(
                f"mismatched model and feature configuration: {wanted[t]} has {tpl.n_grades} "
                f"grades, taggers.tracks.n_grades is {cfg.tracks.n_grades}"
            )
    from taggers.algorithms.mv2 import load_mv2
    from taggers.nn.dl1 import load_dl1
    from taggers.nn.rnnip import load_rnnip

    rnnip = load_rnnip(wanted["rnnip"], n_max=int(cfg.tracks.n_max), device=device) if "rnnip" in needed else None
    mv2 = load_mv2(wanted["mv2"]) if "mv2" in needed else None
    dl1 = load_dl1(wanted["dl1"], device=device) if "dl1" in needed else None

    # inputs the models read must be columns the stages produce
    reads: list[tuple[str, list[str], set[str]]] = []
    if mv2 is not None:
        reads.append(("mv2", mv2.feature_names, set()))
    if dl1 is not None:
        assert dl1.meta is not None
        reads.append(("dl1", list(dl1.meta["feature_names"]), set(RNNIP_COLUMNS)))
    for name, feats, extra in reads:
        unknown = [f for f in feats if f not in _HIGH_LEVEL_COLUMNS | extra]
        if unknown:
            raise ModelMismatchError(
                f"mismatched model and feature file: {wanted[name]} reads {unknown}, which "
                f"taggers.prepare / taggers.decorate do not provide"
            )

    # provenance cross-checks
    sidecars = {t: _read_sidecar(metrics_file(mdir, t)) for t in MODEL_FILES if t in needed}
    datasets = {t: (s or {}).get("dataset") for t, s in sidecars.items()}
    if any(s is None for s in sidecars.values()):
        log.warning(
            "no training sidecar for %s: provenance checks skipped for them",
            [t for t, s in sidecars.items() if s is None],
        )
    records = {t: DatasetProvenance.from_dict(d, source=str(metrics_file(mdir, t)))
               for t, d in datasets.items() if d}
    ids = {t: r.dataset_id for t, r in records.items()}
    if len(set(ids.values())) > 1:
        raise ModelMismatchError(
            f"mismatched models in {mdir}: trained on different prepared datasets {ids}"
        )
    fh = features_hash(cfg)
    for t, r in records.items():
        if r.features_hash != fh:
            raise ModelMismatchError(
                f"mismatched model and feature configuration: {wanted[t]} was trained on jet "
                f"columns built with another taggers.jets/tracks/sv1 config "
                f"({r.features_hash} != {fh})"
            )
        for k in IPXD_TAGGERS:
            rec = r.ipxd_sha256.get(k)
            if rec is not None and k in sha and rec != sha[k]:
                raise ModelMismatchError(
                    f"mismatched model and feature file: {wanted[t]} was trained with other "
                    f"{k} templates than {wanted[k]}"
                )
    rec = (sidecars.get("dl1") or {}).get("rnnip_sha256")
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
        cfg=cfg,
        taggers=chosen,
        templates=templates,
        rnnip=rnnip,
        mv2=mv2,
        dl1=dl1,
        model_dir=mdir,
        ipxd_dir=idir,
        provenance=provenance,
        threads=int(threads if threads is not None else cfg.threads),
        rnnip_backend=backend,
    )
