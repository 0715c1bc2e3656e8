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

from kessai import crypto
from kessai.money import Money
from protocols.user import AUTH_METHODS as AUTH_METHODS
from protocols.user import WalletError as WalletError
from protocols.user import build_second_request as honest_second_request
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
    """The honest user's 2nd settlement request (:func:`protocols.user.build_second_request`),
    with the simulated user's knobs: ``tamper`` alters what it states (signed as altered),
    ``wrong_password`` seals a wrong password (to show AUTH_FAILED), ``forge_authenticator``
    flips one byte of the user's signature.

    Raises:
        WalletError: unknown card alias, or a wallet without the auth data its method needs.
    """
    content, amount = tampered(payment_request.content, payment_request.amount, tamper)
    shown = dataclasses.replace(payment_request, content=content, amount=amount)
    if wrong_password and wallet.get("password"):
        wallet = {**wallet, "password": "wrong-" + wallet["password"]}
    second = honest_second_request(shown, wallet, card_alias, settlement_public)
    signature = second.user_authenticator
    if forge_authenticator and signature:
        second = dataclasses.replace(
            second, user_authenticator=bytes([signature[0] ^ 0x01]) + signature[1:])
    return second


def forged_relay(result: PaymentResult) -> ResultRelay:
    """A malicious user's relay (demo knob): "APPROVED" with a made-up authenticator.

    Without the key shop and settlement server share, the user cannot make a valid one
    ([0043]); the shop must reject this (spec R28).
    """
    return ResultRelay(result.shop_id, result.order_id, "APPROVED", result.amount,
                       crypto.new_secret(32))
