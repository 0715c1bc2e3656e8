"""The phone's payment application as a pure state machine (seed 002, Figs. 12, 14, 15).

State per device: the UIM's stored authentication result (area 233) and the open payment
session. Each function takes the UIM, the state and an input and returns a :class:`Step`: the
new state, the messages to send and the screens to show, as data; or a :class:`Refusal` for a
session message that does not belong to the open session (dead-lettered by the shell).

Never here: a card number or expiry (D11). The password is compared and forgotten (D1).
"""

from __future__ import annotations

import hmac
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from protocols.wakeup import METHOD_NAMES, START_PAYMENT_APP
from schemas.wakeup import (
    AuthRequest,
    CompletionNotice,
    ConfirmationMail,
    ConfirmationReply,
    HistoryRequest,
    Mail,
    MailFetch,
    MethodChoice,
    PaymentMethods,
    ProceedRequest,
    ReceptionNotice,
    ServerCertificate,
    SessionError,
    SessionOpen,
    ShortRangeUserId,
    TransactionDetails,
)

ABORTED_TEXT = "This payment processing is aborted and must be carried out from the beginning."
COMPLETED_TEXT = "Payment has now been completed."


@dataclass(frozen=True)
class Policy:
    """D7: the response timer (default 120 s, "two minutes, for example"); D3: how long the
    authentication result is kept (default 1 h, "an hour, for example")."""

    response_ms: int = 120_000
    auth_ttl_ms: int = 3_600_000


@dataclass(frozen=True)
class Credential:
    card: str
    user_id: str
    password: str

    def __repr__(self) -> str:
        return f"Credential({self.card!r}, {self.user_id!r})"


@dataclass(frozen=True)
class Uim:
    """UIM storage area 233: device id, the gateway's URL and mail address, one (user id,
    password) pair per card, and the trust anchor the gateway's certificate must chain to."""

    device_id: str
    gateway_address: str
    gateway_mail: str
    trust_anchor: str
    credentials: tuple[Credential, ...]

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Uim:
        return cls(str(cfg["device_id"]), str(cfg["gateway_address"]), str(cfg["gateway_mail"]),
                   str(cfg.get("trust_anchor", "ca")),
                   tuple(Credential(str(c["card"]), str(c["user_id"]), str(c["password"]))
                         for c in cfg["credentials"]))

    @property
    def cards(self) -> list[str]:
        return [c.card for c in self.credentials]


@dataclass(frozen=True)
class Auth:
    user_id: str
    card: str
    at_ms: int
    expires_ms: int


@dataclass(frozen=True)
class Session:
    session_id: str
    user_id: str
    phase: str  # cert → auth → details → proceed → choose → completing
    deadline_ms: int | None = None
    methods: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Phone:
    auth: Auth | None = None
    session: Session | None = None
    mails: list[str] = field(default_factory=list)  # mail ids already acted on
    seen: list[str] = field(default_factory=list)  # message ids already applied
    confirm: dict[str, str] | None = None  # embodiment 2: {request_ref, user_id} to answer

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Phone:
        auth = Auth(**raw["auth"]) if raw.get("auth") else None
        session = Session(**raw["session"]) if raw.get("session") else None
        return cls(auth, session, list(raw.get("mails", [])), list(raw.get("seen", [])),
                   raw.get("confirm"))


@dataclass(frozen=True)
class Send:
    topic: str
    message: Any
    key: str


@dataclass(frozen=True)
class Show:
    screen: str
    text: str
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Step:
    state: Phone
    effects: tuple[Send | Show, ...] = ()


@dataclass(frozen=True)
class Refusal:
    reason: str
    detail: str


SHORTRANGE = "kessai.shortrange.user-ids"
MAIL_FETCH = "kessai.direction.mail-fetch"
GATEWAY = "kessai.paygate.sessions"
HISTORY = "kessai.paygate.history-requests"


def expire(state: Phone, now_ms: int) -> Phone:
    """D3: an authentication result past its expiry is deleted."""
    if state.auth is not None and now_ms >= state.auth.expires_ms:
        return replace(state, auth=None)
    return state


