"""A tiny, deterministic YAML emitter for the dicts, lists and scalars the manifests use.

Block style only. A string is written plain only when every YAML 1.1 and 1.2 reader takes it
for that same string; anything else is double-quoted with JSON escapes (valid YAML). A dict key
given as ``Note(key, comment)`` gets ``# comment`` lines above it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./@=-]*(:[A-Za-z0-9_./@=-]+)*")
_RESERVED = {"y", "n", "yes", "no", "true", "false", "on", "off", "null", "~"}


class Note(str):
    """A mapping key that carries a comment emitted on the lines above it."""

    comment: str

    def __new__(cls, key: str, comment: str) -> Note:
        note = super().__new__(cls, key)
        note.comment = comment
        return note


def scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and value.lower() not in _RESERVED:
            return value
        return json.dumps(value)
    raise TypeError(f"cannot emit {type(value).__name__} as YAML")


def _comment_lines(text: str, indent: str) -> list[str]:
    return [f"{indent}# {line}".rstrip() for line in text.splitlines()]


def _block(value: Any, depth: int) -> list[str]:
    """Lines for a mapping or sequence whose items start at ``depth`` levels of indent."""
    indent = "  " * depth
    lines: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, Note):
                lines += _comment_lines(key.comment, indent)
            lines += _entry(f"{indent}{scalar(str(key))}:", item, depth)
        return lines
    for item in value:
        if isinstance(item, Mapping) and item:
            nested = _block(item, depth + 1)
            first = nested[0][len(indent) + 2:]
            lines.append(f"{indent}- {first}")
            lines += nested[1:]
        else:
            lines += _entry(f"{indent}-", item, depth)
    return lines


def _entry(head: str, item: Any, depth: int) -> list[str]:
    if isinstance(item, Mapping | list | tuple) and item:
        return [head, *_block(item, depth + 1)]
    if isinstance(item, Mapping):
        return [f"{head} {{}}"]
    if isinstance(item, list | tuple):
        return [f"{head} []"]
    return [f"{head} {scalar(item)}"]


def dump(document: Mapping[str, Any]) -> str:
    return "\n".join(_block(document, 0)) + "\n"


def dump_all(documents: Iterable[Mapping[str, Any]], header: str = "") -> str:
    """Documents separated by ``---``, preceded by ``header`` as comment lines."""
    head = "".join(f"{line}\n" for line in _comment_lines(header, "")) if header else ""
    return head + "---\n".join(dump(d) for d in documents)
