"""The one config loader: plain YAML data -> nested frozen dataclasses, driven by type hints.

Why generic: every config section, wherever its dataclass lives (the experiment sections in
`mnas.config.schema`, `TrainConfig`/`DataConfig`, the search space, each controller's options,
the latency predictors' options, profiler and build options), gets identical checks and one-line
errors naming the key path, and adding a field to a dataclass is all it takes to make it
configurable. Supported hints: str, int, float (ints and numeric text such as `1e-5`, which YAML
1.1 reads as a string, are accepted), bool, None, Optional/`X | None`, Literal, tuple[X, ...],
tuple[X, Y], list[X], dict/Mapping[str, X], Any and nested dataclasses; a field whose schema
depends on a sibling's value (`latency.kwargs` on `latency.predictor`) says so with `chosen_by`.

Types are checked here and nowhere else. Value constraints (> 0 etc.) live in each dataclass's
`__post_init__`, once; they raise `ConfigError` (`check`, `require`) naming the field, and the
loader puts the section's key path in front. This module imports nothing of the project, so
every package can declare its options with it.
"""
from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import TYPE_CHECKING, Any, Iterable, Literal, Mapping, TypeVar, Union

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


class ConfigError(ValueError):
    """A value a dataclass's `__post_init__` rejects: `key` is the field (relative to the
    dataclass; the loader prefixes the section's path), `problem` what is wrong with it."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key, self.problem = key, problem

    def under(self, where: str) -> "ConfigError":
        return ConfigError(_join(where, self.key), self.problem)


def check(ok: bool, key: str, expected: str, value: Any) -> None:
    """`key: expected <expected>, got <value>` unless `ok`: the one way sections state a range."""
    if not ok:
        raise ConfigError(key, f"expected {expected}, got {value!r}")


def require(ok: bool, key: str, problem: str) -> None:
    """`key: <problem>` unless `ok`, for rules between fields (`path: required for ...`)."""
    if not ok:
        raise ConfigError(key, problem)


def chosen_by(sibling: str, schemas: Mapping[Any, type], otherwise: Any = Any
               ) -> dict[str, Any]:
    """Field metadata: the field is a mapping whose dataclass is `schemas[<sibling's value>]`;
    for values not in `schemas` it has type `otherwise` (e.g. a free-form dict for user code)."""
    return {"chosen_by": (sibling, schemas, otherwise)}


def _fail(where: str, expected: str, value: Any) -> ValueError:
    return ValueError(f"{where or 'config'}: expected {expected}, got {value!r}")


def describe(tp: Any) -> str:
    """Human wording of a type hint, for error messages."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return "any value"
    if tp is type(None):
        return "null"
    if origin in (Union, types.UnionType):
        parts = [describe(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if dataclasses.is_dataclass(tp) or origin in (dict, Mapping) or tp in (dict, Mapping):
        return "a mapping"
    if origin in (tuple, list) or tp in (tuple, list):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} values"
        return "a list"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def convert(tp: Any, value: Any, where: str) -> Any:
    """Check `value` against type hint `tp` and return it converted (lists -> tuples etc.)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return dataclass_from_data(tp, value, where)
    if origin in (Union, types.UnionType):
        return _convert_union(tp, args, value, where)
    if origin is Literal:
        if not any(value == a and type(value) is type(a) for a in args):
            raise _fail(where, describe(tp), value)
        return value
    if tp is type(None):
        if value is not None:
            raise _fail(where, "null", value)
        return None
    if origin in (tuple, list) or tp in (tuple, list):
        return _convert_sequence(tp, origin or tp, args, value, where)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        return _convert_mapping(args, value, where)
    return _convert_scalar(tp, value, where)


def _convert_union(tp: Any, args: tuple[Any, ...], value: Any, where: str) -> Any:
    if value is None and type(None) in args:
        return None
    options = [a for a in args if a is not type(None)]
    if len(options) == 1:
        try:
            return convert(options[0], value, where)
        except ValueError as exc:
            if str(exc).startswith(f"{where or 'config'}: expected {describe(options[0])},"):
                raise _fail(where, describe(tp), value) from None
            raise
    for option in options:
        try:
            return convert(option, value, where)
        except ValueError:
            continue
    raise _fail(where, describe(tp), value)


def _convert_scalar(tp: Any, value: Any, where: str) -> Any:
    if tp is bool:
        if not isinstance(value, bool):
            raise _fail(where, "true or false", value)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(where, "an integer", value)
        return value
    if tp is float:
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise _fail(where, "a number", value)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _fail(where, "a string", value)
        return value
    raise TypeError(f"{where}: unsupported type hint {tp!r} in a config dataclass")


def _convert_sequence(tp: Any, kind: Any, args: tuple[Any, ...], value: Any, where: str) -> Any:
    if not isinstance(value, (list, tuple)):
        raise _fail(where, describe(tp), value)
    if kind is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise _fail(where, describe(tp), value)
        items = [convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value))]
    else:
        item_tp = args[0] if args else Any
        items = [convert(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value)]
    return tuple(items) if kind is tuple else items


def _convert_mapping(args: tuple[Any, ...], value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(where, "a mapping", value)
    value_tp = args[1] if len(args) == 2 else Any
    out = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise ValueError(f"{where}: keys must be text, got {key!r}")
        out[key] = convert(value_tp, item, _join(where, key))
    return out


#: The dataclass a section is loaded as.
Section = TypeVar("Section", bound="DataclassInstance")


def dataclass_from_data(cls: type[Section], data: Any, where: str = "") -> Section:
    """Build dataclass `cls` from a mapping: unknown keys, wrong types and values rejected by
    `__post_init__` become ValueErrors prefixed with the key path `where`."""
    if isinstance(data, cls):
        return data
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise _fail(where, "a mapping", data)
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in known:
            expected = f"expected one of {', '.join(known)}" if known else \
                f"{where or 'this section'} takes no options here"
            raise ValueError(f"{_join(where, str(key))}: unknown key ({expected})")
    for name, f in known.items():
        if name not in data and f.default is dataclasses.MISSING \
                and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{_join(where, name)}: required key missing")
    chosen = {k: f.metadata["chosen_by"] for k, f in known.items() if "chosen_by" in f.metadata}
    values = {key: convert(hints[key], value, _join(where, key)) for key, value in data.items()
              if key not in chosen}
    for key, (sibling, schemas, otherwise) in chosen.items():
        selector = values.get(sibling, known[sibling].default)
        if selector in schemas:
            values[key] = dataclass_from_data(schemas[selector], data.get(key), _join(where, key))
        elif key in data:
            values[key] = convert(otherwise, data[key], _join(where, key))
    return construct(cls, values, where)


def construct(cls: type[Section], values: Mapping[str, Any], where: str = "") -> Section:
    """`cls(**values)` with its `__post_init__` errors put under the key path `where`."""
    try:
        return cls(**values)
    except ConfigError as exc:
        raise exc.under(where) from None
    except ValueError as exc:
        message = str(exc)
        if where and not message.startswith(where):
            message = f"{where}: {message}"
        raise ValueError(message) from None


#: The public name of the loader's entry point, for sections loaded on their own.
load_section = dataclass_from_data


def to_plain(value: Any) -> Any:
    """Dataclasses -> dicts, tuples -> lists, recursively (YAML/JSON-ready data): what
    `load_section` turns back into the same dataclass."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def _field_type(cls: type, name: str) -> Any:
    """The type hint of field `name`, with Optional unwrapped (for walking override paths)."""
    tp = typing.get_type_hints(cls)[name]
    if typing.get_origin(tp) in (Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(options) == 1:
            tp = options[0]
    return tp


def check_key_path(cls: type, dotted: str, schemas: Mapping[str, type] | None = None) -> None:
    """ValueError unless `dotted` names a field of `cls` (free-form below mapping fields, except
    those listed in `schemas`, a {top-level field: dataclass} map checked one level deeper)."""
    tp: Any = cls
    parts = dotted.split(".")
    for depth, part in enumerate(parts):
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            names = [f.name for f in dataclasses.fields(tp) if f.init]
            if part not in names:
                prefix = ".".join(parts[:depth]) or "the top level"
                raise ValueError(f"--set {dotted}: unknown key {part!r} in {prefix} "
                                 f"(expected one of {', '.join(names)})")
            schema = (schemas or {}).get(part) if depth == 0 else None
            tp = schema if schema is not None else _field_type(tp, part)
        elif depth < len(parts) and not (typing.get_origin(tp) in (dict, Mapping)
                                         or tp in (dict, Mapping, Any)):
            raise ValueError(f"--set {dotted}: {'.'.join(parts[:depth])} has no sub-keys")


def apply_overrides(data: dict[str, Any], overrides: Iterable[tuple[str, Any]], cls: type,
                    schemas: Mapping[str, type] | None = None) -> None:
    """Set each (dotted key, value) in the raw data, creating sections as needed."""
    for dotted, value in overrides:
        check_key_path(cls, dotted, schemas)
        node = data
        *parents, last = dotted.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ValueError(f"--set {dotted}: {part} is not a mapping in the file")
            node = child
        node[last] = value
