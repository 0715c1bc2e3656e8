"""Gateway worker: the payment GW 70 of seeds 000/001 ([d:161-164, 206]; spec R15, R16, R41).

Protocol, top to bottom, per transaction:

1. ⑪   ``ForwardedPaymentRequest`` from a shop on ``kessai.gateway.payment-requests``: the
       wallet's signed ``SetPaymentRequest``, carried unchanged. A record that does not hold
       one cannot be answered and is dead-lettered (another type or sender already is, by
       the runtime's door: see ``declare``).
2. R15 The request analyzing section 71 checks (``checks.examine``): the shop's signed payment
       information and that the forwarding shop is its shop (R42), the user's certificate
       (issued by the CA, not expired, not revoked), the user's signature with the
       certificate's key, the settlement host for the card brand, the card sealed to the
       gateway. Any failure → ``ApprovalResponse(approved=False, reason)`` and no
       authorization at all (R41).
3.     The payment instructing section 72 → ``Authorization`` with join key ``gw/<txn id>``,
       the amount from the shop's payment information and the card sealed to the chosen
       settlement host, on ``kessai.authorizations``.
4. ⑫   The host's ``AuthorizationResult`` (keys ``gw/…`` on ``kessai.authorization-results``;
       other keys are the settlement server's orders) from the host that was asked
       → ``ApprovalResponse`` on ``kessai.shop.approvals``, for the shop to carry to the wallet.

Idempotent: per txn the gateway records the accepted request (``store``). A redelivered
request for a decided txn gets the stored response again and no authorization; one still
waiting asks the host again with the same join key, which the host answers from its own record
without charging twice (seed 003 R23). A different request for a txn already taken is refused.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from agents.gateway import checks
from agents.gateway.checks import Accepted, Declined, NotARequest
from agents.gateway.routing import GatewayPolicy
from agents.gateway.store import GatewayStore, Txn
from kessai import authenticators, crypto
from kessai.errors import ConfigError
from kessai.runtime import AgentContext, Inbound
from schemas.relay import ApprovalResponse, ForwardedPaymentRequest
from schemas.v1 import Authorization, AuthorizationResult

log = logging.getLogger("kessai.gateway")

ACTORS = ["gateway"]

PAYMENT_REQUESTS = "kessai.gateway.payment-requests"
AUTHORIZATIONS = "kessai.authorizations"
AUTH_RESULTS = "kessai.authorization-results"
APPROVALS = "kessai.shop.approvals"
STORE_FILE = "gateway.sqlite"
JOIN_PREFIX = "gw/"


def gateway_join_key(txn_id: str) -> str:
    """The authorization's join key: apart from seed 003's ``<shop>/<order>`` keys."""
    return f"{JOIN_PREFIX}{txn_id}"


@dataclass
class Gateway:
    ctx: AgentContext
    store: GatewayStore
    policy: GatewayPolicy
    seal_private: bytes

    # 1.–3. ⑪ in: check, then instruct the settlement host (or decline).
    async def on_payment_request(self, inbound: Inbound) -> None:
        forwarded: ForwardedPaymentRequest = inbound.message
        try:
            request, wallet_env = checks.admit(forwarded, self.ctx.registry)
        except NotARequest as exc:
            await self.ctx.dead_letter(exc.code, str(exc), inbound.topic, inbound.partition,
                                       inbound.offset, inbound.raw, inbound.key)
            return
        digest = hashlib.sha256(wallet_env.body).digest()
        stored = await self.store.get(request.txn_id)
        if stored is not None and stored.request_digest != digest:
            await self.ctx.audit("conflicting-request", request.txn_id,
                                 "another payment request for a txn the gateway holds")
            return
        if stored is not None and stored.decided:
            await self._respond(stored.response())  # a repeat: the same answer again
            return

        verdict = checks.examine(request, inbound.sender, self.ctx.registry, self.seal_private,
                                 self.ctx.clock.now_ms(), self.policy)
        if isinstance(verdict, Declined):
            if stored is not None:  # accepted earlier (e.g. the certificate expired since)
                log.info("gateway: txn %s awaits its host; repeat not re-asked (%s)",
                         request.txn_id, verdict.reason)
                return
            await self.ctx.audit("payment-declined", request.txn_id,
                                 f"{verdict.reason}: {verdict.detail}")
            await self._respond(ApprovalResponse(request.txn_id, request.wallet_id,
                                                 verdict.shop_id, False, verdict.reason,
                                                 verdict.amount))
            return

        txn = await self.store.claim(Txn(
            request.txn_id, gateway_join_key(request.txn_id), digest, request.wallet_id,
            verdict.info.shop_id, verdict.info.amount, verdict.host), self.ctx.clock.now_ms())
        if txn.request_digest != digest:
            return  # lost a race to another request for the txn (audited by its own path)
        if txn.decided:
            await self._respond(txn.response())
            return
        await self._authorize(txn, verdict)

    async def _authorize(self, txn: Txn, accepted: Accepted) -> None:
        host_public = self.ctx.registry.sealing[txn.host][1]
        sealed = crypto.seal(host_public,
                             authenticators.pack_account(accepted.pan, accepted.expiry),
                             authenticators.issuer_account_context(txn.join_key))
        log.info("gateway: txn %s of %s for %s → settlement host %s", txn.txn_id, txn.shop_id,
                 txn.amount, txn.host)
        await self.ctx.emit(AUTHORIZATIONS, Authorization(
            txn.join_key, txn.amount, f"payee:{txn.shop_id}", sealed), txn.join_key)

    # 4. ⑫ the settlement host's answer → the approval response, via the shop.
    async def on_authorization_result(self, inbound: Inbound) -> None:
        key = inbound.key.decode("utf-8", "replace") if inbound.key else ""
        if not key.startswith(JOIN_PREFIX):
            return  # a seed 003 order of the settlement server
        result: AuthorizationResult = inbound.message
        if result.join_key != key:
            await self.ctx.audit("unexpected-result", key,
                                 f"result for {result.join_key} keyed {key}")
            return
        txn = await self.store.by_join_key(key)
        if txn is None or inbound.sender != txn.host:
            await self.ctx.audit("unexpected-result", key,
                                 f"result from {inbound.sender} for no txn it was asked about")
            return
        decided = await self.store.decide(key, result.approved, result.reason,
                                          result.auth_code, self.ctx.clock.now_ms())
        assert decided is not None
        log.info("gateway: txn %s %s (%s)", decided.txn_id,
                 "approved" if decided.approved else "declined", decided.reason)
        await self._respond(decided.response())

    async def _respond(self, response: ApprovalResponse) -> None:
        await self.ctx.emit(APPROVALS, response, response.txn_id)


def declare(ctx: AgentContext, gateway: Gateway) -> None:
    """A shop forwards the wallet's payment request; the settlement host answers the
    authorization (actors of the issuer kind: the hosts the routing names)."""
    ctx.handle(PAYMENT_REQUESTS, gateway.on_payment_request, types=(ForwardedPaymentRequest,),
               senders=("shop",))
    ctx.handle(AUTH_RESULTS, gateway.on_authorization_result, types=(AuthorizationResult,),
               senders=("issuer",))


def register(ctx: AgentContext) -> None:
    """Declare the gateway's two handlers; its store opens on first use and closes when the
    worker stops."""
    keys = ctx.actor_keys("gateway")
    if keys.seal_private is None:
        raise ConfigError(f"the gateway's key file has no sealing key; recreate the key set "
                          f"with 'kessai keys init --force {ctx.settings.keys_dir}'")
    gateway = Gateway(ctx, GatewayStore(ctx.settings.data_dir / STORE_FILE,
                                               synchronous=ctx.settings.sqlite_synchronous),
                      GatewayPolicy.from_env(), keys.seal_private)
    declare(ctx, gateway)
    ctx.on_stop(gateway.store.close)
