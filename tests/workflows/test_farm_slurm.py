"""The workflow on a real Slurm cluster, through the shipped profile (``slurm`` marker).

Needs a cluster that answers ``sinfo`` (``tests/farm/slurm.sh`` starts a one-node one here;
elsewhere these tests are skipped). A tiny config derived from ``default.yaml`` (five
samples, one shard each, a few hundred events, short trainings, ``site.max_threads: 1``)
runs end to end twice, into two temporary folders:

* locally (``--profile workflows/profiles/local --cores 2``), the reference;
* through ``--profile workflows/profiles/slurm``, each rule job a Slurm job. A watcher polls
  ``squeue`` all along and ``scancel``\\s the ``ttbar`` generation job once it has run for a
  second: Snakemake sees it ``CANCELLED`` and resubmits it (the rule's ``retries:``).

Then the Slurm jobs are exactly the batch jobs of the DAG (plus the one resubmission), and
every output that carries physics equals the local run's: ntuples branch by branch,
histograms bin by bin, the working points, limits and CNN results (files are not compared
byte for byte: provenance records hold times and UUIDs). Every thread count is 1 in both
runs, so that the trainings are bit-identical.

Then the bad site settings: each fails in seconds, before any job is submitted, with a
message that names the setting. Every scheduler call has a hard timeout
(``tests.farm.scheduler``) and every Snakemake run one too (``RUN_TIMEOUT_S``): on a farm
the failure mode is a hang.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from analysis.core.config import load_config
from tests.farm import SlurmJob, scheduler, squeue
from tests.workflows.test_fault_tolerance import _assert_same_histograms, _assert_same_ntuple
from tests.workflows.test_snakemake import AGGREGATE_RULES, LOCAL_RULES, expected_counts

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
# one workflow run: the tiny config takes ≈ 2 min on 2 idle cores; the bound is for a hang,
# generous for a loaded machine (HEPLINE_FARM_RUN_TIMEOUT in seconds to change it)
RUN_TIMEOUT_S = float(os.environ.get("HEPLINE_FARM_RUN_TIMEOUT", "900"))
CHECK_TIMEOUT_S = 120  # a run that must stop at the site checks
CANCELLED_RULE = "generate_shard"
CANCELLED_WILDCARDS = "ttbar_0"
TINY_EVENTS = {"ttbar": 600, "xhh_300": 200, "yy": 300, "rpv_1400_850": 150, "qcd_800_inf": 150}


def tiny_config(workdir: Path, **site) -> Path:
    """The tiny config (module docstring) with output_dir ``workdir/out`` and the ``site``
    settings given (default ``max_threads: 1``), written to ``workdir/config.yaml``."""
    cfg = yaml.safe_load((REPO / "workflows" / "config" / "default.yaml").read_text())
    samples = cfg["generation"]["samples"]
    cfg["output_dir"] = str(workdir / "out")
    cfg["generation"]["samples"] = {s: {**samples[s], "shards": 1, "events_per_shard": n}
                                    for s, n in TINY_EVENTS.items()}
    cfg["calo"]["training"].update(max_epochs=2, patience=1, threads=1)
    cfg["tagger_models"] = {"rnnip": {"max_epochs": 3}, "dl1": {"max_epochs": 3}, "mv2": {"n_estimators": 40}}
    cfg["rpv"] = {"signal_samples": ["rpv_1400_850"], "background_samples": ["qcd_800_inf"]}
    cfg["selection"]["hh_yybb"]["samples"] = ["xhh_300", "yy", "ttbar"]
    cfg["selection"]["hh_yybb"]["btag"]["truth_tag_samples"] = ["yy"]
    cfg["limits"] = {"backgrounds": ["yy", "ttbar"], "resonant": {"signals": ["xhh_300"]}}
    cfg["site"] = site or {"max_threads": 1}
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _snakemake(workdir: Path, profile: str, *extra: str, timeout: float = RUN_TIMEOUT_S,
               env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run the workflow in ``workdir`` (its config.yaml) with a profile; (exit code, log).

    The run is one process group, killed whole at ``timeout`` (and its Slurm jobs, named
    after the run, cancelled): a hang fails the test instead of blocking the suite."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--profile", str(REPO / "workflows" / "profiles" / profile),
           "--configfile", str(workdir / "config.yaml"), *extra]
    scratch = workdir / "scratch"
    scratch.mkdir(exist_ok=True)
    env = {**os.environ, "CONDOR_CONFIG": os.environ.get("CONDOR_CONFIG", "/dev/null"),
           "TMPDIR": str(scratch), **(env or {})}
    log = workdir / f"{profile}.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            text = log.read_text()
            if m := re.search(r"SLURM run ID: (\S+)", text):
                scheduler("scancel", "--name", m.group(1), check=False)
            pytest.fail(f"snakemake --profile {profile} still running after {timeout} s "
                        f"(killed):\n{text[-4000:]}")
    return rc, log.read_text()


class Watcher(threading.Thread):
    """Polls ``squeue`` every 0.3 s, remembers every job it sees (last state wins), and
    ``scancel``\\s the first job whose comment starts with ``cancel`` once it has been
    RUNNING for ``after_s`` seconds."""

    def __init__(self, cancel: str, after_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.cancel, self.after_s = cancel, after_s
        self.jobs: dict[str, SlurmJob] = {}
        self.cancelled: SlurmJob | None = None
        self.errors: list[str] = []
        self._stop_event = threading.Event()
        self._running_since: dict[str, float] = {}

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                for job in squeue():
                    self.jobs[job.job_id] = job
                    if self.cancelled is None and job.comment.startswith(self.cancel) \
                            and job.state == "RUNNING":
                        since = self._running_since.setdefault(job.job_id, time.monotonic())
                        if time.monotonic() - since >= self.after_s:
                            scheduler("scancel", job.job_id)
                            self.cancelled = job
            except Exception as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop_event.wait(0.3)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


def _rule_of(job: SlurmJob) -> str:
    m = re.match(r"rule_(\w+?)(?:_wildcards_|$)", job.comment)
    assert m, job
    return m.group(1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The local reference run and the Slurm run with one job cancelled mid-run."""
    base = tmp_path_factory.mktemp("farm")
    local, slurm = base / "local", base / "slurm"
    tiny_config(local), tiny_config(slurm)
    t0 = time.monotonic()
    rc, log_local = _snakemake(local, "local", "--cores", "2")
    assert rc == 0, log_local[-4000:]
    t_local = time.monotonic() - t0
    watcher = Watcher(cancel=f"rule_{CANCELLED_RULE}_wildcards_{CANCELLED_WILDCARDS}")
    watcher.start()
    t0 = time.monotonic()
    try:
        rc, log_slurm = _snakemake(slurm, "slurm")
    finally:
        watcher.stop()
    t_slurm = time.monotonic() - t0
    assert rc == 0, log_slurm[-6000:]
    run_id = re.search(r"SLURM run ID: (\S+)", log_slurm).group(1)
    jobs = {i: j for i, j in watcher.jobs.items() if j.name == run_id}
    # the final states of the jobs that ended between two polls
    for job in squeue(run_id):
        jobs[job.job_id] = job
    print(f"tiny workflow: local {t_local:.0f} s, Slurm {t_slurm:.0f} s, {len(jobs)} Slurm jobs")
    return {"local": local / "out", "slurm": slurm / "out", "log": log_slurm, "jobs": jobs,
            "watcher": watcher, "config": load_config(local / "config.yaml")}


