"""Payment gateway worker of seed 002 (EP 1 280 115, payment server 150; Fig. 19).

Protocol, top to bottom, per transaction (decisions in ``txn``, tables in ``tables``):

1. Se1–Se4  ``TxnNumberRequest`` from a POS on ``kessai.paygate.txn-requests`` → a
            transaction number to the POS and a ``MailRequest`` to the direction server for
            the device registered for the user id (G1, G2).
2. Sc1/Se8  ``SessionOpen`` from the phone → the gateway's CA-issued certificate (M9).
3. Se9–Se12 ``AuthRequest``: authenticity, then the device id against table 154a (G3) →
            the transaction details (G4), or an error and a stop.
4. Se13/14  ``ProceedRequest`` in time → the methods table 154d allows for the card's issuer
            at this merchant (G5, G6).
5. Se15     ``MethodChoice`` → one ``CreditRequest`` to the issuer's credit server, the card
            number and expiry sealed to it (G7, G9).
6. Se16     ``CreditResponse`` → the completion to the POS and the phone (G8); the
            transaction goes to the user's history (V4).
7. M21      ``HistoryRequest`` from the user's registered phone → the history as HTML (V4).
A web shop (V3) asks as a POS does and is answered on its own topics.
Deadlines fire without traffic: a timer scans the partitions this worker owns and sends
itself a ``WakeupTick`` through ``kessai.paygate.timers``, so every change happens inside a
stream event.

Idempotent: the transaction number is derived from the sale, each applied message id is kept
in the state, so a redelivered record changes nothing and sends nothing again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from dataclasses import dataclass, replace
from typing import Any

import msgpack
from aiokafka.partitioner import DefaultPartitioner

from agents.paygate import encrypted_agent, receipts
from agents.paygate import txn as machine
from agents.paygate.encrypted_agent import Encrypted
from agents.paygate.tables import Tables, issuer_of
from kessai import authenticators, crypto
from kessai.errors import ConfigError
from kessai.handlers import actor_kind
from kessai.money import Money
from kessai.runtime import AgentContext, Inbound
from protocols import wakeup
from schemas.codec import from_body
from schemas.wakeup import (
    AuthRequest,
    CreditRequest,
    CreditResponse,
    GatewayCertificate,
    HistoryRequest,
    MethodChoice,
    ProceedRequest,
    SessionOpen,
    TransactionHistory,
    TxnNumberRequest,
    WakeupTick,
)

log = logging.getLogger("kessai.paygate")

ACTORS = ["paygate"]
TXN_REQUESTS = "kessai.paygate.txn-requests"
SESSIONS = "kessai.paygate.sessions"
CREDIT_REQUESTS = "kessai.credit.requests"
CREDIT_RESPONSES = "kessai.credit.responses"
TIMERS = "kessai.paygate.timers"
TXN_NUMBERS = "kessai.pos.txn-numbers"
COMPLETIONS = "kessai.pos.completions"
MAIL_REQUESTS = "kessai.direction.mail-requests"
DEVICE_SESSIONS = "kessai.device.sessions"
SEEN_KEPT = 32
HISTORY_KEPT = 100
HISTORY_REQUESTS = "kessai.paygate.history-requests"
# V3: a web shop (``webshop-<n>``) asks as a POS does and gets its replies on its own topics.
WEBSHOP_TXN_NUMBERS = "kessai.webshop.txn-numbers"
WEBSHOP_COMPLETIONS = "kessai.webshop.completions"


def reply_topic(requester: str, message_type: str) -> str:
    """Where a transaction number or a completion goes: the requester's own kind of topic."""
    web = actor_kind(requester) == "webshop"
    if message_type == "txn-number":
        return WEBSHOP_TXN_NUMBERS if web else TXN_NUMBERS
    return WEBSHOP_COMPLETIONS if web else COMPLETIONS


