"""The shop and terminal handlers driven through a recording AgentContext, without a broker."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agents.shop import agent as shop_agent
from agents.shop.orders import OrderDB
from agents.terminal import agent as terminal_agent
from agents.terminal import wallet as terminal_wallet
from kessai import authenticators, envelope, keys
from kessai.clock import FakeClock
from kessai.runtime import AgentContext, Inbound, make_app
from kessai.settings import Settings
from kessai.worker import identities
from schemas.v1 import (
    FirstAccepted,
    InquiryAnswer,
    PaymentRequest,
    PaymentResult,
    PurchaseCommand,
)
from sim import devkeys
from sim.shop import Overcharging


@dataclass
class Rec(AgentContext):
    sent: list[tuple[str, Any, str, str]] = field(default_factory=list)
    dead: list[Any] = field(default_factory=list)

    async def emit(self, topic, msg, correlation_id, *, key=None, partition=None, sender=None,
                   trace_id=None):
        self.actor_keys(sender)
        self.sent.append((topic, msg, correlation_id, key or correlation_id))

    async def dead_letter(self, *a, **k):
        self.dead.append(a)

    def take(self, topic=None):
        out = [s for s in self.sent if topic is None or s[0] == topic]
        self.sent = [s for s in self.sent if not (topic is None or s[0] == topic)]
        return out


@pytest.fixture(scope="module")
def keydir(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    devkeys.init(d)
    return d


CLOCK = FakeClock()
_offset = [0]


def inbound(msg, sender_keys, topic="t", cid="c"):
    env = envelope.seal_envelope(msg, cid, sender_keys, CLOCK)
    opened = envelope.open_record(envelope.encode(env), keys.load_registry(KEYDIR[0]))
    _offset[0] += 1
    return Inbound(opened, topic, 0, _offset[0], cid.encode())


KEYDIR: list[Path] = []


def hosted(module, keydir):
    """The identities the module's worker would host in this key set."""
    return identities(module, keys.load_registry(keydir).signing)


def make(keydir, tmp_path, name, actors):
    KEYDIR[:] = [keydir]
    settings = Settings(keys_dir=keydir, data_dir=tmp_path)
    return Rec(name, make_app(name, settings), settings, keys.load_registry(keydir),
               {a: keys.load_actor(keydir, a) for a in actors}, clock=CLOCK)


async def deliver(term, term_ctx, msg, sender_keys):
    """A wake-up or a result to the terminal, through its re-keying by session onto
    kessai.terminal.sessions (the hop a real worker makes through the broker)."""
    first = term.on_wakeup if isinstance(msg, PaymentRequest) else term.on_result
    await first(inbound(msg, sender_keys))
    for _topic, fwd, _cid, key in term_ctx.take("kessai.terminal.sessions"):
        handler = (term.on_session_request if isinstance(fwd, PaymentRequest)
                   else term.on_session_result)
        await handler(inbound(fwd, term_ctx.keys["terminal"], cid=key))


def settle(keydir, second, outcome, recipient, mode):
    s = keys.load_actor(keydir, "settlement")
    amount = second.amount
    return PaymentResult(
        second.shop_id, second.order_id, second.session, recipient, outcome, amount, mode,
        shop_authenticator=authenticators.shop_authenticator(
            bytes.fromhex(s.secrets["shop_mac"][second.shop_id]), second.shop_id,
            second.order_id, outcome, amount),
        user_authenticator=authenticators.user_authenticator(
            bytes.fromhex(s.secrets["user_mac"][second.user_id]), second.shop_id,
            second.order_id, outcome, amount, second.session))


async def run_flow(keydir, tmp_path, scenario, cmd_kw=None, outcome="APPROVED"):
    shop_ctx = make(keydir, tmp_path, "shop", hosted(shop_agent, keydir))
    term_ctx = make(keydir, tmp_path, "terminal", hosted(terminal_agent, keydir))
    shop_agent.register(shop_ctx)
    terminal_agent.register(term_ctx)
    db = OrderDB(tmp_path / "shop.sqlite")
    shop = shop_agent.Shop(shop_ctx, db, shop_agent.PollPolicy(delay_ms=1000, limit=5))
    term = terminal_agent.Terminal(term_ctx)
    op = keys.load_actor(keydir, "operator")
    sk = keys.load_actor(keydir, "settlement")
    cmd = PurchaseCommand("sess-1", "alice", "shop-1", [["XXXX", 1], ["YYYY", 1]],
                          scenario=scenario, **(cmd_kw or {}))
    await term.on_command(inbound(cmd, op))
    (t, order_req, cid, _key), = term_ctx.take()
    assert t == "kessai.order-requests" and cid == "sess-1"
    oreq_in = inbound(order_req, term_ctx.keys["terminal"])
    await shop.on_order_request(oreq_in)
    out = shop_ctx.take()
    return shop_ctx, term_ctx, shop, term, out, oreq_in, sk


