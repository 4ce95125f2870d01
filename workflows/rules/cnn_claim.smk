# The whole-detector CNN claim (docs/calo-cnn.md, "The CNN claim"; workflows/config/cnn_claim.yaml):
#   snakemake --cores 2 --configfile workflows/config/cnn_claim.yaml -- cnn_claim
# With rpv.preselection.enabled the rpv samples' shards come from `hepline rpv generate` (the
# multijet preselection applied at write time, its efficiency folded into sigma) instead of
# `hepline generate`; images and cut tables are the calo.smk rules on those shards. Then one
# training job per network and seed (each resumes from its checkpoint), a side-by-side
# throughput measurement, and one evaluation of every network against the cut-based search.
# Uses shard_files/job_resources (common.smk), CALO_SAMPLES (calo.smk), SAMPLES/OUT/PY/CONFIGFILE.

PRESELECTION = CFG.rpv.preselection.enabled

if PRESELECTION:

    ruleorder: rpv_generate_shard > generate_shard

    rule rpv_generate_shard:
        output:
            root=OUT / "samples" / "{sample}" / "{sample}_{shard}.root",
            metrics=OUT / "samples" / "{sample}" / "{sample}_{shard}.metrics.json",
        log:
            OUT / "logs" / "generate" / "{sample}_{shard}.log",
        benchmark:
            OUT / "benchmarks" / "generate_shard" / "{sample}_{shard}.tsv"
        params:
            py=PY,
            configfile=CONFIGFILE,
        wildcard_constraints:
            sample="|".join(CALO_SAMPLES),
            shard=r"\d+",
        conda:
            "../envs/hepline.yaml"
        retries: 2
        resources:
            **job_resources(mem_mb=2000, runtime=60),
        shell:
            "{params.py} -m analysis.cli rpv generate --config {params.configfile} --sample {wildcards.sample} "
            "--shard {wildcards.shard} --output {output.root} --metrics {output.metrics} --quiet "
            "> {log} 2>&1"


CLAIM = CFG.calo.claim
CLAIM_DIR = OUT / "claim"
CLAIM_IMAGES = expand(OUT / "calo" / "images" / "{sample}.h5", sample=CALO_SAMPLES)
CLAIM_MODEL_FILES = {"cnn": "calo_cnn.pt", "point_cloud": "point_cloud.pt"}
CLAIM_MODELS = [str(CLAIM_DIR / net / f"s{seed}" / CLAIM_MODEL_FILES[net])
                for net in CLAIM.networks for seed in CLAIM.seeds]
# the generation metrics JSONs of every shard of the claim's samples (CPU time)
CLAIM_SHARD_METRICS = [str(OUT / "samples" / s / f"{s}_{k}.metrics.json")
                       for s in CALO_SAMPLES for k in range(SAMPLES[s].shards)]


rule claim_train_cnn:
    input:
        CLAIM_IMAGES,
    output:
        model=CLAIM_DIR / "cnn" / "s{seed}" / "calo_cnn.pt",
        history=CLAIM_DIR / "cnn" / "s{seed}" / "history.json",
    log:
        OUT / "logs" / "claim" / "train_cnn_s{seed}.log",
    benchmark:
        OUT / "benchmarks" / "claim_train_cnn" / "s{seed}.tsv"
    params:
        py=PY,
        configfile=CONFIGFILE,
        outdir=lambda wc, output: Path(output.model).parent,
    wildcard_constraints:
        seed=r"\d+",
    threads: CALO_TRAIN_THREADS
    conda:
        "../envs/hepline.yaml"
    retries: 1
    resources:
        **job_resources(mem_mb=6000, runtime=360, gpu=True),
    shell:
        # a rerun after an interruption resumes from calo_cnn.ckpt.pt in the same folder
        "{params.py} -m analysis.cli calo train --config {params.configfile} --network cnn --seed {wildcards.seed} "
        "--output-dir {params.outdir} --threads {threads} --quiet {input} > {log} 2>&1"


rule claim_train_point_cloud:
    input:
        CLAIM_IMAGES,
    output:
        model=CLAIM_DIR / "point_cloud" / "s{seed}" / "point_cloud.pt",
        history=CLAIM_DIR / "point_cloud" / "s{seed}" / "history.json",
    log:
        OUT / "logs" / "claim" / "train_point_cloud_s{seed}.log",
    benchmark:
        OUT / "benchmarks" / "claim_train_point_cloud" / "s{seed}.tsv"
    params:
        py=PY,
        configfile=CONFIGFILE,
        outdir=lambda wc, output: Path(output.model).parent,
    wildcard_constraints:
        seed=r"\d+",
    threads: CALO_TRAIN_THREADS
    conda:
        "../envs/hepline.yaml"
    retries: 1
    resources:
        **job_resources(mem_mb=6000, runtime=240, gpu=True),
    shell:
        "{params.py} -m analysis.cli calo train --config {params.configfile} --network point_cloud "
        "--seed {wildcards.seed} --output-dir {params.outdir} --threads {threads} --quiet {input} > {log} 2>&1"


rule claim_throughput:
    input:
        CLAIM_IMAGES,
    output:
        CLAIM_DIR / "throughput.json",
    log:
        OUT / "logs" / "claim" / "throughput.log",
    params:
        py=PY,
        configfile=CONFIGFILE,
    threads: CALO_TRAIN_THREADS
    conda:
        "../envs/hepline.yaml"
    resources:
        **job_resources(mem_mb=4000, runtime=60),
    shell:
        "{params.py} -m analysis.cli calo throughput --config {params.configfile} --threads {threads} "
        "--output {output} {input} > {log} 2>&1"


rule claim_evaluate:
    input:
        models=CLAIM_MODELS,
        images=CLAIM_IMAGES,
        tables=expand(OUT / "rpv" / "cutbased" / "{sample}.h5", sample=CALO_SAMPLES),
        image_metrics=expand(OUT / "calo" / "images" / "{sample}.metrics.json", sample=CALO_SAMPLES),
        shard_metrics=CLAIM_SHARD_METRICS,
        throughput=rules.claim_throughput.output,
    output:
        claim=CLAIM_DIR / "cnn_claim.json",
        # not a report item: the claim is its own target, outside `snakemake all` and its report
        roc=CLAIM_DIR / "roc.png",
    log:
        OUT / "logs" / "claim" / "evaluate.log",
    benchmark:
        OUT / "benchmarks" / "claim_evaluate" / "job.tsv"
    params:
        py=PY,
        configfile=CONFIGFILE,
    threads: CALO_TRAIN_THREADS
    conda:
        "../envs/hepline.yaml"
    resources:
        **job_resources(mem_mb=6000, runtime=120),
    shell:
        "{params.py} -m analysis.cli calo claim --config {params.configfile} --threads {threads} "
        "--models {input.models} --images {input.images} --cut-tables {input.tables} "
        "--image-metrics {input.image_metrics} --shard-metrics {input.shard_metrics} "
        "--throughput {input.throughput} --output {output.claim} --plot {output.roc} > {log} 2>&1"


# an aggregate rule (no action): Snakemake never submits it, also under a farm profile
rule cnn_claim:
    input:
        rules.claim_evaluate.output,
        rules.rpv_cutbased_rates.output,
