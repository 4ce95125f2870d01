"""Vertex reconstruction, primary-vertex choice and track-to-vertex association.

With pile-up every event holds the hard-scatter interaction and ⟨μ⟩ others, spread along
the beam (σz ≈ 35–45 mm). :func:`reconstruct_vertices` turns the measured tracks into
vertices the way a vertex finder's output looks:

1. *finding* (truth-assisted): the tracks of each interaction that pass near the beam line
   (|d0| < ``fit_d0_max_mm``) are its vertex candidates; fakes and far secondaries are not;
2. *fit*: the error-weighted mean of the tracks' measured z, refitted once without tracks
   beyond 5σ; a vertex needs ``min_tracks`` tracks, so soft pile-up interactions are lost as
   in ATLAS;
3. *merging*: fitted vertices closer than ``merge_distance_mm`` in z become one (their
   tracks pooled), the resolution-limited merging of real vertex finders;
4. *primary vertex*: the vertex with the largest Σ pT² of its tracks. Its transverse
   position is that of its dominant interaction smeared by the beam-spot-constrained
   resolution ``pv_resolution_mm.xy``; its z is the fit, smeared further by the floor
   ``pv_resolution_mm.z``. The hard scatter is not always the choice (soft processes at
   high ⟨μ⟩): the detector does not peek;
5. *association* (ATLAS TTVA "Loose"): a track used in a fit belongs to that vertex; any
   other track to the vertex nearest in |Δz0 sinθ|, if within ``association_z0sintheta_mm``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from analysis.core.config.detector import PrimaryVertexResolution, VertexingConfig
from analysis.generation.geometry import offsets_from_event
from analysis.generation.pileup import Interactions
from analysis.generation.tracking import Tracks

__all__ = ["Vertices", "reconstruct_vertices"]


@dataclass(frozen=True)
class Vertices:
    """Reconstructed vertices of a batch, event-sorted, in each event by decreasing Σ pT²
    (local index 0 is the primary vertex). Positions in mm, Σ pT² in GeV²."""

    event: np.ndarray
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    n_tracks: np.ndarray
    sum_pt2: np.ndarray
    #: the true interaction (0 hard scatter, k pile-up) that dominates each vertex's Σ pT²
    interaction: np.ndarray
    #: ``(n_events, 3)``: the primary vertex, or the beam-spot centre (0, 0, 0) without vertices
    pv: np.ndarray
    #: vertices per event (NanoAOD ``PV_npvs``)
    n_vertices: np.ndarray
    #: for every track: local index of its vertex in its event, or -1
    track_vertex: np.ndarray

    @property
    def pv_interaction(self) -> np.ndarray:
        """The true interaction behind each event's primary vertex (-1 without vertices)."""
        out = np.full(self.pv.shape[0], -1, dtype=np.int64)
        first = offsets_from_event(self.event, self.pv.shape[0])
        has = self.n_vertices > 0
        out[has] = self.interaction[first[:-1][has]]
        return out


@numba.njit(cache=True)
def _associate(
    t_event: np.ndarray, t_z: np.ndarray, t_sin: np.ndarray, t_vertex: np.ndarray,
    v_offsets: np.ndarray, v_z: np.ndarray, window: float,
) -> np.ndarray:
    """Nearest vertex in |Δz sinθ| (within ``window``) for tracks not yet assigned."""
    out = t_vertex.copy()
    for i in range(t_z.size):
        if out[i] >= 0:
            continue
        ev = t_event[i]
        best = window
        for j in range(v_offsets[ev], v_offsets[ev + 1]):
            d = abs(t_z[i] - v_z[j]) * t_sin[i]
            if d < best:
                best = d
                out[i] = j - v_offsets[ev]
    return out


