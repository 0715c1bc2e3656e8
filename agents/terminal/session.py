"""A purchase session on the user's device as a pure state machine (seed 003 A1–A22).

One :class:`Session` per purchase session id. Each ``on_*`` function takes the stored state (or
``None``), one event and the time, and returns the next state (``None``: forget the session)
and the effects the shell carries out, in order. Nothing here does I/O, so every rule is
testable without a broker, and the shell keeps the state in a changelog-backed table: a device
restarted after a kill -9 resumes every purchase it was in the middle of (issue 6, item 10).

Rules in one place:
- one order per session: a repeated purchase command changes nothing;
- the device shows one payment request per session and checks it (A14: "if there is no
  mistake"); it pays once, after the user's think time (A15). The time to pay is part of the
  state, so it survives a restart and fires without new traffic (:func:`on_tick`);
- the result is checked (cl. 11): one whose settlement authenticator is missing or does not
  verify is refused and the user told so; an authentic one is shown and, in VIA_TERMINAL mode,
  relayed to the shop once (cl. 7);
- a session is forgotten ``keep_ms`` after its result (or after the user walked away or refused
  the request), and in any case ``lifetime_ms`` after the purchase command. ``keep_ms``
  defaults to the door's default freshness window (15 min): by the time a session is
  forgotten, its purchase command is too old to be accepted again.

The table value is :func:`encode`'s: a fixed header (next deadline, partition) and the msgpack
state, so the deadline scan reads two numbers per session instead of decoding each one.
"""

from __future__ import annotations

import os
import struct
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import msgpack

from agents.terminal import wallet
from kessai.authenticators import join_key
from kessai.errors import ConfigError
from schemas.codec import from_body, to_body
from schemas.v1 import PaymentRequest, PaymentResult, PurchaseCommand

_HEADER = struct.Struct(">qH")  # next deadline (ms), partition
NEVER = 2**62


@dataclass(frozen=True)
class Policy:
    """How long a device remembers a purchase ([IMPL]: the patent names no lifetime)."""

    keep_ms: int = 15 * 60 * 1000  # after the result, or after the user walked away
    lifetime_ms: int = 24 * 3600 * 1000  # from the purchase command, in any case

    def __post_init__(self) -> None:
        if self.keep_ms <= 0 or self.lifetime_ms <= 0:
            raise ConfigError("terminal session lifetimes must be positive")

    @classmethod
    def from_env(cls) -> Policy:
        """``KESSAI_TERMINAL_KEEP_MS`` and ``KESSAI_TERMINAL_LIFETIME_MS`` override."""
        return cls(keep_ms=_env_ms("KESSAI_TERMINAL_KEEP_MS", cls.keep_ms),
                   lifetime_ms=_env_ms("KESSAI_TERMINAL_LIFETIME_MS", cls.lifetime_ms))


