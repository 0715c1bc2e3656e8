"""Cookie emulation (seed 000 FIG. 6; spec R28, R29, R29a): hidden session strings the
terminal cannot forge, and the wallet's cookie taken out and put back."""

from __future__ import annotations

import re

import pytest

from agents.relay.sessions import (
    BadCookie,
    ForgedSession,
    cookie_header,
    cookie_of,
    new_token,
    read_token,
)
from kessai.errors import ConfigError, IntegrityError

KEY = b"relay-session-key-0123456789abcdef"


def test_a_token_reads_back_to_its_session() -> None:
    token = new_token(KEY, "rs-1")
    assert read_token(KEY, token) == "rs-1"
    assert re.fullmatch(r"[A-Za-z0-9._-]+", token)  # url-safe; fits a hidden field as it is


def test_any_changed_character_is_a_forged_session() -> None:
    token = new_token(KEY, "rs-1")
    for i, ch in enumerate(token):
        for other in {"A", "B", "a", "0", "_", "-"} - {ch}:
            with pytest.raises(ForgedSession):
                read_token(KEY, token[:i] + other + token[i + 1:])


@pytest.mark.parametrize("bad", ["", "rs-1", "rs-1.", ".abc", "rs-1.abc", "a.b.c", "rs 1.x" * 3])
def test_malformed_tokens_are_forged_sessions(bad: str) -> None:
    with pytest.raises(ForgedSession):
        read_token(KEY, bad)


def test_tokens_differ_per_session_and_per_key() -> None:
    assert new_token(KEY, "rs-1") != new_token(KEY, "rs-2")
    with pytest.raises(ForgedSession) as caught:
        read_token(b"another key", new_token(KEY, "rs-1"))
    assert isinstance(caught.value, IntegrityError)
    assert "rs-1" not in str(caught.value)


def test_a_token_is_not_moved_to_another_session() -> None:
    tag = new_token(KEY, "rs-1").rpartition(".")[2]
    with pytest.raises(ForgedSession):
        read_token(KEY, f"rs-2.{tag}")


def test_session_ids_are_checked() -> None:
    for bad in ("", "has space", "semi;colon", "x" * 129, "dot.ted"):
        with pytest.raises(ConfigError):
            new_token(KEY, bad)


def test_the_cookie_is_taken_out_and_put_back() -> None:
    assert cookie_of("session_id=w-123; Path=/") == "w-123"
    assert cookie_of("Set-Cookie: session_id=w-123; Path=/; HttpOnly") == "w-123"
    assert cookie_of("") == ""
    assert cookie_header("w-123") == "session_id=w-123"
    assert cookie_of(cookie_header("w-123") + "; Path=/") == "w-123"


@pytest.mark.parametrize("bad", ["other=1; Path=/", "session_id; Path=/", "session_id=; Path=/",
                                 'session_id=a"b'])
def test_a_cookie_without_a_session_id_is_refused(bad: str) -> None:
    with pytest.raises(BadCookie):
        cookie_of(bad)


def test_a_cookie_header_cannot_carry_separators() -> None:
    for bad in ("", "a;b", "a b", "a,b"):
        with pytest.raises(BadCookie):
            cookie_header(bad)
