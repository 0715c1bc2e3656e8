"""A simulated limited terminal (a phone's or game machine's browser) for the relay flows of
seeds 000/001: an aiohttp client that reads pages as such a browser does — forms, hidden
strings, "next" links of divided pages — and presses buttons. Used by ``kessai demo relay``
and the end-to-end tests; it keeps no cookies, like the terminals the relay serves.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from types import TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from kessai.errors import KessaiError

_TAGS = re.compile(r"<[^>]*>")
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_SPACE = re.compile(r"\s+")
_MARKER = re.compile(r"<!--kessai-session:([A-Za-z0-9._-]+)-->")
_KINDS = {"/login": "login", "/conditions": "conditions", "/approve": "confirming",
          "/select-wallet": "wallet-selection", "/confirm": "payment-request",
          "/inquire": "progress", "/enrol": "enrol"}


class PhoneError(KessaiError):
    """The simulated terminal cannot go on (no such form, an unexpected page)."""

    code = "phone"


@dataclass
class Form:
    action: str
    method: str = "get"
    hidden: dict[str, str] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)  # text and password inputs
    selects: dict[str, list[str]] = field(default_factory=dict)
    buttons: list[tuple[str, str, str]] = field(default_factory=list)  # (label, name, value)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.links: dict[str, str] = {}  # link text → href
        self._form: Form | None = None
        self._select: str | None = None
        self._button: tuple[str, str] | None = None
        self._text: list[str] = []
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form = Form(a.get("action", ""), (a.get("method") or "get").lower())
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None:
            if a.get("type", "text") == "hidden":
                self._form.hidden[a.get("name", "")] = a.get("value", "")
            elif a.get("name"):
                self._form.inputs.append(a["name"])
        elif tag == "select" and self._form is not None:
            self._select = a.get("name", "")
            self._form.selects[self._select] = []
        elif tag == "option" and self._form is not None and self._select is not None:
            self._form.selects[self._select].append(a.get("value", ""))
        elif tag == "button" and self._form is not None:
            self._button = (a.get("name", ""), a.get("value", ""))
            self._text = []
        elif tag == "a":
            self._href, self._text = a.get("href", ""), []

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "button" and self._form is not None and self._button is not None:
            self._form.buttons.append(("".join(self._text).strip(), *self._button))
            self._button = None
        elif tag == "a" and self._href is not None:
            self.links["".join(self._text).strip()] = self._href
            self._href = None

    def handle_data(self, data: str) -> None:
        self._text.append(data)


@dataclass
class Screen:
    """One page as the terminal got it."""

    url: str
    status: int
    html: str
    forms: list[Form]
    links: dict[str, str]
    page: str = ""  # what the relay says the page is (its X-Kessai-Page header), if it does

    @property
    def text(self) -> str:
        """The visible text (what a small browser shows), white space folded."""
        return _SPACE.sub(" ", html.unescape(_TAGS.sub(" ", _COMMENT.sub("", self.html)))).strip()

    @property
    def token(self) -> str:
        m = _MARKER.search(self.html)
        return m.group(1) if m else ""

    @property
    def kind(self) -> str:
        """A guess at what the page is, from the relay path its forms post to."""
        for form in self.forms:
            path = urlsplit(form.action).path
            if path in _KINDS:
                return _KINDS[path]
        return "page"

    def form(self, path: str) -> Form | None:
        return next((f for f in self.forms if urlsplit(f.action).path == path), None)


@dataclass
class Exchange:
    """One HTTP exchange, for printing the journey."""

    at_ms: int
    method: str
    url: str
    status: int
    kind: str
    chars: int
    size: int


class Phone:
    """``async with Phone(profile) as phone``: one terminal session, no cookies."""

    def __init__(self, profile: str = "phone", *, timeout_s: float = 60.0) -> None:
        self.profile = profile
        self.timeout_s = timeout_s
        self.screen: Screen | None = None
        self.screens: list[Screen] = []
        self.exchanges: list[Exchange] = []
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Phone:
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            cookie_jar=aiohttp.DummyCookieJar())  # a limited terminal keeps no cookies
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._http is not None:
            await self._http.close()

    async def get(self, url: str) -> Screen:
        return await self._go("GET", url)

    async def post(self, url: str, data: dict[str, str]) -> Screen:
        return await self._go("POST", url, data)

    async def _go(self, method: str, url: str, data: dict[str, str] | None = None) -> Screen:
        assert self._http is not None, "use 'async with Phone()'"
        async with self._http.request(method, url, data=data) as response:
            body = await response.text()
            final = str(response.url)
            status = response.status
            page = response.headers.get("X-Kessai-Page", "")
        reader = _Reader()
        reader.feed(body)
        screen = Screen(final, status, body, reader.forms, reader.links, page)
        self.screen = screen
        self.screens.append(screen)
        self.exchanges.append(Exchange(time.time_ns() // 1_000_000, method,
                                       urlsplit(url).path, status, page or screen.kind,
                                       len(screen.text), len(body.encode())))
        return screen

    async def follow(self, link_text: str) -> Screen:
        assert self.screen is not None
        href = self.screen.links.get(link_text)
        if href is None:
            raise PhoneError(f"no link {link_text!r} on the page")
        return await self.get(urljoin(self.screen.url, href))

    async def find_form(self, path: str) -> Form:
        """The form posting to ``path``: on this page, or on a following page of divided
        contents (the relay puts the actions on the last page, R24)."""
        assert self.screen is not None
        for _ in range(20):
            found = self.screen.form(path)
            if found is not None:
                return found
            if "next" not in self.screen.links:
                break
            await self.follow("next")
        raise PhoneError(f"no form for {path} on the page ({self.screen.text[:120]!r})")

    async def submit(self, path: str, values: dict[str, str] | None = None, *,
                     button: str | None = None) -> Screen:
        """Fill and press the form that posts to ``path``; selects keep their first option
        unless ``values`` says otherwise; ``button`` picks a named button by its value."""
        form = await self.find_form(path)
        assert self.screen is not None
        data = dict(form.hidden)
        data.update({name: options[0] for name, options in form.selects.items() if options})
        if button is not None:
            named = [b for b in form.buttons if b[2] == button]
            if not named:
                raise PhoneError(f"no button {button!r} in the form for {path}")
            data[named[0][1]] = named[0][2]
        data.update(values or {})
        target = urljoin(self.screen.url, form.action)
        if form.method == "post":
            return await self.post(target, data)
        return await self._go("GET", target + "?" + "&".join(f"{k}={v}" for k, v in data.items()))

    async def inquire_until(self, done: Any, *, timeout_s: float = 60.0,
                            pause_s: float = 0.5) -> Screen:
        """Press the inquiry button until ``done(screen)`` (claim 11), or time out."""
        deadline = time.monotonic() + timeout_s
        assert self.screen is not None
        while not done(self.screen):
            if time.monotonic() > deadline:
                raise PhoneError(f"no result within {timeout_s}s: {self.screen.text[:120]!r}")
            await asyncio.sleep(pause_s)
            await self.submit("/inquire")
        return self.screen

    # -- a whole purchase -------------------------------------------------------------------

    async def shop_for(self, shop_url: str, shop_id: str,
                       items: list[tuple[str, int]]) -> Screen:
        """① browse the shop and put ``items`` in the cart; ② open the confirm page."""
        await self.get(f"{shop_url}/{shop_id}/?profile={self.profile}")
        for code, qty in items:
            if self.screen is not None and "More products" in self.screen.links:
                await self.follow("More products")
            await self._add(code, qty)
        return await self.follow("Confirm")

    async def _add(self, code: str, qty: int) -> None:
        assert self.screen is not None
        form = next((f for f in self.screen.forms if f.hidden.get("product") == code), None)
        if form is None:
            raise PhoneError(f"the shop does not list {code}")
        data = {**form.hidden, "qty": str(qty)}
        await self.post(urljoin(self.screen.url, form.action), data)
