"""Small ROOT files for ingestion tests: hepline ntuples, CMS NanoAOD and Delphes lookalikes.

All writers use uproot's ``mktree``/``extend`` (classic TTrees; assigning a dict to a file
key would make an RNTuple) and fill plausible random values from the ``rng`` given, so a
seed gives the same file content. These are *not* physics samples: the real hepline
generator is ``analysis.generation``; these only exercise the readers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from analysis.format import (
    HEPLINE_COLLECTIONS,
    HEPLINE_EVENT_BRANCHES,
    HEPLINE_METADATA_KEY,
    HEPLINE_RUNS_BRANCHES,
    HEPLINE_VERTICES,
)

__all__ = ["write_delphes_fixture", "write_hepline_fixture", "write_nanoaod_fixture"]

_TWO_PI = 2.0 * np.pi


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def _phi(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.uniform(-np.pi, np.pi, n).astype(np.float32)


def _wrap(phi: np.ndarray) -> np.ndarray:
    return ((phi + np.pi) % _TWO_PI - np.pi).astype(np.float32)


def _local_index_or_none(
    rng: np.random.Generator, counts_src: np.ndarray, counts_tgt: np.ndarray, p_match: float
) -> np.ndarray:
    """For each source element, a random valid index into its event's target list (or -1)."""
    n_tgt = np.repeat(counts_tgt, counts_src)
    idx = np.floor(rng.uniform(0, 1, len(n_tgt)) * n_tgt).astype(np.int64)
    keep = (n_tgt > 0) & (rng.uniform(0, 1, len(n_tgt)) < p_match)
    return np.where(keep, idx, -1)


def _record(counts: np.ndarray, fields: Mapping[str, np.ndarray], dtypes: Mapping[str, str]):
    """A jagged record array (one list per event) with each field cast to its dtype."""
    counts = np.asarray(counts, dtype=np.int64)
    return ak.zip(
        {
            name: ak.unflatten(np.asarray(fields[name]).astype(dtypes[name]), counts)
            for name in dtypes
        },
        depth_limit=2,
    )


def _flat_record(fields: Mapping[str, np.ndarray], dtypes: Mapping[str, str]):
    return ak.zip({name: np.asarray(fields[name]).astype(dtypes[name]) for name in dtypes})


def _write_tree(
    f: Any,
    name: str,
    columns: Mapping[str, Any],
    *,
    counter_name: Callable[[str], str] = lambda c: "n" + c,
    field_name: Callable[[str, str], str] = lambda o, i: f"{o}_{i}",
    title: str = "",
) -> None:
    """``mktree`` + ``extend``; awkward records become one branch per field."""
    types: dict[str, Any] = {}
    data: dict[str, Any] = {}
    for key, value in columns.items():
        if isinstance(value, ak.Array):
            types[key] = value.type.content
        else:
            value = np.asarray(value)
            types[key] = value.dtype
        data[key] = value
    tree = f.mktree(
        name, types, title=title, counter_name=counter_name, field_name=field_name
    )
    n = len(next(iter(data.values()))) if data else 0
    if n:
        tree.extend(data)


def _drop(columns: dict[str, Any], drop: Iterable[str], sep: str = "_") -> dict[str, Any]:
    """Remove branches named ``drop`` (``Coll_field`` or a whole scalar branch)."""
    drop = set(drop)
    out: dict[str, Any] = {}
    for key, value in columns.items():
        if key in drop:
            continue
        if isinstance(value, ak.Array) and value.fields:
            keep = [fld for fld in value.fields if f"{key}{sep}{fld}" not in drop]
            if len(keep) != len(value.fields):
                value = ak.zip({fld: value[fld] for fld in keep}, depth_limit=value.ndim)
        out[key] = value
    return out


# ---------------------------------------------------------------------------------------
# hepline
# ---------------------------------------------------------------------------------------
_HADRONS = np.array(
    [(511, 5.2797, 5), (521, 5.2793, 5), (531, 5.3669, 5), (411, 1.8697, 4), (421, 1.8648, 4)],
    dtype=[("pdg", "i4"), ("mass", "f4"), ("flav", "i1")],
)


