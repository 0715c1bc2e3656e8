"""The relay's decisions and its handlers without a broker (seeds 000/001): the stage machine,
the keep-alive timer on a virtual clock (claims 10–11), wallet routing (claim 14, R34–R36),
cookie emulation (FIG. 6, R28–R29), one final approval per payment (R33), and the shop's
payment processing section (④→⑤)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from agents.relay import agent as relay_agent
from agents.relay import flow
from agents.relay.config import RelayConfig, parse_auto_refresh
from agents.relay.core import Refused
from agents.relay.enrol import Enrolment
from agents.relay.profiles import profile
from agents.relay.setwallet import Relay, condition_actions
from agents.relay.store import RelayDB
from agents.relay.twosided import TwoSided, card_inputs, parse_items
from agents.relay.waiting import Waiters
from agents.shop import procedure
from agents.shop.carts import CartDB, added
from agents.shop.orders import OrderDB
from agents.shop.procedure import PROCEDURE_REQUESTS, PaymentProcessing, designated_wallets
from agents.wallet import contents as wallet_contents
from kessai import authenticators, crypto, envelope, keys
from kessai.clock import FakeClock
from kessai.errors import ConfigError
from kessai.handlers import UNAUTHORIZED_SENDER, admit
from kessai.money import Money
from kessai.runtime import Inbound
from protocols.sealed import wallet_password_context
from schemas.relay import (
    CAContents,
    PaymentInformation,
    ProcedureRequest,
    WalletContents,
    WalletFinalApproval,
    WalletLogin,
    WalletPaymentInformation,
)
from schemas.v1 import LineItem, OrderContent, PaymentRequest, PaymentResult, SecondRequest
from sim import devdata, devkeys
from tests.recording import CLOCK, Rec, context, inbound, signed

FIG5 = OrderContent([LineItem("XXXX", "ピーナッツバター", 500, 1),
                     LineItem("YYYY", "グレープゼリー", 600, 1)], "JPY", 55, 1155)


# -- the stage machine ---------------------------------------------------------------------

@pytest.mark.parametrize(("request_", "stage", "sends"), [
    ("select-wallet", flow.SELECTING, "WalletPaymentInformation"),
    ("login", flow.LOGIN, "WalletLogin"),
    ("conditions", flow.CONDITIONS, "WalletConditions"),
    ("approve", flow.CONFIRMING, "WalletFinalApproval"),
    ("confirm", flow.PAYING, "SecondRequest"),
    ("enrol", flow.ENROL_FORM, "CARegistration"),
])
def test_each_terminal_request_produces_one_bus_message(request_: str, stage: str,
                                                        sends: str) -> None:
    decision = flow.on_request(request_, stage)
    assert isinstance(decision, flow.Advance)
    assert decision.step.sends.startswith(sends)
    assert decision.step.then in flow.WAITING  # the terminal waits for the next contents


@pytest.mark.parametrize("stage", [flow.APPROVING, flow.DONE, flow.FAILED])
def test_a_repeated_approval_sends_nothing(stage: str) -> None:
    """R33: a double press or a reconnect shows the current view; one ⑪' per payment."""
    assert isinstance(flow.on_request("approve", stage), flow.Show)


@pytest.mark.parametrize("stage", sorted(flow.WAITING | flow.FINAL | {flow.LOGIN}))
def test_inquiries_and_pages_are_read_only(stage: str) -> None:
    assert isinstance(flow.on_request("inquire", stage), flow.Show)
    assert isinstance(flow.on_request("page", stage), flow.Show)


def test_requests_out_of_step_are_refused() -> None:
    assert isinstance(flow.on_request("approve", flow.LOGIN), flow.OutOfStep)
    assert isinstance(flow.on_request("select-wallet", flow.CONFIRMING), flow.OutOfStep)
    assert isinstance(flow.on_request("login", flow.SELECTING), flow.OutOfStep)
    assert isinstance(flow.on_request("teleport", flow.LOGIN), flow.OutOfStep)