def _env_ms(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    if not raw.isdigit() or int(raw) <= 0:
        raise ConfigError(f"{name} must be a positive integer (milliseconds), got {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class Session:
    session: str
    partition: int  # of the session's key; ticks for it are sent there
    command: dict[str, Any]  # the PurchaseCommand body: what the user ordered and how
    forget_at_ms: int
    trace_id: str = ""
    shown: dict[str, Any] | None = None  # the PaymentRequest on the screen (A12)
    pay_at_ms: int | None = None  # the user presses "pay" then (A15), until paid
    paid: bool = False
    outcome: str | None = None
    relayed: bool = False

    def purchase(self) -> PurchaseCommand:
        return from_body(PurchaseCommand, self.command)

    def payment_request(self) -> PaymentRequest | None:
        return from_body(PaymentRequest, self.shown) if self.shown is not None else None

    @property
    def deadline_ms(self) -> int:
        """The next time :func:`on_tick` has something to do."""
        pay = self.pay_at_ms if self.pay_at_ms is not None and not self.paid else NEVER
        return min(pay, self.forget_at_ms)

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Session:
        return cls(**raw)


def encode(state: Session) -> bytes:
    return _HEADER.pack(state.deadline_ms, state.partition) + msgpack.packb(
        state.to_wire(), use_bin_type=True)


def decode(raw: bytes) -> Session:
    return Session.from_wire(msgpack.unpackb(raw[_HEADER.size:], raw=False))


def header(raw: bytes) -> tuple[int, int]:
    """(next deadline, partition) of an encoded session, without decoding it."""
    deadline, partition = _HEADER.unpack_from(raw)
    return int(deadline), int(partition)


# Effects the shell carries out, in order.
@dataclass(frozen=True)
class SendOrder:
    """A1: the order request (M1) to the shop."""


@dataclass(frozen=True)
class Pay:
    """A15: build the 2nd settlement request for the request shown and send it."""


@dataclass(frozen=True)
class Relay:
    """A22: the result to the shop with its authenticator unchanged (``forged``: demo knob)."""

    forged: bool = False


@dataclass(frozen=True)
class Audit:
    kind: str
    key: str
    detail: str


@dataclass(frozen=True)
class Note:
    """Something worth a log line, no more."""

    text: str


@dataclass(frozen=True)
class Tell:
    """What the device shows its user (its screen is the terminal's log)."""

    text: str


Effect = SendOrder | Pay | Relay | Audit | Note | Tell


@dataclass(frozen=True)
class Step:
    state: Session | None
    effects: list[Effect] = field(default_factory=list)


def _forget_soon(state: Session, now: int, policy: Policy) -> Session:
    return replace(state, forget_at_ms=min(state.forget_at_ms, now + policy.keep_ms))


def on_command(state: Session | None, cmd: PurchaseCommand, partition: int, now: int,
               policy: Policy, trace_id: str = "") -> Step:
    """A1: the user orders. A command for a session the device holds is the same purchase."""
    if state is not None:
        return Step(state)
    new = Session(cmd.session, partition, to_body(cmd), now + policy.lifetime_ms, trace_id)
    return Step(new, [SendOrder()])


def on_payment_request(state: Session | None, request: PaymentRequest, now: int,
                       policy: Policy) -> Step:
    """A7–A14: the shop wakes the device; the user checks the request and (later) pays."""
    if state is None:
        return Step(None)  # another device's purchase, or one forgotten
    key = join_key(request.shop_id, request.order_id)
    shown = state.payment_request()
    if shown is not None:
        if shown.order_id != request.order_id or shown.shop_id != request.shop_id:
            return Step(state, [Audit("second-payment-request", key,
                                      f"session {request.session} already pays order "
                                      f"{shown.order_id}")])
        return Step(state)  # shown already: a repeat of the same request
    cmd = state.purchase()
    if (request.user_id, request.shop_id) != (cmd.user_id, cmd.shop_id):
        return Step(state, [Audit("unexpected-payment-request", key,
                                  "payment request for another user or shop than ordered")])
    state = replace(state, shown=to_body(request))
    mistake = wallet.check_displayed(cmd.items, request)
    if mistake is not None:
        return Step(_forget_soon(state, now, policy), [Audit("user-refused", key, mistake)])
    if cmd.abandon:
        return Step(_forget_soon(state, now, policy),
                    [Note(f"the user walks away from order {request.order_id}")])
    if cmd.second_delay_ms <= 0:
        return Step(replace(state, paid=True), [Pay()])
    return Step(replace(state, pay_at_ms=now + cmd.second_delay_ms))


def on_tick(state: Session | None, now: int) -> Step:
    """A deadline may have passed: the user's think time is over, or the session is done."""
    if state is None:
        return Step(None)
    if now >= state.forget_at_ms:
        return Step(None)
    if not state.paid and state.pay_at_ms is not None and now >= state.pay_at_ms:
        return Step(replace(state, paid=True, pay_at_ms=None), [Pay()])
    return Step(state)


def on_result(state: Session | None, result: PaymentResult, authentic: bool, now: int,
              policy: Policy) -> Step:
    """A19–A22: the user's result; checked (cl. 11), relayed once in VIA_TERMINAL (cl. 7).

    ``authentic``: the result's settlement authenticator for the user (cl. 11/28/40) is
    present and verifies with the key the user shares with the settlement server (the shell
    holds the wallet). A result that does not authenticate is refused: audited, the user is
    told it could not be verified, it is neither taken as the outcome nor relayed, and the
    session waits on for an authentic copy (or the shop learns the result from the history).
    """
    if state is None:
        return Step(None)
    key = join_key(result.shop_id, result.order_id)
    shown = state.payment_request()
    if shown is not None and (shown.shop_id, shown.order_id) != (result.shop_id,
                                                                  result.order_id):
        return Step(state, [Audit("unexpected-result", key,
                                  f"session {result.session} pays order {shown.order_id}")])
    if not authentic:
        return Step(state, [
            Audit("bad-result-authenticator", key,
                  "the settlement authenticator of the result is missing or does not verify"),
            Tell(f"the result for order {result.order_id} could not be verified as the "
                 "settlement server's; it was not accepted")])
    if state.outcome is not None:
        return Step(state)  # a redelivered copy: taken and relayed already
    effects: list[Effect] = [Tell(f"order {result.order_id}: {result.outcome}")]
    new = _forget_soon(replace(state, outcome=result.outcome), now, policy)
    if result.result_mode == "VIA_TERMINAL" and not state.relayed:
        new = replace(new, relayed=True)
        effects.append(Relay(forged=state.purchase().forge_relay))
    return Step(new, effects)