async def test_via_terminal_happy(keydir, tmp_path):
    shop_ctx, term_ctx, shop, term, out, oreq_in, sk = await run_flow(keydir, tmp_path, {})
    assert [o[0] for o in out] == ["kessai.settlement.first", "kessai.wakeups",
                                   "kessai.order-status"]
    first = out[0][1]
    assert first.amount.minor == 1155 and first.content is not None
    # redelivery: same first request body
    await shop.on_order_request(oreq_in)
    again = shop_ctx.take()
    assert again[0][1] == first
    pr = out[1][1]
    s1 = shop_ctx.keys["shop-1"]
    await deliver(term, term_ctx, pr, s1)
    (t, second, _cid, key), = term_ctx.take()
    assert t == "kessai.settlement.second" and key == f"shop-1/{pr.order_id}"
    await deliver(term, term_ctx, pr, s1)  # duplicate M4
    assert term_ctx.take() == []
    res = settle(keydir, second, "APPROVED", "user", "VIA_TERMINAL")
    await deliver(term, term_ctx, res, sk)
    await deliver(term, term_ctx, res, sk)
    relays = term_ctx.take()
    assert [r[0] for r in relays] == ["kessai.payment-results.relayed"]
    await shop.on_relayed_result(inbound(relays[0][1], term_ctx.keys["terminal"]))
    st = shop_ctx.take()
    assert [(x[0], x[1].status) for x in st] == [("kessai.order-status", "PAID")]
    await shop.on_relayed_result(inbound(relays[0][1], term_ctx.keys["terminal"]))
    assert shop_ctx.take() == []
    await shop.db.close()


async def test_forged_relay(keydir, tmp_path):
    shop_ctx, term_ctx, shop, term, out, _, sk = await run_flow(
        keydir, tmp_path, {}, {"forge_relay": True})
    pr = out[1][1]
    await deliver(term, term_ctx, pr, shop_ctx.keys["shop-1"])
    (_, second, _, _), = term_ctx.take()
    res = settle(keydir, second, "DECLINED", "user", "VIA_TERMINAL")
    await deliver(term, term_ctx, res, sk)
    (_, relay, _, _), = term_ctx.take()
    assert relay.outcome == "APPROVED"
    await shop.on_relayed_result(inbound(relay, term_ctx.keys["terminal"]))
    st = shop_ctx.take()
    assert [x[0] for x in st] == ["kessai.audit", "kessai.order-status"]
    assert st[1][1].status == "RESULT_REJECTED"
    await shop.db.close()


async def test_direct_both_acks(keydir, tmp_path):
    shop_ctx, term_ctx, shop, term, out, _, sk = await run_flow(
        keydir, tmp_path, {"result_mode": "DIRECT_BOTH", "hash": True})
    first = out[0][1]
    assert first.content is None and first.content_hash
    pr = out[1][1]
    await deliver(term, term_ctx, pr, shop_ctx.keys["shop-1"])
    (_, second, _, _), = term_ctx.take()
    res = settle(keydir, second, "APPROVED", "shop", "DIRECT_BOTH")
    for _ in range(2):
        await shop.on_payment_result(inbound(res, sk))
    got = shop_ctx.take()
    assert [(g[0], getattr(g[1], "status", "")) for g in got] == [
        ("kessai.order-status", "PAID"), ("kessai.payment-results.acks", ""),
        ("kessai.payment-results.acks", "")]
    # user copy: no relay in DIRECT_BOTH
    await deliver(term, term_ctx, settle(keydir, second, "APPROVED", "user", "DIRECT_BOTH"), sk)
    assert term_ctx.take() == []
    await shop.db.close()