def test_wallet_contents_move_the_session_and_duplicates_are_ignored() -> None:
    walk = [(flow.AWAIT_LOGIN, "login", flow.LOGIN),
            (flow.AWAIT_CONDITIONS, "login-failed", flow.LOGIN),
            (flow.AWAIT_CONDITIONS, "conditions", flow.CONDITIONS),
            (flow.AWAIT_CONFIRMING, "confirming", flow.CONFIRMING),
            (flow.APPROVING, "approval", flow.DONE),
            (flow.APPROVING, "declined", flow.DONE),
            (flow.AWAIT_CONDITIONS, "error", flow.FAILED)]
    for stage, kind, then in walk:
        assert flow.on_wallet_contents(stage, kind) == then
    assert flow.on_wallet_contents(flow.LOGIN, "login") is None  # a redelivered ⑦
    assert flow.on_wallet_contents(flow.DONE, "approval") is None  # a redelivered ⑬
    assert flow.on_wallet_contents(flow.CONFIRMING, "approval") is None  # no ⑪' sent
    assert flow.on_wallet_contents(flow.FAILED, "error") is None


# -- keep-alive on a virtual clock (claims 10–11) -----------------------------------------------

def test_keepalive_decision_on_a_virtual_clock() -> None:
    clock = FakeClock()
    approved_at = clock.now_ms()  # ⑪' received: the timer starts (claim 10)
    assert flow.keepalive(True, approved_at, clock.now_ms(), 4000) == "wait"
    clock.advance(3999)
    assert flow.keepalive(True, approved_at, clock.now_ms(), 4000) == "wait"
    clock.advance(1)
    assert flow.keepalive(True, approved_at, clock.now_ms(), 4000) == "progress"
    assert flow.keepalive(False, approved_at, clock.now_ms(), 4000) == "show"


async def test_waiter_gives_progress_once_the_virtual_period_is_over() -> None:
    clock = FakeClock()
    waiters = Waiters(clock, period_ms=4000, poll_s=0.01)
    started = clock.now_ms()

    async def still_waiting() -> tuple[bool, str]:
        return True, "progress contents"

    task = asyncio.create_task(waiters.wait("rs-1", started, still_waiting))
    await asyncio.sleep(0.05)
    assert not task.done()  # no virtual time has passed: keep the terminal waiting
    clock.advance(4000)
    assert await asyncio.wait_for(task, 2) == ("progress", "progress contents")


async def test_waiter_shows_the_contents_as_soon_as_they_arrive() -> None:
    clock = FakeClock()
    waiters = Waiters(clock, period_ms=4000, poll_s=60)  # only the notification can wake it
    state = {"waiting": True}

    async def look() -> tuple[bool, str]:
        return state["waiting"], "approval page"

    task = asyncio.create_task(waiters.wait("rs-2", clock.now_ms(), look))
    await asyncio.sleep(0.02)
    state["waiting"] = False
    waiters.notify("rs-2")
    assert await asyncio.wait_for(task, 2) == ("show", "approval page")


def test_auto_refresh_is_configuration() -> None:
    assert parse_auto_refresh("game=3, phone=5") == {"game": 3, "phone": 5}
    config = RelayConfig(auto_refresh=parse_auto_refresh("*=7,game=3"))
    assert config.refresh_s("game") == 3 and config.refresh_s("phone") == 7
    assert RelayConfig().refresh_s("phone") == 0  # the manual inquiry button
    for bad in ("game", "game=0", "=3", "game=x"):
        with pytest.raises(ConfigError):
            parse_auto_refresh(bad)
    with pytest.raises(ConfigError):
        RelayConfig.from_env({"KESSAI_RELAY_KEEPALIVE_MS": "soon"})


# -- wallet selection (claim 14) --------------------------------------------------------------

