"""The Snakemake workflow: lint, dry runs with every profile and config, report captions.

Dry runs (``-n``) write nothing but Snakemake's own bookkeeping; they build the whole DAG into
an empty temporary ``output_dir`` (``--config output_dir=...``), so every job is counted. The
expected job counts are worked out here from the config independently of the rule files.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from analysis.core.config import Config, load_config

REPO = Path(__file__).resolve().parents[2]
PROFILES = ("local", "slurm", "htcondor")
CONFIGS = ("default", "full")
PLUGINS = {"slurm": "snakemake_executor_plugin_slurm", "htcondor": "snakemake_executor_plugin_htcondor"}
TRAINING_RULES = ("calo_train", "taggers_train_rnnip", "taggers_train_dl1")
# cheap steps that run on the submit host under a farm profile (`localrules:`)
LOCAL_RULES = {"merge_sample", "rpv_cutbased_rates", "hh_yybb_plots", "all"}
AGGREGATE_RULES = {"generation_all", "validation_all", "taggers_all", "calo_all", "hh_yybb_all"}


def _snakemake(*args: str, timeout: float = 120) -> str:
    env = {**os.environ, "CONDOR_CONFIG": os.environ.get("CONDOR_CONFIG", "/dev/null")}
    proc = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def _job_stats(out: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: count} (without the total)."""
    table = out[out.index("Job stats:"):].splitlines()[3:]
    counts = {}
    for line in table:
        name, n = line.split()
        if name == "total":
            return counts
        counts[name] = int(n)
    raise AssertionError("no total row in the job stats")


def _jobs(out: str) -> list[dict]:
    """Every printed job: rule name, threads and resources."""
    jobs = []
    for m in re.finditer(r"^rule (\w+):\n((?:    .*\n)+)", out, re.M):
        body = m.group(2)
        res = re.search(r"^    resources: (.*)$", body, re.M)
        thr = re.search(r"^    threads: (\d+)$", body, re.M)
        resources = dict(kv.split("=", 1) for kv in res.group(1).split(", ")) if res else {}
        jobs.append({"rule": m.group(1),
                     "threads": int(thr.group(1)) if thr else 1, "resources": resources})
    return jobs


def expected_counts(cfg: Config) -> dict[str, int]:
    """Jobs per rule of `snakemake all` from nothing, derived from the config."""
    samples = cfg.generation.samples
    shards = {s: c.shards for s, c in samples.items()}
    no_btag = {"rpv_gluino", "qcd_multijet"}
    decorate = cfg.taggers.decorate_samples
    if decorate is None:
        decorate = tuple(s for s, c in samples.items() if c.process not in no_btag)
    calo = [*cfg.rpv.signal_samples, *cfg.rpv.background_samples]
    hh = [s for s in cfg.selection.hh_yybb.samples if s in samples]
    return {
        "generate_shard": sum(shards.values()),
        "merge_sample": len(samples),
        "validate_sample": len(samples),
        "taggers_prepare": 1, "taggers_train_rnnip": 1, "taggers_train_mv2": 1,
        "taggers_train_dl1": 1, "taggers_evaluate": 1,
        "taggers_decorate": sum(shards[s] for s in decorate),
        "calo_images": len(calo), "rpv_cutbased": len(calo), "rpv_cutbased_rates": 1,
        "calo_train": 1, "calo_evaluate": 1,
        "hh_yybb_select": len(hh), "hh_yybb_histograms": 1, "hh_yybb_workspaces": 1,
        "hh_yybb_limits": 1, "hh_yybb_plots": 1,
        "all": 1,
    }


