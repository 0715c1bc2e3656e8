"""Dataclass ⇄ msgpack-able body conversion with field validation."""

from __future__ import annotations

import dataclasses
import types
import typing
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


def from_body(cls: type[T], body: Any) -> T:
    if not isinstance(body, dict):
        raise SchemaError(f"{cls.__name__} body must be a map")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    extra = sorted(str(k) for k in body if k not in known)
    if extra:
        # Strict: a field this version does not define is a schema violation, so a 1st
        # request can never smuggle account information in (spec R21).
        raise SchemaError(f"{cls.__name__} has unknown fields {extra}")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in body:
            kwargs[f.name] = _from_wire(hints[f.name], body[f.name], f"{cls.__name__}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SchemaError(f"{cls.__name__} is missing field {f.name!r}")
    try:
        return cls(**kwargs)
    except SchemaError:
        raise
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{cls.__name__}: {exc}") from None


def _from_wire(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _from_wire(arg, value, where)
            except SchemaError as exc:
                errors.append(str(exc))
        raise SchemaError("; ".join(errors))
    if tp is Any:
        return value
    if tp is Money:
        return Money.from_wire(value)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise SchemaError(f"{where} must be a list")
        (arg, *_) = typing.get_args(tp) or (Any,)
        items = [_from_wire(arg, v, f"{where}[]") for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise SchemaError(f"{where} must be a map")
        _, varg = typing.get_args(tp) or (Any, Any)
        return {str(k): _from_wire(varg, v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_body(tp, value)  # type: ignore[arg-type]
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise SchemaError(f"{where} must be one of {typing.get_args(tp)}, got {value!r}")
        return value
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise SchemaError(f"{where} must be an integer")
    if tp in (str, bytes, bool, float) and not isinstance(value, tp):
        raise SchemaError(f"{where} must be {tp.__name__}")
    return value
