"""The pages the relay serves to terminals: contents producing section 42 (FIG. 5–7; claims 4–7,
11, 13, 14; spec R18–R28, R30–R34).

Pure: contents, a profile and the session token in, HTML pages out. Every page keeps these
rules:

- every link and form target is a relay path (R26): ``Action`` refuses any other, and
  pass-through contents lose links that leave the relay;
- every page carries the session token as a hidden, non-displayed string (FIG. 6 ②, R28): a
  ``<!--kessai-session:TOKEN-->`` marker, and ``<input type="hidden" name="s">`` in each form.
  Never the wallet's raw cookie;
- a page is within the profile's characters and bytes, or is divided into pages that are
  (R24), with previous/next links to ``/page?s=TOKEN&p=N`` and the actions on the last page;
- images are dropped for terminals without full gray levels (R25);
- values are shown as the contents hold them: the amount is the source ``<Total>`` text (R27).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

from agents.relay.profiles import Profile, template_level
from agents.relay.templates import Extracted, check_required, extract, fill, load_template
from kessai.errors import ConfigError

SESSION_FIELD = "s"
MARKER_PREFIX = "kessai-session:"
PAGE_PATH = "/page"
INQUIRE_PATH = "/inquire"
SELECT_WALLET_PATH = "/select-wallet"
WALLET_FIELD = "wallet"
FULL_GRAY_LEVELS = 256  # 8-bit gray: terminals with fewer shades get no images (R25)
INPUT_KINDS = ("text", "password", "select")

_RELAY_PATH = re.compile(r"/(?![/\\])[^\s\\]*")
_TOKEN = re.compile(r"[A-Za-z0-9._-]+")  # sessions.new_token's alphabet: safe in comments
_IMG = re.compile(r"<img\b[^>]*>", re.I)
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_TAGS = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
_BODY = re.compile(r"<body\b[^>]*>(.*?)(?:</body\s*>|$)", re.S | re.I)
_DROP_ELEMENTS = re.compile(
    r"<(head|script|style|form|iframe|object|noscript|frameset|textarea|select)\b.*?</\1\s*>",
    re.S | re.I)
_DROP_TAGS = re.compile(
    r"</?(html|head|body|meta|link|base|embed|frame|form|input|button)\b[^>]*>", re.I)
_TARGET_ATTR = re.compile(r"""\s(href|action|formaction)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""", re.I)
_SRC_ATTR = re.compile(r"""\ssrc\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""", re.I)
_LONG_NUMBER = re.compile(r"\d(?:[ -]?\d){11,18}")


class ForeignTarget(ConfigError):
    """An action that would send the terminal somewhere other than the relay (R26)."""

    code = "foreign_target"


class PageTooSmall(ConfigError):
    """A profile too small to hold even one action or one character of contents."""

    code = "page_too_small"


def is_relay_path(target: str) -> bool:
    """True for a path on the relay itself: ``/x``, not ``//host/x``, ``http:…`` or ``x``."""
    return bool(_RELAY_PATH.fullmatch(target))


def page_path(session_token: str, n: int) -> str:
    """The relay path of page ``n`` of the session's current contents (R24)."""
    return f"{PAGE_PATH}?{urlencode({SESSION_FIELD: session_token, 'p': n})}"


@dataclass(frozen=True)
class Input:
    """A field the user fills in. ``options`` are (value, label) pairs for kind "select".
    Inputs never carry a value, so a page can never hold a typed password."""

    name: str
    label: str
    kind: str = "text"
    options: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in INPUT_KINDS:
            raise ConfigError(f"input kind must be one of {INPUT_KINDS}, got {self.kind!r}")
        if self.kind == "select" and not self.options:
            raise ConfigError(f"select input {self.name!r} needs options")
        if not self.name or self.name == SESSION_FIELD:
            raise ConfigError(f"an input cannot be called {self.name!r}")


