"""Shared pytest fixtures.

Generated samples: small shards produced once per session with the real generator
(Pythia 8 + the detector), for physics checks in any test directory.

Ingestion: small input files in the three formats read by ``analysis.io.ingest``, written
once per session with ``tests.fixtures.files`` (tests must not modify them; write your own
file in ``tmp_path`` to corrupt one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analysis.core.config import Config, load_config
from tests.fixtures.files import write_delphes_fixture, write_hepline_fixture, write_nanoaod_fixture
from analysis.generation.produce import produce_shard

N_FIXTURE_EVENTS = 60


@pytest.fixture(scope="session")
def hepline_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A hepline ntuple with ``N_FIXTURE_EVENTS`` events (sample ``fixture_hh_yybb``)."""
    path = tmp_path_factory.mktemp("hepline") / "hepline.root"
    return write_hepline_fixture(path, N_FIXTURE_EVENTS, np.random.default_rng(101), weighted=True)


@pytest.fixture(scope="session")
def nanoaod_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CMS-NanoAOD-like file with ``N_FIXTURE_EVENTS`` events."""
    path = tmp_path_factory.mktemp("nanoaod") / "nanoaod.root"
    return write_nanoaod_fixture(path, N_FIXTURE_EVENTS, np.random.default_rng(102))


@pytest.fixture(scope="session")
def delphes_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Delphes-like file with ``N_FIXTURE_EVENTS`` events."""
    path = tmp_path_factory.mktemp("delphes") / "delphes.root"
    return write_delphes_fixture(path, N_FIXTURE_EVENTS, np.random.default_rng(103))


@pytest.fixture(scope="session")
def hepline_sample_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three hepline shards: two of sample ``sig`` (30 + 25 events), one of ``bkg`` (40)."""
    folder = tmp_path_factory.mktemp("samples")
    rng = np.random.default_rng(104)
    return [
        write_hepline_fixture(folder / "sig_0.root", 30, rng, sample="sig", shard=0),
        write_hepline_fixture(folder / "sig_1.root", 25, rng, sample="sig", shard=1),
        write_hepline_fixture(
            folder / "bkg_0.root", 40, rng, sample="bkg", process="pp > yy + jets", xsec_pb=50.0
        ),
    ]


REPO = Path(__file__).resolve().parents[1]
N_TTBAR = 400
N_XHH = 200


@pytest.fixture(scope="session")
def config() -> Config:
    """The shipped default configuration (workflows/config/default.yaml), typed."""
    return load_config(REPO / "workflows" / "config" / "default.yaml")




@pytest.fixture(scope="session")
def ttbar_file(tmp_path_factory: pytest.TempPathFactory, config: Config) -> Path:
    path = tmp_path_factory.mktemp("gen") / "ttbar_0.root"
    produce_shard(config, "ttbar", 0, path, n_events=N_TTBAR, progress=False)
    return path


@pytest.fixture(scope="session")
def xhh_file(tmp_path_factory: pytest.TempPathFactory, config: Config) -> Path:
    path = tmp_path_factory.mktemp("gen") / "xhh_500_0.root"
    produce_shard(config, "xhh_500", 0, path, n_events=N_XHH, progress=False)
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the ``slurm``/``xrootd`` tests, with the reason, where their service is not up
    (tests/farm/slurm.sh, tests/farm/xrootd.sh start them; .ci/run does)."""
    from tests.farm import slurm_available, xrootd_available

    checks = {"slurm": slurm_available, "xrootd": xrootd_available}
    for item in items:
        for marker, check in checks.items():
            if marker in item.keywords and (reason := check()):
                item.add_marker(pytest.mark.skip(reason=f"{marker}: {reason}"))
