"""Seeds 000/001 end to end: limited terminals pay through the relay over HTTP, every agent a
real worker process on the session broker (the relay's flows of docs/relay.md).

The terminals are simulated browsers (``sim.phone``): they keep no cookies, read the pages
the relay converted for their profile and press the buttons on them.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from kessai import envelope
from schemas.relay import (
    CARegistration,
    PaymentInformation,
    TerminalTraffic,
    WalletFinalApproval,
    WalletPaymentInformation,
)
from schemas.v1 import AuditEvent, OrderStatus, PaymentResult
from sim import devdata
from sim.phone import Phone, Screen
from tests.e2e.bus import read_all, relay_up, wait_for
from tests.e2e.conftest import System
from tests.e2e.test_pan_scan import pans_in
from topics.catalogue import CATALOGUE

pytestmark = [pytest.mark.e2e, pytest.mark.broker, pytest.mark.timeout(300)]

FIG5 = [("XXXX", 1), ("YYYY", 1)]
WALLET_PASSWORDS = {(a.wallet_id, a.user_id): a.password for a in devdata.WALLET_ACCOUNTS}
STEP_S = 90.0  # generous: a 2-core machine, other suites may run at the same time


def showing(*words: str) -> Callable[[Screen], bool]:
    return lambda s: s.kind != "progress" and all(w in s.text for w in words)


async def until_not_progress(phone: Phone) -> Screen:
    return await phone.inquire_until(lambda s: s.kind != "progress", timeout_s=STEP_S)


async def to_login(phone: Phone, system: System, *, user: str = "", shop: str = "shop-1",
                   items: list[tuple[str, int]] = FIG5) -> Screen:
    """①② at the shop, ③ at the relay; returns the first page after the relay (login or
    wallet selection), waiting through progress pages."""
    await phone.shop_for(system.shop_url, shop, items)
    await phone.submit("/pay", {"user": user}, button="set-wallet")
    return await until_not_progress(phone)


async def login_to_confirming(phone: Phone, user: str, password: str) -> Screen:
    await phone.submit("/login", {"user_name": user, "password": password})
    conditions = await until_not_progress(phone)
    assert conditions.kind == "conditions", conditions.text
    await phone.submit("/conditions")
    confirming = await until_not_progress(phone)
    assert confirming.kind == "confirming", confirming.text
    return confirming


async def pay_set(phone: Phone, system: System, user: str = "alice",
                  wallet: str = "wallet-a") -> Screen:
    first = await to_login(phone, system, user=user)
    if first.kind == "wallet-selection":
        await phone.submit("/select-wallet", {"wallet": wallet})
        first = await until_not_progress(phone)
    assert first.kind == "login", first.text
    await login_to_confirming(phone, user, WALLET_PASSWORDS[(wallet, user)])
    await phone.submit("/approve")
    return await phone.inquire_until(lambda s: s.kind != "progress", timeout_s=STEP_S)


def txn_of(screens: list[Screen]) -> str:
    for s in screens:
        m = re.search(r"txn-[0-9a-f]{20}", s.text)
        if m:
            return m.group()
    raise AssertionError("no payment number on any page")


async def test_set_purchase_from_a_phone(system: System) -> None:
    """FIG. 3 ①–⑭ as a phone: preset wallet (R36), login, conditions, confirming with the
    amount (claim 5), ⑪', approval page; the shop's payment information went to the wallet
    byte for byte (R5) and never to the terminal (claims 1–3)."""
    await relay_up(system)
    async with Phone("phone") as phone:
        result = await pay_set(phone, system)
        assert result.kind == "page" and "Payment completed" in result.text, result.text
        assert "1155 JPY" in result.text
        txn = txn_of(phone.screens)
        for screen in phone.screens:  # no wallet cookie, no payment information
            assert "session_id" not in screen.html
        pages = [s.html for s in phone.screens]
    s = system.settings
    info = await wait_for(s, "kessai.relay.payment-information",
                          lambda m: isinstance(m, PaymentInformation) and m.txn_id == txn)
    assert info.usable_wallets == ["wallet-a", "wallet-b"]
    shop_raw = [r.value for r in await read_all(s, "kessai.relay.payment-information")
                if envelope.body_of(envelope.decode(r.value)) == info]
    forwarded = await wait_for(s, "kessai.wallet.inbox", lambda m: isinstance(
        m, WalletPaymentInformation) and m.txn_id == txn)
    assert forwarded.wallet_id == "wallet-a" and forwarded.payment_information in shop_raw
    approvals = [m for m in await _bodies(s, "kessai.wallet.inbox")
                 if isinstance(m, WalletFinalApproval) and m.txn_id == txn]
    assert len(approvals) == 1
    assert not any(pans_in(p.encode()) for p in pages)
    traffic = [m for m in await _bodies(s, "kessai.relay.terminal-traffic")
               if isinstance(m, TerminalTraffic) and m.txn_id == txn]
    assert {m.path for m in traffic} >= {"/pay", "/login", "/conditions", "/approve"}
    # The shop ships only on the gateway's signed approval of exactly the order's amount.
    paid = await wait_for(s, "kessai.order-status", lambda m: isinstance(m, OrderStatus)
                          and m.session == txn and m.status == "PAID", timeout=STEP_S)
    assert paid.shop_id == info.shop_id and paid.order_id == info.order_id


async def _bodies(settings: Any, topic: str) -> list[Any]:
    out = []
    for r in await read_all(settings, topic):
        try:
            out.append(envelope.body_of(envelope.decode(r.value)))
        except Exception:
            continue
    return out


async def audits(settings: Any, kind: str, where: str = "") -> list[AuditEvent]:
    return [m for m in await _bodies(settings, "kessai.audit")
            if isinstance(m, AuditEvent) and m.kind == kind and where in m.join_key]


async def test_the_same_confirming_information_differs_by_profile(system: System) -> None:
    """R18, claims 4–6: one confirming information, two profiles, two summaries — each within
    its profile's limits, both with the amount (claim 5, R27) and the payment number (claim 7)."""
    from agents.relay.pages import visible_chars
    from agents.relay.profiles import profile

    await relay_up(system)
    pages: dict[str, Screen] = {}
    for name in ("phone", "game"):
        async with Phone(name) as phone:
            assert (await to_login(phone, system, user="alice")).kind == "login"
            pages[name] = await login_to_confirming(phone, "alice", "alice-wallet-pw")
    for name, screen in pages.items():
        limits = profile(name)
        assert "1155 JPY" in screen.text and re.search(r"txn-[0-9a-f]{20}", screen.text)
        assert len(screen.html.encode()) <= limits.max_content_bytes
        assert visible_chars(screen.html) <= limits.max_chars
    assert "Confirm payment" in pages["phone"].text  # the compact template
    assert "Please confirm your payment" in pages["game"].text  # the standard one
    assert pages["phone"].html != pages["game"].html


