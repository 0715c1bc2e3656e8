"""⑪ The SET payment request the wallet builds once the user approved ([d:204], R13, R40).

"a certificate of a user stored in advance in the personal wallet ... who has logged in and
the payment information fed from the relay server": the certificate of the card the user
chose, the shop's payment information envelope unchanged, and the card sealed to the payment
gateway, so the shop that carries the request cannot read it. The user's wallet-held payment
key signs the whole request; the gateway checks that signature against the certificate (R41).
"""

from __future__ import annotations

import dataclasses

from agents.wallet.store import Card
from kessai import authenticators, crypto
from schemas.relay import SetPaymentRequest


def payment_request(card: Card, *, txn_id: str, shop_id: str, payment_information: bytes,
                    method: str, gateway_public: bytes) -> SetPaymentRequest:
    """The signed request; ``card.pan`` leaves the wallet only sealed to ``gateway_public``."""
    sealed = crypto.seal(gateway_public, authenticators.pack_account(card.pan, card.expiry),
                         authenticators.gateway_card_context(txn_id))
    unsigned = SetPaymentRequest(
        txn_id=txn_id, wallet_id=card.wallet_id, shop_id=shop_id,
        certificate=card.certificate, payment_information=payment_information,
        card_sealed=sealed, method=method)
    signature = crypto.sign(card.signing_key,
                            authenticators.set_request_signing_bytes(unsigned))
    return dataclasses.replace(unsigned, user_signature=signature)
