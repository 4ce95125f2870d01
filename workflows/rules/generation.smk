# Generation: one job per shard (Pythia 8 + the parametric detector -> ROOT ntuple), then
# one metadata merge per sample (sigma, sum of weights, files).
# Uses shard_files/job_resources (common.smk) and SAMPLES/OUT/PY/CONFIGFILE (Snakefile).


localrules:
    merge_sample,
    generation_all,


rule generate_shard:
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
        shard=r"\d+",
    conda:
        "../envs/hepline.yaml"
    retries: 2
    resources:
        **job_resources(mem_mb=2000, runtime=60),
    shell:
        "{params.py} -m analysis.cli generate --config {params.configfile} --sample {wildcards.sample} "
        "--shard {wildcards.shard} --output {output.root} --metrics {output.metrics} --quiet "
        "> {log} 2>&1"


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
