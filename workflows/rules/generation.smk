# Generation: one job per shard (Pythia 8 + the parametric detector -> ROOT ntuple), then
# one metadata merge per sample (sigma, sum of weights, files).


def shard_files(sample):
    n = SAMPLES[sample]["shards"]
    return [str(OUT / "samples" / sample / f"{sample}_{k}.root") for k in range(n)]


rule generate_shard:
    output:
        root=OUT / "samples" / "{sample}" / "{sample}_{shard}.root",
        metrics=OUT / "samples" / "{sample}" / "{sample}_{shard}.metrics.json",
    log:
        OUT / "logs" / "generate" / "{sample}_{shard}.log",
    benchmark:
        OUT / "benchmarks" / "generate" / "{sample}_{shard}.tsv"
    params:
        py=PY,
        configfile=CONFIGFILE,
    wildcard_constraints:
        shard=r"\d+",
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "{params.py} -m analysis.generation produce --config {params.configfile} --sample {wildcards.sample} "
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
    shell:
        "{params.py} -m analysis.generation merge --output {output} {input} > {log} 2>&1"


rule generation_all:
    input:
        expand(OUT / "samples" / "{sample}.json", sample=list(SAMPLES)),
