"""Which orders the shop asks the settlement server's result history about, and when
(seed 003 emb. 3; issue 6 item 10: in VIA_TERMINAL mode the shop does not depend on the
terminal alone). Pure decisions: no broker, no DB."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from agents.shop.inquiries import (
    PollPolicy,
    first_inquiry_ms,
    needs_inquiry,
    next_inquiry_ms,
    plan,
)
from kessai.errors import ConfigError

NOW = 1_700_000_000_000
POLICY = PollPolicy(delay_ms=2_000, limit=3, result_wait_ms=5_000, max_delay_ms=16_000,
                    give_up_ms=3_600_000)


@dataclass(frozen=True)
class Due:
    order_id: str = "1234567890"
    result_mode: str = "VIA_TERMINAL"
    status: str = "AWAITING_PAYMENT"
    polls: int = 0
    next_poll_ms: int | None = NOW + 5_000
    created_ms: int = NOW


def test_first_inquiry_waits_for_the_relay_in_via_terminal_and_never_in_direct_both() -> None:
    assert first_inquiry_ms("VIA_TERMINAL", NOW, POLICY) == NOW + 5_000
    assert first_inquiry_ms("SHOP_POLLS", NOW, POLICY) == NOW + 2_000
    assert first_inquiry_ms("DIRECT_BOTH", NOW, POLICY) is None  # redelivered until acked


def test_an_order_needs_an_inquiry_only_when_due_awaiting_payment_and_named() -> None:
    assert not needs_inquiry(Due(), NOW + 4_999)
    assert needs_inquiry(Due(), NOW + 5_000)
    assert needs_inquiry(Due(), NOW + 500_000)  # late (a restart): asked at once
    assert not needs_inquiry(Due(status="PAID"), NOW + 5_000)
    assert not needs_inquiry(Due(status="NOT_PAID"), NOW + 5_000)
    assert not needs_inquiry(Due(status="PENDING_ACK"), NOW + 5_000)
    assert not needs_inquiry(Due(order_id=""), NOW + 5_000)  # no id to ask about yet
    assert not needs_inquiry(Due(next_poll_ms=None), NOW + 5_000)


def test_via_terminal_asks_again_with_a_doubling_interval_up_to_the_cap() -> None:
    gaps = []
    order, now = Due(), NOW + 5_000
    for _ in range(6):
        nxt = next_inquiry_ms(order, now, POLICY)
        assert nxt is not None
        gaps.append(nxt - now)
        order, now = replace(order, polls=order.polls + 1, next_poll_ms=nxt), nxt
    assert gaps == [2_000, 4_000, 8_000, 16_000, 16_000, 16_000]


def test_via_terminal_gives_up_when_the_history_can_no_longer_answer() -> None:
    assert next_inquiry_ms(Due(polls=500), NOW + 3_599_999, POLICY) is not None
    assert next_inquiry_ms(Due(polls=500), NOW + 3_600_000, POLICY) is None


def test_shop_polls_asks_every_delay_up_to_the_limit() -> None:
    polls = Due(result_mode="SHOP_POLLS")
    assert next_inquiry_ms(polls, NOW, POLICY) == NOW + 2_000
    assert next_inquiry_ms(replace(polls, polls=1), NOW, POLICY) == NOW + 2_000
    assert next_inquiry_ms(replace(polls, polls=2), NOW, POLICY) is None  # the 3rd is the last


def test_plan_takes_only_the_orders_due_now() -> None:
    due, later, paid = Due("1"), Due("2", next_poll_ms=NOW + 9_000), Due("3", status="PAID")
    planned = plan([due, later, paid], NOW + 5_000, POLICY)
    assert [(p.order.order_id, p.next_poll_ms) for p in planned] == [("1", NOW + 7_000)]
    assert plan([], NOW, POLICY) == []


def test_policy_reads_its_environment_and_refuses_nonsense(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KESSAI_SHOP_RESULT_WAIT_MS", "750")
    monkeypatch.setenv("KESSAI_SHOP_POLL_MS", "500")
    policy = PollPolicy.from_env(give_up_ms=10_000)
    assert (policy.result_wait_ms, policy.delay_ms, policy.give_up_ms) == (750, 500, 10_000)
    assert policy.timer_interval_s(1.0) == 0.25
    monkeypatch.setenv("KESSAI_SHOP_RESULT_WAIT_MS", "soon")
    with pytest.raises(ConfigError, match="KESSAI_SHOP_RESULT_WAIT_MS"):
        PollPolicy.from_env()
    with pytest.raises(ConfigError):
        PollPolicy(delay_ms=5_000, max_delay_ms=1_000)
