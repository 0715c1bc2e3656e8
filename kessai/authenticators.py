"""Authenticators (認証子) of seed 003 and the contexts that bind sealed fields to an order.

- shop authenticator (cl. 7/19/24): HMAC with the key shop and settlement server exchanged in
  advance, over {shop_id, order_id, outcome, amount}. The terminal relays it unchanged; a user
  who does not know the key cannot forge it ([0043]).
- user result authenticator (cl. 11/28): HMAC with the key shared with the user.
- user request authenticator (cl. 10/27): the user's Ed25519 signature over the 2nd request.
- seeds 000/001: the user's signature over the SET payment request and the context that seals
  its card to the payment gateway.
"""

from __future__ import annotations

import dataclasses

import msgpack

from kessai import crypto
from kessai.money import Money
from schemas.codec import to_body
from schemas.relay import SetPaymentRequest
from schemas.v1 import SecondRequest


def join_key(shop_id: str, order_id: str) -> str:
    """The correlation id of an order: shop-assigned ids may collide across shops (spec R1)."""
    return f"{shop_id}/{order_id}"


def _result_fields(shop_id: str, order_id: str, outcome: str, amount: Money) -> bytes:
    return msgpack.packb(["kessai/result/v1", shop_id, order_id, outcome, amount.minor,
                          amount.currency])


def shop_authenticator(key: bytes, shop_id: str, order_id: str, outcome: str,
                       amount: Money) -> bytes:
    return crypto.mac(key, _result_fields(shop_id, order_id, outcome, amount))


def shop_authenticator_ok(key: bytes, shop_id: str, order_id: str, outcome: str,
                          amount: Money, tag: bytes) -> bool:
    return crypto.mac_ok(key, _result_fields(shop_id, order_id, outcome, amount), tag)


def user_authenticator(key: bytes, shop_id: str, order_id: str, outcome: str, amount: Money,
                       session: str) -> bytes:
    return crypto.mac(key, _result_fields(shop_id, order_id, outcome, amount) + session.encode())


def user_authenticator_ok(key: bytes, shop_id: str, order_id: str, outcome: str,
                          amount: Money, session: str, tag: bytes) -> bool:
    return crypto.mac_ok(
        key, _result_fields(shop_id, order_id, outcome, amount) + session.encode(), tag)


def second_signing_bytes(second: SecondRequest) -> bytes:
    """What the user's authenticator signs: the 2nd request without the authenticator."""
    body = to_body(dataclasses.replace(second, user_authenticator=None))
    return b"kessai/second-request/v1\x00" + msgpack.packb(body, use_bin_type=True)


# HPKE ``info`` strings: a sealed field opens only for the order and purpose it was made for.
def account_context(key: str) -> bytes:
    return b"kessai/account/v1\x00" + key.encode()


def password_context(key: str) -> bytes:
    return b"kessai/password/v1\x00" + key.encode()


def issuer_account_context(key: str) -> bytes:
    return b"kessai/issuer-account/v1\x00" + key.encode()


def pack_account(pan: str, expiry: str) -> bytes:
    return msgpack.packb({"pan": pan, "expiry": expiry})


def unpack_account(raw: bytes) -> tuple[str, str]:
    m = msgpack.unpackb(raw)
    return str(m["pan"]), str(m["expiry"])


# Seeds 000/001 (SET-style server wallet): the payment request ⑪ the wallet builds for the
# payment gateway. The card is sealed to the gateway, so the shop that carries the request
# cannot read it (R14, R40); the user's wallet-held key signs the request (R40, R41).
def gateway_card_context(txn_id: str) -> bytes:
    """HPKE ``info`` for ``SetPaymentRequest.card_sealed``: opens only at the gateway, only
    for this transaction."""
    return b"kessai/gateway-card/v1\x00" + txn_id.encode()


def set_request_signing_bytes(request: SetPaymentRequest) -> bytes:
    """What the user's payment key signs: the request without ``user_signature``."""
    body = to_body(dataclasses.replace(request, user_signature=b""))
    return b"kessai/set-payment-request/v1\x00" + msgpack.packb(body, use_bin_type=True)
