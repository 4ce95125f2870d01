# hepline: the whole analysis chain as one Snakemake workflow.
#   snakemake --cores 2                         # default (small) config
#   snakemake --cores 2 --configfile workflows/config/full.yaml
# Each stage lives in its own rule file under workflows/rules/.

import sys
from pathlib import Path

from analysis.config import validate

# The default config only when none is given: Snakemake would otherwise deep-merge a
# --configfile over it, and full.yaml would inherit default.yaml's small-sample settings.
if not workflow.overwrite_configfiles:

    configfile: "workflows/config/default.yaml"


# One validation path for the CLI, notebooks and Snakemake: the schema in analysis/data.
CONFIGFILES = [str(p) for p in (workflow.overwrite_configfiles or ["workflows/config/default.yaml"])]
config = validate(config, source=" ".join(CONFIGFILES))

PY = sys.executable  # the interpreter running Snakemake, i.e. the project's environment
OUT = Path(config["output_dir"])
SAMPLES = config["generation"]["samples"]
CONFIGFILE = CONFIGFILES[-1]


include: "workflows/rules/generation.smk"
include: "workflows/rules/validation.smk"
include: "workflows/rules/taggers.smk"
include: "workflows/rules/calo.smk"
include: "workflows/rules/hh_yybb.smk"


rule all:
    input:
        rules.generation_all.input,
        rules.validation_all.input,
        rules.taggers_all.input,
        rules.calo_all.input,
        rules.hh_yybb_all.input,