@dataclass(frozen=True)
class Action:
    """A button that posts ``fields`` and ``inputs`` to ``path`` on the relay (R26)."""

    label: str
    path: str
    fields: dict[str, str] = field(default_factory=dict)
    inputs: tuple[Input, ...] = ()

    def __post_init__(self) -> None:
        if not is_relay_path(self.path):
            raise ForeignTarget(f"an action must post to a relay path like /approve, got "
                                f"{self.path!r} (R26)")
        if SESSION_FIELD in self.fields:
            raise ConfigError(f"field {SESSION_FIELD!r} is the session string; the page adds it")


@dataclass(frozen=True)
class Page:
    html: str
    index: int  # 1-based
    total: int


# -- the pages ----------------------------------------------------------------------------------

def convert(kind: str, source_html: str, profile: Profile, *, txn_id: str, session_token: str,
            actions: list[Action], title: str = "") -> list[Page]:
    """Contents from the wallet or CA → the pages for a terminal (R18–R27).

    A PC-class profile gets the contents themselves when they fit (links off the relay, forms,
    scripts and comments removed). Otherwise the items of the contents fill the template for
    ``kind`` at the profile's level, and pages are divided when the result is still too big.
    ``txn_id`` stands in for a ``<TxnId>`` the contents do not hold (claim 7); ``title``
    replaces the template's.

    Raises:
        MissingItem: the contents lack an item the template requires (R23), also when passing
            through: no confirming page goes out without its amount.
        UnknownTemplate: no template for ``kind``.
        PageTooSmall: the profile cannot hold one of the actions.
    """
    _check_token(session_token)
    template = load_template(kind, template_level(profile))
    items: Extracted = extract(source_html)
    shown_id = items.get("TxnId")
    if txn_id and not (isinstance(shown_id, str) and shown_id.strip()):
        items["TxnId"] = txn_id
    check_required(template, items)
    title = title or template.title
    forms = [_form(a, session_token) for a in actions]
    if profile.full_html:
        whole = _page(title, session_token, [_passable(source_html, profile), *forms])
        if _fits(whole, profile):
            return [Page(whole, 1, 1)]
    return _paginate(fill(template, items).splitlines(), forms, profile, token=session_token,
                     title=title)


def progress_page(profile: Profile, *, txn_id: str, session_token: str,
                  auto_refresh_s: int | None) -> Page:
    """The inquiry screen of FIG. 4 (claim 11, R30, R31): progress and an inquiry button that
    posts to ``/inquire``; with ``auto_refresh_s`` the browser also asks by itself
    ([d:238-240]) with ``GET /inquire?s=TOKEN``.

    Raises:
        ConfigError: ``auto_refresh_s`` below 1.
        PageTooSmall: the profile cannot hold the page.
    """
    _check_token(session_token)
    head = ""
    if auto_refresh_s is not None:
        if auto_refresh_s < 1:
            raise ConfigError(f"auto refresh must be at least 1 second, got {auto_refresh_s}")
        url = f"{INQUIRE_PATH}?{urlencode({SESSION_FIELD: session_token})}"
        head = f'<meta http-equiv="refresh" content="{auto_refresh_s};url={html.escape(url)}">'
    template = load_template("progress", template_level(profile))
    pages = _paginate(fill(template, {"TxnId": txn_id}).splitlines(),
                      [_form(Action("Check progress", INQUIRE_PATH), session_token)], profile,
                      token=session_token, title=template.title, head=head)
    if len(pages) != 1:
        raise PageTooSmall(f"profile {profile.name!r} cannot hold the progress page")
    return pages[0]


def wallet_selection_page(profile: Profile, *, txn_id: str, session_token: str,
                          wallets: list[tuple[str, str]]) -> list[Page]:
    """FIG. 7 (A), claim 14, R34: one button per wallet server the shop designated, each
    posting ``wallet=<id>`` to ``/select-wallet``; ``wallets`` are (id, label) pairs, and no
    other wallet appears. Summarized and divided like other contents.

    Raises:
        ConfigError: no wallet to choose from.
    """
    _check_token(session_token)
    chosen: dict[str, str] = {}
    for wallet_id, label in wallets:
        chosen.setdefault(wallet_id, label)  # one button per id, in the order given
    if not chosen:
        raise ConfigError("no designated wallet server to choose from (R34)")
    actions = [Action(label or wallet_id, SELECT_WALLET_PATH, {WALLET_FIELD: wallet_id})
               for wallet_id, label in chosen.items()]
    template = load_template("wallet-selection", template_level(profile))
    body = fill(template, {"TxnId": txn_id, "Count": str(len(actions))})
    return _paginate(body.splitlines(), [_form(a, session_token) for a in actions], profile,
                     token=session_token, title=template.title)


