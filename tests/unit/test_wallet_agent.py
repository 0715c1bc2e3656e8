"""The server wallet (seeds 000/001) driven through a recording AgentContext, no broker:
login (R10, R11), cookie-only correlation (R29), conditions and confirming information (R12),
one payment request per final approval (R13, R33, R44) with the card sealed and the request
signed (R40), and the approval forwarded back (R16)."""

from __future__ import annotations

import re

import pytest

from agents.wallet import agent as wallet_agent
from agents.wallet.store import WalletStore, seed_from_secrets
from kessai import authenticators, certificates, crypto, envelope, keys
from kessai.errors import SealError
from kessai.runtime import Inbound
from protocols.contents import tagged_payment_information
from protocols.sealed import wallet_password_context
from schemas.relay import (
    ApprovalResponse,
    AuthenticationInformation,
    ForwardedApproval,
    PaymentInformation,
    SetPaymentRequest,
    WalletConditions,
    WalletContents,
    WalletFinalApproval,
    WalletLogin,
    WalletPaymentInformation,
)
from schemas.v1 import LineItem, OrderContent
from sim import devdata, devkeys
from tests import recording
from tests.recording import CLOCK, Sent, context, hosted, signed

INBOX = "kessai.wallet.inbox"
CONTENTS = "kessai.relay.wallet-contents"
REQUESTS = "kessai.shop.payment-requests"
CONTENT = OrderContent([LineItem("XXXX", "Peanut <butter>", 500, 1),
                        LineItem("YYYY", "Grape jelly", 600, 1)], "JPY", 55, 1155)
ALICE_PAN = "4111111111111111"


