"""The ``site`` section: what the batch farm of a workflow run offers its jobs.

Read by the workflow (``workflows/rules/common.smk``: GPU requests, the thread cap, the Slurm
partition and account, and the checks before the first submission), never by a stage.
Frozen typed view of the validated section (:mod:`analysis.core.config.node`); the schema in
``schema/schema.d/site.yaml`` holds the defaults, and
``tests/analysis/core/test_config_types.py`` keeps this class in step with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from analysis.core.config.node import ConfigNode

__all__ = ["SiteConfig"]


@dataclass(frozen=True, kw_only=True)
class SiteConfig(ConfigNode):
    """The batch farm of a workflow run (workflows/rules/common.smk): GPUs, thread cap, Slurm
    partition and account. The stages never read it.
    """

    SECTION: ClassVar[str] = "site"

    #: GPUs each training job asks for (calo_train, taggers_train_rnnip, taggers_train_dl1;
    #: Slurm gpu, HTCondor request_gpus); 0: none asked for
    gpus: int
    #: cap on the threads of every job, the profiles' set-threads included; null: no cap
    max_threads: int | None
    #: Slurm partition of every batch job (sbatch -p); null: the cluster's default
    slurm_partition: str | None
    #: Slurm account of every batch job (sbatch -A); null: none given
    slurm_account: str | None
