"""The credit server of seed 002's embodiment 2 (credit server 13A; Fig. 27 S13–S21; K5–K7).

- ``KeyDistribution`` from the payment gateway: the encrypted card number and its decryption
  key sealed to this server, kept (sealed) against the ciphertext's digest (Fig. 24C);
- ``PosCreditRequest`` from a POS with the encrypted card number: the key and the request come
  on two topics, so a request may be read before its key: it waits for the key up to
  ``KESSAI_CREDIT_KEY_WAIT_MS`` ([I], default 10 s, on the injected clock, counted only once
  this worker has read the keys topic's partition) and then gets "failure of
  authentication"; found → the key opens, the card decrypts, the FI ledger checks card and
  expiry and decides once per encrypted number (a fresh one per transaction, K7), so a
  replayed request never charges twice → ``CreditAnswer`` (allowance or failure) to the POS.
Both records are keyed by the ciphertext's digest, so they meet on one partition.
"""

from __future__ import annotations

import logging
import os

import msgpack

from agents.issuer.ledger import LazyLedger
from kessai import crypto
from kessai.errors import ConfigError, KessaiError
from kessai.runtime import AgentContext, Inbound
from protocols import wakeup
from schemas.codec import from_body, to_body
from schemas.wakeup import CreditAnswer, KeyDistribution, PosCreditRequest, WakeupTick

log = logging.getLogger("kessai.issuer")

KEYS = "kessai.credit.keys"
POS_REQUESTS = "kessai.credit.pos-requests"
ANSWERS = "kessai.pos.credit-answers"
TIMERS = "kessai.credit.timers"
NOT_FOUND = "failure_of_authentication"
KEY_WAIT_MS = 10_000  # [I] how long a POS request waits for its key (KESSAI_CREDIT_KEY_WAIT_MS)


def key_wait_ms() -> int:
    raw = os.environ.get("KESSAI_CREDIT_KEY_WAIT_MS", str(KEY_WAIT_MS))
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"KESSAI_CREDIT_KEY_WAIT_MS must be milliseconds, not {raw!r}") from None
    if value < 0:
        raise ConfigError(f"KESSAI_CREDIT_KEY_WAIT_MS must not be negative, got {value}")
    return value


def declare(ctx: AgentContext, ledger: LazyLedger, seal_private: bytes) -> None:
    held = ctx.table("credit-card-keys", partitions=4)
    waiting = ctx.table("credit-waiting-requests", partitions=4)  # ref → request, since, partition
    wait_ms = key_wait_ms()

    async def answer(msg: PosCreditRequest, raw: bytes | None) -> None:
        ref = wakeup.encrypted_card_ref(msg.encrypted_card_number)
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

    def parked(ref: str) -> PosCreditRequest | None:
        raw = waiting.get(ref.encode())
        if raw is None:
            return None
        return from_body(PosCreditRequest, msgpack.unpackb(raw)["request"])

    async def on_key(inbound: Inbound) -> None:
        msg: KeyDistribution = inbound.message
        ref = wakeup.encrypted_card_ref(msg.encrypted_card_number)
        if ref.encode() not in held:
            held[ref.encode()] = msgpack.packb(msg.key_sealed, use_bin_type=True)
        request = parked(ref)
        if request is not None:  # its request came first: answer it now
            waiting.pop(ref.encode(), None)
            await answer(request, held[ref.encode()])

    async def on_pos_request(inbound: Inbound) -> None:
        msg: PosCreditRequest = inbound.message
        ref = wakeup.encrypted_card_ref(msg.encrypted_card_number)
        raw = held.get(ref.encode())
        if raw is None:
            if ref.encode() not in waiting:
                waiting[ref.encode()] = msgpack.packb(
                    {"request": to_body(msg), "since": ctx.clock.now_ms(),
                     "partition": inbound.partition}, use_bin_type=True)
            return
        await answer(msg, raw)

    async def on_tick(inbound: Inbound) -> None:
        msg: WakeupTick = inbound.message
        request = parked(msg.key)
        if request is None or msg.key.encode() in held:
            return
        waiting.pop(msg.key.encode(), None)
        await answer(request, None)

    async def scan_waiting() -> None:
        active = ctx.active_partitions(POS_REQUESTS)
        now = ctx.clock.now_ms()
        for ref_bytes, raw in list(waiting.items()):
            w = msgpack.unpackb(raw)
            p = w["partition"]
            # A key sent in time may still be unread after a restart: give up only on a
            # partition whose keys this worker has read.
            if p not in active or not ctx.caught_up(KEYS, p) or now - w["since"] < wait_ms:
                continue
            ref = ref_bytes.decode()
            await ctx.emit(TIMERS, WakeupTick(ref, w["since"] + wait_ms), ref, partition=p)

    ctx.handle(KEYS, on_key, types=(KeyDistribution,), senders=("paygate",))
    ctx.handle(POS_REQUESTS, on_pos_request, types=(PosCreditRequest,), senders=("pos",))
    ctx.handle(TIMERS, on_tick, types=(WakeupTick,), senders=("issuer",))
    ctx.every(ctx.settings.timer_interval_s)(scan_waiting)
