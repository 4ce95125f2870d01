"""Configuration: one YAML file, validated once against the schema into frozen typed objects.

::

    from analysis.core.config import load_config
    cfg = load_config("workflows/config/default.yaml")     # a frozen Config
    cfg.taggers.jets.pt_min_gev                              # 20.0 (GeV)
    cfg.generation.samples["ttbar"].events_per_shard

The schema (``analysis/core/config/schema/``) is the one source of truth for what a config may
hold, its defaults and its limits; :func:`load_config` validates a file against it once and
builds :class:`Config`. Stage functions take the typed section they need
(:class:`TaggersConfig`, :class:`RunnerConfig`, ...); none validates again. Notebooks build a
section with its defaults with ``TaggersConfig.default()``, or a whole config from a dict with
:func:`config_from_dict`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from analysis.core.config.detector import DetectorConfig
from analysis.core.config.generation import CompressionConfig, GenerationConfig, SampleConfig
from analysis.core.config.limits import LimitsConfig
from analysis.core.config.node import ConfigNode, to_plain
from analysis.core.config.rpv import CaloConfig, RpvConfig
from analysis.core.config.runner import RunnerConfig
from analysis.core.config.schema import schema, schema_path, validate, validate_section
from analysis.core.config.selection import SelectionConfig
from analysis.core.config.site import SiteConfig
from analysis.core.config.taggers import TaggerModelsConfig, TaggersConfig
from analysis.core.errors import ConfigError

__all__ = [
    "CaloConfig",
    "CompressionConfig",
    "Config",
    "ConfigError",
    "ConfigNode",
    "DetectorConfig",
    "GenerationConfig",
    "LimitsConfig",
    "RpvConfig",
    "RunnerConfig",
    "SampleConfig",
    "SelectionConfig",
    "SiteConfig",
    "TaggerModelsConfig",
    "TaggersConfig",
    "config_from_dict",
    "config_hash",
    "load_config",
    "read_yaml",
    "schema",
    "schema_path",
    "validate",
    "validate_section",
]


@dataclass(frozen=True, kw_only=True)
class Config(ConfigNode):
    """A whole hepline configuration, validated and with every default filled.

    ``source`` names the file(s) it was read from (for error messages and provenance); it is
    not part of the configuration and not in :meth:`to_dict`.
    """

    #: Base seed; shard k of a sample uses seed + sample offset + k.
    seed: int
    #: where the workflow writes everything
    output_dir: str
    generation: GenerationConfig
    detector: DetectorConfig
    taggers: TaggersConfig
    tagger_models: TaggerModelsConfig
    selection: SelectionConfig
    calo: CaloConfig
    rpv: RpvConfig
    limits: LimitsConfig
    runner: RunnerConfig
    #: the batch farm of a workflow run (GPUs, thread cap, partition, account); no stage reads it
    site: SiteConfig


    @property
    def hash(self) -> str:
        """:func:`config_hash` of the whole configuration."""
        return config_hash(self)


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping of a YAML config file, unvalidated (errors name the file)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"configuration file not found: {p}")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"configuration file {p} is not valid YAML: {' '.join(str(exc).split())}") from exc
    except OSError as exc:
        raise ConfigError(f"configuration file {p} cannot be read: {exc.strerror}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"configuration file {p} must hold a mapping at the top level")
    return raw


def config_from_dict(data: Mapping[str, Any], *, source: str = "<config>") -> Config:
    """Validate a config mapping against the schema, fill the defaults, build :class:`Config`."""
    return Config.from_dict(validate(dict(data), source=source))


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read a YAML config file, validate it once and return the frozen :class:`Config`."""
    return config_from_dict(read_yaml(path), source=str(path))


def config_hash(cfg: Any) -> str:
    """A stable SHA-256 (first 16 hex digits) of a config, section or JSON-ready fragment.

    Typed nodes hash as their :meth:`~ConfigNode.to_dict`, so a section hashes the same as the
    validated dict it was built from.
    """
    blob = json.dumps(to_plain(cfg), sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
