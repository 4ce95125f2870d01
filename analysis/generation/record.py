"""A flat, columnar view of a batch of Pythia events.

``pythia8mc.Pythia.nextBatch`` returns an awkward array ``events.prt`` with the full event
record. The detector simulation works on flat numpy arrays (one entry per particle of the
whole batch) plus the event index of each particle; mother/daughter links become *global*
indices into those flat arrays. No Python loop over particles or events is involved.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import awkward as ak
import numpy as np

__all__ = ["INVISIBLE_IDS", "FlatRecord", "charge_of", "use_particle_data"]

_PARTICLE_DATA: list[object] = []


def use_particle_data(particle_data: object) -> None:
    """Take charges from this Pythia ``ParticleData`` (e.g. the running generator's)."""
    _PARTICLE_DATA[:] = [particle_data]


def _particle_data():  # type: ignore[no-untyped-def]
    if not _PARTICLE_DATA:
        import pythia8mc

        _PARTICLE_DATA.append(pythia8mc.Pythia("", False).particleData)
    return _PARTICLE_DATA[0]


INVISIBLE_IDS = (12, 14, 16, 1000022, 1000039)  # neutrinos, a stable LSP, the gravitino
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
    ``interaction`` tells the hard scatter (0) from the overlaid pile-up interactions (1, 2, ...;
    :func:`analysis.generation.pileup.overlay`).
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
    #: 0 for the hard scatter, k >= 1 for the k-th pile-up interaction of the event
    interaction: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    pt: np.ndarray = field(init=False)
    phi: np.ndarray = field(init=False)
    eta: np.ndarray = field(init=False)
    abs_id: np.ndarray = field(init=False)
    is_final: np.ndarray = field(init=False)
    visible: np.ndarray = field(init=False)

    @property
    def size(self) -> int:
        return int(self.pdg_id.size)

    #: the fields computed from the others (:meth:`__post_init__`)
    DERIVED = ("pt", "phi", "eta", "abs_id", "is_final", "visible")

    @classmethod
    def with_derived(cls, derived: dict[str, np.ndarray], **fields: object) -> FlatRecord:
        """A record whose derived fields (:attr:`DERIVED`) are given rather than computed
        (the pile-up overlay merges them from the library's precomputed ones)."""
        rec = cls.__new__(cls)
        for k, v in fields.items():
            setattr(rec, k, v)
        for k in cls.DERIVED:
            setattr(rec, k, derived[k])
        return rec

    def __post_init__(self) -> None:
        if self.interaction.size != self.pdg_id.size:
            self.interaction = np.zeros(self.pdg_id.size, dtype=np.int16)
        self.pt = np.hypot(self.px, self.py)
        self.phi = np.arctan2(self.py, self.px)
        eta = np.arcsinh(np.divide(self.pz, self.pt, out=np.zeros_like(self.pt), where=self.pt > 0))
        # particles along the beam (pt == 0) get a huge |eta| so every acceptance drops them
        self.eta = np.where(self.pt > 0, eta, np.copysign(1e3, self.pz))
        self.abs_id = np.abs(self.pdg_id)
        self.is_final = self.status > 0
        a = self.abs_id
        invisible = (a == 12) | (a == 14) | (a == 16) | (a == 1000022) | (a == 1000039)
        # what a calorimeter sees: final, not invisible, not a muon (MIP signal ignored)
        self.visible = self.is_final & ~invisible & (a != 13)

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
        # packed list-of-records layout: read the numpy buffers directly (no behaviours, no
        # per-field flatten); filtered batches are packed first
        layout = events["prt"].layout
        if not isinstance(layout, ak.contents.ListOffsetArray):
            layout = ak.to_packed(events["prt"]).layout.to_ListOffsetArray64(True)
        offs = np.asarray(layout.offsets.data, dtype=np.int64)
        counts = np.diff(offs)
        n_events = len(counts)
        offsets = offs - offs[0]
        event = np.repeat(np.arange(n_events, dtype=np.int64), counts)
        base = offsets[:-1][event]
        lo, hi = int(offs[0]), int(offs[-1])
        content = layout.content

        def col(*path: str) -> np.ndarray:
            return _buffer(content, path)[lo:hi]

        def link(name: str) -> np.ndarray:
            local = col(name).astype(np.int64)
            return np.where(local > 0, local + base, -1)

        vx, vy, vz = col("vProd", "px"), col("vProd", "py"), col("vProd", "pz")
        if beam_spot is not None:
            vx = vx + beam_spot[event, 0]
            vy = vy + beam_spot[event, 1]
            vz = vz + beam_spot[event, 2]
        return cls(
            n_events=n_events,
            offsets=offsets,
            event=event,
            pdg_id=col("id").astype(np.int64),
            status=col("status").astype(np.int64),
            mother1=link("mother1"),
            daughter1=link("daughter1"),
            daughter2=link("daughter2"),
            px=col("p", "px"),
            py=col("p", "py"),
            pz=col("p", "pz"),
            e=col("p", "e"),
            m=col("m"),
            vx=vx,
            vy=vy,
            vz=vz,
        )


def _buffer(content: ak.contents.Content, path: tuple[str, ...]) -> np.ndarray:
    """The flat numpy values of a (nested) record field; missing values (None) become 0."""
    node = content
    for key in path:
        if isinstance(node, ak.contents.IndexedOptionArray):
            index = np.asarray(node.index.data)
            inner = _buffer(node.content, path[path.index(key):])
            return np.where(index >= 0, inner[np.maximum(index, 0)], 0.0)
        node = node.content(key)
    if isinstance(node, ak.contents.NumpyArray):
        return np.asarray(node.data)
    if isinstance(node, ak.contents.IndexedOptionArray):
        index = np.asarray(node.index.data)
        inner = np.asarray(node.content.data)
        return np.where(index >= 0, inner[np.maximum(index, 0)], 0)
    arr = ak.to_numpy(ak.Array(node), allow_missing=True)
    return np.ma.filled(arr, 0) if np.ma.isMaskedArray(arr) else arr
