"""The wallet server's tagged contents for the relay (⑦, conditions, confirming, ⑬).

The relay's contents converter fills its templates from ``<Tag>value</Tag>`` items
(seed 000 FIG. 5, spec R21–R22), so every page here is a flat run of such items. Values are
XML-escaped; amounts are ``str(Money)`` ("1155 JPY"), so the converted page shows exactly
``PaymentInformation.amount`` (R27; the wallet refuses payment information whose amount is not
its content's total). Card numbers never appear here: a card is named by its
brand.

Pure functions of their inputs: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable

# The tagged form the relay's templates read (FIG. 5 (A)): Item/Product/UnitCost/Quant, Tax,
# Total, TxnId.
from protocols.contents import tag, tagged_payment_information
from schemas.relay import ApprovalResponse, PaymentInformation

METHODS: tuple[str, ...] = ("lump-sum", "installments-3")  # payment methods ([d:202])
__all__ = ["METHODS", "approval", "conditions", "confirming", "declined", "error", "login",
           "login_failed"]


def _header(wallet_id: str, info: PaymentInformation) -> str:
    return (tag("Wallet", wallet_id) + tag("Shop", info.shop_id) + tag("TxnId", info.txn_id)
            + tag("Total", info.amount))


def login(wallet_id: str, info: PaymentInformation) -> str:
    """⑦: asks the user to log in to the personal wallet ([d:196])."""
    return (tag("Page", "login") + _header(wallet_id, info)
            + tag("Prompt", "Log in to your wallet to pay")
            + tag("Input", "user_name") + tag("Input", "password"))


def login_failed(wallet_id: str, info: PaymentInformation, attempts_left: int) -> str:
    """R11: a failed login goes back to the login page; nothing else happens."""
    return (login(wallet_id, info) + tag("Error", "user name or password is wrong")
            + tag("AttemptsLeft", attempts_left))


def conditions(wallet_id: str, info: PaymentInformation, brands: Iterable[str],
               methods: Iterable[str] = METHODS, error: str = "") -> str:
    """The payment conditions to agree: card brand and payment method ([d:202], R12)."""
    return (tag("Page", "conditions") + _header(wallet_id, info)
            + "".join(tag("Brand", b) for b in brands)
            + "".join(tag("Method", m) for m in methods)
            + (tag("Error", error) if error else ""))


def confirming(info: PaymentInformation, brand: str, method: str) -> str:
    """The confirming information (claims 5, 7): at least the amount and the identifier."""
    return (tag("Page", "confirming")
            + tagged_payment_information(info.content, info.txn_id)
            + tag("Brand", brand) + tag("Method", method))


def approval(response: ApprovalResponse) -> str:
    """⑬: the approval response, "showing the proper termination" ([d:206-208], R17)."""
    return (tag("Result", "approved") + tag("Total", response.amount)
            + tag("TxnId", response.txn_id) + tag("AuthCode", response.auth_code)
            + tag("Message", "Payment completed"))


def declined(response: ApprovalResponse) -> str:
    """⑬, negative (R16, R47): the payment did not go through, and why."""
    return (tag("Result", "declined") + tag("Reason", response.reason)
            + tag("Total", response.amount) + tag("TxnId", response.txn_id)
            + tag("Message", "Payment failed"))


def error(txn_id: str, reason: str) -> str:
    """R47: any other negative path (unknown session, bad payment information, ...)."""
    return tag("Result", "error") + tag("Reason", reason) + tag("TxnId", txn_id)