def test_wallet_routing() -> None:
    presets = {"alice": "wallet-a"}
    both = ["wallet-a", "wallet-b"]
    assert flow.route_wallet(both, "alice", presets) == "wallet-a"  # R36
    assert flow.route_wallet(["wallet-b", "wallet-c"], "alice", presets) is None  # not designated
    assert flow.route_wallet(both, "bob", presets) is None  # R34: ask
    assert flow.route_wallet(both, "", presets) is None
    assert flow.route_wallet(["wallet-b"], "alice", presets) == "wallet-b"  # the only one
    assert flow.choice_ok("wallet-b", both) and not flow.choice_ok("wallet-z", both)


def test_condition_buttons_come_from_the_wallets_brands_and_methods() -> None:
    info = PaymentInformation("t-1", "shop-1", "1", FIG5, Money(1155, "JPY"), ["wallet-a"])
    actions = condition_actions(wallet_contents.conditions("wallet-a", info, ["visa", "jcb"]))
    assert [(a.path, a.fields) for a in actions] == [
        ("/conditions", {"brand": b, "method": m})
        for b in ("visa", "jcb") for m in wallet_contents.METHODS]


# -- what terminals type in -----------------------------------------------------------------

def test_card_form_checks_never_repeat_the_number() -> None:
    assert flow.card_from_form("4012 8888 8888 1881", "2029-03") == ("4012888888881881",
                                                                     "2029-03")
    assert flow.card_from_form("4012-8888-8888-1881", "03/29") == ("4012888888881881",
                                                                   "2029-03")
    for number, expiry in (("4012888888881882", "2029-03"), ("1234", "2029-03"),
                           ("4012888888881881", "2029-13"), ("4012888888881881", "soon")):
        with pytest.raises(flow.FormError) as info:
            flow.card_from_form(number, expiry)
        assert "4012" not in str(info.value) and "1234" not in str(info.value)
    with pytest.raises(flow.FormError):
        flow.user_from_form("Robert'); DROP")


def test_two_sided_forms() -> None:
    assert parse_items("XXXX:1,YYYY:2") == [["XXXX", 1], ["YYYY", 2]]
    for bad in ("", "XXXX", "XXXX:0", "XX XX:1", "XXXX:1," * 21):
        with pytest.raises(flow.FormError):
            parse_items(bad)
    assert [i.name for i in card_inputs("channel", False)] == ["card", "expiry"]
    assert [i.name for i in card_inputs("password", True)] == ["password"]


# -- handlers with a recording context -----------------------------------------------------------

@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("keys")
    devkeys.init(d)
    return d


def make_ctx(keydir: Path, tmp_path: Path, name: str, actors: list[str],
             clock: FakeClock = CLOCK) -> Rec:
    return context(keydir, tmp_path, name, actors, clock)


def took(ctx: Rec) -> list[tuple[str, Any, str, str]]:
    """What the agent sent since the last look: (topic, message, key, sender)."""
    return [(s.topic, s.msg, s.key, s.sender) for s in ctx.take()]


def record(keydir: Path, msg: Any, actor: str, cid: str = "c") -> Inbound:
    """A verified inbound record signed by ``actor``, with its raw bytes (as ``accept`` makes)."""
    return inbound(signed(msg, keys.load_actor(keydir, actor), cid),
                   keys.load_registry(keydir))


def relay_of(ctx: Rec, tmp_path: Path, cls: type = Relay, period_ms: int = 0) -> Any:
    """The relay's flows on one session store, their handlers declared on ``ctx`` as the
    worker declares them; returns the flow of type ``cls``."""
    # A zero keep-alive period: a terminal request answers at once (progress if waiting).
    db, config = RelayDB(tmp_path / "relay.sqlite"), RelayConfig(keepalive_ms=period_ms)
    waiters = Waiters(ctx.clock, period_ms)
    flows = {c: c(ctx, db, config, waiters) for c in (Relay, TwoSided, Enrolment)}
    relay_agent.declare(ctx, *flows.values())
    return flows[cls]


async def deliver(ctx: Rec, topic: str, rec: Inbound) -> None:
    """``rec`` through the runtime's door on ``topic`` (the same record again is a
    redelivery, not a replay)."""
    await ctx.door.receive(topic, rec.partition, rec.offset, rec.key, rec.raw)


