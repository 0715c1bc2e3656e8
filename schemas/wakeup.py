"""Messages of the mobile wake-up payment (seed 002, EP 1 280 115), embodiment 1 (M1–M19).

No message here carries a card number, expiry or password in the clear: the card goes to the
credit server only sealed (``CreditRequest.card_sealed``), and the user's password never
leaves the phone (it is checked locally, D1). ``device_id`` is the phone's registered id
(UIM area 233); its bus identity is ``device-<device_id>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from kessai.money import Money
from schemas.codec import message

Method = Literal["L", "I", "B", "pB", "R"]
Outcome2 = Literal["COMPLETED", "STOPPED", "REJECTED"]


@dataclass(frozen=True)
class SaleItem:
    """One line of the clerk's transaction information (name, quantity, unit price)."""

    name: str
    quantity: int
    price: int  # minor units of the sale's currency


# -- the clerk and the POS (P1–P4) -------------------------------------------------------------
@message
@dataclass(frozen=True)
class PosSale:
    """The clerk's entry at the POS (Sd1/Sd2): goods, tax, and whether the customer uses the
    service. Sent by the operator (the simulated clerk)."""

    TYPE: ClassVar[str] = "pos-sale"
    VERSION: ClassVar[int] = 1
    pos_id: str
    sale_ref: str
    items: list[SaleItem]
    tax: int
    currency: str = "JPY"
    use_service: bool = True
    # Embodiment 2: the user typed their user id on the POS (or the phone gave it); the POS
    # then asks the gateway for the encrypted card number instead of a transaction number.
    encrypted_card_user: str = ""
    method: str = "L"


@message
@dataclass(frozen=True)
class ShortRangeUserId:
    """M1 (S2, Sa6): the phone hands the stored user id to the POS over short range."""

    TYPE: ClassVar[str] = "shortrange-user-id"
    VERSION: ClassVar[int] = 1
    pos_id: str
    user_id: str
    device_id: str


@message
@dataclass(frozen=True)
class TxnNumberRequest:
    """M2 (S3, Sd5): transaction information + merchant information + user id. No card."""

    TYPE: ClassVar[str] = "txn-number-request"
    VERSION: ClassVar[int] = 1
    pos_id: str
    sale_ref: str
    merchant_code: str
    user_id: str
    items: list[SaleItem]
    tax: int
    total: int
    currency: str


@message
@dataclass(frozen=True)
class TxnNumber:
    """M3 (S4, Se2): the gateway's transaction number for the POS's sale."""

    TYPE: ClassVar[str] = "txn-number"
    VERSION: ClassVar[int] = 1
    pos_id: str
    sale_ref: str
    transaction_number: str


@message
@dataclass(frozen=True)
class PosCompletion:
    """M18 (S13, Sd7): the completion; ``STOPPED``/``REJECTED`` with a reason are [X] (G13)."""

    TYPE: ClassVar[str] = "pos-completion"
    VERSION: ClassVar[int] = 1
    pos_id: str
    sale_ref: str
    transaction_number: str
    outcome: Outcome2
    reason: str = ""
    method: str = ""


@message
@dataclass(frozen=True)
class Receipt:
    """Sd7: the receipt the POS prints (an observable artifact, P4)."""

    TYPE: ClassVar[str] = "pos-receipt"
    VERSION: ClassVar[int] = 1
    pos_id: str
    sale_ref: str
    transaction_number: str
    outcome: Outcome2
    lines: list[str]


# -- the direction server (W1, W2) ----------------------------------------------------------
@message
@dataclass(frozen=True)
class MailRequest:
    """M4 (Se4): the payment server asks for the wake-up mail to the user's registered device."""

    TYPE: ClassVar[str] = "mail-request"
    VERSION: ClassVar[int] = 1
    user_id: str
    device_id: str
    transaction_number: str  # [X] G11(b): names the mail; the device never needs it


