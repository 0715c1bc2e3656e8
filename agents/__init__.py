"""One module per actor of the payment protocols. Each exposes:

- ``ACTORS``: the key-set identities its worker signs as (a shop worker may serve many shops);
- ``register(ctx)``: attach its faust agents and timers to the worker's app.
"""

from __future__ import annotations

AGENTS: dict[str, str] = {
    "settlement": "agents.settlement.agent",
    "issuer": "agents.issuer.agent",
    "shop": "agents.shop.agent",
    "terminal": "agents.terminal.agent",
    "wallet": "agents.wallet.agent",
    "gateway": "agents.gateway.agent",
    "ca": "agents.ca.agent",
    "relay": "agents.relay.agent",
}
