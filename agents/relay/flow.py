"""The relay's decisions, without I/O: the stage machine of a terminal session, which bus
message each terminal request produces, the keep-alive decision (claims 10–11), the wallet
routing of FIG. 7 (claim 14, R34–R36) and the checks of what terminals type in.

A session walks one of three flows:

``set-wallet`` (FIG. 3)::

    procedure ─⑤→ selecting ─(B)→ await-login ─⑦→ login ─⑩→ await-conditions ─→ conditions
        └─(preset or single wallet, ⑥)─┘                 ↑ login-failed ┘
    ─→ await-confirming ─→ confirming ─⑪'→ approving ─⑬→ done

``two-sided`` (seed 003 through the relay)::

    ordering ─M4→ paying ─M7→ settling ─M9→ done

``enrol`` (claims 12–13)::

    enrol-form ─→ enrolling ─CA contents→ done

Any wallet ``error`` contents, a conversion failure or a shop rejection ends in ``failed``.
Waiting stages show the progress page until the next contents arrive.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from kessai.errors import KessaiError
from protocols.multiwallet import choice_ok, designated_without_asking

__all__ = ["choice_ok", "route_wallet"]  # choice_ok (R35) is the shared rule, re-exported

Flow = Literal["set-wallet", "two-sided", "enrol"]
FLOWS: tuple[str, ...] = ("set-wallet", "two-sided", "enrol")

PROCEDURE = "procedure"  # ③④ sent to the shop; waiting for ⑤
SELECTING = "selecting"  # FIG. 7 (A) shown; the payment information is held (R34)
AWAIT_LOGIN = "await-login"  # ⑥ sent to the wallet; waiting for ⑦
LOGIN = "login"  # ⑧ shown
AWAIT_CONDITIONS = "await-conditions"  # ⑩ sent
CONDITIONS = "conditions"  # the condition-negotiation contents shown ([d:202])
AWAIT_CONFIRMING = "await-confirming"  # the agreed conditions sent
CONFIRMING = "confirming"  # the confirming information shown (claim 5)
APPROVING = "approving"  # ⑪' sent; the keep-alive timer runs (claim 10)
ORDERING = "ordering"  # two-sided: M1 sent to the shop; waiting for M4
PAYING = "paying"  # two-sided: M4 shown with the card form
SETTLING = "settling"  # two-sided: M7 sent; waiting for M9
ENROL_FORM = "enrol-form"  # enrolment: the registration form shown
ENROLLING = "enrolling"  # enrolment: CARegistration sent; waiting for the CA's contents
DONE = "done"  # the result is held until the terminal asks (R31, R32)
FAILED = "failed"  # an error page is held

WAITING = frozenset({PROCEDURE, AWAIT_LOGIN, AWAIT_CONDITIONS, AWAIT_CONFIRMING, APPROVING,
                     ORDERING, SETTLING, ENROLLING})
FINAL = frozenset({DONE, FAILED})


def first_stage(flow: Flow) -> str:
    return {"set-wallet": PROCEDURE, "two-sided": ORDERING, "enrol": ENROL_FORM}[flow]


# -- terminal requests -----------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    """A terminal request that moves the session on and sends one bus message."""

    valid_in: str
    then: str
    sends: str  # the message type it produces, and on which topic (docs/relay.md)


STEPS: dict[str, Step] = {
    "select-wallet": Step(SELECTING, AWAIT_LOGIN,
                          "WalletPaymentInformation → kessai.wallet.inbox (⑥, FIG. 7 B)"),
    "login": Step(LOGIN, AWAIT_CONDITIONS, "WalletLogin → kessai.wallet.inbox (⑩)"),
    "conditions": Step(CONDITIONS, AWAIT_CONFIRMING,
                       "WalletConditions → kessai.wallet.inbox"),
    "approve": Step(CONFIRMING, APPROVING, "WalletFinalApproval → kessai.wallet.inbox (⑪')"),
    "confirm": Step(PAYING, SETTLING, "SecondRequest → kessai.settlement.second (M7)"),
    "enrol": Step(ENROL_FORM, ENROLLING, "CARegistration → kessai.ca.registrations"),
}
READ_ONLY = frozenset({"inquire", "page"})


@dataclass(frozen=True)
class Advance:
    step: Step


@dataclass(frozen=True)
class Show:
    """Send nothing; show the session's current view (an inquiry, a page, a repeat)."""


@dataclass(frozen=True)
class OutOfStep:
    detail: str


Decision = Advance | Show | OutOfStep


