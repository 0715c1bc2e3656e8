"""The terminal's wallet builds the 2nd settlement request of seed 003: account and password
only sealed to the settlement server (cl. 14, R20), the user authenticator (cl. 10), held
accounts (cl. 15), and the demo tampering knobs that the collation must catch."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from agents.shop.pricing import price
from agents.terminal import wallet
from kessai import authenticators, crypto, envelope, keys
from kessai.errors import BadSignature, SealError
from kessai.money import Money
from schemas.v1 import PaymentRequest, PaymentResult
from sim import devkeys
from sim.devdata import Catalogue


@dataclasses.dataclass(frozen=True)
class World:
    registry: keys.Registry
    settlement: keys.ActorKeys
    issuer: keys.ActorKeys
    wallets: dict[str, Any]

    @property
    def settlement_public(self) -> bytes:
        return self.registry.sealing["settlement"][1]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    directory: Path = tmp_path_factory.mktemp("keys")
    devkeys.init(directory)
    return World(keys.load_registry(directory), keys.load_actor(directory, "settlement"),
                 keys.load_actor(directory, "issuer"),
                 keys.load_actor(directory, "terminal").secrets["wallets"])


def fig5_request(user_id: str = "alice") -> PaymentRequest:
    content = price([["XXXX", 1], ["YYYY", 1]], Catalogue().items)
    return PaymentRequest("shop-1", "1234567890", "s-1", user_id, content, content.amount)


KEY = authenticators.join_key("shop-1", "1234567890")


def second_for(world: World, user_id: str, **kwargs: Any) -> Any:
    return wallet.build_second_request(fig5_request(user_id), world.wallets[user_id], "main",
                                       world.settlement_public, **kwargs)


def test_account_opens_only_for_the_settlement_server(world: World) -> None:
    second = second_for(world, "alice")
    pan = world.wallets["alice"]["cards"]["main"]["pan"]
    assert second.account_sealed is not None
    assert world.settlement.seal_private is not None
    opened = crypto.open_sealed(world.settlement.seal_private, second.account_sealed,
                                authenticators.account_context(KEY))
    assert authenticators.unpack_account(opened) == (pan, "2031-12")
    # Anyone else — the shop holds no sealing key at all; the issuer's key is the wrong one.
    assert world.issuer.seal_private is not None
    with pytest.raises(SealError):
        crypto.open_sealed(world.issuer.seal_private, second.account_sealed,
                           authenticators.account_context(KEY))
    with pytest.raises(SealError):
        crypto.open_sealed(crypto.new_seal_key(), second.account_sealed,
                           authenticators.account_context(KEY))
    # Bound to its order: it does not open as another order's account.
    with pytest.raises(SealError):
        crypto.open_sealed(world.settlement.seal_private, second.account_sealed,
                           authenticators.account_context("shop-1/0000000000"))


def test_no_card_number_in_the_request_bytes(world: World) -> None:
    for user_id in ("alice", "bob", "carol"):
        second = second_for(world, user_id)
        body = envelope.pack_body(second)
        pan = world.wallets[user_id]["cards"]["main"]["pan"]
        assert pan.encode() not in body
        assert pan[-8:].encode() not in body
        assert pan not in repr(second)


def test_signature_authenticator_verifies_with_the_users_public_key(world: World) -> None:
    second = second_for(world, "alice")
    _, public = world.registry.signing[keys.user_actor("alice")]
    assert second.auth_method == "signature" and second.password_sealed is None
    crypto.verify(public, second.user_authenticator,
                  authenticators.second_signing_bytes(second))


def test_forged_signature_authenticator_fails(world: World) -> None:
    honest = second_for(world, "alice")
    forged = second_for(world, "alice", forge_authenticator=True)
    _, public = world.registry.signing[keys.user_actor("alice")]
    assert forged.user_authenticator != honest.user_authenticator
    with pytest.raises(BadSignature):
        crypto.verify(public, forged.user_authenticator,
                      authenticators.second_signing_bytes(forged))


def test_signature_covers_the_content(world: World) -> None:
    second = second_for(world, "alice")
    _, public = world.registry.signing[keys.user_actor("alice")]
    altered = dataclasses.replace(second, amount=Money(1, "JPY"))
    with pytest.raises(BadSignature):
        crypto.verify(public, altered.user_authenticator,
                      authenticators.second_signing_bytes(altered))


def test_password_is_sealed_and_wrong_password_is_wrong(world: World) -> None:
    assert world.settlement.seal_private is not None
    context = authenticators.password_context(KEY)
    right = second_for(world, "bob")
    wrong = second_for(world, "bob", wrong_password=True)
    assert right.auth_method == "password" and right.user_authenticator is None
    assert crypto.open_sealed(world.settlement.seal_private, right.password_sealed,
                              context) == b"bob-dev-password"
    assert crypto.open_sealed(world.settlement.seal_private, wrong.password_sealed,
                              context) != b"bob-dev-password"
    assert b"bob-dev-password" not in envelope.pack_body(right)


def test_held_wallet_sends_no_account(world: World) -> None:
    second = second_for(world, "dave")  # password user whose account the server holds
    assert second.account_sealed is None
    assert second.password_sealed is not None
    pan = "4242424242424242"
    assert pan.encode() not in envelope.pack_body(second)


def test_channel_user_sends_account_only(world: World) -> None:
    second = second_for(world, "carol")
    assert second.auth_method == "channel"
    assert second.account_sealed is not None
    assert second.password_sealed is None and second.user_authenticator is None


def test_unknown_card_alias_is_refused_without_card_data(world: World) -> None:
    with pytest.raises(wallet.WalletError) as err:
        wallet.build_second_request(fig5_request(), world.wallets["alice"], "gold",
                                    world.settlement_public)
    assert "gold" in str(err.value)
    assert "4111" not in str(err.value)


def test_honest_request_states_what_was_shown(world: World) -> None:
    shown = fig5_request()
    second = second_for(world, "alice")
    assert (second.shop_id, second.order_id, second.session, second.user_id) == (
        "shop-1", "1234567890", "s-1", "alice")
    assert second.content == shown.content and second.amount == shown.amount


def test_amount_tamper_changes_total_and_amount_only(world: World) -> None:
    shown = fig5_request()
    second = second_for(world, "alice", tamper="amount")
    assert second.amount == Money(1156, "JPY")
    assert second.content == dataclasses.replace(shown.content, total=1156)


def test_quantity_tamper_changes_the_first_quantity_only(world: World) -> None:
    shown = fig5_request()
    second = second_for(world, "alice", tamper="quantity")
    assert second.amount == shown.amount
    first, *rest = second.content.items
    assert first == dataclasses.replace(shown.content.items[0], quantity=2)
    assert rest == shown.content.items[1:]
    assert (second.content.tax, second.content.total) == (55, 1155)


def test_user_checks_what_is_shown() -> None:
    shown = fig5_request()
    assert wallet.check_displayed([["YYYY", 1], ["XXXX", 1]], shown) is None
    assert wallet.check_displayed([["XXXX", 2], ["YYYY", 1]], shown) is not None
    bad_total = dataclasses.replace(shown, content=dataclasses.replace(shown.content,
                                                                       total=1200))
    assert wallet.check_displayed([["XXXX", 1], ["YYYY", 1]], bad_total) is not None
    bad_amount = dataclasses.replace(shown, amount=Money(1255, "JPY"))
    assert wallet.check_displayed([["XXXX", 1], ["YYYY", 1]], bad_amount) is not None


def a_result(world: World, outcome: str = "APPROVED") -> PaymentResult:
    user_key = bytes.fromhex(world.settlement.secrets["user_mac"]["alice"])
    shop_key = bytes.fromhex(world.settlement.secrets["shop_mac"]["shop-1"])
    amount = Money(1155, "JPY")
    return PaymentResult(
        "shop-1", "1234567890", "s-1", "user", outcome, amount, "VIA_TERMINAL",  # type: ignore[arg-type]
        shop_authenticator=authenticators.shop_authenticator(
            shop_key, "shop-1", "1234567890", outcome, amount),
        user_authenticator=authenticators.user_authenticator(
            user_key, "shop-1", "1234567890", outcome, amount, "s-1"))


def test_result_authenticator_is_checked(world: World) -> None:
    result = a_result(world, "DECLINED")
    assert wallet.result_authentic(world.wallets["alice"], result)
    assert not wallet.result_authentic(world.wallets["bob"], result)
    assert not wallet.result_authentic(world.wallets["alice"],
                                       dataclasses.replace(result, outcome="APPROVED"))


def test_relay_copies_the_shop_authenticator_and_forgery_is_detectable(world: World) -> None:
    result = a_result(world, "DECLINED")
    shop_key = bytes.fromhex(world.settlement.secrets["shop_mac"]["shop-1"])
    relay = wallet.relay_of(result)
    assert relay.shop_authenticator == result.shop_authenticator
    assert authenticators.shop_authenticator_ok(shop_key, relay.shop_id, relay.order_id,
                                                relay.outcome, relay.amount,
                                                relay.shop_authenticator)
    forged = wallet.forged_relay(result)
    assert forged.outcome == "APPROVED" and len(forged.shop_authenticator) == 32
    assert not authenticators.shop_authenticator_ok(shop_key, forged.shop_id, forged.order_id,
                                                    forged.outcome, forged.amount,
                                                    forged.shop_authenticator)
