"""The credit server of seed 002's embodiment 2 (credit server 13A; Fig. 27 S13–S21; K5–K7).

- ``KeyDistribution`` from the payment gateway: the encrypted card number and its decryption
  key sealed to this server, kept (sealed) against the ciphertext's digest (Fig. 24C);
- ``PosCreditRequest`` from a POS with the encrypted card number: not found → "failure of
  authentication"; found → the key opens, the card decrypts, the FI ledger checks card and
  expiry and decides once per encrypted number (a fresh one per transaction, K7), so a
  replayed request never charges twice → ``CreditAnswer`` (allowance or failure) to the POS.
Both records are keyed by the ciphertext's digest, so they meet on one partition.
"""

from __future__ import annotations

import logging

import msgpack

from agents.issuer.ledger import LazyLedger
from kessai import crypto
from kessai.errors import KessaiError
from kessai.runtime import AgentContext, Inbound
from protocols import wakeup
from schemas.wakeup import CreditAnswer, KeyDistribution, PosCreditRequest

log = logging.getLogger("kessai.issuer")

KEYS = "kessai.credit.keys"
POS_REQUESTS = "kessai.credit.pos-requests"
ANSWERS = "kessai.pos.credit-answers"
NOT_FOUND = "failure_of_authentication"


def declare(ctx: AgentContext, ledger: LazyLedger, seal_private: bytes) -> None:
    held = ctx.table("credit-card-keys", partitions=4)

    async def on_key(inbound: Inbound) -> None:
        msg: KeyDistribution = inbound.message
        ref = wakeup.encrypted_card_ref(msg.encrypted_card_number)
        if ref.encode() not in held:
            held[ref.encode()] = msgpack.packb(msg.key_sealed, use_bin_type=True)

    async def on_pos_request(inbound: Inbound) -> None:
        msg: PosCreditRequest = inbound.message
        ref = wakeup.encrypted_card_ref(msg.encrypted_card_number)
        raw = held.get(ref.encode())
        reason = NOT_FOUND
        allowed = False
        if raw is not None:
            try:
                key = crypto.open_sealed(seal_private, msgpack.unpackb(raw),
                                         wakeup.credit_key_context(msg.encrypted_card_number))
                pan, expiry = wakeup.decrypt_card(key, msg.encrypted_card_number)
            except KessaiError:
                pan = expiry = None  # type: ignore[assignment]
            if pan is not None:
                decision = await (await ledger.get()).authorize(
                    f"pg2/{ref}", pan, expiry, msg.amount, ctx.clock.now_ms())
                allowed, reason = decision.approved, decision.reason
        log.info("issuer: encrypted-card request %s of %s: %s", msg.request_ref, msg.pos_id,
                 "allowance" if allowed else reason)
        await ctx.emit(ANSWERS, CreditAnswer(msg.pos_id, msg.request_ref, allowed,
                                             "allowance" if allowed else reason),
                       msg.request_ref, key=msg.pos_id)

    ctx.handle(KEYS, on_key, types=(KeyDistribution,), senders=("paygate",))
    ctx.handle(POS_REQUESTS, on_pos_request, types=(PosCreditRequest,), senders=("pos",))
