"""Plain-dict access to a validated config, for stages not yet moved to the typed objects.

Transitional: every stage is being moved to :class:`analysis.core.config.Config`; this module
goes when the last caller does (docs/status.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from analysis.core.config.schema import validate, validate_section

__all__ = ["config_section", "load_raw_config"]


def load_raw_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML config file, validate it and fill the schema defaults (a plain dict)."""
    from analysis.core.config import read_yaml

    return validate(read_yaml(path), source=str(path))


def config_section(config: Mapping[str, Any] | None, name: str) -> dict[str, Any]:
    """The validated ``name`` section (defaults filled) of a whole config, or of the section
    itself: a mapping that holds ``generation``, ``seed`` or ``name`` is a whole config."""
    raw: Any = config or {}
    if hasattr(raw, "to_dict"):
        raw = raw.to_dict()
    if isinstance(raw, Mapping) and ("generation" in raw or "seed" in raw or name in raw):
        raw = raw.get(name) or {}
    return validate_section(name, raw, source=f"{name} section")
