# Generation: the pile-up library (once, when generation.pileup.mu > 0), one job per shard
# (Pythia 8 + pile-up overlay + the parametric detector -> ROOT ntuple), then one metadata
# merge per sample (sigma, sum of weights, files).
# Uses shard_files/job_resources (common.smk) and SAMPLES/OUT/PY/CONFIGFILE (Snakefile).


localrules:
    merge_sample,
    generation_all,


# Presampled pile-up (docs/detector.md): with generation.pileup.mu > 0 every shard overlays
# minimum-bias events from one library, generated once per configuration.
_PILEUP = CFG.generation.pileup
PILEUP_LIBRARY = (
    Path(_PILEUP.library) if Path(_PILEUP.library).is_absolute() else OUT / _PILEUP.library
)
PILEUP_INPUT = [PILEUP_LIBRARY] if _PILEUP.mu > 0 else []


rule pileup_library:
    output:
        PILEUP_LIBRARY,
    log:
        OUT / "logs" / "pileup_library.log",
    benchmark:
        OUT / "benchmarks" / "pileup_library" / "pileup_library.tsv"
    params:
        py=PY,
        configfile=CONFIGFILE,
    conda:
        "../envs/hepline.yaml"
    resources:
        **job_resources(mem_mb=2000, runtime=60),
    shell:
        "{params.py} -m analysis.cli pileup-library --config {params.configfile} --output {output} "
        "--quiet > {log} 2>&1"


rule generate_shard:
    input:
        pileup=PILEUP_INPUT,
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
        pileup=lambda wc, input: f"--pileup-library {input.pileup}" if input.pileup else "",
    wildcard_constraints:
        shard=r"\d+",
    conda:
        "../envs/hepline.yaml"
    retries: 2
    resources:
        **job_resources(mem_mb=2000, runtime=60),
    shell:
        "{params.py} -m analysis.cli generate --config {params.configfile} --sample {wildcards.sample} "
        "--shard {wildcards.shard} --output {output.root} --metrics {output.metrics} {params.pileup} "
        "--quiet > {log} 2>&1"


rule merge_sample:
    input:
        lambda wc: shard_files(wc.sample),
    output:
        OUT / "samples" / "{sample}.json",
    log:
        OUT / "logs" / "merge" / "{sample}.log",
    params:
        py=PY,
    conda:
        "../envs/hepline.yaml"
    shell:
        "{params.py} -m analysis.cli merge --output {output} {input} > {log} 2>&1"


rule generation_all:
    input:
        expand(OUT / "samples" / "{sample}.json", sample=list(SAMPLES)),
