# hepline: the whole analysis chain as one Snakemake workflow.
#   snakemake --cores 2                         # default (small) config
#   snakemake --cores 2 --configfile workflows/config/full.yaml
#   snakemake --profile workflows/profiles/slurm --configfile workflows/config/full.yaml
# Each stage lives in its own rule file under workflows/rules/; batch-farm profiles, the
# conda environment and the report captions are under workflows/ (docs/workflow.md).

import sys
from pathlib import Path

from analysis.core.config import config_from_dict

# The default config only when none is given: Snakemake would otherwise deep-merge a
# --configfile over it, and full.yaml would inherit default.yaml's small-sample settings.
if not workflow.overwrite_configfiles:

    configfile: "workflows/config/default.yaml"


# One validation path for the CLI, notebooks and Snakemake: the schema in
# analysis/core/config/schema, validated once into the typed CFG (config keeps the dict form).
CONFIGFILES = [str(p) for p in (workflow.overwrite_configfiles or ["workflows/config/default.yaml"])]
CFG = config_from_dict(config, source=" ".join(CONFIGFILES))
config = CFG.to_dict()

# The interpreter of the jobs: the one running Snakemake (the project's environment), or,
# with --software-deployment-method conda, the `python` of workflows/envs/hepline.yaml.
_DEPLOY = {m.name for m in workflow.deployment_settings.deployment_method}
PY = "python" if "CONDA" in _DEPLOY else sys.executable
OUT = Path(CFG.output_dir)
SAMPLES = CFG.generation.samples
CONFIGFILE = CONFIGFILES[-1]


include: "workflows/rules/common.smk"
include: "workflows/rules/generation.smk"
include: "workflows/rules/validation.smk"
include: "workflows/rules/taggers.smk"
include: "workflows/rules/calo.smk"
include: "workflows/rules/cnn_claim.smk"
include: "workflows/rules/hh_yybb.smk"


# Cheap bookkeeping steps run on the submit host, not as batch jobs.
localrules:
    all,


rule all:
    input:
        rules.generation_all.input,
        rules.validation_all.input,
        rules.taggers_all.input,
        rules.calo_all.input,
        rules.hh_yybb_all.input,
