"""Presampled pile-up: a minimum-bias library generated once, overlaid on every event.

ATLAS does not generate the ⟨μ⟩ ≈ 35 inelastic interactions of every bunch crossing again
for each hard-scatter event: minimum-bias events are simulated once and overlaid
("presampled pile-up"). hepline does the same at the particle level, before its fast
detector, so that every pile-up particle goes through the same tracking, calorimeter and
object reconstruction as the hard scatter:

1. :func:`write_library` (``hepline pileup-library``) generates ``library_events``
   minimum-bias events with Pythia (``SoftQCD:inelastic``, its own seed) and stores their
   final-state particles (|η| < ``eta_max``, neutrinos dropped) in one HDF5 file, with the
   hash of everything the events depend on (:func:`library_hash`) and the provenance record.
2. :func:`read_library` loads it and refuses a file made with another configuration.
3. :func:`overlay` adds a Poisson(⟨μ⟩) number of library events to each hard-scatter event,
   each at its own vertex drawn from the beam spot, and returns one merged
   :class:`~analysis.generation.record.FlatRecord` (``interaction`` = 0 for the hard
   scatter, k ≥ 1 for the k-th pile-up interaction) plus the true vertices.

Generating a minimum-bias event costs ≈ 2 ms of CPU (500 events/CPU-s at 13 TeV): 35 of them
per event would cost ten times the hard scatter, the overlay costs only the detector's time
on the extra particles (docs/benchmarks.md, "Pile-up").
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numba
import numpy as np

from analysis.core.atomic import atomic_path
from analysis.core.config import Config, GenerationConfig, config_hash
from analysis.core.errors import InputFileError
from analysis.core.provenance import provenance_record
from analysis.generation.record import FlatRecord

__all__ = [
    "LIBRARY_FORMAT_VERSION",
    "Interactions",
    "LibraryResult",
    "PileupLibrary",
    "generate_library",
    "library_hash",
    "library_identity",
    "library_path",
    "load_pileup",
    "overlay",
    "read_library",
    "write_library",
]

log = logging.getLogger(__name__)

#: bumped whenever the stored layout or selection of particles changes
LIBRARY_FORMAT_VERSION = 1
_PARTICLE_FIELDS = ("pdg_id", "px", "py", "pz", "e", "vx", "vy", "vz")
_NEUTRINOS = (12, 14, 16)


def _pythia_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pythia8mc")
    except PackageNotFoundError:  # pragma: no cover - pythia8mc is a dependency
        return "unknown"


def library_identity(gen: GenerationConfig) -> dict[str, Any]:
    """Everything the library's events depend on (⟨μ⟩ and the file name do not belong here).

    Args:
        gen: the ``generation`` section.

    Returns:
        A JSON-ready dict: format version, √s (GeV), MPI switch, the ``pileup`` section's
        events, seed, settings and η range, and the Pythia version.
    """
    p = gen.pileup
    return {
        "format": LIBRARY_FORMAT_VERSION,
        "sqrt_s_gev": gen.sqrt_s_gev,
        "multiparton_interactions": gen.multiparton_interactions,
        "library_events": p.library_events,
        "seed": p.seed,
        "settings": list(p.settings),
        "eta_max": p.eta_max,
        "pythia8mc": _pythia_version(),
    }


def library_hash(gen: GenerationConfig) -> str:
    """The hash a library made with this ``generation`` section carries (16 hex digits)."""
    return config_hash(library_identity(gen))


def library_path(cfg: Config) -> Path:
    """Where the configuration's library lives: ``generation.pileup.library``, under
    ``output_dir`` when relative."""
    p = Path(cfg.generation.pileup.library)
    return p if p.is_absolute() else Path(cfg.output_dir) / p


@dataclass(frozen=True)
class PileupLibrary:
    """Minimum-bias final-state particles, flat, with ``offsets`` per library event.

    Momenta in GeV; production vertices (mm) relative to the interaction point.
    """

    offsets: np.ndarray
    pdg_id: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    vz: np.ndarray
    library_hash: str
    #: Pythia's inelastic cross-section of the generated events (mb) and its error
    sigma_inel_mb: float
    sigma_inel_err_mb: float
    path: Path | None = None
    #: per particle, float64 momenta and vertices and the derived fields of a FlatRecord
    #: (computed once on load, so that every overlay only gathers them)
    columns: dict[str, np.ndarray] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        px, py, pz = (a.astype(np.float64) for a in (self.px, self.py, self.pz))
        e = self.e.astype(np.float64)
        pt = np.hypot(px, py)
        a_id = np.abs(self.pdg_id.astype(np.int64))
        cols = {
            "pdg_id": self.pdg_id.astype(np.int64), "px": px, "py": py, "pz": pz, "e": e,
            "m": np.sqrt(np.maximum(e * e - px * px - py * py - pz * pz, 0.0)),
            "vx": self.vx.astype(np.float64), "vy": self.vy.astype(np.float64),
            "vz": self.vz.astype(np.float64),
            "pt": pt, "phi": np.arctan2(py, px),
            "eta": np.where(pt > 0, np.arcsinh(np.divide(pz, pt, out=np.zeros_like(pt), where=pt > 0)),
                            np.copysign(1e3, pz)),
            "abs_id": a_id, "is_final": np.ones(a_id.size, dtype=bool),
            "visible": ~np.isin(a_id, (12, 14, 16, 13, 1000022, 1000039)),
        }
        object.__setattr__(self, "columns", cols)

    @property
    def n_events(self) -> int:
        """Number of minimum-bias events."""
        return int(self.offsets.size - 1)

    @property
    def n_particles(self) -> int:
        """Number of stored particles."""
        return int(self.pdg_id.size)


@dataclass(frozen=True)
class LibraryResult:
    """What :func:`write_library` made (times in CPU seconds, σ in mb)."""

    path: Path
    n_events: int
    n_particles: int
    library_hash: str
    sigma_inel_mb: float
    sigma_inel_err_mb: float
    pythia_cpu_s: float
    events_per_cpu_s: float | None
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the path as a string)."""
        return {
            "path": str(self.path), "n_events": self.n_events, "n_particles": self.n_particles,
            "library_hash": self.library_hash, "sigma_inel_mb": self.sigma_inel_mb,
            "sigma_inel_err_mb": self.sigma_inel_err_mb, "pythia_cpu_s": self.pythia_cpu_s,
            "events_per_cpu_s": self.events_per_cpu_s, "bytes": self.bytes,
        }