PAYMENT_INFORMATION = relay_agent.PAYMENT_INFORMATION
WALLET_CONTENTS = relay_agent.WALLET_CONTENTS


async def test_set_wallet_flow_through_the_relay(keydir: Path, tmp_path: Path) -> None:
    ctx = make_ctx(keydir, tmp_path, "relay", ["relay"])
    relay = relay_of(ctx, tmp_path)
    phone = profile("phone")

    # ③④ the procedure request goes to the shop; the terminal waits (progress).
    view = await relay.pay(phone, "shop-1", "cart-1", "alice", CLOCK.now_ms())
    assert view.kind == "progress"
    (topic, req, txn, sender), = took(ctx)
    assert (topic, sender) == ("kessai.relay.procedure-requests", "relay")
    assert isinstance(req, ProcedureRequest) and req.cart_id == "cart-1" and req.txn_id == txn
    session = view.session

    # ⑤⑥ alice's preset wallet is designated: the shop's envelope goes on byte for byte (R5).
    info = PaymentInformation(txn, "shop-1", "0000000001", FIG5, Money(1155, "JPY"),
                              ["wallet-a", "wallet-b"])
    info_in = record(keydir, info, "shop-1", txn)
    await deliver(ctx, PAYMENT_INFORMATION, info_in)
    (topic, forwarded, _, _), = took(ctx)
    assert topic == "kessai.wallet.inbox" and isinstance(forwarded, WalletPaymentInformation)
    assert forwarded.wallet_id == "wallet-a" and forwarded.payment_information == info_in.raw
    # A redelivery before the wallet answered sends the same bytes again (the wallet takes a
    # repeat as one); once the wallet has answered, a redelivery sends nothing.
    await deliver(ctx, PAYMENT_INFORMATION, info_in)
    (_, again, _, _), = took(ctx)
    assert again == forwarded

    # ⑦⑧ the wallet's login contents with its cookie; the page holds no cookie (R28).
    login_html = wallet_contents.login("wallet-a", info)
    await deliver(ctx, WALLET_CONTENTS, record(keydir, WalletContents(
        "wallet-a", txn, "login", login_html, "session_id=wallet-cookie-1; Path=/"),
        "wallet-a", txn))
    await deliver(ctx, PAYMENT_INFORMATION, info_in)
    assert took(ctx) == []
    view = await relay.inquire(await relay.db.get(session.sid))
    assert view.kind == "login" and "wallet-cookie-1" not in view.html
    assert session.token in view.html and 'action="/login"' in view.html

    # ⑨⑩ the password is sealed to the wallet; the cookie is restored (FIG. 6 ③).
    s = await relay.db.get(session.sid)
    await relay.login(s, "alice", "alice-wallet-pw", CLOCK.now_ms())
    (topic, login, _, _), = took(ctx)
    assert isinstance(login, WalletLogin) and login.cookie == "session_id=wallet-cookie-1"
    assert b"alice-wallet-pw" not in envelope.pack_body(login)
    wallet_keys = keys.load_actor(keydir, "wallet-a")
    assert crypto.open_sealed(wallet_keys.seal_private, login.password_sealed,
                              wallet_password_context(txn)) == b"alice-wallet-pw"

    # conditions → confirming, then ⑪' once, however often the terminal presses (R33).
    for kind, html in (("conditions", wallet_contents.conditions("wallet-a", info, ["visa"])),
                       ("confirming", wallet_contents.confirming(info, "visa", "lump-sum"))):
        if kind == "confirming":
            await relay.conditions(await relay.db.get(session.sid), "visa", "lump-sum",
                                   CLOCK.now_ms())
            took(ctx)
        await deliver(ctx, WALLET_CONTENTS, record(keydir, WalletContents(
            "wallet-a", txn, kind, html), "wallet-a", txn))
    s = await relay.db.get(session.sid)
    assert s.stage == flow.CONFIRMING and "1155 JPY" in " ".join(s.pages)
    first = await relay.approve(s, CLOCK.now_ms())
    again = await relay.approve(await relay.db.get(session.sid), CLOCK.now_ms())
    approvals = took(ctx)
    assert [type(m).__name__ for _, m, _, _ in approvals] == ["WalletFinalApproval"]
    assert isinstance(approvals[0][1], WalletFinalApproval)
    assert first.kind == again.kind == "progress"  # the keep-alive page (claim 11)

    # ⑬ the approval is held; an inquiry — after a dropped call too — gets it (R31, R32).
    approval = wallet_contents.approval(dataclasses.replace(
        _approval(txn), amount=Money(1155, "JPY")))
    await deliver(ctx, WALLET_CONTENTS, record(keydir, WalletContents(
        "wallet-a", txn, "approval", approval), "wallet-a", txn))
    result = await relay.inquire(await relay.db.get(session.sid))
    assert result.kind == "approval" and "1155 JPY" in result.html
    assert took(ctx) == []  # inquiries are read-only
    await relay.db.close()


