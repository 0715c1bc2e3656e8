"""Recorded days of the other flows (issue 10), each on the in-memory bus through the real
handlers: the seeds 000/001 payment gateway with the issuer, the seed-002 wake-up payment
(POS, gateway, direction server, phones, credit server) and the seed-004 selector with its
modules and server wallets — and one archive-ready record of them all, after the settlement
day."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from agents.selector import agent as selector_agent
from agents.serverwallet import agent as serverwallet_agent
from agents.wallet.request import payment_request
from agents.wallet.store import seed_from_secrets
from agents.wum import agent as wum_agent
from kessai import crypto, envelope, keys
from kessai.clock import FakeClock
from kessai.settings import Settings
from kessai.worker import identities
from protocols.sealed import wallet_password_context
from schemas.relay import (
    ForwardedPaymentRequest,
    PaymentInformation,
    WalletConditions,
    WalletContents,
    WalletFinalApproval,
    WalletLogin,
    WalletPaymentInformation,
)
from schemas.selector import Preselection, Prompt, PromptReply
from schemas.v1 import LineItem, OrderContent, PurchaseCommand
from schemas.wakeup import DeviceCommand, PosSale, SaleItem
from sim import selector_world
from tests.agents import agent_module
from tests.audit.recorded import Recorded, RecordingBus

# Seed 002 timings ([X] values, shortened; the audit reads the same from the environment).
WAKEUP_ENV = {"KESSAI_PAYGATE_DEVICE_WAIT_MS": "8000", "KESSAI_PAYGATE_CONFIRM_MS": "8000",
              "KESSAI_PAYGATE_METHOD_MS": "20000", "KESSAI_DEVICE_RESPONSE_MS": "5000",
              "KESSAI_DEVICE_AUTH_TTL_MS": "12000", "KESSAI_PAYGATE_REPLY_MS": "15000",
              "KESSAI_CREDIT_KEY_WAIT_MS": "3000"}
CONTENT = OrderContent([LineItem("XXXX", "Peanut butter", 500, 1),
                        LineItem("YYYY", "Grape jelly", 600, 1)], "JPY", 55, 1155)


@contextmanager
def wakeup_env() -> Iterator[None]:
    before = {k: os.environ.get(k) for k in WAKEUP_ENV}
    os.environ.update(WAKEUP_ENV)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


async def gateway_day(settings: Settings) -> RecordingBus:
    """Seeds 000/001: wallet payment requests a shop forwards to the gateway — approved by the
    issuer, one forwarded by another shop (R42), one with a bad user signature (R41)."""
    bus = RecordingBus(settings)
    for agent in ("gateway", "issuer"):
        bus.add_module(agent, agent_module(agent))
    await bus.start()
    k = {a: keys.load_actor(settings.keys_dir, a) for a in ("shop-1", "shop-2", "wallet-a")}
    card = next(c for u, c in seed_from_secrets("wallet-a", k["wallet-a"].secrets["users"])
                if u.user_id == "alice")
    gateway_public = bus.registry.sealing["gateway"][1]
    for txn, forwarder, bad_signature in (("t-ok-1", "shop-1", False),
                                          ("t-ok-2", "shop-1", False),
                                          ("t-shop", "shop-2", False),
                                          ("t-sig", "shop-1", True)):
        pi = PaymentInformation(txn, "shop-1", f"o-{txn}", CONTENT, CONTENT.amount,
                                ["wallet-a"])
        pi_env = envelope.encode(envelope.seal_envelope(pi, txn, k["shop-1"], bus.clock))
        req = payment_request(card, txn_id=txn, shop_id="shop-1", payment_information=pi_env,
                              method="lump-sum", gateway_public=gateway_public)
        if bad_signature:
            req = replace(req, user_signature=bytes(64))
        original = envelope.encode(envelope.seal_envelope(req, txn, k["wallet-a"], bus.clock))
        bus.clock.advance(5)  # type: ignore[attr-defined]  # a shop's request a moment later
        await bus.send("kessai.gateway.payment-requests",
                       ForwardedPaymentRequest(txn, original), txn, forwarder)
        await bus.drain()
    await bus.stop()
    return bus


async def setwallet_day(settings: Settings) -> RecordingBus:
    """Seeds 000/001 end to end between the relay and the wallet: the relay hands the shop's
    payment information to wallet-a, alice logs in, agrees the conditions and approves; the
    wallet's payment request goes through the shop to the gateway and the issuer, and the
    approval back through the shop to the wallet — one approved, one over alice's limit."""
    bus = RecordingBus(settings)
    for agent in ("wallet", "shop", "gateway", "issuer"):
        bus.add_module(agent, agent_module(agent))
    await bus.start()
    shop = keys.load_actor(settings.keys_dir, "shop-1")
    wallet_public = bus.registry.sealing["wallet-a"][1]
    big = OrderContent([LineItem("XXXX", "Peanut butter", 500_000_000, 1)], "JPY", 0,
                       500_000_000)

    async def relay(msg: Any) -> WalletContents:
        bus.clock.advance(5)  # type: ignore[attr-defined]
        await bus.send("kessai.wallet.inbox", msg, msg.txn_id, "relay")
        await bus.drain()
        return bus.messages("kessai.relay.wallet-contents", WalletContents)[-1]

    for txn, content in (("sw-ok", CONTENT), ("sw-limit", big)):
        pi = PaymentInformation(txn, "shop-1", f"o-{txn}", content, content.amount,
                                ["wallet-a"])
        pi_env = envelope.encode(envelope.seal_envelope(pi, txn, shop, bus.clock))
        login = await relay(WalletPaymentInformation("wallet-a", txn, pi_env))
        cookie = login.set_cookie.split(";")[0].removeprefix("session_id=")
        password = crypto.seal(wallet_public, b"alice-wallet-pw", wallet_password_context(txn))
        assert (await relay(WalletLogin("wallet-a", txn, cookie, "alice", password))).kind \
            == "conditions"
        await relay(WalletConditions("wallet-a", txn, cookie, "visa", "lump-sum"))
        await relay(WalletFinalApproval("wallet-a", txn, cookie))
    await bus.stop()
    return bus


