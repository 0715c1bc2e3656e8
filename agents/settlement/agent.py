"""The settlement worker: the correlation-ID join of seed 003 as faust agents.

Each handler is declared with its topic, message types and senders; the runtime's door has
already decoded, verified, checked freshness and replay, and admitted type and sender before
it runs. A handler checks the record key → ``join.on_*`` → carries out the effects.
State per join key lives in the ``settlement-join`` table (changelog-backed, so a restarted or
re-balanced worker resumes every pending order). Deadlines fire without new traffic: a timer
scans the partitions this worker actively owns and sends itself a ``DeadlineTick`` through
``kessai.settlement.timers`` (co-partitioned), so every state change happens inside a stream
event, is written to the changelog, and is idempotent under redelivery.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from dataclasses import replace
from typing import Any

import msgpack

from agents.settlement import join
from agents.settlement.results import build_result, parties
from agents.settlement.userauth import SettlementSecrets, account_for, check_second
from kessai import authenticators, crypto, envelope
from kessai.errors import KessaiError
from kessai.runtime import AgentContext, Inbound
from schemas.v1 import (
    AssignedFirst,
    Authorization,
    AuthorizationResult,
    DeadlineTick,
    FirstAccepted,
    FirstRequest,
    InquiryAnswer,
    ResultAck,
    ResultInquiry,
    SecondRequest,
)

log = logging.getLogger("kessai.settlement")

ACTORS = ["settlement"]
FIRST = "kessai.settlement.first"
SECOND = "kessai.settlement.second"
TIMERS = "kessai.settlement.timers"
AUTH_RESULTS = "kessai.authorization-results"
ACKS = "kessai.payment-results.acks"
INQUIRIES = "kessai.result-inquiries"


def assigned_order_id(shop_id: str, request_ref: str) -> str:
    """Server-assigned order id ([0027]); deterministic, so a redelivered 1st request gets
    the same id again."""
    digest = hashlib.sha256(f"{shop_id}\x00{request_ref}".encode()).digest()
    return "S" + base64.b32encode(digest).decode()[:15]


def digest_of(msg: Any) -> bytes:
    return join.body_digest(msg)


def policy_from(ctx: AgentContext) -> join.Policy:
    s = ctx.settings
    return join.Policy(s.t_first_ms, s.t_second_ms, s.t_history_ms, s.t_authorize_ms,
                       s.result_redelivery_ms)


def secrets_from(ctx: AgentContext) -> SettlementSecrets:
    return SettlementSecrets.of(ctx.actor_keys("settlement"))


class Decoded:
    """The join states a deadline scan has decoded, by table key, each with the exact bytes
    it came from: the scan runs every second over every state (history included), and
    decoding them all each time was most of its cost. A state whose bytes changed (a write,
    a rebuild from the changelog) is decoded again, so the scan never acts on a stale one."""

    def __init__(self) -> None:
        self._seen: dict[bytes, tuple[bytes, join.JoinState]] = {}

    def of(self, key: bytes, raw: bytes) -> join.JoinState:
        hit = self._seen.get(key)
        if hit is not None and hit[0] == raw:
            return hit[1]
        state = join.JoinState.from_wire(msgpack.unpackb(raw))
        self._seen[key] = (raw, state)
        return state

    def keep_only(self, keys: Any) -> None:
        """Forget the states no longer in the table."""
        for key in self._seen.keys() - set(keys):
            del self._seen[key]


def register(ctx: AgentContext) -> None:
    policy = policy_from(ctx)
    secrets = secrets_from(ctx)
    table = ctx.table("settlement-join", partitions=4)
    tick_sent: dict[str, int] = {}
    deadlines = Decoded()

    def load(key: str) -> join.JoinState | None:
        raw = table.get(key.encode())
        return join.JoinState.from_wire(msgpack.unpackb(raw)) if raw else None

    async def apply(key: str, step: join.Step) -> None:
        trace = envelope.CURRENT_TRACE.get()
        if step.state is not None and not step.state.trace_id and trace:
            step = replace(step, state=replace(step.state, trace_id=trace))
        if step.state is None:
            if key.encode() in table:
                del table[key.encode()]  # tombstone in the changelog: history has expired
        else:
            table[key.encode()] = msgpack.packb(step.state.to_wire(), use_bin_type=True)
        for effect in step.effects:
            await carry_out(key, step.state, effect)

    async def carry_out(key: str, state: join.JoinState | None, effect: join.Effect) -> None:
        if isinstance(effect, join.Audit):
            await ctx.audit(effect.kind, key, effect.detail)
        elif isinstance(effect, join.SendResult):
            assert state is not None
            result = build_result(state, effect.recipient, *_result_keys(state))
            await ctx.emit("kessai.payment-results", result, key)
            log.info("order %s: %s → %s", key, state.outcome, effect.recipient)
        elif isinstance(effect, join.Authorize):
            assert state is not None
            second, first = state.second_request(), state.first_request()
            assert second is not None and first is not None
            pan, expiry = account_for(second, key, secrets)
            sealed = crypto.seal(ctx.registry.sealing["issuer"][1],
                                 authenticators.pack_account(pan, expiry),
                                 authenticators.issuer_account_context(key))
            # R22: the payee from the 1st request, else the shop's pre-held profile.
            payee = first.payee_account or f"payee:{first.shop_id}"
            await ctx.emit("kessai.authorizations",
                           Authorization(key, first.amount, payee, sealed), key)

    def _result_keys(state: join.JoinState) -> tuple[bytes, bytes | None]:
        first, second = state.first_request(), state.second_request()
        shop_id = first.shop_id if first else second.shop_id  # type: ignore[union-attr]
        user_id = second.user_id if second else None
        user_key = secrets.user_mac.get(user_id) if user_id else None
        return bytes.fromhex(secrets.shop_mac[shop_id]), (
            bytes.fromhex(user_key) if user_key else None)

    def key_ok(inbound: Inbound, expected: str) -> bool:
        return inbound.key is not None and inbound.key.decode("utf-8", "replace") == expected

    async def reject(inbound: Inbound, kind: str, detail: str) -> None:
        key = inbound.key.decode("utf-8", "replace") if inbound.key else "-"
        await ctx.audit(kind, key, detail)

    # -- A4 / A5: the shop's 1st request -------------------------------------------------
    async def on_first(inbound: Inbound) -> None:
        msg: FirstRequest = inbound.message
        # R5: the shop id is the authenticated producer (the envelope's signer).
        if inbound.sender != msg.shop_id:
            await reject(inbound, "SHOP_IDENTITY",
                         f"{inbound.sender} sent a 1st request as {msg.shop_id}")
        elif msg.order_id == "":
            await assign_order_id(inbound, msg)
        else:
            await handle_first(inbound, msg)

    async def on_assigned_first(inbound: Inbound) -> None:
        msg: AssignedFirst = inbound.message
        try:
            original = envelope.open_record(msg.original, ctx.registry)
        except KessaiError as exc:
            await reject(inbound, "BAD_ASSIGNMENT", str(exc))
            return
        first = original.message
        if not isinstance(first, FirstRequest) or original.envelope.sender != first.shop_id:
            await reject(inbound, "BAD_ASSIGNMENT", "not a shop's 1st request")
            return
        await handle_first(inbound, FirstRequest(**{**first.__dict__, "order_id": msg.order_id}))

    async def assign_order_id(inbound: Inbound, msg: FirstRequest) -> None:
        order_id = assigned_order_id(msg.shop_id, msg.request_ref)
        key = authenticators.join_key(msg.shop_id, order_id)
        # Re-key under the assigned id (a repartition), then tell the shop (M3).
        await ctx.emit(FIRST, AssignedFirst(order_id, envelope.encode(inbound.opened.envelope)),
                       key)
        ref_key = f"{msg.shop_id}/ref:{msg.request_ref}"
        await ctx.emit("kessai.settlement.first-acks",
                       FirstAccepted(msg.shop_id, msg.request_ref, order_id), ref_key)

    async def handle_first(inbound: Inbound, first: FirstRequest) -> None:
        key = authenticators.join_key(first.shop_id, first.order_id)
        if not key_ok(inbound, key):
            await reject(inbound, "KEY_MISMATCH", f"record key is not {key}")
            return
        step = join.on_first(load(key), key, inbound.partition, first, digest_of(first),
                             ctx.clock.now_ms(), policy)
        await apply(key, step)

    # -- A16 / A17 / A18: the user's 2nd request ------------------------------------------
    async def on_second(inbound: Inbound) -> None:
        msg: SecondRequest = inbound.message
        key = authenticators.join_key(msg.shop_id, msg.order_id)
        if not key_ok(inbound, key):
            await reject(inbound, "KEY_MISMATCH", f"record key is not {key}")
            return
        problem = check_second(msg, inbound.sender, key, ctx.registry, secrets)
        step = join.on_second(load(key), key, inbound.partition, msg, digest_of(msg),
                              problem, ctx.clock.now_ms(), policy)
        await apply(key, step)

    # -- A18: the FI host's answer ---------------------------------------------------------
    async def on_authorization_result(inbound: Inbound) -> None:
        msg: AuthorizationResult = inbound.message
        if not key_ok(inbound, msg.join_key):
            await reject(inbound, "KEY_MISMATCH", "record key is not the join key")
            return
        step = join.on_authorization_result(load(msg.join_key), msg.approved,
                                            ctx.clock.now_ms(), policy)
        await apply(msg.join_key, step)

    # -- B21/B22: the shop's receipt of a direct result --------------------------------------
    async def on_result_ack(inbound: Inbound) -> None:
        msg: ResultAck = inbound.message
        key = authenticators.join_key(msg.shop_id, msg.order_id)
        if key_ok(inbound, key):
            await apply(key, join.on_shop_ack(load(key), ctx.clock.now_ms()))

    # -- C23–C25: the shop asks the result history --------------------------------------------
    async def on_inquiry(inbound: Inbound) -> None:
        msg: ResultInquiry = inbound.message
        key = authenticators.join_key(msg.shop_id, msg.order_id)
        if inbound.sender != msg.shop_id or not key_ok(inbound, key):
            # R30: only the authenticated shop that owns the order gets an answer.
            await reject(inbound, "INQUIRY_DENIED", f"{inbound.sender} asked about {key}")
            answer = InquiryAnswer(msg.shop_id, msg.order_id, "DENIED")
        else:
            state = load(key)
            amount = None
            if state is not None and state.status == join.DONE:
                amount = parties(state)[3]
            answer = InquiryAnswer(msg.shop_id, msg.order_id, join.inquiry_answer(state), amount)
        await ctx.emit("kessai.result-inquiries.answers", answer, key)

    # -- deadlines: fire without new traffic -----------------------------------------------
    async def on_tick(inbound: Inbound) -> None:
        msg: DeadlineTick = inbound.message
        if not key_ok(inbound, msg.join_key):
            return
        tick_sent.pop(msg.join_key, None)
        await apply(msg.join_key, join.on_tick(load(msg.join_key), ctx.clock.now_ms(), policy))

    ctx.handle(FIRST, on_first, types=(FirstRequest,), senders=("shop",))
    ctx.handle(FIRST, on_assigned_first, types=(AssignedFirst,), senders=("settlement",))
    ctx.handle(SECOND, on_second, types=(SecondRequest,),
               senders=("terminal", "relay", "wallet"))  # wallet: seed 004's server wallets
    ctx.handle(AUTH_RESULTS, on_authorization_result, types=(AuthorizationResult,),
               senders=("issuer",))
    ctx.handle(ACKS, on_result_ack, types=(ResultAck,), senders=("shop",), sender_is="shop_id")
    ctx.handle(INQUIRIES, on_inquiry, types=(ResultInquiry,), senders=("shop",))
    ctx.handle(TIMERS, on_tick, types=(DeadlineTick,), senders=("settlement",))

    @ctx.every(ctx.settings.timer_interval_s)
    async def scan_deadlines() -> None:
        # Standby copies of other workers' partitions are in the table too: act only on the
        # partitions this worker actively owns.
        # A deadline means "the other half did not come in time": after a restart a half sent
        # in time may still be unread, so a partition's deadlines wait until both request
        # topics are caught up (co-partitioned: the same partition number).
        active = {p for p in ctx.active_partitions(FIRST)
                  if ctx.caught_up(FIRST, p) and ctx.caught_up(SECOND, p)}
        if not active:
            return
        now = ctx.clock.now_ms()
        states = list(table.items())
        deadlines.keep_only(k for k, _ in states)
        for k, raw_state in states:
            state = deadlines.of(k, raw_state)
            if state.partition not in active or state.deadline_ms is None \
                    or state.deadline_ms > now:
                continue
            if now - tick_sent.get(state.key, 0) < 2_000:
                continue
            tick_sent[state.key] = now
            await ctx.emit(TIMERS, DeadlineTick(state.key, state.deadline_ms), state.key,
                           partition=state.partition, trace_id=state.trace_id or None)