@message
@dataclass(frozen=True)
class ReceptionNotice:
    """M5: "mail is waiting", addressed explicitly to one device (no payment data)."""

    TYPE: ClassVar[str] = "reception-notice"
    VERSION: ClassVar[int] = 1
    device_id: str
    mail_id: str


@message
@dataclass(frozen=True)
class MailFetch:
    """M6: the device asks its mailbox for the mail."""

    TYPE: ClassVar[str] = "mail-fetch"
    VERSION: ClassVar[int] = 1
    device_id: str
    mail_id: str


@message
@dataclass(frozen=True)
class Mail:
    """M7: the e-mail including commands; ``sender`` is its From address."""

    TYPE: ClassVar[str] = "mail"
    VERSION: ClassVar[int] = 1
    device_id: str
    mail_id: str
    sender: str
    commands: list[str]


# -- device ⇄ gateway session (M8–M15, M19) --------------------------------------------------
@message
@dataclass(frozen=True)
class SessionOpen:
    """M8 (Sc1): connect to the gateway's address and ask for its certificate."""

    TYPE: ClassVar[str] = "session-open"
    VERSION: ClassVar[int] = 1
    user_id: str
    device_id: str
    session_id: str
    address: str


@message
@dataclass(frozen=True)
class GatewayCertificate:
    """A CA-issued server certificate for the gateway's address (checked by the device, D6)."""

    TYPE: ClassVar[str] = "gateway-certificate"
    VERSION: ClassVar[int] = 1
    subject: str  # the gateway's actor id (whose envelope key it certifies)
    address: str
    public_key: bytes
    not_after_ms: int
    ca_signature: bytes = b""


@message
@dataclass(frozen=True)
class ServerCertificate:
    """M9: the gateway's certificate, in answer to ``SessionOpen``."""

    TYPE: ClassVar[str] = "server-certificate"
    VERSION: ClassVar[int] = 1
    device_id: str
    session_id: str
    certificate: GatewayCertificate


@message
@dataclass(frozen=True)
class AuthRequest:
    """M10 (S6, Sc2): the stored authentication result, the user id and the device id."""

    TYPE: ClassVar[str] = "auth-request"
    VERSION: ClassVar[int] = 1
    user_id: str
    device_id: str
    session_id: str
    authentic: bool
    authenticated_at_ms: int


@message
@dataclass(frozen=True)
class SessionError:
    """M11: the gateway stopped the session (with why)."""

    TYPE: ClassVar[str] = "session-error"
    VERSION: ClassVar[int] = 1
    device_id: str
    session_id: str
    reason: str


@message
@dataclass(frozen=True)
class TransactionDetails:
    """M12 (S8, Se12): goods, tax, total and the shop, for Agree / Not agree (Fig. 16)."""

    TYPE: ClassVar[str] = "transaction-details"
    VERSION: ClassVar[int] = 1
    device_id: str
    session_id: str
    transaction_number: str
    merchant_name: str
    items: list[SaleItem]
    tax: int
    total: Money


@message
@dataclass(frozen=True)
class ProceedRequest:
    """M13 (Sc7): the user agreed. Never sent on Not agree."""

    TYPE: ClassVar[str] = "proceed-request"
    VERSION: ClassVar[int] = 1
    user_id: str
    device_id: str
    session_id: str


@message
@dataclass(frozen=True)
class PaymentMethods:
    """M14 (Se14): the methods the card's issuer allows at this merchant (Fig. 10)."""

    TYPE: ClassVar[str] = "payment-methods"
    VERSION: ClassVar[int] = 1
    device_id: str
    session_id: str
    methods: list[str]


@message
@dataclass(frozen=True)
class MethodChoice:
    """M15 (S9, Sc9): the method the user picked."""

    TYPE: ClassVar[str] = "method-choice"
    VERSION: ClassVar[int] = 1
    user_id: str
    device_id: str
    session_id: str
    method: str


