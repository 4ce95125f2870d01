"""Pythia 8 set-up and batched event generation.

Pythia is configured from a :class:`~analysis.generation.processes.ProcessCard` plus the
common run settings (beam energy, seed, MPI switch, quiet output). Events come out in batches
through ``Pythia.nextBatch`` as awkward arrays: no Python loop over particles.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from analysis.core.config import SampleConfig
from analysis.generation.processes import ProcessCard
from analysis.generation.record import use_particle_data

__all__ = [
    "MB_TO_PB",
    "PYTHIA_MAX_SEED",
    "GenerationStats",
    "PythiaInitError",
    "common_settings",
    "cross_section_pb",
    "event_weights",
    "generate_batches",
    "make_pythia",
    "shard_seed",
]

log = logging.getLogger(__name__)

#: Pythia's largest accepted ``Random:seed``
PYTHIA_MAX_SEED = 900_000_000
MB_TO_PB = 1e9


def shard_seed(base_seed: int, sample_name: str, sample: SampleConfig, shard: int) -> int:
    """Seed of one shard: base + sample offset + shard index (within Pythia's seed range).

    The sample offset is ``seed_offset`` when set (non-zero), otherwise derived from the
    sample name (CRC-32), so that different samples never share a random stream.

    Args:
        base_seed: the configuration's ``seed``.
        sample_name: the sample's key in ``generation.samples``.
        sample: its section.
        shard: the shard index.

    Returns:
        The Pythia (and detector) seed of the shard.
    """
    offset = sample.seed_offset or (zlib.crc32(sample_name.encode()) % 100_000) * 1000
    return int((base_seed + offset + shard) % PYTHIA_MAX_SEED)


def common_settings(seed: int, sqrt_s_gev: float, mpi: bool) -> list[str]:
    """Run settings shared by every process (before the process card's own lines).

    Args:
        seed: Pythia's ``Random:seed``.
        sqrt_s_gev: centre-of-mass energy (GeV).
        mpi: multiparton interactions on or off.

    Returns:
        Pythia ``readString`` lines.
    """
    return [
        f"Beams:eCM = {sqrt_s_gev}",
        "Random:setSeed = on",
        f"Random:seed = {seed}",
        f"PartonLevel:MPI = {'on' if mpi else 'off'}",
        "Next:numberCount = 0",
        "Next:numberShowEvent = 0",
        "Next:numberShowInfo = 0",
        "Next:numberShowProcess = 0",
        "Init:showChangedSettings = off",
        "Init:showChangedParticleData = off",
        "Print:quiet = on",
    ]


class PythiaInitError(RuntimeError):
    """Pythia refused the configuration (it prints why; we re-raise with the settings)."""


@dataclass
class GenerationStats:
    """Counters of one generation run, filled by :func:`generate_batches`."""

    n_generated: int = 0
    n_accepted: int = 0
    seconds: float = 0.0  # wall-clock time inside Pythia
    cpu_seconds: float = 0.0  # CPU time of this process inside Pythia


def make_pythia(card: ProcessCard, settings: list[str], workdir: Path) -> Any:
    """An initialised ``pythia8mc.Pythia`` for ``card``; auxiliary files go to ``workdir``.

    Args:
        card: the sample's process card.
        settings: the common run settings (:func:`common_settings`), applied first.
        workdir: folder for the card's files (``{workdir}`` in its settings).

    Returns:
        The initialised generator; its particle data also serves :func:`charge_of`.

    Raises:
        PythiaInitError: Pythia rejects a setting or fails to initialise.
    """
    import pythia8mc

    workdir.mkdir(parents=True, exist_ok=True)
    for name, text in card.files.items():
        (workdir / name).write_text(text)
    pythia = pythia8mc.Pythia("", False)
    lines = settings + [s.replace("{workdir}", str(workdir)) for s in card.settings]
    for line in lines:
        if not pythia.readString(line):
            raise PythiaInitError(f"Pythia rejected the setting {line!r}")
    if not pythia.init():
        raise PythiaInitError("Pythia initialisation failed with settings:\n  " + "\n  ".join(lines))
    use_particle_data(pythia.particleData)
    return pythia


def generate_batches(
    pythia: Any, card: ProcessCard, n_events: int, batch_size: int, stats: GenerationStats,
    *, max_attempts_factor: int = 20,
) -> Iterator[ak.Array]:
    """Yield batches until ``n_events`` events passed the card's filter.

    Batches of ``batch_size`` events come from ``Pythia.nextBatch`` (the last one shorter);
    ``stats`` counts generated and accepted events and the time spent in Pythia (s).
    Raises ``RuntimeError`` when the filter accepts too few events (fewer than ``n_events``
    after ``max_attempts_factor × n_events`` generated), rather than looping for ever.
    """
    import time

    remaining = n_events
    while remaining > 0:
        if stats.n_generated > max_attempts_factor * n_events:
            raise RuntimeError(
                f"event filter '{card.filter_description}' accepted {stats.n_accepted} of "
                f"{stats.n_generated} events; stopping before {n_events} were reached"
            )
        t0, c0 = time.perf_counter(), time.process_time()
        batch = pythia.nextBatch(min(batch_size, remaining) if card.event_filter is None else batch_size)
        stats.seconds += time.perf_counter() - t0
        stats.cpu_seconds += time.process_time() - c0
        stats.n_generated += len(batch)
        if card.event_filter is not None:
            batch = batch[np.asarray(card.event_filter(batch), dtype=bool)]
        batch = batch[:remaining]
        stats.n_accepted += len(batch)
        remaining -= len(batch)
        if len(batch):
            yield batch


def event_weights(batch: ak.Array) -> np.ndarray:
    """Nominal generator weight of each event (1 for unweighted samples), float64."""
    info = batch["info"]
    if "weights" in ak.fields(info):
        w = ak.to_numpy(ak.fill_none(ak.firsts(info["weights"], axis=1), 1.0))
        return w.astype(np.float64)
    return np.ones(len(batch))


def cross_section_pb(pythia: Any, card: ProcessCard, stats: GenerationStats) -> tuple[float, float, str]:
    """(σ·B·ε_filter in pb, its statistical uncertainty, source) for the events written."""
    info = pythia.infoPython()
    eff = stats.n_accepted / stats.n_generated if stats.n_generated else 0.0
    if card.xsec_pb is not None:
        # external σ: the filter only selects the decay mode whose physical branching is applied
        return card.xsec_pb * card.branching, 0.0, "external"
    sigma = info.sigmaGen() * MB_TO_PB
    err = info.sigmaErr() * MB_TO_PB
    return sigma * card.branching * eff, err * card.branching * eff, "pythia"