async def test_wallet_selection_lists_only_designated_wallets(system: System) -> None:
    """FIG. 7, claim 14, R34–R35: a user without a preset wallet chooses among exactly the
    wallets the shop designated; another choice gets an error page and an audit event, and
    the payment information goes nowhere."""
    await relay_up(system)
    async with Phone("phone") as phone:
        selection = await to_login(phone, system)  # no user: no preset (R36 needs one)
        assert selection.kind == "wallet-selection", selection.text
        choices = [f.hidden.get("wallet") for f in selection.forms
                   if f.action == "/select-wallet"]
        assert choices == ["wallet-a", "wallet-b"]
        txn = txn_of([selection])
        refused = await phone.post(f"{system.relay_url}/select-wallet",
                                   {"s": selection.token, "wallet": "wallet-z"})
        assert refused.status == 400 and "does not accept that wallet" in refused.text
        # The choice is still open: a designated wallet is accepted after the mistake.
        await phone.post(f"{system.relay_url}/select-wallet",
                         {"s": selection.token, "wallet": "wallet-b"})
        login = await until_not_progress(phone)
        assert login.kind == "login" and "wallet-b" in login.text
    s = system.settings
    assert await audits(s, "undesignated-wallet", txn)
    forwarded = [m for m in await _bodies(s, "kessai.wallet.inbox")
                 if isinstance(m, WalletPaymentInformation) and m.txn_id == txn]
    assert [m.wallet_id for m in forwarded] == ["wallet-b"]


