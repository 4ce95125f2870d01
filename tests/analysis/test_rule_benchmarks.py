"""analysis.rule_benchmarks: per-rule sums of Snakemake benchmark files."""

from __future__ import annotations

import pytest

from analysis import rule_benchmarks as RB
from analysis.cli import main as hepline

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _bench(path, s, cpu, rss):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{s}\t0:00:0{int(s)}\t{rss}\t1\t1\t1\t0\t0\t50\t{cpu}\n")


def test_summary_per_rule(tmp_path, capsys):
    _bench(tmp_path / "generate_shard" / "ttbar_0.tsv", 3.0, 2.5, 300)
    _bench(tmp_path / "generate_shard" / "ttbar_1.tsv", 5.0, 4.0, 350)
    _bench(tmp_path / "hh_yybb_limits" / "job.tsv", 1.5, 1.0, 200)
    rows = RB.summarise(tmp_path)
    assert [r["rule"] for r in rows] == ["generate_shard", "hh_yybb_limits"]
    gen = rows[0]
    assert (gen["jobs"], gen["wall_s"], gen["cpu_s"], gen["max_wall_s"], gen["max_rss_mb"]) == (2, 8.0, 6.5, 5.0, 350)
    md = RB.markdown(rows)
    assert "| generate_shard | 2 | 8.0 | 6.5 | 5.0 | 350 |" in md
    assert "| **all benchmarked jobs** | 3 | 9.5 | 7.5 | | |" in md
    assert hepline(["benchmarks", str(tmp_path)]) == 0
    assert "generate_shard" in capsys.readouterr().out


def test_bad_benchmark_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="no benchmark folder"):
        RB.summarise(tmp_path / "missing")
    with pytest.raises(ValueError, match="no <rule>/<job>.tsv"):
        RB.summarise(tmp_path)
    bad = tmp_path / "rule" / "job.tsv"
    bad.parent.mkdir()
    bad.write_text("nothing\n")
    with pytest.raises(ValueError, match="not a Snakemake benchmark file"):
        RB.summarise(tmp_path)