def policy_from_env() -> machine.Policy:
    """[X] timings, each overridable: KESSAI_PAYGATE_{DEVICE_WAIT,CONFIRM,METHOD}_MS."""
    base = machine.Policy()
    return machine.Policy(
        int(os.environ.get("KESSAI_PAYGATE_DEVICE_WAIT_MS", base.device_wait_ms)),
        int(os.environ.get("KESSAI_PAYGATE_CONFIRM_MS", base.confirm_ms)),
        int(os.environ.get("KESSAI_PAYGATE_METHOD_MS", base.method_ms)))


def credit_join_key(transaction_number: str) -> str:
    """The credit server's idempotency key for one transaction (apart from other seeds')."""
    return f"pg/{transaction_number}"


@dataclass
class Paygate:
    ctx: AgentContext
    tables: Tables
    policy: machine.Policy
    certificate: GatewayCertificate
    address: str
    txns: MutableMapping[bytes, bytes]
    history: MutableMapping[bytes, bytes]
    encrypted: Encrypted | None = None

    def load(self, user_id: str) -> machine.Txn | None:
        raw = self.txns.get(user_id.encode())
        return machine.Txn.from_wire(msgpack.unpackb(raw)) if raw else None

    def user_history(self, user_id: str) -> list[dict[str, Any]]:
        raw = self.history.get(user_id.encode())
        return list(msgpack.unpackb(raw)) if raw else []

    async def apply(self, inbound: Inbound, current: machine.Txn | None,
                    step: machine.Step | machine.Refusal) -> None:
        if isinstance(step, machine.Refusal):
            await self.ctx.dead_letter(step.reason, step.detail, inbound.topic,
                                       inbound.partition, inbound.offset, inbound.raw,
                                       inbound.key)
            return
        state = step.state
        if state is not None and state is not current:
            msg_id = inbound.opened.envelope.id
            state = replace(state, seen=[*state.seen, msg_id][-SEEN_KEPT:],
                            trace_id=state.trace_id or inbound.trace_id)
        # Effects first, then the state: a crash in between re-sends the same messages
        # (same transaction number, same mail id), which their receivers take once.
        for effect in step.effects:
            await self.carry_out(state, effect)
        if state is not None and state is not current:
            self.txns[state.user_id.encode()] = msgpack.packb(state.to_wire(),
                                                              use_bin_type=True)

    async def carry_out(self, state: machine.Txn | None, effect: machine.Effect) -> None:
        if isinstance(effect, machine.ToPos):
            topic = reply_topic(effect.message.pos_id, effect.message.TYPE)
            await self.ctx.emit(topic, effect.message,
                                effect.message.transaction_number or effect.message.sale_ref,
                                key=effect.message.pos_id)
        elif isinstance(effect, machine.ToDirection):
            await self.ctx.emit(MAIL_REQUESTS, effect.message,
                                effect.message.transaction_number,
                                key=effect.message.device_id)
        elif isinstance(effect, machine.ToDevice):
            assert state is not None
            await self.ctx.emit(DEVICE_SESSIONS, effect.message, state.transaction_number,
                                key=effect.message.device_id)
        elif isinstance(effect, machine.RequestCredit):
            assert state is not None
            await self.request_credit(state)
        elif isinstance(effect, machine.Record):
            assert state is not None
            self.record(state)

    async def request_credit(self, t: machine.Txn) -> None:
        user = self.tables.users[t.user_id]
        rng = issuer_of(self.tables, user.card_number)
        assert rng is not None  # methods were offered, so the card has an issuer
        server = self.tables.credit_servers.get(rng.issuer_code, "issuer")
        join_key = credit_join_key(t.transaction_number)
        sealed = crypto.seal(self.ctx.registry.sealing[server][1],
                             authenticators.pack_account(user.card_number, user.expiration),
                             wakeup.credit_card_context(join_key))
        log.info("paygate: txn %s (%s) → credit server %s, method %s", t.transaction_number,
                 user, server, t.method)
        await self.ctx.emit(CREDIT_REQUESTS, CreditRequest(
            t.transaction_number, join_key, t.merchant_code, t.sale_items,
            Money(t.total, t.currency), t.method, sealed), t.transaction_number, key=t.user_id)

    def record(self, t: machine.Txn) -> None:
        """Transaction table 154b (Fig. 8): number, date, merchant, details, method."""
        rows = [r for r in self.user_history(t.user_id)
                if r["transaction_number"] != t.transaction_number]
        rows.append({"transaction_number": t.transaction_number, "date_ms": t.created_ms,
                     "merchant_code": t.merchant_code, "items": t.items, "tax": t.tax,
                     "total": t.total, "currency": t.currency, "method": t.method,
                     "outcome": t.status, "reason": t.reason})
        self.history[t.user_id.encode()] = msgpack.packb(rows[-HISTORY_KEPT:],
                                                         use_bin_type=True)

    def redelivered(self, inbound: Inbound, current: machine.Txn | None) -> bool:
        return current is not None and inbound.opened.envelope.id in current.seen

    # -- handlers ----------------------------------------------------------------------------
    async def on_txn_request(self, inbound: Inbound) -> None:
        req: TxnNumberRequest = inbound.message
        current = self.load(req.user_id)
        if self.redelivered(inbound, current):
            return
        step = machine.on_request(current, req, self.tables, self.ctx.clock.now_ms(),
                                  self.policy)
        if step.state is None:  # a refusal to the POS, no transaction
            log.info("paygate: sale %s/%s refused", req.pos_id, req.sale_ref)
        await self.apply(inbound, current, step)

    async def on_session(self, inbound: Inbound) -> None:
        msg = inbound.message
        current = self.load(msg.user_id)
        if self.redelivered(inbound, current):
            return
        now = self.ctx.clock.now_ms()
        signer_device = inbound.sender.removeprefix("device-")
        step: machine.Step | machine.Refusal
        if isinstance(msg, SessionOpen):
            step = machine.on_session_open(current, msg, self.address, self.certificate)
        elif isinstance(msg, AuthRequest):
            step = machine.on_auth(current, msg, signer_device, self.tables, now, self.policy)
        elif isinstance(msg, ProceedRequest):
            step = machine.on_proceed(current, msg, self.tables, now, self.policy)
        else:
            step = machine.on_choice(current, msg, now)
        if current is not None and not isinstance(step, machine.Refusal) \
                and isinstance(msg, (ProceedRequest, MethodChoice)) \
                and signer_device != current.device_id:
            step = machine.Refusal("device_mismatch", f"{inbound.sender} is not the "
                                                      "transaction's device")
        await self.apply(inbound, current, step)

    async def on_credit_response(self, inbound: Inbound) -> None:
        msg: CreditResponse = inbound.message
        user_id = inbound.key.decode("utf-8", "replace") if inbound.key else ""
        current = self.load(user_id)
        if self.redelivered(inbound, current):
            return
        if current is not None and current.terminal \
                and msg.join_key == credit_join_key(current.transaction_number):
            return  # the credit server answered a repeated request again: decided already
        if current is not None and msg.join_key != credit_join_key(current.transaction_number):
            await self.apply(inbound, current, machine.Refusal(
                "unknown_transaction", "a credit response for another transaction"))
            return
        await self.apply(inbound, current,
                         machine.on_credit(current, msg, self.ctx.clock.now_ms()))

    async def on_history(self, inbound: Inbound) -> None:
        """V4 (M21): the user's table 154b as HTML, to the phone registered for the user id
        (the one that signed). Read-only: a redelivered request only repeats the answer."""
        msg: HistoryRequest = inbound.message
        user = self.tables.users.get(msg.user_id)
        if user is None or msg.device_id != user.device_id \
                or inbound.sender != f"device-{user.device_id}":
            await self.ctx.dead_letter("device_mismatch", f"{inbound.sender} is not the device "
                                       f"registered for user {msg.user_id}", inbound.topic,
                                       inbound.partition, inbound.offset, inbound.raw,
                                       inbound.key)
            return
        rows = self.user_history(msg.user_id)
        await self.ctx.emit(DEVICE_SESSIONS, TransactionHistory(
            user.device_id, msg.user_id, msg.request_id,
            receipts.render(msg.user_id, rows, self.tables.merchant_name), len(rows)),
            msg.request_id, key=user.device_id)

    async def on_tick(self, inbound: Inbound) -> None:
        msg: WakeupTick = inbound.message
        current = self.load(msg.key)
        await self.apply(inbound, current, machine.on_tick(current, self.ctx.clock.now_ms()))
        if self.encrypted is not None:
            await self.encrypted.on_tick(msg.key)

    async def scan_deadlines(self) -> None:
        active = self.ctx.active_partitions(SESSIONS)
        if not active:
            return
        now = self.ctx.clock.now_ms()
        due: dict[str, int] = {}
        for raw in list(self.txns.values()):
            t = machine.Txn.from_wire(msgpack.unpackb(raw))
            if not t.terminal and t.deadline_ms is not None:
                due[t.user_id] = t.deadline_ms
        for user_id, deadline in self.encrypted.deadlines() if self.encrypted else []:
            due[user_id] = min(deadline, due.get(user_id, deadline))
        for user_id, deadline in due.items():
            if deadline > now or _partition(user_id.encode(), 4) not in active:
                continue
            await self.ctx.emit(TIMERS, WakeupTick(user_id, deadline), user_id, key=user_id)