async def test_wrong_wallet_password_gets_login_failed_and_no_payment(system: System) -> None:
    """R11, R13: a wrong password → the login-failed page; no conditions, no payment request."""
    await relay_up(system)
    async with Phone("game") as phone:
        login = await to_login(phone, system, user="alice")
        txn = txn_of([login])
        await phone.submit("/login", {"user_name": "alice", "password": "not-her-password"})
        failed = await until_not_progress(phone)
        assert failed.kind == "login" and "not accepted" in failed.text, failed.text
        assert "not-her-password" not in failed.html
    await asyncio.sleep(2)
    requests = [m for m in await _bodies(system.settings, "kessai.shop.payment-requests")
                if getattr(m, "txn_id", None) == txn]
    assert requests == []


async def test_forged_session_and_unknown_profile_get_error_pages(system: System) -> None:
    """R29a, R47: a session string the relay did not issue, and an unknown terminal profile,
    get clear error pages and audit events."""
    await relay_up(system)
    async with Phone("phone") as phone:
        login = await to_login(phone, system, user="alice")
        sid, tag = login.token.rsplit(".", 1)
        forged = await phone.post(f"{system.relay_url}/approve",
                                  {"s": f"{sid}.{tag[::-1]}"})
        assert forged.status == 403 and "not valid" in forged.text
        assert sid not in forged.html
        other = await phone.get(f"{system.relay_url}/inquire?s=rs-000000000000000000000000.x")
        assert other.status == 403
        bad = await phone.post(f"{system.relay_url}/pay", {"shop": "shop-1", "cart": "c-1",
                                                           "profile": "toaster"})
        assert bad.status == 400 and "unknown terminal profile" in bad.text
    s = system.settings
    assert await audits(s, "forged-session")
    assert await audits(s, "unknown-profile")


async def test_keepalive_progress_then_result_after_reconnect(system: System) -> None:
    """Claims 9–11, R30–R33: the gateway is down, so the result is late; the approval gets the
    progress page after the preset period, the terminal hangs up, the gateway comes back, and
    a new call with the same session string gets the result. One ⑪' only."""
    await relay_up(system)
    async with Phone("phone") as phone:
        await to_login(phone, system, user="alice")
        await login_to_confirming(phone, "alice", "alice-wallet-pw")
        txn = txn_of(phone.screens)
        system.kill("gateway")
        try:
            progress = await phone.submit("/approve")
            assert progress.kind == "progress", progress.text
            assert "in progress" in progress.text and progress.form("/inquire")
            again = await phone.submit("/inquire")  # read-only: still in progress (R31)
            assert again.kind == "progress"
            token = progress.token
        finally:
            system.start("gateway")
    # A new call (a new client: nothing but the session string survives the hang-up, R32).
    async with Phone("phone") as phone:
        await phone.get(f"{system.relay_url}/inquire?s={token}")
        result = await phone.inquire_until(showing("Payment completed", "1155 JPY"),
                                           timeout_s=STEP_S)
        assert txn in result.text
    approvals = [m for m in await _bodies(system.settings, "kessai.wallet.inbox")
                 if isinstance(m, WalletFinalApproval) and m.txn_id == txn]
    assert len(approvals) == 1