# --------------------------------------------------------------------------- library


def generate_library(gen: GenerationConfig, *, progress: bool = False) -> tuple[PileupLibrary, float]:
    """Generate the minimum-bias events of the ``generation.pileup`` section in memory.

    Args:
        gen: the ``generation`` section (√s, MPI, ``pileup``).
        progress: show a progress bar.

    Returns:
        ``(library, pythia_cpu_seconds)``.
    """
    import pythia8mc

    from analysis.generation.pythia import PythiaInitError, common_settings

    p = gen.pileup
    pythia = pythia8mc.Pythia("", False)
    for line in [*common_settings(p.seed, gen.sqrt_s_gev, gen.multiparton_interactions), *p.settings]:
        if not pythia.readString(line):
            raise PythiaInitError(f"Pythia rejected the pile-up setting {line!r}")
    if not pythia.init():
        raise PythiaInitError("Pythia initialisation failed for the minimum-bias library: "
                              + "; ".join(p.settings))
    from tqdm.auto import tqdm

    parts: dict[str, list[np.ndarray]] = {k: [] for k in _PARTICLE_FIELDS}
    counts: list[np.ndarray] = []
    cpu = 0.0
    done = 0
    batch_size = max(1, min(gen.batch_size * 5, p.library_events))
    with tqdm(total=p.library_events, desc="minimum bias", unit="ev", disable=not progress,
              leave=False) as bar:
        while done < p.library_events:
            c0 = time.process_time()
            batch = pythia.nextBatch(min(batch_size, p.library_events - done))
            cpu += time.process_time() - c0
            rec = FlatRecord.from_batch(batch)
            keep = (rec.is_final & (np.abs(rec.eta) < p.eta_max)
                    & ~np.isin(rec.abs_id, _NEUTRINOS))
            idx = np.flatnonzero(keep)
            counts.append(np.bincount(rec.event[idx], minlength=rec.n_events))
            for k, arr in (("pdg_id", rec.pdg_id.astype(np.int32)), ("px", rec.px), ("py", rec.py),
                           ("pz", rec.pz), ("e", rec.e), ("vx", rec.vx), ("vy", rec.vy),
                           ("vz", rec.vz)):
                parts[k].append(arr[idx] if k == "pdg_id" else arr[idx].astype(np.float32))
            done += rec.n_events
            bar.update(rec.n_events)
    info = pythia.infoPython()
    n_per = np.concatenate(counts)
    offsets = np.zeros(n_per.size + 1, dtype=np.int64)
    np.cumsum(n_per, out=offsets[1:])
    a = {k: np.concatenate(v) for k, v in parts.items()}
    lib = PileupLibrary(
        offsets=offsets, pdg_id=a["pdg_id"], px=a["px"], py=a["py"], pz=a["pz"], e=a["e"],
        vx=a["vx"], vy=a["vy"], vz=a["vz"],
        library_hash=library_hash(gen), sigma_inel_mb=float(info.sigmaGen()),
        sigma_inel_err_mb=float(info.sigmaErr()),
    )
    return lib, cpu


