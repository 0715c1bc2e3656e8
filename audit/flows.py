"""The flow audits besides the settlement join's (issue 10): which can run with the key set at
hand, each built from the key file of the agent whose decisions it recomputes."""

from __future__ import annotations

from collections.abc import Callable

from agents.issuer.rules import Account
from audit import gateway, issuer, paygate, relay, selector, wallet
from audit.decisions import FlowAudit
from kessai import keys
from kessai.errors import KessaiError
from kessai.keys import Registry
from kessai.settings import Settings

#: Topics whose whole history every audit reads, whatever the time range.
TOPICS = tuple(dict.fromkeys(gateway.TOPICS + wallet.TOPICS + relay.TOPICS + paygate.TOPICS
                             + selector.TOPICS + issuer.TOPICS))


def _gateway(settings: Settings, registry: Registry) -> FlowAudit:
    private = keys.load_actor(settings.keys_dir, "gateway").seal_private
    if private is None:
        raise KeyError("gateway")
    return gateway.GatewayAudit(registry, private)


def _wallet(settings: Settings, registry: Registry) -> FlowAudit:
    return wallet.WalletAudit(registry)


def _relay(settings: Settings, registry: Registry) -> FlowAudit:
    return relay.RelayAudit()


def _paygate(settings: Settings, registry: Registry) -> FlowAudit:
    cfg = keys.load_actor(settings.keys_dir, "paygate").secrets
    if "users" not in cfg:
        raise KeyError("paygate")
    return paygate.PaygateAudit.from_secrets(cfg)


def _selector(settings: Settings, registry: Registry) -> FlowAudit:
    return selector.SelectorAudit.from_secrets(
        keys.load_actor(settings.keys_dir, "selector").secrets)


def _issuer(settings: Settings, registry: Registry) -> FlowAudit:
    k = keys.load_actor(settings.keys_dir, "issuer")
    if k.seal_private is None:
        raise KeyError("issuer")
    return issuer.IssuerAudit([Account.from_record(r) for r in k.secrets.get("accounts", [])],
                              k.seal_private)


#: Agent name (as ``kessai worker`` and ``kessai audit shadow`` take it) → its flow audit.
BUILDERS: dict[str, Callable[[Settings, Registry], FlowAudit]] = {
    "gateway": _gateway, "wallet": _wallet, "relay": _relay, "paygate": _paygate,
    "selector": _selector, "issuer": _issuer}


def flow_audit(agent: str, settings: Settings, registry: Registry) -> FlowAudit | None:
    """``agent``'s flow audit, or None when the key set lacks what it needs (a key file, a
    sealing key, the tables)."""
    try:
        return BUILDERS[agent](settings, registry)
    except (KessaiError, KeyError, OSError, ValueError):
        return None


def flow_audits(settings: Settings, registry: Registry) -> tuple[list[FlowAudit], list[str]]:
    """Every flow audit the key set allows, and a note for each it does not."""
    out, missing = [], []
    for agent in BUILDERS:
        audit = flow_audit(agent, settings, registry)
        if audit is None:
            missing.append(agent)
        else:
            out.append(audit)
    notes = [f"the key set lacks what the {', '.join(missing)} decisions need (key file, "
             "sealing key or tables): those are not recomputed"] if missing else []
    return out, notes
