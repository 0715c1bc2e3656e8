"""The user's device as a pure state machine (agents/terminal/session.py): one order per
session, pay once after the think time (a durable deadline), relay the result once, forget
in time. No broker: the shell keeps exactly this state in a changelog-backed table, so what
holds here holds after a kill -9 (issue 6 item 10)."""

from __future__ import annotations

from dataclasses import replace

from agents.shop.pricing import price
from agents.terminal import session
from agents.terminal.session import Audit, Note, Pay, Policy, Relay, SendOrder, Tell
from schemas.v1 import PaymentRequest, PaymentResult, PurchaseCommand
from sim.devdata import Catalogue

NOW = 1_700_000_000_000
POLICY = Policy(keep_ms=60_000, lifetime_ms=3_600_000)
ITEMS = [["XXXX", 1], ["YYYY", 1]]
CONTENT = price(ITEMS, Catalogue().items)


def command(**kw: object) -> PurchaseCommand:
    fields: dict[str, object] = {"session": "sess-1", "user_id": "alice", "shop_id": "shop-1",
                                 "items": ITEMS, **kw}
    return PurchaseCommand(**fields)  # type: ignore[arg-type]


def request(order_id: str = "1234567890", **kw: object) -> PaymentRequest:
    fields: dict[str, object] = {"shop_id": "shop-1", "order_id": order_id,
                                 "session": "sess-1", "user_id": "alice", "content": CONTENT,
                                 "amount": CONTENT.amount, **kw}
    return PaymentRequest(**fields)  # type: ignore[arg-type]


def result(outcome: str = "APPROVED", mode: str = "VIA_TERMINAL",
           order_id: str = "1234567890") -> PaymentResult:
    return PaymentResult("shop-1", order_id, "sess-1", "user", outcome,  # type: ignore[arg-type]
                         CONTENT.amount, mode)  # type: ignore[arg-type]


def ordered(**kw: object) -> session.Session:
    step = session.on_command(None, command(**kw), 2, NOW, POLICY, "trace-1")
    assert step.effects == [SendOrder()] and step.state is not None
    return step.state


def shown(**kw: object) -> session.Session:
    step = session.on_payment_request(ordered(**kw), request(), NOW + 100, POLICY)
    assert step.state is not None
    return step.state


def test_one_order_per_session() -> None:
    state = ordered()
    assert (state.session, state.partition, state.trace_id) == ("sess-1", 2, "trace-1")
    again = session.on_command(state, command(), 2, NOW + 5, POLICY)
    assert again.state is state and again.effects == []


def test_pays_at_once_without_think_time_and_only_once() -> None:
    step = session.on_payment_request(ordered(), request(), NOW + 100, POLICY)
    assert step.effects == [Pay()] and step.state is not None and step.state.paid
    repeat = session.on_payment_request(step.state, request(), NOW + 200, POLICY)
    assert repeat.state is step.state and repeat.effects == []
    assert session.on_tick(step.state, NOW + 10_000).effects == []


def test_think_time_is_a_durable_deadline() -> None:
    state = shown(second_delay_ms=3_000)
    assert not state.paid and state.pay_at_ms == NOW + 3_100
    assert state.deadline_ms == NOW + 3_100
    # What the table holds, what a restarted worker reads back: the deadline is in it.
    restored = session.decode(session.encode(state))
    assert restored == state
    assert session.header(session.encode(state)) == (NOW + 3_100, 2)
    assert session.on_tick(restored, NOW + 3_099).effects == []
    fired = session.on_tick(restored, NOW + 3_100)
    assert fired.effects == [Pay()] and fired.state is not None and fired.state.paid
    assert fired.state.deadline_ms == fired.state.forget_at_ms  # nothing left to pay
    assert session.on_tick(fired.state, NOW + 3_200).effects == []