def write_library(
    cfg: Config, output: str | os.PathLike[str] | None = None, *, progress: bool = True
) -> LibraryResult:
    """Generate the configuration's minimum-bias library and write it (``hepline pileup-library``).

    Args:
        cfg: the configuration (``generation`` is used).
        output: the HDF5 file to write (atomically); default :func:`library_path`.
        progress: show a progress bar.

    Returns:
        What was written: events, particles, hash, σ_inel (mb) and the generation speed.
    """
    import h5py

    gen = cfg.generation
    path = Path(output) if output is not None else library_path(cfg)
    lib, cpu = generate_library(gen, progress=progress)
    identity = library_identity(gen)
    record = provenance_record(stage="generation.pileup_library", config=identity,
                               seeds={"pileup": gen.pileup.seed},
                               extra={"n_events": lib.n_events, "library_hash": lib.library_hash})
    with atomic_path(path, provenance=record) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("offsets", data=lib.offsets)
        for k in _PARTICLE_FIELDS:
            f.create_dataset(k, data=getattr(lib, k), compression="gzip", compression_opts=4,
                             shuffle=True)
        f.attrs["library_hash"] = lib.library_hash
        f.attrs["identity"] = json.dumps(identity, sort_keys=True)
        f.attrs["sigma_inel_mb"] = lib.sigma_inel_mb
        f.attrs["sigma_inel_err_mb"] = lib.sigma_inel_err_mb
        f.attrs["n_events"] = lib.n_events
    result = LibraryResult(
        path=path, n_events=lib.n_events, n_particles=lib.n_particles,
        library_hash=lib.library_hash, sigma_inel_mb=lib.sigma_inel_mb,
        sigma_inel_err_mb=lib.sigma_inel_err_mb, pythia_cpu_s=cpu,
        events_per_cpu_s=lib.n_events / cpu if cpu > 0 else None, bytes=path.stat().st_size,
    )
    log.info("pile-up library %s: %d minimum-bias events, %d particles, σ_inel = %.2f mb, "
             "%.0f events/CPU-s", path, lib.n_events, lib.n_particles, lib.sigma_inel_mb,
             result.events_per_cpu_s or 0.0)
    return result


