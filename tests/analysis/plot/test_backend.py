"""analysis.plot.style.use_file_backend: Agg for files, except under a notebook's inline backend."""

from __future__ import annotations

import matplotlib

from analysis.plot import style


def test_file_backend_keeps_a_notebook_backend(monkeypatch):
    calls = []
    monkeypatch.setattr(matplotlib, "use", lambda name, *a, **k: calls.append(name))
    monkeypatch.setitem(matplotlib.rcParams, "backend", "module://matplotlib_inline.backend_inline")
    style.use_file_backend()
    assert calls == []
    monkeypatch.setitem(matplotlib.rcParams, "backend", "tkagg")
    style.use_file_backend()
    assert calls == ["Agg"]
