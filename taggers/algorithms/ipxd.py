"""IP2D / IP3D: per-grade track impact-parameter likelihood templates and jet log-likelihood ratios.

* **Templates:** for each hypothesis (b, c, light: labels 5, 4, 0) and track grade, the
  histogram of the valid tracks' signed d0 significance ``sd0`` (IP2D) or of (``sd0``,
  ``sz0``) (IP3D), filled on the training jets with their training weights. Values beyond
  the outer edges go to the edge bins. Smoothing (``taggers.ip2d.smoothing``): a Gaussian
  kernel of ``kernel_sigma_bins`` in bin-index units along each axis (reflecting edges),
  then ``floor_fraction`` × the mean bin content added to every bin so that no bin is
  empty, then normalisation to 1 over the bins of each (flavour, grade). The stored value
  is the probability per bin, so the ratios below do not depend on bin widths. A (flavour,
  grade) without any training track gets a flat template (logged).
* **Jet outputs:** ``L_f = Σ_tracks ln p_f(track)``; ``log_pb_pu = L_b − L_u`` (the classic
  Σ ln(p_b/p_u)), ``log_pb_pc``, ``log_pc_pu``; ``pb, pc, pu = softmax(L_b, L_c, L_u)``
  (equal priors), for ``taggers.discriminant.discriminant(pb, pc, pu, fc)``. A jet without
  tracks has all log-ratios 0 and pb = pc = pu = 1/3.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from analysis.core.atomic import atomic_path
from analysis.core.config.taggers import TaggersConfig
from analysis.core.errors import ConfigError, InputError
from taggers.features import TaggingDataset

log = logging.getLogger(__name__)

__all__ = [
    "HYPOTHESES",
    "IPTemplates",
    "evaluate",
    "fit_templates",
    "smooth_and_normalise",
    "track_log_likelihoods",
]

#: hypotheses of the templates (HadronConeExclTruthLabelID), in storage order
HYPOTHESES: tuple[int, ...] = (5, 4, 0)
_AXES = {"ip2d": ("sd0",), "ip3d": ("sd0", "sz0")}


@dataclass
class IPTemplates:
    """Likelihood templates: ``prob[h, grade, *bins]`` sums to 1 over the bins."""

    kind: str
    edges: list[np.ndarray]
    prob: np.ndarray
    hypotheses: tuple[int, ...] = HYPOTHESES
    smoothing: dict[str, float] = field(default_factory=dict)

    @property
    def variables(self) -> tuple[str, ...]:
        """The template axes: ``("sd0",)`` (IP2D) or ``("sd0", "sz0")`` (IP3D)."""
        return _AXES[self.kind]

    @property
    def n_grades(self) -> int:
        """Number of track grades."""
        return int(self.prob.shape[1])

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write an ``.npz`` (binning, probabilities, settings) atomically."""
        header = {"kind": self.kind, "smoothing": self.smoothing, "variables": list(self.variables)}
        arrays: dict[str, Any] = {
            "prob": self.prob,
            "hypotheses": np.asarray(self.hypotheses),
            "header": np.asarray(json.dumps(header)),
            **{f"edges_{i}": e for i, e in enumerate(self.edges)},
        }
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> IPTemplates:
        """The templates of a file written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z["header"]))
            n_axes = len(_AXES[header["kind"]])
            return cls(
                kind=header["kind"],
                edges=[np.asarray(z[f"edges_{i}"], float) for i in range(n_axes)],
                prob=np.asarray(z["prob"], float),
                hypotheses=tuple(int(h) for h in z["hypotheses"]),
                smoothing=dict(header["smoothing"]),
            )


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value; underflow/overflow go to the first/last bin."""
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, edges.size - 2)


def _flat_bins(tpl_edges: list[np.ndarray], values: list[np.ndarray]) -> np.ndarray:
    idx = np.zeros(values[0].shape, dtype=np.int64)
    for e, v in zip(tpl_edges, values):
        idx = idx * (e.size - 1) + _bin_index(v, e)
    return idx


def smooth_and_normalise(
    hist: np.ndarray, n_lead: int, kernel_sigma_bins: float, floor_fraction: float
) -> np.ndarray:
    """Smooth the trailing (bin) axes of ``hist``, add the floor, normalise each leading slice."""
    h = np.asarray(hist, dtype=np.float64)
    if kernel_sigma_bins > 0:
        sigma = (0.0,) * n_lead + (kernel_sigma_bins,) * (h.ndim - n_lead)
        h = gaussian_filter(h, sigma=sigma, mode="reflect", truncate=3.0)
    bin_axes = tuple(range(n_lead, h.ndim))
    total = h.sum(axis=bin_axes, keepdims=True)
    n_bins = int(np.prod(h.shape[n_lead:]))
    h = h + floor_fraction * total / n_bins
    total = h.sum(axis=bin_axes, keepdims=True)
    flat = np.full_like(h, 1.0 / n_bins)
    return np.where(total > 0, h / np.where(total > 0, total, 1.0), flat)


