"""coffea stages with their dask workers as real Slurm jobs (``runner.dask.jobqueue``).

Needs a Slurm cluster (``slurm`` marker; ``tests/farm/slurm.sh``). Each run goes through a
config file, as a user's would, in a subprocess with a hard timeout: a worker job that
never starts must fail the test, not hang it. The inputs are decorated hepline ntuples of
constructed diphoton events (``tests/farm/inputs.py``), one chunk per file, so that the
dask and iterative runs add the same partial results (two at a time: the sums are equal
bit for bit whatever the order).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.stats.histograms import HistSet
from tests.farm import squeue, wait_until
from tests.farm.inputs import SAMPLE, assert_same_selection, hh_config, hh_inputs

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
STAGE_TIMEOUT_S = 300
WORKER_JOB = "dask-worker"  # dask-jobqueue's job name
LIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED"}


def _jobqueue(tmp_path: Path, jobs: int = 2) -> dict:
    """runner section: dask workers as ``jobs`` Slurm jobs of one core each."""
    return {"executor": "dask", "chunksize": 1_000_000, "dask": {"jobqueue": {
        "kind": "slurm", "jobs": jobs, "cores": 1, "memory": "2GB", "walltime": "00:15:00",
        "wait_for_workers": jobs, "wait_timeout_s": 120,
        "log_directory": str(tmp_path / "worker-logs")}}}


def _run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # the workers import tests.farm.probe
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=STAGE_TIMEOUT_S, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc


def _worker_jobs(after: int) -> dict[str, str]:
    """{job id: state} of the dask-worker jobs submitted after job id ``after``."""
    return {j.job_id: j.state for j in squeue(WORKER_JOB) if int(j.job_id) > after}


def _last_job_id() -> int:
    ids = [int(j.job_id) for j in squeue()]
    return max(ids, default=0)


def _ended(after: int) -> dict[str, str] | None:
    jobs = _worker_jobs(after)
    return jobs if jobs and not LIVE & set(jobs.values()) else None


def test_workers_are_slurm_jobs_and_give_the_iterative_results(tmp_path):
    files, _ = hh_inputs(tmp_path / "in", n_events=1500)
    config = hh_config(tmp_path / "config.yaml", runner=_jobqueue(tmp_path))
    before = _last_job_id()
    _run("-m", "tests.farm.probe", str(config), str(tmp_path / "out.json"), *map(str, files))
    res = json.loads((tmp_path / "out.json").read_text())
    it, dq = res["iterative"]["output"][SAMPLE], res["configured"]["output"][SAMPLE]

    # every chunk ran in a Slurm job of this stage, none in the submitting process
    jobs = wait_until("the worker jobs end with the stage", lambda: _ended(before), timeout=60)
    assert len(jobs) == 2, jobs
    assert set(dq.pop("slurm_job_ids")) <= set(jobs) and dq.pop("hosts")
    assert it.pop("slurm_job_ids") == [os.environ.get("SLURM_JOB_ID", "")] and it.pop("hosts")
    assert dq == it and it["events"] == 3000
    metrics = res["configured"]["metrics"]
    assert (metrics["executor"], metrics["cores"], metrics["events"]) == ("dask", 2, 3000)
    # and they were not left running: cancelled (or ended) once the stage closed its cluster
    assert set(jobs.values()) <= {"CANCELLED", "COMPLETED"}, jobs
    logs = list((tmp_path / "worker-logs").glob("*.err")) + list((tmp_path / "worker-logs").glob("*.out"))
    assert any("Registered to" in p.read_text() for p in logs), [p.name for p in logs]


def test_the_hh_selection_stage_on_slurm_workers_equals_the_iterative_run(tmp_path):
    files, wp = hh_inputs(tmp_path / "in", n_events=1500, seed=6)
    out = {}
    before = _last_job_id()
    for name, runner in (("iterative", None), ("slurm", _jobqueue(tmp_path, jobs=1))):
        config = hh_config(tmp_path / f"{name}.yaml", runner=runner)
        _run("-m", "analysis.cli", "select", "--config", str(config), "--working-points", str(wp),
             "--output", str(tmp_path / f"{name}.pkl"), "--metrics", str(tmp_path / f"{name}.json"),
             *map(str, files))
        out[name] = HistSet.read(tmp_path / f"{name}.pkl")
    assert_same_selection(out["iterative"], out["slurm"])
    metrics = json.loads((tmp_path / "slurm.json").read_text())
    assert metrics["executor"] == "dask" and metrics["cores"] == 1
    jobs = wait_until("the worker job ends with the stage", lambda: _ended(before), timeout=60)
    assert len(jobs) == 1 and set(jobs.values()) <= {"CANCELLED", "COMPLETED"}, jobs
