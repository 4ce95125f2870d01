"""Where interactive work writes: the output folder of a notebook.

Notebooks write into ``$HEPLINE_NOTEBOOK_OUTPUT/<name>`` (default ``./notebook_output/<name>``),
one folder per notebook, so that the test that runs them can point them at a temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["NOTEBOOK_OUTPUT_ENV", "notebook_output"]

#: the environment variable naming the parent folder of the notebooks' outputs
NOTEBOOK_OUTPUT_ENV = "HEPLINE_NOTEBOOK_OUTPUT"


def notebook_output(name: str) -> Path:
    """The output folder of notebook ``name``, created if needed.

    Args:
        name: the notebook's name, e.g. ``"02_taggers"``.

    Returns:
        ``$HEPLINE_NOTEBOOK_OUTPUT/<name>``, or ``notebook_output/<name>`` when the variable is unset.
    """
    out = Path(os.environ.get(NOTEBOOK_OUTPUT_ENV) or "notebook_output") / name
    out.mkdir(parents=True, exist_ok=True)
    return out