@message
@dataclass(frozen=True)
class CompletionNotice:
    """M19 (S14): the completion, forwarded to the phone."""

    TYPE: ClassVar[str] = "completion-notice"
    VERSION: ClassVar[int] = 1
    device_id: str
    session_id: str
    transaction_number: str
    outcome: Outcome2
    reason: str = ""


# -- gateway ⇄ credit server (M16, M17) -------------------------------------------------------
@message
@dataclass(frozen=True)
class CreditRequest:
    """M16 (S10, Se15): the conventional credit request; card number and expiry sealed to the
    credit server (``protocols.wakeup.credit_card_context``)."""

    TYPE: ClassVar[str] = "credit-request"
    VERSION: ClassVar[int] = 1
    transaction_number: str
    join_key: str  # the credit server's idempotency key: "pg/<transaction number>"
    merchant_code: str
    items: list[SaleItem]
    amount: Money
    method: str
    card_sealed: bytes


@message
@dataclass(frozen=True)
class CreditResponse:
    """M17 (S11, S12): completion, or a refusal with its reason ([X], C1)."""

    TYPE: ClassVar[str] = "credit-response"
    VERSION: ClassVar[int] = 1
    transaction_number: str
    join_key: str
    approved: bool
    reason: str
    auth_code: str = ""


# -- the phone's screen and its user (simulated or in a browser) -----------------------------
@message
@dataclass(frozen=True)
class DeviceCommand:
    """What the phone's user does: log in for a card and hand the user id to a POS, Agree /
    Not agree, pick a method. The password is never on the bus: the phone's own keypad (the
    browser screen) types it; a simulated user types the stored one, or a wrong one."""

    TYPE: ClassVar[str] = "device-command"
    VERSION: ClassVar[int] = 1
    device_id: str
    action: Literal["login", "agree", "not_agree", "choose", "confirm", "history"]
    card: str = ""
    user_id: str = ""
    pos_id: str = ""
    wrong_password: bool = False
    method: str = ""
    reply_sealed: bytes = b""  # embodiment 2: the password a person typed, sealed to the gateway


@message
@dataclass(frozen=True)
class PhoneScreen:
    """What the phone shows (for the operator's journey print and tests)."""

    TYPE: ClassVar[str] = "phone-screen"
    VERSION: ClassVar[int] = 1
    device_id: str
    screen: str
    text: str
    options: list[str] = field(default_factory=list)
    session_id: str = ""


@message
@dataclass(frozen=True)
class WakeupTick:
    """Internal: a timer asks the owner of a partition to check one deadline."""

    TYPE: ClassVar[str] = "wakeup-tick"
    VERSION: ClassVar[int] = 1
    key: str
    due_ms: int


# -- Embodiment 2 (Figs. 22–28, K1–K7): the encrypted card number ---------------------------
@message
@dataclass(frozen=True)
class CardNumberRequest:
    """N1 (S01): the POS sends the user id (typed at the POS or from the phone) and its
    merchant code; the amount is [X], for the confirmation mail."""

    TYPE: ClassVar[str] = "card-number-request"
    VERSION: ClassVar[int] = 1
    pos_id: str
    request_ref: str
    user_id: str
    merchant_code: str
    amount: Money


@message
@dataclass(frozen=True)
class ConfirmationMail:
    """N2 (S02–S04, K2): the transaction, to the user's registered device, for a reply."""

    TYPE: ClassVar[str] = "confirmation-mail"
    VERSION: ClassVar[int] = 1
    device_id: str
    user_id: str
    request_ref: str
    merchant_name: str
    amount: Money


@message
@dataclass(frozen=True)
class ConfirmationReply:
    """N3: the user's reply with the password (sealed to the gateway) and the device id."""

    TYPE: ClassVar[str] = "confirmation-reply"
    VERSION: ClassVar[int] = 1
    user_id: str
    device_id: str
    request_ref: str
    password_sealed: bytes


