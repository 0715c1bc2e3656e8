"""What a wallet session may do next: pure rules over the session's state (no I/O).

One session per (wallet, payment procedure). It is found by ``txn_id`` and admitted only with
its cookie (FIG. 6, R29: the wallet correlates by cookie, nothing else identifies the user's
session). States, in order::

    login ──▶ logged-in ──▶ confirming ──▶ requested ──▶ approved | declined
      │  (too many failures)     ▲    │ (new conditions)
      ▼                          └────┘
    locked

- R11: only a successful login leaves ``login``; a failed one stays there (or locks).
- R44: the payment request is sent only from ``confirming`` (logged in, conditions agreed,
  confirming information shown for this transaction).
- R33: ``requested`` is left only by the approval response; a second final approval sends
  nothing.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

LOGIN = "login"
LOGGED_IN = "logged-in"
CONFIRMING = "confirming"
REQUESTED = "requested"
APPROVED = "approved"
DECLINED = "declined"
LOCKED = "locked"

MAX_LOGIN_FAILURES = 5  # then the session is locked; the user starts a new payment
COOKIE_NAME = "session_id"


@dataclass(frozen=True)
class Session:
    wallet_id: str
    txn_id: str
    cookie: str = field(repr=False)
    shop_id: str
    payment_information: bytes  # the shop's signed envelope, exactly as the relay sent it
    state: str = LOGIN
    user_id: str = ""
    brand: str = ""
    method: str = ""
    failures: int = 0
    request: bytes = b""  # the payment request body, once sent (re-sent on redelivery only)
    approval_msg_id: str = ""  # the final approval that sent it
    result_kind: str = ""
    result_html: str = ""


def set_cookie(cookie: str) -> str:
    """The ``Set-Cookie`` value the wallet puts on its contents (R10)."""
    return f"{COOKIE_NAME}={cookie}; Path=/"


def cookie_value(cookie: str) -> str:
    """The session id in what the relay restored: a ``Cookie`` header (``session_id=…``,
    possibly among other pairs), a ``Set-Cookie`` value, or the bare id."""
    if "=" not in cookie:
        return cookie.strip()
    for pair in cookie.split(";"):
        name, sep, value = pair.strip().partition("=")
        if sep and name == COOKIE_NAME:
            return value
    return ""


def cookie_ok(session: Session, presented: str) -> bool:
    """Constant-time comparison, so the cookie cannot be guessed byte by byte (R29a)."""
    value = cookie_value(presented)
    return bool(value) and hmac.compare_digest(value.encode(), session.cookie.encode())


def may_log_in(session: Session) -> bool:
    """Login is open until the final approval; a logged-in user may log in again."""
    return session.state in (LOGIN, LOGGED_IN, CONFIRMING)


def may_choose_conditions(session: Session) -> bool:
    return session.state in (LOGGED_IN, CONFIRMING) and bool(session.user_id)


def may_request_payment(session: Session) -> bool:
    """R44: logged in, conditions agreed, confirming information sent for this txn."""
    return (session.state == CONFIRMING and bool(session.user_id) and bool(session.brand)
            and bool(session.method))


def awaits_approval(session: Session) -> bool:
    return session.state == REQUESTED


def finished(session: Session) -> bool:
    return session.state in (APPROVED, DECLINED)


def after_failure(session: Session) -> str:
    """The state after one more failed login."""
    return LOCKED if session.failures + 1 >= MAX_LOGIN_FAILURES else LOGIN
