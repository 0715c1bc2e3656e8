"""HPKE ``info`` strings for what is sealed to a wallet server. The relay (login passwords)
and the CA (enrolment) seal with these; the wallet opens with its own sealing key
(``ctx.registry.sealing[wallet_id]``).

Plaintexts:

- ``WalletLogin.password_sealed``: the password as UTF-8, sealed with
  ``wallet_password_context(txn_id)``;
- ``AuthenticationInformation.card_sealed``: ``kessai.authenticators.pack_account(pan,
  expiry)``, and ``signing_key_sealed``: the user's raw 32-byte Ed25519 payment key, both
  sealed with ``wallet_enrol_context(request_id)``.

Binding the context to the transaction (or enrolment request) means a sealed box copied into
another transaction does not open (spec R43: the relay only forwards, it cannot reuse).
"""

from __future__ import annotations


def wallet_password_context(txn_id: str) -> bytes:
    """For the login password of one payment procedure (⑨→⑩)."""
    return b"kessai/wallet-password/v1\x00" + txn_id.encode()


def wallet_enrol_context(request_id: str) -> bytes:
    """For the card and payment key the CA sends to the wallet in one enrolment (claim 12)."""
    return b"kessai/wallet-enrol/v1\x00" + request_id.encode()


__all__ = ["wallet_enrol_context", "wallet_password_context"]
