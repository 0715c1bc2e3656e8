"""The user's side of seed 003, without I/O: check the payment request, build the 2nd
settlement request, check and relay the result. Shared by the terminal and (later) the relay.

A wallet is the record the key set keeps for a user's device (``sim/devkeys.py`` writes the
development ones): ``auth`` ("signature" cl. 10, "channel" cl. 12, "password" cl. 13),
``password``, ``held`` (account held at the settlement server, cl. 15), ``signing`` (hex
Ed25519 private key), ``result_mac`` (hex, cl. 11) and ``cards`` (alias → {pan, expiry}).

Account information and passwords leave the device only sealed with HPKE to the settlement
server, bound to the order's join key, so neither the shop nor anyone else on the bus can read
them, and a sealed field cannot be moved to another order. No function here logs or puts a
card number or password into an exception message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from kessai import authenticators, crypto
from kessai.authenticators import join_key
from kessai.money import Money
from protocols.user import AUTH_METHODS as AUTH_METHODS
from protocols.user import WalletError as WalletError
from protocols.user import check_displayed as check_displayed
from protocols.user import relay_of as relay_of
from protocols.user import result_authentic as result_authentic
from schemas.v1 import (
    Delivery,
    OrderContent,
    PaymentRequest,
    PaymentResult,
    ResultRelay,
    SecondRequest,
)

Tamper = Literal["none", "amount", "quantity"]




def delivery_for(user_id: str) -> Delivery:
    """The delivery details the development device fills into the order form (Fig. 4)."""
    return Delivery(name=f"{user_id} (dev user)", address="1-1 Dev-cho, Minato-ku, Tokyo",
                    contact=f"{user_id}@example.invalid")


def describe(request: PaymentRequest) -> str:
    """What the device shows for a payment request (A12, Fig. 5), with no account data."""
    c = request.content
    lines = ", ".join(f"{i.code} {i.name} {i.unit_price}×{i.quantity}" for i in c.items)
    return (f"order {request.order_id} at {request.shop_id}: {lines}; tax {c.tax}; "
            f"total {Money(c.total, c.currency)}; to pay {request.amount}")




def tampered(content: OrderContent, amount: Money, tamper: Tamper) -> tuple[OrderContent, Money]:
    """A dishonest user (demo knob): alter what the 2nd request states.

    - ``amount``: total and amount one minor unit higher, items unchanged;
    - ``quantity``: the first item's quantity one higher, nothing else.
    The settlement server's collation must catch either (cl. 3, spec R13).
    """
    if tamper == "amount":
        return (dataclasses.replace(content, total=content.total + 1),
                Money(amount.minor + 1, amount.currency))
    if tamper == "quantity" and content.items:
        first = content.items[0]
        items = [dataclasses.replace(first, quantity=first.quantity + 1), *content.items[1:]]
        return dataclasses.replace(content, items=items), amount
    return content, amount


def build_second_request(payment_request: PaymentRequest, wallet: Mapping[str, Any],
                         card_alias: str, settlement_public: bytes, *,
                         tamper: Tamper = "none", wrong_password: bool = False,
                         forge_authenticator: bool = False) -> SecondRequest:
    """The 2nd settlement request (M7, A15) for the order shown in ``payment_request``.

    - account (cl. 14): the card ``card_alias`` sealed to the settlement server, bound to the
      join key; omitted when the account is held at the settlement server (cl. 15);
    - "password" users (cl. 13): the password sealed likewise (``wrong_password`` seals a wrong
      one, to show AUTH_FAILED);
    - "signature" users (cl. 10): the user's Ed25519 signature over the request body
      (``forge_authenticator`` flips one byte of it);
    - "channel" users (cl. 12): nothing extra; the terminal's signed envelope is the channel.

    Raises:
        WalletError: unknown card alias, or a wallet without the auth data its method needs.
    """
    auth = wallet.get("auth")
    if auth not in AUTH_METHODS:
        raise WalletError(f"wallet has no known authentication method (got {auth!r})")
    key = join_key(payment_request.shop_id, payment_request.order_id)
    content, amount = tampered(payment_request.content, payment_request.amount, tamper)

    account_sealed = None
    if not wallet.get("held"):
        card = wallet.get("cards", {}).get(card_alias)
        if card is None:
            raise WalletError(f"no card {card_alias!r} in the wallet")
        account_sealed = crypto.seal(settlement_public,
                                     authenticators.pack_account(card["pan"], card["expiry"]),
                                     authenticators.account_context(key))

    password_sealed = None
    if auth == "password":
        password = wallet.get("password")
        if not password:
            raise WalletError("password user without a password in the wallet")
        if wrong_password:
            password = "wrong-" + password
        password_sealed = crypto.seal(settlement_public, password.encode(),
                                      authenticators.password_context(key))

    second = SecondRequest(
        shop_id=payment_request.shop_id, order_id=payment_request.order_id,
        session=payment_request.session, user_id=payment_request.user_id,
        content=content, amount=amount, auth_method=auth,
        account_sealed=account_sealed, password_sealed=password_sealed)
    if auth != "signature":
        return second
    signing = wallet.get("signing")
    if not signing:
        raise WalletError("signature user without a signing key in the wallet")
    signature = crypto.sign(bytes.fromhex(signing), authenticators.second_signing_bytes(second))
    if forge_authenticator:
        signature = bytes([signature[0] ^ 0x01]) + signature[1:]
    return dataclasses.replace(second, user_authenticator=signature)






def forged_relay(result: PaymentResult) -> ResultRelay:
    """A malicious user's relay (demo knob): "APPROVED" with a made-up authenticator.

    Without the key shop and settlement server share, the user cannot make a valid one
    ([0043]); the shop must reject this (spec R28).
    """
    return ResultRelay(result.shop_id, result.order_id, "APPROVED", result.amount,
                       crypto.new_secret(32))
