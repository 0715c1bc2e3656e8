"""Version 1 of every message on the kessai bus (seed 003 message catalogue M1–M12).

Secrets never appear as plain fields: card numbers, PINs and passwords travel only inside
``*_sealed`` byte fields sealed to the settlement server (or issuer) with HPKE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from kessai.money import Money
from schemas.codec import message

Outcome = Literal["APPROVED", "DECLINED", "MISMATCH", "AUTH_FAILED", "EXPIRED",
                  "DUPLICATE_CONFLICT", "REJECTED"]
ResultMode = Literal["VIA_TERMINAL", "DIRECT_BOTH", "SHOP_POLLS"]
AuthMethod = Literal["signature", "channel", "password"]


@dataclass(frozen=True)
class LineItem:
    code: str
    name: str
    unit_price: int  # minor units of OrderContent.currency
    quantity: int


@dataclass(frozen=True)
class OrderContent:
    """What was ordered and what it costs (Fig. 5 of seed 003: items, tax, total)."""

    items: list[LineItem]
    currency: str
    tax: int
    total: int

    @property
    def amount(self) -> Money:
        return Money(self.total, self.currency)


@dataclass(frozen=True)
class Delivery:
    name: str
    address: str
    contact: str


@message
@dataclass(frozen=True)
class PurchaseCommand:
    """The simulated user's button presses, sent to the terminal agent (by `kessai pay`)."""

    TYPE: ClassVar[str] = "purchase-command"
    VERSION: ClassVar[int] = 1
    session: str
    user_id: str
    shop_id: str
    items: list[list[Any]]  # [[product code, quantity], ...]
    card: str = "main"
    user_tamper: Literal["none", "amount", "quantity"] = "none"
    second_delay_ms: int = 0
    abandon: bool = False  # never send the 2nd request (the order must expire)
    duplicate_second: bool = False
    wrong_password: bool = False
    forge_authenticator: bool = False
    forge_relay: bool = False
    scenario: dict[str, Any] = field(default_factory=dict)  # passed to the shop (demo knobs)


@message
@dataclass(frozen=True)
class OrderRequest:
    """M1: terminal → shop. No account information."""

    TYPE: ClassVar[str] = "order-request"
    VERSION: ClassVar[int] = 1
    session: str
    user_id: str
    shop_id: str
    items: list[list[Any]]
    delivery: Delivery
    scenario: dict[str, Any] = field(default_factory=dict)


@message
@dataclass(frozen=True)
class FirstRequest:
    """M2: shop → settlement. Content or its hash, and always the amount (cl. 16–18)."""

    TYPE: ClassVar[str] = "settlement-first"
    VERSION: ClassVar[int] = 1
    shop_id: str
    order_id: str  # "" when the settlement server assigns it ([0027])
    request_ref: str
    amount: Money
    result_mode: ResultMode
    content: OrderContent | None = None
    content_hash: bytes | None = None
    user_ref: str = ""  # cl. 50: the id identifies the order and the user
    payee_account: str = ""


@message
@dataclass(frozen=True)
class FirstAccepted:
    """M3: settlement → shop, carrying the server-assigned order id ([0027])."""

    TYPE: ClassVar[str] = "settlement-first-accepted"
    VERSION: ClassVar[int] = 1
    shop_id: str
    request_ref: str
    order_id: str


@message
@dataclass(frozen=True)
class AssignedFirst:
    """Settlement-internal: a 1st request re-keyed under the order id the server assigned."""

    TYPE: ClassVar[str] = "settlement-first-assigned"
    VERSION: ClassVar[int] = 1
    order_id: str
    original: bytes  # the shop's signed FirstRequest envelope, verified again on use


@message
@dataclass(frozen=True)
class PaymentRequest:
    """M4: shop → user terminal on the wake-up topic: what to pay, to whom."""

    TYPE: ClassVar[str] = "payment-request"
    VERSION: ClassVar[int] = 1
    shop_id: str
    order_id: str
    session: str
    user_id: str
    content: OrderContent
    amount: Money
    brands: list[str] = field(default_factory=lambda: ["visa", "mastercard", "jcb"])


@message
@dataclass(frozen=True)
class SecondRequest:
    """M7: terminal → settlement. Account info only sealed; never readable by the shop."""

    TYPE: ClassVar[str] = "settlement-second"
    VERSION: ClassVar[int] = 1
    shop_id: str
    order_id: str
    session: str
    user_id: str
    content: OrderContent
    amount: Money
    auth_method: AuthMethod
    account_sealed: bytes | None = None  # None in held-account mode (cl. 15)
    password_sealed: bytes | None = None  # cl. 13
    user_authenticator: bytes | None = None  # cl. 10: user's signature over this body


