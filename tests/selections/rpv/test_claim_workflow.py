"""The cnn_claim workflow target (workflows/rules/cnn_claim.smk): a dry run of the claim's config
plans every shard through `hepline rpv generate` (the preselection at write time), one image
file and cut table per sample, one training per network and seed, the throughput and one
evaluation (that `snakemake all` plans none of it is checked by tests/workflows/test_snakemake.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.core.config import load_config

REPO = Path(__file__).resolve().parents[3]
CLAIM_CONFIG = REPO / "workflows" / "config" / "cnn_claim.yaml"


def _dry_run(tmp_path: Path, configfile: Path, target: str) -> str:
    env = {**os.environ, "CONDOR_CONFIG": os.environ.get("CONDOR_CONFIG", "/dev/null")}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--configfile", str(configfile),
                           "--config", f"output_dir={tmp_path / 'out'}", "--", target],
                          check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def _job_stats(out: str) -> dict[str, int]:
    table = out[out.index("Job stats:"):].splitlines()[3:]
    counts = {}
    for line in table:
        name, n = line.split()
        if name == "total":
            return counts
        counts[name] = int(n)
    raise AssertionError("no total row in the job stats")


@pytest.mark.parametrize("config", ["cnn_claim.yaml", "cnn_claim_smoke.yaml"])
def test_cnn_claim_plans_every_job_once(tmp_path, config: str) -> None:
    path = REPO / "workflows" / "config" / config
    cfg = load_config(path)
    samples = [*cfg.rpv.signal_samples, *cfg.rpv.background_samples]
    claim = cfg.calo.claim
    assert cfg.rpv.preselection.enabled and len(claim.seeds) >= 3
    counts = _job_stats(_dry_run(tmp_path, path, "cnn_claim"))
    assert counts == {
        "rpv_generate_shard": sum(cfg.generation.samples[s].shards for s in samples),
        "calo_images": len(samples), "rpv_cutbased": len(samples), "rpv_cutbased_rates": 1,
        "claim_train_cnn": len(claim.seeds) if "cnn" in claim.networks else 0,
        "claim_train_point_cloud": len(claim.seeds) if "point_cloud" in claim.networks else 0,
        "claim_throughput": 1, "claim_evaluate": 1, "cnn_claim": 1,
    }, counts


def test_the_claim_config_sizes_the_qcd_slices_for_the_working_point() -> None:
    """360k + 15k QCD events (and the 250-400 GeV slice), 20k signal, half of them in the test split."""
    cfg = load_config(CLAIM_CONFIG)
    n = {s: c.shards * c.events_per_shard for s, c in cfg.generation.samples.items()}
    assert n["qcd_400_800"] >= 360_000 and n["qcd_800_inf"] >= 14_000 and n["qcd_250_400"] >= 30_000
    assert n["rpv_1400_850"] >= 20_000
    split = cfg.calo.split
    assert len(split.test) / split.modulus == 0.5
    assert cfg.calo.model.filters == 32
