"""User authentication before settlement (seed 003 A18; cl. 10, 12, 13, 15; spec R18/R19).

Checks a 2nd request on its own, before it meets its 1st, with the settlement server's key
material: the user's registered method must be the one used, and it must succeed. Also checks
that there is an account to charge: a sealed account that opens for this order, or an account
the settlement server holds for the user (cl. 15).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents.settlement.join import SecondProblem
from kessai import authenticators, crypto
from kessai.errors import BadSignature, ConfigError, SealError
from kessai.handlers import actor_kind
from kessai.keys import ActorKeys, Registry, user_actor
from schemas.v1 import SecondRequest

TERMINAL_PRINCIPALS = frozenset({"terminal", "relay"})


@dataclass(frozen=True)
class SettlementSecrets:
    seal_private: bytes
    users: dict[str, dict[str, Any]]  # user_id -> {auth, password_salt, password_hash}
    held_accounts: dict[str, dict[str, str]]  # user_id -> {pan, expiry}
    shop_mac: dict[str, str]
    user_mac: dict[str, str]

    @classmethod
    def of(cls, keys: ActorKeys) -> SettlementSecrets:
        """The settlement server's secrets from its key file (also what an audit recomputes
        user authentication with)."""
        if keys.seal_private is None:
            raise ConfigError(f"{keys.actor} has no sealing key")
        s = keys.secrets
        return cls(keys.seal_private, s["users"], s["held_accounts"], s["shop_mac"],
                   s["user_mac"])


def check_second(second: SecondRequest, sender: str, key: str, registry: Registry,
                 secrets: SettlementSecrets) -> SecondProblem:
    record = secrets.users.get(second.user_id)
    if record is None or record.get("auth") != second.auth_method:
        return "auth"  # unknown user, or a method other than the one agreed in advance
    if not _authenticated(second, sender, key, record, registry, secrets):
        return "auth"
    if second.account_sealed is None:
        return None if second.user_id in secrets.held_accounts else "account"
    try:
        crypto.open_sealed(secrets.seal_private, second.account_sealed,
                           authenticators.account_context(key))
    except SealError:
        return "account"
    return None


def _authenticated(second: SecondRequest, sender: str, key: str, record: dict[str, Any],
                   registry: Registry, secrets: SettlementSecrets) -> bool:
    method = second.auth_method
    if method == "signature":  # cl. 10: key looked up by the user identifier
        known = registry.signing_key(user_actor(second.user_id))
        if known is None or second.user_authenticator is None:
            return False
        try:
            crypto.verify(known[1], second.user_authenticator,
                          authenticators.second_signing_bytes(second))
        except BadSignature:
            return False
        return True
    if method == "channel":  # cl. 12: the signed envelope of an authenticated terminal session
        # Seed 004: a server wallet speaks only for the users it holds a wallet of.
        return sender in TERMINAL_PRINCIPALS or (
            actor_kind(sender) == "wallet" and sender in record.get("wallets", ()))
    if method == "password":  # cl. 13: user id + secret, stored only as a salted hash
        if second.password_sealed is None or "password_hash" not in record:
            return False
        try:
            password = crypto.open_sealed(secrets.seal_private, second.password_sealed,
                                          authenticators.password_context(key))
        except SealError:
            return False
        return crypto.password_ok(password.decode("utf-8", "replace"),
                                  bytes.fromhex(record["password_salt"]),
                                  bytes.fromhex(record["password_hash"]))
    return False


def account_for(second: SecondRequest, key: str, secrets: SettlementSecrets) -> tuple[str, str]:
    """The account to charge: from the 2nd request, or held for the user (cl. 14/15, R19/R21).

    Never from the 1st request (erratum E1).
    """
    if second.account_sealed is not None:
        raw = crypto.open_sealed(secrets.seal_private, second.account_sealed,
                                 authenticators.account_context(key))
        return authenticators.unpack_account(raw)
    held = secrets.held_accounts[second.user_id]
    return held["pan"], held["expiry"]