def read_library(path: str | os.PathLike[str], gen: GenerationConfig) -> PileupLibrary:
    """Load a minimum-bias library and check that ``gen`` made it.

    Args:
        path: the HDF5 library.
        gen: the ``generation`` section the overlay runs with.

    Returns:
        The library.

    Raises:
        InputFileError: the file is missing, unreadable, or was made with another
            configuration (its hash differs from :func:`library_hash` of ``gen``).
    """
    import h5py

    p = Path(path)
    make = "make it with `hepline pileup-library --config <config>`"
    if not p.is_file():
        raise InputFileError(p, f"pile-up library missing (generation.pileup.mu = "
                                f"{gen.pileup.mu:g} needs it); {make}")
    expected = library_hash(gen)
    try:
        with h5py.File(p, "r") as f:
            stored = str(f.attrs.get("library_hash", ""))
            if stored != expected:
                raise InputFileError(p, f"pile-up library made with another configuration (its "
                                        f"hash {stored or 'none'}, generation.pileup and "
                                        f"sqrt_s_gev/multiparton_interactions give {expected}); "
                                        f"{make}")
            arrays = {k: f[k][()] for k in ("offsets", *_PARTICLE_FIELDS)}
            sigma = float(f.attrs["sigma_inel_mb"])
            sigma_err = float(f.attrs["sigma_inel_err_mb"])
    except InputFileError:
        raise
    except (OSError, KeyError) as exc:
        raise InputFileError(p, f"not a readable pile-up library ({exc}); {make}") from exc
    return PileupLibrary(**arrays, library_hash=stored, sigma_inel_mb=sigma,
                         sigma_inel_err_mb=sigma_err, path=p)


def load_pileup(cfg: Config, path: str | os.PathLike[str] | None = None) -> PileupLibrary | None:
    """The library the configuration's overlay needs, or ``None`` when ``mu`` is 0.

    Args:
        cfg: the configuration.
        path: the library file; default :func:`library_path`.

    Raises:
        InputFileError: as :func:`read_library`.
    """
    if cfg.generation.pileup.mu <= 0:
        return None
    return read_library(path if path is not None else library_path(cfg), cfg.generation)


# --------------------------------------------------------------------------- overlay


@numba.njit(cache=True)
def _interleave(hs: np.ndarray, hs_off: np.ndarray, pu: np.ndarray, pu_off: np.ndarray,
                out: np.ndarray) -> None:  # pragma: no cover - compiled
    """Per event, the hard-scatter entries then the pile-up entries (both event-sorted)."""
    k = 0
    for ev in range(hs_off.size - 1):
        for i in range(hs_off[ev], hs_off[ev + 1]):
            out[k] = hs[i]
            k += 1
        for i in range(pu_off[ev], pu_off[ev + 1]):
            out[k] = pu[i]
            k += 1


@dataclass(frozen=True)
class Interactions:
    """The true vertices of a batch: the hard scatter (``index`` 0) and each pile-up
    interaction (1, 2, ...), flat and event-sorted (mm)."""

    event: np.ndarray
    index: np.ndarray
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    #: pile-up interactions of each event
    n_pileup: np.ndarray


