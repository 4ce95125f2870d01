# Whole-detector CNN (selections.rpv.cnn, `hepline calo ...`) and the cut-based RPV multijet
# baseline (selections.rpv.cuts, `hepline rpv ...`), docs/calo-cnn.md:
#   per sample: shards -> sparse images (HDF5)      and   shards -> cut-based table (HDF5)
#   all samples' images -> train (model + normalisation) -> evaluate on the test split, with the
#   cut-based flags of the same events (ROC, TPR ratio, score histograms as ROOT TH1, plots).
# Uses shard_files/job_resources (common.smk) and SAMPLES, OUT, PY, CONFIGFILE (Snakefile).

CALO_SIGNAL = list(CFG.rpv.signal_samples)
CALO_BACKGROUND = list(CFG.rpv.background_samples)
CALO_SAMPLES = CALO_SIGNAL + CALO_BACKGROUND
_calo_missing = [s for s in CALO_SAMPLES if s not in SAMPLES]
if _calo_missing:
    raise ValueError(f"rpv.signal_samples/background_samples name samples not in generation.samples: {_calo_missing}")
CALO_TRAIN_THREADS = CFG.calo.training.threads or 2


localrules:
    rpv_cutbased_rates,
    calo_all,


rule calo_images:
    input:
        lambda wc: shard_files(wc.sample),
    output:
        h5=OUT / "calo" / "images" / "{sample}.h5",
        metrics=OUT / "calo" / "images" / "{sample}.metrics.json",
    log:
        OUT / "logs" / "calo" / "images_{sample}.log",
    benchmark:
        OUT / "benchmarks" / "calo_images" / "{sample}.tsv"
    params:
        py=PY,
        configfile=CONFIGFILE,
    wildcard_constraints:
        sample="|".join(CALO_SAMPLES),
    conda:
        "../envs/hepline.yaml"
    retries: 2
    resources:
        **job_resources(mem_mb=4000, runtime=60),
    shell:
        "{params.py} -m analysis.cli calo images --config {params.configfile} --sample {wildcards.sample} "
        "--output {output.h5} --metrics {output.metrics} {input} > {log} 2>&1"


rule rpv_cutbased:
    input:
        lambda wc: shard_files(wc.sample),
    output:
        table=OUT / "rpv" / "cutbased" / "{sample}.h5",
        summary=OUT / "rpv" / "cutbased" / "{sample}.json",
    log:
        OUT / "logs" / "rpv" / "cutbased_{sample}.log",
    benchmark:
        OUT / "benchmarks" / "rpv_cutbased" / "{sample}.tsv"
    params:
        py=PY,
        configfile=CONFIGFILE,
    wildcard_constraints:
        sample="|".join(CALO_SAMPLES),
    conda:
        "../envs/hepline.yaml"
    retries: 2
    resources:
        **job_resources(mem_mb=3000, runtime=60),
    shell:
        "{params.py} -m analysis.cli rpv select --config {params.configfile} --sample {wildcards.sample} "
        "--output {output.table} --summary {output.summary} {input} > {log} 2>&1"


rule rpv_cutbased_rates:
    input:
        expand(OUT / "rpv" / "cutbased" / "{sample}.h5", sample=CALO_SAMPLES),
    output:
        OUT / "rpv" / "cutbased_rates.json",
    log:
        OUT / "logs" / "rpv" / "cutbased_rates.log",
    benchmark:
        OUT / "benchmarks" / "rpv_cutbased_rates" / "job.tsv"
    params:
        py=PY,
        configfile=CONFIGFILE,
    conda:
        "../envs/hepline.yaml"
    shell:
        "{params.py} -m analysis.cli rpv rates --config {params.configfile} --output {output} "
        "{input} > {log} 2>&1"


rule calo_train:
    input:
        expand(OUT / "calo" / "images" / "{sample}.h5", sample=CALO_SAMPLES),
    output:
        model=OUT / "calo" / "model" / "calo_cnn.pt",
        normalisation=OUT / "calo" / "model" / "normalisation.json",
        history=OUT / "calo" / "model" / "history.json",
    log:
        OUT / "logs" / "calo" / "train.log",
    benchmark:
        OUT / "benchmarks" / "calo_train" / "job.tsv"
    params:
        py=PY,
        configfile=CONFIGFILE,
        outdir=lambda wc, output: Path(output.model).parent,
    threads: CALO_TRAIN_THREADS
    conda:
        "../envs/hepline.yaml"
    retries: 1
    resources:
        **job_resources(mem_mb=8000, runtime=720, gpu=True),
    shell:
        # a rerun after an interruption resumes from calo_cnn.ckpt.pt in the same folder; no progress
        # bar (stderr is the log file), the epochs are logged
        "{params.py} -m analysis.cli calo train --config {params.configfile} --output-dir {params.outdir} "
        "--threads {threads} {input} > {log} 2>&1"


rule calo_evaluate:
    input:
        model=rules.calo_train.output.model,
        normalisation=rules.calo_train.output.normalisation,
        images=expand(OUT / "calo" / "images" / "{sample}.h5", sample=CALO_SAMPLES),
        tables=expand(OUT / "rpv" / "cutbased" / "{sample}.h5", sample=CALO_SAMPLES),
    output:
        summary=OUT / "calo" / "evaluation" / "summary.json",
        scores=OUT / "calo" / "evaluation" / "scores.root",
        roc_points=OUT / "calo" / "evaluation" / "roc.npz",
        roc=report(OUT / "calo" / "evaluation" / "roc.png", category="Calo CNN",
                   caption="../report/calo_roc.rst"),
        score_plot=report(OUT / "calo" / "evaluation" / "scores.png", category="Calo CNN",
                          caption="../report/calo_scores.rst"),
        examples=report(OUT / "calo" / "evaluation" / "example_images.png", category="Calo CNN",
                        caption="../report/calo_example_images.rst"),
    log:
        OUT / "logs" / "calo" / "evaluate.log",
    benchmark:
        OUT / "benchmarks" / "calo_evaluate" / "job.tsv"
    params:
        py=PY,
        configfile=CONFIGFILE,
        outdir=lambda wc, output: Path(output.summary).parent,
    threads: CALO_TRAIN_THREADS
    conda:
        "../envs/hepline.yaml"
    retries: 1
    resources:
        **job_resources(mem_mb=6000, runtime=120),
    shell:
        "{params.py} -m analysis.cli calo evaluate --config {params.configfile} --model {input.model} "
        "--normalisation {input.normalisation} --output-dir {params.outdir} --threads {threads} "
        "--images {input.images} --cut-tables {input.tables} > {log} 2>&1"


rule calo_all:
    input:
        rules.calo_evaluate.output,
        rules.rpv_cutbased_rates.output,
