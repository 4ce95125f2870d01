"""Hadron flavour classification and ancestry on a constructed event record."""

from __future__ import annotations

import numpy as np

from analysis.generation.record import FlatRecord
from analysis.generation.truth import (
    ORIGIN_FROM_B,
    ORIGIN_FROM_BC,
    ORIGIN_OTHER_SECONDARY,
    ORIGIN_PRIMARY,
    ancestry,
    heavy_flavour,
    track_origin,
)


def test_heavy_flavour_of_known_ids() -> None:
    ids = np.array([511, -521, 531, 5122, 10511, 421, -411, 4122, 443, 211, 2212, 5503, 22, 21, 5, 1000021, 553])
    expect = [5, 5, 5, 5, 5, 4, 4, 4, 4, 0, 0, 0, 0, 0, 0, 0, 5]
    assert heavy_flavour(ids).tolist() == expect


def _record(pdg: list[int], mother: list[int], d1: list[int], d2: list[int], status: list[int]) -> FlatRecord:
    n = len(pdg)
    z = np.zeros(n)
    return FlatRecord(
        n_events=1, offsets=np.array([0, n]), event=np.zeros(n, dtype=np.int64),
        pdg_id=np.array(pdg), status=np.array(status), mother1=np.array(mother),
        daughter1=np.array(d1), daughter2=np.array(d2),
        px=z + 1.0, py=z, pz=z, e=z + 1.0, m=z, vx=z, vy=z, vz=z,
    )


def test_ancestry_labels_b_to_c_chain_and_v0() -> None:
    # 0 system, 1 b quark, 2 B*0 -> 3 B0 (weak) -> 4 D- (weak) + 5 pi+ ; D- -> 6 K0s + 7 pi- ; K0s -> 8 pi+ 9 pi-
    # 10 pi+ from the string (mother: b quark)
    rec = _record(
        pdg=[90, 5, 513, 511, -411, 211, 310, -211, 211, -211, 211],
        mother=[-1, 0, 1, 2, 3, 3, 4, 4, 6, 6, 1],
        d1=[-1, 2, 3, 4, 6, -1, 8, -1, -1, -1, -1],
        d2=[-1, 2, 3, 5, 7, -1, 9, -1, -1, -1, -1],
        status=[-11, -71, -83, -91, -91, 91, -91, 91, 91, 91, 83],
    )
    anc = ancestry(rec)
    assert anc.weak_b.tolist() == [i == 3 for i in range(11)]  # B* is not weakly decaying
    assert anc.weak_c.tolist() == [i == 4 for i in range(11)]
    origin = track_origin(anc, np.array([5, 7, 8, 10]))
    assert origin.tolist() == [ORIGIN_FROM_B, ORIGIN_FROM_BC, ORIGIN_FROM_BC, ORIGIN_PRIMARY]
    assert anc.v0[8] == 6 and anc.v0[7] == -1
    # a K0s decay outside any heavy-flavour chain is 'other secondary'
    rec2 = _record(pdg=[90, 21, 310, 211, -211], mother=[-1, 0, 1, 2, 2], d1=[-1, 2, 3, -1, -1],
                   d2=[-1, 2, 4, -1, -1], status=[-11, -71, -91, 91, 91])
    assert track_origin(ancestry(rec2), np.array([3, 4])).tolist() == [ORIGIN_OTHER_SECONDARY] * 2
