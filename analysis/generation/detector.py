"""The parametric ATLAS-like detector: one Pythia batch in, NanoAOD-style collections out.

:func:`simulate` is a pure function of the awkward batch from ``Pythia.nextBatch``, a
``numpy.random.Generator``, the ``detector`` configuration section and, with pile-up, the
minimum-bias library and ⟨μ⟩. It has no Python loop over particles or events: every step
works on the flattened batch (see :class:`analysis.generation.record.FlatRecord`), with
numba kernels for the per-event pairwise ΔR searches. The steps (docs/detector.md):
beam spot → pile-up overlay → ancestry → conversions and tracks (beam-line frame) →
vertices, primary vertex and track association → tracks at the primary vertex → towers →
pile-up density ρ → EM-scale jets → calibrated jets, JVT inputs → truth jets and labels →
photons and leptons.
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np

from analysis.core.config import DetectorConfig
from analysis.generation.calorimeter import simulate_towers
from analysis.generation.jets import (
    antikt,
    calibrate,
    hadron_cone_label,
    jvt_inputs,
    local_index,
    match_nearest,
    pileup_density,
    track_association_cone,
)
from analysis.generation.objects import reconstruct_leptons, reconstruct_photons
from analysis.generation.pileup import PileupLibrary, overlay
from analysis.generation.record import FlatRecord, charge_of
from analysis.generation.tracking import photon_conversions, simulate_tracks, to_vertex
from analysis.generation.truth import (
    ancestry,
    hard_record,
    last_copy,
)
from analysis.generation.vertexing import reconstruct_vertices

__all__ = [
    "TOWER_ENERGY_MANTISSA_BITS",
    "TRUTH_HADRON_PT_MIN_GEV",
    "reduce_precision",
    "simulate",
]

#: pT threshold (GeV) of the stored weakly decaying b/c hadrons (``TruthHadron``)
TRUTH_HADRON_PT_MIN_GEV = 1.0
F32 = np.float32


def reduce_precision(x: np.ndarray, mantissa_bits: int) -> np.ndarray:
    """Round float32 values to ``mantissa_bits`` of mantissa (NanoAOD-style lossy packing).

    The relative rounding error is below 2^-(bits+1); zeros of the dropped bits compress.

    Args:
        x: values (any unit; converted to float32).
        mantissa_bits: mantissa bits kept (1-22).

    Returns:
        The rounded float32 array, same shape and unit as ``x``.
    """
    a = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    drop = 23 - mantissa_bits
    rounded = (a + np.uint32(1 << (drop - 1))) & np.uint32(~((1 << drop) - 1) & 0xFFFFFFFF)
    return rounded.view(np.float32)


TOWER_ENERGY_MANTISSA_BITS = 12  # 2.4e-4 relative: far below the calorimeter resolution


def _collection(event: np.ndarray, n_events: int, fields: dict[str, np.ndarray]) -> ak.Array:
    """Jagged record array from flat, event-sorted fields."""
    counts = np.bincount(event, minlength=n_events)
    return ak.unflatten(ak.zip(fields, depth_limit=1), counts)


def _order(event: np.ndarray, pt: np.ndarray) -> np.ndarray:
    """Permutation sorting a flat collection by event, then by decreasing pT."""
    return np.lexsort((-pt, event))


def simulate(
    events: ak.Array,
    rng: np.random.Generator,
    det: DetectorConfig,
    pileup: PileupLibrary | None = None,
    mu: float = 0.0,
) -> dict[str, Any]:
    """Run the detector on a batch.

    Args:
        events: the awkward array from ``Pythia.nextBatch`` (field ``prt``; GeV, mm).
        rng: the random generator of this shard; all randomness comes from it.
        det: the ``detector`` configuration section.
        pileup: the minimum-bias library to overlay (``None``: no pile-up).
        mu: ⟨μ⟩, the mean number of overlaid interactions per event.

    Returns:
        Event-level numpy arrays (``GenVtx_*``, ``PV_*``, ``Pileup_nPU``; mm) and jagged
        collections (``Track``, ``Jet``, ``GenJet``, ``Tower``, ``Photon``, ``Electron``,
        ``Muon``, ``TruthHadron``, ``GenPart``; GeV, mm) with the fields of
        ``docs/ntuple-format.md``.
    """
    n = len(events)
    b_field = det.magnetic_field_t
    bs = det.beam_spot_mm
    bs_sigma = np.array([bs.sigma_x, bs.sigma_y, bs.sigma_z])
    pv_true = rng.normal(0.0, 1.0, (n, 3)) * bs_sigma

    rec = FlatRecord.from_batch(events, pv_true)
    rec, interactions = overlay(rec, pv_true, pileup, mu, rng, bs_sigma)
    anc = ancestry(rec)
    charge = charge_of(rec.pdg_id)
    eta_all, phi_all, pt_all = rec.eta, rec.phi, rec.pt
    hard = rec.interaction == 0

    # --- inner detector: tracks (beam-line frame), vertices, then tracks at the PV
    converted = photon_conversions(rec, rng, det.tracking, det.material)
    tracks = simulate_tracks(rec, anc, rng, det.tracking, det.material, b_field, converted)
    vertices = reconstruct_vertices(tracks, interactions, n, rng, det.vertexing, det.pv_resolution_mm)
    tracks = to_vertex(tracks, vertices.pv)
    order = _order(tracks.event, tracks.pt)
    tracks, track_vertex = tracks.take(order), vertices.track_vertex[order]
    pv_reco = vertices.pv

    # --- calorimeter and jets
    cal = det.calorimeter
    towers = simulate_towers(rec, charge, rng, cal, b_field, mu)
    t_e = towers.e
    t_pt = t_e / np.cosh(towers.eta)
    jcfg = det.jets
    rho = pileup_density(towers.event, towers.eta, towers.phi, t_pt, n, jcfg)
    raw_jets = antikt(
        towers.event, t_pt * np.cos(towers.phi), t_pt * np.sin(towers.phi), t_pt * np.sinh(towers.eta),
        t_e, n, jcfg.radius, jcfg.clustering_pt_min_gev, jcfg.eta_max,
    )
    jets, _ = calibrate(raw_jets, rho, jcfg)
    a_id = rec.abs_id
    gen_vis = np.flatnonzero(
        rec.visible & hard & (np.abs(eta_all) < cal.eta_max)
    )
    gen_jets = antikt(
        rec.event[gen_vis], rec.px[gen_vis], rec.py[gen_vis], rec.pz[gen_vis], rec.e[gen_vis], n,
        jcfg.radius, jcfg.genjet_pt_min_gev, jcfg.eta_max,
    )
    jet_gen = match_nearest(jets.event, jets.eta, jets.phi, gen_jets.event, gen_jets.eta,
                            gen_jets.phi, n, 0.3)

    # --- truth hadrons and jet flavour labels
    had = np.flatnonzero((anc.weak_b | anc.weak_c) & (pt_all > TRUTH_HADRON_PT_MIN_GEV))
    had = had[_order(rec.event[had], pt_all[had])]
    taus = np.flatnonzero((a_id == 15) & last_copy(rec) & (pt_all > jcfg.label_hadron_pt_min_gev))
    lab_mask = pt_all[had] > jcfg.label_hadron_pt_min_gev
    n_lab_had = int(lab_mask.sum())
    labellers = np.concatenate([had[lab_mask], taus])
    lab_flav = np.concatenate([anc.flavour[had[lab_mask]], np.full(taus.size, 15)])
    jet_label, jet_of_labeller = hadron_cone_label(
        jets, n, rec.event[labellers], eta_all[labellers], phi_all[labellers], lab_flav, jcfg.label_dr
    )
    had_jet = np.full(had.size, -1, dtype=np.int64)
    had_jet[lab_mask] = jet_of_labeller[:n_lab_had]
    d1 = rec.daughter1[had]

    # --- track-to-jet association (shrinking cone, nearest jet) and the JVT inputs
    track_jet = match_nearest(tracks.event, tracks.eta, tracks.phi, jets.event, jets.eta, jets.phi,
                              n, track_association_cone(jets.pt))
    n_track_per_jet = np.bincount(track_jet[track_jet >= 0], minlength=jets.pt.size)
    corr_jvf, rpt = jvt_inputs(jets.pt, track_jet, tracks.pt, track_vertex, tracks.event, n,
                               jcfg.corrjvf_k)

    # --- photons and leptons
    ecal = cal.ecal
    photons = reconstruct_photons(rec, anc, tracks, track_vertex, converted, pv_reco, rho, charge,
                                  rng, det.photons, det.material, cal, b_field)
    electrons = reconstruct_leptons(rec, anc, tracks, rng, det.leptons, ecal, 11, charge, track_vertex)
    muons = reconstruct_leptons(rec, anc, tracks, rng, det.leptons, ecal, 13, charge, track_vertex)

    # --- hard-process record
    gidx, gmother = hard_record(rec)
    g_off = np.searchsorted(gidx, rec.offsets[:-1])
    g_local_mother = np.full(gidx.size, -1, dtype=np.int64)
    ok = gmother >= 0
    g_local_mother[ok] = np.searchsorted(gidx, gmother[ok]) - g_off[rec.event[gidx[ok]]]

    out: dict[str, Any] = {
        "GenVtx_x": pv_true[:, 0].astype(F32), "GenVtx_y": pv_true[:, 1].astype(F32),
        "GenVtx_z": pv_true[:, 2].astype(F32),
        "PV_x": pv_reco[:, 0].astype(F32), "PV_y": pv_reco[:, 1].astype(F32),
        "PV_z": pv_reco[:, 2].astype(F32), "PV_npvs": vertices.n_vertices.astype(np.int16),
        "Pileup_nPU": interactions.n_pileup.astype(np.int16),
    }
    out["Track"] = _collection(tracks.event, n, {
        "pt": tracks.pt.astype(F32), "eta": tracks.eta.astype(F32), "phi": tracks.phi.astype(F32),
        "charge": tracks.charge.astype(np.int8), "d0": tracks.d0.astype(F32), "z0": tracks.z0.astype(F32),
        "d0Err": tracks.d0_err.astype(F32), "z0Err": tracks.z0_err.astype(F32),
        "grade": tracks.grade.astype(np.int8), "truthOrigin": tracks.origin.astype(np.int8),
        "genPdgId": tracks.gen_pdg_id.astype(np.int32),
        "jetIdx": local_index(track_jet, jets.event, n).astype(np.int16),
        "vtxIdx": track_vertex.astype(np.int16),
    })
    out["Jet"] = _collection(jets.event, n, {
        "pt": jets.pt.astype(F32), "eta": jets.eta.astype(F32), "phi": jets.phi.astype(F32),
        "mass": jets.mass.astype(F32), "hadronConeExclTruthLabelID": jet_label,
        "genJetIdx": local_index(jet_gen, gen_jets.event, n).astype(np.int16),
        "nTrack": n_track_per_jet.astype(np.int16),
        "corrJVF": corr_jvf.astype(F32), "rpt": rpt.astype(F32),
    })
    out["GenJet"] = _collection(gen_jets.event, n, {
        "pt": gen_jets.pt.astype(F32), "eta": gen_jets.eta.astype(F32),
        "phi": gen_jets.phi.astype(F32), "mass": gen_jets.mass.astype(F32),
    })
    out["Tower"] = _collection(towers.event, n, {
        "eta": towers.eta.astype(F32), "phi": towers.phi.astype(F32),
        "eEM": reduce_precision(towers.e_em, TOWER_ENERGY_MANTISSA_BITS),
        "eHad": reduce_precision(towers.e_had, TOWER_ENERGY_MANTISSA_BITS),
    })
    po = _order(photons.event, photons.pt)
    out["Photon"] = _collection(photons.event[po], n, {
        "pt": photons.pt[po].astype(F32), "eta": photons.eta[po].astype(F32),
        "phi": photons.phi[po].astype(F32), "isoCalo": photons.iso_calo[po].astype(F32),
        "isoTrack": photons.iso_track[po].astype(F32), "isTight": photons.is_tight[po],
        "genPartFlav": photons.gen_part_flav[po],
    })
    for name, lep in (("Electron", electrons), ("Muon", muons)):
        lo = _order(lep.event, lep.pt)
        out[name] = _collection(lep.event[lo], n, {
            "pt": lep.pt[lo].astype(F32), "eta": lep.eta[lo].astype(F32), "phi": lep.phi[lo].astype(F32),
            "charge": lep.charge[lo], "isoTrack": lep.iso_track[lo].astype(F32),
            "genPartFlav": lep.gen_part_flav[lo],
        })
    dec_x = np.where(d1 >= 0, rec.vx[np.maximum(d1, 0)], rec.vx[had])
    dec_y = np.where(d1 >= 0, rec.vy[np.maximum(d1, 0)], rec.vy[had])
    dec_z = np.where(d1 >= 0, rec.vz[np.maximum(d1, 0)], rec.vz[had])
    hev = rec.event[had]
    out["TruthHadron"] = _collection(hev, n, {
        "pt": pt_all[had].astype(F32), "eta": eta_all[had].astype(F32), "phi": phi_all[had].astype(F32),
        "mass": rec.m[had].astype(F32), "pdgId": rec.pdg_id[had].astype(np.int32),
        "flavour": anc.flavour[had].astype(np.int8),
        "fromB": (anc.flavour[had] == 4) & (anc.b_hadron[had] >= 0),
        "decayX": (dec_x - pv_true[hev, 0]).astype(F32), "decayY": (dec_y - pv_true[hev, 1]).astype(F32),
        "decayZ": (dec_z - pv_true[hev, 2]).astype(F32),
        "jetIdx": local_index(had_jet, jets.event, n).astype(np.int16),
    })
    out["GenPart"] = _collection(rec.event[gidx], n, {
        "pt": pt_all[gidx].astype(F32), "eta": np.clip(eta_all[gidx], -1e3, 1e3).astype(F32),
        "phi": phi_all[gidx].astype(F32), "mass": rec.m[gidx].astype(F32),
        "pdgId": rec.pdg_id[gidx].astype(np.int32), "status": rec.status[gidx].astype(np.int16),
        "genPartIdxMother": g_local_mother.astype(np.int16),
    })
    return out
