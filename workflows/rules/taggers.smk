# Flavour tagging (docs/taggers-results.md): ttbar shards -> HDF5 splits + IP2D/IP3D templates
# (prepare) -> RNNIP and MV2 (independent) -> DL1 (on the RNNIP outputs) -> evaluation on the
# test split (working points, ROC curves, plots) -> decorated ntuples for every shard of the
# samples in taggers.decorate_samples.
#   snakemake --cores 2 taggers_all
# Training uses one torch thread per job (taggers.threads); run jobs side by side instead.
# Uses shard_files/decorated_files/job_resources (common.smk), SAMPLES/OUT/PY/CONFIGFILE (Snakefile).

TAGGER_SAMPLE = CFG.taggers.sample
TAGGER_THREADS = CFG.taggers.threads
TAGGERS_DIR = OUT / "taggers"
TAGGER_MODELS = TAGGERS_DIR / "models"
TAGGER_IPXD = TAGGERS_DIR / "ipxd"
TAGGER_PLOTS = TAGGERS_DIR / "plots"

if TAGGER_SAMPLE not in SAMPLES:
    raise ValueError(f"taggers.sample {TAGGER_SAMPLE!r} is not a sample of generation.samples")


DECORATE_SAMPLES = CFG.taggers.decorate_samples
if DECORATE_SAMPLES is None:
    DECORATE_SAMPLES = default_decorate_samples()
_unknown = [s for s in DECORATE_SAMPLES if s not in SAMPLES]
if _unknown:
    raise ValueError(f"taggers.decorate_samples names unknown samples {_unknown}")


localrules:
    taggers_all,


TAGGER_MODEL_FILES = {
    "rnnip": TAGGER_MODELS / "rnnip.pt",
    "mv2": TAGGER_MODELS / "mv2.json",
    "dl1": TAGGER_MODELS / "dl1.pt",
    "ip2d": TAGGER_IPXD / "ip2d.npz",
    "ip3d": TAGGER_IPXD / "ip3d.npz",
}


rule taggers_prepare:
    input:
        shard_files(TAGGER_SAMPLE),
    output:
        train=TAGGERS_DIR / "train.h5",
        validation=TAGGERS_DIR / "validation.h5",
        test=TAGGERS_DIR / "test.h5",
        ip2d=TAGGER_IPXD / "ip2d.npz",
        ip3d=TAGGER_IPXD / "ip3d.npz",
        summary=TAGGERS_DIR / "prepare.json",
    log:
        OUT / "logs" / "taggers" / "prepare.log",
    benchmark:
        OUT / "benchmarks" / "taggers_prepare" / "job.tsv"
    params:
        py=PY,
        configfile=CONFIGFILE,
        outdir=TAGGERS_DIR,
    threads: 1
    conda:
        "../envs/hepline.yaml"
    retries: 1
    resources:
        **job_resources(mem_mb=12000, runtime=60),
    shell:
        "{params.py} -m analysis.cli taggers prepare --config {params.configfile} --output-dir {params.outdir} "
        "{input} > {log} 2>&1"


rule taggers_train_rnnip:
    input:
        train=rules.taggers_prepare.output.train,
        validation=rules.taggers_prepare.output.validation,
    output:
        model=TAGGER_MODELS / "rnnip.pt",
        onnx=TAGGER_MODELS / "rnnip.onnx",
        history=TAGGER_MODELS / "rnnip.history.json",
        metrics=TAGGER_MODELS / "rnnip.metrics.json",
    log:
        OUT / "logs" / "taggers" / "train_rnnip.log",
    benchmark:
        OUT / "benchmarks" / "taggers_train_rnnip" / "job.tsv"
    params:
        py=PY,
        configfile=CONFIGFILE,
        model_dir=TAGGER_MODELS,
    threads: TAGGER_THREADS
    conda:
        "../envs/hepline.yaml"
    retries: 1
    resources:
        **job_resources(mem_mb=8000, runtime=360, gpu=True),
    shell:
        "{params.py} -m analysis.cli taggers train --config {params.configfile} --tagger rnnip "
        "--train {input.train} --validation {input.validation} --model-dir {params.model_dir} "
        "--threads {threads} > {log} 2>&1"


rule taggers_train_mv2:
    input:
        train=rules.taggers_prepare.output.train,
        validation=rules.taggers_prepare.output.validation,
    output:
        model=TAGGER_MODELS / "mv2.json",
        onnx=TAGGER_MODELS / "mv2.onnx",
        metrics=TAGGER_MODELS / "mv2.metrics.json",
    log:
        OUT / "logs" / "taggers" / "train_mv2.log",
    benchmark:
        OUT / "benchmarks" / "taggers_train_mv2" / "job.tsv"
    params:
        py=PY,
        configfile=CONFIGFILE,
        model_dir=TAGGER_MODELS,
    threads: TAGGER_THREADS
    conda:
        "../envs/hepline.yaml"
    retries: 1
    resources:
        **job_resources(mem_mb=6000, runtime=120),
    shell:
        "{params.py} -m analysis.cli taggers train --config {params.configfile} --tagger mv2 "
        "--train {input.train} --validation {input.validation} --model-dir {params.model_dir} "
        "--threads {threads} > {log} 2>&1"


