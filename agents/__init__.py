"""One package per actor of the payment protocols; its ``agent`` module declares itself:

- who it is: ``ACTORS``, the key-set identities a service signs as (``["settlement"]``), or
  ``KIND``, the kind of actor it serves — every such actor of the key set (``"shop"``: one shop
  server serves every shop, [0016]; ``"wallet"``);
- ``register(ctx)``: its handlers (``ctx.handle``), tables (``ctx.table``), timers
  (``ctx.every``) and start/stop hooks — declarations only (``docs/architecture.md``).

Agents never import each other (shared protocol pieces live in ``protocols/``) nor the
simulator (``sim/``). This table is what the CLI composes; the runtime knows agents only by
the module it is handed.
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
    # Seed 004: the multi-wallet selector, wallet connection modules, server wallets' side.
    "selector": "agents.selector.agent",
    "wum": "agents.wum.agent",
    "serverwallet": "agents.serverwallet.agent",
    # Seed 002: the mobile wake-up payment.
    "paygate": "agents.paygate.agent",
    "direction": "agents.direction.agent",
    "pos": "agents.pos.agent",
    "device": "agents.device.agent",
    "webshop": "agents.webshop.agent",  # seed 002 V3: the web shop in place of the POS
    "archiver": "agents.archiver.agent",  # issue 10: the audit archive of every topic
}
