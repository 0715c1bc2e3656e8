"""The payment gateway (seeds 000/001) driven through a recording AgentContext, no broker:
certificate, signature and shop checks before any authorization (R15, R41, R42), the
settlement host's answer back as the approval response (R16), and idempotent redelivery."""

from __future__ import annotations

import dataclasses

import pytest

from agents.gateway import agent as gateway_agent
from agents.gateway import checks
from agents.gateway.routing import DEFAULT_HOSTS, GatewayPolicy, parse_hosts, settlement_host
from agents.gateway.store import GatewayStore
from agents.issuer.agent import admission_problem, open_account
from agents.shop import carrier
from agents.wallet.request import payment_request
from agents.wallet.store import Card, seed_from_secrets
from kessai import certificates, crypto, envelope, keys
from kessai.errors import ConfigError
from kessai.handlers import UNAUTHORIZED_SENDER, admit
from kessai.runtime import Inbound
from schemas.relay import (
    ApprovalResponse,
    ForwardedApproval,
    ForwardedPaymentRequest,
    PaymentInformation,
)
from schemas.v1 import Authorization, AuthorizationResult, LineItem, OrderContent
from sim import devkeys
from tests.recording import CLOCK, context, inbound, signed

AUTHORIZATIONS = "kessai.authorizations"
PAYMENT_REQUESTS = "kessai.gateway.payment-requests"
AUTH_RESULTS = "kessai.authorization-results"
APPROVALS = "kessai.shop.approvals"
CONTENT = OrderContent([LineItem("XXXX", "Peanut butter", 500, 1),
                        LineItem("YYYY", "Grape jelly", 600, 1)], "JPY", 55, 1155)
ALICE_PAN = "4111111111111111"