rule taggers_train_dl1:
    input:
        train=rules.taggers_prepare.output.train,
        validation=rules.taggers_prepare.output.validation,
        rnnip=rules.taggers_train_rnnip.output.model,
        rnnip_metrics=rules.taggers_train_rnnip.output.metrics,
    output:
        model=TAGGER_MODELS / "dl1.pt",
        onnx=TAGGER_MODELS / "dl1.onnx",
        history=TAGGER_MODELS / "dl1.history.json",
        metrics=TAGGER_MODELS / "dl1.metrics.json",
    log:
        OUT / "logs" / "taggers" / "train_dl1.log",
    benchmark:
        OUT / "benchmarks" / "taggers_train_dl1" / "job.tsv"
    params:
        py=PY,
        configfile=CONFIGFILE,
        model_dir=TAGGER_MODELS,
    threads: TAGGER_THREADS
    conda:
        "../envs/hepline.yaml"
    retries: 1
    resources:
        **job_resources(mem_mb=6000, runtime=240, gpu=True),
    shell:
        "{params.py} -m analysis.cli taggers train --config {params.configfile} --tagger dl1 "
        "--train {input.train} --validation {input.validation} --rnnip {input.rnnip} "
        "--model-dir {params.model_dir} --threads {threads} > {log} 2>&1"


rule taggers_evaluate:
    input:
        test=rules.taggers_prepare.output.test,
        models=list(TAGGER_MODEL_FILES.values()),
        onnx=[rules.taggers_train_rnnip.output.onnx, rules.taggers_train_mv2.output.onnx,
              rules.taggers_train_dl1.output.onnx],
        metrics=[rules.taggers_train_rnnip.output.metrics, rules.taggers_train_mv2.output.metrics,
                 rules.taggers_train_dl1.output.metrics],
    output:
        working_points=TAGGERS_DIR / "working_points.json",
        results=TAGGERS_DIR / "results.json",
        root=TAGGERS_DIR / "discriminants.root",
        # the FTAG-convention export (ftag, puma) and the working points as correctionlib
        scores=TAGGERS_DIR / "test_scores.h5",
        correctionlib=TAGGERS_DIR / "working_points.correctionlib.json",
        roc_light=report(TAGGER_PLOTS / "roc_light.png", category="Flavour tagging",
                         caption="../report/taggers_roc_light.rst"),
        roc_c=report(TAGGER_PLOTS / "roc_c.png", category="Flavour tagging",
                     caption="../report/taggers_roc_c.rst"),
        rejection_vs_pt=report(TAGGER_PLOTS / "light_rejection_vs_pt.png", category="Flavour tagging",
                               caption="../report/taggers_rejection_vs_pt.rst"),
        discriminants=report(TAGGER_PLOTS / "discriminants.png", category="Flavour tagging",
                             caption="../report/taggers_discriminants.rst"),
    log:
        OUT / "logs" / "taggers" / "evaluate.log",
    benchmark:
        OUT / "benchmarks" / "taggers_evaluate" / "job.tsv"
    params:
        py=PY,
        configfile=CONFIGFILE,
        model_dir=TAGGER_MODELS,
        ipxd_dir=TAGGER_IPXD,
        outdir=TAGGERS_DIR,
    threads: 1
    conda:
        "../envs/hepline.yaml"
    retries: 1
    resources:
        **job_resources(mem_mb=6000, runtime=60),
    shell:
        "{params.py} -m analysis.cli taggers evaluate --config {params.configfile} --test {input.test} "
        "--models {params.model_dir} --ipxd {params.ipxd_dir} --output-dir {params.outdir} "
        "> {log} 2>&1"


rule taggers_decorate:
    input:
        root=OUT / "samples" / "{sample}" / "{sample}_{shard}.root",
        models=list(TAGGER_MODEL_FILES.values()),
        metrics=[rules.taggers_train_rnnip.output.metrics, rules.taggers_train_mv2.output.metrics,
                 rules.taggers_train_dl1.output.metrics],
    output:
        OUT / "decorated" / "{sample}" / "{sample}_{shard}.root",
    log:
        OUT / "logs" / "taggers" / "decorate" / "{sample}_{shard}.log",
    benchmark:
        OUT / "benchmarks" / "taggers_decorate" / "{sample}_{shard}.tsv"
    params:
        py=PY,
        configfile=CONFIGFILE,
        model_dir=TAGGER_MODELS,
        ipxd_dir=TAGGER_IPXD,
    wildcard_constraints:
        sample="|".join(DECORATE_SAMPLES) or "(?!)",
        shard=r"\d+",
    threads: 1
    conda:
        "../envs/hepline.yaml"
    retries: 2
    resources:
        **job_resources(mem_mb=4000, runtime=30),
    shell:
        "{params.py} -m analysis.cli taggers decorate --config {params.configfile} --models {params.model_dir} "
        "--ipxd {params.ipxd_dir} --threads {threads} --output {output} {input.root} > {log} 2>&1"


rule taggers_all:
    input:
        rules.taggers_evaluate.output,
        [f for s in DECORATE_SAMPLES for f in decorated_files(s)],
