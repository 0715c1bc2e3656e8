"""Version 1 of the relay-server messages (seeds 000/001: a SET-style server wallet reached
from limited terminals through a relay). Step labels ①–⑭ are FIG. 3's.

Two requests share the patent's name "payment processing request": ③/④ the procedure request
to the shop (``ProcedureRequest``) and ⑪' the final approval to the wallet
(``WalletFinalApproval``); they are separate types (spec §2.2 note, R8).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from kessai.money import Money
from schemas.codec import message
from schemas.v1 import OrderContent

WalletContentKind = Literal["login", "login-failed", "conditions", "confirming", "approval",
                            "declined", "error"]


@message
@dataclass(frozen=True)
class ProcedureRequest:
    """③→④: the terminal pressed the final-payment button (which points at the relay); the
    relay's redirecting section sends it on to the shop (claim 1)."""

    TYPE: ClassVar[str] = "relay-procedure-request"
    VERSION: ClassVar[int] = 1
    txn_id: str  # the payment-procedure identifier (claim 7)
    shop_id: str
    cart_id: str
    terminal_profile: str
    flow: Literal["set-wallet", "two-sided"] = "set-wallet"
    user_id: str = ""  # known for the two-sided flow (the user logged in at the relay)


@message
@dataclass(frozen=True)
class PaymentInformation:
    """⑤: made by the shop's payment processing section, sent to the relay, never to the
    terminal. Names the wallet servers the shop accepts ([d:302])."""

    TYPE: ClassVar[str] = "relay-payment-information"
    VERSION: ClassVar[int] = 1
    txn_id: str
    shop_id: str
    order_id: str
    content: OrderContent
    amount: Money
    usable_wallets: list[str]


@message
@dataclass(frozen=True)
class WalletPaymentInformation:
    """⑥: the relay transfers the shop's payment information, unchanged (the shop's signed
    envelope bytes), to exactly one wallet server (R5)."""

    TYPE: ClassVar[str] = "wallet-payment-information"
    VERSION: ClassVar[int] = 1
    wallet_id: str
    txn_id: str
    payment_information: bytes  # the shop's signed envelope, verified again by the wallet


@message
@dataclass(frozen=True)
class WalletLogin:
    """⑩: the user's login, with the wallet's session cookie restored by the relay (FIG. 6 ③).
    The password is sealed to the wallet server by the relay as soon as the terminal posts it."""

    TYPE: ClassVar[str] = "wallet-login"
    VERSION: ClassVar[int] = 1
    wallet_id: str
    txn_id: str
    cookie: str
    user_name: str
    password_sealed: bytes


@message
@dataclass(frozen=True)
class WalletConditions:
    """The payment conditions the user agreed: card brand and payment method ([d:202])."""

    TYPE: ClassVar[str] = "wallet-conditions"
    VERSION: ClassVar[int] = 1
    wallet_id: str
    txn_id: str
    cookie: str
    card_brand: str
    method: str  # "lump-sum", "installments-3", ...


@message
@dataclass(frozen=True)
class WalletFinalApproval:
    """⑪': the final approval of the confirmed conditions (claims 10, 15, 16)."""

    TYPE: ClassVar[str] = "wallet-final-approval"
    VERSION: ClassVar[int] = 1
    wallet_id: str
    txn_id: str
    cookie: str


@message
@dataclass(frozen=True)
class WalletContents:
    """⑦ / conditions / confirming information / ⑬: tagged contents from the wallet server to
    the relay, which converts them for the terminal (claims 4–7). ``set_cookie`` is the wallet's
    session id ([d:276])."""

    TYPE: ClassVar[str] = "wallet-contents"
    VERSION: ClassVar[int] = 1
    wallet_id: str
    txn_id: str
    kind: WalletContentKind
    html: str
    set_cookie: str = ""


@message
@dataclass(frozen=True)
class Certificate:
    """A user certificate the CA issued: the CA's Ed25519 signature over the other fields."""

    TYPE: ClassVar[str] = "user-certificate"
    VERSION: ClassVar[int] = 1
    serial: str
    user_id: str
    wallet_id: str
    brand: str
    public_key: bytes  # the user's payment-signing key, held in the personal wallet
    not_after_ms: int
    ca_signature: bytes = b""


@message
@dataclass(frozen=True)
class SetPaymentRequest:
    """⑪: wallet → shop → payment gateway. The card travels sealed to the gateway; the user's
    key (in the personal wallet) signs; the shop only carries it (R14, R40)."""

    TYPE: ClassVar[str] = "set-payment-request"
    VERSION: ClassVar[int] = 1
    txn_id: str
    wallet_id: str
    shop_id: str
    certificate: Certificate
    payment_information: bytes  # the shop's signed envelope, as the wallet received it
    card_sealed: bytes  # pack_account(pan, expiry) sealed to the gateway
    method: str
    user_signature: bytes = b""  # over this request without the signature


@message
@dataclass(frozen=True)
class ForwardedPaymentRequest:
    """⑪ shop → gateway: the wallet's signed envelope, carried unchanged by the shop."""

    TYPE: ClassVar[str] = "set-payment-request-forwarded"
    VERSION: ClassVar[int] = 1
    txn_id: str
    original: bytes


@message
@dataclass(frozen=True)
class ApprovalResponse:
    """⑫: gateway → shop → wallet; the result of the settlement host's processing."""

    TYPE: ClassVar[str] = "set-approval-response"
    VERSION: ClassVar[int] = 1
    txn_id: str
    wallet_id: str
    shop_id: str
    approved: bool
    reason: str
    amount: Money
    auth_code: str = ""


@message
@dataclass(frozen=True)
class ForwardedApproval:
    """⑫ shop → wallet: the gateway's signed envelope, carried unchanged by the shop."""

    TYPE: ClassVar[str] = "set-approval-forwarded"
    VERSION: ClassVar[int] = 1
    txn_id: str
    wallet_id: str
    original: bytes


@message
@dataclass(frozen=True)
class CARegistration:
    """Enrolment: terminal → relay → CA. Card data sealed to the CA by the relay on receipt."""

    TYPE: ClassVar[str] = "ca-registration"
    VERSION: ClassVar[int] = 1
    request_id: str
    user_id: str
    wallet_id: str
    brand: str
    card_sealed: bytes


@message
@dataclass(frozen=True)
class CAContents:
    """CA → relay: contents for the terminal about the enrolment (claim 13: converted)."""

    TYPE: ClassVar[str] = "ca-contents"
    VERSION: ClassVar[int] = 1
    request_id: str
    html: str


@message
@dataclass(frozen=True)
class AuthenticationInformation:
    """CA → relay → wallet (claim 12): the certificate and the card, sealed to the wallet;
    the relay forwards it and never shows it to the terminal."""

    TYPE: ClassVar[str] = "ca-authentication-information"
    VERSION: ClassVar[int] = 1
    request_id: str
    wallet_id: str
    certificate: Certificate
    card_sealed: bytes  # sealed to the wallet server
    signing_key_sealed: bytes  # the user's new payment key, sealed to the wallet server
    forwarded_by: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@message
@dataclass(frozen=True)
class TerminalTraffic:
    """One terminal ⇄ relay exchange, recorded on the relay's own topic keyed by terminal
    session (what was asked, what kind of page answered). Never holds secrets."""

    TYPE: ClassVar[str] = "relay-terminal-traffic"
    VERSION: ClassVar[int] = 1
    session: str
    direction: Literal["request", "page"]
    path: str
    kind: str
    profile: str
    txn_id: str = ""
    size: int = 0