async def test_settlement_assigned_and_polls(keydir, tmp_path):
    shop_ctx, _term_ctx, shop, _term, out, _, sk = await run_flow(
        keydir, tmp_path, {"result_mode": "SHOP_POLLS", "id_mode": "settlement"})
    assert [o[0] for o in out] == ["kessai.settlement.first"]
    first = out[0][1]
    assert first.order_id == "" and out[0][2] == f"shop-1/ref:{first.request_ref}"
    await shop.poll_due()
    assert shop_ctx.take() == []  # nothing to poll before the id
    ack = FirstAccepted("shop-1", first.request_ref, "S-42")
    await shop.on_first_accepted(inbound(ack, sk))
    got = shop_ctx.take()
    assert [g[0] for g in got] == ["kessai.wakeups", "kessai.order-status"]
    assert got[0][1].order_id == "S-42"
    await shop.poll_due()
    assert shop_ctx.take() == []
    CLOCK.advance(1000)
    await shop.poll_due()
    (t, _inq, cid, _), = shop_ctx.take()
    assert t == "kessai.result-inquiries" and cid == "shop-1/S-42"
    await shop.on_inquiry_answer(inbound(InquiryAnswer("shop-1", "S-42", "UNKNOWN_OR_EXPIRED"), sk))
    assert shop_ctx.take() == []
    CLOCK.advance(1000)
    await shop.poll_due()
    assert len(shop_ctx.take()) == 1
    await shop.on_inquiry_answer(inbound(InquiryAnswer("shop-1", "S-42", "APPROVED", got[0][1].amount), sk))
    st = shop_ctx.take()
    assert st[0][1].status == "PAID"
    CLOCK.advance(5000)
    await shop.poll_due()
    assert shop_ctx.take() == []
    await shop.db.close()


async def test_rejected_and_tamper(keydir, tmp_path):
    shop_ctx = make(keydir, tmp_path, "shop", hosted(shop_agent, keydir))
    shop = shop_agent.Shop(shop_ctx, OrderDB(tmp_path / "s.sqlite"), shop_agent.PollPolicy(),
                           statement=Overcharging())  # the simulator's dishonest shop
    from schemas.v1 import Delivery, OrderRequest
    term = keys.load_actor(keydir, "terminal")
    await shop.on_order_request(inbound(OrderRequest("s", "alice", "shop-1", [["NOPE", 1]], Delivery("a", "b", "c")), term))
    (_t, st, _cid, _), = shop_ctx.take()
    assert st.status == "NOT_PAID" and "NOPE" in st.detail
    await shop.on_order_request(inbound(OrderRequest("s", "alice", "shop-1", [["XXXX", 1], ["YYYY", 1]], Delivery("a", "b", "c"), {"shop_tamper": "amount"}), term))
    out = shop_ctx.take()
    assert out[0][1].amount.minor == 1255 and out[1][1].amount.minor == 1155
    await shop.on_order_request(inbound(OrderRequest("s", "alice", "shop-9", [["XXXX", 1]], Delivery("a", "b", "c")), term))
    assert [o[0] for o in shop_ctx.take()] == ["kessai.audit"]
    # operator may not place orders
    await shop.on_order_request(inbound(OrderRequest("s", "alice", "shop-1", [["XXXX", 1]], Delivery("a", "b", "c")), keys.load_actor(keydir, "operator")))
    assert [o[0] for o in shop_ctx.take()] == ["kessai.audit"]
    await shop.db.close()


async def test_the_production_shop_ignores_the_demo_tamper_knob(keydir, tmp_path):
    """shop_tamper is the simulator's (sim/shop.py); the shop a worker runs states the order."""
    from schemas.v1 import Delivery, OrderRequest
    shop_ctx = make(keydir, tmp_path, "shop", hosted(shop_agent, keydir))
    shop = shop_agent.Shop(shop_ctx, OrderDB(tmp_path / "h.sqlite"), shop_agent.PollPolicy())
    term = keys.load_actor(keydir, "terminal")
    await shop.on_order_request(inbound(OrderRequest("s", "alice", "shop-1", [["XXXX", 1], ["YYYY", 1]], Delivery("a", "b", "c"), {"shop_tamper": "amount"}), term))
    first, wakeup = shop_ctx.take()[:2]
    assert first[1].amount.minor == wakeup[1].amount.minor == 1155
    await shop.db.close()