def overlay(
    rec: FlatRecord,
    hard_vertex: np.ndarray,
    library: PileupLibrary | None,
    mu: float,
    rng: np.random.Generator,
    beam_spot_sigma: np.ndarray,
) -> tuple[FlatRecord, Interactions]:
    """Add Poisson(``mu``) library events to every event of ``rec``, each at its own vertex.

    Args:
        rec: the hard-scatter record (vertices already displaced to ``hard_vertex``).
        hard_vertex: ``(n_events, 3)`` true hard-scatter vertices (mm).
        library: the minimum-bias library (``None``: no pile-up).
        mu: ⟨μ⟩, the mean number of pile-up interactions per event.
        rng: the shard's random generator (numbers drawn only when ``mu > 0``).
        beam_spot_sigma: ``(3,)`` beam-spot widths σx, σy, σz (mm).

    Returns:
        The merged record (per event: the hard-scatter particles, then the pile-up ones, with
        ``interaction`` set) and the true vertices of every interaction.
    """
    n = rec.n_events
    if library is None or mu <= 0 or library.n_events == 0:
        hs = Interactions(event=np.arange(n), index=np.zeros(n, dtype=np.int64),
                          x=hard_vertex[:, 0], y=hard_vertex[:, 1], z=hard_vertex[:, 2],
                          n_pileup=np.zeros(n, dtype=np.int64))
        return rec, hs
    n_pu = rng.poisson(mu, n).astype(np.int64)
    total = int(n_pu.sum())
    pick = rng.integers(0, library.n_events, total)
    vtx = rng.normal(0.0, 1.0, (total, 3)) * np.asarray(beam_spot_sigma, dtype=np.float64)
    pu_event = np.repeat(np.arange(n), n_pu)
    first = np.cumsum(n_pu) - n_pu
    pu_index = np.arange(total) - first[pu_event] + 1

    # the library particles of every picked event
    lo = library.offsets[pick]
    counts = library.offsets[pick + 1] - lo
    m = int(counts.sum())
    inter_of = np.repeat(np.arange(total), counts)
    src = np.repeat(lo, counts) + (np.arange(m) - np.repeat(np.cumsum(counts) - counts, counts))
    p_event = pu_event[inter_of]

    # merged layout: per event the hard-scatter particles, then the pile-up particles
    hs_counts = np.diff(rec.offsets)
    pu_counts = np.bincount(p_event, minlength=n)
    pu_off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(pu_counts, out=pu_off[1:])
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(hs_counts + pu_counts, out=offsets[1:])
    hs_pos = np.arange(rec.size) + (offsets[:-1] - rec.offsets[:-1])[rec.event]

    def merged(hs: np.ndarray, pu: np.ndarray) -> np.ndarray:
        out = np.empty(int(offsets[-1]), dtype=np.result_type(hs.dtype, pu.dtype))
        _interleave(hs.astype(out.dtype, copy=False), rec.offsets, pu.astype(out.dtype, copy=False),
                    pu_off, out)
        return out

    def link(a: np.ndarray) -> np.ndarray:
        return np.where(a >= 0, hs_pos[np.maximum(a, 0)], -1)

    cols = library.columns
    pu = {k: cols[k][src] for k in cols}
    pu["vx"] += vtx[inter_of, 0]
    pu["vy"] += vtx[inter_of, 1]
    pu["vz"] += vtx[inter_of, 2]
    none = np.full(m, -1, dtype=np.int64)
    base = {
        "pdg_id": merged(rec.pdg_id, pu["pdg_id"]),
        "status": merged(rec.status, np.ones(m, dtype=np.int64)),
        "mother1": merged(link(rec.mother1), none),
        "daughter1": merged(link(rec.daughter1), none),
        "daughter2": merged(link(rec.daughter2), none),
        **{k: merged(getattr(rec, k), pu[k]) for k in ("px", "py", "pz", "e", "m", "vx", "vy", "vz")},
        "interaction": merged(rec.interaction.astype(np.int16), pu_index[inter_of].astype(np.int16)),
    }
    derived = {k: merged(getattr(rec, k), pu[k]) for k in FlatRecord.DERIVED}
    out = FlatRecord.with_derived(
        derived, n_events=n, offsets=offsets, event=np.repeat(np.arange(n), np.diff(offsets)),
        **base,
    )
    # all interactions, event-sorted: the hard scatter first in each event
    ev = np.concatenate([np.arange(n), pu_event])
    idx = np.concatenate([np.zeros(n, dtype=np.int64), pu_index])
    order = np.lexsort((idx, ev))
    inter = Interactions(
        event=ev[order], index=idx[order],
        x=np.concatenate([hard_vertex[:, 0], vtx[:, 0]])[order],
        y=np.concatenate([hard_vertex[:, 1], vtx[:, 1]])[order],
        z=np.concatenate([hard_vertex[:, 2], vtx[:, 2]])[order],
        n_pileup=n_pu,
    )
    return out, inter
