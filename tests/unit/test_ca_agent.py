"""The CA (seeds 000/001, claims 12, 13) driven through a recording AgentContext, no broker:
a registration gives a certificate the CA's key verifies, the card sealed so only the wallet
opens it, terminal contents without the card number; a bad card is rejected; the wallet
stores what the relay forwards and its new user can then pay (R38, R39)."""

from __future__ import annotations

import re

import pytest

from agents.ca import agent as ca_agent
from agents.ca import rules
from agents.ca.store import CAStore
from agents.wallet import agent as wallet_agent
from agents.wallet.store import WalletStore
from kessai import authenticators, certificates, crypto, keys
from kessai.errors import SealError
from kessai.runtime import Inbound
from protocols.sealed import (
    ca_card_context,
    pack_registration,
    unpack_registration,
    wallet_enrol_context,
    wallet_password_context,
)
from schemas.relay import (
    AuthenticationInformation,
    CAContents,
    CARegistration,
    PaymentInformation,
    WalletLogin,
    WalletPaymentInformation,
)
from schemas.v1 import LineItem, OrderContent
from sim import devkeys
from tests.recording import (  # CLOCK: 2023-11, a card expiring 2030 is valid
    CLOCK,
    context,
    hosted,
    inbound,
    signed,
)

CA_CONTENTS = "kessai.relay.ca-contents"
REGISTRATIONS = "kessai.ca.registrations"
WALLET_INBOX = "kessai.wallet.inbox"
PAN = "4012888888881881"


