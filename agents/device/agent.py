"""Device worker of seed 002: every phone of the key set (``device-<device id>``) with its UIM.

Protocol, top to bottom (decisions in ``app``; the certificate check in ``protocols.wakeup``):

1. Sa1–Sa6 ``DeviceCommand`` login (the user's card, user id and password): local
           authentication; on success the result is stored (TTL) and the stored user id goes
           to the POS over short range (D1, D2, D3).
2. Sb1–Sb3 ``ReceptionNotice`` (addressed to this device) → fetch the mail; ``Mail`` from the
           gateway's address with the predetermined command → the payment application starts
           by itself and connects to the gateway's address from the UIM (D4, D5).
3. Sc1–Sc3 ``ServerCertificate`` checked against the trust anchor, then the stored result,
           the user id and the device id, with the response timer (D6, D7).
4. Sc4–Sc9 details → Agree / Not agree; the method list → one listed method (D8, D9);
           completion or error shown (D10).
The response timer and the result's expiry fire without traffic: a timer scans the owned
partitions and sends a ``WakeupTick`` through ``kessai.device.timers``.

The phone's state never holds a card number or expiry (D11): it has none to hold.
"""

from __future__ import annotations

import collections
import logging
import os
from collections.abc import MutableMapping
from dataclasses import dataclass, field, replace
from typing import Any

import msgpack
from aiokafka.partitioner import DefaultPartitioner

from agents.device import app
from agents.device import http as device_http
from kessai import crypto
from kessai.errors import ConfigError, KessaiError
from kessai.runtime import AgentContext, Inbound
from protocols import wakeup
from schemas.wakeup import (
    CompletionNotice,
    ConfirmationMail,
    DeviceCommand,
    Mail,
    PaymentMethods,
    PhoneScreen,
    ReceptionNotice,
    ServerCertificate,
    SessionError,
    TransactionDetails,
    TransactionHistory,
    WakeupTick,
)

log = logging.getLogger("kessai.device")

KIND = "device"
COMMANDS = "kessai.device.commands"
WAKEUPS = "kessai.device.wakeups"
MAIL = "kessai.device.mail"
SESSIONS = "kessai.device.sessions"
TIMERS = "kessai.device.timers"
SCREENS = "kessai.device.screens"
SEEN_KEPT = 32
_PARTITIONER = DefaultPartitioner()


def policy_from_env() -> app.Policy:
    """KESSAI_DEVICE_RESPONSE_MS (D7, default 120 s), KESSAI_DEVICE_AUTH_TTL_MS (D3, 1 h)."""
    base = app.Policy()
    return app.Policy(int(os.environ.get("KESSAI_DEVICE_RESPONSE_MS", base.response_ms)),
                      int(os.environ.get("KESSAI_DEVICE_AUTH_TTL_MS", base.auth_ttl_ms)))


def actor_of(device_id: str) -> str:
    return f"device-{device_id}"


