"""The user's prompts as a page (seed 004 M2/M11/M12): choose a module, choose a slave, type a
slave's address. Served by the selector worker (``KESSAI_SELECTOR_PORT``, default 8480, on
loopback); the selector hears every prompt for its clients (its own and their master server
wallets') on ``kessai.selector.prompts`` and the answer goes back, signed by the selector, to
whoever asked: ``kessai.selector.replies`` or ``kessai.wallet.replies``.

Pure parts: :func:`render` (the page) and :func:`parse_answer` (a submitted form → a
``PromptReply``, or why not). What the user types is never trusted here: the selector and the
master check the answer against what they offered (and the allow-list) before acting.

Open prompts are held durably: the changelog-backed ``selector-prompts`` table, written as
each prompt is read and cleared by the asker's next routing event for that wake-up (it chose,
or it gave up: a timeout, a cancel), so a selector worker restarted with a prompt open
(even after kill -9) serves the prompt again from the rebuilt table, and the answer given
on it is honoured once — whoever asked holds its own state and acts on one reply only.
A prompt answered on the page is hidden at once; if the asker refuses the answer it asks
again, and the page shows the question again.

[IMPL] With several selector workers, a client's page must be opened on the worker that owns
the client's partition (the table follows partitions).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from html import escape

import msgpack
from aiohttp import web

from kessai import http
from kessai.errors import ConfigError
from kessai.runtime import AgentContext, Inbound
from schemas.codec import from_body, to_body
from schemas.selector import Prompt, PromptReply, RoutingEvent
from topics.catalogue import CLIENT_PARTITIONS

log = logging.getLogger("kessai.selector")

PROMPTS = "kessai.selector.prompts"
ROUTING_EVENTS = "kessai.selector.routing-events"
TABLE = "selector-prompts"
# A routing event whose reason starts so is the asking itself (the selector's and the
# master's): it does not close the prompt; any other event of the asker for the wake-up does.
ASKED = "asked the user"
REPLY_TO = {"selector": "kessai.selector.replies"}
WALLET_REPLIES = "kessai.wallet.replies"
DEFAULT_PORT = 8480
MAX_ADDRESS = 200

QUESTION = {"module": "Which wallet should pay?", "slave": "Which server wallet should pay "
            "instead of your master wallet?", "address": "Your master wallet cannot pay with "
            "this brand. Type the address of the server wallet that can:"}


def render(client: str, prompts: list[Prompt], now_ms: int, notice: str = "") -> str:
    """The client's open prompts, one form each (a radio button per candidate, or an address
    field), plus a Cancel button."""
    rows = []
    for p in prompts:
        if p.deadline_ms <= now_ms:
            continue
        hidden = (f'<input type="hidden" name="wakeup_id" value="{escape(p.wakeup_id)}">'
                  f'<input type="hidden" name="client" value="{escape(client)}">'
                  f'<input type="hidden" name="asked_by" value="{escape(p.asked_by)}">')
        if p.kind == "address":
            field_html = ('<label>Address <input name="choice" id="address" '
                          f'maxlength="{MAX_ADDRESS}" required></label>')
        else:
            field_html = "".join(
                f'<label><input type="radio" name="choice" value="{escape(c)}" '
                f'id="choice-{escape(c)}" required> {escape(c)}</label><br>'
                for c in p.candidates)
        seconds = max(0, (p.deadline_ms - now_ms) // 1000)
        rows.append(
            f'<section class="prompt" data-wakeup="{escape(p.wakeup_id)}">'
            f"<h2>{escape(QUESTION[p.kind])}</h2><p>Payment {escape(p.wakeup_id)} — "
            f"asked by {escape(p.asked_by)}, {seconds} s left</p>"
            f'<form method="post" action="/answer">{hidden}{field_html}'
            '<button type="submit" name="action" value="answer">Pay with this</button> '
            '<button type="submit" name="action" value="cancel" formnovalidate>Cancel'
            "</button></form></section>")
    body = "".join(rows) or "<p id=\"none\">Nothing to choose right now.</p>"
    note = f'<p id="notice">{escape(notice)}</p>' if notice else ""
    return ("<!doctype html><html><head><meta charset=\"utf-8\"><title>kessai — your wallets"
            f"</title></head><body><h1>Wallets of {escape(client)}</h1>{note}{body}"
            "</body></html>")


@dataclass(frozen=True)
class Answer:
    topic: str
    reply: PromptReply


def parse_answer(form: Mapping[str, str], open_prompts: Mapping[str, Prompt]) -> Answer | str:
    """The reply a submitted form makes, or what is wrong with it (shown to the user)."""
    wakeup_id, client = form.get("wakeup_id", ""), form.get("client", "")
    prompt = open_prompts.get(wakeup_id)
    if prompt is None or prompt.client_id != client:
        return "That question is no longer open."
    topic = REPLY_TO.get(prompt.asked_by, WALLET_REPLIES)
    if form.get("action") == "cancel":
        return Answer(topic, PromptReply(wakeup_id, client, cancel=True))
    choice = form.get("choice", "").strip()
    if not choice or len(choice) > MAX_ADDRESS:
        return "Please choose (or type) one."
    return Answer(topic, PromptReply(wakeup_id, client, choice))


def _key(kind: str, client: str, wakeup_id: str) -> bytes:
    return "\x1f".join((kind, client, wakeup_id)).encode()


@dataclass
class Console:
    ctx: AgentContext
    clients: frozenset[str]
    # Open prompts ("o", client, wake-up → its latest prompt) and closed wake-ups ("c", …),
    # changelog-backed, keyed under the client like every selector record. A closed mark
    # keeps a prompt redelivered after a crash from opening again once its wake-up is routed.
    table: MutableMapping[bytes, bytes] = field(default_factory=dict)
    answered: set[str] = field(default_factory=set)  # answered here, not yet closed

    async def on_prompt(self, inbound: Inbound) -> None:
        prompt: Prompt = inbound.message
        if prompt.client_id not in self.clients or \
                _key("c", prompt.client_id, prompt.wakeup_id) in self.table:
            return
        self.table[_key("o", prompt.client_id, prompt.wakeup_id)] = msgpack.packb(
            to_body(prompt), use_bin_type=True)
        self.answered.discard(prompt.wakeup_id)  # asked (again): show it

    async def on_routing_event(self, inbound: Inbound) -> None:
        event: RoutingEvent = inbound.message
        if event.client_id not in self.clients or event.reason.startswith(ASKED):
            return
        opened = self.table.get(_key("o", event.client_id, event.wakeup_id))
        if opened is not None and \
                msgpack.unpackb(opened, raw=False).get("asked_by") != event.decided_by:
            return  # another party's decision about the same wake-up
        self.table[_key("c", event.client_id, event.wakeup_id)] = b"1"
        self.table.pop(_key("o", event.client_id, event.wakeup_id), None)
        self.answered.discard(event.wakeup_id)

    @property
    def open(self) -> dict[str, Prompt]:
        """Every open prompt this worker holds, by wake-up id."""
        out: dict[str, Prompt] = {}
        for key, raw in list(self.table.items()):
            if key.startswith(b"o\x1f"):
                prompt = from_body(Prompt, msgpack.unpackb(raw, raw=False))
                if prompt.wakeup_id not in self.answered:
                    out[prompt.wakeup_id] = prompt
        return out

    def of(self, client: str) -> list[Prompt]:
        return [p for p in self.open.values() if p.client_id == client]

    async def page(self, request: web.Request) -> web.Response:
        client = request.query.get("client", "")
        if client not in self.clients:
            return web.Response(status=404, text="no such client")
        return web.Response(text=render(client, self.of(client), self.ctx.clock.now_ms()),
                            content_type="text/html")

    async def answer(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        got = parse_answer(form, self.open)
        client = form.get("client", "")
        if isinstance(got, str):
            notice = got
        else:
            await self.ctx.emit(got.topic, got.reply, got.reply.wakeup_id, key=client,
                                sender="selector")
            self.answered.add(got.reply.wakeup_id)
            notice = "Cancelled." if got.reply.cancel else f"Sent: {got.reply.choice}."
        if client not in self.clients:
            return web.Response(status=404, text="no such client")
        return web.Response(text=render(client, self.of(client), self.ctx.clock.now_ms(),
                                        notice), content_type="text/html")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/prompts", self.page)
        app.router.add_post("/answer", self.answer)
        return app


def port_from_env() -> int:
    raw = os.environ.get("KESSAI_SELECTOR_PORT", str(DEFAULT_PORT))
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(f"KESSAI_SELECTOR_PORT must be a port number, not {raw!r}")
    return int(raw)


def register(ctx: AgentContext, clients: frozenset[str], *, serve: bool = True) -> Console:
    """Declare the console's handler; serve its page when the worker starts (``serve``)."""
    console = Console(ctx, clients, ctx.table(TABLE, partitions=CLIENT_PARTITIONS))
    ctx.handle(PROMPTS, console.on_prompt, types=(Prompt,), senders=("selector", "wallet"))
    ctx.handle(ROUTING_EVENTS, console.on_routing_event, types=(RoutingEvent,),
               senders=("selector", "wum", "wallet"))
    if serve:
        async def nothing() -> None:
            return None

        http.serve(ctx, console.app(), "127.0.0.1", port_from_env(), "selector console",
                   on_stopped=nothing)
    return console
