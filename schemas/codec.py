"""Dataclass ⇄ msgpack-able body conversion with field validation."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from kessai.errors import SchemaError, UnknownType, UnsupportedVersion
from kessai.money import Money

T = TypeVar("T")
REGISTRY: dict[str, type[Any]] = {}


def message(cls: type[T]) -> type[T]:
    """Register a message dataclass under its ``TYPE``."""
    name = cls.TYPE  # type: ignore[attr-defined]
    if name in REGISTRY:
        raise RuntimeError(f"message type {name!r} registered twice")
    REGISTRY[name] = cls
    return cls


def message_class(type_name: str, version: int) -> type[Any]:
    try:
        cls = REGISTRY[type_name]
    except KeyError:
        raise UnknownType(f"unknown message type {type_name!r}") from None
    if version != cls.VERSION:
        raise UnsupportedVersion(
            f"{type_name} version {version} is not supported (this build reads {cls.VERSION})")
    return cls


def to_body(obj: Any) -> dict[str, Any]:
    return {f.name: _to_wire(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def _to_wire(value: Any) -> Any:
    if isinstance(value, Money):
        return value.to_wire()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_body(value)
    if isinstance(value, (list, tuple)):
        return [_to_wire(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_wire(v) for k, v in value.items()}
    return value


@dataclasses.dataclass(frozen=True)
class _Field:
    name: str
    convert: Callable[[Any, str], Any]
    required: bool
    where: str


@functools.cache
def _plan(cls: type[Any]) -> tuple[frozenset[str], tuple[_Field, ...]]:
    """Each field's converter, computed once per class (type hints are costly to resolve)."""
    hints = typing.get_type_hints(cls)
    fields = tuple(
        _Field(f.name, _converter(hints[f.name]),
               f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
               f"{cls.__name__}.{f.name}")
        for f in dataclasses.fields(cls))
    return frozenset(f.name for f in fields), fields


def from_body(cls: type[T], body: Any) -> T:
    if not isinstance(body, dict):
        raise SchemaError(f"{cls.__name__} body must be a map")
    known, fields = _plan(cls)
    if not known.issuperset(body):
        # Strict: a field this version does not define is a schema violation, so a 1st
        # request can never smuggle account information in (spec R21).
        extra = sorted(str(k) for k in body if k not in known)
        raise SchemaError(f"{cls.__name__} has unknown fields {extra}")
    kwargs: dict[str, Any] = {}
    for f in fields:
        if f.name in body:
            kwargs[f.name] = f.convert(body[f.name], f.where)
        elif f.required:
            raise SchemaError(f"{cls.__name__} is missing field {f.name!r}")
    try:
        return cls(**kwargs)
    except SchemaError:
        raise
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{cls.__name__}: {exc}") from None


def _from_wire(tp: Any, value: Any, where: str) -> Any:
    return _converter(tp)(value, where)


@functools.cache
def _converter(tp: Any) -> Callable[[Any, str], Any]:
    """A function that checks and converts a wire value to ``tp`` (built once per type)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        optional = type(None) in args
        options = [_converter(a) for a in args if a is not type(None)]

        def union(value: Any, where: str) -> Any:
            if value is None and optional:
                return None
            errors = []
            for convert in options:
                try:
                    return convert(value, where)
                except SchemaError as exc:
                    errors.append(str(exc))
            raise SchemaError("; ".join(errors))
        return union
    if tp is Any:
        return lambda value, where: value
    if tp is Money:
        return lambda value, where: Money.from_wire(value)
    if origin in (list, tuple):
        (arg, *_) = typing.get_args(tp) or (Any,)
        item = _converter(arg)
        as_tuple = origin is tuple

        def sequence(value: Any, where: str) -> Any:
            if not isinstance(value, (list, tuple)):
                raise SchemaError(f"{where} must be a list")
            items = [item(v, f"{where}[]") for v in value]
            return tuple(items) if as_tuple else items
        return sequence
    if origin is dict:
        _, varg = typing.get_args(tp) or (Any, Any)
        val = _converter(varg)

        def mapping(value: Any, where: str) -> Any:
            if not isinstance(value, dict):
                raise SchemaError(f"{where} must be a map")
            return {str(k): val(v, f"{where}.{k}") for k, v in value.items()}
        return mapping
    if dataclasses.is_dataclass(tp):
        return lambda value, where: from_body(tp, value)  # type: ignore[arg-type]
    if origin is typing.Literal:
        allowed = typing.get_args(tp)

        def literal(value: Any, where: str) -> Any:
            if value not in allowed:
                raise SchemaError(f"{where} must be one of {allowed}, got {value!r}")
            return value
        return literal
    if tp is int:
        def integer(value: Any, where: str) -> Any:
            if isinstance(value, bool) or not isinstance(value, int):
                raise SchemaError(f"{where} must be an integer")
            return value
        return integer
    if tp in (str, bytes, bool, float):
        def scalar(value: Any, where: str) -> Any:
            if not isinstance(value, tp):
                raise SchemaError(f"{where} must be {tp.__name__}")
            return value
        return scalar
    return lambda value, where: value