def on_request(request: str, stage: str) -> Decision:
    """What the terminal request ``request`` does in ``stage``.

    Inquiries and page requests are read-only (R33). A repeated approval — a double press,
    a reconnect, an inquiry's page resubmitted — sends nothing again and shows the current
    view: one ⑪' per payment, however often the terminal asks.
    """
    if request in READ_ONLY:
        return Show()
    step = STEPS.get(request)
    if step is None:
        return OutOfStep(f"unknown request {request!r}")
    if stage == step.valid_in:
        return Advance(step)
    if stage == step.then or (stage in FINAL and request in ("approve", "confirm", "enrol")):
        return Show()
    return OutOfStep(f"{request} is not expected while the session is {stage}")


# -- contents from the network side -----------------------------------------------------------

_WALLET_CONTENTS: dict[str, dict[str, str]] = {
    AWAIT_LOGIN: {"login": LOGIN},
    AWAIT_CONDITIONS: {"conditions": CONDITIONS, "login-failed": LOGIN, "login": LOGIN},
    AWAIT_CONFIRMING: {"confirming": CONFIRMING, "conditions": CONDITIONS},
    APPROVING: {"approval": DONE, "declined": DONE},
}


def on_wallet_contents(stage: str, kind: str) -> str | None:
    """The stage after the wallet's ``kind`` contents, or None: stale or a duplicate (ignore).

    ``error`` contents end any unfinished session.
    """
    if kind == "error":
        return None if stage in FINAL else FAILED
    return _WALLET_CONTENTS.get(stage, {}).get(kind)


# -- keep-alive (claims 10–11, FIG. 4) --------------------------------------------------------

KeepAlive = Literal["show", "wait", "progress"]


def keepalive(waiting: bool, started_ms: int, now_ms: int, period_ms: int) -> KeepAlive:
    """What the relay answers a terminal request that started at ``started_ms``.

    - ``show``: the next contents are in; show them;
    - ``wait``: still within the preset period; keep waiting;
    - ``progress``: the period is over and the result is not in: send the progress contents
      (the inquiry screen), so the terminal's call does not idle out ([d:224]).
    """
    if not waiting:
        return "show"
    return "wait" if now_ms - started_ms < period_ms else "progress"


# -- wallet selection (FIG. 7, claim 14) ------------------------------------------------------

def route_wallet(usable: Sequence[str], user: str, presets: Mapping[str, str]) -> str | None:
    """The wallet the payment information goes to without asking, or None: ask the user.

    The user's pre-set wallet if the shop designates it (R36, [d:194]); the only designated
    wallet if there is one; otherwise the user chooses among the designated ones (R34). The
    rule is the one the seed-004 selector applies too (:mod:`protocols.multiwallet`).
    """
    return designated_without_asking(usable, presets.get(user) if user else None)


# -- what terminals type in ---------------------------------------------------------------------

class FormError(KessaiError):
    """A form the terminal sent cannot be used; the message never repeats what was typed."""

    code = "relay_form"


_DIGITS = re.compile(r"\d{12,19}")
_EXPIRY_ISO = re.compile(r"(\d{4})-(\d{2})")
_EXPIRY_CARD = re.compile(r"(\d{2})/(\d{2})")
USER_ID = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def card_from_form(number: str, expiry: str) -> tuple[str, str]:
    """A typed card number and expiry → (digits, ``YYYY-MM``).

    Spaces and dashes in the number are ignored; the expiry may be ``YYYY-MM`` or ``MM/YY``.

    Raises:
        FormError: not 12–19 digits with a valid check digit, or no valid month.
    """
    digits = number.replace(" ", "").replace("-", "")
    if not _DIGITS.fullmatch(digits) or not luhn_ok(digits):
        raise FormError("the card number is not valid; type it again")
    expiry = expiry.strip()
    m = _EXPIRY_ISO.fullmatch(expiry)
    if m:
        year, month = int(m.group(1)), int(m.group(2))
    else:
        m = _EXPIRY_CARD.fullmatch(expiry)
        if not m:
            raise FormError("the expiry must look like 2030-06 or 06/30")
        month, year = int(m.group(1)), 2000 + int(m.group(2))
    if not 1 <= month <= 12:
        raise FormError("the expiry month must be 01 to 12")
    return digits, f"{year:04d}-{month:02d}"


def user_from_form(raw: str) -> str:
    """A relay user name: lower-case letters, digits, ``-`` and ``_``, at most 32 characters.

    Raises:
        FormError: anything else.
    """
    user = raw.strip()
    if not USER_ID.fullmatch(user):
        raise FormError("the user name must be lower-case letters, digits, - or _")
    return user
