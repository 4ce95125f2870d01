"""The typed config classes stay in step with the schema, the one source of truth."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin

import pytest
import yaml

from analysis.core.config import (
    Config,
    ConfigError,
    ConfigNode,
    RunnerConfig,
    TaggersConfig,
    config_from_dict,
    config_hash,
    load_config,
    read_yaml,
    schema,
    validate,
)
from tests.fixtures.paths import REPO

SHIPPED = sorted((REPO / "workflows" / "config").glob("*.yaml"))


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = schema()["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _members(hint: Any) -> tuple[Any, ...]:
    return get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)


def _schema_types(node: dict[str, Any]) -> set[str]:
    node = _resolve(node)
    if "anyOf" in node:
        return set().union(*(_schema_types(s) for s in node["anyOf"]))
    if "enum" in node:
        return {"enum"} | ({"null"} if None in node["enum"] else set())
    t = node.get("type", "object")
    return set(t) if isinstance(t, list) else {t}


PY_TYPES = {"integer": int, "number": float, "string": str, "boolean": bool}


def _check_type(hint: Any, node: dict[str, Any], where: str, seen: set[type],
                optional: bool = False) -> None:
    node = _resolve(node)
    kinds = _schema_types(node)
    members = [m for m in _members(hint) if m is not type(None)]
    nullable = "null" in kinds or optional  # an optional key without a default reads as None
    assert nullable == (type(None) in _members(hint)), f"{where}: nullability differs"
    for kind in kinds - {"null"}:
        if kind in PY_TYPES:
            assert PY_TYPES[kind] in members, f"{where}: schema {kind}, hint {hint}"
        elif kind == "enum":
            lit = [m for m in members if get_origin(m) is Literal]
            assert lit and set(get_args(lit[0])) == set(node["enum"]) - {None}, f"{where}: enum values"
        elif kind == "array":
            tup = [m for m in members if get_origin(m) is tuple]
            assert tup, f"{where}: an array needs a tuple hint, not {hint}"
            if isinstance(node.get("items"), dict):
                _check_type(get_args(tup[0])[0], node["items"], where + "[]", seen)
        elif kind == "object":
            nodes = [m for m in members if isinstance(m, type) and issubclass(m, ConfigNode)]
            maps = [m for m in members if get_origin(m) is Mapping]
            if "properties" in node or ("anyOf" in node and nodes):
                sub = node if "properties" in node else next(_resolve(s) for s in node["anyOf"]
                                                             if "properties" in _resolve(s))
                assert nodes, f"{where}: an object with properties needs a ConfigNode class"
                _check_node(nodes[0], sub, where, seen)
            else:
                assert maps, f"{where}: a free-form object needs a Mapping hint, not {hint}"
                ap = node.get("additionalProperties")
                if isinstance(ap, dict):
                    _check_type(get_args(maps[0])[1], ap, where + ".*", seen)


def _check_node(cls: type, node: dict[str, Any], where: str, seen: set[type]) -> None:
    node = _resolve(node)
    props = node["properties"]
    assert node.get("additionalProperties") is False, f"{where}: the schema must reject unknown keys"
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert set(fields) == set(props), (
        f"{where} ({cls.__name__}): only in the class {sorted(set(fields) - set(props))}, "
        f"only in the schema {sorted(set(props) - set(fields))}")
    if cls in seen:
        return
    seen.add(cls)
    hints = typing.get_type_hints(cls)
    required = set(node.get("required", []))
    for name, sub in props.items():
        has_default = "default" in sub or "default" in _resolve(sub)
        optional = not has_default and name not in required
        f = fields[name]
        assert (f.default is None) == optional, (
            f"{where}.{name}: a Python default of None marks a key the schema makes optional "
            f"without a default (optional here: {optional})")
        _check_type(hints[name], sub, f"{where}.{name}", seen, optional)


def test_every_config_class_matches_its_schema_node() -> None:
    seen: set[type] = set()
    _check_node(Config, schema(), "<config>", seen)
    assert len(seen) > 50  # the walk reached the nested classes


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_typed_config_gives_back_the_validated_dict_and_its_hash(path) -> None:
    raw = validate(read_yaml(path), source=str(path))
    cfg = load_config(path)
    assert cfg.to_dict() == raw
    assert config_hash(cfg) == config_hash(raw)
    for name in ("taggers", "selection", "runner", "calo", "limits"):
        assert config_hash(getattr(cfg, name)) == config_hash(raw[name])


def test_config_is_frozen_and_typed() -> None:
    cfg = load_config(REPO / "workflows" / "config" / "default.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 1  # type: ignore[misc]
    assert isinstance(cfg.taggers.tracks.grades, tuple)
    with pytest.raises(TypeError):
        cfg.generation.samples["ttbar"] = None  # type: ignore[index]
    assert cfg.taggers.jets.pt_min_gev == 20.0


def test_section_defaults_are_those_of_a_config_without_the_section() -> None:
    minimal = config_from_dict({"seed": 1, "generation": {"samples": {
        "ttbar": {"process": "ttbar", "shards": 1, "events_per_shard": 10}}}})
    assert TaggersConfig.default() == minimal.taggers
    assert RunnerConfig.default() == minimal.runner
    assert minimal.runner.executor == "iterative" and minimal.taggers.jets.pt_min_gev == 20.0


@pytest.mark.parametrize("typo", ["tagger_model", "selections"])
def test_an_unknown_top_level_key_is_an_error_naming_it(tmp_path, typo) -> None:
    raw = yaml.safe_load((REPO / "workflows" / "config" / "default.yaml").read_text())
    raw[typo] = {}
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=typo) as err:
        load_config(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_partial_resolution_block_is_an_error_not_a_none() -> None:
    raw = yaml.safe_load((REPO / "workflows" / "config" / "default.yaml").read_text())
    raw.setdefault("detector", {}).setdefault("tracking", {})["d0_resolution"] = {"a_mm": 0.01}
    with pytest.raises(ConfigError, match="b_mm_gev"):
        config_from_dict(raw)