def error_page(profile: Profile, message: str, *, session_token: str = "") -> Page:
    """A clear answer for the terminal when the relay cannot go on (R47): unknown profile,
    missing item, expired or forged session, undesignated wallet, …

    Never raises for a long message: it is shortened to fit. Long digit runs that could be a
    card or account number are withheld (R43).
    """
    # A malformed session string is left out rather than refused: this page must go out.
    token = session_token if _TOKEN.fullmatch(session_token) else ""
    template = load_template("error", template_level(profile))
    text = _LONG_NUMBER.sub("[number withheld]", message)

    def render(shown: str) -> str:
        return _page(template.title, token, fill(template, {"Message": shown}).splitlines())

    whole = render(text)
    if _fits(whole, profile):
        return Page(whole, 1, 1)
    keep = _longest(len(text), lambda k: _fits(render(text[:k] + "…"), profile))
    return Page(render(text[:keep] + "…" if keep else ""), 1, 1)


# -- building and measuring ---------------------------------------------------------------------

def _check_token(token: str) -> None:
    # The token goes into an attribute, a comment and a query: only its own alphabet may.
    if not _TOKEN.fullmatch(token):
        raise ConfigError("a page needs the session string the relay issued")


def _page(title: str, token: str, parts: Sequence[str], *, nav: str = "", head: str = "") -> str:
    marker = f"<!--{MARKER_PREFIX}{token}-->\n" if token else ""
    lines = [*parts, nav] if nav else list(parts)
    return (f'<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>{head}'
            f"</head><body>\n{marker}" + "\n".join(lines) + "\n</body></html>")


def _form(action: Action, token: str) -> str:
    e = html.escape
    hidden = [(SESSION_FIELD, token), *action.fields.items()]
    parts = [f'<form method="post" action="{e(action.path)}">']
    parts += [f'<input type="hidden" name="{e(k)}" value="{e(v)}">' for k, v in hidden]
    parts += [_input(i) for i in action.inputs]
    parts.append(f'<button type="submit">{e(action.label)}</button></form>')
    return "".join(parts)


def _input(field_: Input) -> str:
    e = html.escape
    if field_.kind == "select":
        options = "".join(f'<option value="{e(v)}">{e(label)}</option>'
                          for v, label in field_.options)
        control = f'<select name="{e(field_.name)}">{options}</select>'
    else:
        control = f'<input type="{field_.kind}" name="{e(field_.name)}">'
    return f"<label>{e(field_.label)} {control}</label><br>"


def _nav(token: str, index: int, total: int, *, previous: bool, following: bool) -> str:
    parts = [f'<a href="{html.escape(page_path(token, index - 1))}">previous</a>'] \
        if previous else []
    parts.append(f"{index}/{total}")
    if following:
        parts.append(f'<a href="{html.escape(page_path(token, index + 1))}">next</a>')
    return "<p>" + " ".join(parts) + "</p>"


def visible_chars(page_html: str) -> int:
    """Characters a browser shows: text outside tags and comments, entities decoded, runs of
    white space counted once. The title counts too; small browsers show it."""
    text = _TAGS.sub(" ", _COMMENT.sub("", page_html))
    return len(_SPACE.sub(" ", html.unescape(text)).strip())


def _fits(page_html: str, profile: Profile) -> bool:
    return (len(page_html.encode()) <= profile.max_content_bytes
            and visible_chars(page_html) <= profile.max_chars)