async def wakeup_day(settings: Settings) -> RecordingBus:
    """Seed 002: completed (methods L, I, R; installments chosen), a phone that does not
    agree (the confirmation deadline stops it), a card over its limit (the credit server
    refuses), a card no issuer range holds and an issuer the merchant takes no method of
    (both stopped)."""
    bus = RecordingBus(settings)
    with wakeup_env():
        for agent in ("paygate", "direction", "pos", "device", "issuer"):
            bus.add_module(agent, agent_module(agent))
        await bus.start()

        async def send(topic: str, msg: Any, key: str, actor: str) -> None:
            bus.clock.advance(5)  # type: ignore[attr-defined]  # each action a moment later
            await bus.send(topic, msg, key, actor)
            await bus.drain()

        async def sale(pos: str, ref: str, device: str, user: str, *presses: dict) -> None:
            await send("kessai.pos.sales", PosSale(pos, ref, [SaleItem("Sencha 100g", 2, 1200)],
                                                   240, "JPY", True), pos, "operator")
            await send("kessai.device.commands", DeviceCommand(device, "login", card="CARD A",
                                                               user_id=user, pos_id=pos),
                       device, "operator")
            await bus.elapse(1_000)  # the hand-over waits in the mobile terminal for the POS's poll
            for p in presses:
                await send("kessai.device.commands", DeviceCommand(device, **p), device,
                           "operator")

        await sale("pos-1", "s-ok", "1234567", "00001", {"action": "agree"},
                   {"action": "choose", "method": "I"})
        await sale("pos-2", "s-no", "2234567", "00002", {"action": "not_agree"})
        await bus.elapse(10_000)
        await sale("pos-2", "s-limit", "3345678", "00003", {"action": "agree"},
                   {"action": "choose", "method": "L"})
        await sale("pos-2", "s-range", "5555555", "00005", {"action": "agree"})
        await sale("pos-1", "s-none", "3345678", "00003", {"action": "agree"})
        await bus.elapse(25_000)
        await bus.stop()
    return bus