@message
@dataclass(frozen=True)
class Authorization:
    """M8: settlement → FI host; the account sealed to the issuer."""

    TYPE: ClassVar[str] = "authorization"
    VERSION: ClassVar[int] = 1
    join_key: str
    amount: Money
    payee: str
    account_sealed: bytes


@message
@dataclass(frozen=True)
class AuthorizationResult:
    TYPE: ClassVar[str] = "authorization-result"
    VERSION: ClassVar[int] = 1
    join_key: str
    approved: bool
    reason: str
    auth_code: str = ""


@message
@dataclass(frozen=True)
class PaymentResult:
    """M9/M11: the settlement outcome, to the user (and to the shop in DIRECT_BOTH)."""

    TYPE: ClassVar[str] = "payment-result"
    VERSION: ClassVar[int] = 1
    shop_id: str
    order_id: str
    session: str
    recipient: Literal["user", "shop"]
    outcome: Outcome
    amount: Money
    result_mode: ResultMode
    shop_authenticator: bytes = b""  # cl. 7/24: HMAC with the key shared with the shop
    user_authenticator: bytes = b""  # cl. 11/28: HMAC with the key shared with the user
    attempt: int = 1


@message
@dataclass(frozen=True)
class ResultRelay:
    """M10: terminal → shop, the result with the shop authenticator copied unchanged."""

    TYPE: ClassVar[str] = "payment-result-relay"
    VERSION: ClassVar[int] = 1
    shop_id: str
    order_id: str
    outcome: Outcome
    amount: Money
    shop_authenticator: bytes


@message
@dataclass(frozen=True)
class ResultAck:
    """M11a: shop → settlement, receipt of a direct result (B21)."""

    TYPE: ClassVar[str] = "payment-result-ack"
    VERSION: ClassVar[int] = 1
    shop_id: str
    order_id: str


@message
@dataclass(frozen=True)
class ResultInquiry:
    """M12: shop → settlement, asks the result history by order id (emb. 3)."""

    TYPE: ClassVar[str] = "result-inquiry"
    VERSION: ClassVar[int] = 1
    shop_id: str
    order_id: str


@message
@dataclass(frozen=True)
class InquiryAnswer:
    TYPE: ClassVar[str] = "result-inquiry-answer"
    VERSION: ClassVar[int] = 1
    shop_id: str
    order_id: str
    outcome: str  # an Outcome, or UNKNOWN_OR_EXPIRED / DENIED
    amount: Money | None = None


@message
@dataclass(frozen=True)
class OrderStatus:
    """The shop's own verdict: PAID only after it verified the result's authenticator."""

    TYPE: ClassVar[str] = "order-status"
    VERSION: ClassVar[int] = 1
    shop_id: str
    order_id: str
    session: str
    status: Literal["AWAITING_PAYMENT", "PAID", "NOT_PAID", "RESULT_REJECTED"]
    outcome: str = ""
    detail: str = ""


@message
@dataclass(frozen=True)
class DeadlineTick:
    """Settlement-internal: a timer asks the owner of a partition to check a deadline."""

    TYPE: ClassVar[str] = "deadline-tick"
    VERSION: ClassVar[int] = 1
    join_key: str
    due_ms: int


@message
@dataclass(frozen=True)
class AuditEvent:
    TYPE: ClassVar[str] = "audit-event"
    VERSION: ClassVar[int] = 1
    kind: str
    join_key: str
    detail: str


@message
@dataclass(frozen=True)
class DeadLetter:
    TYPE: ClassVar[str] = "dead-letter"
    VERSION: ClassVar[int] = 1
    agent: str
    reason: str
    detail: str
    topic: str
    partition: int
    offset: int
    original: bytes


# -- issue 10: the audit archive -----------------------------------------------------------

@dataclass(frozen=True)
class ChainHead:
    """The last archived record of one topic-partition and the hash that ends its chain."""

    topic: str
    partition: int
    offset: int
    hash: bytes
    records: int  # rows of this partition in the archive


@message
@dataclass(frozen=True)
class Checkpoint:
    """The archiver's signed statement of every chain head (a truncated or rewritten archive
    no longer matches it). ``policy`` holds the settlement deadlines the system ran with, so
    an audit recomputes deadline outcomes with the same values."""

    TYPE: ClassVar[str] = "audit-checkpoint"
    VERSION: ClassVar[int] = 1
    archive_id: str
    seq: int
    heads: list[ChainHead]
    policy: dict[str, int] = field(default_factory=dict)
