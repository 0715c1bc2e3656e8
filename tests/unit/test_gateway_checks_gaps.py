"""Gaps `make mutate` found in the gateway's checks (docs/testing.md): the decline paths with
their reason codes, shop and amount, and the accepted request's parts."""

from __future__ import annotations

import dataclasses

from agents.gateway import checks
from agents.gateway.routing import GatewayPolicy
from agents.wallet.request import payment_request
from kessai import envelope
from schemas.relay import PaymentInformation
from tests.recording import CLOCK, signed
from tests.unit.test_gateway_agent import CONTENT, World, keydir  # noqa: F401


def examine(world: World, raw: bytes, policy: GatewayPolicy | None = None,
            registry: object = None) -> checks.Accepted | checks.Declined:
    request = envelope.open_record(raw, world.registry).message
    return checks.examine(request, "shop-1", registry or world.registry,  # type: ignore[arg-type]
                          world.ctx.actor_keys("gateway").seal_private, CLOCK.now_ms(),
                          policy or GatewayPolicy())


def test_an_acceptable_request_is_accepted_with_its_parts(keydir, tmp_path) -> None:  # noqa: F811
    world = World(keydir, tmp_path)
    raw = world.request()
    verdict = examine(world, raw)
    assert isinstance(verdict, checks.Accepted)
    assert verdict.request == envelope.open_record(raw, world.registry).message
    assert (verdict.info.shop_id, verdict.info.amount, verdict.host) == (
        "shop-1", CONTENT.amount, "issuer")


def test_no_settlement_host_for_the_brand_is_declined_with_the_amount(keydir, tmp_path) -> None:  # noqa: F811
    world = World(keydir, tmp_path)
    for hosts in ({}, {"visa": "nobody", "mastercard": "nobody", "jcb": "nobody"}):
        verdict = examine(world, world.request(), GatewayPolicy(hosts=hosts))
        assert isinstance(verdict, checks.Declined)
        assert (verdict.reason, verdict.shop_id, verdict.amount) == (
            checks.UNKNOWN_BRAND, "shop-1", CONTENT.amount)


def test_no_ca_key_in_the_registry_rejects_the_certificate(keydir, tmp_path) -> None:  # noqa: F811
    world = World(keydir, tmp_path)
    raw = world.request()
    without_ca = dataclasses.replace(world.registry, signing={
        a: k for a, k in world.registry.signing.items() if a != "ca"})
    request = envelope.open_record(raw, world.registry).message
    verdict = checks.examine(request, "shop-1", without_ca,
                             world.ctx.actor_keys("gateway").seal_private, CLOCK.now_ms(),
                             GatewayPolicy())
    assert isinstance(verdict, checks.Declined)
    assert (verdict.reason, verdict.amount) == (checks.CERTIFICATE_REJECTED, CONTENT.amount)


def test_a_card_the_gateway_cannot_open_is_declined(keydir, tmp_path) -> None:  # noqa: F811
    world = World(keydir, tmp_path)
    pi = PaymentInformation("t-1", "shop-1", "o-1", CONTENT, CONTENT.amount, ["wallet-a"])
    # Signed by the user, but sealed to another key than the gateway's.
    request = payment_request(world.card, txn_id="t-1", shop_id="shop-1",
                              payment_information=signed(pi, world.k["shop-1"], "t-1"),
                              method="lump-sum",
                              gateway_public=world.registry.sealing["issuer"][1])
    verdict = checks.examine(request, "shop-1", world.registry,
                             world.ctx.actor_keys("gateway").seal_private, CLOCK.now_ms(),
                             GatewayPolicy())
    assert isinstance(verdict, checks.Declined)
    assert (verdict.reason, verdict.amount) == (checks.UNREADABLE_CARD, CONTENT.amount)


def test_unreadable_payment_information_is_declined_without_an_amount(keydir, tmp_path) -> None:  # noqa: F811
    world = World(keydir, tmp_path)
    request = envelope.open_record(world.request(), world.registry).message
    verdict = checks.examine(dataclasses.replace(request, payment_information=b"garbage"),
                             "shop-1", world.registry,
                             world.ctx.actor_keys("gateway").seal_private, CLOCK.now_ms(),
                             GatewayPolicy())
    assert isinstance(verdict, checks.Declined)
    assert (verdict.reason, verdict.shop_id, verdict.amount) == (
        checks.BAD_PAYMENT_INFORMATION, request.shop_id, checks.NO_AMOUNT)
