"""Fixtures of the tagger tests: a small generated ttbar sample and hand-made events.

The ttbar sample is the session-wide generated shard of tests/conftest.py (``ttbar_file``,
shard 0 of the default config), produced once for all test directories; tests must not modify the
datasets built from it (``TaggingDataset.subset`` copies).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from analysis.core.config import Config
from analysis.core.config.taggers import TaggersConfig
from analysis.generation.tracking import perigee
from taggers.dataset import Split, prepare_splits
from taggers.features import TaggingDataset, load_dataset

B_FIELD_T = 2.0


@pytest.fixture
def one_torch_thread():
    """One torch intra-op thread for the test: small networks are slower with more, and the
    CI box is shared (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def cfg(config: Config) -> TaggersConfig:
    """The ``taggers`` section of the default config (tests/conftest.py)."""
    return config.taggers


@pytest.fixture(scope="session")
def tagger_ttbar_file(ttbar_file: Path) -> Path:
    """The shared generated ttbar shard of tests/conftest.py (400 events, shard 0)."""
    return ttbar_file


@pytest.fixture(scope="session")
def ttbar_ds(tagger_ttbar_file: Path, cfg: TaggersConfig) -> TaggingDataset:
    return load_dataset([str(tagger_ttbar_file)], cfg)


@pytest.fixture(scope="session")
def ttbar_splits(ttbar_ds: TaggingDataset, cfg: TaggersConfig) -> Split:
    return prepare_splits(ttbar_ds, cfg, rng=np.random.default_rng(7))


# ---------------------------------------------------------------------------------------
# Hand-made events
# ---------------------------------------------------------------------------------------
def displaced_track(
    vertex: Sequence[float],
    pt: float,
    eta: float,
    phi: float,
    charge: int,
    *,
    d0_err: float = 0.010,
    z0_err: float = 0.020,
    grade: int = 0,
    origin: int = 3,
    jet_idx: int = 0,
) -> dict:
    """A track record (hepline ``Track`` fields) produced at ``vertex`` (mm, PV at the origin)
    with the given momentum, through the generator's own helix perigee (2 T), unsmeared."""
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    d0, zp, phi0 = perigee(
        np.array([vertex[0]]),
        np.array([vertex[1]]),
        np.array([vertex[2]]),
        np.array([px]),
        np.array([py]),
        np.array([pz]),
        np.array([float(charge)]),
        np.array([0.0]),
        np.array([0.0]),
        B_FIELD_T,
    )
    return {
        "pt": pt,
        "eta": eta,
        "phi": float(phi0[0]),
        "charge": charge,
        "d0": float(d0[0]),
        "z0": float(zp[0]),
        "d0Err": d0_err,
        "z0Err": z0_err,
        "grade": grade,
        "truthOrigin": origin,
        "jetIdx": jet_idx,
    }


def jet_record(pt: float, eta: float, phi: float, label: int = 5) -> dict:
    return {"pt": pt, "eta": eta, "phi": phi, "hadronConeExclTruthLabelID": label}


def make_events(events: Sequence[dict]) -> ak.Array:
    """An awkward array shaped like ``read_arrays(..., how="zip")``: each item
    ``{"event": n, "Jet": [jet_record...], "Track": [track dict...]}``."""
    return ak.Array(
        [
            {"event": np.uint64(e["event"]), "Jet": list(e["Jet"]), "Track": list(e["Track"])}
            for e in events
        ]
    )