def fit_templates(ds: TaggingDataset, cfg: TaggersConfig, kind: str) -> IPTemplates:
    """Fill, smooth and normalise the ``kind`` templates on ``ds``.

    Args:
        ds: the training split (its ``jets['weight']`` are used).
        cfg: the ``taggers`` section (``ip2d``/``ip3d`` binning and smoothing,
            ``tracks.n_grades``).
        kind: ``"ip2d"`` or ``"ip3d"``.

    Returns:
        The :class:`IPTemplates`.
    """
    if kind not in _AXES:
        raise ValueError(f"kind must be one of {sorted(_AXES)}, not {kind!r}")
    kcfg = cfg.ip2d if kind == "ip2d" else cfg.ip3d
    n_grades = int(cfg.tracks.n_grades)
    edges = [np.asarray(getattr(kcfg, f"{v}_edges"), dtype=np.float64) for v in _AXES[kind]]
    for v, e in zip(_AXES[kind], edges):
        if np.any(np.diff(e) <= 0):
            raise ConfigError(f"taggers.{kind}.{v}_edges must increase strictly")
    n_bins = [e.size - 1 for e in edges]

    valid = ds.tracks["valid"]
    label = np.broadcast_to(ds.jets["label"][:, None], valid.shape)[valid]
    weight = np.broadcast_to(ds.jets["weight"][:, None], valid.shape)[valid].astype(np.float64)
    grade = ds.tracks["grade"][valid].astype(np.int64)
    _check_grades(grade, n_grades)
    hyp = np.full(label.shape, -1, dtype=np.int64)
    for i, h in enumerate(HYPOTHESES):
        hyp[label == h] = i
    use = hyp >= 0
    bins = _flat_bins(edges, [ds.tracks[v][valid][use].astype(np.float64) for v in _AXES[kind]])
    n_cells = int(np.prod(n_bins))
    key = (hyp[use] * n_grades + grade[use]) * n_cells + bins
    hist = np.bincount(key, weights=weight[use], minlength=len(HYPOTHESES) * n_grades * n_cells)
    hist = hist.reshape(len(HYPOTHESES), n_grades, *n_bins)
    for i, h in enumerate(HYPOTHESES):
        for g in range(n_grades):
            if not hist[i, g].any():
                log.warning(
                    "%s: no training tracks of grade %d in %s jets: flat template", kind, g, h
                )
    sm = kcfg.smoothing.to_dict()
    prob = smooth_and_normalise(hist, 2, sm["kernel_sigma_bins"], sm["floor_fraction"])
    log.info("%s templates from %d tracks of %d jets", kind, int(use.sum()), len(ds))
    return IPTemplates(kind, edges, prob, HYPOTHESES, sm)


def _check_grades(grade: np.ndarray, n_grades: int) -> None:
    bad = (grade < 0) | (grade >= n_grades)
    if bad.any():
        raise InputError(f"{int(bad.sum())} valid track(s) with grade outside 0..{n_grades - 1}")


def track_log_likelihoods(tpl: IPTemplates, ds: TaggingDataset) -> np.ndarray:
    """``ln p_h`` per track, shape ``(n_jets, n_max, n_hypotheses)``; 0 for padded tracks."""
    valid = ds.tracks["valid"]
    grade = ds.tracks["grade"][valid].astype(np.int64)
    _check_grades(grade, tpl.n_grades)
    bins = _flat_bins(tpl.edges, [ds.tracks[v][valid].astype(np.float64) for v in tpl.variables])
    logp = np.log(tpl.prob.reshape(len(tpl.hypotheses), tpl.n_grades, -1))
    out = np.zeros(valid.shape + (len(tpl.hypotheses),), dtype=np.float64)
    out[valid] = logp[:, grade, bins].T
    return out


def evaluate(tpl: IPTemplates, ds: TaggingDataset) -> dict[str, np.ndarray]:
    """Per-jet outputs, keys prefixed by the kind: ``{kind}_log_pb_pu``, ``_log_pb_pc``,
    ``_log_pc_pu``, ``_pb``, ``_pc``, ``_pu`` (float32)."""
    ll = track_log_likelihoods(tpl, ds).sum(axis=1)  # (n_jets, 3): L_b, L_c, L_u
    order = [tpl.hypotheses.index(h) for h in HYPOTHESES]
    lb, lc, lu = (ll[:, i] for i in order)
    m = ll.max(axis=1, keepdims=True)
    p = np.exp(ll - m)
    p /= p.sum(axis=1, keepdims=True)
    k = tpl.kind
    out = {
        f"{k}_log_pb_pu": lb - lu,
        f"{k}_log_pb_pc": lb - lc,
        f"{k}_log_pc_pu": lc - lu,
        f"{k}_pb": p[:, order[0]],
        f"{k}_pc": p[:, order[1]],
        f"{k}_pu": p[:, order[2]],
    }
    return {key: v.astype(np.float32) for key, v in out.items()}
