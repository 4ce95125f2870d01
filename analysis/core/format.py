"""The hepline ntuple format as data (docs/ntuple-format.md).

The generator's writer, the fixture writer and the input validation all read these tables,
so a change of the format is one edit here plus the document.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "HEPLINE_COLLECTIONS",
    "HEPLINE_EVENT_BRANCHES",
    "HEPLINE_METADATA_KEY",
    "HEPLINE_RUNS_BRANCHES",
    "HEPLINE_VERTICES",
    "combined_xsec",
    "hepline_branches",
]

_F4, _I8, _I16, _I32, _U8, _B = "float32", "int8", "int16", "int32", "uint8", "bool"

HEPLINE_EVENT_BRANCHES: dict[str, str] = {
    "run": "uint32",
    "luminosityBlock": "uint32",
    "event": "uint64",
    "genWeight": _F4,
}
"""Event-level scalar branches of the ``Events`` tree and their dtypes."""

HEPLINE_VERTICES: dict[str, dict[str, str]] = {
    "GenVtx": {"x": _F4, "y": _F4, "z": _F4},
    "PV": {"x": _F4, "y": _F4, "z": _F4, "npvs": _I16},
    "Pileup": {"nPU": _I16},
}
"""One-per-event records, stored as ``<name>_<field>`` without a counter (vertices and the
pile-up count, NanoAOD names)."""

HEPLINE_COLLECTIONS: dict[str, dict[str, str]] = {
    "Track": {
        "pt": _F4, "eta": _F4, "phi": _F4, "charge": _I8, "d0": _F4, "z0": _F4,
        "d0Err": _F4, "z0Err": _F4, "grade": _I8, "truthOrigin": _I8, "genPdgId": _I32,
        "jetIdx": _I16, "vtxIdx": _I16,
    },
    "Jet": {
        "pt": _F4, "eta": _F4, "phi": _F4, "mass": _F4, "hadronConeExclTruthLabelID": _I8,
        "genJetIdx": _I16, "nTrack": _I16, "corrJVF": _F4, "rpt": _F4,
    },
    "GenJet": {"pt": _F4, "eta": _F4, "phi": _F4, "mass": _F4},
    "Tower": {"eta": _F4, "phi": _F4, "eEM": _F4, "eHad": _F4},
    "Photon": {
        "pt": _F4, "eta": _F4, "phi": _F4, "isoCalo": _F4, "isoTrack": _F4, "isTight": _B,
        "genPartFlav": _U8,
    },
    "Electron": {
        "pt": _F4, "eta": _F4, "phi": _F4, "charge": _I8, "isoTrack": _F4, "genPartFlav": _U8,
    },
    "Muon": {
        "pt": _F4, "eta": _F4, "phi": _F4, "charge": _I8, "isoTrack": _F4, "genPartFlav": _U8,
    },
    "TruthHadron": {
        "pt": _F4, "eta": _F4, "phi": _F4, "mass": _F4, "pdgId": _I32, "flavour": _I8,
        "fromB": _B, "decayX": _F4, "decayY": _F4, "decayZ": _F4, "jetIdx": _I16,
    },
    "GenPart": {
        "pt": _F4, "eta": _F4, "phi": _F4, "mass": _F4, "pdgId": _I32, "status": _I16,
        "genPartIdxMother": _I16,
    },
}  # fmt: skip
"""Jagged collections: branches ``<name>_<field>`` sharing the counter ``n<name>``."""

HEPLINE_RUNS_BRANCHES: dict[str, str] = {
    "run": "uint32",
    "genEventCount": "int64",
    "genEventSumw": "float64",
    "genEventSumw2": "float64",
}
"""Branches of the ``Runs`` tree (one entry per file)."""

HEPLINE_METADATA_KEY = "hepline_metadata"

# masses given to collections stored without a mass branch (GeV)


def hepline_branches(*, counters: bool = True) -> list[str]:
    """All branch names of a hepline ``Events`` tree, in format-doc order."""
    names = list(HEPLINE_EVENT_BRANCHES)
    for vtx, fields in HEPLINE_VERTICES.items():
        names += [f"{vtx}_{f}" for f in fields]
    for coll, fields in HEPLINE_COLLECTIONS.items():
        if counters:
            names.append(f"n{coll}")
        names += [f"{coll}_{f}" for f in fields]
    return names




def combined_xsec(metas: list[dict[str, Any]]) -> tuple[float, float]:
    """σ [pb] and its error for the shards (metadata dicts) of one sample. Each shard's σ is
    an independent estimate of the same cross-section, so they are averaged weighted by
    generated events (``n_generated``, else ``n_events``)."""
    n = np.array([float(m.get("n_generated", m.get("n_events", 1))) for m in metas])
    w = n / n.sum() if n.sum() > 0 else np.full(len(n), 1.0 / len(n))
    xs = np.array([float(m["xsec_pb"]) for m in metas])
    err = np.array([float(m.get("xsec_err_pb", 0.0)) for m in metas])
    return float((w * xs).sum()), float(np.sqrt(((w * err) ** 2).sum()))
