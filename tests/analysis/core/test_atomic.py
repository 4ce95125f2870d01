"""Tests of analysis.core.atomic: outputs appear whole or not at all, with the umask's permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import uproot

from analysis.core.atomic import atomic_path, write_json, write_text


@pytest.fixture
def umask():
    """Set the process umask for a test, restoring it after."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_respect_the_umask(tmp_path, umask, mask, mode) -> None:
    umask(mask)
    write_text(tmp_path / "a.txt", "x")
    write_json(tmp_path / "b.json", {"a": 1}, provenance={"stage": "test"})
    with atomic_path(tmp_path / "c.root") as tmp, uproot.recreate(tmp) as f:
        f["t"] = {"x": np.arange(3)}
    for name in ("a.txt", "b.json", "b.json.provenance.json", "c.root"):
        assert _mode(tmp_path / name) == mode, name


def test_a_failed_write_leaves_nothing(tmp_path) -> None:
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
