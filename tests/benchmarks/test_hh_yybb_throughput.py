"""tests.benchmarks.hh_yybb_throughput: the selection against a plain read of its branches."""

from __future__ import annotations

import json
import statistics

import pytest

from analysis.core.provenance import read_provenance
from selections.hh_yybb import processor as S
from tests.benchmarks import hh_yybb_throughput as T
from tests.selections.hh_yybb.test_processor import (
    WP_FILE_CONTENT,
    make_config,
    write_hepline_events,
)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    base = tmp_path_factory.mktemp("throughput")
    path = write_hepline_events(base / "hhtest_0.root")
    wp = base / "wp.json"
    wp.write_text(json.dumps(WP_FILE_CONTENT))
    return path, wp


def test_benchmark_reports_the_ratios_of_its_own_runs(inputs):
    """Alternating runs, the plain read of the selection's own branches, and each ratio
    computed from the recorded runs."""
    path, wp = inputs
    config = make_config()
    out = T.benchmark([str(path)], config, wp, repeat=3)
    sel, read = out["selection_runs"], out["read_runs"]
    assert len(sel) == len(read) == 3
    n = S.run_selection([path], config, wp).metrics.events
    assert out["events"] == n and all(r["events"] == n for r in sel + read)
    assert "Photon_pt" in out["branches"] and "Jet_btag_dl1" in out["branches"]
    med = statistics.median
    assert out["ratio_cpu"] == pytest.approx(med(n / r["cpu_s"] for r in sel) / med(n / r["cpu_s"] for r in read))
    assert out["ratio_cpu_best"] == pytest.approx(min(r["cpu_s"] for r in read) / min(r["cpu_s"] for r in sel))
    assert out["ratio_cpu_paired"] == pytest.approx(med(r["cpu_s"] / s["cpu_s"] for s, r in zip(sel, read)))
    assert out["systematics"] is True and out["repeat"] == 3 and out["engine"] == "reference"
    assert all(r["read_s"] > 0 and r["select_fill_s"] > 0 for r in sel)


def test_main_prints_and_writes_the_result_with_the_select_record(inputs, tmp_path, capsys):
    path, wp = inputs
    cfg = tmp_path / "config.yaml"
    cfg.write_text(json.dumps({"seed": 1, "runner": {"executor": "iterative"},
                               "generation": {"samples": {"x300": {"process": "x_hh_yybb", "mass_gev": 300,
                                                                   "xsec_pb": 1.0, "shards": 1,
                                                                   "events_per_shard": 1}}}}))
    metrics = tmp_path / "bench.json"
    assert T.main(["--config", str(cfg), "--working-points", str(wp), "--set", "selection.hh_yybb.engine=numpy",
                   "--seed", "5", "--benchmark", "1", "--metrics", str(metrics), "--no-gc-freeze", str(path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads(metrics.read_text())
    assert printed == {k: v for k, v in written.items() if k not in ("branches", "files")}
    assert printed["repeat"] == 1 and printed["engine"] == "numpy" and printed["events"] == 19
    rec = read_provenance(metrics)
    assert rec["stage"] == "hh_yybb.select" and rec["seeds"] == {"smearing": 5}