async def test_a_terminal_that_hangs_up_mid_approval_still_pays_once(system: System) -> None:
    """R32, R47: the call drops while the relay waits for the result; the payment goes on, the
    relay records that the terminal left (an audit event), and the next call gets the result."""
    await relay_up(system)
    async with Phone("phone") as phone:
        await to_login(phone, system, user="alice")
        confirming = await login_to_confirming(phone, "alice", "alice-wallet-pw")
        txn, token = txn_of([confirming]), confirming.token
    # The payment gateway is held (SIGSTOP) while the terminal hangs up, so the call surely
    # drops while the relay waits for the result, however fast the bus is; then it goes on.
    gateway = system.workers["gateway"].proc
    assert gateway is not None
    os.kill(gateway.pid, signal.SIGSTOP)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.2)) as http:
            with pytest.raises(asyncio.TimeoutError):
                async with http.post(f"{system.relay_url}/approve", data={"s": token}) as r:
                    await r.read()
        await asyncio.sleep(0.5)
    finally:
        os.kill(gateway.pid, signal.SIGCONT)
    async with Phone("phone") as phone:
        await phone.get(f"{system.relay_url}/inquire?s={token}")
        result = await phone.inquire_until(showing("Payment completed"), timeout_s=STEP_S)
        assert txn in result.text and "1155 JPY" in result.text
    deadline = time.monotonic() + STEP_S
    while not await audits(system.settings, "terminal-gone", txn):
        assert time.monotonic() < deadline, "no audit event for the terminal that left"
        await asyncio.sleep(1)
    approvals = [m for m in await _bodies(system.settings, "kessai.wallet.inbox")
                 if isinstance(m, WalletFinalApproval) and m.txn_id == txn]
    assert len(approvals) == 1


async def test_enrolment_puts_the_certificate_in_the_wallet_only(system: System) -> None:
    """Claims 12–13, R38–R39: the card goes to the CA sealed; the CA's contents are converted
    for the terminal; the certificate goes to the wallet — never to a page — and the new user
    can pay with it."""
    await relay_up(system)
    s = system.settings
    async with Phone("phone") as phone:
        form = await phone.get(f"{system.relay_url}/enrol?profile=phone")
        assert form.form("/enrol") is not None
        await phone.submit("/enrol", {"user": "erin", "wallet": "wallet-b", "brand": "visa",
                                      "card": "4242 4242 4242 4242", "expiry": "2032-01",
                                      "password": "erin-wallet-pw"})
        done = await until_not_progress(phone)
        assert "registered" in done.text and "4242" in done.text, done.text
        enrol_pages = [sc.html for sc in phone.screens]
    deadline = time.monotonic() + STEP_S
    while True:  # the wallet stores it when the relay's forward arrives
        rows = []
        try:
            with sqlite3.connect(f"file:{s.data_dir / 'wallet.sqlite'}?mode=ro",
                                 uri=True) as db:
                rows = db.execute("SELECT wallet_id, brand, certificate FROM cards "
                                  "WHERE user_id = ?", ("erin",)).fetchall()
        except sqlite3.OperationalError:
            pass  # the wallet has not opened its store yet
        if rows or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert [(w, b) for w, b, _ in rows] == [("wallet-b", "visa")]
    registration = await wait_for(s, "kessai.ca.registrations", lambda m: isinstance(
        m, CARegistration) and m.user_id == "erin")
    assert b"4242424242424242" not in envelope.pack_body(registration)
    for page in enrol_pages:
        assert not pans_in(page.encode()) and "ca_signature" not in page
    # The new user pays at the wallet she enrolled with.
    async with Phone("game") as phone:
        result = await _pay_new_user(phone, system)
        assert "Payment completed" in result.text and "1155 JPY" in result.text, result.text


async def _pay_new_user(phone: Phone, system: System) -> Screen:
    selection = await to_login(phone, system)
    assert selection.kind == "wallet-selection"
    await phone.submit("/select-wallet", {"wallet": "wallet-b"})
    assert (await until_not_progress(phone)).kind == "login"
    await login_to_confirming(phone, "erin", "erin-wallet-pw")
    await phone.submit("/approve")
    return await until_not_progress(phone)