def test_every_batch_job_runs_as_a_slurm_job_to_the_local_results(runs):
    watcher, jobs = runs["watcher"], runs["jobs"]
    assert not watcher.errors, watcher.errors
    expected = {r: n for r, n in expected_counts(runs["config"]).items()
                if r not in LOCAL_RULES | AGGREGATE_RULES}
    expected[CANCELLED_RULE] += 1  # the resubmission
    assert Counter(_rule_of(j) for j in jobs.values()) == expected
    states = Counter(j.state for j in jobs.values())
    assert states == {"COMPLETED": sum(expected.values()) - 1, "CANCELLED": 1}, states

    local, slurm = runs["local"], runs["slurm"]
    for sample in TINY_EVENTS:
        _assert_same_ntuple(local / "samples" / sample / f"{sample}_0.root",
                            slurm / "samples" / sample / f"{sample}_0.root")
        _assert_same_histograms(local / "validation" / f"{sample}.root",
                                slurm / "validation" / f"{sample}.root")
    decorated = sorted(p.relative_to(local) for p in (local / "decorated").rglob("*.root"))
    assert len(decorated) == 3
    for rel in decorated:  # the b-tag discriminants of all three trained taggers
        _assert_same_ntuple(local / rel, slurm / rel)
    for rel in ("hh_yybb/histograms/hists.root", "calo/evaluation/scores.root"):
        _assert_same_histograms(local / rel, slurm / rel)
    for rel in ("taggers/working_points.json", "hh_yybb/limits/limits.json",
                "rpv/cutbased_rates.json", "hh_yybb/histograms/cutflow.json",
                "calo/evaluation/summary.json"):
        a, b = (_physics(json.loads((o / rel).read_text())) for o in (local, slurm))
        assert a and a == b, rel


_NOT_PHYSICS = re.compile(r"provenance|time|wall|seconds|started|host|versions|_s$|per_s|path|file|dir")


def _physics(data):
    """A JSON document without its provenance, timings and paths."""
    if isinstance(data, dict):
        return {k: _physics(v) for k, v in data.items() if not _NOT_PHYSICS.search(k)}
    if isinstance(data, list):
        return [_physics(v) for v in data]
    return data