def _approval(txn: str) -> Any:
    from schemas.relay import ApprovalResponse

    return ApprovalResponse(txn, "wallet-a", "shop-1", True, "", Money(1155, "JPY"), "A1")


async def test_selection_page_lists_only_designated_wallets(keydir: Path,
                                                            tmp_path: Path) -> None:
    ctx = make_ctx(keydir, tmp_path, "relay", ["relay"])
    relay = relay_of(ctx, tmp_path)
    view = await relay.pay(profile("game"), "shop-1", "cart-2", "", CLOCK.now_ms())
    (_, _req, txn, _), = took(ctx)
    info = PaymentInformation(txn, "shop-1", "2", FIG5, Money(1155, "JPY"),
                              ["wallet-b", "wallet-a"])
    await deliver(ctx, PAYMENT_INFORMATION, record(keydir, info, "shop-1", txn))
    assert took(ctx) == []  # held until the user chooses (R34)
    s = await relay.db.get(view.session.sid)
    page = relay.view(s)
    assert page.kind == "wallet-selection"
    assert page.html.count('action="/select-wallet"') == 2
    with pytest.raises(Refused) as refused:
        await relay.select_wallet(s, "wallet-z", CLOCK.now_ms())
    assert refused.value.view.kind == "error"
    assert [(t, m.kind) for t, m, _, _ in took(ctx)] == [("kessai.audit",
                                                           "undesignated-wallet")]
    await relay.select_wallet(s, "wallet-b", CLOCK.now_ms())
    (_topic, forwarded, _, _), = took(ctx)
    assert forwarded.wallet_id == "wallet-b"
    await relay.db.close()


async def test_forged_and_unknown_session_strings(keydir: Path, tmp_path: Path) -> None:
    ctx = make_ctx(keydir, tmp_path, "relay", ["relay"])
    relay = relay_of(ctx, tmp_path)
    view = await relay.pay(profile("phone"), "shop-1", "cart-3", "", CLOCK.now_ms())
    took(ctx)
    sid, tag = view.session.token.rsplit(".", 1)
    for token in ("nonsense", f"{sid}.{'A' * len(tag)}", f"rs-other.{tag}"):
        with pytest.raises(Refused) as refused:
            await relay.session_of(token, "/inquire")
        assert refused.value.view.status == 403
    assert {m.kind for _, m, _, _ in took(ctx)} == {"forged-session"}
    assert (await relay.session_of(view.session.token, "/inquire")).sid == sid
    await relay.db.close()