def _passable(source: str, profile: Profile) -> str:
    """The wallet's own contents, made safe to pass through (R20, R26, R28): only the body;
    no comments (a forged session marker), scripts, forms, meta tags (a Set-Cookie) or
    frames; no link, and no image, that leaves the relay: the terminal talks to the relay only
    (R1)."""
    body = _BODY.search(source)
    text = _COMMENT.sub("", body.group(1) if body else source)
    text = _DROP_TAGS.sub("", _DROP_ELEMENTS.sub("", text))

    def keep_relay(m: re.Match[str]) -> str:
        return m.group(0) if is_relay_path(html.unescape(m.group(2).strip("\"'"))) else ""

    def relay_image(m: re.Match[str]) -> str:
        src = _SRC_ATTR.search(m.group(0))
        return m.group(0) if src and is_relay_path(html.unescape(src.group(1).strip("\"'"))) \
            else ""

    text = _IMG.sub(relay_image, _TARGET_ATTR.sub(keep_relay, text))
    return _drop_images(text.strip(), profile)


def _drop_images(text: str, profile: Profile) -> str:
    return _IMG.sub("", text) if profile.max_gray_levels < FULL_GRAY_LEVELS else text


# -- dividing (R24) -----------------------------------------------------------------------------

def _paginate(lines: list[str], forms: list[str], profile: Profile, *, token: str, title: str,
              head: str = "") -> list[Page]:
    """Lines and forms as one page if it fits, else divided between lines, in order, each page
    within the limits, with the forms kept together on the last page when they fit one."""
    lines = [kept for line in lines if (kept := _drop_images(line, profile).strip())]
    whole = _page(title, token, [*lines, *forms], head=head)
    if _fits(whole, profile):
        return [Page(whole, 1, 1)]
    digits = 1
    while True:
        # Pack against the widest navigation these page numbers can need, so the real one fits.
        widest = 10**digits - 1
        reserve = _nav(token, widest, widest, previous=True, following=True)
        chunks = _pack(lines, forms, _fitter(profile, title, token, reserve, head))
        if len(str(len(chunks))) <= digits:
            break
        digits += 1
    total = len(chunks)
    return [Page(_page(title, token, chunk, head=head,
                       nav=_nav(token, i, total, previous=i > 1, following=i < total)), i, total)
            for i, chunk in enumerate(chunks, 1)]


def _fitter(profile: Profile, title: str, token: str, nav: str,
            head: str) -> Callable[[list[str]], bool]:
    def fits(parts: list[str]) -> bool:
        return _fits(_page(title, token, parts, nav=nav, head=head), profile)
    return fits


def _pack(lines: list[str], forms: list[str],
          fits: Callable[[list[str]], bool]) -> list[list[str]]:
    units = [u for line in lines for u in ([line] if fits([line]) else _divide(line, fits))]
    together = "\n".join(forms)
    if forms and fits([together]):
        units.append(together)
    else:
        for form in forms:
            if not fits([form]):
                raise PageTooSmall("an action does not fit on one page of this terminal")
            units.append(form)
    pages: list[list[str]] = [[]]
    for unit in units:
        if pages[-1] and not fits([*pages[-1], unit]):
            pages.append([])
        pages[-1].append(unit)  # every unit fits a page of its own
    return pages


def _divide(line: str, fits: Callable[[list[str]], bool]) -> list[str]:
    """A line too big for any page → paragraphs of its text that each fit, cut at a space
    where one is near."""
    text = _SPACE.sub(" ", html.unescape(_TAGS.sub(" ", line))).strip()
    out: list[str] = []
    while text:
        k = _longest(len(text), _prefix_fits(text, fits))
        if k == 0:
            raise PageTooSmall("not one character of contents fits a page of this terminal")
        space = text.rfind(" ", 0, k + 1) if k < len(text) else -1
        cut = space if space > k // 2 else k
        out.append(f"<p>{html.escape(text[:cut])}</p>")
        text = text[cut:].lstrip()
    return out


def _prefix_fits(text: str, fits: Callable[[list[str]], bool]) -> Callable[[int], bool]:
    return lambda n: fits([f"<p>{html.escape(text[:n])}</p>"])


def _longest(n: int, ok: Callable[[int], bool]) -> int:
    """The largest k in 0..n with ok(k), for ok true up to some k and false after."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo
