"""Typed, frozen views of a validated configuration.

The JSON schema (``analysis/core/config/schema/``) stays the one source of truth for what a
config may hold, its defaults and its limits. :func:`~analysis.core.config.load_config`
validates a YAML file against it once, fills the defaults and then builds the frozen
dataclasses of this package from the result, so stage code reads ``cfg.taggers.jets.pt_min_gev``
with a type checker's help, and nothing validates the same dict again.

:class:`ConfigNode` is the base of every such dataclass. Its conversion is driven by the
field annotations alone:

- a nested ``ConfigNode`` subclass from a mapping;
- ``tuple[T, ...]`` from a list (frozen);
- ``Mapping[str, T]`` from a mapping (a read-only :class:`types.MappingProxyType`);
- ``A | B``: the first member the value converts to (``None`` for ``None``);
- scalars and ``Literal`` as they are (the schema has checked them; numbers keep their
  JSON type, so :func:`to_dict` gives back the validated dict exactly, and hashes of it are
  stable).

A field whose Python default is ``None`` is one the schema makes optional without a default:
``to_dict`` leaves it out when it is ``None``, as the validated dict does.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from functools import cache
from typing import Any, ClassVar, Literal, Self, Union, get_args, get_origin

__all__ = ["ConfigNode", "to_plain"]


class ConfigNode:
    """Base of the typed configuration dataclasses (frozen, keyword-only)."""

    #: the dotted schema path of a top-level section class (``"taggers"``); empty for nested nodes
    SECTION: ClassVar[str] = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build the node from a validated mapping (defaults already filled by the schema)."""
        hints = _hints(cls)  # type: ignore[arg-type]  # classes are hashable
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name in data:
                kwargs[f.name] = _convert(hints[f.name], data[f.name], f"{cls.__name__}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise TypeError(f"{cls.__name__}: the validated config has no {f.name!r}")
        unknown = set(data) - set(hints)
        if unknown:
            raise TypeError(f"{cls.__name__}: keys the typed config does not know: {sorted(unknown)}")
        return cls(**kwargs)

    @classmethod
    def validated(cls, data: Mapping[str, Any] | None = None, *, source: str = "<config>") -> Self:
        """A top-level section from a mapping of its keys, validated against the schema and
        with its defaults filled (``RunnerConfig.validated({"chunksize": 10})``).

        Raises:
            ConfigError: the mapping breaks the section's schema (naming the key).
        """
        if not cls.SECTION:
            raise TypeError(f"{cls.__name__} is not a top-level section; build it from its parent")
        from analysis.core.config.schema import validate_section

        return cls.from_dict(validate_section(cls.SECTION, dict(data or {}), source=source))

    @classmethod
    def default(cls) -> Self:
        """The section with every value at its schema default (top-level sections only)."""
        return cls.validated({})

    def to_dict(self) -> dict[str, Any]:
        """The plain (JSON-ready) dict this node was built from: lists, dicts, scalars."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.default is None:
                continue  # optional without a schema default: absent, as in the validated dict
            out[f.name] = to_plain(value)
        return out

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` (as :func:`dataclasses.replace`); not re-validated."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def to_plain(value: Any) -> Any:
    """A config value as plain JSON data (nodes → dicts, tuples → lists)."""
    if isinstance(value, ConfigNode):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [to_plain(v) for v in value]
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = get_origin(hint)
    if hint is Any:
        return _freeze(value)
    if origin in (Union, types.UnionType):
        members = get_args(hint)
        if value is None:
            if type(None) in members:
                return None
            raise TypeError(f"{where}: None is not allowed")
        errors = []
        for member in members:
            if member is type(None):
                continue
            try:
                return _convert(member, value, where)
            except TypeError as exc:
                errors.append(str(exc))
        raise TypeError(f"{where}: {value!r} fits none of {hint}: {'; '.join(errors)}")
    if isinstance(hint, type) and issubclass(hint, ConfigNode):
        if not isinstance(value, Mapping):
            raise TypeError(f"{where}: expected a mapping, got {type(value).__name__}")
        return hint.from_dict(value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{where}: expected a list, got {type(value).__name__}")
        args = get_args(hint)
        item = args[0] if args else Any
        return tuple(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is Mapping or hint is Mapping or origin is dict:
        if not isinstance(value, Mapping):
            raise TypeError(f"{where}: expected a mapping, got {type(value).__name__}")
        args = get_args(hint)
        item = args[1] if len(args) == 2 else Any
        return types.MappingProxyType({k: _convert(item, v, f"{where}[{k!r}]") for k, v in value.items()})
    if origin is Literal:
        if value not in get_args(hint):
            raise TypeError(f"{where}: {value!r} is not one of {get_args(hint)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{where}: expected a number, got {type(value).__name__}")
        return value  # keep int as int: to_dict must give back the validated JSON
    if hint in (int, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise TypeError(f"{where}: expected {hint.__name__}, got {type(value).__name__}")
        return value
    return value


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return types.MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value
