"""The join's transitions stated exactly: every field a transition sets and every effect, in
order. Written against the mutants `make mutate` found alive in agents/settlement/join.py
(docs/testing.md): a test that checks only the outcome lets a wrong deadline, a lost digest or
a missing redelivery through."""

from __future__ import annotations

import dataclasses

import pytest

from agents.settlement import join
from agents.settlement.join import Audit, Authorize, SendResult
from tests.unit.test_settlement_join import (
    KEY,
    T0,
    P,
    d,
    fig5,
    first,
    run_first,
    run_second,
    second,
)


def kinds(step: join.Step) -> list[object]:
    """Effects with audits reduced to their kind (the stable code; the detail is prose)."""
    return [e.kind if isinstance(e, Audit) else e for e in step.effects]


@pytest.mark.parametrize("mode", ["VIA_TERMINAL", "DIRECT_BOTH", "SHOP_POLLS"])
def test_a_lone_first_is_recorded_with_its_time_digest_and_deadline(mode: str) -> None:
    f = first(mode)
    step = run_first(None, f, T0 + 7)
    assert step.effects == []
    assert step.state == join.JoinState(
        key=KEY, partition=2, first=step.state.first if step.state else None, first_ms=T0 + 7,
        first_digest=d(f), deadline_ms=T0 + 7 + P.t_first_ms,
        shop_acked=mode != "DIRECT_BOTH")


def test_a_lone_second_is_recorded_with_its_time_digest_and_deadline() -> None:
    s = second()
    step = run_second(None, s, T0 + 7)
    assert step.effects == [] and step.state is not None
    assert (step.state.key, step.state.partition, step.state.second_ms,
            step.state.second_digest, step.state.deadline_ms, step.state.second_problem) == (
        KEY, 2, T0 + 7, d(s), T0 + 7 + P.t_second_ms, None)


def test_resends_while_pending_change_nothing_and_conflicts_are_audited() -> None:
    one = run_first(None, first()).state
    assert run_first(one, first(), T0 + 1) == join.Step(one)
    conflict = run_first(one, first(amount=1500), T0 + 1)
    assert conflict.state == one and kinds(conflict) == ["DUPLICATE_CONFLICT"]
    lone = run_second(None, second()).state
    assert run_second(lone, second(), T0 + 1) == join.Step(lone)
    conflict = run_second(lone, second(amount=1), T0 + 1)
    assert conflict.state == lone and kinds(conflict) == ["DUPLICATE_CONFLICT"]


def test_after_the_outcome_a_first_gets_the_shops_result_again_and_a_conflict_an_audit() -> None:
    done = run_second(run_first(None, first()).state, second(content=fig5(quantity=2))).state
    assert done is not None and done.status == join.DONE
    assert run_first(done, first(), T0 + 9) == join.Step(done, [SendResult("shop")])
    other = run_first(done, first(amount=1500), T0 + 9)
    assert other.state == done and kinds(other) == ["DUPLICATE_CONFLICT"]
    other = run_second(done, second(amount=1), T0 + 9)
    assert other.state == done and kinds(other) == ["DUPLICATE_CONFLICT"]


def test_a_match_asks_the_fi_host_once_with_its_deadline() -> None:
    step = run_second(run_first(None, first()).state, second(), T0 + 5)
    assert step.effects == [Authorize(1)] and step.state is not None
    assert (step.state.status, step.state.authorize_attempts, step.state.deadline_ms) == (
        join.AUTHORIZING, 1, T0 + 5 + P.t_authorize_ms)
    again = join.on_tick(step.state, T0 + 5 + P.t_authorize_ms, P)
    assert again.effects == [Authorize(2)] and again.state is not None
    assert (again.state.authorize_attempts, again.state.deadline_ms) == (
        2, T0 + 5 + 2 * P.t_authorize_ms)