async def test_order_id_collision(keydir, tmp_path, monkeypatch):
    from agents.shop import pricing
    real = pricing.order_id_for
    monkeypatch.setattr(pricing, "order_id_for",
                        lambda m, attempt=0: "1111111111" if attempt == 0 else real(m, attempt))
    shop_ctx = make(keydir, tmp_path, "shop", hosted(shop_agent, keydir))
    shop = shop_agent.Shop(shop_ctx, OrderDB(tmp_path / "c.sqlite"), shop_agent.PollPolicy())
    from schemas.v1 import Delivery, OrderRequest
    term = keys.load_actor(keydir, "terminal")
    a = inbound(OrderRequest("sa", "alice", "shop-1", [["XXXX", 1]], Delivery("a", "b", "c")), term)
    b = inbound(OrderRequest("sb", "bob", "shop-1", [["YYYY", 1]], Delivery("a", "b", "c")), term)
    await shop.on_order_request(a)
    ida = shop_ctx.take()[0][1].order_id
    await shop.on_order_request(b)
    idb = shop_ctx.take()[0][1].order_id
    await shop.on_order_request(b)  # redelivery
    idb2 = shop_ctx.take()[0][1].order_id
    assert ida == "1111111111" and idb != ida and idb == idb2
    await shop.db.close()


def restarted(term, term_ctx):
    """The terminal after a kill -9: nothing in memory but the table, which faust rebuilds
    from its changelog; this worker owns every partition."""
    term_ctx.active_partitions = lambda topic: {0, 1, 2, 3}
    return terminal_agent.Terminal(term_ctx, term.table, term.policy)


async def test_a_restarted_terminal_pays_and_relays_what_it_held(keydir, tmp_path):
    shop_ctx, term_ctx, shop, term, out, _, sk = await run_flow(
        keydir, tmp_path, {}, {"second_delay_ms": 3000})
    pr = out[1][1]
    await deliver(term, term_ctx, pr, shop_ctx.keys["shop-1"])
    assert term_ctx.take() == []  # the user is still thinking

    term = restarted(term, term_ctx)
    await term.scan()
    assert term_ctx.take() == []  # not due yet
    CLOCK.advance(3000)
    await term.scan()
    (topic, tick, _, key), = term_ctx.take()
    assert topic == "kessai.terminal.sessions" and key == "sess-1"
    await term.scan()
    assert term_ctx.take() == []  # a tick in flight is not sent again at once
    await term.on_tick(inbound(tick, term_ctx.keys["terminal"], cid=key))
    (topic, second, _, _), = term_ctx.take()
    assert topic == "kessai.settlement.second" and second.order_id == pr.order_id
    await term.on_tick(inbound(tick, term_ctx.keys["terminal"], cid=key))
    assert term_ctx.take() == []  # paid once

    term = restarted(term, term_ctx)
    await deliver(term, term_ctx, settle(keydir, second, "APPROVED", "user", "VIA_TERMINAL"), sk)
    (topic, relay, _, _), = term_ctx.take()
    assert topic == "kessai.payment-results.relayed" and relay.outcome == "APPROVED"
    await shop.db.close()


async def test_a_wakeup_for_a_session_no_device_holds_is_dropped_by_its_owner(keydir, tmp_path):
    shop_ctx, term_ctx, shop, term, out, _, _ = await run_flow(keydir, tmp_path, {})
    term = restarted(term, term_ctx)
    other = dataclasses.replace(out[1][1], session="sess-of-the-relay")
    await term.on_wakeup(inbound(other, shop_ctx.keys["shop-1"]))
    assert term_ctx.take() == []
    await shop.db.close()


