"""The user's side of the two-sided settlement (seed 003), without I/O: check the payment
request, build the 2nd settlement request, check and relay the result. Whoever acts for the
user — the terminal on the user's device, or the relay for a limited terminal — uses these.

A wallet here is the record a user's device keeps (``sim/devkeys.py`` writes the development
ones): ``auth`` ("signature" cl. 10, "channel" cl. 12, "password" cl. 13), ``password``,
``held`` (account held at the settlement server, cl. 15), ``signing`` (hex Ed25519 private
key), ``result_mac`` (hex, cl. 11) and ``cards`` (alias → {pan, expiry}).

Account information and passwords leave only sealed with HPKE to the settlement server, bound
to the order's join key, so neither the shop nor anyone else on the bus can read them, and a
sealed field cannot be moved to another order. No function here logs or puts a card number or
password into an exception message. Only honest behaviour lives here: a dishonest user (an
altered amount, a wrong password, a forged authenticator) is made by a simulator around these
functions, e.g. by passing an altered payment request.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from kessai import authenticators, crypto
from kessai.authenticators import join_key
from kessai.errors import KessaiError
from schemas.v1 import Delivery, PaymentRequest, PaymentResult, ResultRelay, SecondRequest

AUTH_METHODS = ("signature", "channel", "password")


class WalletError(KessaiError):
    """The 2nd request cannot be made (unknown card alias, incomplete wallet)."""

    code = "wallet"


def delivery_for(user_id: str) -> Delivery:
    """The delivery details a development device fills into the order form (Fig. 4)."""
    return Delivery(name=f"{user_id} (dev user)", address="1-1 Dev-cho, Minato-ku, Tokyo",
                    contact=f"{user_id}@example.invalid")


def check_displayed(ordered: Sequence[Any], request: PaymentRequest) -> str | None:
    """A14: the user pays only "if there is no mistake". Returns what is wrong, or None.

    The items must be what the user ordered (code and quantity), and the figures must add up:
    total = Σ unit price × quantity + tax, and the amount to pay is that total.
    """
    c = request.content
    want = collections.Counter((str(code), qty) for code, qty in
                               (e for e in ordered if isinstance(e, (list, tuple)) and len(e) == 2))
    shown = collections.Counter((i.code, i.quantity) for i in c.items)
    if want != shown:
        return "the items shown are not the items ordered"
    if sum(i.unit_price * i.quantity for i in c.items) + c.tax != c.total:
        return "the items and tax do not add up to the total shown"
    if request.amount != c.amount:
        return f"the amount to pay {request.amount} is not the total {c.amount}"
    return None


def build_second_request(payment_request: PaymentRequest, wallet: Mapping[str, Any],
                         card_alias: str, settlement_public: bytes) -> SecondRequest:
    """The 2nd settlement request (M7, A15) for the order shown in ``payment_request``.

    - account (cl. 14): the card ``card_alias`` sealed to the settlement server, bound to the
      join key; omitted when the account is held at the settlement server (cl. 15);
    - "password" users (cl. 13): the password sealed likewise;
    - "signature" users (cl. 10): the user's Ed25519 signature over the request body;
    - "channel" users (cl. 12): nothing extra; the sender's signed envelope is the channel.

    Raises:
        WalletError: unknown card alias, or a wallet without the auth data its method needs.
    """
    auth = wallet.get("auth")
    if auth not in AUTH_METHODS:
        raise WalletError(f"wallet has no known authentication method (got {auth!r})")
    key = join_key(payment_request.shop_id, payment_request.order_id)

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
        password_sealed = crypto.seal(settlement_public, password.encode(),
                                      authenticators.password_context(key))

    second = SecondRequest(
        shop_id=payment_request.shop_id, order_id=payment_request.order_id,
        session=payment_request.session, user_id=payment_request.user_id,
        content=payment_request.content, amount=payment_request.amount, auth_method=auth,
        account_sealed=account_sealed, password_sealed=password_sealed)
    if auth != "signature":
        return second
    signing = wallet.get("signing")
    if not signing:
        raise WalletError("signature user without a signing key in the wallet")
    signature = crypto.sign(bytes.fromhex(signing), authenticators.second_signing_bytes(second))
    return dataclasses.replace(second, user_authenticator=signature)


def result_authentic(wallet: Mapping[str, Any], result: PaymentResult) -> bool:
    """Cl. 11: the result's user authenticator, made with the key shared with the user."""
    mac = wallet.get("result_mac")
    if not mac:
        return False
    return authenticators.user_authenticator_ok(
        bytes.fromhex(mac), result.shop_id, result.order_id, result.outcome, result.amount,
        result.session, result.user_authenticator)


def relay_of(result: PaymentResult) -> ResultRelay:
    """M10 (A22, cl. 7): the result for the shop, its authenticator copied unchanged."""
    return ResultRelay(result.shop_id, result.order_id, result.outcome, result.amount,
                       result.shop_authenticator)


__all__ = ["AUTH_METHODS", "WalletError", "build_second_request", "check_displayed",
           "delivery_for", "relay_of", "result_authentic"]