async def test_expired_sessions_and_contents_without_the_amount(keydir: Path,
                                                               tmp_path: Path) -> None:
    """R23: no confirming page without its amount — an error page and an audit event; a
    session string used after its lifetime gets an error page too."""
    clock = FakeClock()  # its own: this test jumps a day ahead
    ctx = make_ctx(keydir, tmp_path, "relay", ["relay"], clock)
    relay = relay_of(ctx, tmp_path)
    view = await relay.pay(profile("phone"), "shop-1", "cart-4", "alice", clock.now_ms())
    (_, _, txn, _), = took(ctx)
    info = PaymentInformation(txn, "shop-1", "4", FIG5, Money(1155, "JPY"), ["wallet-a"])
    await deliver(ctx, PAYMENT_INFORMATION, record(keydir, info, "shop-1", txn))
    took(ctx)
    await deliver(ctx, WALLET_CONTENTS, record(keydir, WalletContents(
        "wallet-a", txn, "login", wallet_contents.login("wallet-a", info),
        "session_id=c-4"), "wallet-a", txn))
    s = await relay.db.get(view.session.sid)
    await relay.login(s, "alice", "pw", clock.now_ms())
    await deliver(ctx, WALLET_CONTENTS, record(keydir, WalletContents(
        "wallet-a", txn, "conditions", wallet_contents.conditions("wallet-a", info, ["visa"])),
        "wallet-a", txn))
    await relay.conditions(await relay.db.get(s.sid), "visa", "lump-sum", clock.now_ms())
    took(ctx)
    no_total = "<Page>confirming</Page><Item><Product>Mug</Product></Item>"
    await deliver(ctx, WALLET_CONTENTS, record(keydir, WalletContents(
        "wallet-a", txn, "confirming", no_total), "wallet-a", txn))
    failed = relay.view(await relay.db.get(s.sid))
    assert failed.kind == "error" and "Total" in failed.html and "/approve" not in failed.html
    assert [m.kind for _, m, _, _ in took(ctx)] == ["conversion-failed"]
    # An approval now sends nothing and shows the error page again.
    assert (await relay.approve(await relay.db.get(s.sid), clock.now_ms())).kind == "error"
    assert took(ctx) == []
    clock.advance(relay.config.session_ttl_ms + 1)
    with pytest.raises(Refused) as refused:
        await relay.session_of(s.token, "/inquire")
    assert refused.value.view.status == 410
    assert [m.kind for _, m, _, _ in took(ctx)] == ["expired-session"]
    await relay.db.close()


async def test_two_sided_through_the_relay(keydir: Path, tmp_path: Path) -> None:
    ctx = make_ctx(keydir, tmp_path, "relay", ["relay"])
    relay = relay_of(ctx, tmp_path, TwoSided)
    view = await relay.pay(profile("phone"), "shop-1", "carol", "XXXX:1,YYYY:1",
                           CLOCK.now_ms())
    (topic, order, sid, sender), = took(ctx)
    assert topic == "kessai.order-requests" and sender == "relay" and order.session == sid
    request = PaymentRequest("shop-1", "0000000042", sid, "carol", FIG5, Money(1155, "JPY"))
    await deliver(ctx, relay_agent.WAKEUPS,
                  record(keydir, request, "shop-1", "shop-1/0000000042"))
    s = await relay.db.get(view.session.sid)
    page = relay.view(s)
    assert page.kind == "payment-request" and "1155 JPY" in page.html
    assert 'name="card"' in page.html and 'name="password"' not in page.html
    with pytest.raises(Refused):
        await relay.confirm(s, "4012888888881882", "2029-03", "", CLOCK.now_ms())
    await relay.confirm(s, "4012 8888 8888 1881", "2029-03", "", CLOCK.now_ms())
    (topic, second, key, sender), = took(ctx)
    assert (topic, key, sender) == ("kessai.settlement.second", "shop-1/0000000042", "relay")
    assert isinstance(second, SecondRequest) and second.auth_method == "channel"
    assert b"4012888888881881" not in envelope.pack_body(second)
    # The card is sealed to the settlement server, bound to this order's join key.
    settlement = keys.load_actor(keydir, "settlement")
    assert authenticators.unpack_account(crypto.open_sealed(
        settlement.seal_private, second.account_sealed,
        authenticators.account_context("shop-1/0000000042"))) == ("4012888888881881", "2029-03")
    result = PaymentResult("shop-1", "0000000042", sid, "user", "APPROVED",
                           Money(1155, "JPY"), "VIA_TERMINAL", shop_authenticator=b"t" * 32)
    await deliver(ctx, relay_agent.PAYMENT_RESULTS,
                  record(keydir, result, "settlement", "shop-1/0000000042"))
    (topic, relayed, _, _), = took(ctx)
    assert topic == "kessai.payment-results.relayed" and relayed.shop_authenticator == b"t" * 32
    shown = relay.view(await relay.db.get(sid))
    assert shown.kind == "result" and "APPROVED" in shown.html
    await relay.db.close()