def reconstruct_vertices(
    tracks: Tracks,
    interactions: Interactions,
    n_events: int,
    rng: np.random.Generator,
    cfg: VertexingConfig,
    resolution: PrimaryVertexResolution,
) -> Vertices:
    """Find, fit and merge vertices, choose the primary vertex and associate every track.

    Args:
        tracks: measured tracks with ``d0`` w.r.t. the beam line and absolute ``z0`` (mm)
            (:func:`analysis.generation.tracking.simulate_tracks`).
        interactions: the true vertices of the batch (:func:`analysis.generation.pileup.overlay`).
        n_events: events in the batch.
        rng: the shard's random generator.
        cfg: the ``detector.vertexing`` section.
        resolution: the ``detector.pv_resolution_mm`` section.

    Returns:
        The vertices, the primary vertex of each event and each track's vertex.
    """
    n_trk = tracks.pt.size
    inter = tracks.interaction.astype(np.int64)
    n_int = int(max(int(inter.max(initial=0)), 0)) + 1
    fit = (inter >= 0) & (np.abs(tracks.d0) < cfg.fit_d0_max_mm)
    fidx = np.flatnonzero(fit)
    key = tracks.event[fidx] * n_int + inter[fidx]
    w = 1.0 / np.maximum(tracks.z0_err[fidx], 1e-6) ** 2
    z = tracks.z0[fidx]
    uniq, inv = np.unique(key, return_inverse=True)
    sw = np.bincount(inv, weights=w, minlength=uniq.size)
    z_fit = np.bincount(inv, weights=w * z, minlength=uniq.size) / sw
    # one refit without the tracks beyond 5 sigma (tails, wrong-vertex secondaries)
    pull = np.abs(z - z_fit[inv]) / np.sqrt(1.0 / w + 1.0 / sw[inv])
    good = pull < 5.0
    fidx, inv, w, z = fidx[good], inv[good], w[good], z[good]
    sw = np.bincount(inv, weights=w, minlength=uniq.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        z_fit = np.bincount(inv, weights=w * z, minlength=uniq.size) / sw
    ntrk = np.bincount(inv, minlength=uniq.size)
    spt2 = np.bincount(inv, weights=tracks.pt[fidx] ** 2, minlength=uniq.size)
    ok = ntrk >= cfg.min_tracks
    cand = np.flatnonzero(ok)
    c_event, c_inter = uniq[cand] // n_int, uniq[cand] % n_int

    # merge neighbours in z (per event, in z order)
    order = np.lexsort((z_fit[cand], c_event))
    cand, c_event, c_inter = cand[order], c_event[order], c_inter[order]
    zc = z_fit[cand]
    new_group = np.ones(cand.size, dtype=bool)
    if cand.size > 1:
        new_group[1:] = (c_event[1:] != c_event[:-1]) | (np.diff(zc) >= cfg.merge_distance_mm)
    group = np.cumsum(new_group) - 1
    n_groups = int(group[-1]) + 1 if cand.size else 0
    g_sw = np.bincount(group, weights=sw[cand], minlength=n_groups)
    g_z = np.bincount(group, weights=sw[cand] * zc, minlength=n_groups) / np.maximum(g_sw, 1e-30)
    g_n = np.bincount(group, weights=ntrk[cand], minlength=n_groups).astype(np.int64)
    g_spt2 = np.bincount(group, weights=spt2[cand], minlength=n_groups)
    g_event = c_event[new_group] if cand.size else np.zeros(0, dtype=np.int64)
    # the dominant interaction of each group: its member with the largest sum pT^2
    dom = np.lexsort((-spt2[cand], group))
    first_of_group = np.flatnonzero(np.r_[True, group[dom][1:] != group[dom][:-1]]) if cand.size else dom
    g_inter = c_inter[dom][first_of_group]

    # order the vertices of each event by decreasing sum pT^2
    vorder = np.lexsort((-g_spt2, g_event))
    rank = np.empty(n_groups, dtype=np.int64)
    rank[vorder] = np.arange(n_groups)
    v_event = g_event[vorder]
    v_offsets = offsets_from_event(v_event, n_events)
    local = rank - v_offsets[g_event]  # local index of every group

    # positions: transverse from the dominant interaction (beam-spot constrained), z the fit
    inter_offsets = offsets_from_event(interactions.event, n_events)
    at = inter_offsets[g_event] + g_inter
    gx = interactions.x[at] + rng.normal(0.0, 1.0, n_groups) * resolution.xy
    gy = interactions.y[at] + rng.normal(0.0, 1.0, n_groups) * resolution.xy
    gz = g_z + rng.normal(0.0, 1.0, n_groups) * resolution.z

    # track-to-vertex association: fit tracks first, then the nearest in |dz0 sin(theta)|
    cand_group = np.full(uniq.size, -1, dtype=np.int64)
    cand_group[cand] = group
    t_vertex = np.full(n_trk, -1, dtype=np.int64)
    g_of_track = cand_group[inv]
    has = g_of_track >= 0
    t_vertex[fidx[has]] = local[g_of_track[has]]
    sin_t = 1.0 / np.cosh(tracks.eta)
    t_vertex = _associate(tracks.event.astype(np.int64), tracks.z0.astype(np.float64),
                          sin_t.astype(np.float64), t_vertex, v_offsets, gz[vorder].astype(np.float64),
                          float(cfg.association_z0sintheta_mm))

    n_vertices = np.diff(v_offsets)
    pv = np.zeros((n_events, 3))
    with_pv = n_vertices > 0
    first = v_offsets[:-1][with_pv]
    pv[with_pv, 0] = gx[vorder][first]
    pv[with_pv, 1] = gy[vorder][first]
    pv[with_pv, 2] = gz[vorder][first]
    return Vertices(
        event=v_event, x=gx[vorder], y=gy[vorder], z=gz[vorder], n_tracks=g_n[vorder],
        sum_pt2=g_spt2[vorder], interaction=g_inter[vorder], pv=pv, n_vertices=n_vertices,
        track_vertex=t_vertex,
    )
