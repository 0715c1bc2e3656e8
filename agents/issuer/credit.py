"""The credit server of seed 002 (EP 1 280 115, credit server 13; S11, S12, C1).

``CreditRequest`` from the payment gateway on ``kessai.credit.requests``: the card number and
expiry sealed to this server for this transaction (``protocols.wakeup.credit_card_context``).
The FI ledger checks the card and its expiry against its accounts and decides once per join
key ``pg/<transaction number>``, so a redelivered or re-sent request never charges twice; the
answer (completion, or a refusal with its reason [X]) goes back on ``kessai.credit.responses``
keyed as the request was (the user id, the gateway's partitioning).
"""

from __future__ import annotations

import logging

import msgpack

from agents.issuer.ledger import LazyLedger
from kessai import authenticators, crypto
from kessai.errors import SealError
from kessai.runtime import AgentContext, Inbound
from protocols.wakeup import credit_card_context
from schemas.wakeup import CreditRequest, CreditResponse

log = logging.getLogger("kessai.issuer")

REQUESTS = "kessai.credit.requests"
RESPONSES = "kessai.credit.responses"
PREFIX = "pg/"


def open_card(seal_private: bytes, msg: CreditRequest) -> tuple[str, str] | None:
    """The (card number, expiry) sealed to this server for this request, or None."""
    try:
        return authenticators.unpack_account(crypto.open_sealed(
            seal_private, msg.card_sealed, credit_card_context(msg.join_key)))
    except (SealError, msgpack.UnpackException, ValueError, KeyError, TypeError):
        return None


def declare(ctx: AgentContext, ledger: LazyLedger, seal_private: bytes) -> None:
    async def on_credit_request(inbound: Inbound) -> None:
        msg: CreditRequest = inbound.message
        if msg.join_key != f"{PREFIX}{msg.transaction_number}":
            await ctx.dead_letter("join_key_mismatch", f"{msg.join_key} for transaction "
                                  f"{msg.transaction_number}", inbound.topic, inbound.partition,
                                  inbound.offset, inbound.raw, inbound.key)
            return
        card = open_card(seal_private, msg)
        pan, expiry = card if card is not None else (None, None)
        decision = await (await ledger.get()).authorize(msg.join_key, pan, expiry, msg.amount,
                                                        ctx.clock.now_ms())
        log.info("issuer: credit %s %s (%s)", msg.join_key,
                 "completed" if decision.approved else "refused", decision.reason)
        await ctx.emit(RESPONSES, CreditResponse(msg.transaction_number, msg.join_key,
                                                 decision.approved, decision.reason,
                                                 decision.auth_code),
                       msg.transaction_number,
                       key=inbound.key.decode("utf-8", "replace") if inbound.key else None)

    ctx.handle(REQUESTS, on_credit_request, types=(CreditRequest,), senders=("paygate",))
