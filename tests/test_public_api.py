"""The public API: every public module declares ``__all__``, and the names are pinned.

As pyhf's public-API test does, a name added to or removed from a module's ``__all__`` fails
here until ``tests/fixtures/public_api.json`` is updated on purpose::

    HEPLINE_UPDATE_PUBLIC_API=1 pytest tests/test_public_api.py
"""

from __future__ import annotations

import importlib
import json
import os

import pytest

from tests.fixtures.paths import REPO
from tests.test_architecture import MODULES

PINNED = REPO / "tests" / "fixtures" / "public_api.json"

#: modules whose names start with an underscore, and entry scripts, are not public
PUBLIC = sorted(m for m in MODULES if not any(part.startswith("_") for part in m.split(".")))


def _api() -> dict[str, list[str]]:
    out = {}
    for name in PUBLIC:
        module = importlib.import_module(name)
        names = getattr(module, "__all__", None)
        out[name] = sorted(names) if names is not None else None
    return out


@pytest.fixture(scope="module")
def api() -> dict[str, list[str]]:
    return _api()


def test_every_public_module_declares_all(api: dict[str, list[str]]) -> None:
    packages = {m for m in PUBLIC if (REPO / m.replace(".", "/") / "__init__.py").exists()}
    missing = [m for m, names in api.items() if names is None and m not in packages]
    assert missing == []


def test_every_name_in_all_exists(api: dict[str, list[str]]) -> None:
    absent = {m: [n for n in names if not hasattr(importlib.import_module(m), n)]
              for m, names in api.items() if names}
    assert {m: n for m, n in absent.items() if n} == {}


def test_the_public_names_are_pinned(api: dict[str, list[str]]) -> None:
    current = {m: names for m, names in api.items() if names is not None}
    if os.environ.get("HEPLINE_UPDATE_PUBLIC_API"):
        PINNED.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    pinned = json.loads(PINNED.read_text())
    added = {m: sorted(set(current.get(m, [])) - set(pinned.get(m, []))) for m in set(current) | set(pinned)}
    removed = {m: sorted(set(pinned.get(m, [])) - set(current.get(m, []))) for m in set(current) | set(pinned)}
    assert ({m: n for m, n in added.items() if n}, {m: n for m, n in removed.items() if n}) == ({}, {}), (
        "the public API changed (added, removed): update tests/fixtures/public_api.json on purpose "
        "with HEPLINE_UPDATE_PUBLIC_API=1")
