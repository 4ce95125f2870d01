"""YAML configuration: loading, schema validation, defaults and a stable hash.

The schema (``analysis/data/config.schema.yaml``) is the one source of truth for what a
config may contain; defaults written in the schema are filled in on load, so every stage
sees the complete, validated configuration.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_RESOURCE = "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or does not match the schema."""


SECTION_DIR = "schema.d"


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The hepline configuration JSON schema (draft 2020-12), as a dict.

    The top-level file defines the common sections (seed, generation, detector); each later
    stage owns one file ``analysis/data/schema.d/<section>.yaml`` holding the schema of its
    top-level section (``taggers``, ``selection``, ...), merged here. Its ``$defs`` are merged
    into the common ``$defs``.
    """
    data = resources.files("analysis.data")
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
    """Filesystem path of the schema (for Snakemake's ``validate``)."""
    return Path(str(resources.files("analysis.data").joinpath(SCHEMA_RESOURCE)))


def _fill_defaults(validator_cls: type) -> type:
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


def validate(cfg: dict[str, Any], *, source: str = "<config>") -> dict[str, Any]:
    """Validate ``cfg`` against the schema, fill defaults and return a new dict.

    Raises :class:`ConfigError` naming the source file, the offending key path and the
    schema's message.
    """
    out = copy.deepcopy(cfg)
    errors = sorted(_Validator(schema()).iter_errors(out), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors[:10]:
            key = ".".join(str(p) for p in err.absolute_path) or "<top level>"
            lines.append(f"  {key}: {err.message}")
        more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
        raise ConfigError(f"invalid configuration {source}:\n" + "\n".join(lines) + more)
    return out


_SECTION_CACHE: dict[tuple[str, str], Any] = {}
_SECTION_CACHE_SIZE = 64


def validate_section(name: str, value: Any, *, source: str = "<config>") -> Any:
    """Validate one top-level section (e.g. ``runner``) on its own and fill its defaults.

    A section already validated in this process (same name, same JSON content) is not
    validated again: a copy of the earlier result is returned (schema validation costs
    ≈ 6 ms for ``selection``, and a stage looks its section up several times per run)."""
    try:
        key: tuple[str, str] | None = (name, json.dumps(value, sort_keys=True, separators=(",", ":")))
    except (TypeError, ValueError):  # not JSON-serialisable: validate every time
        key = None
    if key is not None and key in _SECTION_CACHE:
        return copy.deepcopy(_SECTION_CACHE[key])
    out = _validate_section(name, value, source=source)
    if key is not None:
        if len(_SECTION_CACHE) >= _SECTION_CACHE_SIZE:
            _SECTION_CACHE.clear()
        _SECTION_CACHE[key] = copy.deepcopy(out)
    return out


def _validate_section(name: str, value: Any, *, source: str) -> Any:
    root = schema()
    if name not in root["properties"]:
        raise ConfigError(f"unknown configuration section {name!r}")
    sub = {"$defs": root.get("$defs", {}), **root["properties"][name]}
    holder = {name: copy.deepcopy(value if value is not None else sub.get("default", {}))}
    wrapper = {"type": "object", "properties": {name: sub}, "$defs": root.get("$defs", {})}
    errors = sorted(_Validator(wrapper).iter_errors(holder), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  {'.'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in errors[:10]]
        raise ConfigError(f"invalid configuration {source}:\n" + "\n".join(lines))
    return holder[name]


def config_section(config: Mapping[str, Any] | None, name: str) -> dict[str, Any]:
    """The validated ``name`` section (defaults filled) of a whole config, or of the section
    itself: a mapping that holds ``generation``, ``seed`` or ``name`` is a whole config."""
    raw: Any = config or {}
    if isinstance(raw, Mapping) and ("generation" in raw or "seed" in raw or name in raw):
        raw = raw.get(name) or {}
    return validate_section(name, raw, source=f"{name} section")


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML config file, validate it and fill the schema defaults."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"configuration file not found: {p}")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"configuration file {p} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"configuration file {p} must hold a mapping at the top level")
    return validate(raw, source=str(p))


def config_hash(cfg: Any) -> str:
    """A stable SHA-256 (first 16 hex digits) of a JSON-serialisable config fragment."""
    blob = json.dumps(cfg, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
