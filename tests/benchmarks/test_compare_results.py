"""The results comparison finds physics differences and ignores run-time ones."""

from __future__ import annotations

import json

import numpy as np
import uproot

from tests.benchmarks.compare_results import compare


def _results(root, value: float, seconds: float, pt: list[float]) -> None:
    (root / "stage").mkdir(parents=True)
    (root / "stage" / "summary.json").write_text(json.dumps(
        {"ratio": value, "wall_time_s": seconds, "provenance": {"created_utc": str(seconds)}}))
    with uproot.recreate(root / "stage" / "tree.root") as f:
        f["Events"] = {"Jet_pt": np.asarray(pt, dtype=np.float32)}


def test_physics_differences_are_found_and_timings_ignored(tmp_path) -> None:
    _results(tmp_path / "a", 1.5, 10.0, [30.0, 40.0])
    _results(tmp_path / "b", 1.5, 12.0, [30.0, 40.0])
    assert compare(tmp_path / "a", tmp_path / "b") == {}
    _results(tmp_path / "c", 1.6, 10.0, [30.0, 41.0])
    report = compare(tmp_path / "a", tmp_path / "c")
    assert report["stage/summary.json"] == [".ratio: 1.5 != 1.6"]
    assert report["stage/tree.root"] == ["Events/Jet_pt differs"]


def test_paths_compare_from_the_output_folder_on() -> None:
    from tests.benchmarks.compare_results import _json_diff

    assert list(_json_diff({"files": ["results/samples/a.root"]}, {"files": ["/tmp/out/samples/a.root"]}, "")) == []
    assert list(_json_diff({"files": ["results/samples/a.root"]}, {"files": ["/tmp/out/samples/b.root"]}, ""))
