"""Relay worker: the relay server 40 of seeds 000/001 between limited terminals (phones, game
machines) and the shop, the server wallets, the payment gateway and the CA (docs/relay.md).

This module composes the relay's flows and declares what each takes from the bus:

- ``setwallet``: the main flow of FIG. 3 (a server wallet pays, claims 1–11, 14–16);
- ``twosided``: the two-sided settlement of seed 003 for limited terminals;
- ``enrol``: enrolment with the CA (claims 12–13);
- ``http``: the terminal-facing HTTP server 43.

Every handler runs behind the runtime's door, which dead-letters a record of another type or
from another sender kind before the handler runs, and one whose named party (``shop_id``,
``wallet_id``) is not its signer. Every terminal ⇄ relay exchange is recorded on
``kessai.relay.terminal-traffic`` (no secrets).
"""

from __future__ import annotations

from agents.relay import http
from agents.relay.config import RelayConfig
from agents.relay.enrol import Enrolment
from agents.relay.profiles import load_profiles
from agents.relay.setwallet import Relay
from agents.relay.store import RelayDB
from agents.relay.twosided import TwoSided
from agents.relay.waiting import Waiters
from kessai.runtime import AgentContext
from schemas.relay import AuthenticationInformation, CAContents, PaymentInformation, WalletContents
from schemas.v1 import OrderStatus, PaymentRequest, PaymentResult

ACTORS: list[str] = ["relay"]

PAYMENT_INFORMATION = "kessai.relay.payment-information"
WALLET_CONTENTS = "kessai.relay.wallet-contents"
ORDER_STATUS = "kessai.order-status"
CA_CONTENTS = "kessai.relay.ca-contents"
WAKEUPS = "kessai.wakeups.relay"  # only the wake-ups of orders the relay placed
PAYMENT_RESULTS = "kessai.payment-results"


def declare(ctx: AgentContext, relay: Relay, two_sided: TwoSided, enrolment: Enrolment) -> None:
    """What the relay takes from the bus, from whom."""
    # FIG. 3: ⑤ from the shop that signs it; ⑦ … ⑬ from the wallet server that signs them; a
    # shop's refusal of the procedure (NOT_PAID) from that shop.
    ctx.handle(PAYMENT_INFORMATION, relay.on_payment_information, types=(PaymentInformation,),
               senders=("shop",), sender_is="shop_id")
    ctx.handle(WALLET_CONTENTS, relay.on_wallet_contents, types=(WalletContents,),
               senders=("wallet",), sender_is="wallet_id")
    ctx.handle(ORDER_STATUS, relay.on_order_status, types=(OrderStatus,), senders=("shop",),
               sender_is="shop_id")
    # Enrolment: the CA's contents for the terminal and the certificate for the wallet.
    ctx.handle(CA_CONTENTS, enrolment.on_ca_contents, types=(CAContents,), senders=("ca",))
    ctx.handle(CA_CONTENTS, enrolment.on_ca_contents, types=(AuthenticationInformation,),
               senders=("ca",))
    # Seed 003: M4 from the shop that signs it, M9 from the settlement server.
    ctx.handle(WAKEUPS, two_sided.on_payment_request, types=(PaymentRequest,),
               senders=("shop",), sender_is="shop_id")
    ctx.handle(PAYMENT_RESULTS, two_sided.on_payment_result, types=(PaymentResult,),
               senders=("settlement",))


def register(ctx: AgentContext) -> None:
    """Declare the relay's handlers (Web client 41's side) and serve its HTTP server 43; the
    session store closes after the server when the worker stops."""
    load_profiles()  # configuration errors stop the worker at start, not at the first page
    config = RelayConfig.from_env()
    db = RelayDB(ctx.settings.data_dir / "relay.sqlite",
                 synchronous=ctx.settings.sqlite_synchronous)
    waiters = Waiters(ctx.clock, config.keepalive_ms)
    relay = Relay(ctx, db, config, waiters)
    two_sided = TwoSided(ctx, db, config, waiters)
    enrolment = Enrolment(ctx, db, config, waiters)
    declare(ctx, relay, two_sided, enrolment)
    http.register(ctx, http.Front(relay, two_sided, enrolment), config, on_stopped=db.close)
