# Helpers shared by the rule files (kept apart from the rules, as `snakemake --lint` asks).
# Uses SAMPLES and OUT from the Snakefile.


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


def job_resources(mem_mb, runtime, **extra):
    """Batch resources of one job: memory (MB) and wall time (minutes) grow with each retry.

    Attempt 1 asks for ``mem_mb`` and ``runtime``, attempt 2 for twice that, and so on, so a
    job killed by the batch system for memory or time comes back with more (the rules set
    ``retries:``; a local run without ``--resources`` ignores the numbers). HTCondor's
    executor plugin does not read ``mem_mb``: ``htcondor_request_mem_mb`` carries the same
    number to its ``request_memory`` (the Slurm plugin reads ``mem_mb``/``runtime`` itself).
    """

    def mem(wildcards, attempt):
        return mem_mb * attempt

    def time(wildcards, attempt):
        return runtime * attempt

    return dict(mem_mb=mem, htcondor_request_mem_mb=mem, runtime=time, **extra)
