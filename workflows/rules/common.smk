# Helpers shared by the rule files (kept apart from the rules, as `snakemake --lint` asks).
# Uses SAMPLES, OUT and CFG from the Snakefile.

import getpass
import os
import shutil
import subprocess

from snakemake.exceptions import WorkflowError


def shard_files(sample):
    """The generated ROOT shards of one sample."""
    n = SAMPLES[sample].shards
    return [str(OUT / "samples" / sample / f"{sample}_{k}.root") for k in range(n)]


def decorated_files(sample):
    """The b-tag-decorated copies of one sample's shards (taggers_decorate)."""
    n = SAMPLES[sample].shards
    return [str(OUT / "decorated" / sample / f"{sample}_{k}.root") for k in range(n)]


def default_decorate_samples():
    """Every sample except the RPV-gluino and QCD-multijet ones (no b-tagging there)."""
    skip = {"rpv_gluino", "qcd_multijet"}
    return [s for s, c in SAMPLES.items()
            if c.process not in skip and not s.startswith(("rpv", "qcd"))]


def job_resources(mem_mb, runtime, gpu=False, **extra):
    """Batch resources of one job: memory (MB) and wall time (minutes) grow with each retry.

    Attempt 1 asks for ``mem_mb`` and ``runtime``, attempt 2 for twice that, and so on, so a
    job killed by the batch system for memory or time comes back with more (the rules set
    ``retries:``; a local run without ``--resources`` ignores the numbers). HTCondor's
    executor plugin does not read ``mem_mb``: ``htcondor_request_mem_mb`` carries the same
    number to its ``request_memory`` (the Slurm plugin reads ``mem_mb``/``runtime`` itself).

    The ``site`` section of the config adds the farm's part: ``gpu=True`` (the training
    rules) asks for ``site.gpus`` GPUs (Slurm ``gpu``, HTCondor ``request_gpus``), and only
    when that is above 0; ``site.slurm_partition``/``site.slurm_account`` go to every job.
    """

    def mem(wildcards, attempt):
        return mem_mb * attempt

    def time(wildcards, attempt):
        return runtime * attempt

    site = {}
    if gpu and SITE.gpus:
        site.update(gpu=SITE.gpus, request_gpus=SITE.gpus)
    if SITE.slurm_partition:
        site["slurm_partition"] = SITE.slurm_partition
    if SITE.slurm_account:
        site["slurm_account"] = SITE.slurm_account
    return dict(mem_mb=mem, htcondor_request_mem_mb=mem, runtime=time, **site, **extra)


# ---------------------------------------------------------------------------------------
# The batch farm: the `site` section of the config (docs/workflow.md, "Site settings")
# ---------------------------------------------------------------------------------------
SITE = CFG.site

# site.max_threads caps every job's threads, those of a profile's set-threads included:
# it is Snakemake's own --max-threads (the smaller of the two wins), which also reaches
# the jobs' own Snakemake on the nodes.
if SITE.max_threads is not None:
    workflow.resource_settings.max_threads = min(
        SITE.max_threads, workflow.resource_settings.max_threads or SITE.max_threads
    )

SLURM_TIMEOUT_S = 30  # every Slurm command of the checks; a sick slurmctld hangs callers
SLURM_COMMANDS = ("sbatch", "squeue", "sinfo", "scontrol", "scancel")


class SiteError(WorkflowError):
    """A site setting this cluster cannot satisfy (found before the first submission)."""


def _slurm(*args):
    """The output of one Slurm command, never waiting longer than ``SLURM_TIMEOUT_S``."""
    cmd = " ".join(args)
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=SLURM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SiteError(f"`{cmd}` did not answer in {SLURM_TIMEOUT_S} s: is slurmctld up "
                        "(scontrol ping)?") from None
    if proc.returncode != 0:
        raise SiteError(f"`{cmd}` failed: {' '.join(proc.stderr.split())}")
    return proc.stdout


