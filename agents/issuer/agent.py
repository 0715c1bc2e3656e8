"""The FI host agent: kessai.authorizations → approval check → kessai.authorization-results.

Seed 003 [0017]: the settlement server settles with the FI host, which does the approval check
(credit check for cards, balance check for bank accounts) and collection. Spec R23: the FI side
dedupes on the join key, so a re-asked or redelivered authorization never charges twice; the
ledger answers a repeat with the stored decision. Spec R25: the answer is approved or declined
with a reason, which the settlement server records as APPROVED / DECLINED.

Steps for every record:
1. The runtime's door verified the envelope (bad bytes, signatures, staleness → dead letters)
   and admitted only an ``Authorization`` from the settlement server (seed 003) or the payment
   gateway (seeds 000/001), as declared below.
2. Each sender owns its join keys (the gateway's are ``gw/<txn id>``) and the record must be
   keyed by its join key; anything else is dead-lettered. Dead letters (not audit events)
   because they keep the original record, so an operator can inspect or replay it: nothing is
   lost (DESIGN §3).
3. The account info is opened with the issuer's sealing key, bound to this join key. If it
   cannot be opened the order is declined ``unreadable_account``; the worker keeps running.
4. The ledger decides once per join key and the decision goes back to the settlement server.
"""

from __future__ import annotations

import logging
from typing import Any

import msgpack

from agents.issuer import credit, credit2
from agents.issuer.ledger import LazyLedger
from agents.issuer.rules import UNREADABLE_ACCOUNT, Account
from kessai import authenticators, crypto
from kessai.errors import ConfigError, SealError
from kessai.runtime import AgentContext, Inbound
from schemas.v1 import Authorization, AuthorizationResult

log = logging.getLogger("kessai.issuer")

ACTORS = ["issuer"]
AUTHORIZATIONS = "kessai.authorizations"
RESULTS = "kessai.authorization-results"
LEDGER_FILE = "issuer.sqlite"
TRUSTED_SENDERS = frozenset({"settlement", "gateway"})


def admission_problem(message: Any, sender: str, correlation_id: str) -> str | None:
    """Why a verified record is not an authorization this issuer may act on (None: it is)."""
    if not isinstance(message, Authorization):
        return "unexpected_type"
    if sender not in TRUSTED_SENDERS:
        return "unauthorized_sender"
    # Each sender owns its join keys (the gateway's are "gw/<txn id>"), so neither can take
    # the ledger's one decision for an order of the other.
    if (sender == "gateway") != message.join_key.startswith("gw/"):
        return "foreign_join_key"
    # The result is keyed by join_key; a mismatch would answer a different order.
    if message.join_key != correlation_id:
        return "join_key_mismatch"
    return None


def open_account(seal_private: bytes, msg: Authorization) -> tuple[str, str] | None:
    """The (pan, expiry) sealed to the issuer for this order, or None if it cannot be read."""
    try:
        raw = crypto.open_sealed(seal_private, msg.account_sealed,
                                 authenticators.issuer_account_context(msg.join_key))
        return authenticators.unpack_account(raw)
    # Anyone can seal to the issuer's public key, so well-sealed garbage is possible too.
    except (SealError, msgpack.UnpackException, ValueError, KeyError, TypeError):
        return None


def register(ctx: AgentContext) -> None:
    keys = ctx.actor_keys()
    if keys.seal_private is None:
        raise ConfigError(f"the issuer's key file has no sealing key; recreate the key set "
                          f"with 'kessai keys init --force {ctx.settings.keys_dir}'")
    seal_private = keys.seal_private
    accounts = [Account.from_record(r) for r in keys.secrets.get("accounts", [])]
    ledger = LazyLedger(ctx.settings.data_dir / LEDGER_FILE, accounts,
                        synchronous=ctx.settings.sqlite_synchronous)

    async def authorize(inbound: Inbound) -> None:
        msg = inbound.message
        problem = admission_problem(msg, inbound.sender, inbound.opened.envelope.correlation_id)
        if problem is not None:
            await ctx.dead_letter(problem, f"{inbound.opened.envelope.type} from {inbound.sender}",
                                  inbound.topic, inbound.partition, inbound.offset, inbound.raw,
                                  inbound.key)
            return
        account = open_account(seal_private, msg)
        if account is None:
            await ctx.audit(UNREADABLE_ACCOUNT, msg.join_key,
                            "account info sealed to the issuer cannot be opened")
        pan, expiry = account if account is not None else (None, None)
        decision = await (await ledger.get()).authorize(
            msg.join_key, pan, expiry, msg.amount, ctx.clock.now_ms())
        log.info("issuer: %s %s (%s)", msg.join_key,
                 "approved" if decision.approved else "declined", decision.reason)
        await ctx.emit(RESULTS, AuthorizationResult(msg.join_key, decision.approved,
                                                    decision.reason, decision.auth_code),
                       msg.join_key)

    ctx.handle(AUTHORIZATIONS, authorize, types=(Authorization,), senders=TRUSTED_SENDERS)
    credit.declare(ctx, ledger, seal_private)  # seed 002's credit requests, same ledger
    credit2.declare(ctx, ledger, seal_private)  # seed 002 embodiment 2: encrypted cards

    @ctx.on_start
    async def open_ledger() -> None:
        # Open early so a bad data directory shows at start; the agent would open it anyway.
        await ledger.get()

    @ctx.on_stop
    async def close_ledger() -> None:
        await ledger.close()