def test_a_request_the_user_did_not_order_is_refused() -> None:
    other_user = session.on_payment_request(ordered(), request(user_id="bob"), NOW, POLICY)
    assert [type(e) for e in other_user.effects] == [Audit]
    assert other_user.effects[0].kind == "unexpected-payment-request"  # type: ignore[union-attr]
    wrong_items = session.on_payment_request(ordered(items=[["XXXX", 2]]), request(), NOW,
                                             POLICY)
    assert [e.kind for e in wrong_items.effects] == ["user-refused"]  # type: ignore[union-attr]
    assert wrong_items.state is not None and not wrong_items.state.paid
    assert wrong_items.state.forget_at_ms == NOW + POLICY.keep_ms


def test_a_second_order_in_the_same_session_is_not_paid() -> None:
    step = session.on_payment_request(shown(), request("9999999999"), NOW + 300, POLICY)
    assert [e.kind for e in step.effects] == ["second-payment-request"]  # type: ignore[union-attr]


def test_a_user_who_walks_away_never_pays_and_is_forgotten() -> None:
    state = shown(abandon=True)
    assert not state.paid and state.pay_at_ms is None
    assert session.on_tick(state, NOW + POLICY.keep_ms).effects == []
    assert session.on_tick(state, NOW + 100 + POLICY.keep_ms).state is None
    step = session.on_payment_request(ordered(abandon=True), request(), NOW, POLICY)
    assert [type(e) for e in step.effects] == [Note]


def test_the_result_is_relayed_once_in_via_terminal_mode() -> None:
    paid = session.on_payment_request(ordered(), request(), NOW, POLICY).state
    step = session.on_result(paid, result(), True, NOW + 500, POLICY)
    assert step.effects == [Tell("order 1234567890: APPROVED"), Relay(forged=False)]
    assert step.state is not None and step.state.relayed and step.state.outcome == "APPROVED"
    assert step.state.forget_at_ms == NOW + 500 + POLICY.keep_ms
    again = session.on_result(step.state, result(), True, NOW + 600, POLICY)
    assert again.effects == []


def test_no_relay_in_the_other_modes_and_a_forged_relay_on_demand() -> None:
    paid = session.on_payment_request(ordered(), request(), NOW, POLICY).state
    assert session.on_result(paid, result(mode="DIRECT_BOTH"), True, NOW, POLICY).effects == [
        Tell("order 1234567890: APPROVED")]
    forging = session.on_payment_request(ordered(forge_relay=True), request(), NOW, POLICY).state
    assert session.on_result(forging, result(), True, NOW, POLICY).effects[1:] == [
        Relay(forged=True)]


def test_a_result_that_does_not_authenticate_is_refused_and_the_user_told() -> None:
    """Cl. 11/28/40: a result without a valid settlement authenticator is not the outcome,
    is not relayed, and the user is told; an authentic copy later is still taken."""
    paid = session.on_payment_request(ordered(), request(), NOW, POLICY).state
    assert paid is not None
    step = session.on_result(paid, result(), False, NOW, POLICY)
    assert step.state == paid  # no outcome taken, nothing relayed, not forgotten sooner
    assert [type(e) for e in step.effects] == [Audit, Tell]
    assert step.effects[0].kind == "bad-result-authenticator"  # type: ignore[union-attr]
    assert "could not be verified" in step.effects[1].text  # type: ignore[union-attr]
    later = session.on_result(paid, result(), True, NOW, POLICY)
    assert later.state is not None and later.state.outcome == "APPROVED"
    assert [type(e) for e in later.effects] == [Tell, Relay]


def test_a_result_for_another_order_of_the_session_is_not_relayed() -> None:
    step = session.on_result(shown(), result(order_id="9999999999"), True, NOW, POLICY)
    assert [e.kind for e in step.effects] == ["unexpected-result"]  # type: ignore[union-attr]


def test_unknown_sessions_are_left_alone() -> None:
    assert session.on_payment_request(None, request(), NOW, POLICY) == session.Step(None)
    assert session.on_result(None, result(), True, NOW, POLICY) == session.Step(None)
    assert session.on_tick(None, NOW) == session.Step(None)


def test_every_session_is_forgotten_at_the_end_of_its_lifetime() -> None:
    state = replace(shown(second_delay_ms=10_000_000), paid=False)
    assert session.on_tick(state, NOW + POLICY.lifetime_ms - 1).state is not None
    # Past its lifetime a purchase is not paid any more, however late the think time ends.
    assert session.on_tick(state, NOW + POLICY.lifetime_ms).state is None