@pytest.fixture(scope="module")
def keydir(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    devkeys.init(d)
    return d


def inbound(raw: bytes, registry, topic=INBOX) -> Inbound:
    return recording.inbound(raw, registry, topic)


class World:
    """A wallet worker, its handlers declared, plus the parties that talk to it (relay,
    shops, gateway). Records go through the runtime's door, as on the bus."""

    def __init__(self, keydir, tmp_path):
        self.ctx = context(keydir, tmp_path, "wallet", hosted(wallet_agent, keydir))
        seed = [p for w in self.ctx.keys
                for p in seed_from_secrets(w, self.ctx.actor_keys(w).secrets["users"])]
        self.store = WalletStore(tmp_path / "wallet.sqlite", seed)
        self.wallet = wallet_agent.Wallet(self.ctx, self.store)
        wallet_agent.declare(self.ctx, self.wallet)
        self.registry = self.ctx.registry
        self.k = {a: keys.load_actor(keydir, a) for a in ("relay", "shop-1", "shop-2", "gateway")}

    async def deliver(self, record: Inbound) -> None:
        """``record`` through the door (the same record again is a redelivery, not a replay)."""
        await self.ctx.door.receive(INBOX, record.partition, record.offset, record.key,
                                    record.raw)

    async def send(self, msg, sender="relay") -> Inbound:
        record = inbound(signed(msg, self.k[sender], getattr(msg, "txn_id", "c")), self.registry)
        await self.deliver(record)
        return record

    def payment_information(self, txn="t-1", shop="shop-1", signer=None,
                            usable=("wallet-a", "wallet-b")) -> bytes:
        pi = PaymentInformation(txn, shop, "o-1", CONTENT, CONTENT.amount, list(usable))
        return signed(pi, self.k[signer or shop], txn)

    async def start(self, txn="t-1", wallet="wallet-a", **kw) -> str:
        self.last_pi = self.payment_information(txn, **kw)
        await self.send(WalletPaymentInformation(wallet, txn, self.last_pi))
        (login,) = self.ctx.take(CONTENTS)
        assert login.msg.kind == "login" and login.sender == wallet
        m = re.fullmatch(r"session_id=([^;]+); Path=/", login.msg.set_cookie)
        assert m, login.msg.set_cookie
        return m.group(1)

    def sealed_password(self, password, txn="t-1", wallet="wallet-a") -> bytes:
        return crypto.seal(self.registry.sealing[wallet][1], password.encode(),
                           wallet_password_context(txn))

    async def login(self, cookie, user="alice", password="alice-wallet-pw", txn="t-1",
                    wallet="wallet-a") -> Sent:
        await self.send(WalletLogin(wallet, txn, cookie, user,
                                    self.sealed_password(password, txn, wallet)))
        (out,) = self.ctx.take(CONTENTS)
        return out

    async def confirm(self, cookie, brand="visa", method="lump-sum", txn="t-1") -> Sent:
        await self.send(WalletConditions("wallet-a", txn, cookie, brand, method))
        (out,) = self.ctx.take(CONTENTS)
        return out

    async def ready(self, txn="t-1") -> str:
        cookie = await self.start(txn)
        assert (await self.login(cookie, txn=txn)).msg.kind == "conditions"
        assert (await self.confirm(cookie, txn=txn)).msg.kind == "confirming"
        return cookie


@pytest.fixture
async def world(keydir, tmp_path):
    w = World(keydir, tmp_path)
    yield w
    await w.store.close()


async def test_payment_information_gives_login_with_cookie(world):
    cookie = await world.start()
    assert len(cookie) >= 24
    # The same payment information again (e.g. re-signed by the shop): the same session.
    await world.send(WalletPaymentInformation("wallet-a", "t-1", world.payment_information()))
    (again,) = world.ctx.take(CONTENTS)
    assert again.msg.kind == "login" and cookie in again.msg.set_cookie


async def test_payment_information_must_be_the_shops_and_name_this_wallet(world):
    await world.send(WalletPaymentInformation("wallet-a", "t-2", world.payment_information(
        "t-2", usable=("wallet-b",))))
    (out,) = world.ctx.take(CONTENTS)
    assert out.msg.kind == "error" and "does not accept" in out.msg.html
    assert out.msg.set_cookie == ""
    # shop-2 signs payment information in shop-1's name: spoofing (R42).
    await world.send(WalletPaymentInformation("wallet-a", "t-3", world.payment_information(
        "t-3", signer="shop-2")))
    (out,) = world.ctx.take(CONTENTS)
    assert out.msg.kind == "error" and "signed by shop-2" in out.msg.html
    # The amount to charge must be the items' total the user confirms.
    pi = PaymentInformation("t-4", "shop-1", "o-4", CONTENT, CONTENT.amount.times(2), ["wallet-a"])
    await world.send(WalletPaymentInformation("wallet-a", "t-4", signed(pi, world.k["shop-1"])))
    (out,) = world.ctx.take(CONTENTS)
    assert out.msg.kind == "error" and "not the items' total" in out.msg.html
    assert [a.msg.kind for a in world.ctx.take("kessai.audit")] == ["bad-payment-information"] * 3


async def test_login_failed_then_ok(world):
    cookie = await world.start()
    failed = await world.login(cookie, password="wrong")
    assert failed.msg.kind == "login-failed" and "<Error>" in failed.msg.html
    assert "wrong" not in failed.msg.html.split("<Error>")[0]  # no echo of what was typed
    # R11: a failed login does not go on to conditions or confirmation.
    await world.send(WalletConditions("wallet-a", "t-1", cookie, "visa", "lump-sum"))
    (out,) = world.ctx.take(CONTENTS)
    assert out.msg.kind == "error"
    unknown = await world.login(cookie, user="mallory")
    assert unknown.msg.kind == "login-failed"
    ok = await world.login(cookie)
    assert ok.msg.kind == "conditions"
    assert "<Brand>visa</Brand>" in ok.msg.html
    assert "<Method>lump-sum</Method><Method>installments-3</Method>" in ok.msg.html


async def test_password_sealed_for_another_txn_does_not_open(world):
    cookie = await world.start()
    await world.send(WalletLogin("wallet-a", "t-1", cookie, "alice",
                                 world.sealed_password("alice-wallet-pw", txn="t-other")))
    (out,) = world.ctx.take(CONTENTS)
    assert out.msg.kind == "login-failed"


async def test_too_many_failures_lock_the_session(world):
    cookie = await world.start()
    kinds = [(await world.login(cookie, password="x")).msg.kind for _ in range(5)]
    assert kinds == ["login-failed"] * 4 + ["error"]
    assert (await world.login(cookie)).msg.kind == "error"  # even the right password


async def test_wrong_cookie_makes_no_progress(world):
    cookie = await world.start()
    out = await world.login("not-the-cookie")
    assert out.msg.kind == "error" and out.msg.set_cookie == ""
    assert "session not recognised" in out.msg.html
    out = await world.login("")
    assert out.msg.kind == "error"
    # Another txn's session cookie does not open this one either (R29).
    other = await world.start("t-9")
    assert (await world.login(other, txn="t-1")).msg.kind == "error"
    session = await world.store.session("wallet-a", "t-1")
    assert session.state == "login" and session.user_id == ""
    # The relay may restore it as a Cookie header: that is the same session.
    assert (await world.login(f"lang=ja; session_id={cookie}")).msg.kind == "conditions"
    # Conditions and final approval with a wrong cookie do nothing either.
    assert (await world.confirm("nope")).msg.kind == "error"
    await world.send(WalletFinalApproval("wallet-a", "t-1", "nope"))
    assert [s.msg.kind for s in world.ctx.take(CONTENTS)] == ["error"]
    assert world.ctx.take(REQUESTS) == []


async def test_conditions_then_confirming_information(world):
    cookie = await world.start()
    await world.login(cookie)
    bad = await world.confirm(cookie, brand="mastercard")
    assert bad.msg.kind == "conditions" and "<Error>" in bad.msg.html
    bad = await world.confirm(cookie, method="barter")
    assert bad.msg.kind == "conditions"
    out = await world.confirm(cookie, method="installments-3")
    assert out.msg.kind == "confirming"
    html = out.msg.html
    # R12 / claims 5, 7: at least the amount and the identifier, items from the shop's info.
    assert "<Total>1155 JPY</Total>" in html and "<TxnId>t-1</TxnId>" in html
    assert ("<Item><Product>Peanut &lt;butter&gt;</Product><UnitCost>500 JPY</UnitCost>"
            "<Quant>1</Quant></Item>") in html
    assert "<Product>Grape jelly</Product>" in html
    assert "<Method>installments-3</Method>" in html
    assert ALICE_PAN not in html and ALICE_PAN[-4:] not in html


def test_tagged_payment_information_is_the_fig5_shape():
    text = tagged_payment_information(OrderContent(
        [LineItem("PC", "personal computer", 150_000, 1)], "JPY", 0, 150_000), "t-7")
    assert text == ("<Item><Product>personal computer</Product><UnitCost>150000 JPY</UnitCost>"
                    "<Quant>1</Quant></Item><Tax>0 JPY</Tax><Total>150000 JPY</Total>"
                    "<TxnId>t-7</TxnId>")


async def test_final_approval_sends_exactly_one_payment_request(world):
    cookie = await world.ready()
    first = await world.send(WalletFinalApproval("wallet-a", "t-1", cookie))
    (req,) = world.ctx.take(REQUESTS)
    assert req.key == "t-1" and req.sender == "wallet-a"
    assert world.ctx.take(CONTENTS) == []
    # R33: the user presses again, the relay's keep-alive repeats it: nothing more is sent.
    for _ in range(3):
        await world.send(WalletFinalApproval("wallet-a", "t-1", cookie))
    assert world.ctx.take(REQUESTS) == [] and world.ctx.take(CONTENTS) == []
    # A crash before the offset was committed redelivers the same record: the stored request
    # goes out again, byte for byte the same body (the gateway dedupes on it).
    await world.deliver(first)
    (again,) = world.ctx.take(REQUESTS)
    assert envelope.pack_body(again.msg) == envelope.pack_body(req.msg)
    # Nor does a login or new conditions reopen the payment.
    assert (await world.confirm(cookie)).msg.kind == "error"


async def test_final_approval_needs_confirmed_conditions(world):
    cookie = await world.start()
    await world.send(WalletFinalApproval("wallet-a", "t-1", cookie))
    (out,) = world.ctx.take(CONTENTS)
    assert out.msg.kind == "error"
    await world.login(cookie)
    await world.send(WalletFinalApproval("wallet-a", "t-1", cookie))
    (out,) = world.ctx.take(CONTENTS)
    assert out.msg.kind == "error"
    assert world.ctx.take(REQUESTS) == []


async def test_payment_request_is_sealed_and_signed(world, keydir):
    cookie = await world.ready()
    await world.send(WalletFinalApproval("wallet-a", "t-1", cookie))
    (req,) = world.ctx.take(REQUESTS)
    msg: SetPaymentRequest = req.msg
    # R40: no card number anywhere in what the shop receives.
    assert ALICE_PAN.encode() not in req.raw
    # The shop's payment information travels unchanged (R5 style: same bytes).
    assert msg.payment_information == world.last_pi
    opened = envelope.open_record(msg.payment_information, world.registry)
    assert opened.envelope.sender == "shop-1" and opened.message.txn_id == "t-1"
    # The gateway (and only it) opens the card, for this txn only.
    gw = keys.load_actor(keydir, "gateway")
    plain = crypto.open_sealed(gw.seal_private, msg.card_sealed,
                               authenticators.gateway_card_context("t-1"))
    assert authenticators.unpack_account(plain) == (ALICE_PAN, "2031-12")
    with pytest.raises(SealError):
        crypto.open_sealed(gw.seal_private, msg.card_sealed,
                           authenticators.gateway_card_context("t-2"))
    # Signed by the user's key the CA certified, and the certificate is the CA's.
    certificates.check(msg.certificate, world.registry.signing_key("ca")[1], CLOCK.now_ms())
    crypto.verify(msg.certificate.public_key, msg.user_signature,
                  authenticators.set_request_signing_bytes(msg))
    assert msg.certificate.user_id == "alice" and msg.method == "lump-sum"
    assert msg.shop_id == "shop-1" and msg.wallet_id == "wallet-a"


async def approve(world, approved=True, signer="gateway", amount=None, txn="t-1",
                  carrier="shop-1"):
    resp = ApprovalResponse(txn, "wallet-a", "shop-1", approved,
                            "approved" if approved else "over_limit",
                            amount or CONTENT.amount, "A1B2C3" if approved else "")
    await world.send(ForwardedApproval(txn, "wallet-a", signed(resp, world.k[signer], txn)),
                     sender=carrier)


async def test_approval_is_forwarded_to_the_relay(world):
    cookie = await world.ready()
    await world.send(WalletFinalApproval("wallet-a", "t-1", cookie))
    world.ctx.take(REQUESTS)
    await approve(world)
    (out,) = world.ctx.take(CONTENTS)
    assert out.msg.kind == "approval" and out.key == "t-1"
    assert "<Result>approved</Result>" in out.msg.html
    assert "<Total>1155 JPY</Total>" in out.msg.html and "<TxnId>t-1</TxnId>" in out.msg.html
    assert "<AuthCode>A1B2C3</AuthCode>" in out.msg.html
    # A repeat gets the same result again; a late final approval still sends nothing.
    await approve(world)
    (again,) = world.ctx.take(CONTENTS)
    assert again.msg.html == out.msg.html
    await world.send(WalletFinalApproval("wallet-a", "t-1", cookie))
    assert world.ctx.take(REQUESTS) == []


async def test_declined_is_forwarded_with_the_reason(world):
    cookie = await world.ready()
    await world.send(WalletFinalApproval("wallet-a", "t-1", cookie))
    await approve(world, approved=False)
    (out,) = world.ctx.take(CONTENTS)
    assert out.msg.kind == "declined" and "<Reason>over_limit</Reason>" in out.msg.html


async def test_forged_or_misrouted_approvals_are_refused(world):
    cookie = await world.ready()
    # Before the payment request: nothing to approve.
    await approve(world)
    assert world.ctx.take(CONTENTS) == []
    await world.send(WalletFinalApproval("wallet-a", "t-1", cookie))
    world.ctx.take(REQUESTS)
    await approve(world, signer="shop-1")  # the shop forges the gateway's answer
    await approve(world, carrier="shop-2")  # another shop carries it
    await approve(world, amount=CONTENT.amount.times(2))
    assert world.ctx.take(CONTENTS) == []
    audits = [a.msg.kind for a in world.ctx.take("kessai.audit")]
    assert audits == ["unexpected-approval", "bad-approval", "unexpected-approval",
                      "bad-approval"]
    assert (await world.store.session("wallet-a", "t-1")).state == "requested"


def test_declarations_match_the_topic_catalogue(world):
    world.ctx.routes.check()  # what the worker checks at start-up
    declared = {t: sorted(r.senders) for r in world.ctx.routes.on(INBOX) for t in r.types}
    assert declared == {
        WalletPaymentInformation: ["relay"], WalletLogin: ["relay"],
        WalletConditions: ["relay"], WalletFinalApproval: ["relay"],
        ForwardedApproval: ["shop"], AuthenticationInformation: ["relay"]}


async def test_admission_senders_types_and_wallets(world):
    cookie = await world.start()
    # Only the relay speaks for the terminal: a shop cannot log the user in (the door refuses
    # it, keeping the original bytes).
    login = await world.send(WalletLogin("wallet-a", "t-1", cookie, "alice",
                                         world.sealed_password("alice-wallet-pw")),
                             sender="shop-1")
    # Only a shop carries the gateway's approval; the relay cannot.
    await world.send(ForwardedApproval("t-1", "wallet-a", b"x"), sender="relay")
    # Contents go from the wallet to the relay, never into the inbox.
    await world.send(WalletContents("wallet-a", "t-1", "login", ""), sender="relay")
    assert world.ctx.take() == []
    assert [d[0] for d in world.ctx.dead] == ["unauthorized_sender", "unauthorized_sender",
                                             "unexpected_type"]
    assert world.ctx.dead[0][5] == login.raw
    assert (await world.store.session("wallet-a", "t-1")).state == "login"
    # A wallet this worker does not host: not for this worker, skipped.
    await world.send(WalletPaymentInformation("wallet-z", "t-5", world.payment_information("t-5")))
    assert world.ctx.take() == [] and len(world.ctx.dead) == 3


async def test_a_failing_handler_is_dead_lettered_and_the_next_record_handled(
        world, monkeypatch):
    real = world.store.open_session
    calls = []

    async def fails_once(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("disk full")
        return await real(*args, **kwargs)

    monkeypatch.setattr(world.store, "open_session", fails_once)
    first = await world.send(WalletPaymentInformation("wallet-a", "t-1",
                                                      world.payment_information()))
    (dead,) = world.ctx.dead
    assert dead[:2] == ("handler_failed", "RuntimeError")
    assert dead[2:6] == (INBOX, first.partition, first.offset, first.raw)
    assert world.ctx.take() == []
    # The worker goes on: the next record is handled.
    cookie = await world.start("t-2")
    assert (await world.login(cookie, txn="t-2")).msg.kind == "conditions"


async def test_wallet_b_is_separate(world):
    cookie = await world.start("t-b", wallet="wallet-b")
    out = await world.login(cookie, user="alice", txn="t-b", wallet="wallet-b")
    assert out.msg.kind == "login-failed" and out.sender == "wallet-b"  # alice is at wallet-a
    out = await world.login(cookie, user="bob", password="bob-wallet-pw", txn="t-b",
                            wallet="wallet-b")
    assert out.msg.kind == "conditions" and "<Brand>mastercard</Brand>" in out.msg.html


def test_no_card_number_in_seeded_repr(keydir):
    k = keys.load_actor(keydir, "wallet-a")
    for user, card in seed_from_secrets("wallet-a", k.secrets["users"]):
        assert ALICE_PAN not in repr(card) and "salt" not in repr(user)
        assert card.signing_key.hex() not in repr(card)
    # One worker hosts every wallet server of the key set.
    assert hosted(wallet_agent, keydir) == list(devdata.WALLETS)
