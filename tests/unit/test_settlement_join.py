"""The correlation-ID join as a pure state machine: seed 003 cl. 1–3, 21–23; spec R6–R34."""

from __future__ import annotations

import dataclasses

import pytest

from agents.settlement import join
from agents.settlement.collation import collate
from kessai.canonical import content_hash
from kessai.money import Money
from schemas.v1 import FirstRequest, LineItem, OrderContent, SecondRequest

KEY = "shop-1/1234567890"
P = join.Policy(t_first_ms=60_000, t_second_ms=10_000, t_history_ms=3_600_000,
                t_authorize_ms=5_000, redeliver_ms=2_000, max_redeliveries=3)
T0 = 1_700_000_000_000


def fig5(quantity: int = 1, total: int = 1155, order: tuple[int, ...] = (0, 1)) -> OrderContent:
    items = [LineItem("XXXX", "ピーナッツバター", 500, quantity), LineItem("YYYY", "グレープゼリー", 600, 1)]
    return OrderContent([items[i] for i in order], "JPY", 55, total)


def first(mode: str = "VIA_TERMINAL", content: OrderContent | None = None, amount: int = 1155,
          hashed: bool = False) -> FirstRequest:
    c = content or fig5()
    return FirstRequest("shop-1", "1234567890", "1234567890", Money(amount, "JPY"),
                        mode,  # type: ignore[arg-type]
                        content=None if hashed else c,
                        content_hash=content_hash(c) if hashed else None)


def second(content: OrderContent | None = None, amount: int = 1155) -> SecondRequest:
    return SecondRequest("shop-1", "1234567890", "sess-1", "alice", content or fig5(),
                         Money(amount, "JPY"), "signature", account_sealed=b"sealed-account",
                         user_authenticator=b"sig")


def d(msg: FirstRequest | SecondRequest) -> bytes:
    """The digest the settlement agent hands the join (the function itself, so a broken
    digest breaks the duplicate tests too)."""
    return join.body_digest(msg)


def test_the_body_digest_tells_bodies_apart_by_their_content_alone() -> None:
    assert join.body_digest(first()) == join.body_digest(first())  # equal bodies, new objects
    assert join.body_digest(first()) != join.body_digest(first(amount=1156))
    assert join.body_digest(second()) != join.body_digest(
        dataclasses.replace(second(), account_sealed=b"sealed-account2"))
    assert len(join.body_digest(first())) == 32  # SHA-256


def run_first(state: join.JoinState | None, f: FirstRequest, now: int = T0) -> join.Step:
    return join.on_first(state, KEY, 2, f, d(f), now, P)


def run_second(state: join.JoinState | None, s: SecondRequest, now: int = T0,
               problem: join.SecondProblem = None) -> join.Step:
    return join.on_second(state, KEY, 2, s, d(s), problem, now, P)


def authorizes(step: join.Step) -> bool:
    return any(isinstance(e, join.Authorize) for e in step.effects)


def results(step: join.Step) -> list[str]:
    return [e.recipient for e in step.effects if isinstance(e, join.SendResult)]


def settle(state: join.JoinState, approved: bool = True, now: int = T0 + 10) -> join.Step:
    return join.on_authorization_result(state, approved, now, P)


# -- cl. 1 "前後して": either order ---------------------------------------------------------
def test_first_then_second_collates_once_and_asks_the_fi_host() -> None:
    s1 = run_first(None, first())
    assert s1.state and s1.state.status == join.PENDING and not authorizes(s1)
    s2 = run_second(s1.state, second(), T0 + 5)
    assert s2.state and s2.state.status == join.AUTHORIZING and authorizes(s2)


def test_second_then_first_collates_once_and_asks_the_fi_host() -> None:
    s1 = run_second(None, second())
    assert s1.state and s1.state.status == join.PENDING and not authorizes(s1)
    s2 = run_first(s1.state, first(), T0 + 5)
    assert s2.state and s2.state.status == join.AUTHORIZING and authorizes(s2)


def test_fi_approval_ends_in_approved_with_one_result_to_the_user() -> None:
    s = run_second(run_first(None, first()).state, second()).state
    done = settle(s)  # type: ignore[arg-type]
    assert done.state and done.state.outcome == "APPROVED" and results(done) == ["user"]


def test_fi_decline_ends_in_declined() -> None:
    s = run_second(run_first(None, first()).state, second()).state
    assert settle(s, approved=False).state.outcome == "DECLINED"  # type: ignore[arg-type,union-attr]


# -- cl. 3 / R13: collation ------------------------------------------------------------------
def test_quantity_mismatch_is_not_established_and_never_reaches_the_fi() -> None:
    step = run_second(run_first(None, first()).state, second(fig5(quantity=2)))
    assert step.state and step.state.outcome == "MISMATCH" and not authorizes(step)


