"""POS worker of seed 002: every POS terminal of the key set (``pos-<n>``), each with its
merchant code (decisions in ``sales``).

1. Sd1–Sd3 ``PosSale`` from the clerk (the operator): kept; without the service the
           conventional path and a receipt, no message to the gateway (P1).
2. M1      ``ShortRangeUserId`` from a phone: buffered in the mobile terminal.
   Sd4/Sd5 the POS polls the terminal every ``KESSAI_POS_POLL_MS`` (1 s [X]): a timer scans
           the POSes this worker owns and sends a ``WakeupTick`` through ``kessai.pos.polls``
           to each whose buffer holds an id for a waiting sale; the tick pairs them → one
           ``TxnNumberRequest`` (transaction info, merchant code, user id; no card) (P2, P3).
3. Sd6     ``TxnNumber`` stored with the sale; Sd7 ``PosCompletion`` stored, receipt printed
           on ``kessai.pos.receipts`` (P4).
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace

import msgpack
from aiokafka.partitioner import DefaultPartitioner

from agents.pos import sales
from kessai.errors import ConfigError
from kessai.runtime import AgentContext, Inbound
from protocols.wakeup import encrypted_card_ref
from schemas.wakeup import (
    CardNumberRequest,
    CardRefused,
    CreditAnswer,
    EncryptedCard,
    PosCompletion,
    PosCreditRequest,
    PosSale,
    Receipt,
    ShortRangeUserId,
    TxnNumber,
    WakeupTick,
)

log = logging.getLogger("kessai.pos")

KIND = "pos"
SALES = "kessai.pos.sales"
SHORTRANGE = "kessai.shortrange.user-ids"
TXN_NUMBERS = "kessai.pos.txn-numbers"
COMPLETIONS = "kessai.pos.completions"
TXN_REQUESTS = "kessai.paygate.txn-requests"
RECEIPTS = "kessai.pos.receipts"
CARD_REQUESTS = "kessai.paygate.card-requests"
CARD_NUMBERS = "kessai.pos.card-numbers"
POS_CREDIT = "kessai.credit.pos-requests"
CREDIT_ANSWERS = "kessai.pos.credit-answers"
POLLS = "kessai.pos.polls"
DEFAULT_POLL_MS = 1_000
_PARTITIONER = DefaultPartitioner()


def poll_ms_from_env() -> int:
    """P2/X1: how often the POS polls the mobile terminal (``KESSAI_POS_POLL_MS`` [X])."""
    raw = os.environ.get("KESSAI_POS_POLL_MS", str(DEFAULT_POLL_MS))
    if not raw.isdigit() or int(raw) <= 0:
        raise ConfigError(f"KESSAI_POS_POLL_MS must be a positive number of ms, not {raw!r}")
    return int(raw)


def register(ctx: AgentContext) -> None:
    merchants: dict[str, str] = {}
    for actor in ctx.keys:
        code = ctx.actor_keys(actor).secrets.get("merchant_code")
        if code is None:
            raise ConfigError(f"{actor}'s key file has no merchant code; recreate the key set "
                              f"with 'kessai keys init --force {ctx.settings.keys_dir}'")
        merchants[actor] = str(code)
    table = ctx.table("pos-sales", partitions=4)

    def load(pos_id: str) -> sales.Pos:
        raw = table.get(pos_id.encode())
        return sales.Pos.from_wire(msgpack.unpackb(raw)) if raw else sales.Pos()

    async def run(inbound: Inbound, pos_id: str) -> None:
        state = load(pos_id)
        msg_id = inbound.opened.envelope.id
        if msg_id in state.seen:
            return  # a redelivery: applied already
        merchant = merchants[pos_id]
        msg = inbound.message
        if isinstance(msg, PosSale):
            step = sales.on_sale(pos_id, merchant, state, msg)
        elif isinstance(msg, ShortRangeUserId):
            step = sales.on_user_id(state, msg)
        elif isinstance(msg, WakeupTick):
            step = sales.on_poll(pos_id, merchant, state)
        elif isinstance(msg, TxnNumber):
            step = sales.on_txn_number(state, msg)
        elif isinstance(msg, PosCompletion):
            step = sales.on_completion(pos_id, merchant, state, msg)
        elif isinstance(msg, EncryptedCard):
            step = sales.on_encrypted_card(pos_id, merchant, state, msg)
        elif isinstance(msg, CardRefused):
            step = sales.on_card_refused(pos_id, merchant, state, msg)
        else:
            step = sales.on_credit_answer(pos_id, merchant, state, msg)
        for out in step.out:
            if isinstance(out, Receipt):
                log.info("pos %s: receipt for sale %s: %s", pos_id, out.sale_ref, out.outcome)
                await ctx.emit(RECEIPTS, out, out.transaction_number or out.sale_ref,
                               key=pos_id, sender=pos_id)
            elif isinstance(out, CardNumberRequest):
                await ctx.emit(CARD_REQUESTS, out, out.request_ref, key=out.user_id,
                               sender=pos_id)
            elif isinstance(out, PosCreditRequest):
                ref = encrypted_card_ref(out.encrypted_card_number)
                await ctx.emit(POS_CREDIT, out, out.request_ref, key=ref, sender=pos_id)
            else:
                await ctx.emit(TXN_REQUESTS, out, out.sale_ref, key=out.user_id, sender=pos_id)
        new = step.state
        table[pos_id.encode()] = msgpack.packb(
            replace(new, seen=[*new.seen, msg_id][-32:]).to_wire(), use_bin_type=True)

    async def handle(inbound: Inbound) -> None:
        msg = inbound.message
        pos_id = msg.key if isinstance(msg, WakeupTick) else msg.pos_id
        key = inbound.key.decode("utf-8", "replace") if inbound.key else ""
        if pos_id not in merchants or key != pos_id:
            await ctx.dead_letter("unknown_pos", f"no POS {pos_id} here (key {key})",
                                  inbound.topic, inbound.partition, inbound.offset,
                                  inbound.raw, inbound.key)
            return
        await run(inbound, pos_id)

    async def poll() -> None:
        """Sd4: poll the mobile terminal of each POS this worker owns (not its standbys)."""
        active = ctx.active_partitions(SALES)
        if not active:
            return
        for key, raw in list(table.items()):
            if int(_PARTITIONER(key, [0, 1, 2, 3], [0, 1, 2, 3])) not in active:
                continue
            pos_id = key.decode()
            if pos_id in merchants and sales.poll_due(sales.Pos.from_wire(msgpack.unpackb(raw))):
                await ctx.emit(POLLS, WakeupTick(pos_id, ctx.clock.now_ms()), pos_id,
                               key=pos_id, sender=pos_id)

    ctx.handle(SALES, handle, types=(PosSale,), senders=("operator",))
    ctx.handle(POLLS, handle, types=(WakeupTick,), senders=("pos",), sender_is="key")
    ctx.every(poll_ms_from_env() / 1000)(poll)
    ctx.handle(SHORTRANGE, handle, types=(ShortRangeUserId,), senders=("device",))
    ctx.handle(TXN_NUMBERS, handle, types=(TxnNumber,), senders=("paygate",))
    ctx.handle(COMPLETIONS, handle, types=(PosCompletion,), senders=("paygate",))
    # Embodiment 2: the encrypted card number (or the rejection), the credit server's answer.
    ctx.handle(CARD_NUMBERS, handle, types=(EncryptedCard, CardRefused), senders=("paygate",))
    ctx.handle(CREDIT_ANSWERS, handle, types=(CreditAnswer,), senders=("issuer",))
