"""The correlation-ID join as a pure state machine (seed 003 cl. 1, 21, 49; spec R6–R34).

One ``JoinState`` per join key ``<shop_id>/<order_id>``. Each ``on_*`` function takes the
current state (or ``None``), one event and the time, and returns the next state (``None``
means "forget the key") and the effects the shell must carry out. Nothing here does I/O, so
every rule is testable with a fake clock and no broker.

Rules in one place:
- either request may arrive first ("前後して"); collation happens once both are present;
- collation (A17) before user authentication (A18); MISMATCH and AUTH_FAILED never reach the FI;
- exactly one terminal outcome per key; later requests for the key get the stored outcome again;
- a same-side duplicate with the same body is a no-op, with another body an audit event
  (DUPLICATE_CONFLICT) and the original is kept (R24);
- lone requests expire (R7/R8) and every terminal state drops the sealed account information;
- in DIRECT_BOTH the shop's result goes first and is redelivered until acknowledged (R29).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import msgpack

from agents.settlement.collation import collate
from schemas.codec import from_body, to_body
from schemas.v1 import FirstRequest, SecondRequest

PENDING = "PENDING"
AUTHORIZING = "AUTHORIZING"
DONE = "DONE"

# A 2nd request has a problem the shell found before the join: bad user authentication, or
# no account to charge (no account info and none held for the user).
SecondProblem = Literal["auth", "account"] | None
_SECRET_FIELDS = ("account_sealed", "password_sealed", "user_authenticator")


@dataclass(frozen=True)
class Policy:
    t_first_ms: int
    t_second_ms: int
    t_history_ms: int
    t_authorize_ms: int
    redeliver_ms: int
    max_redeliveries: int = 50


@dataclass(frozen=True)
class JoinState:
    key: str
    partition: int
    status: str = PENDING
    first: dict[str, Any] | None = None
    first_ms: int | None = None
    first_digest: bytes | None = None
    second: dict[str, Any] | None = None
    second_ms: int | None = None
    second_digest: bytes | None = None
    second_problem: str | None = None
    outcome: str | None = None
    outcome_ms: int | None = None
    deadline_ms: int | None = None
    history_until_ms: int | None = None
    shop_acked: bool = True
    deliveries: int = 0
    authorize_attempts: int = 0
    trace_id: str = ""  # the purchase's trace, so deadline effects carry it too

    def first_request(self) -> FirstRequest | None:
        return from_body(FirstRequest, self.first) if self.first is not None else None

    def second_request(self) -> SecondRequest | None:
        return from_body(SecondRequest, self.second) if self.second is not None else None

    @property
    def result_mode(self) -> str:
        return str(self.first["result_mode"]) if self.first else "VIA_TERMINAL"

    def to_wire(self) -> dict[str, Any]:
        # Shallow: the nested request bodies are plain dicts, packed at once and never
        # changed (dataclasses.asdict deep-copied them: a tenth of the worker's CPU).
        return {name: getattr(self, name) for name in _WIRE_FIELDS}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> JoinState:
        return cls(**raw)


_WIRE_FIELDS = tuple(f.name for f in fields(JoinState))


# Effects the shell carries out, in order.
@dataclass(frozen=True)
class SendResult:
    recipient: Literal["user", "shop"]


@dataclass(frozen=True)
class Authorize:
    attempt: int


@dataclass(frozen=True)
class Audit:
    kind: str
    detail: str


Effect = SendResult | Authorize | Audit


@dataclass(frozen=True)
class Step:
    state: JoinState | None
    effects: list[Effect] = field(default_factory=list)


def body_digest(msg: FirstRequest | SecondRequest) -> bytes:
    """What tells a same-body duplicate from a conflicting one: SHA-256 of the packed body."""
    return hashlib.sha256(msgpack.packb(to_body(msg), use_bin_type=True)).digest()


def _new(key: str, partition: int) -> JoinState:
    return JoinState(key=key, partition=partition)


def on_first(state: JoinState | None, key: str, partition: int, first: FirstRequest,
             digest: bytes, now: int, policy: Policy) -> Step:
    state = state or _new(key, partition)
    if state.status == DONE:
        return Step(state, [SendResult("shop")] if state.first_digest in (None, digest)
                    else [Audit("DUPLICATE_CONFLICT", "1st request for a settled order")])
    if state.first is not None:
        if digest == state.first_digest:
            return Step(state)
        return Step(state, [Audit("DUPLICATE_CONFLICT", "1st request resent with another body; "
                                  "the original is kept")])
    state = replace(state, first=to_body(first), first_ms=now, first_digest=digest,
                    shop_acked=first.result_mode != "DIRECT_BOTH")
    if state.second is None:
        return Step(replace(state, deadline_ms=now + policy.t_first_ms))
    return _both_present(state, now, policy)


def on_second(state: JoinState | None, key: str, partition: int, second: SecondRequest,
              digest: bytes, problem: SecondProblem, now: int, policy: Policy) -> Step:
    state = state or _new(key, partition)
    if state.status == DONE:
        # Settled (or expired) already: never collated again, never to the FI host; the user
        # gets the one outcome. A late 2nd request after a lone 1st expired is kept without its
        # secrets, so the result names the user's session and carries their authenticator.
        if state.second_digest not in (None, digest):
            return Step(state, [Audit("DUPLICATE_CONFLICT", "2nd request for a settled order")])
        if state.second is None:
            state = replace(state, second={**to_body(second), **dict.fromkeys(_SECRET_FIELDS)},
                            second_digest=digest)
        return Step(state, [SendResult("user")])
    if state.second is not None:
        if digest == state.second_digest:
            return Step(state)
        return Step(state, [Audit("DUPLICATE_CONFLICT", "2nd request resent with another body; "
                                  "the original is kept")])
    state = replace(state, second=to_body(second), second_ms=now, second_digest=digest,
                    second_problem=problem)
    if state.first is None:
        # Holds (sealed) account info: keep it only briefly (R7).
        return Step(replace(state, deadline_ms=now + policy.t_second_ms))
    return _both_present(state, now, policy)


def _both_present(state: JoinState, now: int, policy: Policy) -> Step:
    first, second = state.first_request(), state.second_request()
    assert first is not None and second is not None
    verdict = collate(first, second)
    if not verdict.match:
        return _finish(state, "MISMATCH", now, policy,
                       [Audit("MISMATCH", "differs in " + ", ".join(verdict.differences))])
    if state.second_problem == "auth":
        return _finish(state, "AUTH_FAILED", now, policy)
    if state.second_problem == "account":
        return _finish(state, "REJECTED", now, policy,
                       [Audit("NO_ACCOUNT", "no account information and none held")])
    state = replace(state, status=AUTHORIZING, authorize_attempts=1,
                    deadline_ms=now + policy.t_authorize_ms)
    return Step(state, [Authorize(1)])


def on_authorization_result(state: JoinState | None, approved: bool, now: int,
                            policy: Policy) -> Step:
    if state is None or state.status != AUTHORIZING:
        # A redelivered or late FI answer: the outcome is already recorded (or never asked).
        return Step(state)
    return _finish(state, "APPROVED" if approved else "DECLINED", now, policy)


def on_shop_ack(state: JoinState | None, now: int) -> Step:
    if state is None or state.status != DONE or state.shop_acked:
        return Step(state)
    return Step(replace(state, shop_acked=True, deadline_ms=state.history_until_ms))


def on_tick(state: JoinState | None, now: int, policy: Policy) -> Step:
    """A deadline may have passed: expire, re-ask the FI, redeliver, or forget."""
    if state is None or state.deadline_ms is None or now < state.deadline_ms:
        return Step(state)
    if state.status == PENDING:
        return _finish(state, "EXPIRED", now, policy)
    if state.status == AUTHORIZING:
        attempt = state.authorize_attempts + 1
        # Same idempotency key (the join key) every time: the FI host charges at most once.
        return Step(replace(state, authorize_attempts=attempt,
                            deadline_ms=now + policy.t_authorize_ms), [Authorize(attempt)])
    assert state.history_until_ms is not None
    if not state.shop_acked and state.deliveries < policy.max_redeliveries \
            and now < state.history_until_ms:
        nxt = min(now + policy.redeliver_ms, state.history_until_ms)
        return Step(replace(state, deliveries=state.deliveries + 1, deadline_ms=nxt),
                    [SendResult("shop")])
    if now >= state.history_until_ms:
        return Step(None)
    return Step(replace(state, deadline_ms=state.history_until_ms))


def _finish(state: JoinState, outcome: str, now: int, policy: Policy,
            extra: list[Effect] | None = None) -> Step:
    # The one place a key becomes terminal; it drops every sealed secret of the 2nd request.
    second = state.second
    if second is not None:
        second = {**second, **dict.fromkeys(_SECRET_FIELDS)}
    history_until = now + policy.t_history_ms
    mode = state.result_mode
    effects: list[Effect] = list(extra or [])
    direct = mode == "DIRECT_BOTH" and state.first is not None
    if direct or state.second is None:
        effects.append(SendResult("shop"))  # B19 comes first; or the only party to tell
    if state.second is not None:
        effects.append(SendResult("user"))
    shop_acked = not direct
    deadline = history_until if shop_acked else min(now + policy.redeliver_ms, history_until)
    new = replace(state, status=DONE, outcome=outcome, outcome_ms=now, second=second,
                  deadline_ms=deadline, history_until_ms=history_until, shop_acked=shop_acked,
                  deliveries=1 if direct else 0)
    return Step(new, effects)


def inquiry_answer(state: JoinState | None) -> str:
    """What a shop's result inquiry (emb. 3, C24) gets from the history."""
    if state is None:
        return "UNKNOWN_OR_EXPIRED"
    if state.status != DONE or state.outcome is None:
        return "PENDING"
    return state.outcome