def test_amount_mismatch_1155_vs_1150_is_mismatch() -> None:
    step = run_second(run_first(None, first()).state,
                      second(fig5(total=1150), amount=1150))
    assert step.state and step.state.outcome == "MISMATCH" and not authorizes(step)


def test_same_items_in_another_order_match() -> None:
    assert collate(first(), second(fig5(order=(1, 0)))).match


def test_full_width_codes_match_after_nfkc() -> None:
    wide = OrderContent([LineItem("ＸＸＸＸ", "ピーナッツバター ", 500, 1),
                         LineItem("YYYY", "グレープゼリー", 600, 1)], "JPY", 55, 1155)
    assert collate(first(), second(wide)).match


def test_shop_that_tells_the_user_1155_and_the_server_1500_is_caught() -> None:
    # R33: the 2nd request comes from what the user saw, not from the stored 1st request.
    shop_lie = first(content=fig5(total=1500), amount=1500)
    verdict = collate(shop_lie, second())
    assert not verdict.match and "amount" in verdict.differences


def test_collation_differences_name_fields_not_values() -> None:
    verdict = collate(first(), second(fig5(quantity=3)))
    assert verdict.differences and all("1155" not in x and "500" not in x
                                       for x in verdict.differences)


# -- R14: hash variant ------------------------------------------------------------------------
def test_hash_variant_matches_when_the_user_saw_the_same_content() -> None:
    step = run_second(run_first(None, first(hashed=True)).state, second())
    assert step.state and step.state.status == join.AUTHORIZING


def test_hash_variant_mismatches_on_other_content() -> None:
    step = run_second(run_first(None, first(hashed=True)).state, second(fig5(quantity=2)))
    assert step.state and step.state.outcome == "MISMATCH"


# -- R18: user authentication after collation --------------------------------------------------
def test_failed_user_authentication_is_auth_failed_without_fi_call() -> None:
    step = run_second(run_first(None, first()).state, second(), problem="auth")
    assert step.state and step.state.outcome == "AUTH_FAILED" and not authorizes(step)


def test_collation_comes_before_authentication() -> None:
    step = run_second(run_first(None, first()).state, second(fig5(quantity=2)), problem="auth")
    assert step.state and step.state.outcome == "MISMATCH"


# -- R7/R8/R9: expiry ---------------------------------------------------------------------------
def test_lone_first_expires_without_new_traffic_and_tells_the_shop() -> None:
    s = run_first(None, first()).state
    assert join.on_tick(s, T0 + P.t_first_ms - 1, P).state.status == join.PENDING  # type: ignore[union-attr]
    step = join.on_tick(s, T0 + P.t_first_ms, P)
    assert step.state and step.state.outcome == "EXPIRED" and results(step) == ["shop"]
    assert not authorizes(step)


def test_lone_second_expires_and_its_sealed_account_is_purged() -> None:
    s = run_second(None, second()).state
    step = join.on_tick(s, T0 + P.t_second_ms, P)
    assert step.state and step.state.outcome == "EXPIRED" and results(step) == ["user"]
    assert step.state.second is not None
    assert step.state.second["account_sealed"] is None
    assert b"sealed-account" not in repr(step.state.to_wire()).encode()


def test_lone_second_is_never_settled() -> None:
    s = run_second(None, second()).state
    for t in range(0, P.t_second_ms * 3, 1000):
        step = join.on_tick(s, T0 + t, P)
        assert not authorizes(step)
        s = step.state


# -- R23/R24: idempotence and duplicates ------------------------------------------------------
def test_duplicate_second_while_authorizing_asks_the_fi_only_once() -> None:
    s = run_second(run_first(None, first()).state, second())
    again = run_second(s.state, second())
    assert authorizes(s) and not authorizes(again) and again.state == s.state


def test_duplicate_second_after_settlement_gets_the_stored_result_again() -> None:
    s = settle(run_second(run_first(None, first()).state, second()).state)  # type: ignore[arg-type]
    again = run_second(s.state, second(), T0 + 100)
    assert results(again) == ["user"] and not authorizes(again)
    assert again.state and again.state.outcome == "APPROVED"


def test_conflicting_duplicate_first_is_audited_and_the_original_kept() -> None:
    s = run_first(None, first())
    conflict = run_first(s.state, first(content=fig5(total=1500), amount=1500))
    assert any(isinstance(e, join.Audit) and e.kind == "DUPLICATE_CONFLICT"
               for e in conflict.effects)
    assert conflict.state and conflict.state.first == s.state.first  # type: ignore[union-attr]


def test_first_resent_with_higher_amount_after_match_has_no_effect() -> None:
    s = settle(run_second(run_first(None, first()).state, second()).state)  # type: ignore[arg-type]
    late = run_first(s.state, first(content=fig5(total=1500), amount=1500), T0 + 100)
    assert late.state == s.state and not authorizes(late)


