"""mypy over the three packages, with the settings of ``pyproject.toml`` (``[tool.mypy]``):
``disallow_untyped_defs`` on the foundation, I/O, statistics, plots, training core,
generation, the CLI and the stage entry points."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.fixtures.paths import REPO


@pytest.mark.slow
def test_mypy_is_clean() -> None:
    pytest.importorskip("mypy")
    res = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout[-5000:] + res.stderr[-2000:]