def _partition(key: bytes, n: int) -> int:
    """The partition Kafka clients' default (murmur2) partitioner gives ``key``."""
    return int(_PARTITIONER(key, list(range(n)), list(range(n))))


_PARTITIONER = DefaultPartitioner()


def certificate_from(cfg: dict[str, Any]) -> GatewayCertificate:
    raw = dict(cfg["certificate"])
    for name in ("public_key", "ca_signature"):
        raw[name] = bytes.fromhex(raw[name])
    return from_body(GatewayCertificate, raw)


def declare(ctx: AgentContext, gateway: Paygate) -> None:
    # A POS (or, V3, a web shop) asks only for itself: the completion goes where it names.
    ctx.handle(TXN_REQUESTS, gateway.on_txn_request, types=(TxnNumberRequest,),
               senders=("pos", "webshop"), sender_is="pos_id")
    ctx.handle(SESSIONS, gateway.on_session,
               types=(SessionOpen, AuthRequest, ProceedRequest, MethodChoice),
               senders=("device",))
    ctx.handle(CREDIT_RESPONSES, gateway.on_credit_response, types=(CreditResponse,),
               senders=("issuer",))
    ctx.handle(TIMERS, gateway.on_tick, types=(WakeupTick,), senders=("paygate",))
    ctx.handle(HISTORY_REQUESTS, gateway.on_history, types=(HistoryRequest,),
               senders=("device",))  # V4: the electronic receipt


def register(ctx: AgentContext) -> None:
    """Declare the gateway's handlers, its two tables and its deadline timer."""
    cfg = ctx.actor_keys("paygate").secrets
    if "certificate" not in cfg or "users" not in cfg:
        raise ConfigError("the paygate's key file has no tables or certificate; recreate the "
                          f"key set with 'kessai keys init --force {ctx.settings.keys_dir}'")
    gateway = Paygate(ctx, Tables.from_config(cfg), policy_from_env(), certificate_from(cfg),
                      str(cfg["address"]), ctx.table("paygate-txns", partitions=4),
                      ctx.table("paygate-history", partitions=4))
    declare(ctx, gateway)
    gateway.encrypted = encrypted_agent.declare(ctx, gateway.tables, cfg)  # embodiment 2
    ctx.every(ctx.settings.timer_interval_s)(gateway.scan_deadlines)