def test_late_fi_answer_does_not_change_the_outcome() -> None:
    s = settle(run_second(run_first(None, first()).state, second()).state)  # type: ignore[arg-type]
    assert settle(s.state, approved=False).state.outcome == "APPROVED"  # type: ignore[arg-type,union-attr]


def test_missing_fi_answer_reasks_with_the_same_key() -> None:
    s = run_second(run_first(None, first()).state, second()).state
    step = join.on_tick(s, T0 + P.t_authorize_ms, P)
    assert [e.attempt for e in step.effects if isinstance(e, join.Authorize)] == [2]
    assert step.state and step.state.key == KEY and step.state.status == join.AUTHORIZING


# -- cl. 5 / R29: direct result to the shop first, redelivered until acknowledged -------------
def test_direct_both_sends_the_shop_result_before_the_user_result() -> None:
    s = run_second(run_first(None, first("DIRECT_BOTH")).state, second()).state
    assert results(settle(s)) == ["shop", "user"]  # type: ignore[arg-type]


def test_direct_result_is_redelivered_until_the_shop_acknowledges() -> None:
    s = settle(run_second(run_first(None, first("DIRECT_BOTH")).state, second()).state).state  # type: ignore[arg-type]
    step = join.on_tick(s, T0 + 10 + P.redeliver_ms, P)
    assert results(step) == ["shop"]
    acked = join.on_shop_ack(step.state, T0 + 3000).state
    later = join.on_tick(acked, T0 + 10 + 10 * P.redeliver_ms, P)
    assert results(later) == []


# -- cl. 6 / R11 / R30: history for shop inquiries ----------------------------------------------
def test_inquiry_answers_from_the_history_until_it_expires() -> None:
    s = settle(run_second(run_first(None, first("SHOP_POLLS")).state, second()).state)  # type: ignore[arg-type]
    assert results(s) == ["user"]
    assert join.inquiry_answer(s.state) == "APPROVED"
    assert join.inquiry_answer(run_first(None, first()).state) == "PENDING"
    forgotten = join.on_tick(s.state, T0 + 10 + P.t_history_ms, P)
    assert forgotten.state is None
    assert join.inquiry_answer(forgotten.state) == "UNKNOWN_OR_EXPIRED"


def test_state_survives_a_wire_round_trip() -> None:
    s = run_second(run_first(None, first()).state, second()).state
    assert s is not None
    assert join.JoinState.from_wire(dataclasses.asdict(s)) == s


@pytest.mark.parametrize("outcome_path", ["mismatch", "auth", "expire", "approve"])
def test_every_path_reaches_exactly_one_terminal_outcome(outcome_path: str) -> None:
    s = run_first(None, first()).state
    if outcome_path == "expire":
        step = join.on_tick(s, T0 + P.t_first_ms, P)
    else:
        content = fig5(quantity=2) if outcome_path == "mismatch" else fig5()
        problem: join.SecondProblem = "auth" if outcome_path == "auth" else None
        step = run_second(s, second(content), problem=problem)
        if outcome_path == "approve":
            step = settle(step.state)  # type: ignore[arg-type]
    final = step.state
    assert final and final.status == join.DONE
    # Nothing that arrives afterwards changes it, collates again or asks the FI host (a result
    # sent again is built from the stored outcome).
    for later in (run_first(final, first()), run_second(final, second()),
                  run_second(final, second(content=fig5(quantity=2))),
                  settle(final, approved=False), join.on_tick(final, T0 + 1, P)):
        assert later.state is None or (later.state.outcome == final.outcome
                                       and later.state.status == join.DONE)
        assert not authorizes(later)
        assert not any(isinstance(e, join.Audit) and e.kind == "MISMATCH"
                       for e in later.effects)


def test_a_second_request_after_a_lone_first_expired_gets_the_one_outcome_for_its_session(
        ) -> None:
    expired = join.on_tick(run_first(None, first()).state, T0 + P.t_first_ms, P).state
    assert expired is not None and expired.outcome == "EXPIRED"
    late = run_second(expired, second(), T0 + P.t_first_ms + 5)
    assert results(late) == ["user"] and not authorizes(late)
    assert late.state is not None and late.state.outcome == "EXPIRED"
    kept = late.state.second_request()
    assert kept is not None and kept.session == "sess-1"  # the result names the user's session
    assert late.state.second["account_sealed"] is None  # type: ignore[index]  # no secret kept
    assert run_second(late.state, second(), T0 + P.t_first_ms + 9).effects == late.effects
    other = run_second(late.state, second(amount=1), T0 + P.t_first_ms + 9)
    assert results(other) == [] and [e.kind for e in other.effects] == [  # type: ignore[union-attr]
        "DUPLICATE_CONFLICT"]
