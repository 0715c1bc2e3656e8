"""Templates for summarized contents (FIG. 5; claims 4–7, 13, 14; spec R21–R23).

FIG. 5: the wallet's contents tag each item, ``<Product>personal computer</Product>`` (A); a
template holds the item's name between ampersands, ``&Product&``, at a fixed place (B); the
relay puts the item's text in its place (C). Nothing outside the tagged items reaches the
terminal (R22), and a template names the items it cannot go without: the confirming
information and the approval need the amount and the payment-procedure identifier (claims 5
and 7, R23).

Template files, ``templates/<kind>.<level>.tmpl`` (UTF-8)::

    #required: Total TxnId      directives first: items the page cannot go without
    #title: Confirm             the page title
    <p>Confirm payment</p>      then HTML, one self-contained fragment per line
    &Item[&                     a block: its lines repeat once per <Item> element
    <p>&Product& &UnitCost& x&Quant&</p>
    &]Item&
    <p>Total: &Total&</p>

- Pages break only between lines (see ``pages``), so a line never opens a tag it does not close.
- Inside a block, ``&Name&`` is the field of that element; elsewhere, the top-level item.
- A line whose placeholders all came out empty is left out, so an absent optional item leaves
  no orphan label behind.
- A literal ampersand is written ``&amp;``.

Item names the relay's templates use (the wallet, CA and relay make contents with them):
``Item`` {``Product``, ``UnitCost``, ``Quant``}, ``Tax``, ``Total``, ``TxnId`` (FIG. 5, claim 7),
``Shop``, ``Wallet``, ``Prompt``, ``Message``, ``Error``, ``Reason``, ``AttemptsLeft``,
``AuthCode``, ``Brand``, ``Method``, ``Outcome``, ``RequestId``, ``Status``, ``Count``.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources

from agents.relay.profiles import LEVELS
from kessai.errors import ConfigError, KessaiError

KINDS: tuple[str, ...] = (
    "login", "login-failed", "conditions", "confirming", "approval", "declined", "error",
    "payment-request", "result", "enrol", "ca", "progress", "wallet-selection",
)

Row = dict[str, str]
Value = str | list[Row]
Extracted = dict[str, Value]
"""Item name → its text, or for an element holding tagged items (``<Item>``) one dict per
element, in source order."""

_NAME = r"[A-Za-z][A-Za-z0-9]*"
_PLACEHOLDER = re.compile(rf"&({_NAME})&")
_BLOCK_OPEN = re.compile(rf"&({_NAME})\[&")
_BLOCK_CLOSE = re.compile(rf"&\]({_NAME})&")

_COMMENT = re.compile(r"<!--.*?-->", re.S)
_RAW_TEXT = re.compile(r"<(script|style)\b.*?</\1\s*>", re.S | re.I)
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)\b[^>]*?(/?)>")
_ANY_TAG = re.compile(r"<[^>]*>")
_ITEM_NAME = re.compile(r"[A-Z][A-Za-z0-9]*")
# Old pages write HTML in capitals (<BODY>, <TD>); those are markup, not tagged items.
_HTML_NAMES = """
a abbr acronym address area article aside b base basefont bdo big blink blockquote body br
button caption center cite code col colgroup dd del dfn dir div dl dt em embed fieldset figure
figcaption font footer form frame frameset h1 h2 h3 h4 h5 h6 head header hr html i iframe img
input ins kbd label legend li link main map marquee menu meta nav nobr noframes noscript object
ol optgroup option p param pre q s samp script section select small span strike strong style
sub sup table tbody td textarea tfoot th thead title tr tt u ul var
"""
_HTML_ELEMENTS = frozenset(_HTML_NAMES.split())


class MissingItem(KessaiError):
    """Contents lack an item their template requires (R23). Names the items, never values."""

    code = "missing_item"

    def __init__(self, kind: str, missing: tuple[str, ...]) -> None:
        super().__init__(f"the {kind} contents lack the required item(s) "
                         f"{', '.join(missing)}; no page is made from them (R23)")
        self.kind = kind
        self.missing = missing


class UnknownTemplate(ConfigError):
    code = "unknown_template"


class BadTemplate(ConfigError):
    code = "bad_template"


@dataclass(frozen=True)
class Block:
    """Lines repeated once per element called ``name``."""

    name: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Template:
    kind: str
    level: str
    required: tuple[str, ...]
    title: str
    body: tuple[str | Block, ...] = field(repr=False)


def parse_template(kind: str, level: str, text: str) -> Template:
    """Read a template file's text (format in the module docstring).

    Raises:
        BadTemplate: an unknown directive, a block that is not closed or is nested.
    """
    lines = text.splitlines()
    required: tuple[str, ...] = ()
    title = kind
    while lines and lines[0].startswith("#"):
        key, _, value = lines.pop(0)[1:].partition(":")
        if key.strip() == "required":
            required = tuple(value.split())
        elif key.strip() == "title":
            title = value.strip()
        else:
            raise BadTemplate(f"template {kind}.{level}: unknown directive #{key.strip()}")
    body: list[str | Block] = []
    block: tuple[str, list[str]] | None = None
    for line in lines:
        opened, closed = _BLOCK_OPEN.fullmatch(line.strip()), _BLOCK_CLOSE.fullmatch(line.strip())
        if opened:
            if block is not None:
                raise BadTemplate(f"template {kind}.{level}: blocks do not nest")
            block = (opened.group(1), [])
        elif closed:
            if block is None or block[0] != closed.group(1):
                raise BadTemplate(f"template {kind}.{level}: &]{closed.group(1)}& closes no "
                                  "open block")
            body.append(Block(block[0], tuple(block[1])))
            block = None
        elif block is not None:
            block[1].append(line)
        elif line.strip():
            body.append(line)
    if block is not None:
        raise BadTemplate(f"template {kind}.{level}: block &{block[0]}[& is not closed")
    return Template(kind=kind, level=level, required=required, title=title, body=tuple(body))


@functools.cache
def load_template(kind: str, level: str) -> Template:
    """The packaged template for (kind, level); read once, templates are configuration (R21).

    Raises:
        UnknownTemplate: no template for that kind or level.
    """
    if kind not in KINDS or level not in LEVELS:
        raise UnknownTemplate(f"no template for contents {kind!r} at level {level!r}; kinds: "
                              f"{', '.join(KINDS)}; levels: {', '.join(LEVELS)}")
    path = resources.files("agents.relay").joinpath("templates", f"{kind}.{level}.tmpl")
    return parse_template(kind, level, path.read_text("utf-8"))


def extract(tagged: str) -> Extracted:
    """FIG. 5 (A)→(C): the text of each tagged item of ``tagged``.

    An item is an element whose name starts with a capital and is not an HTML element
    (``<Total>``, not ``<TD>``). Its value is its text with inner markup removed, entities
    decoded and the ends stripped. An element holding items (``<Item><Product>…</Product>
    </Item>``) gives one dict of them per element, in order; such groups nest one level (deeper
    items join the outer group). The first occurrence of a name wins. Comments, scripts and
    styles are not read, and nothing outside tagged items is kept (R22).
    """
    source = _RAW_TEXT.sub("", _COMMENT.sub("", tagged))
    root: Extracted = {}
    # Open items, innermost last: (name, where its text starts, the items found inside it).
    stack: list[tuple[str, int, Row]] = []
    for tag in _TAG.finditer(source):
        closing, name, self_closing = tag.groups()
        if self_closing or not _is_item(name):
            continue
        if not closing:
            stack.append((name, tag.end(), {}))
            continue
        depth = next((i for i in range(len(stack) - 1, -1, -1) if stack[i][0] == name), None)
        if depth is None:
            continue  # a stray end tag
        del stack[depth + 1:]  # items opened inside and never closed are dropped
        _, start, children = stack.pop()
        if children:
            if stack:
                for key, value in children.items():
                    stack[-1][2].setdefault(key, value)
            else:
                group = root.setdefault(name, [])
                if isinstance(group, list):
                    group.append(children)
            continue
        text = html.unescape(_ANY_TAG.sub("", source[start:tag.start()])).strip()
        if stack:
            stack[-1][2].setdefault(name, text)
        else:
            root.setdefault(name, text)
    return root


def _is_item(name: str) -> bool:
    return bool(_ITEM_NAME.fullmatch(name)) and name.lower() not in _HTML_ELEMENTS


def check_required(template: Template, items: Mapping[str, Value]) -> None:
    """Raise MissingItem unless every item ``template`` requires is there and not empty."""
    missing = tuple(name for name in template.required if not _present(items.get(name)))
    if missing:
        raise MissingItem(template.kind, missing)


def _present(value: Value | None) -> bool:
    return bool(value.strip()) if isinstance(value, str) else bool(value)


def fill(template: Template, items: Mapping[str, Value]) -> str:
    """FIG. 5 (C): ``template`` with each ``&X&`` replaced by item X, HTML-escaped.

    Optional items that are missing come out empty (and a line left with nothing but empty
    items is dropped); blocks repeat per element of their group.

    Raises:
        MissingItem: a required item is missing or empty (R23).
    """
    check_required(template, items)
    out: list[str] = []
    for part in template.body:
        if isinstance(part, Block):
            group = items.get(part.name)
            for row in group if isinstance(group, list) else []:
                out.extend(filled for line in part.lines
                           if (filled := _fill_line(line, row)) is not None)
        elif (filled := _fill_line(part, items)) is not None:
            out.append(filled)
    return "\n".join(out)


def _fill_line(line: str, values: Mapping[str, Value]) -> str | None:
    """One line with its placeholders replaced; None if it had some and all were empty."""
    seen = shown = False

    def value_of(m: re.Match[str]) -> str:
        nonlocal seen, shown
        value = values.get(m.group(1))
        text = value if isinstance(value, str) else ""
        seen, shown = True, shown or bool(text.strip())
        # One pass, escaped: a value can neither add markup nor name another placeholder.
        return html.escape(text)

    filled = _PLACEHOLDER.sub(value_of, line)
    return None if seen and not shown else filled