@dataclass
class Devices:
    ctx: AgentContext
    uims: dict[str, app.Uim]  # device id → UIM
    policy: app.Policy
    table: MutableMapping[bytes, bytes]
    screens: dict[str, collections.deque[PhoneScreen]]
    screen_seq: dict[str, int] = field(default_factory=dict)
    histories: dict[str, tuple[str, str]] = field(default_factory=dict)  # V4: id, HTML

    def load(self, device_id: str) -> app.Phone:
        raw = self.table.get(device_id.encode())
        return app.Phone.from_wire(msgpack.unpackb(raw)) if raw else app.Phone()

    def addressed(self, inbound: Inbound, device_id: str) -> app.Uim | None:
        """The phone a record is for: named by its field and its key, and hosted here."""
        key = inbound.key.decode("utf-8", "replace") if inbound.key else ""
        return self.uims.get(device_id) if key == device_id else None

    async def refuse(self, inbound: Inbound, reason: str, detail: str) -> None:
        await self.ctx.dead_letter(reason, detail, inbound.topic, inbound.partition,
                                   inbound.offset, inbound.raw, inbound.key)

    async def apply(self, inbound: Inbound | None, uim: app.Uim, before: app.Phone,
                    step: app.Step | app.Refusal) -> None:
        if isinstance(step, app.Refusal):
            assert inbound is not None
            await self.refuse(inbound, step.reason, step.detail)
            return
        state = step.state
        if inbound is not None:
            state = replace(state, seen=[*state.seen, inbound.opened.envelope.id][-SEEN_KEPT:])
        sender = actor_of(uim.device_id)
        for effect in step.effects:
            if isinstance(effect, app.Send):
                await self.ctx.emit(effect.topic, effect.message, effect.key, sender=sender)
            else:
                screen = PhoneScreen(uim.device_id, effect.screen, effect.text,
                                     list(effect.options),
                                     state.session.session_id if state.session else "")
                self.screens.setdefault(uim.device_id, collections.deque(maxlen=20)).append(
                    screen)
                self.screen_seq[uim.device_id] = self.screen_seq.get(uim.device_id, 0) + 1
                await self.ctx.emit(SCREENS, screen, uim.device_id, sender=sender)
        if state != before:
            self.table[uim.device_id.encode()] = msgpack.packb(state.to_wire(),
                                                               use_bin_type=True)

    def fresh(self, inbound: Inbound, state: app.Phone) -> bool:
        return inbound.opened.envelope.id not in state.seen

    # -- the user at the keypad ----------------------------------------------------------------
    async def on_command(self, inbound: Inbound) -> None:
        cmd: DeviceCommand = inbound.message
        uim = self.addressed(inbound, cmd.device_id)
        if uim is not None and inbound.sender.startswith("device-") \
                and inbound.sender != actor_of(cmd.device_id):
            uim = None  # a phone's own screen speaks only for that phone
        if uim is None:
            await self.refuse(inbound, "unknown_device", f"no phone {cmd.device_id} here")
            return
        state = self.load(cmd.device_id)
        if not self.fresh(inbound, state):
            return
        now = self.ctx.clock.now_ms()
        step = self.decide_command(uim, state, cmd, now)
        await self.apply(inbound, uim, state, step)

    def decide_command(self, uim: app.Uim, state: app.Phone, cmd: DeviceCommand,
                       now: int) -> app.Step:
        if cmd.action == "login":
            # The simulated user types the password their card's pair holds (or a wrong one);
            # a person types it on the phone's own screen, which never puts it on the bus.
            cred = next((c for c in uim.credentials if c.card == cmd.card), None)
            typed = (cred.password if cred else "") + ("?" if cmd.wrong_password else "")
            return app.login(uim, app.expire(state, now), cmd.card, cmd.user_id, typed,
                             cmd.pos_id, now, self.policy)
        if cmd.action == "agree":
            return app.agree(uim, state, now, self.policy)
        if cmd.action == "not_agree":
            return app.not_agree(state)
        if cmd.action == "history":
            return app.history(uim, state, now, f"h-{uim.device_id}-{now}")
        if cmd.action == "confirm":
            return app.reply(uim, state, cmd.reply_sealed
                             or self.seal_reply(uim, state, cmd.wrong_password))
        return app.choose(uim, state, cmd.method, now, self.policy)

    def seal_reply(self, uim: app.Uim, state: app.Phone, wrong: bool) -> bytes:
        """The simulated user types their password (or a wrong one), sealed to the gateway."""
        if state.confirm is None:
            return b""
        cred = next((c for c in uim.credentials if c.user_id == state.confirm["user_id"]),
                    None)
        typed = (cred.password if cred else "") + ("?" if wrong else "")
        return crypto.seal(self.ctx.registry.sealing["paygate"][1], typed.encode(),
                           wakeup.reply_password_context(state.confirm["request_ref"]))

    # -- the direction server -------------------------------------------------------------------
    async def on_notice(self, inbound: Inbound) -> None:
        msg: ReceptionNotice = inbound.message
        uim = self.addressed(inbound, msg.device_id)
        if uim is None:
            await self.refuse(inbound, "not_addressed_here", f"a notice for {msg.device_id}")
            return
        state = self.load(msg.device_id)
        if self.fresh(inbound, state):
            await self.apply(inbound, uim, state, app.on_notice(uim, state, msg))

    async def on_mail(self, inbound: Inbound) -> None:
        msg: Mail = inbound.message
        uim = self.addressed(inbound, msg.device_id)
        if uim is None:
            await self.refuse(inbound, "not_addressed_here", f"a mail for {msg.device_id}")
            return
        state = self.load(msg.device_id)
        if self.fresh(inbound, state):
            step = app.on_mail(uim, state, msg, self.ctx.clock.now_ms(), self.policy)
            if not step.effects:
                log.info("device %s: mail %s dropped (not the gateway's command mail)",
                         msg.device_id, msg.mail_id)
            await self.apply(inbound, uim, state, step)

    # -- the gateway's side of the session ------------------------------------------------------
    async def on_gateway(self, inbound: Inbound) -> None:
        msg = inbound.message
        uim = self.addressed(inbound, msg.device_id)
        if uim is None:
            await self.refuse(inbound, "not_addressed_here", f"a session message for "
                                                              f"{msg.device_id}")
            return
        state = self.load(msg.device_id)
        if not self.fresh(inbound, state):
            return
        if isinstance(msg, TransactionHistory):  # V4: kept for the phone's page
            self.histories[uim.device_id] = (msg.request_id, msg.html)
            return
        now = self.ctx.clock.now_ms()
        step: app.Step | app.Refusal
        if isinstance(msg, ServerCertificate):
            step = app.on_certificate(uim, state, msg, self.certificate_problem(
                uim, msg, inbound.sender, now), now, self.policy)
        elif isinstance(msg, TransactionDetails):
            step = app.on_details(state, msg)
        elif isinstance(msg, PaymentMethods):
            step = app.on_methods(state, msg)
        elif isinstance(msg, CompletionNotice):
            step = app.on_completion(state, msg)
        elif isinstance(msg, ConfirmationMail):
            step = app.on_confirmation(uim, state, msg)
        else:
            step = app.on_error(state, msg)
        await self.apply(inbound, uim, state, step)

    def certificate_problem(self, uim: app.Uim, msg: ServerCertificate, signer: str,
                            now: int) -> str | None:
        anchor = self.ctx.registry.signing_key(uim.trust_anchor)
        signer_key = self.ctx.registry.signing_key(signer)
        if anchor is None or signer_key is None:
            return "no trust anchor"
        try:
            wakeup.check_certificate(msg.certificate, anchor[1], uim.gateway_address, signer,
                                     signer_key[1], now)
        except KessaiError as exc:
            return str(exc)
        return None

    # -- timers ---------------------------------------------------------------------------------
    async def on_tick(self, inbound: Inbound) -> None:
        msg: WakeupTick = inbound.message
        uim = self.addressed(inbound, msg.key)
        if uim is None:
            return
        state = self.load(msg.key)
        await self.apply(None, uim, state, app.on_tick(state, self.ctx.clock.now_ms()))

    async def scan_deadlines(self) -> None:
        active = self.ctx.active_partitions(COMMANDS)
        if not active:
            return
        now = self.ctx.clock.now_ms()
        for key, raw in list(self.table.items()):
            due = app.next_deadline(app.Phone.from_wire(msgpack.unpackb(raw)))
            if due is None or due > now:
                continue
            if int(_PARTITIONER(key, [0, 1, 2, 3], [0, 1, 2, 3])) not in active:
                continue
            device_id = key.decode()
            await self.ctx.emit(TIMERS, WakeupTick(device_id, due), device_id,
                                sender=actor_of(device_id))


