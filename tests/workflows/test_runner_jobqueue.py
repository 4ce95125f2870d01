"""runner.dask.jobqueue: dask-jobqueue clusters built from the runner config, without a batch system.

``_jobqueue_cluster`` only creates the cluster object and its in-process scheduler; the
rendered job script shows what would be submitted. No job is started here.
"""

from __future__ import annotations

import sys

import pytest

from analysis.io import runner
from analysis.core.config import ConfigError, RunnerConfig

pytest.importorskip("distributed")


def _jq(**jobqueue):
    return RunnerConfig.validated({"executor": "dask", "dask": {"jobqueue": jobqueue}}).dask.jobqueue


def test_jobqueue_schema_defaults_and_errors():
    assert RunnerConfig.default().dask.jobqueue is None
    jq = _jq(kind="slurm")
    assert jq.jobs == 1 and jq.cores == 1 and jq.memory == "4GB"
    assert jq.wait_for_workers == 1 and jq.job_script_prologue == ()
    for bad, fragment in [
        ({"kind": "pbs"}, "runner.dask.jobqueue.kind"),
        ({"cores": 4}, "'kind' is a required property"),
        ({"kind": "slurm", "jobs": 0}, "runner.dask.jobqueue.jobs"),
        ({"kind": "slurm", "nodes": 2}, "nodes"),
        ({"kind": "slurm", "job_script_prologue": "source env"}, "job_script_prologue"),
    ]:
        with pytest.raises(ConfigError, match=fragment):
            RunnerConfig.validated({"dask": {"jobqueue": bad}})


def test_slurm_cluster_job_script():
    pytest.importorskip("dask_jobqueue")
    jq = _jq(kind="slurm", jobs=3, cores=4, processes=2, memory="8GB", walltime="02:00:00",
             queue="short", account="hepline", job_extra_directives=["--gres=gpu:1"],
             job_script_prologue=["source /opt/hepline/.venv/bin/activate"])
    cluster = runner._jobqueue_cluster(jq)
    try:
        assert type(cluster).__name__ == "SLURMCluster"
        script = cluster.job_script()
        assert len(cluster.workers) == 0  # nothing submitted
    finally:
        cluster.close()
    for line in ("#SBATCH -p short", "#SBATCH -A hepline", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --mem=8G", "#SBATCH -t 02:00:00", "#SBATCH --gres=gpu:1",
                 "source /opt/hepline/.venv/bin/activate"):
        assert line in script, (line, script)
    assert "--nworkers 2" in script and "--nthreads 2" in script
    assert f"{sys.executable} -m distributed.cli.dask_worker" in script


def test_htcondor_cluster_job_script():
    pytest.importorskip("dask_jobqueue")
    jq = _jq(kind="htcondor", cores=2, memory="6GB", job_extra_directives={"+MaxRuntime": 7200})
    cluster = runner._jobqueue_cluster(jq)
    try:
        assert type(cluster).__name__ == "HTCondorCluster"
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "MY.DaskWorkerCores = 2" in script
    assert "MY.DaskWorkerMemory = 6000000000" in script
    assert "MY.DaskWorkerDisk = 6000000000" in script  # disk: null -> as memory
    assert "+MaxRuntime = 7200" in script


def test_jobqueue_setting_of_the_other_batch_system_is_refused():
    pytest.importorskip("dask_jobqueue")
    with pytest.raises(ConfigError, match="walltime is not a setting of kind 'htcondor'"):
        runner._jobqueue_cluster(_jq(kind="htcondor", walltime="01:00:00"))
    with pytest.raises(ConfigError, match="disk is not a setting of kind 'slurm'"):
        runner._jobqueue_cluster(_jq(kind="slurm", disk="1GB"))
    with pytest.raises(ConfigError, match="a list of sbatch options"):
        runner._jobqueue_cluster(_jq(kind="slurm", job_extra_directives={"+a": 1}))


def test_missing_dask_jobqueue_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # import raises ImportError
    with pytest.raises(ConfigError, match="needs dask-jobqueue installed"):
        runner._jobqueue_cluster(_jq(kind="slurm"))


def test_scheduler_address_and_jobqueue_together_are_refused():
    cfg = RunnerConfig.validated({"executor": "dask",
                         "dask": {"scheduler_address": "tcp://127.0.0.1:8786",
                                  "jobqueue": {"kind": "slurm"}}})
    with pytest.raises(ConfigError, match="not both"), runner._executor(cfg):
        pass
