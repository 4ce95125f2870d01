"""Small generated samples shared by the generation tests (produced once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.config import load_config
from analysis.generation.produce import produce_shard

REPO = Path(__file__).resolve().parents[3]
N_TTBAR = 400
N_XHH = 200


@pytest.fixture(scope="session")
def default_config() -> dict:
    return load_config(REPO / "workflows" / "config" / "default.yaml")


@pytest.fixture(scope="session")
def ttbar_file(tmp_path_factory: pytest.TempPathFactory, default_config: dict) -> Path:
    path = tmp_path_factory.mktemp("gen") / "ttbar_0.root"
    produce_shard(default_config, "ttbar", 0, path, n_events=N_TTBAR, progress=False)
    return path


@pytest.fixture(scope="session")
def xhh_file(tmp_path_factory: pytest.TempPathFactory, default_config: dict) -> Path:
    path = tmp_path_factory.mktemp("gen") / "xhh_500_0.root"
    produce_shard(default_config, "xhh_500", 0, path, n_events=N_XHH, progress=False)
    return path
