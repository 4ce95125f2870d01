# Validation: control histograms of every sample, read back through NanoEvents (ROOT, JSON, PNG).


localrules:
    validation_all,


rule validate_sample:
    input:
        lambda wc: shard_files(wc.sample),
    output:
        root=OUT / "validation" / "{sample}.root",
        summary=OUT / "validation" / "{sample}.json",
        plot=report(OUT / "validation" / "{sample}.png", category="Sample validation",
                    subcategory="{sample}", caption="../report/validation.rst"),
    log:
        OUT / "logs" / "validation" / "{sample}.log",
    benchmark:
        OUT / "benchmarks" / "validate_sample" / "{sample}.tsv"
    params:
        py=PY,
        configfile=CONFIGFILE,
        outdir=lambda wc, output: Path(output.root).parent,
    conda:
        "../envs/hepline.yaml"
    retries: 2
    resources:
        **job_resources(mem_mb=3000, runtime=30),
    shell:
        "{params.py} -m analysis.cli validate --config {params.configfile} --sample {wildcards.sample} "
        "--output-dir {params.outdir} {input} > {log} 2>&1"


rule validation_all:
    input:
        expand(OUT / "validation" / "{sample}.png", sample=list(SAMPLES)),