@message
@dataclass(frozen=True)
class CardRefused:
    """N4 (S07–S09, K1/K2, claims 24/27/30/33): the rejection message to the POS."""

    TYPE: ClassVar[str] = "card-refused"
    VERSION: ClassVar[int] = 1
    pos_id: str
    request_ref: str
    reason: Literal["user_not_found", "no_card", "card_expired", "no_reply", "bad_password",
                    "unknown_merchant", "user_busy"]


@message
@dataclass(frozen=True)
class EncryptedCard:
    """N5 (S10–S12, K4): the encrypted card number, to the POS only; and which credit server
    holds its key (the issuer of the card, as Fig. 23's issuer code tells the POS)."""

    TYPE: ClassVar[str] = "encrypted-card"
    VERSION: ClassVar[int] = 1
    pos_id: str
    request_ref: str
    encrypted_card_number: bytes
    issuer_code: str
    credit_server: str


@message
@dataclass(frozen=True)
class KeyDistribution:
    """N6 (S13, K4): the encrypted card number and its decryption key, the key sealed to the
    credit server of the card's issuer."""

    TYPE: ClassVar[str] = "key-distribution"
    VERSION: ClassVar[int] = 1
    encrypted_card_number: bytes
    key_sealed: bytes


@message
@dataclass(frozen=True)
class PosCreditRequest:
    """N7 (S14–S16, K5): the POS's conventional credit request with the encrypted number."""

    TYPE: ClassVar[str] = "pos-credit-request"
    VERSION: ClassVar[int] = 1
    pos_id: str
    request_ref: str
    encrypted_card_number: bytes
    transaction_number: str
    merchant_code: str
    amount: Money
    method: str


@message
@dataclass(frozen=True)
class CreditAnswer:
    """N8/N9 (S17–S21, K6): allowance, or failure of authentication."""

    TYPE: ClassVar[str] = "credit-answer"
    VERSION: ClassVar[int] = 1
    pos_id: str
    request_ref: str
    allowed: bool
    reason: str


# -- V3: the web shop in place of the POS ([0117]–[0119], Fig. 20; G10) ------------------------
@message
@dataclass(frozen=True)
class WebOrder:
    """V3: a customer's checkout at the web shop: the goods (priced by the shop) and the user
    id they typed. No card, no password: the phone authenticates and the gateway pays."""

    TYPE: ClassVar[str] = "web-order"
    VERSION: ClassVar[int] = 1
    shop_id: str
    order_ref: str
    user_id: str
    items: list[SaleItem]
    tax: int
    currency: str = "JPY"


@message
@dataclass(frozen=True)
class WebOrderResult:
    """V3: the order's outcome as the web shop shows it to the customer (the completion the
    gateway sent over network 10A, or the stop/rejection with its reason)."""

    TYPE: ClassVar[str] = "web-order-result"
    VERSION: ClassVar[int] = 1
    shop_id: str
    order_ref: str
    transaction_number: str
    outcome: Outcome2
    reason: str = ""
    method: str = ""


# -- V4: the transaction history, the electronic receipt ([0113], [0120]; G10, M21) ----------
@message
@dataclass(frozen=True)
class HistoryRequest:
    """M21: the phone asks the gateway for its user's history (the user authenticated on the
    phone; the gateway checks the phone is the one registered for the user id)."""

    TYPE: ClassVar[str] = "history-request"
    VERSION: ClassVar[int] = 1
    user_id: str
    device_id: str
    request_id: str


@message
@dataclass(frozen=True)
class TransactionHistory:
    """M21: table 154b for one user, which the gateway "transforms into a HTML format" — the
    transactions with their merchant, goods, amount, method and outcome; never a card."""

    TYPE: ClassVar[str] = "transaction-history"
    VERSION: ClassVar[int] = 1
    device_id: str
    user_id: str
    request_id: str
    html: str
    count: int