def test_a_job_cancelled_mid_run_is_resubmitted_to_the_same_outputs(runs):
    cancelled, jobs, log = runs["watcher"].cancelled, runs["jobs"], runs["log"]
    assert cancelled is not None, "the watcher never saw the job running"
    assert jobs[cancelled.job_id].state == "CANCELLED"
    assert f"SLURM-job '{cancelled.job_id}' failed, SLURM status is: 'CANCELLED'" in log
    again = [j for j in jobs.values()
             if j.comment == cancelled.comment and j.job_id != cancelled.job_id]
    assert [j.state for j in again] == ["COMPLETED"], again
    sample = CANCELLED_WILDCARDS.rsplit("_", 1)[0]
    name = f"{CANCELLED_WILDCARDS}.root"
    _assert_same_ntuple(runs["local"] / "samples" / sample / name,
                        runs["slurm"] / "samples" / sample / name)


# ---------------------------------------------------------------------------------------
# bad site settings: one message naming the setting, nothing submitted
# ---------------------------------------------------------------------------------------
def _slurm_conf() -> dict[str, str]:
    out = scheduler("scontrol", "show", "config")
    pairs = (line.split("=", 1) for line in out.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def _node_cpus() -> int:
    return max(int(c.rstrip("+")) for c in scheduler("sinfo", "-h", "-o", "%c").split())


def _fails_before_submitting(tmp_path: Path, *extra: str, env: dict[str, str] | None = None,
                             **site) -> str:
    tiny_config(tmp_path, **site)
    rc, log = _snakemake(tmp_path, "slurm", *extra, timeout=CHECK_TIMEOUT_S, env=env)
    assert rc != 0, log[-3000:]
    assert "has been submitted with SLURM jobid" not in log
    m = re.search(r"^SiteError.*\n(.*)$", log, re.MULTILINE)
    assert m, log[-3000:]
    return m.group(1)


@pytest.mark.parametrize("setting, site, fragments", [
    ("partition", {"max_threads": 1, "slurm_partition": "nosuchpartition"},
     ["site.slurm_partition: 'nosuchpartition' is not a partition of this cluster",
      "invalid partition specified"]),
    ("gpus", {"max_threads": 1, "gpus": 1},
     ["site.gpus: rule ", "Invalid generic resource (gres) specification", "set site.gpus: 0"]),
    ("threads", {}, ["site.max_threads: rule ", "pending forever, reason PartitionConfig"]),
])
def test_a_site_setting_the_cluster_cannot_satisfy_is_named(tmp_path, setting, site, fragments):
    if setting == "threads":
        site = {"max_threads": None}  # the profile's set-threads (up to 8) unchanged
        fragments = [*fragments, f"set site.max_threads: {_node_cpus()}"]
        if _node_cpus() >= 8:
            pytest.skip("the nodes have 8 CPUs or more: every set-threads request fits")
    message = _fails_before_submitting(tmp_path, **site)
    for fragment in fragments:
        assert fragment in message, message


def test_an_account_the_cluster_does_not_know_is_named(tmp_path):
    accounting = _slurm_conf().get("AccountingStorageType") != "accounting_storage/none"
    message = _fails_before_submitting(tmp_path, max_threads=1, slurm_account="nosuchaccount")
    if accounting:
        assert "site.slurm_account: 'nosuchaccount' is not an account of this user" in message
        assert "Invalid account or account/partition combination specified" in message
    else:
        assert "site.slurm_account: 'nosuchaccount', but this cluster keeps no accounts" in message


def test_sacct_without_accounting_storage_is_refused_not_a_silent_hang(tmp_path):
    if _slurm_conf().get("AccountingStorageType") != "accounting_storage/none":
        pytest.skip("this cluster has accounting storage: sacct sees its jobs")
    message = _fails_before_submitting(tmp_path, "--slurm-status-command", "sacct", max_threads=1)
    assert "slurm-status-command: 'sacct' cannot see any job on this cluster" in message
    assert "Use slurm-status-command: squeue" in message


def test_the_profile_on_a_host_without_slurm_says_so(tmp_path):
    """Slurm's commands hidden from PATH (a folder of links to everything else)."""
    slurm_commands = {"sbatch", "squeue", "sinfo", "scontrol", "scancel", "sacct", "sacctmgr",
                      "srun", "salloc", "sshare", "sstat"}
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            link = bin_dir / name
            if name not in slurm_commands and not link.exists():
                link.symlink_to(Path(folder) / name)
    message = _fails_before_submitting(tmp_path / "w", env={"PATH": str(bin_dir)}, max_threads=1)
    assert "executor: slurm (--profile workflows/profiles/slurm) needs Slurm's commands" in message
    assert "sbatch" in message and "--profile workflows/profiles/local" in message