def _hepline_events(n: int, rng: np.random.Generator, shard: int, run: int, weighted: bool):
    cols: dict[str, Any] = {}
    cols["run"] = np.full(n, run, dtype=np.uint32)
    cols["luminosityBlock"] = np.full(n, shard, dtype=np.uint32)
    cols["event"] = (shard * 10**9 + np.arange(n) + 1).astype(np.uint64)
    weights = rng.normal(1.0, 0.2, n) if weighted else np.ones(n)
    cols["genWeight"] = weights.astype(np.float32)

    gen_vtx = {
        "x": rng.normal(0, 0.01, n),
        "y": rng.normal(0, 0.01, n),
        "z": rng.normal(0, 40.0, n),
    }
    pv = {
        "x": gen_vtx["x"] + rng.normal(0, 0.005, n),
        "y": gen_vtx["y"] + rng.normal(0, 0.005, n),
        "z": gen_vtx["z"] + rng.normal(0, 0.02, n),
    }
    cols["GenVtx"] = _flat_record(gen_vtx, HEPLINE_VERTICES["GenVtx"])
    cols["PV"] = _flat_record(pv, HEPLINE_VERTICES["PV"])

    # jets and truth jets: the first jets of an event are matched to the first truth jets
    n_jet = rng.poisson(4.0, n)
    n_gen = n_jet + rng.poisson(0.7, n)
    nj, ng = int(n_jet.sum()), int(n_gen.sum())
    jet_pt = (15.0 + rng.exponential(30.0, nj)).astype(np.float32)
    jet_eta = rng.uniform(-4.5, 4.5, nj).astype(np.float32)
    jet_phi = _phi(rng, nj)
    jet_local = np.arange(nj) - np.repeat(np.cumsum(n_jet) - n_jet, n_jet)
    gen_matched = rng.uniform(0, 1, nj) < 0.85
    gen_jet_idx = np.where(gen_matched, jet_local, -1)
    genjet = {
        "pt": (10.0 + rng.exponential(30.0, ng)),
        "eta": rng.uniform(-4.5, 4.5, ng),
        "phi": _phi(rng, ng),
        "mass": rng.uniform(1.0, 10.0, ng),
    }
    gen_start = np.repeat(np.cumsum(n_gen) - n_gen, n_jet)
    matched_global = (gen_start + jet_local)[gen_matched]
    genjet["pt"][matched_global] = jet_pt[gen_matched] * rng.normal(1.0, 0.1, gen_matched.sum())
    genjet["eta"][matched_global] = jet_eta[gen_matched] + rng.normal(0, 0.02, gen_matched.sum())
    genjet["phi"][matched_global] = _wrap(
        jet_phi[gen_matched] + rng.normal(0, 0.02, gen_matched.sum())
    )
    label = rng.choice(np.array([0, 4, 5, 15]), nj, p=[0.7, 0.1, 0.18, 0.02])

    # tracks: some around each central jet, the rest unassociated; shuffled within an event
    in_tracker = np.abs(jet_eta) < 2.5
    n_trk_jet = np.where(in_tracker, rng.poisson(5.0, nj), 0)
    n_trk_free = rng.poisson(6.0, n)
    trk_pt, trk_eta, trk_phi, trk_jet, n_trk = [], [], [], [], np.zeros(n, dtype=np.int64)
    j0 = 0
    for i in range(n):
        jets = slice(j0, j0 + n_jet[i])
        per_jet = n_trk_jet[jets]
        owner = np.repeat(np.arange(n_jet[i]), per_jet)
        k_free = n_trk_free[i]
        eta = np.concatenate(
            [
                np.repeat(jet_eta[jets], per_jet) + rng.normal(0, 0.08, per_jet.sum()),
                rng.uniform(-2.5, 2.5, k_free),
            ]
        )
        phi = np.concatenate(
            [
                np.repeat(jet_phi[jets], per_jet) + rng.normal(0, 0.08, per_jet.sum()),
                _phi(rng, k_free),
            ]
        )
        pt = np.concatenate(
            [
                1.0 + rng.exponential(0.08, per_jet.sum()) * np.repeat(jet_pt[jets], per_jet),
                1.0 + rng.exponential(2.0, k_free),
            ]
        )
        jet_idx = np.concatenate([owner, np.full(k_free, -1)])
        order = rng.permutation(len(pt))
        trk_pt.append(pt[order])
        trk_eta.append(np.clip(eta[order], -2.49, 2.49))
        trk_phi.append(_wrap(phi[order]))
        trk_jet.append(jet_idx[order])
        n_trk[i] = len(pt)
        j0 += n_jet[i]
    nt = int(n_trk.sum())

    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0)

    track_jet_idx = cat(trk_jet).astype(np.int64)
    origin = rng.choice(np.arange(1, 8), nt, p=[0.02, 0.6, 0.15, 0.08, 0.07, 0.03, 0.05])
    pdg = rng.choice(np.array([211, 321, 2212, 11, 13]), nt, p=[0.8, 0.1, 0.05, 0.03, 0.02])
    charge = rng.choice(np.array([-1, 1]), nt)
    d0_err = rng.uniform(0.01, 0.05, nt)
    z0_err = rng.uniform(0.02, 0.1, nt)
    track = {
        "pt": cat(trk_pt),
        "eta": cat(trk_eta),
        "phi": cat(trk_phi),
        "charge": charge,
        "d0": rng.normal(0, 1, nt) * d0_err + np.where(origin >= 3, rng.normal(0, 0.3, nt), 0),
        "z0": rng.normal(0, 1, nt) * z0_err,
        "d0Err": d0_err,
        "z0Err": z0_err,
        "grade": rng.choice(np.arange(4), nt, p=[0.85, 0.07, 0.05, 0.03]),
        "truthOrigin": origin,
        "genPdgId": np.where(origin == 1, 0, -charge * pdg),
        "jetIdx": track_jet_idx,
    }
    # the stored association count, from the shuffled indices (what Jet.tracks must match)
    event_of_track = np.repeat(np.arange(n), n_trk)
    jet_start = np.cumsum(n_jet) - n_jet
    assoc = track_jet_idx >= 0
    n_track_per_jet = np.bincount(
        jet_start[event_of_track[assoc]] + track_jet_idx[assoc], minlength=nj
    )
    jet = {
        "pt": jet_pt,
        "eta": jet_eta,
        "phi": jet_phi,
        "mass": jet_pt * rng.uniform(0.05, 0.2, nj),
        "hadronConeExclTruthLabelID": label,
        "genJetIdx": gen_jet_idx,
        "nTrack": n_track_per_jet,
    }

    n_tower = rng.poisson(40.0, n)
    ntw = int(n_tower.sum())
    eta_bin = rng.integers(-49, 49, ntw)
    phi_bin = rng.integers(0, 64, ntw)
    tower = {
        "eta": (eta_bin + 0.5) * 0.1,
        "phi": _wrap(-np.pi + (phi_bin + 0.5) * _TWO_PI / 64),
        "eEM": rng.exponential(2.0, ntw),
        "eHad": rng.exponential(3.0, ntw),
    }

    def central_eta(k: int, limit: float, crack: tuple[float, float] | None = None):
        eta = rng.uniform(-limit, limit, k)
        if crack is not None:
            inside = (np.abs(eta) > crack[0]) & (np.abs(eta) < crack[1])
            eta[inside] = np.sign(eta[inside]) * (crack[1] + 0.1)
        return eta

    n_pho = rng.poisson(1.2, n)
    npho = int(n_pho.sum())
    photon = {
        "pt": 10.0 + rng.exponential(25.0, npho),
        "eta": central_eta(npho, 2.37, (1.37, 1.52)),
        "phi": _phi(rng, npho),
        "isoCalo": rng.exponential(2.0, npho),
        "isoTrack": rng.exponential(1.0, npho),
        "isTight": rng.uniform(0, 1, npho) < 0.8,
        "genPartFlav": rng.choice(np.array([0, 1, 2, 11]), npho, p=[0.1, 0.5, 0.35, 0.05]),
    }

    def lepton(mean: float, eta_max: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        counts = rng.poisson(mean, n)
        k = int(counts.sum())
        return counts, {
            "pt": 10.0 + rng.exponential(20.0, k),
            "eta": central_eta(k, eta_max),
            "phi": _phi(rng, k),
            "charge": rng.choice(np.array([-1, 1]), k),
            "isoTrack": rng.exponential(1.0, k),
            "genPartFlav": rng.choice(np.array([1, 15, 5, 4, 3]), k),
        }

    n_ele, electron = lepton(0.4, 2.47)
    n_mu, muon = lepton(0.4, 2.5)

    n_had = rng.poisson(1.5, n)
    nh = int(n_had.sum())
    kind = _HADRONS[rng.integers(0, len(_HADRONS), nh)]
    sign = rng.choice(np.array([-1, 1]), nh)
    hadron = {
        "pt": 1.0 + rng.exponential(20.0, nh),
        "eta": rng.uniform(-2.5, 2.5, nh),
        "phi": _phi(rng, nh),
        "mass": kind["mass"],
        "pdgId": sign * kind["pdg"],
        "flavour": kind["flav"],
        "fromB": (kind["flav"] == 4) & (rng.uniform(0, 1, nh) < 0.5),
        "decayX": rng.normal(0, 2.0, nh),
        "decayY": rng.normal(0, 2.0, nh),
        "decayZ": rng.normal(0, 3.0, nh),
        "jetIdx": _local_index_or_none(rng, n_had, n_jet, 0.8),
    }

    # hard process HH -> bb yy: H, H, b, bbar (from the first H), y, y (from the second)
    gp_pdg = np.tile([25, 25, 5, -5, 22, 22], n)
    gp_mother = np.tile([-1, -1, 0, 0, 1, 1], n)
    gp_status = np.tile([62, 62, 23, 23, 1, 1], n)
    gp_mass = np.tile([125.0, 125.0, 4.78, 4.78, 0.0, 0.0], n)
    ngp = 6 * n
    genpart = {
        "pt": rng.exponential(60.0, ngp),
        "eta": rng.normal(0, 1.5, ngp),
        "phi": _phi(rng, ngp),
        "mass": gp_mass,
        "pdgId": gp_pdg,
        "status": gp_status,
        "genPartIdxMother": gp_mother,
    }

    spec = HEPLINE_COLLECTIONS
    cols["Track"] = _record(n_trk, track, spec["Track"])
    cols["Jet"] = _record(n_jet, jet, spec["Jet"])
    cols["GenJet"] = _record(n_gen, genjet, spec["GenJet"])
    cols["Tower"] = _record(n_tower, tower, spec["Tower"])
    cols["Photon"] = _record(n_pho, photon, spec["Photon"])
    cols["Electron"] = _record(n_ele, electron, spec["Electron"])
    cols["Muon"] = _record(n_mu, muon, spec["Muon"])
    cols["TruthHadron"] = _record(n_had, hadron, spec["TruthHadron"])
    cols["GenPart"] = _record(np.full(n, 6), genpart, spec["GenPart"])
    for key, dtype in HEPLINE_EVENT_BRANCHES.items():
        cols[key] = np.asarray(cols[key]).astype(dtype)
    return cols, weights


def write_hepline_fixture(
    path: str | os.PathLike[str],
    n_events: int,
    rng: np.random.Generator,
    *,
    sample: str = "fixture_hh_yybb",
    process: str = "pp > HH > bb yy (fixture)",
    xsec_pb: float = 0.0311,
    shard: int = 0,
    run: int = 1,
    weighted: bool = False,
    treename: str = "Events",
    drop_branches: Iterable[str] = (),
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write a small hepline ntuple (``docs/ntuple-format.md``) and return its path.

    All collections of the format doc, the ``Runs`` tree (``genEventCount``,
    ``genEventSumw``, ``genEventSumw2``) and the ``hepline_metadata`` JSON. Tracks are
    shuffled within each event so ``Jet.tracks`` cannot rely on ordering; ``Jet_nTrack``
    equals the number of tracks whose ``Track_jetIdx`` points at the jet.

    For bad-input tests: ``treename`` renames the events tree, ``drop_branches`` leaves out
    branches (``"Jet_pt"``, ``"genWeight"``, ...), ``metadata`` overrides JSON keys and
    ``n_events=0`` writes an empty tree.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols, weights = _hepline_events(int(n_events), rng, shard, run, weighted)
    cols = _drop(cols, drop_branches)
    sumw = float(np.sum(weights))
    meta: dict[str, Any] = {
        "sample": sample,
        "process": process,
        "xsec_pb": xsec_pb,
        "xsec_source": "external",
        "sumw": sumw,
        "n_events": int(n_events),
        "seed": int(rng.integers(0, 2**31 - 1)),
        "shard": shard,
        "pythia_settings": ["Beams:eCM = 13600.", "HiggsSM:gg2H = off"],
        "detector": {"fixture": True},
        "hepline_version": "fixture",
        "config_hash": "0" * 16,
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    meta.update(metadata or {})
    runs = {
        "run": np.array([run], dtype=HEPLINE_RUNS_BRANCHES["run"]),
        "genEventCount": np.array([n_events], dtype=HEPLINE_RUNS_BRANCHES["genEventCount"]),
        "genEventSumw": np.array([sumw], dtype=HEPLINE_RUNS_BRANCHES["genEventSumw"]),
        "genEventSumw2": np.array(
            [float(np.sum(np.square(weights)))], dtype=HEPLINE_RUNS_BRANCHES["genEventSumw2"]
        ),
    }
    with uproot.recreate(path) as f:
        _write_tree(f, treename, cols, title="hepline events")
        _write_tree(f, "Runs", runs)
        f[HEPLINE_METADATA_KEY] = json.dumps(meta, sort_keys=True)
    return path


# ---------------------------------------------------------------------------------------
# CMS NanoAOD
# ---------------------------------------------------------------------------------------
def write_nanoaod_fixture(
    path: str | os.PathLike[str],
    n_events: int,
    rng: np.random.Generator,
    *,
    run: int = 362_439,
    drop_branches: Iterable[str] = (),
) -> Path:
    """Write a small file laid out like CMS NanoAOD (v12-like types) and return its path.

    ``Events``: ``run``/``luminosityBlock``/``event``, ``genWeight``, ``Jet_*``
    (``btagDeepFlavB``, ``jetId``, ``hadronFlavour``, ``genJetIdx``, ``electronIdx1/2``,
    ``muonIdx1/2``, ...), ``Photon_*`` (``cutBased``, ``mvaID_WP80``, ``pfRelIso03_all``,
    ``electronVeto``, ...; no ``Photon_mass``, as in NanoAOD v12, coffea fills 0),
    ``Electron_*``, ``Muon_*``, ``GenJet_*``, ``GenPart_*`` (``genPartIdxMother``,
    ``statusFlags``), ``MET_*``, ``PV_*``, an ``HLT_`` and a ``Flag_`` bit; the ``Runs``
    (``genEventCount``, ``genEventSumw``, ``genEventSumw2``) and ``LuminosityBlocks`` trees.
    Differences from real NanoAOD: counters are ``int32`` (uproot's), not ``uint32``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(n_events)
    cols: dict[str, Any] = {
        "run": np.full(n, run, dtype=np.uint32),
        "luminosityBlock": rng.integers(1, 200, n).astype(np.uint32),
        "event": (np.arange(n) + 1_000_001).astype(np.uint64),
    }
    weights = rng.normal(1.0, 0.1, n)
    cols["genWeight"] = weights.astype(np.float32)

    # generator particles: HH -> bb yy, as in hepline; statusFlags: isPrompt|isHardProcess|...
    gp = {
        "pt": rng.exponential(60.0, 6 * n),
        "eta": rng.normal(0, 1.5, 6 * n),
        "phi": _phi(rng, 6 * n),
        "mass": np.tile([125.0, 125.0, 4.78, 4.78, 0.0, 0.0], n),
        "pdgId": np.tile([25, 25, 5, -5, 22, 22], n),
        "status": np.tile([62, 62, 23, 23, 1, 1], n),
        "statusFlags": np.tile([10497, 10497, 4481, 4481, 12673, 12673], n),
        "genPartIdxMother": np.tile([-1, -1, 0, 0, 1, 1], n),
    }
    n_gp = np.full(n, 6)

    n_jet = rng.poisson(4.0, n)
    n_gj = n_jet + rng.poisson(0.5, n)
    n_ele = rng.poisson(0.4, n)
    n_mu = rng.poisson(0.4, n)
    n_pho = rng.poisson(1.2, n)
    nj, ngj, ne, nm, npho = (int(c.sum()) for c in (n_jet, n_gj, n_ele, n_mu, n_pho))

    jet_pt = 15.0 + rng.exponential(30.0, nj)
    jet = {
        "pt": jet_pt,
        "eta": rng.uniform(-4.7, 4.7, nj),
        "phi": _phi(rng, nj),
        "mass": jet_pt * rng.uniform(0.05, 0.2, nj),
        "btagDeepFlavB": rng.uniform(0, 1, nj),
        "jetId": rng.choice(np.array([0, 2, 6]), nj, p=[0.05, 0.15, 0.8]),
        "hadronFlavour": rng.choice(np.array([0, 4, 5]), nj, p=[0.7, 0.1, 0.2]),
        "partonFlavour": rng.choice(np.array([0, 1, 2, 3, 4, 5, 21]), nj),
        "nConstituents": rng.integers(2, 60, nj),
        "rawFactor": rng.uniform(0, 0.2, nj),
        "genJetIdx": _local_index_or_none(rng, n_jet, n_gj, 0.85),
        "electronIdx1": _local_index_or_none(rng, n_jet, n_ele, 0.1),
        "electronIdx2": np.full(nj, -1),
        "muonIdx1": _local_index_or_none(rng, n_jet, n_mu, 0.1),
        "muonIdx2": np.full(nj, -1),
    }
    jet_types = {
        "pt": "float32", "eta": "float32", "phi": "float32", "mass": "float32",
        "btagDeepFlavB": "float32", "jetId": "uint8", "hadronFlavour": "uint8",
        "partonFlavour": "int16", "nConstituents": "uint8", "rawFactor": "float32",
        "genJetIdx": "int16", "electronIdx1": "int16", "electronIdx2": "int16",
        "muonIdx1": "int16", "muonIdx2": "int16",
    }  # fmt: skip
    genjet = {
        "pt": 10.0 + rng.exponential(30.0, ngj),
        "eta": rng.uniform(-5, 5, ngj),
        "phi": _phi(rng, ngj),
        "mass": rng.uniform(1, 10, ngj),
        "partonFlavour": rng.choice(np.array([0, 1, 4, 5, 21]), ngj),
        "hadronFlavour": rng.choice(np.array([0, 4, 5]), ngj),
    }
    genjet_types = {
        "pt": "float32", "eta": "float32", "phi": "float32", "mass": "float32",
        "partonFlavour": "int16", "hadronFlavour": "uint8",
    }  # fmt: skip

    def lepton(k: int, counts: np.ndarray, mass: float, pdg: int) -> dict[str, np.ndarray]:
        charge = rng.choice(np.array([-1, 1]), k)
        return {
            "pt": 10.0 + rng.exponential(20.0, k),
            "eta": rng.uniform(-2.5, 2.5, k),
            "phi": _phi(rng, k),
            "mass": np.full(k, mass),
            "charge": charge,
            "pdgId": -charge * pdg,
            "dxy": rng.normal(0, 0.01, k),
            "dz": rng.normal(0, 0.02, k),
            "genPartFlav": rng.choice(np.array([0, 1, 15, 5, 4, 3]), k),
            "genPartIdx": _local_index_or_none(rng, counts, n_gp, 0.3),
            "jetIdx": _local_index_or_none(rng, counts, n_jet, 0.2),
        }

    lep_types = {
        "pt": "float32", "eta": "float32", "phi": "float32", "mass": "float32",
        "charge": "int32", "pdgId": "int32", "dxy": "float32", "dz": "float32",
        "genPartFlav": "uint8", "genPartIdx": "int16", "jetIdx": "int16",
    }  # fmt: skip
    electron = lepton(ne, n_ele, 0.000511, 11)
    electron.update(
        cutBased=rng.integers(0, 5, ne),
        pfRelIso03_all=rng.exponential(0.1, ne),
        mvaIso_WP80=rng.uniform(0, 1, ne) < 0.8,
        photonIdx=_local_index_or_none(rng, n_ele, n_pho, 0.2),
    )
    ele_types = {
        **lep_types, "cutBased": "uint8", "pfRelIso03_all": "float32", "mvaIso_WP80": "bool",
        "photonIdx": "int16",
    }  # fmt: skip
    muon = lepton(nm, n_mu, 0.105658, 13)
    muon.update(
        tightId=rng.uniform(0, 1, nm) < 0.8,
        mediumId=rng.uniform(0, 1, nm) < 0.9,
        pfRelIso04_all=rng.exponential(0.1, nm),
    )
    mu_types = {**lep_types, "tightId": "bool", "mediumId": "bool", "pfRelIso04_all": "float32"}

    photon = {
        "pt": 10.0 + rng.exponential(25.0, npho),
        "eta": rng.uniform(-2.5, 2.5, npho),
        "phi": _phi(rng, npho),
        "cutBased": rng.integers(0, 4, npho),
        "mvaID": rng.uniform(-1, 1, npho),
        "mvaID_WP80": rng.uniform(0, 1, npho) < 0.7,
        "mvaID_WP90": rng.uniform(0, 1, npho) < 0.85,
        "pfRelIso03_all": rng.exponential(0.1, npho),
        "r9": rng.uniform(0.5, 1.0, npho),
        "sieie": rng.uniform(0.005, 0.03, npho),
        "hoe": rng.exponential(0.02, npho),
        "electronVeto": rng.uniform(0, 1, npho) < 0.9,
        "pixelSeed": rng.uniform(0, 1, npho) < 0.1,
        "genPartFlav": rng.choice(np.array([0, 1, 11, 13, 22]), npho),
        "genPartIdx": _local_index_or_none(rng, n_pho, n_gp, 0.5),
        "electronIdx": _local_index_or_none(rng, n_pho, n_ele, 0.1),
        "jetIdx": _local_index_or_none(rng, n_pho, n_jet, 0.3),
    }
    pho_types = {
        "pt": "float32", "eta": "float32", "phi": "float32", "cutBased": "uint8",
        "mvaID": "float32", "mvaID_WP80": "bool", "mvaID_WP90": "bool",
        "pfRelIso03_all": "float32", "r9": "float32", "sieie": "float32", "hoe": "float32",
        "electronVeto": "bool", "pixelSeed": "bool", "genPartFlav": "uint8",
        "genPartIdx": "int16", "electronIdx": "int16", "jetIdx": "int16",
    }  # fmt: skip
    gp_types = {
        "pt": "float32", "eta": "float32", "phi": "float32", "mass": "float32",
        "pdgId": "int32", "status": "int32", "statusFlags": "uint16",
        "genPartIdxMother": "int16",
    }  # fmt: skip

    cols["Jet"] = _record(n_jet, jet, jet_types)
    cols["GenJet"] = _record(n_gj, genjet, genjet_types)
    cols["Electron"] = _record(n_ele, electron, ele_types)
    cols["Muon"] = _record(n_mu, muon, mu_types)
    cols["Photon"] = _record(n_pho, photon, pho_types)
    cols["GenPart"] = _record(n_gp, gp, gp_types)
    cols["MET"] = _flat_record(
        {"pt": rng.exponential(30.0, n), "phi": _phi(rng, n), "sumEt": rng.uniform(200, 2000, n)},
        {"pt": "float32", "phi": "float32", "sumEt": "float32"},
    )
    cols["PV"] = _flat_record(
        {
            "x": rng.normal(0, 0.01, n),
            "y": rng.normal(0, 0.01, n),
            "z": rng.normal(0, 4.0, n),
            "npvs": rng.poisson(40, n),
            "npvsGood": rng.poisson(35, n),
        },
        {"x": "float32", "y": "float32", "z": "float32", "npvs": "uint8", "npvsGood": "uint8"},
    )
    cols["Rho_fixedGridRhoFastjetAll"] = rng.uniform(10, 40, n).astype(np.float32)
    cols["HLT_Diphoton30_22_R9Id_OR_IsoCaloId_AND_HE_R9Id_Mass90"] = rng.uniform(0, 1, n) < 0.6
    cols["Flag_goodVertices"] = np.ones(n, dtype=bool)
    cols = _drop(cols, drop_branches)

    runs = {
        "run": np.array([run], dtype=np.uint32),
        "genEventCount": np.array([n], dtype=np.int64),
        "genEventSumw": np.array([weights.sum()], dtype=np.float64),
        "genEventSumw2": np.array([np.square(weights).sum()], dtype=np.float64),
    }
    lumis = np.unique(cols["luminosityBlock"]) if "luminosityBlock" in cols else np.zeros(0)
    with uproot.recreate(path) as f:
        _write_tree(f, "Events", cols, title="Events")
        _write_tree(f, "Runs", runs, title="Runs")
        _write_tree(
            f,
            "LuminosityBlocks",
            {
                "run": np.full(len(lumis), run, dtype=np.uint32),
                "luminosityBlock": lumis.astype(np.uint32),
            },
            title="LuminosityBlocks",
        )
    return path


# ---------------------------------------------------------------------------------------
# Delphes
# ---------------------------------------------------------------------------------------
def write_delphes_fixture(
    path: str | os.PathLike[str],
    n_events: int,
    rng: np.random.Generator,
    *,
    treename: str = "Delphes",
) -> Path:
    """Write a small file laid out like Delphes output and return its path.

    A ``Delphes`` tree with, per collection, the counter ``<Coll>_size`` and branches whose
    uproot paths are those of a real Delphes file, ``<Coll>/<Coll>.<Field>`` (e.g.
    ``Jet/Jet.PT``): collections ``Event`` (one entry per event: ``Number``, ``Weight``,
    ``CrossSection``, ...), ``Weight``, ``Particle``, ``GenJet``, ``Jet``, ``Photon``,
    ``Electron``, ``Muon``, ``Tower``, ``MissingET``, ``ScalarHT``. Real Delphes stores each
    collection as a split ``TClonesArray``; uproot cannot write that, so here the branch
    names carry the ``Coll/`` prefix, which gives the same keys to coffea's
    ``DelphesSchema``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(n_events)
    ones = np.ones(n, dtype=np.int64)
    F, I, U = "float32", "int32", "uint32"  # noqa: E741, N806

    event = {
        "Number": np.arange(n) + 1,
        "ReadTime": rng.uniform(0, 1e-3, n),
        "ProcTime": rng.uniform(0, 1e-2, n),
        "ProcessID": np.full(n, 1),
        "MPI": rng.integers(1, 20, n),
        "Weight": rng.normal(1.0, 0.1, n),
        "CrossSection": np.full(n, 0.0311),
        "CrossSectionError": np.full(n, 0.001),
        "Scale": rng.uniform(100, 300, n),
        "AlphaQED": np.full(n, 1 / 128.0),
        "AlphaQCD": rng.uniform(0.1, 0.12, n),
    }
    event_types = {
        "Number": "int64", "ReadTime": F, "ProcTime": F, "ProcessID": I, "MPI": I,
        "Weight": F, "CrossSection": F, "CrossSectionError": F, "Scale": F,
        "AlphaQED": F, "AlphaQCD": F,
    }  # fmt: skip
    weight = {"Weight": event["Weight"]}

    n_part = np.full(n, 6)
    npart = 6 * n
    part = {
        "PID": np.tile([25, 25, 5, -5, 22, 22], n),
        "Status": np.tile([62, 62, 23, 23, 1, 1], n),
        "IsPU": np.zeros(npart),
        "M1": np.tile([-1, -1, 0, 0, 1, 1], n),
        "M2": np.full(npart, -1),
        "D1": np.tile([2, 4, -1, -1, -1, -1], n),
        "D2": np.tile([3, 5, -1, -1, -1, -1], n),
        "Charge": np.zeros(npart),
        "Mass": np.tile([125.0, 125.0, 4.78, 4.78, 0.0, 0.0], n),
        "PT": rng.exponential(60.0, npart),
        "Eta": rng.normal(0, 1.5, npart),
        "Phi": _phi(rng, npart),
        "E": rng.uniform(100, 500, npart),
        "Px": rng.normal(0, 50, npart),
        "Py": rng.normal(0, 50, npart),
        "Pz": rng.normal(0, 200, npart),
        "T": np.zeros(npart),
        "X": np.zeros(npart),
        "Y": np.zeros(npart),
        "Z": rng.normal(0, 40, npart),
    }
    part_types = {k: (I if k in {"PID", "Status", "IsPU", "M1", "M2", "D1", "D2", "Charge"} else F)
                  for k in part}  # fmt: skip

    def jets(counts: np.ndarray) -> dict[str, np.ndarray]:
        k = int(counts.sum())
        pt = 20.0 + rng.exponential(30.0, k)
        return {
            "PT": pt,
            "Eta": rng.uniform(-4.5, 4.5, k),
            "Phi": _phi(rng, k),
            "T": np.zeros(k),
            "Mass": pt * rng.uniform(0.05, 0.2, k),
            "DeltaEta": rng.uniform(0, 0.3, k),
            "DeltaPhi": rng.uniform(0, 0.3, k),
            "Flavor": rng.choice(np.array([0, 1, 4, 5, 21]), k),
            "BTag": (rng.uniform(0, 1, k) < 0.2).astype(np.uint32),
            "TauTag": (rng.uniform(0, 1, k) < 0.02).astype(np.uint32),
            "Charge": rng.integers(-1, 2, k),
            "EhadOverEem": rng.exponential(1.0, k),
            "NCharged": rng.integers(0, 30, k),
            "NNeutrals": rng.integers(0, 30, k),
        }

    jet_types = {
        "PT": F, "Eta": F, "Phi": F, "T": F, "Mass": F, "DeltaEta": F, "DeltaPhi": F,
        "Flavor": U, "BTag": U, "TauTag": U, "Charge": I, "EhadOverEem": F,
        "NCharged": I, "NNeutrals": I,
    }  # fmt: skip
    n_jet = rng.poisson(4.0, n)
    n_gj = rng.poisson(4.5, n)

    def photons(counts: np.ndarray) -> dict[str, np.ndarray]:
        k = int(counts.sum())
        pt = 10.0 + rng.exponential(25.0, k)
        eta = rng.uniform(-2.5, 2.5, k)
        return {
            "PT": pt, "Eta": eta, "Phi": _phi(rng, k), "E": pt * np.cosh(eta), "T": np.zeros(k),
            "EhadOverEem": rng.exponential(0.05, k), "IsolationVar": rng.exponential(0.1, k),
            "IsolationVarRhoCorr": rng.exponential(0.1, k),
            "SumPtCharged": rng.exponential(1, k), "SumPtNeutral": rng.exponential(1, k),
            "SumPtChargedPU": rng.exponential(1, k), "SumPt": rng.exponential(2, k),
            "Status": np.ones(k),
        }  # fmt: skip

    pho_types = {k: F for k in ("PT", "Eta", "Phi", "E", "T", "EhadOverEem", "IsolationVar",
                                "IsolationVarRhoCorr", "SumPtCharged", "SumPtNeutral",
                                "SumPtChargedPU", "SumPt")}  # fmt: skip
    pho_types["Status"] = I
    n_pho = rng.poisson(1.2, n)

    def leptons(counts: np.ndarray) -> dict[str, np.ndarray]:
        k = int(counts.sum())
        return {
            "PT": 10.0 + rng.exponential(20.0, k), "Eta": rng.uniform(-2.5, 2.5, k),
            "Phi": _phi(rng, k), "T": np.zeros(k), "Charge": rng.choice(np.array([-1, 1]), k),
            "IsolationVar": rng.exponential(0.1, k), "IsolationVarRhoCorr": rng.exponential(0.1, k),
            "SumPtCharged": rng.exponential(1, k), "SumPtNeutral": rng.exponential(1, k),
            "SumPtChargedPU": rng.exponential(1, k), "SumPt": rng.exponential(2, k),
            "D0": rng.normal(0, 0.01, k), "ErrorD0": rng.uniform(0.005, 0.02, k),
            "DZ": rng.normal(0, 0.02, k), "ErrorDZ": rng.uniform(0.01, 0.05, k),
        }  # fmt: skip

    lep_types = {k: F for k in ("PT", "Eta", "Phi", "T", "IsolationVar", "IsolationVarRhoCorr",
                                "SumPtCharged", "SumPtNeutral", "SumPtChargedPU", "SumPt", "D0",
                                "ErrorD0", "DZ", "ErrorDZ")}  # fmt: skip
    lep_types["Charge"] = I
    n_ele = rng.poisson(0.4, n)
    n_mu = rng.poisson(0.4, n)

    n_tow = rng.poisson(30, n)
    ntow = int(n_tow.sum())
    tow_eta = rng.uniform(-4.9, 4.9, ntow)
    tow_e = rng.exponential(5.0, ntow)
    frac = rng.uniform(0, 1, ntow)
    tower = {
        "ET": tow_e / np.cosh(tow_eta), "Eta": tow_eta, "Phi": _phi(rng, ntow), "E": tow_e,
        "T": np.zeros(ntow), "Eem": tow_e * frac, "Ehad": tow_e * (1 - frac),
    }  # fmt: skip
    tow_types = {k: F for k in tower}

    met = {"MET": rng.exponential(30.0, n), "Eta": np.zeros(n), "Phi": _phi(rng, n)}
    ht = {"HT": rng.uniform(50, 1000, n)}

    cols: dict[str, Any] = {
        "Event": _record(ones, event, event_types),
        "Weight": _record(ones, weight, {"Weight": F}),
        "Particle": _record(n_part, part, part_types),
        "GenJet": _record(n_gj, jets(n_gj), jet_types),
        "Jet": _record(n_jet, jets(n_jet), jet_types),
        "Photon": _record(n_pho, photons(n_pho), pho_types),
        "Electron": _record(n_ele, leptons(n_ele), lep_types),
        "Muon": _record(n_mu, leptons(n_mu), lep_types),
        "Tower": _record(n_tow, tower, tow_types),
        "MissingET": _record(ones, met, {"MET": F, "Eta": F, "Phi": F}),
        "ScalarHT": _record(ones, ht, {"HT": F}),
    }
    with uproot.recreate(path) as f:
        _write_tree(
            f,
            treename,
            cols,
            counter_name=lambda c: f"{c}_size",
            field_name=lambda outer, inner: f"{outer}/{outer}.{inner}",
            title="Analysis tree",
        )
    return path
