#!/usr/bin/env bash
# Run by Snakemake inside the new conda environment of hepline.yaml, right after creating it,
# with the working directory of the workflow (the repository root, where the Snakefile is).
# Installs hepline and its remaining dependencies from pyproject.toml; torch==2.13.0 is
# already satisfied by the CPU wheel of hepline.yaml.
set -euo pipefail
if ! grep -q '^name = "hepline"' pyproject.toml 2>/dev/null; then
    echo "hepline.post-deploy.sh: run snakemake from the hepline repository root (no hepline pyproject.toml in $PWD)" >&2
    exit 1
fi
python -m pip install --no-cache-dir -e .