def slurm_site_problems(jobs, executor_settings):
    """What would make Slurm reject a job, keep it pending forever, or hide its end from
    Snakemake, as one line each naming the setting to change (empty: nothing found).

    ``jobs``: the batch jobs of the run (their rules, threads, resources); ``executor_settings``:
    the Slurm plugin's (status command, wait before the first status check).
    """
    missing = [c for c in SLURM_COMMANDS if shutil.which(c) is None]
    if missing:
        return [f"executor: slurm (--profile workflows/profiles/slurm) needs Slurm's commands, "
                f"and {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not on PATH: "
                "this host is no Slurm submit host. Run Snakemake where sbatch works, or use "
                "--profile workflows/profiles/local"]
    conf = dict(
        (k.strip(), v.strip())
        for k, v in (line.split("=", 1) for line in _slurm("scontrol", "show", "config").splitlines()
                     if "=" in line)
    )
    accounting = conf.get("AccountingStorageType", "accounting_storage/none") != "accounting_storage/none"
    problems = []

    # the status command: sacct sees nothing without accounting storage (every call fails
    # with "Slurm accounting storage is disabled"), and the plugin then waits forever
    status = getattr(executor_settings, "status_command", None) or "sacct"
    first = getattr(executor_settings, "init_seconds_before_status_checks", None) or 40
    min_job_age = int(conf.get("MinJobAge", "300").split()[0])
    if status == "squeue" and min_job_age < 3 * first and shutil.which("sacct"):
        status = "sacct"  # the plugin's own fallback when squeue forgets jobs too early
    if status == "sacct" and not accounting:
        problems.append(
            "slurm-status-command: 'sacct' cannot see any job on this cluster "
            "(AccountingStorageType=accounting_storage/none, 'Slurm accounting storage is "
            "disabled'): Snakemake would wait forever. Use slurm-status-command: squeue (the "
            f"profile's) with MinJobAge ({min_job_age} s) >= 3 x "
            f"slurm-init-seconds-before-status-checks ({first} s)")

    # partitions: CPUs, memory (MB) and generic resources of their nodes
    nodes = {}
    default = None
    for line in _slurm("sinfo", "-h", "-N", "-o", "%P|%c|%m|%G").splitlines():
        part, cpus, mem, gres = line.strip().split("|")
        if part.endswith("*"):
            part = default = part[:-1]
        nodes.setdefault(part, []).append((int(cpus.rstrip("+")), int(mem.rstrip("+")), gres))

    accounts = None
    for job in jobs:
        name, res = job.rule.name, job.resources
        part = res.get("slurm_partition") or default
        if part not in nodes:
            where = "site.slurm_partition" if part == SITE.slurm_partition else "slurm_partition"
            problems.append(f"{where}: {part!r} is not a partition of this cluster "
                            f"(sinfo lists: {', '.join(sorted(nodes)) or 'none'}); "
                            "sbatch would fail with 'invalid partition specified'")
            break
        cpus = max(n[0] for n in nodes[part])
        if job.threads > cpus:
            problems.append(
                f"site.max_threads: rule {name} asks for {job.threads} threads, but the nodes "
                f"of partition {part!r} have at most {cpus} CPUs (Slurm would keep the job "
                f"pending forever, reason PartitionConfig): set site.max_threads: {cpus}")
            break
        mem = max(n[1] for n in nodes[part])
        if int(res.get("mem_mb") or 0) > mem:
            problems.append(
                f"mem_mb: rule {name} asks for {res.get('mem_mb')} MB, but the nodes of "
                f"partition {part!r} have at most {mem} MB (sbatch: 'Memory specification "
                "can not be satisfied'): choose a partition with larger nodes "
                "(site.slurm_partition)")
            break
        if res.get("gpu") and not any("gpu" in n[2] for n in nodes[part]):
            problems.append(
                f"site.gpus: rule {name} asks for {res.get('gpu')} GPU(s), but partition "
                f"{part!r} has none (sbatch: 'Invalid generic resource (gres) "
                "specification'): set site.gpus: 0, or a GPU partition in site.slurm_partition")
            break
        account = res.get("slurm_account")
        if account:
            if not accounting:
                problems.append(
                    f"site.slurm_account: {account!r}, but this cluster keeps no accounts "
                    "(AccountingStorageType=accounting_storage/none): leave it null")
                break
            if accounts is None:
                user = os.environ.get("USER") or getpass.getuser()
                accounts = set(_slurm("sacctmgr", "-n", "-P", "show", "assoc", f"user={user}",
                                      "format=account").split())
            if account not in accounts:
                problems.append(
                    f"site.slurm_account: {account!r} is not an account of this user on "
                    f"this cluster (sacctmgr lists: {', '.join(sorted(accounts)) or 'none'}); "
                    "sbatch would fail with 'Invalid account or account/partition "
                    "combination specified'")
                break
    return problems


def check_site(log=None):
    """``onstart``: before the first submission of a real run, the Slurm checks above (other
    executors: nothing). Raises :class:`SiteError` with every problem found."""
    plugin = workflow.executor_plugin
    if plugin is None or plugin.name != "slurm":
        return
    jobs = [j for j in workflow.dag.needrun_jobs() if not j.is_local]
    problems = slurm_site_problems(jobs, workflow.executor_settings)
    if problems:
        raise SiteError("checked before the first Slurm job: " + "; ".join(problems))


onstart:
    check_site(log)
