"""What a (master) server wallet does with a wake-up it is asked to settle (seed 004,
claims 8–13, Ex 7–12): a pure decision.

R-M1: the master first checks whether it holds a certificate for a wanted brand for this
user; if it does it settles itself and no slave is involved. Only otherwise, in this order
([IMPL]: the patent describes each source alone; a master configured with several uses the
first that applies):

1. brand info the master holds (61b, Ex 7 / Ex 8): proxy through the virtual module, or fetch
   the slave's certificate and settle itself (``strategy``: ``proxy`` or ``certificate``);
2. slave brand info the client's module attached (63b, Ex 11): proxy;
3. slave info the master holds (62b, Ex 9): the user picks a slave, even if there is one;
4. slave info the client's module attached (64b, Ex 12): the user picks a slave;
5. ``ask_address`` (Ex 10): the user types the slave's address;
6. otherwise unroutable: ``NO_SERVER_FOR_BRAND`` (R-M10).

Client-supplied slave information (63b, 64b) and typed addresses are untrusted (spec §3,
R-X4): a slave not on the master's ``allow`` list is never followed; it is dropped from the
candidates and the decision says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kessai.errors import ConfigError
from protocols.multiwallet import match_brand

NO_SERVER_FOR_BRAND = "NO_SERVER_FOR_BRAND"
SLAVE_NOT_ALLOWED = "SLAVE_NOT_ALLOWED"
SLAVE_TIMEOUT = "SLAVE_TIMEOUT"


@dataclass(frozen=True)
class MasterConfig:
    """A master's configuration for one client (from its key file's ``master``)."""

    slave_brands: dict[str, list[str]] = field(default_factory=dict)  # 61b
    slave_info: list[str] = field(default_factory=list)  # 62b
    allow: list[str] = field(default_factory=list)  # slaves it may follow
    strategy: Literal["proxy", "certificate"] = "proxy"  # Ex 7 or Ex 8
    ask_address: bool = False  # Ex 10
    prompt_timeout_ms: int = 120_000
    # [IMPL] Ex 8: how long the master waits for the slave's certificate before the wake-up
    # is unroutable (SLAVE_TIMEOUT). A proxied settlement has no such deadline: the slave may
    # have settled already, and the settlement server's own order lifetime ends the purchase.
    certificate_timeout_ms: int = 30_000

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> MasterConfig:
        strategy = str(raw.get("strategy", "proxy"))
        if strategy not in ("proxy", "certificate"):
            raise ConfigError(f"master strategy must be proxy or certificate, not {strategy!r}")
        return cls({k: list(v) for k, v in (raw.get("slave_brands") or {}).items()},
                   list(raw.get("slave_info", [])), list(raw.get("allow", [])),
                   strategy, bool(raw.get("ask_address", False)),  # type: ignore[arg-type]
                   int(raw.get("prompt_timeout_ms", 120_000)),
                   int(raw.get("certificate_timeout_ms", 30_000)))


@dataclass(frozen=True)
class SettleSelf:
    brand: str
    reason: str


@dataclass(frozen=True)
class ViaSlave:
    slave: str
    brand: str
    action: Literal["proxy", "certificate"]
    reason: str


@dataclass(frozen=True)
class AskUser:
    kind: Literal["slave", "address"]
    candidates: list[str]
    reason: str


@dataclass(frozen=True)
class NoServer:
    reason: str
    detail: str


MasterDecision = SettleSelf | ViaSlave | AskUser | NoServer


def decide(wanted: Sequence[str], holds: Sequence[str], cfg: MasterConfig | None,
           attached_brands: Mapping[str, Sequence[str]], attached_info: Sequence[str]
           ) -> MasterDecision:
    """The master's move for a wake-up naming ``wanted`` brands, holding certificates for
    ``holds`` for this user."""
    mine = match_brand(wanted, {"self": holds})
    if mine is not None:
        return SettleSelf(mine[0], f"holds the {mine[0]} certificate")
    if cfg is None:
        return NoServer(NO_SERVER_FOR_BRAND, "no certificate for the brand and no slaves")
    held = match_brand(wanted, cfg.slave_brands)
    if held is not None:
        brand, able = held
        return ViaSlave(able[0], brand, cfg.strategy,
                        f"master-held brand info: {able[0]} settles {brand}")
    refused: list[str] = []
    offered = {s: b for s, b in attached_brands.items() if s in cfg.allow}
    refused += [s for s in attached_brands if s not in cfg.allow]
    attached = match_brand(wanted, offered)
    if attached is not None:
        brand, able = attached
        return ViaSlave(able[0], brand, "proxy",
                        f"client-supplied brand info: {able[0]} settles {brand}")
    if cfg.slave_info:
        return AskUser("slave", list(cfg.slave_info), "master-held slave info")
    listed = [s for s in attached_info if s in cfg.allow]
    refused += [s for s in attached_info if s not in cfg.allow]
    if listed:
        return AskUser("slave", listed, "client-supplied slave info")
    if cfg.ask_address:
        return AskUser("address", [], "no slave info: the user types the slave's address")
    if refused:
        return NoServer(SLAVE_NOT_ALLOWED,
                        f"client-supplied slaves not on the allow-list: {', '.join(refused)}")
    return NoServer(NO_SERVER_FOR_BRAND, "neither the master nor a known slave settles it")


def on_answer(kind: str, candidates: Sequence[str], choice: str, allow: Sequence[str]
              ) -> str | None:
    """The slave a user's answer designates, or ``None`` (ignored): a slave choice must have
    been offered; a typed address must be on the allow-list (untrusted input)."""
    if kind == "slave":
        return choice if choice in candidates else None
    address = choice.strip()
    return address if address in allow else None