# -- Fig. 12: local authentication and the hand-over (Sa1–Sa6) --------------------------------
def login(uim: Uim, state: Phone, card: str, user_id: str, typed_password: str, pos_id: str,
          now_ms: int, policy: Policy) -> Step:
    """D1/D2: compare with the pair stored for the selected card; on a match store the result
    and hand the *stored* user id to the POS. On a mismatch nothing is sent."""
    cred = next((c for c in uim.credentials if c.card == card), None)
    ok = cred is not None and hmac.compare_digest(cred.user_id.encode(), user_id.encode()) \
        and hmac.compare_digest(cred.password.encode(), typed_password.encode())
    if not ok or cred is None:
        return Step(state, (Show("rejected", "You are not the right person: rejected."),))
    auth = Auth(cred.user_id, cred.card, now_ms, now_ms + policy.auth_ttl_ms)
    if not pos_id:
        # V3: no POS at hand; the user types their id at a web shop's checkout, and the
        # stored result answers the wake-up that follows.
        return Step(replace(state, auth=auth), (
            Show("authenticated", f"Authenticated as {cred.user_id}: enter it at the web "
                                  "shop's checkout."),))
    return Step(replace(state, auth=auth), (
        Send(SHORTRANGE, ShortRangeUserId(pos_id, cred.user_id, uim.device_id), pos_id),
        Show("handed_over", f"User id sent to {pos_id}. Waiting for the payment request.")))


# -- Fig. 14: the reception message, the mail, the check, the automatic start (Sb1–Sb3) --------
def on_notice(uim: Uim, state: Phone, msg: ReceptionNotice) -> Step:
    if msg.mail_id in state.mails:
        return Step(state)
    return Step(state, (Send(MAIL_FETCH, MailFetch(uim.device_id, msg.mail_id),
                             uim.device_id),))


def on_mail(uim: Uim, state: Phone, mail: Mail, now_ms: int, policy: Policy) -> Step:
    """D4: only a mail from the gateway's address carrying the predetermined command starts
    the payment application (D5); any other is dropped with no effect at all."""
    if mail.mail_id in state.mails or mail.device_id != uim.device_id:
        return Step(state)
    if mail.sender != uim.gateway_mail or START_PAYMENT_APP not in mail.commands:
        return Step(state)
    state = replace(expire(state, now_ms), mails=[*state.mails, mail.mail_id][-32:])
    if state.auth is None:
        # Claim 1: authenticity is sent only if the terminal stores it (D3 [X]: the notice).
        return Step(replace(state, session=None), (Show("aborted", ABORTED_TEXT),))
    session = Session(mail.mail_id, state.auth.user_id, "cert", now_ms + policy.response_ms)
    return Step(replace(state, session=session), (
        Send(GATEWAY, SessionOpen(state.auth.user_id, uim.device_id, mail.mail_id,
                                  uim.gateway_address), state.auth.user_id),
        Show("wakeup", "Payment request received: connecting to the payment gateway.")))


def _session(state: Phone, session_id: str, phase: str) -> Refusal | None:
    if state.session is None or state.session.session_id != session_id:
        return Refusal("session_mismatch", "no such open session on this phone")
    if state.session.phase != phase:
        return Refusal("out_of_sequence", f"session is at {state.session.phase}, not {phase}")
    return None


# -- Fig. 15: the session (Sc1–Sc9) ------------------------------------------------------------
def on_certificate(uim: Uim, state: Phone, msg: ServerCertificate, problem: str | None,
                   now_ms: int, policy: Policy) -> Step | Refusal:
    """D6/D7: nothing is sent before the certificate checks out; then the stored result, the
    user id and the device id, and the response timer starts again."""
    refusal = _session(state, msg.session_id, "cert")
    if refusal is not None:
        return refusal
    assert state.session is not None
    if problem is not None:
        return Step(replace(state, session=None),
                    (Show("error", f"The payment gateway could not be verified ({problem})."),))
    state = expire(state, now_ms)
    if state.auth is None or state.auth.user_id != state.session.user_id:
        return Step(replace(state, session=None), (Show("aborted", ABORTED_TEXT),))
    session = replace(state.session, phase="auth", deadline_ms=now_ms + policy.response_ms)
    return Step(replace(state, session=session), (
        Send(GATEWAY, AuthRequest(state.auth.user_id, uim.device_id, session.session_id, True,
                                  state.auth.at_ms), state.auth.user_id),))


def on_details(state: Phone, msg: TransactionDetails) -> Step | Refusal:
    """D8 (Fig. 16): the shop and the total, with Agree / Not agree; the user is reading, so
    no response timer runs."""
    refusal = _session(state, msg.session_id, "auth")
    if refusal is not None:
        return refusal
    assert state.session is not None
    lines = "; ".join(f"{i.name} x{i.quantity} {i.price}" for i in msg.items)
    text = (f"This transaction is conducted at shop {msg.merchant_name}. {lines}; tax "
            f"{msg.tax}. Total amount is {msg.total}.")
    return Step(replace(state, session=replace(state.session, phase="details",
                                               deadline_ms=None)),
                (Show("details", text, ("Agree", "Not agree")),))