async def test_signature_users_cannot_pay_through_the_relay(keydir: Path,
                                                            tmp_path: Path) -> None:
    ctx = make_ctx(keydir, tmp_path, "relay", ["relay"])
    relay = relay_of(ctx, tmp_path, TwoSided)
    with pytest.raises(Refused):
        await relay.pay(profile("phone"), "shop-1", "alice", "XXXX:1", CLOCK.now_ms())
    assert [m.kind for _, m, _, _ in took(ctx)] == ["unsupported-auth"]
    await relay.db.close()


async def test_declarations_match_the_topic_catalogue(keydir: Path, tmp_path: Path) -> None:
    ctx = make_ctx(keydir, tmp_path, "relay", ["relay"])
    relay = relay_of(ctx, tmp_path)
    ctx.routes.check()  # what the worker checks at start-up
    declared = {(r.topic, t.__name__): (sorted(r.senders), r.sender_is)
                for r in ctx.routes for t in r.types}
    assert declared == {
        (PAYMENT_INFORMATION, "PaymentInformation"): (["shop"], "shop_id"),
        (WALLET_CONTENTS, "WalletContents"): (["wallet"], "wallet_id"),
        (relay_agent.ORDER_STATUS, "OrderStatus"): (["shop"], "shop_id"),
        (relay_agent.CA_CONTENTS, "CAContents"): (["ca"], None),
        (relay_agent.CA_CONTENTS, "AuthenticationInformation"): (["ca"], None),
        (relay_agent.WAKEUPS, "PaymentRequest"): (["shop"], "shop_id"),
        (relay_agent.PAYMENT_RESULTS, "PaymentResult"): (["settlement"], None)}
    await relay.db.close()


async def test_the_door_refuses_other_senders_before_the_flows_see_them(
        keydir: Path, tmp_path: Path) -> None:
    """A shop speaks only for itself, a wallet server only for itself; the CA's contents come
    from the CA, results from the settlement server. Each refusal keeps the original bytes."""
    ctx = make_ctx(keydir, tmp_path, "relay", ["relay"])
    relay = relay_of(ctx, tmp_path)
    view = await relay.pay(profile("phone"), "shop-1", "cart-5", "alice", CLOCK.now_ms())
    (_, _, txn, _), = took(ctx)
    info = PaymentInformation(txn, "shop-1", "5", FIG5, Money(1155, "JPY"), ["wallet-a"])
    refused = [
        (PAYMENT_INFORMATION, record(keydir, info, "shop-2", txn)),
        (WALLET_CONTENTS, record(keydir, WalletContents("wallet-a", txn, "error", ""),
                                 "wallet-b", txn)),
        (relay_agent.CA_CONTENTS, record(keydir, CAContents("r-1", "<Result>x</Result>"),
                                         "shop-1", "r-1")),
        (relay_agent.PAYMENT_RESULTS, record(keydir, PaymentResult(
            "shop-1", "5", "s", "user", "APPROVED", Money(1155, "JPY"), "VIA_TERMINAL"),
            "shop-1", "shop-1/5")),
        (PAYMENT_INFORMATION, record(keydir, WalletContents("wallet-a", txn, "login", ""),
                                     "wallet-a", txn)),
    ]
    for topic, rec in refused:
        await deliver(ctx, topic, rec)
    assert [d[0] for d in ctx.dead] == ["sender_mismatch", "sender_mismatch",
                                        "unauthorized_sender", "unauthorized_sender",
                                        "unexpected_type"]
    assert [d[5] for d in ctx.dead] == [rec.raw for _, rec in refused]
    assert took(ctx) == []
    assert (await relay.db.get(view.session.sid)).stage == flow.PROCEDURE
    await relay.db.close()