@pytest.fixture(scope="module")
def keydir(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    devkeys.init(d)
    return d


class World:
    """A gateway worker with its handlers declared; records go through the runtime's door."""

    def __init__(self, keydir, tmp_path, policy=None):
        policy = policy or GatewayPolicy()
        self.ctx = context(keydir, tmp_path, "gateway", gateway_agent.ACTORS)
        self.store = GatewayStore(tmp_path / "gateway.sqlite")
        self.gateway = gateway_agent.Gateway(self.ctx, self.store, policy,
                                             self.ctx.actor_keys("gateway").seal_private)
        gateway_agent.declare(self.ctx, self.gateway)
        self.registry = self.ctx.registry
        self.k = {a: keys.load_actor(keydir, a)
                  for a in ("shop-1", "shop-2", "wallet-a", "wallet-b", "issuer", "ca",
                            "settlement", "relay")}
        self.card: Card = next(c for u, c in seed_from_secrets(
            "wallet-a", self.k["wallet-a"].secrets["users"]) if u.user_id == "alice")

    def request(self, txn="t-1", card=None, shop="shop-1", pi_shop="shop-1", resign=None,
                wallet="wallet-a") -> bytes:
        """The wallet's signed SetPaymentRequest envelope."""
        pi = PaymentInformation(txn, pi_shop, "o-1", CONTENT, CONTENT.amount, ["wallet-a"])
        req = payment_request(card or self.card, txn_id=txn, shop_id=shop,
                              payment_information=signed(pi, self.k[pi_shop], txn),
                              method="lump-sum", gateway_public=self.registry.sealing["gateway"][1])
        if resign is not None:
            req = dataclasses.replace(req, user_signature=resign)
        return signed(req, self.k[wallet], txn)

    def forward(self, original: bytes, txn="t-1", shop="shop-1") -> Inbound:
        return inbound(signed(ForwardedPaymentRequest(txn, original), self.k[shop], txn),
                       self.registry, PAYMENT_REQUESTS)

    async def deliver(self, record: Inbound) -> None:
        """``record`` through the door (the same record again is a redelivery)."""
        await self.ctx.door.receive(record.topic, record.partition, record.offset, record.key,
                                    record.raw)

    async def pay(self, original: bytes, txn="t-1", shop="shop-1") -> Inbound:
        record = self.forward(original, txn, shop)
        await self.deliver(record)
        return record

    async def answer(self, approved=True, txn="t-1", sender="issuer", key=None):
        jk = f"gw/{txn}"
        result = AuthorizationResult(jk, approved, "approved" if approved else "over_limit",
                                     "XYZ123" if approved else "")
        record = inbound(signed(result, self.k[sender], jk), self.registry, AUTH_RESULTS)
        await self.ctx.door.receive(AUTH_RESULTS, 0, record.offset, (key or jk).encode(),
                                    record.raw)


@pytest.fixture
async def world(keydir, tmp_path):
    w = World(keydir, tmp_path)
    yield w
    await w.store.close()


def declined(world) -> ApprovalResponse:
    assert world.ctx.take(AUTHORIZATIONS) == []  # R41: no settlement instruction
    (out,) = world.ctx.take(APPROVALS)
    assert out.key == "t-1" and out.sender == "gateway"
    assert not out.msg.approved
    return out.msg


async def test_valid_request_authorizes_once_with_a_gw_key(world, keydir):
    await world.pay(world.request())
    (auth,) = world.ctx.take(AUTHORIZATIONS)
    msg: Authorization = auth.msg
    assert auth.key == msg.join_key == "gw/t-1"
    assert msg.amount == CONTENT.amount and msg.payee == "payee:shop-1"
    assert ALICE_PAN.encode() not in auth.raw
    # The settlement host (the issuer) admits it and opens the card for this join key.
    issuer = keys.load_actor(keydir, "issuer")
    assert admission_problem(msg, "gateway", msg.join_key) is None
    assert open_account(issuer.seal_private, msg) == (ALICE_PAN, "2031-12")
    assert world.ctx.take() == []


async def test_forged_certificate_is_declined(world):
    forged = certificates.issue(world.k["shop-1"].signing_private,
                                dataclasses.replace(world.card.certificate, ca_signature=b""))
    await world.pay(world.request(card=dataclasses.replace(world.card, certificate=forged)))
    assert declined(world).reason == checks.CERTIFICATE_REJECTED
    (audit,) = world.ctx.take("kessai.audit")
    assert "not signed by the CA" in audit.msg.detail


async def test_expired_certificate_is_declined(world):
    expired = certificates.issue(world.k["ca"].signing_private, dataclasses.replace(
        world.card.certificate, not_after_ms=CLOCK.now_ms() - 1, ca_signature=b""))
    await world.pay(world.request(card=dataclasses.replace(world.card, certificate=expired)))
    assert declined(world).reason == checks.CERTIFICATE_REJECTED
    assert "expired" in world.ctx.take("kessai.audit")[0].msg.detail


async def test_revoked_serial_is_declined(keydir, tmp_path):
    w = World(keydir, tmp_path, GatewayPolicy(revoked=frozenset({"dev-0001"})))
    try:
        assert w.card.certificate.serial == "dev-0001"
        await w.pay(w.request())
        assert declined(w).reason == checks.CERTIFICATE_REJECTED
        assert "revoked" in w.ctx.take("kessai.audit")[0].msg.detail
    finally:
        await w.store.close()


async def test_bad_user_signature_is_declined(world):
    await world.pay(world.request(resign=b"\x00" * 64))
    assert declined(world).reason == checks.BAD_USER_SIGNATURE
    # Signed with some other key than the certified one.
    other = dataclasses.replace(world.card, signing_key=crypto.new_signing_key())
    await world.pay(world.request(card=other))
    assert declined(world).reason == checks.BAD_USER_SIGNATURE


async def test_shop_mismatch_is_declined(world):
    # shop-2 forwards a payment whose payment information is shop-1's.
    await world.pay(world.request(), shop="shop-2")
    resp = declined(world)
    assert resp.reason == checks.SHOP_MISMATCH and resp.shop_id == "shop-1"
    assert resp.amount == CONTENT.amount
    # The request names shop-2 but carries shop-1's payment information.
    await world.pay(world.request(shop="shop-2"), shop="shop-2")
    assert declined(world).reason == checks.BAD_PAYMENT_INFORMATION
    # A declined txn is not taken: the honest request still goes through afterwards.
    await world.pay(world.request())
    assert len(world.ctx.take(AUTHORIZATIONS)) == 1


async def test_certificate_of_another_wallet_is_declined(world):
    bob = next(c for u, c in seed_from_secrets(
        "wallet-b", world.k["wallet-b"].secrets["users"]) if u.user_id == "bob")
    # wallet-a sends a request with a wallet-b certificate (and wallet-b's user key).
    await world.pay(world.request(card=dataclasses.replace(bob, wallet_id="wallet-a")))
    assert declined(world).reason == checks.CERTIFICATE_WALLET_MISMATCH


async def test_what_is_not_a_wallet_request_is_dead_lettered(world):
    await world.pay(world.request(), shop="shop-1")
    world.ctx.take()
    # The relay is no shop: the door refuses its forward, keeping the original bytes.
    record = inbound(signed(ForwardedPaymentRequest("t-2", world.request("t-2")),
                            world.k["relay"], "t-2"), world.registry, PAYMENT_REQUESTS)
    await world.deliver(record)
    # Another type on the topic: the wallet's request itself, not forwarded by a shop.
    await world.deliver(inbound(world.request("t-7"), world.registry, PAYMENT_REQUESTS))
    # A shop cannot sign a request in a wallet's name; garbage; a forward naming another txn.
    await world.pay(world.request("t-3", wallet="wallet-b"), txn="t-3")
    await world.pay(b"garbage", txn="t-4")
    await world.pay(world.request("t-5"), txn="t-6")
    assert [d[0] for d in world.ctx.dead] == (
        ["unauthorized_sender", "unexpected_type"] + ["not_a_payment_request"] * 3)
    assert world.ctx.dead[0][5] == record.raw
    assert world.ctx.take() == []


def test_declarations_match_the_topic_catalogue(world):
    world.ctx.routes.check()  # what the worker checks at start-up
    assert [(r.topic, r.types, sorted(r.senders)) for r in world.ctx.routes] == [
        (PAYMENT_REQUESTS, (ForwardedPaymentRequest,), ["shop"]),
        (AUTH_RESULTS, (AuthorizationResult,), ["issuer"])]


async def test_a_failing_handler_is_dead_lettered_and_the_next_record_handled(
        world, monkeypatch):
    real = world.store.claim
    calls = []

    async def fails_once(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("database is locked")
        return await real(*args, **kwargs)

    monkeypatch.setattr(world.store, "claim", fails_once)
    first = await world.pay(world.request())
    (dead,) = world.ctx.dead
    assert dead[:6] == ("handler_failed", "RuntimeError", PAYMENT_REQUESTS, first.partition,
                        first.offset, first.raw)
    assert world.ctx.take(AUTHORIZATIONS) == []
    # The worker goes on: the next record (here the redelivery) is handled.
    await world.deliver(first)
    (auth,) = world.ctx.take(AUTHORIZATIONS)
    assert auth.key == "gw/t-1"


async def test_authorization_result_becomes_the_approval_response(world):
    await world.pay(world.request())
    world.ctx.take()
    await world.answer(approved=True)
    (out,) = world.ctx.take(APPROVALS)
    resp: ApprovalResponse = out.msg
    assert out.key == "t-1"
    assert (resp.txn_id, resp.wallet_id, resp.shop_id, resp.approved, resp.amount,
            resp.auth_code) == ("t-1", "wallet-a", "shop-1", True, CONTENT.amount, "XYZ123")
    # A repeated result: the same response, first answer kept.
    await world.answer(approved=False)
    (again,) = world.ctx.take(APPROVALS)
    assert again.msg == resp


async def test_declined_by_the_host(world):
    await world.pay(world.request())
    world.ctx.take()
    await world.answer(approved=False)
    (out,) = world.ctx.take(APPROVALS)
    assert not out.msg.approved and out.msg.reason == "over_limit"


async def test_results_for_other_keys_or_senders_are_ignored(world):
    await world.pay(world.request())
    world.ctx.take()
    await world.answer(key="shop-1/order-9")  # a seed 003 order: not the gateway's
    assert world.ctx.take() == []
    # Only a settlement host answers: the door refuses the settlement server's record.
    await world.answer(sender="settlement")
    assert world.ctx.take() == [] and [d[0] for d in world.ctx.dead] == ["unauthorized_sender"]
    # Only for a txn it was asked about.
    await world.answer(txn="t-unknown")
    assert world.ctx.take(APPROVALS) == []
    assert [a.msg.kind for a in world.ctx.take("kessai.audit")] == ["unexpected-result"]


async def test_redelivery_is_idempotent(world):
    original = world.request()
    record = await world.pay(original)
    assert len(world.ctx.take(AUTHORIZATIONS)) == 1
    # Still waiting for the host: the same join key is asked again (the host dedupes on it).
    await world.deliver(record)
    (again,) = world.ctx.take(AUTHORIZATIONS)
    assert again.key == "gw/t-1"
    await world.answer()
    (resp,) = world.ctx.take(APPROVALS)
    # Decided: the redelivered request, or the same request carried again, gets the stored
    # response and no authorization.
    await world.deliver(record)
    await world.pay(original)
    out = world.ctx.take()
    assert [s.topic for s in out] == [APPROVALS, APPROVALS]
    assert all(s.msg == resp.msg for s in out)
    # Another request for the same txn (new card seal, new signature) is refused.
    await world.pay(world.request())
    assert world.ctx.take(APPROVALS) == [] and world.ctx.take(AUTHORIZATIONS) == []
    assert [a.msg.kind for a in world.ctx.take("kessai.audit")] == ["conflicting-request"]


async def test_the_shop_carries_request_and_approval_unchanged(world, keydir, tmp_path):
    shop_ctx = context(keydir, tmp_path, "shop", ["shop-1", "shop-2"])
    shop = carrier.Carrier(shop_ctx)
    original = world.request()
    await shop.on_payment_request(inbound(original, world.registry))
    (fwd,) = shop_ctx.take()
    assert fwd.topic == "kessai.gateway.payment-requests" and fwd.sender == "shop-1"
    assert fwd.msg.original == original and ALICE_PAN.encode() not in fwd.raw
    await world.deliver(inbound(fwd.raw, world.registry, PAYMENT_REQUESTS))
    assert len(world.ctx.take(AUTHORIZATIONS)) == 1
    await world.answer()
    (resp,) = world.ctx.take(APPROVALS)
    await shop.on_approval(inbound(resp.raw, world.registry))
    (back,) = shop_ctx.take()
    assert back.topic == "kessai.wallet.inbox" and back.sender == "shop-1"
    assert isinstance(back.msg, ForwardedApproval) and back.msg.original == resp.raw
    assert back.msg.wallet_id == "wallet-a" and back.key == "t-1"
    # Only a wallet's request, only the gateway's approval are carried.
    await shop.on_payment_request(inbound(signed(envelope.open_record(
        original, world.registry).message, world.k["relay"], "t-1"), world.registry))
    assert [s.topic for s in shop_ctx.take()] == ["kessai.audit"]
    # The gateway's approval only: the door admits no other sender to the handler.
    carrier.register(shop_ctx)
    assert admit(shop_ctx.routes, APPROVALS, resp.msg, "issuer").reason == UNAUTHORIZED_SENDER
    assert admit(shop_ctx.routes, APPROVALS, resp.msg, "gateway").handler is not None


def test_issuer_admits_gateway_keys_only_under_gw():
    auth = Authorization("gw/t-1", CONTENT.amount, "payee:shop-1", b"")
    assert admission_problem(auth, "gateway", "gw/t-1") is None
    assert admission_problem(auth, "shop-1", "gw/t-1") == "unauthorized_sender"
    assert admission_problem(auth, "settlement", "gw/t-1") == "foreign_join_key"
    other = Authorization("shop-1/o-1", CONTENT.amount, "payee:shop-1", b"")
    assert admission_problem(other, "gateway", "shop-1/o-1") == "foreign_join_key"
    assert admission_problem(other, "settlement", "shop-1/o-1") is None


def test_settlement_host_routing():
    assert settlement_host("visa") == settlement_host("MasterCard") == "issuer"
    assert settlement_host("barter") is None
    assert set(DEFAULT_HOSTS.values()) == {"issuer"}
    hosts = parse_hosts("visa=issuer-a, jcb=issuer-b")
    assert settlement_host("jcb", hosts) == "issuer-b" and settlement_host("amex", hosts) is None
    with pytest.raises(ConfigError):
        parse_hosts("visa")
    policy = GatewayPolicy.from_env({"KESSAI_GATEWAY_REVOKED": "dev-0001, dev-0002,",
                                     "KESSAI_GATEWAY_HOSTS": ""})
    assert policy.revoked == {"dev-0001", "dev-0002"} and policy.hosts == DEFAULT_HOSTS