# -- gaps `make mutate` found (docs/testing.md) -------------------------------------------------

def test_lifetimes_must_be_positive_and_come_from_the_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from kessai.errors import ConfigError

    for bad in ({"keep_ms": 0}, {"lifetime_ms": 0}, {"keep_ms": -1, "lifetime_ms": 5}):
        with pytest.raises(ConfigError):
            Policy(**bad)  # type: ignore[arg-type]
    assert Policy(keep_ms=1, lifetime_ms=1) == Policy(1, 1)
    monkeypatch.delenv("KESSAI_TERMINAL_KEEP_MS", raising=False)
    monkeypatch.delenv("KESSAI_TERMINAL_LIFETIME_MS", raising=False)
    assert Policy.from_env() == Policy()
    monkeypatch.setenv("KESSAI_TERMINAL_KEEP_MS", "1")
    monkeypatch.setenv("KESSAI_TERMINAL_LIFETIME_MS", "2")
    assert Policy.from_env() == Policy(keep_ms=1, lifetime_ms=2)
    for bad_value in ("0", "abc", "-5"):
        monkeypatch.setenv("KESSAI_TERMINAL_LIFETIME_MS", bad_value)
        with pytest.raises(ConfigError):
            Policy.from_env()


def test_a_session_without_a_trace_keeps_none_and_survives_the_table_round_trip() -> None:
    state = session.on_command(None, command(), 2, NOW, POLICY).state
    assert state is not None and state.trace_id == ""
    paid = session.on_payment_request(state, request(), NOW, POLICY).state
    assert paid is not None
    assert session.decode(session.encode(paid)) == paid
    assert session.header(session.encode(paid)) == (paid.deadline_ms, 2)


def test_audits_name_the_order_and_keep_the_session() -> None:
    key = "shop-1/1234567890"
    paid = shown()
    other = session.on_payment_request(paid, request(order_id="9999999999"), NOW, POLICY)
    assert other.state == paid
    assert [(e.kind, e.key) for e in other.effects] == [  # type: ignore[union-attr]
        ("second-payment-request", "shop-1/9999999999")]
    assert "1234567890" in other.effects[0].detail  # type: ignore[union-attr]
    wrong = session.on_payment_request(ordered(), request(user_id="bob"), NOW, POLICY)
    assert wrong.state == ordered()
    assert [(e.kind, e.key) for e in wrong.effects] == [  # type: ignore[union-attr]
        ("unexpected-payment-request", key)]
    refused = session.on_payment_request(ordered(), request(amount=CONTENT.amount.__class__(
        CONTENT.amount.minor + 1, CONTENT.amount.currency)), NOW, POLICY)
    [audit] = refused.effects
    assert (audit.kind, audit.key) == ("user-refused", key)  # type: ignore[union-attr]
    assert audit.detail and "amount" in audit.detail  # type: ignore[union-attr]
    late = session.on_result(paid, result(order_id="9999999999"), True, NOW, POLICY)
    assert late.state == paid
    assert [(e.kind, e.key) for e in late.effects] == [  # type: ignore[union-attr]
        ("unexpected-result", "shop-1/9999999999")]


def test_a_one_millisecond_think_time_waits_and_paying_clears_the_deadline() -> None:
    waiting = session.on_payment_request(ordered(second_delay_ms=1), request(), NOW, POLICY)
    assert waiting.effects == [] and waiting.state is not None
    assert waiting.state.pay_at_ms == NOW + 1
    paying = session.on_tick(waiting.state, NOW + 1)
    assert paying.effects == [Pay()] and paying.state is not None
    assert paying.state.pay_at_ms is None and paying.state.paid


def test_a_redelivered_result_keeps_the_session() -> None:
    taken = session.on_result(shown(), result(), True, NOW, POLICY).state
    assert taken is not None
    assert session.on_result(taken, result(), True, NOW + 5, POLICY) == session.Step(taken)