@pytest.mark.parametrize(("problem", "content", "outcome", "audits"), [
    (None, fig5(quantity=2), "MISMATCH", ["MISMATCH"]),
    ("auth", fig5(), "AUTH_FAILED", []),
    ("account", fig5(), "REJECTED", ["NO_ACCOUNT"]),
])
def test_every_refusal_ends_with_its_outcome_audit_and_the_users_result(
        problem: join.SecondProblem, content: object, outcome: str, audits: list[str]) -> None:
    step = run_second(run_first(None, first()).state, second(content=content),  # type: ignore[arg-type]
                      T0 + 5, problem)
    assert kinds(step) == [*audits, SendResult("user")]
    s = step.state
    assert s is not None
    assert (s.status, s.outcome, s.outcome_ms, s.deadline_ms, s.history_until_ms, s.shop_acked,
            s.deliveries) == (join.DONE, outcome, T0 + 5, T0 + 5 + P.t_history_ms,
                              T0 + 5 + P.t_history_ms, True, 0)


def test_a_direct_result_is_resent_until_acknowledged_then_kept_until_the_history_ends() -> None:
    authorizing = run_second(run_first(None, first("DIRECT_BOTH")).state, second()).state
    step = join.on_authorization_result(authorizing, True, T0 + 10, P)
    assert step.effects == [SendResult("shop"), SendResult("user")]
    s = step.state
    assert s is not None
    assert (s.outcome_ms, s.shop_acked, s.deliveries, s.deadline_ms) == (
        T0 + 10, False, 1, T0 + 10 + P.redeliver_ms)
    sent, now = 1, T0 + 10
    while s is not None and s.deadline_ms is not None and s.deadline_ms < s.history_until_ms:  # type: ignore[operator]
        now = s.deadline_ms
        step = join.on_tick(s, now, P)
        if step.effects:
            assert step.effects == [SendResult("shop")]
            sent += 1
            assert step.state is not None
            assert (step.state.deliveries, step.state.deadline_ms) == (
                sent, min(now + P.redeliver_ms, s.history_until_ms))  # type: ignore[type-var]
        s = step.state
    assert sent == P.max_redeliveries and s is not None
    assert s.deadline_ms == s.history_until_ms
    # Before the history ends nothing happens; at its end the order is forgotten.
    assert join.on_tick(s, s.history_until_ms - 1, P) == join.Step(s)  # type: ignore[operator]
    assert join.on_tick(s, s.history_until_ms, P) == join.Step(None)  # type: ignore[arg-type]


def test_the_shops_acknowledgement_stops_redelivery_once() -> None:
    authorizing = run_second(run_first(None, first("DIRECT_BOTH")).state, second()).state
    done = join.on_authorization_result(authorizing, True, T0 + 10, P).state
    assert done is not None
    acked = join.on_shop_ack(done, T0 + 11)
    assert acked == join.Step(dataclasses.replace(done, shop_acked=True,
                                                  deadline_ms=done.history_until_ms))
    assert join.on_shop_ack(acked.state, T0 + 12) == join.Step(acked.state)
    assert join.on_tick(acked.state, done.deadline_ms, P).effects == []  # type: ignore[arg-type]
    pending = run_first(None, first("DIRECT_BOTH")).state
    assert join.on_shop_ack(pending, T0 + 1) == join.Step(pending)
    assert join.on_shop_ack(None, T0 + 1) == join.Step(None)


def test_a_state_without_a_deadline_is_left_alone_by_ticks() -> None:
    quiet = join.JoinState(KEY, 2)
    assert join.on_tick(quiet, T0, P) == join.Step(quiet)
    assert join.on_tick(None, T0, P) == join.Step(None)


def test_inquiry_answers() -> None:
    assert join.inquiry_answer(None) == "UNKNOWN_OR_EXPIRED"
    pending = run_first(None, first()).state
    assert join.inquiry_answer(pending) == "PENDING"
    assert join.inquiry_answer(dataclasses.replace(pending, outcome="APPROVED")) == "PENDING"  # type: ignore[type-var]
    assert join.inquiry_answer(dataclasses.replace(pending, status=join.DONE)) == "PENDING"  # type: ignore[type-var]
    done = join.on_tick(pending, T0 + P.t_first_ms, P).state
    assert join.inquiry_answer(done) == "EXPIRED"