@pytest.mark.parametrize(("user", "card", "expiry", "password"), [
    ("carol", "4012 8888 8888 1881", "2029-03", ""),  # cl. 12: the relay's channel
    ("bob", "5555555555554444", "06/30", "bob-dev-password"),  # cl. 13: a typed password
])
async def test_two_sided_settlement_through_the_relay(system: System, user: str, card: str,
                                                      expiry: str, password: str) -> None:
    """Seed 003 for a limited terminal: the relay places the order, shows the payment request,
    seals the typed card to the settlement server, relays the result to the shop (VIA_TERMINAL);
    the page says APPROVED and the shop says PAID."""
    await relay_up(system)
    async with Phone("phone") as phone:
        await phone.shop_for(system.shop_url, "shop-1", FIG5)
        await phone.submit("/pay", {"user": user}, button="two-sided")
        request = await until_not_progress(phone)
        assert request.kind == "payment-request" and "1155 JPY" in request.text, request.text
        order_id = re.search(r"Order (\d{10})", request.text).group(1)  # type: ignore[union-attr]
        values = {"card": card, "expiry": expiry}
        if password:
            values["password"] = password
        await phone.submit("/confirm", values)
        result = await until_not_progress(phone)
        assert "APPROVED" in result.text and "1155 JPY" in result.text, result.text
        assert not any(pans_in(sc.html.encode()) for sc in phone.screens)
    s = system.settings
    paid = await wait_for(s, "kessai.order-status", lambda m: isinstance(m, OrderStatus)
                          and m.order_id == order_id and m.status == "PAID", timeout=STEP_S)
    assert paid.shop_id == "shop-1"
    relayed = await wait_for(s, "kessai.payment-results.relayed",
                             lambda m: getattr(m, "order_id", None) == order_id)
    assert relayed.outcome == "APPROVED"
    user_result = await wait_for(s, "kessai.payment-results", lambda m: isinstance(
        m, PaymentResult) and m.order_id == order_id and m.recipient == "user")
    assert user_result.session.startswith("rs-")


async def test_no_card_number_where_the_shop_or_a_terminal_could_read_it(
        system: System) -> None:
    """R40, R43: after the relay flows above (cards typed into pages, enrolment), no card
    number on any topic the shop may read, on the terminal traffic, or in the relay's log."""
    await relay_up(system)
    topics = [t.name for t in CATALOGUE if "shop" in t.readers]
    topics.append("kessai.relay.terminal-traffic")
    for topic in topics:
        for r in await read_all(system.settings, topic):
            assert not pans_in((r.key or b"") + (r.value or b"")), f"card number on {topic}"
    for agent in ("relay", "shop", "wallet", "ca", "gateway"):
        assert not pans_in(system.logs()[agent].encode()), f"card number in the {agent} log"


async def test_kessai_demo_relay_prints_the_journey(system: System) -> None:
    """`kessai demo relay --json`, as the README shows it: one purchase from a simulated phone,
    every HTTP exchange with the page sizes, every bus hop of the payment."""
    await relay_up(system)
    s = system.settings
    env = {**os.environ, **s.child_env(),
           "KESSAI_SHOP_HTTP_PORT": system.shop_url.rsplit(":", 1)[1]}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kessai.cli", "demo", "relay", "--json", "--timeout", "90",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 240)
    assert proc.returncode == 0, err.decode()
    report = json.loads(out)
    assert report["outcome"] == "APPROVED" and "1155 JPY" in report["result_page"]
    http = [e for e in report["journey"] if "http" in e]
    steps = [e["http"] for e in http if not e["http"].endswith(("/inquire", "/page"))]
    assert steps[-4:] == ["POST /pay", "POST /login", "POST /conditions", "POST /approve"]
    assert all(e["visible_chars"] <= 400 and e["bytes"] <= 2048 for e in http
               if not e["http"].startswith(("GET /shop", "POST /shop")))
    types = [e["type"] for e in report["journey"] if "type" in e]
    for step in ("relay-procedure-request", "relay-payment-information",
                 "wallet-payment-information", "wallet-login", "wallet-final-approval",
                 "set-payment-request", "set-approval-response"):
        assert step in types, step