@pytest.fixture(scope="module")
def keydir(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    devkeys.init(d)
    return d


class World:
    """A CA worker with its handler declared; records go through the runtime's door."""

    def __init__(self, keydir, tmp_path):
        self.ctx = context(keydir, tmp_path, "ca", ca_agent.ACTORS)
        self.ca = ca_agent.CA(self.ctx, CAStore(tmp_path / "ca.sqlite"))
        ca_agent.declare(self.ctx, self.ca)
        self.registry = self.ctx.registry
        self.relay = keys.load_actor(keydir, "relay")

    def registration(self, request_id="r-1", pan=PAN, expiry="2030-04", brand="visa",
                     password="erin-wallet-pw", user="erin", wallet="wallet-b",
                     context=None) -> CARegistration:
        sealed = crypto.seal(self.registry.sealing["ca"][1],
                             pack_registration(pan, expiry, password),
                             context or ca_card_context(request_id))
        return CARegistration(request_id, user, wallet, brand, sealed)

    async def deliver(self, record: Inbound) -> None:
        """``record`` through the door (the same record again is a redelivery)."""
        await self.ctx.door.receive(REGISTRATIONS, record.partition, record.offset, record.key,
                                    record.raw)

    async def register(self, reg: CARegistration, sender=None) -> Inbound:
        record = inbound(signed(reg, sender or self.relay, reg.request_id), self.registry,
                         REGISTRATIONS)
        await self.deliver(record)
        return record


@pytest.fixture
async def world(keydir, tmp_path):
    w = World(keydir, tmp_path)
    yield w
    await w.ca.store.close()


async def test_registration_issues_a_certificate_for_the_wallet(world, keydir):
    await world.register(world.registration())
    info_sent, page_sent = world.ctx.take(CA_CONTENTS)
    assert info_sent.key == page_sent.key == "r-1" and info_sent.sender == "ca"
    info: AuthenticationInformation = info_sent.msg
    cert = info.certificate
    # The certificate verifies with the CA's public key from the registry.
    certificates.check(cert, world.registry.signing_key("ca")[1], CLOCK.now_ms())
    assert (cert.user_id, cert.wallet_id, cert.brand) == ("erin", "wallet-b", "visa")
    assert cert.not_after_ms == CLOCK.now_ms() + ca_agent.VALIDITY_MS
    # Card and key are sealed to the wallet: no card number in what the relay handles, and
    # neither the CA's key nor another wallet's opens them; wallet-b does.
    assert PAN.encode() not in info_sent.raw and PAN.encode() not in page_sent.raw
    context = wallet_enrol_context("r-1")
    for other in ("ca", "wallet-a"):
        with pytest.raises(SealError):
            crypto.open_sealed(keys.load_actor(keydir, other).seal_private, info.card_sealed,
                               context)
    wallet_b = keys.load_actor(keydir, "wallet-b").seal_private
    assert authenticators.unpack_account(
        crypto.open_sealed(wallet_b, info.card_sealed, context)) == (PAN, "2030-04")
    key = crypto.open_sealed(wallet_b, info.signing_key_sealed, context)
    assert crypto.signing_public(key) == cert.public_key
    # The password travels only as a salted hash.
    assert set(info.extra) == {"password_salt", "password_hash"}
    assert crypto.password_ok("erin-wallet-pw", bytes.fromhex(info.extra["password_salt"]),
                              bytes.fromhex(info.extra["password_hash"]))
    assert b"erin-wallet-pw" not in info_sent.raw
    # The terminal's contents: registered, serial, brand, last four digits at most.
    page: CAContents = page_sent.msg
    assert page.html.startswith("<Result>registered</Result>")
    assert f"<Serial>{cert.serial}</Serial>" in page.html and "<Brand>visa</Brand>" in page.html
    assert "<CardEnding>1881</CardEnding>" in page.html
    assert not re.search(r"\d{5,}", page.html)


async def test_redelivery_gives_the_same_certificate(world):
    record = await world.register(world.registration())
    first = world.ctx.take(CA_CONTENTS)
    await world.deliver(record)
    again = world.ctx.take(CA_CONTENTS)
    assert [s.msg for s in again] == [s.msg for s in first]


@pytest.mark.parametrize(("kw", "reason"), [
    ({"pan": "4012888888881882"}, rules.INVALID_CARD),  # Luhn fails
    ({"pan": "12345"}, rules.INVALID_CARD),
    ({"expiry": "2020-01"}, rules.EXPIRED_CARD),
    ({"brand": "mastercard"}, rules.BRAND_MISMATCH),
    ({"wallet": "wallet-z"}, ca_agent.UNKNOWN_WALLET),
    ({"context": b"kessai/ca-card/v1\x00r-other"}, ca_agent.UNREADABLE_CARD),
])
async def test_bad_registrations_are_rejected_without_a_certificate(world, kw, reason):
    await world.register(world.registration(**kw))
    (page,) = world.ctx.take(CA_CONTENTS)
    assert isinstance(page.msg, CAContents)
    assert page.msg.html == f"<Result>rejected</Result><Reason>{reason}</Reason>"
    assert world.ctx.take() == []


async def test_only_the_relay_may_register(world, keydir):
    record = await world.register(world.registration(),
                                  sender=keys.load_actor(keydir, "shop-1"))
    assert world.ctx.take() == [] and world.ctx.dead[0][0] == "unauthorized_sender"
    assert world.ctx.dead[0][5] == record.raw
    # Nor anything but a registration, from the relay either.
    await world.deliver(inbound(signed(CAContents("r-1", "<Result>registered</Result>"),
                                       world.relay, "r-1"), world.registry, REGISTRATIONS))
    assert world.ctx.take() == [] and world.ctx.dead[1][0] == "unexpected_type"


def test_declarations_match_the_topic_catalogue(world):
    world.ctx.routes.check()  # what the worker checks at start-up
    assert [(r.topic, r.types, sorted(r.senders)) for r in world.ctx.routes] == [
        (REGISTRATIONS, (CARegistration,), ["relay"])]


async def test_a_failing_handler_is_dead_lettered_and_the_next_record_handled(
        world, monkeypatch):
    real = world.ca.store.get
    calls = []

    async def fails_once(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("database is locked")
        return await real(*args, **kwargs)

    monkeypatch.setattr(world.ca.store, "get", fails_once)
    first = await world.register(world.registration())
    (dead,) = world.ctx.dead
    assert dead[:6] == ("handler_failed", "RuntimeError", REGISTRATIONS, first.partition,
                        first.offset, first.raw)
    assert world.ctx.take() == []
    # The worker goes on: the next registration gets its certificate.
    await world.register(world.registration("r-2"))
    info, page = world.ctx.take(CA_CONTENTS)
    assert isinstance(info.msg, AuthenticationInformation) and info.key == "r-2"
    assert page.msg.html.startswith("<Result>registered</Result>")


def test_registration_plaintext_and_rules():
    assert unpack_registration(authenticators.pack_account(PAN, "2030-04")).password == ""
    reg = unpack_registration(pack_registration(PAN, "2030-04", "pw"))
    assert reg.password == "pw" and PAN not in repr(reg) and "pw" not in repr(reg)
    with pytest.raises(ValueError):
        unpack_registration(pack_registration(PAN, "2030-04")[:-3] + b"\xa0\xa0\xa0")
    assert rules.brand_of("4111111111111111") == "visa"
    assert rules.brand_of("5555555555554444") == "mastercard"
    assert rules.brand_of("2221000000000009") == "mastercard"
    assert rules.brand_of("3530111333300000") == "jcb"
    assert rules.brand_of("9999") is None
    assert rules.certified_brand("5555555555554444", "") == "mastercard"


async def test_the_wallet_stores_what_the_relay_forwards_and_the_user_can_log_in(
        world, keydir, tmp_path):
    await world.register(world.registration())
    info_sent, _ = world.ctx.take(CA_CONTENTS)
    wallet_ctx = context(keydir, tmp_path, "wallet", hosted(wallet_agent, keydir))
    store = WalletStore(tmp_path / "wallet.sqlite")
    wallet_agent.declare(wallet_ctx, wallet_agent.Wallet(wallet_ctx, store))

    async def to_wallet(record: Inbound) -> None:
        await wallet_ctx.door.receive(WALLET_INBOX, 0, record.offset, record.key, record.raw)

    try:
        # The relay forwards the CA's authentication information to the wallet (claim 12).
        forwarded = AuthenticationInformation(**{**info_sent.msg.__dict__,
                                                 "forwarded_by": "relay"})
        await to_wallet(inbound(signed(forwarded, world.relay, "r-1"), world.registry))
        assert wallet_ctx.take() == []
        (card,) = await store.cards("wallet-b", "erin")
        assert card.certificate == info_sent.msg.certificate and card.pan == PAN
        # The new user pays: payment information for wallet-b, login with the chosen password.
        shop = keys.load_actor(keydir, "shop-1")
        content = OrderContent([LineItem("MUG1", "Mug", 1800, 1)], "JPY", 0, 1800)
        pi = PaymentInformation("t-e", "shop-1", "o-e", content, content.amount, ["wallet-b"])
        await to_wallet(inbound(signed(WalletPaymentInformation(
            "wallet-b", "t-e", signed(pi, shop, "t-e")), world.relay, "t-e"), world.registry))
        (login,) = wallet_ctx.take("kessai.relay.wallet-contents")
        cookie = login.msg.set_cookie.split(";")[0]
        password = crypto.seal(world.registry.sealing["wallet-b"][1], b"erin-wallet-pw",
                               wallet_password_context("t-e"))
        await to_wallet(inbound(signed(WalletLogin("wallet-b", "t-e", cookie, "erin",
                                                         password), world.relay, "t-e"),
                                      world.registry))
        (out,) = wallet_ctx.take("kessai.relay.wallet-contents")
        assert out.msg.kind == "conditions" and "<Brand>visa</Brand>" in out.msg.html
        # A forged certificate (not the CA's) is not stored.
        bad = AuthenticationInformation(**{**forwarded.__dict__, "request_id": "r-x",
                                           "certificate": certificates.issue(
                                               shop.signing_private, info_sent.msg.certificate)})
        await to_wallet(inbound(signed(bad, world.relay, "r-x"), world.registry))
        (audit,) = wallet_ctx.take("kessai.audit")
        assert audit.msg.kind == "bad-enrolment" and "not signed by the CA" in audit.msg.detail
    finally:
        await store.close()
