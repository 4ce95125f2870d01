"""tests.benchmarks.hh_yybb_scaling: run parsing and a small executor comparison."""

from __future__ import annotations

import json

import pytest

from tests.benchmarks import hh_yybb_scaling as M
from tests.selections.hh_yybb.test_processor import WP_FILE_CONTENT, make_config, write_hepline_events


def test_parse_runs():
    assert M.parse_runs(["iterative:1", "dask:2"]) == [("iterative", 1), ("dask", 2)]
    for bad in ("dask", "slurm:2", "futures:0", "futures:x"):
        with pytest.raises(ValueError, match="executor:workers"):
            M.parse_runs([bad])


def test_scaling_rows_agree_on_the_events(tmp_path):
    path = write_hepline_events(tmp_path / "hhtest_0.root")
    wp = tmp_path / "wp.json"
    wp.write_text(json.dumps(WP_FILE_CONTENT))
    cfg = make_config()
    rows = M.scaling([str(path)], cfg, str(wp), [("iterative", 1), ("futures", 2)], chunksize=5, repeat=1)
    assert [(r["executor"], r["workers"]) for r in rows] == [("iterative", 1), ("futures", 2)]
    assert {r["events"] for r in rows} == {19} and {r["chunks"] for r in rows} == {4}
    assert all(r["wall_s"] > 0 and r["events_per_s"] > 0 and r["bytes_per_event"] > 0 for r in rows)
