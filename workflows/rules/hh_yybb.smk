# HH -> yybb: event selection per sample -> sigma-weighted histograms with systematics ->
# pyhf workspaces -> CLs limits (Brazil plot) -> paper plots (docs/hh_yybb.md).
# Inputs: the b-tag-decorated ntuples and the working-point file of the taggers stage.
# Uses decorated_files/job_resources (common.smk) and SAMPLES/OUT/PY/CONFIGFILE (Snakefile).


HH_SAMPLES = [s for s in CFG.selection.hh_yybb.samples if s in SAMPLES]
HH_WP_FILE = OUT / "taggers" / "working_points.json"


localrules:
    hh_yybb_plots,
    hh_yybb_all,


rule hh_yybb_select:
    input:
        files=lambda wc: decorated_files(wc.sample),
        working_points=HH_WP_FILE,
        metadata=OUT / "samples" / "{sample}.json",
    output:
        hists=OUT / "hh_yybb" / "selection" / "{sample}.pkl",
        cutflow=OUT / "hh_yybb" / "selection" / "{sample}_cutflow.json",
        cutflow_md=OUT / "hh_yybb" / "selection" / "{sample}_cutflow.md",
        metrics=OUT / "hh_yybb" / "selection" / "{sample}.metrics.json",
    log:
        OUT / "logs" / "hh_yybb" / "select_{sample}.log",
    benchmark:
        OUT / "benchmarks" / "hh_yybb_select" / "{sample}.tsv"
    params:
        py=PY,
        configfile=CONFIGFILE,
    wildcard_constraints:
        sample="|".join(HH_SAMPLES) or "NO_SAMPLE",
    conda:
        "../envs/hepline.yaml"
    retries: 2
    resources:
        **job_resources(mem_mb=3000, runtime=30),
    shell:
        "{params.py} -m analysis.cli select --config {params.configfile} "
        "--working-points {input.working_points} --sample-metadata {input.metadata} "
        "--output {output.hists} --cutflow-json {output.cutflow} --cutflow-md {output.cutflow_md} "
        "--metrics {output.metrics} {input.files} > {log} 2>&1"


rule hh_yybb_histograms:
    input:
        expand(OUT / "hh_yybb" / "selection" / "{sample}.pkl", sample=HH_SAMPLES),
    output:
        hists=OUT / "hh_yybb" / "histograms" / "hists.pkl",
        root=OUT / "hh_yybb" / "histograms" / "hists.root",
        cutflow=OUT / "hh_yybb" / "histograms" / "cutflow.json",
        cutflow_md=report(OUT / "hh_yybb" / "histograms" / "cutflow.md", category="HH -> yybb",
                          subcategory="Tables", caption="../report/hh_yybb_cutflow_table.rst"),
    log:
        OUT / "logs" / "hh_yybb" / "histograms.log",
    benchmark:
        OUT / "benchmarks" / "hh_yybb_histograms" / "job.tsv"
    params:
        py=PY,
        configfile=CONFIGFILE,
        outdir=lambda wc, output: Path(output.hists).parent,
    conda:
        "../envs/hepline.yaml"
    retries: 1
    resources:
        **job_resources(mem_mb=2000, runtime=30),
    shell:
        "{params.py} -m analysis.cli histograms --config {params.configfile} --output-dir {params.outdir} "
        "{input} > {log} 2>&1"


rule hh_yybb_workspaces:
    input:
        OUT / "hh_yybb" / "histograms" / "hists.pkl",
    output:
        index=OUT / "hh_yybb" / "workspaces" / "index.json",
    log:
        OUT / "logs" / "hh_yybb" / "workspaces.log",
    benchmark:
        OUT / "benchmarks" / "hh_yybb_workspaces" / "job.tsv"
    params:
        py=PY,
        configfile=CONFIGFILE,
        outdir=lambda wc, output: Path(output.index).parent,
    conda:
        "../envs/hepline.yaml"
    resources:
        **job_resources(mem_mb=2000, runtime=30),
    shell:
        "{params.py} -m analysis.cli limits workspaces --config {params.configfile} --hists {input} "
        "--output-dir {params.outdir} > {log} 2>&1"


rule hh_yybb_limits:
    input:
        OUT / "hh_yybb" / "workspaces" / "index.json",
    output:
        limits=OUT / "hh_yybb" / "limits" / "limits.json",
        table=report(OUT / "hh_yybb" / "limits" / "limits.md", category="HH -> yybb",
                     subcategory="Tables", caption="../report/hh_yybb_limits_table.rst"),
    log:
        OUT / "logs" / "hh_yybb" / "limits.log",
    benchmark:
        OUT / "benchmarks" / "hh_yybb_limits" / "job.tsv"
    params:
        py=PY,
        configfile=CONFIGFILE,
        outdir=lambda wc, output: Path(output.limits).parent,
    conda:
        "../envs/hepline.yaml"
    retries: 1
    resources:
        **job_resources(mem_mb=2000, runtime=60),
    shell:
        "{params.py} -m analysis.cli limits limits --config {params.configfile} --index {input} "
        "--output-dir {params.outdir} > {log} 2>&1"


rule hh_yybb_plots:
    input:
        hists=OUT / "hh_yybb" / "histograms" / "hists.pkl",
        limits=OUT / "hh_yybb" / "limits" / "limits.json",
    output:
        myy=report(OUT / "hh_yybb" / "plots" / "m_yy_categories.png", category="HH -> yybb",
                   caption="../report/hh_yybb_m_yy_categories.rst"),
        mstar=report(OUT / "hh_yybb" / "plots" / "m_star.png", category="HH -> yybb",
                     caption="../report/hh_yybb_m_star.rst"),
        cutflow=report(OUT / "hh_yybb" / "plots" / "cutflow.png", category="HH -> yybb",
                       caption="../report/hh_yybb_cutflow.rst"),
        brazil=report(OUT / "hh_yybb" / "plots" / "brazil.png", category="HH -> yybb",
                      caption="../report/hh_yybb_brazil.rst"),
        summary=OUT / "hh_yybb" / "plots" / "summary.json",
    log:
        OUT / "logs" / "hh_yybb" / "plots.log",
    benchmark:
        OUT / "benchmarks" / "hh_yybb_plots" / "job.tsv"
    params:
        py=PY,
        configfile=CONFIGFILE,
        outdir=lambda wc, output: Path(output.summary).parent,
    conda:
        "../envs/hepline.yaml"
    shell:
        "{params.py} -m analysis.cli plots --config {params.configfile} --hists {input.hists} "
        "--limits {input.limits} --output-dir {params.outdir} > {log} 2>&1"


rule hh_yybb_all:
    input:
        rules.hh_yybb_plots.output,
        rules.hh_yybb_histograms.output.root,
