"""The ``runner`` section: how the coffea stages are executed (executor, workers, chunks).

Frozen typed views of the validated section (:mod:`analysis.core.config.node`); the
schema in ``schema/`` holds the defaults and limits, and ``tests/analysis/core/test_config_types.py``
keeps these classes in step with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

from analysis.core.config.node import ConfigNode

__all__ = [
    "DaskConfig",
    "JobqueueConfig",
    "RunnerConfig",
]


@dataclass(frozen=True, kw_only=True)
class JobqueueConfig(ConfigNode):
    """Start the dask workers as batch jobs with dask-jobqueue (the `farm` extra) instead of
    a LocalCluster; null: no batch jobs. The scheduler runs in the process that runs the
    stage; each batch job starts `processes` workers sharing `cores` and `memory`. Closing
    the run cancels the jobs.
    """

    #: SLURMCluster or HTCondorCluster
    kind: Literal['slurm', 'htcondor']
    #: batch jobs to start
    jobs: int
    #: CPU cores per job
    cores: int
    #: memory per job, e.g. 8GB
    memory: str
    #: worker processes per job (null: dask-jobqueue's choice from cores)
    processes: int | None
    #: Slurm only: -t, e.g. 02:00:00
    walltime: str | None
    #: Slurm only: the partition (-p)
    queue: str | None
    #: Slurm only: -A
    account: str | None
    #: HTCondor only: request_disk per job (null: as memory)
    disk: str | None
    #: Extra batch directives: for Slurm a list of sbatch options (["--gres=gpu:1"]), for HTCondor
    #: a mapping of submit commands ({"+MaxRuntime": 7200}).
    job_extra_directives: tuple[str, ...] | Mapping[str, str | float | bool]
    #: shell lines run in each job before the worker starts (e.g. source a venv)
    job_script_prologue: tuple[str, ...]
    #: worker interpreter (null: this one)
    python: str | None
    #: network interface, e.g. ib0
    interface: str | None
    #: worker scratch space
    local_directory: str | None
    #: batch logs of the workers
    log_directory: str | None
    #: workers to wait for before processing starts (0: do not wait)
    wait_for_workers: int
    wait_timeout_s: float


@dataclass(frozen=True, kw_only=True)
class DaskConfig(ConfigNode):
    """The ``runner.dask`` section."""

    scheduler_address: str | None
    threads_per_worker: int
    memory_limit: str | None
    #: Start the dask workers as batch jobs with dask-jobqueue (the `farm` extra) instead of a
    #: LocalCluster; null: no batch jobs. The scheduler runs in the process that runs the stage;
    #: each batch job starts `processes` workers sharing `cores` and `memory`. Closing the run
    #: cancels the jobs.
    jobqueue: JobqueueConfig | None


@dataclass(frozen=True, kw_only=True)
class RunnerConfig(ConfigNode):
    """Executor, workers, chunking and the bad-file policy of the coffea stages.
    """

    SECTION: ClassVar[str] = "runner"

    executor: Literal['iterative', 'futures', 'dask']
    workers: int
    chunksize: int
    maxchunks: int | None
    skip_bad_files: bool
    deep_validation: bool
    retries: int
    align_clusters: bool
    status: bool
    dask: DaskConfig