def agree(uim: Uim, state: Phone, now_ms: int, policy: Policy) -> Step:
    if state.session is None or state.session.phase != "details":
        return Step(state, (Show("error", "There is nothing to agree to."),))
    s = state.session
    return Step(replace(state, session=replace(s, phase="proceed",
                                               deadline_ms=now_ms + policy.response_ms)),
                (Send(GATEWAY, ProceedRequest(s.user_id, uim.device_id, s.session_id),
                      s.user_id),
                 Show("waiting", "Waiting for the payment methods.")))


def not_agree(state: Phone) -> Step:
    """D8 (Sc6): stop locally; nothing is sent (the gateway's confirmation timer ends it)."""
    if state.session is None or state.session.phase != "details":
        return Step(state)
    return Step(replace(state, session=None), (Show("stopped", "Payment processing stopped."),))


def on_methods(state: Phone, msg: PaymentMethods) -> Step | Refusal:
    refusal = _session(state, msg.session_id, "proceed")
    if refusal is not None:
        return refusal
    assert state.session is not None
    return Step(replace(state, session=replace(state.session, phase="choose", deadline_ms=None,
                                               methods=list(msg.methods))),
                (Show("methods", "Please select a payment method.",
                      tuple(f"{m}: {METHOD_NAMES.get(m, m)}" for m in msg.methods)),))


def choose(uim: Uim, state: Phone, method: str, now_ms: int, policy: Policy) -> Step:
    """D9: only a listed method can be chosen."""
    s = state.session
    if s is None or s.phase != "choose":
        return Step(state, (Show("error", "There is no method to choose."),))
    if method not in s.methods:
        return Step(state, (Show("error", f"{method} is not offered for this payment."),))
    return Step(replace(state, session=replace(s, phase="completing",
                                               deadline_ms=now_ms + policy.response_ms)),
                (Send(GATEWAY, MethodChoice(s.user_id, uim.device_id, s.session_id, method),
                      s.user_id),
                 Show("waiting", "Waiting for the completion.")))


def on_completion(state: Phone, msg: CompletionNotice) -> Step | Refusal:
    """D10."""
    refusal = _session(state, msg.session_id, "completing")
    if refusal is not None:
        return refusal
    return Step(replace(state, session=None), (Show("completed", COMPLETED_TEXT),))


def on_error(state: Phone, msg: SessionError) -> Step | Refusal:
    if state.session is None or state.session.session_id != msg.session_id:
        return Refusal("session_mismatch", "no such open session on this phone")
    return Step(replace(state, session=None),
                (Show("error", f"The payment gateway stopped the payment ({msg.reason})."),))


def on_tick(state: Phone, now_ms: int) -> Step:
    """D7: no answer from the gateway in time → abort; D3: drop an expired result."""
    new = expire(state, now_ms)
    s = new.session
    if s is not None and s.deadline_ms is not None and now_ms >= s.deadline_ms:
        return Step(replace(new, session=None), (Show("aborted", ABORTED_TEXT),))
    return Step(new)


def next_deadline(state: Phone) -> int | None:
    due = [d for d in (state.auth.expires_ms if state.auth else None,
                       state.session.deadline_ms if state.session else None) if d is not None]
    return min(due) if due else None


# -- Embodiment 2 (K2): the confirmation mail, answered with the password ---------------------
def on_confirmation(uim: Uim, state: Phone, msg: ConfirmationMail) -> Step:
    """N2: show the transaction; the user answers with their password (or does not)."""
    if msg.device_id != uim.device_id:
        return Step(state)
    return Step(replace(state, confirm={"request_ref": msg.request_ref, "user_id": msg.user_id}),
                (Show("confirm", f"Confirm the payment of {msg.amount} at shop "
                                 f"{msg.merchant_name}: reply with your password.",
                      ("Reply", "Ignore")),))


def reply(uim: Uim, state: Phone, password_sealed: bytes) -> Step:
    """N3: the reply mail with the password (sealed by the shell) and the device id."""
    if state.confirm is None:
        return Step(state, (Show("error", "There is no payment to confirm."),))
    c = state.confirm
    return Step(replace(state, confirm=None), (
        Send(GATEWAY, ConfirmationReply(c["user_id"], uim.device_id, c["request_ref"],
                                        password_sealed), c["user_id"]),
        Show("replied", "Reply sent.")))


# -- V4: the transaction history ([0120]) ---------------------------------------------------
def history(uim: Uim, state: Phone, now_ms: int, request_id: str) -> Step:
    """Ask the gateway for the authenticated user's history; without a stored (unexpired)
    authentication result nothing is sent."""
    state = expire(state, now_ms)
    if state.auth is None:
        return Step(state, (Show("history_refused", "Log in first: the history is sent only "
                                                    "to an authenticated user."),))
    return Step(state, (Send(HISTORY, HistoryRequest(state.auth.user_id, uim.device_id,
                                                     request_id), state.auth.user_id),))
