"""The gateway's embodiment 2 handlers (seed 002, Fig. 27; decisions in ``encrypted``).

1. S01     ``CardNumberRequest`` from a POS on ``kessai.paygate.card-requests``.
2. S05–S09 K1 checks → ``CardRefused`` to the POS; or (K2, default on) a ``ConfirmationMail``
           to the user's registered device, answered by a ``ConfirmationReply`` with the
           password sealed to the gateway; no reply in time or a wrong password → cancelled.
3. S10–S13 a fresh AES-256-GCM key per transaction; ``KeyDistribution`` (ciphertext + key,
           the key sealed to the credit server of the card's issuer) on ``kessai.credit.keys``,
           then ``EncryptedCard`` (ciphertext only) to the POS on ``kessai.pos.card-numbers``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from dataclasses import dataclass, replace

import msgpack

from agents.paygate import encrypted as machine
from agents.paygate.tables import Tables
from kessai import crypto
from kessai.errors import SealError
from kessai.runtime import AgentContext, Inbound
from protocols import wakeup
from schemas.wakeup import (
    CardNumberRequest,
    CardRefused,
    ConfirmationReply,
    EncryptedCard,
    KeyDistribution,
)

log = logging.getLogger("kessai.paygate")

CARD_REQUESTS = "kessai.paygate.card-requests"
CARD_NUMBERS = "kessai.pos.card-numbers"
CREDIT_KEYS = "kessai.credit.keys"
DEVICE_SESSIONS = "kessai.device.sessions"
SESSIONS = "kessai.paygate.sessions"


def policy_from_env() -> machine.Policy:
    """KESSAI_PAYGATE_CONFIRM_REPLY (1/0, K2 on by default), KESSAI_PAYGATE_REPLY_MS."""
    base = machine.Policy()
    return machine.Policy(os.environ.get("KESSAI_PAYGATE_CONFIRM_REPLY", "1") == "1",
                          int(os.environ.get("KESSAI_PAYGATE_REPLY_MS", base.reply_ms)))


@dataclass
class Encrypted:
    ctx: AgentContext
    tables: Tables
    policy: machine.Policy
    passwords: dict[str, tuple[bytes, bytes]]
    seal_private: bytes
    requests: MutableMapping[bytes, bytes]

    def load(self, user_id: str) -> machine.Request | None:
        raw = self.requests.get(user_id.encode())
        return machine.Request.from_wire(msgpack.unpackb(raw)) if raw else None

    async def apply(self, inbound: Inbound | None, current: machine.Request | None,
                    step: machine.Step) -> None:
        state = step.state
        for effect in step.effects:
            assert state is not None or isinstance(effect, machine.Refuse)
            if isinstance(effect, machine.Refuse):
                target = state or current
                assert target is not None
                await self.ctx.emit(CARD_NUMBERS, CardRefused(
                    target.pos_id, target.request_ref, effect.reason),  # type: ignore[arg-type]
                    target.request_ref, key=target.pos_id)
            elif isinstance(effect, machine.Confirm):
                await self.ctx.emit(DEVICE_SESSIONS, effect.mail, effect.mail.request_ref,
                                    key=effect.mail.device_id)
            else:
                assert state is not None
                await self.issue(state, effect.issuer_code)
        if state is not None and state is not current:
            if inbound is not None:
                state = replace(state, seen=[*state.seen, inbound.opened.envelope.id][-32:])
            self.requests[state.user_id.encode()] = msgpack.packb(state.to_wire(),
                                                                  use_bin_type=True)

    async def issue(self, req: machine.Request, issuer_code: str) -> None:
        user = self.tables.users[req.user_id]
        server = self.tables.credit_servers.get(issuer_code, "issuer")
        key = wakeup.new_card_key()
        enc = wakeup.encrypt_card(key, user.card_number, user.expiration)
        ref = wakeup.encrypted_card_ref(enc)
        # The key first: the POS can only ask the credit server once it has the ciphertext.
        await self.ctx.emit(CREDIT_KEYS, KeyDistribution(
            enc, crypto.seal(self.ctx.registry.sealing[server][1], key,
                             wakeup.credit_key_context(enc))), ref, key=ref)
        await self.ctx.emit(CARD_NUMBERS, EncryptedCard(req.pos_id, req.request_ref, enc,
                                                        issuer_code, server),
                            req.request_ref, key=req.pos_id)
        log.info("paygate: request %s of %s: encrypted card to the POS, key to %s",
                 req.request_ref, req.pos_id, server)

    async def on_card_request(self, inbound: Inbound) -> None:
        msg: CardNumberRequest = inbound.message
        current = self.load(msg.user_id)
        if current is not None and inbound.opened.envelope.id in current.seen:
            return
        step = machine.on_request(current, msg, self.tables, self.ctx.clock.now_ms(),
                                  self.policy)
        await self.apply(inbound, current, step)

    async def on_reply(self, inbound: Inbound) -> None:
        msg: ConfirmationReply = inbound.message
        current = self.load(msg.user_id)
        if current is not None and inbound.opened.envelope.id in current.seen:
            return
        step = machine.on_reply(current, msg, self.password_ok(msg),
                                inbound.sender.removeprefix("device-"), self.tables,
                                self.ctx.clock.now_ms())
        if isinstance(step, str):
            await self.ctx.dead_letter(step, f"reply to {msg.request_ref}", inbound.topic,
                                       inbound.partition, inbound.offset, inbound.raw,
                                       inbound.key)
            return
        await self.apply(inbound, current, step)

    def password_ok(self, msg: ConfirmationReply) -> bool:
        stored = self.passwords.get(msg.user_id)
        if stored is None:
            return False
        try:
            typed = crypto.open_sealed(self.seal_private, msg.password_sealed,
                                       wakeup.reply_password_context(msg.request_ref))
            return crypto.password_ok(typed.decode("utf-8", "replace"), *stored)
        except SealError:
            return False

    async def on_tick(self, user_id: str) -> None:
        current = self.load(user_id)
        await self.apply(None, current, machine.on_tick(current, self.ctx.clock.now_ms()))

    def deadlines(self) -> list[tuple[str, int]]:
        out = []
        for raw in list(self.requests.values()):
            r = machine.Request.from_wire(msgpack.unpackb(raw))
            if r.status == machine.AWAITING_REPLY and r.deadline_ms is not None:
                out.append((r.user_id, r.deadline_ms))
        return out


def declare(ctx: AgentContext, tables: Tables, cfg: dict[str, object]) -> Encrypted:
    keys = ctx.actor_keys("paygate")
    assert keys.seal_private is not None
    raw_pw = cfg.get("passwords", {})
    assert isinstance(raw_pw, dict)
    passwords = {uid: (bytes.fromhex(v["salt"]), bytes.fromhex(v["hash"]))
                 for uid, v in raw_pw.items()}
    enc = Encrypted(ctx, tables, policy_from_env(), passwords, keys.seal_private,
                    ctx.table("paygate-card-requests", partitions=4))
    ctx.handle(CARD_REQUESTS, enc.on_card_request, types=(CardNumberRequest,),
               senders=("pos",))
    ctx.handle(SESSIONS, enc.on_reply, types=(ConfirmationReply,), senders=("device",))
    return enc
