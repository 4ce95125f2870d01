"""The configuration JSON schema: loading it, and validating a config against it once.

The schema (``schema/config.schema.yaml`` plus one file per stage section in
``schema/schema.d/``) is the one source of truth for what a config may hold, its defaults and
its limits. Validation fills the defaults in; :mod:`analysis.core.config` then turns the
result into frozen typed objects.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from analysis.core.errors import ConfigError

__all__ = ["schema", "schema_path", "validate", "validate_section"]

SCHEMA_PACKAGE = "analysis.core.config"
SCHEMA_DIR = "schema"
SCHEMA_RESOURCE = "config.schema.yaml"
SECTION_DIR = "schema.d"


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The hepline configuration JSON schema (draft 2020-12), as a dict.

    The top-level file defines the common keys (seed, output_dir); each section owns one
    file ``schema.d/<section>.yaml`` holding the schema of its top-level section
    (``generation``, ``detector``, ``taggers``, ``selection``, ...), merged here with its ``$defs``.
    """
    data = resources.files(SCHEMA_PACKAGE).joinpath(SCHEMA_DIR)
    root = yaml.safe_load(data.joinpath(SCHEMA_RESOURCE).read_text())
    section_dir = data.joinpath(SECTION_DIR)
    for entry in sorted(section_dir.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        section = entry.name[: -len(".yaml")]
        frag = yaml.safe_load(entry.read_text())
        root.setdefault("$defs", {}).update(frag.pop("$defs", {}))
        if section in root["properties"]:
            raise RuntimeError(f"schema section {section!r} defined twice ({entry.name})")
        root["properties"][section] = frag
    return root


def schema_path() -> Path:
    """Filesystem path of the top-level schema file."""
    return Path(str(resources.files(SCHEMA_PACKAGE).joinpath(SCHEMA_DIR, SCHEMA_RESOURCE)))


def _fill_defaults(validator_cls: Any) -> Any:
    """A validator class that also inserts ``default`` values while validating."""
    validate_properties = validator_cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, sch):  # type: ignore[no-untyped-def]
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, sch)

    return jsonschema.validators.extend(validator_cls, {"properties": set_defaults})


_Validator = _fill_defaults(jsonschema.Draft202012Validator)


def _errors(sch: dict[str, Any], instance: Any, source: str) -> None:
    errors = sorted(_Validator(sch).iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors[:10]:
            key = ".".join(str(p) for p in err.absolute_path) or "<top level>"
            lines.append(f"{key}: {err.message}")
        more = f"; and {len(errors) - 10} more" if len(errors) > 10 else ""
        raise ConfigError(f"invalid configuration {source}: " + "; ".join(lines) + more)


def validate(cfg: dict[str, Any], *, source: str = "<config>") -> dict[str, Any]:
    """Validate a whole config against the schema and return a copy with the defaults filled.

    Raises :class:`~analysis.core.errors.ConfigError` naming the source file, the offending
    key path and the schema's message.
    """
    out = copy.deepcopy(cfg)
    _errors(schema(), out, source)
    return out


def validate_section(name: str, value: Any, *, source: str = "<config>") -> Any:
    """Validate one top-level section (``runner``, ``taggers``, ...) on its own and fill its
    defaults; ``None`` means the section's default."""
    root = schema()
    if name not in root["properties"]:
        raise ConfigError(f"unknown configuration section {name!r}")
    sub = root["properties"][name]
    holder = {name: copy.deepcopy(value if value is not None else sub.get("default", {}))}
    wrapper = {"type": "object", "properties": {name: sub}, "$defs": root.get("$defs", {})}
    _errors(wrapper, holder, source)
    return holder[name]
