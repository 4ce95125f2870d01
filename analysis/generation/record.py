"""A flat, columnar view of a batch of Pythia events.

``pythia8mc.Pythia.nextBatch`` returns an awkward array ``events.prt`` with the full event
record. The detector simulation works on flat numpy arrays (one entry per particle of the
whole batch) plus the event index of each particle; mother/daughter links become *global*
indices into those flat arrays. No Python loop over particles or events is involved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import awkward as ak
import numpy as np


@lru_cache(maxsize=1)
def _particle_data():  # type: ignore[no-untyped-def]
    import pythia8mc

    return pythia8mc.Pythia("", False).particleData


_DENSE_MAX = 10_000  # |id| below this goes through a dense lookup table
_dense_table = np.full(2 * _DENSE_MAX + 1, np.nan, dtype=np.float32)
_sparse_table: dict[int, float] = {}


def charge_of(pdg_id: np.ndarray) -> np.ndarray:
    """Electric charge (units of e) for an array of PDG ids, from Pythia's particle table."""
    ids = np.asarray(pdg_id, dtype=np.int64)
    small = np.abs(ids) < _DENSE_MAX
    out = np.empty(ids.shape, dtype=np.float32)
    out[small] = _dense_table[ids[small] + _DENSE_MAX]
    missing_small = small & np.isnan(out)
    if missing_small.any():
        pd = _particle_data()
        for u in np.unique(ids[missing_small]):
            _dense_table[u + _DENSE_MAX] = pd.charge(int(u))
        out[small] = _dense_table[ids[small] + _DENSE_MAX]
    if not small.all():
        large = ids[~small]
        uniq, inverse = np.unique(large, return_inverse=True)
        pd = _particle_data()
        vals = np.array([_sparse_table.setdefault(int(u), float(pd.charge(int(u)))) for u in uniq],
                        dtype=np.float32)
        out[~small] = vals[inverse]
    return out


@dataclass
class FlatRecord:
    """All particles of a batch, flattened. Lengths are mm, momenta GeV.

    ``mother1``, ``daughter1``, ``daughter2`` are global indices into the flat arrays, or -1.
    ``vx, vy, vz`` are production vertices *including* the event's beam-spot displacement.
    """

    n_events: int
    offsets: np.ndarray  # (n_events + 1,) start of each event in the flat arrays
    event: np.ndarray  # event index of each particle
    pdg_id: np.ndarray
    status: np.ndarray
    mother1: np.ndarray
    daughter1: np.ndarray
    daughter2: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    m: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    vz: np.ndarray
    pt: np.ndarray = field(init=False)
    phi: np.ndarray = field(init=False)
    eta: np.ndarray = field(init=False)
    abs_id: np.ndarray = field(init=False)
    is_final: np.ndarray = field(init=False)

    @property
    def size(self) -> int:
        return int(self.pdg_id.size)

    def __post_init__(self) -> None:
        self.pt = np.hypot(self.px, self.py)
        self.phi = np.arctan2(self.py, self.px)
        eta = np.arcsinh(np.divide(self.pz, self.pt, out=np.zeros_like(self.pt), where=self.pt > 0))
        # particles along the beam (pt == 0) get a huge |eta| so every acceptance drops them
        self.eta = np.where(self.pt > 0, eta, np.copysign(1e3, self.pz))
        self.abs_id = np.abs(self.pdg_id)
        self.is_final = self.status > 0


    @classmethod
    def from_batch(cls, events: ak.Array, beam_spot: np.ndarray | None = None) -> FlatRecord:
        """Flatten ``events.prt`` from ``nextBatch``.

        Parameters
        ----------
        events:
            The awkward array returned by ``Pythia.nextBatch``.
        beam_spot:
            ``(n_events, 3)`` displacement (mm) of each event's primary vertex, added to every
            production vertex. ``None`` keeps Pythia's vertices (PV at the origin).
        """
        prt = events["prt"]
        counts = ak.to_numpy(ak.num(prt, axis=1)).astype(np.int64)
        n_events = len(counts)
        offsets = np.zeros(n_events + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        event = np.repeat(np.arange(n_events, dtype=np.int64), counts)
        base = offsets[:-1][event]

        def flat(arr: ak.Array, dtype: type) -> np.ndarray:
            return ak.to_numpy(ak.flatten(arr, axis=1)).astype(dtype, copy=False)

        def link(arr: ak.Array) -> np.ndarray:
            local = flat(arr, np.int64)
            return np.where(local > 0, local + base, -1)

        mom = prt["p"]
        vprod = ak.flatten(prt["vProd"], axis=1)  # option type: None for prompt particles

        def vertex(coord: str) -> np.ndarray:
            arr = ak.to_numpy(vprod[coord], allow_missing=True)
            return np.ma.filled(arr, 0.0).astype(np.float64) if np.ma.isMaskedArray(arr) else arr

        vx, vy, vz = vertex("px"), vertex("py"), vertex("pz")
        if beam_spot is not None:
            vx = vx + beam_spot[event, 0]
            vy = vy + beam_spot[event, 1]
            vz = vz + beam_spot[event, 2]
        return cls(
            n_events=n_events,
            offsets=offsets,
            event=event,
            pdg_id=flat(prt["id"], np.int64),
            status=flat(prt["status"], np.int64),
            mother1=link(prt["mother1"]),
            daughter1=link(prt["daughter1"]),
            daughter2=link(prt["daughter2"]),
            px=flat(mom.px, np.float64),
            py=flat(mom.py, np.float64),
            pz=flat(mom.pz, np.float64),
            e=flat(mom.e, np.float64),
            m=flat(prt["m"], np.float64),
            vx=vx,
            vy=vy,
            vz=vz,
        )