async def selector_day(settings: Settings) -> RecordingBus:
    """Seed 004 with the key set's selector configuration (carol, pre-selection mode): a
    wake-up before any pre-selection (unroutable), then one after each of two choices."""
    bus = RecordingBus(settings)
    for name in ("shop", "settlement", "issuer"):
        bus.add_module(name, agent_module(name))
    bus.add("selector", lambda ctx: selector_agent.register(ctx, serve_console=False),
            ["selector"])
    bus.add("wum", lambda ctx: wum_agent.register(ctx, selector_world.modules()),
            identities(wum_agent, bus.registry.signing))
    bus.add("serverwallet", lambda ctx: serverwallet_agent.register(
        ctx, holdings=dict(selector_world.HOLDINGS), modules=selector_world.PAIRED,
        masters={}, direct=frozenset()), identities(serverwallet_agent, bus.registry.signing))
    await bus.start()
    for session, module in (("sel-1", None), ("sel-2", "wum-carol-b"), ("sel-3", "wum-carol-a")):
        bus.clock.advance(5)  # type: ignore[attr-defined]
        if module is not None:
            await bus.send("kessai.selector.preselections", Preselection("carol", module),
                           "carol", "operator")
            await bus.drain()
            bus.clock.advance(5)  # type: ignore[attr-defined]
        await bus.send("kessai.selector.commands", PurchaseCommand(
            session=session, user_id="carol", shop_id="shop-1", items=[["XXXX", 1]],
            scenario={"result_mode": "DIRECT_BOTH"}), "carol", "operator")
        await bus.drain()
    await bus.elapse(2_000)
    await bus.stop()
    return bus


async def selector_mode_day(settings: Settings, mode: str) -> RecordingBus:
    """Seed 004 in ``mode`` (carol's configuration of ``sim.selector_world``, a 10 s prompt):
    wake-ups naming mastercard, diners and visa; in ``ask`` mode the user picks a module for
    the first, cancels the second and lets the third time out."""
    clients = selector_world.client(mode, prompt_timeout_ms=10_000)
    bus = RecordingBus(settings)
    for name in ("shop", "settlement", "issuer"):
        bus.add_module(name, agent_module(name))
    bus.add("selector", lambda ctx: selector_agent.register(ctx, clients, serve_console=False),
            ["selector"])
    bus.add("wum", lambda ctx: wum_agent.register(ctx, selector_world.modules()),
            identities(wum_agent, bus.registry.signing))
    bus.add("serverwallet", lambda ctx: serverwallet_agent.register(
        ctx, holdings=dict(selector_world.HOLDINGS), modules=selector_world.PAIRED,
        masters={}, direct=frozenset()), identities(serverwallet_agent, bus.registry.signing))
    await bus.start()
    await bus.drain()
    # Sessions of their own per mode: the days share the test session's data directory (the
    # shop's order store), and one session of one user is one order there.
    for n, brand in ((1, "mastercard"), (2, "diners"), (3, "visa")):
        bus.clock.advance(5)  # type: ignore[attr-defined]
        await selector_world.buy(bus, f"{mode}-{n}", brands=[brand])
    prompts = bus.messages("kessai.selector.prompts", Prompt)
    if mode == "ask":
        for prompt, reply in zip(prompts, ({"choice": "wum-carol-b"}, {"cancel": True}),
                                 strict=False):
            bus.clock.advance(5)  # type: ignore[attr-defined]
            await bus.send("kessai.selector.replies",
                           PromptReply(prompt.wakeup_id, "carol", **reply), "carol", "operator")
            await bus.drain()
    await bus.elapse(12_000)
    await bus.stop()
    return bus


def merged(*days: Iterable[Recorded]) -> list[Recorded]:
    """The days one after another, as one broker log: each partition's offsets continue, each
    day's times start after the day before."""
    out: list[Recorded] = []
    top: dict[tuple[str, int], int] = {}
    end = 0
    for day in days:
        rows = list(day)
        if not rows:
            continue
        shift = max(0, end + 1_000 - rows[0].timestamp_ms)
        base = dict(top)
        for r in rows:
            tp = (r.topic, r.partition)
            offset = base.get(tp, 0) + r.offset
            top[tp] = max(top.get(tp, 0), offset + 1)
            out.append(replace(r, offset=offset, timestamp_ms=r.timestamp_ms + shift))
        end = out[-1].timestamp_ms
    return out


__all__ = ["FakeClock", "gateway_day", "merged", "selector_day", "setwallet_day", "wakeup_day", "wakeup_env"]