def register(ctx: AgentContext) -> None:
    uims: dict[str, app.Uim] = {}
    for actor in ctx.keys:
        cfg: dict[str, Any] | None = ctx.actor_keys(actor).secrets.get("uim")
        if cfg is None:
            raise ConfigError(f"{actor}'s key file has no UIM area; recreate the key set with "
                              f"'kessai keys init --force {ctx.settings.keys_dir}'")
        uim = app.Uim.from_config(cfg)
        uims[uim.device_id] = uim
    devices = Devices(ctx, uims, policy_from_env(), ctx.table("device-uim", partitions=4), {})
    ctx.handle(COMMANDS, devices.on_command, types=(DeviceCommand,),
               senders=("operator", "device"))
    ctx.handle(WAKEUPS, devices.on_notice, types=(ReceptionNotice,), senders=("direction",))
    ctx.handle(MAIL, devices.on_mail, types=(Mail,), senders=("direction",))
    ctx.handle(SESSIONS, devices.on_gateway,
               types=(ServerCertificate, SessionError, TransactionDetails, PaymentMethods,
                      CompletionNotice, ConfirmationMail, TransactionHistory),
               senders=("paygate",))
    ctx.handle(TIMERS, devices.on_tick, types=(WakeupTick,), senders=("device",))
    ctx.every(ctx.settings.timer_interval_s)(devices.scan_deadlines)
    if os.environ.get("KESSAI_DEVICE_HTTP", "1") == "1":
        device_http.register(ctx, devices)  # the phones' screens for a person (browser)