async def test_a_failing_handler_is_dead_lettered_and_the_next_record_handled(
        keydir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = make_ctx(keydir, tmp_path, "relay", ["relay"])
    relay = relay_of(ctx, tmp_path)
    await relay.pay(profile("phone"), "shop-1", "cart-6", "alice", CLOCK.now_ms())
    (_, _, txn, _), = took(ctx)
    real = relay.db.by_txn
    calls: list[str] = []

    async def fails_once(txn_id: str) -> Any:
        calls.append(txn_id)
        if len(calls) == 1:
            raise RuntimeError("database is locked")
        return await real(txn_id)

    monkeypatch.setattr(relay.db, "by_txn", fails_once)
    info = record(keydir, PaymentInformation(txn, "shop-1", "6", FIG5, Money(1155, "JPY"),
                                             ["wallet-a"]), "shop-1", txn)
    await deliver(ctx, PAYMENT_INFORMATION, info)
    (dead,) = ctx.dead
    assert dead[:6] == ("handler_failed", "RuntimeError", PAYMENT_INFORMATION, info.partition,
                        info.offset, info.raw)
    assert took(ctx) == []
    # The worker goes on: the next record (here the redelivery) is handled.
    await deliver(ctx, PAYMENT_INFORMATION, info)
    (topic, forwarded, _, _), = took(ctx)
    assert topic == "kessai.wallet.inbox" and forwarded.payment_information == info.raw
    await relay.db.close()


# -- the shop's payment processing section (④→⑤) ---------------------------------------------

async def test_shop_prices_the_cart_and_designates_wallets(keydir: Path,
                                                           tmp_path: Path) -> None:
    ctx = make_ctx(keydir, tmp_path, "shop", list(devdata.SHOPS))
    orders, carts = OrderDB(tmp_path / "shop.sqlite"), CartDB(tmp_path / "shop.sqlite")
    shops, wallets = ctx.registry.actors_of("shop"), ctx.registry.actors_of("wallet")
    section = PaymentProcessing(ctx, orders, carts,
                                designated_wallets("shop-2=wallet-b", shops, wallets))
    await carts.put("shop-1", "cart-9", added(added([], "XXXX", 1), "YYYY", 1), 0)
    req = ProcedureRequest("txn-1", "shop-1", "cart-9", "phone")
    await section.on_procedure_request(record(keydir, req, "relay", "txn-1"))
    out = took(ctx)
    assert [t for t, *_ in out] == ["kessai.relay.payment-information", "kessai.order-status"]
    info = out[0][1]
    assert info.amount == Money(1155, "JPY") and info.usable_wallets == ["wallet-a", "wallet-b"]
    await section.on_procedure_request(record(keydir, req, "relay", "txn-1"))  # redelivery
    assert took(ctx)[0][1].order_id == info.order_id  # the same order
    # Only the relay may ask (the door refuses anyone else before the handler runs); an
    # unknown cart is NOT_PAID under the txn id.
    procedure.register(ctx, orders, {})
    assert admit(ctx.routes, PROCEDURE_REQUESTS, req, "terminal").reason == UNAUTHORIZED_SENDER
    assert admit(ctx.routes, PROCEDURE_REQUESTS, req, "relay").handler is not None
    await section.on_procedure_request(record(keydir, dataclasses.replace(
        req, txn_id="txn-2", shop_id="shop-2", cart_id="nope"), "relay", "txn-2"))
    (_topic, status, cid, _), = took(ctx)
    assert (status.status, status.session, cid) == ("NOT_PAID", "txn-2", "txn-2")
    assert designated_wallets("shop-2=wallet-b", shops, wallets) == {
        "shop-1": ["wallet-a", "wallet-b"], "shop-2": ["wallet-b"]}  # not named: every one
    with pytest.raises(ConfigError):
        designated_wallets("shop-1=wallet-z", shops, wallets)
    await orders.close()
    await carts.close()