async def test_the_shop_asks_the_history_when_the_terminal_stays_silent(keydir, tmp_path):
    shop_ctx, term_ctx, shop, term, out, _, sk = await run_flow(keydir, tmp_path, {})
    pr = out[1][1]
    await deliver(term, term_ctx, pr, shop_ctx.keys["shop-1"])
    (_, second, _, _), = term_ctx.take()
    key = f"shop-1/{pr.order_id}"
    await shop.poll_due()
    assert shop_ctx.take() == []  # the terminal still has time to relay

    await shop.db.close()  # the shop restarts: the deadline is in its order DB
    shop = shop_agent.Shop(shop_ctx, OrderDB(tmp_path / "shop.sqlite"), shop.poll)
    CLOCK.advance(shop.poll.result_wait_ms)
    await shop.poll_due()
    (topic, inquiry, cid, _), = shop_ctx.take()
    assert topic == "kessai.result-inquiries" and cid == key and inquiry.order_id == pr.order_id
    await shop.poll_due()
    assert shop_ctx.take() == []  # asked; the next inquiry waits for its interval

    await shop.on_inquiry_answer(inbound(InquiryAnswer("shop-1", pr.order_id, "PENDING"), sk))
    assert shop_ctx.take() == []
    CLOCK.advance(shop.poll.delay_ms)
    await shop.poll_due()
    assert [t for t, *_ in shop_ctx.take()] == ["kessai.result-inquiries"]

    answer = inbound(InquiryAnswer("shop-1", pr.order_id, "APPROVED", pr.amount), sk)
    await shop.on_inquiry_answer(answer)
    (topic, status, _, _), = shop_ctx.take()
    assert topic == "kessai.order-status" and (status.status, status.outcome) == (
        "PAID", "APPROVED")
    # The same answer redelivered after a crash announces again (the first announcement may
    # have died with the worker); any other answer or a late relay changes nothing.
    await shop.on_inquiry_answer(answer)
    assert [(t, m.status) for t, m, *_ in shop_ctx.take()] == [("kessai.order-status", "PAID")]
    await shop.on_inquiry_answer(inbound(InquiryAnswer("shop-1", pr.order_id, "APPROVED",
                                                       pr.amount), sk))
    relay = terminal_wallet.relay_of(settle(keydir, second, "APPROVED", "user", "VIA_TERMINAL"))
    await shop.on_relayed_result(inbound(relay, term_ctx.keys["terminal"]))
    assert shop_ctx.take() == []
    CLOCK.advance(600_000)
    await shop.poll_due()
    assert shop_ctx.take() == []  # a final order is not asked about
    await shop.db.close()


async def test_a_declined_order_the_terminal_never_relays_ends_not_paid(keydir, tmp_path):
    shop_ctx, _term_ctx, shop, _term, out, _, sk = await run_flow(keydir, tmp_path, {})
    pr = out[1][1]
    CLOCK.advance(shop.poll.result_wait_ms)
    await shop.poll_due()
    assert [t for t, *_ in shop_ctx.take()] == ["kessai.result-inquiries"]
    await shop.on_inquiry_answer(inbound(InquiryAnswer("shop-1", pr.order_id, "DECLINED",
                                                       pr.amount), sk))
    (_, status, _, _), = shop_ctx.take()
    assert (status.status, status.outcome) == ("NOT_PAID", "DECLINED")
    await shop.db.close()


async def test_an_order_request_sent_again_in_a_new_envelope_is_the_same_order(keydir, tmp_path):
    """A placer that handled its input again after a kill -9 re-sends its order request,
    signed anew (another message id): one session of one user stays one order, one wake-up.
    The same session string from another user is another order."""
    from schemas.v1 import Delivery, OrderRequest
    shop_ctx = make(keydir, tmp_path, "shop", hosted(shop_agent, keydir))
    shop = shop_agent.Shop(shop_ctx, OrderDB(tmp_path / "again.sqlite"), shop_agent.PollPolicy())
    term = keys.load_actor(keydir, "terminal")
    req = OrderRequest("sess-1", "alice", "shop-1", [["XXXX", 1]], Delivery("a", "b", "c"))
    try:
        ids = []
        for _ in range(2):
            await shop.on_order_request(inbound(req, term))  # a new envelope each time
            out = shop_ctx.take()
            ids.append({o[1].order_id for o in out if hasattr(o[1], "order_id")})
        assert ids[0] == ids[1] and len(ids[0]) == 1
        await shop.on_order_request(inbound(dataclasses.replace(req, user_id="bob"), term))
        other = {o[1].order_id for o in shop_ctx.take() if hasattr(o[1], "order_id")}
        assert other and other != ids[0]
    finally:  # a failed assertion must not leave aiosqlite's thread holding pytest open
        await shop.db.close()
