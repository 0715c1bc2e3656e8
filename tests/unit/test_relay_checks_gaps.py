"""Gaps `make mutate` found in the relay's form checks and cookie emulation (docs/testing.md)."""

from __future__ import annotations

import pytest

from agents.relay import flow, sessions


@pytest.mark.parametrize("number", ["4111111111111111", "5555555555554444", "4012888888881881",
                                    "378282246310005", "6011111111111117", "79927398713"])
def test_the_luhn_check_accepts_real_numbers(number: str) -> None:
    assert flow.luhn_ok(number)


@pytest.mark.parametrize("number", ["4111111111111112", "79927398710", "79927398714",
                                    "1234567812345678", "58"])
def test_the_luhn_check_refuses_a_wrong_check_digit(number: str) -> None:
    assert not flow.luhn_ok(number)


@pytest.mark.parametrize(("expiry", "iso"), [("2030-01", "2030-01"), ("2030-12", "2030-12"),
                                             ("01/30", "2030-01"), ("12/30", "2030-12")])
def test_expiry_months_one_and_twelve_are_valid(expiry: str, iso: str) -> None:
    assert flow.card_from_form("4111 1111 1111 1111", expiry) == ("4111111111111111", iso)


@pytest.mark.parametrize("expiry", ["2030-00", "2030-13", "00/30", "13/30"])
def test_expiry_months_outside_one_to_twelve_are_refused(expiry: str) -> None:
    with pytest.raises(flow.FormError):
        flow.card_from_form("4111111111111111", expiry)


def test_the_cookie_is_read_with_or_without_the_header_name_and_attributes() -> None:
    assert sessions.cookie_of("Set-Cookie: session_id=abc123; Path=/") == "abc123"
    assert sessions.cookie_of("Set-Cookie:session_id=abc123") == "abc123"
    assert sessions.cookie_of("session_id=abc123; Path=/; x=y=z") == "abc123"
    assert sessions.cookie_of("  ") == ""
    assert sessions.cookie_of("session_id=ab=c; Path=/") == "ab=c"  # split at the first =
    assert sessions.cookie_of("session_id=a;b;c") == "a"
    for bad in ("session_id", "other=abc123", "session_id=; Path=/"):
        with pytest.raises(sessions.BadCookie):
            sessions.cookie_of(bad)


def test_a_token_needs_two_well_formed_halves_and_has_no_padding() -> None:
    key = b"k" * 32
    token = sessions.new_token(key, "rs-1")
    assert sessions.read_token(key, token) == "rs-1"
    session_id, _, tag = token.rpartition(".")
    for forged in (f"{session_id}.", f".{tag}", f"{session_id}!.{tag}", f"{session_id}.{tag}="):
        with pytest.raises(sessions.ForgedSession):
            sessions.read_token(key, forged)
    assert "=" not in token  # the tag's base64 padding is dropped


def test_every_flow_starts_at_its_own_stage() -> None:
    assert flow.first_stage("set-wallet") == flow.PROCEDURE
    assert flow.first_stage("two-sided") == flow.ORDERING
    assert flow.first_stage("enrol") == flow.ENROL_FORM


@pytest.mark.parametrize("request_", ["approve", "confirm", "enrol"])
@pytest.mark.parametrize("stage", sorted(flow.FINAL))
def test_a_last_step_repeated_after_the_end_shows_the_result_and_sends_nothing(
        request_: str, stage: str) -> None:
    assert isinstance(flow.on_request(request_, stage), flow.Show)


def test_other_steps_after_the_end_are_out_of_step() -> None:
    for stage in flow.FINAL:
        assert isinstance(flow.on_request("login", stage), flow.OutOfStep)


def test_garbage_is_not_the_same_payment_information() -> None:
    from agents.wallet.checks import same_payment_information

    assert not same_payment_information(b"not an envelope", b"not an envelope")