def _config(name: str) -> Config:
    return load_config(REPO / "workflows" / "config" / f"{name}.yaml")


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("profile", PROFILES)
def test_dry_run(profile, config, tmp_path):
    if profile in PLUGINS:
        pytest.importorskip(PLUGINS[profile], reason=f"the {profile} executor plugin (pip install 'hepline[farm]')")
    cfg = _config(config)
    out = _snakemake("-n", "--profile", f"workflows/profiles/{profile}",
                     "--configfile", f"workflows/config/{config}.yaml",
                     "--config", f"output_dir={tmp_path / 'out'}", "--cores", "16")
    counts = _job_stats(out)
    expected = expected_counts(cfg)
    assert counts == expected
    # anchors, so that a change of the configs or of the rules that shifts both is seen too
    assert sum(counts.values()) == {"default": 77, "full": 458}[config]

    jobs = _jobs(out)
    assert Counter(j["rule"] for j in jobs) == Counter(expected)
    for job in jobs:
        rule, res = job["rule"], job["resources"]
        if rule in LOCAL_RULES:
            continue
        # every batch job asks for memory and time (attempt 1 of the growing requests)
        assert int(res["mem_mb"]) >= 2000 and int(res["runtime"]) >= 30, (rule, res)
        assert res["htcondor_request_mem_mb"] == res["mem_mb"], (rule, res)
    by_rule = {j["rule"]: j for j in jobs}
    assert by_rule["calo_train"]["resources"]["mem_mb"] == "8000"
    assert by_rule["calo_train"]["resources"]["runtime"] == "720"
    assert by_rule["taggers_prepare"]["resources"]["mem_mb"] == "12000"
    farm = profile != "local"
    for rule in TRAINING_RULES:
        res, threads = by_rule[rule]["resources"], by_rule[rule]["threads"]
        # no GPU unless the config's site section says the farm has some (site.gpus)
        assert "gpu" not in res and "request_gpus" not in res, (rule, res)
        assert threads == (8 if rule == "calo_train" else 4) if farm else threads >= 1
    if profile == "htcondor":
        assert by_rule["generate_shard"]["resources"]["getenv"] == "True"


@pytest.mark.parametrize("profile", ("slurm", "htcondor"))
def test_site_settings_reach_the_farm_jobs(profile, tmp_path):
    """site.gpus: GPUs for the training rules only; site.max_threads caps every job's threads,
    the profile's set-threads included; the partition and account go to every batch job."""
    pytest.importorskip(PLUGINS[profile], reason=f"the {profile} executor plugin (pip install 'hepline[farm]')")
    raw = yaml.safe_load((REPO / "workflows" / "config" / "default.yaml").read_text())
    raw["site"] = {"gpus": 2, "max_threads": 3, "slurm_partition": "gpu", "slurm_account": "hh"}
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(raw))
    out = _snakemake("-n", "--profile", f"workflows/profiles/{profile}", "--configfile",
                     str(tmp_path / "site.yaml"), "--config", f"output_dir={tmp_path / 'out'}",
                     "--cores", "16")
    jobs = [j for j in _jobs(out) if j["rule"] not in LOCAL_RULES]
    assert len(jobs) == sum(n for r, n in expected_counts(_config("default")).items()
                            if r not in LOCAL_RULES) == 62
    for job in jobs:
        rule, res = job["rule"], job["resources"]
        gpus = "2" if rule in TRAINING_RULES else None
        assert (res.get("gpu"), res.get("request_gpus")) == (gpus, gpus), (rule, res)
        assert job["threads"] <= 3, job
        assert (res["slurm_partition"], res["slurm_account"]) == ("gpu", "hh"), (rule, res)
    assert {j["rule"]: j["threads"] for j in jobs}["calo_train"] == 3  # 8 in the profile


def test_profiles_are_snakemake_8_profiles():
    for profile in PROFILES:
        files = sorted(p.name for p in (REPO / "workflows" / "profiles" / profile).iterdir())
        assert files == ["config.v8+.yaml"], (profile, files)
        prof = yaml.safe_load((REPO / "workflows" / "profiles" / profile / "config.v8+.yaml").read_text())
        assert prof.get("executor", "local") == profile


def test_localrules():
    """The dry run's executor runs every job locally, so the declarations are read here."""
    declared = set()
    for path in [REPO / "Snakefile", *sorted((REPO / "workflows" / "rules").glob("*.smk"))]:
        for block in re.findall(r"^localrules:\n((?:    \w+,?\n)+)", path.read_text(), re.M):
            declared |= {name.strip(" ,") for name in block.splitlines()}
    assert declared == LOCAL_RULES | AGGREGATE_RULES


def test_lint_is_clean():
    out = _snakemake("--lint")
    assert "Lints for" not in out, out
    assert "Congratulations, your workflow is in a good condition!" in out


def test_every_report_item_has_a_caption():
    rules = sorted((REPO / "workflows" / "rules").glob("*.smk"))
    items = 0
    for path in rules:
        text = path.read_text()
        for m in re.finditer(r"report\((.*?)\),\n", text, re.S):
            items += 1
            cap = re.search(r'caption="([^"]+)"', m.group(1))
            assert cap, f"{path.name}: report item without caption: {m.group(0)}"
            caption = (path.parent / cap.group(1)).resolve()
            assert caption.is_file() and caption.read_text().strip(), caption
            # RST substitution references (|x|) break the caption: escape them as \|x\|
            assert not re.search(r"(?<!\\)\|\S[^|]*(?<!\\)\|", caption.read_text()), caption
    assert items == 4 + 1 + 3 + 6  # taggers, validation, calo, hh_yybb (plots and tables)
