"""The deadline scan's decode cache (agents/settlement/agent.py ``Decoded``): a state is decoded
once per version of its bytes, a changed state is decoded again, a removed one forgotten."""

from __future__ import annotations

import msgpack

from agents.settlement import join
from agents.settlement.agent import Decoded


def wire(state: join.JoinState) -> bytes:
    return msgpack.packb(state.to_wire(), use_bin_type=True)


def test_the_same_bytes_are_decoded_once() -> None:
    cache = Decoded()
    raw = wire(join.JoinState("shop-1/1", 2, deadline_ms=10))
    first = cache.of(b"shop-1/1", raw)
    assert first.deadline_ms == 10 and first.partition == 2
    assert cache.of(b"shop-1/1", bytes(raw)) is first  # equal bytes, another object


def test_changed_bytes_are_decoded_again() -> None:
    cache = Decoded()
    cache.of(b"k", wire(join.JoinState("k", 0, deadline_ms=10)))
    later = cache.of(b"k", wire(join.JoinState("k", 0, deadline_ms=99)))
    assert later.deadline_ms == 99


def test_states_gone_from_the_table_are_forgotten() -> None:
    cache = Decoded()
    a, b = wire(join.JoinState("a", 0)), wire(join.JoinState("b", 1))
    state_a = cache.of(b"a", a)
    cache.of(b"b", b)
    cache.keep_only([b"a"])
    assert cache.of(b"a", a) is state_a
    assert set(cache._seen) == {b"a"}
