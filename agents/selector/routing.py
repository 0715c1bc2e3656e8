"""The selector's routing decisions (seed 004 claims 1–6, Ex 1–5): pure functions over values.

A wake-up is routed to exactly one wallet connection module, or declared unroutable with a
reason; the shell (:mod:`agents.selector.agent`) carries the decision out. Modes
(``ClientConfig.mode``, per client, R-C6):

- ``preselect`` (Ex 1, claim 2): the module the user chose before payment;
- ``ask`` (Ex 2, claim 3): the user chooses on arrival (a prompt, held until answered);
- ``brand-selector`` (Ex 3, claim 4): brand info held by the selector;
- ``brand-module`` (Ex 4, claim 5): brand info each module published;
- ``brand-live`` (Ex 5, claim 6): brand info asked of the server wallets per wake-up.

[IMPL] choices the patent leaves open (spec §4), each configurable per client:
``no_preselection`` (``ask`` or ``unroutable``, default ``unroutable``: R-S2),
``several`` when several modules settle the brand (``first`` by configured priority, or
``ask`` the user among those only, R-S7/R-S9; default ``ask``), ``prompt_timeout_ms``
(default 120 s) and ``query_timeout_ms`` (default 5 s).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kessai.errors import ConfigError
from protocols.multiwallet import check_pairing, choice_ok, designated_without_asking, match_brand

Mode = Literal["preselect", "ask", "brand-selector", "brand-module", "brand-live"]
MODES: tuple[str, ...] = ("preselect", "ask", "brand-selector", "brand-module", "brand-live")

# Reasons a wake-up is unroutable (the unroutable topic and the routing events carry them).
NO_PRESELECTION = "NO_PRESELECTION"
NO_MODULE_FOR_BRAND = "NO_MODULE_FOR_BRAND"
NO_BRAND = "NO_BRAND"
USER_TIMEOUT = "USER_TIMEOUT"
USER_CANCEL = "USER_CANCEL"
UNKNOWN_CLIENT = "UNKNOWN_CLIENT"
BAD_WAKEUP = "BAD_WAKEUP"


@dataclass(frozen=True)
class ClientConfig:
    """One client's selector: its modules (module → paired server wallet, in priority order),
    its mode, and the brand info the selector holds itself (Ex 3: server → brands)."""

    client_id: str
    mode: str
    modules: dict[str, str]
    brands: dict[str, list[str]] = field(default_factory=dict)
    no_preselection: Literal["ask", "unroutable"] = "unroutable"
    several: Literal["first", "ask"] = "ask"
    prompt_timeout_ms: int = 120_000
    query_timeout_ms: int = 5_000

    @classmethod
    def parse(cls, client_id: str, raw: Mapping[str, Any]) -> ClientConfig:
        """Validate one client's configuration eagerly.

        Raises:
            ConfigError: an unknown mode or [IMPL] option, or modules not paired one to one
                with server wallets (claim 1, R-C1).
        """
        mode = str(raw.get("mode", "preselect"))
        if mode not in MODES:
            raise ConfigError(f"selector client {client_id}: unknown mode {mode!r} "
                              f"(one of {', '.join(MODES)})")
        modules_raw = raw.get("modules") or {}
        pairs = {m: ([s] if isinstance(s, str) else list(s)) for m, s in modules_raw.items()}
        if len(pairs) < 1:
            raise ConfigError(f"selector client {client_id}: no wallet connection modules")
        check_pairing(pairs)
        no_pre = str(raw.get("no_preselection", "unroutable"))
        several = str(raw.get("several", "ask"))
        if no_pre not in ("ask", "unroutable") or several not in ("first", "ask"):
            raise ConfigError(f"selector client {client_id}: no_preselection must be ask or "
                              "unroutable, several first or ask")
        return cls(client_id, mode, {m: s[0] for m, s in pairs.items()},
                   {k: list(v) for k, v in (raw.get("brands") or {}).items()},
                   no_pre, several,  # type: ignore[arg-type]
                   int(raw.get("prompt_timeout_ms", 120_000)),
                   int(raw.get("query_timeout_ms", 5_000)))


# -- decisions (effects as data) -------------------------------------------------------------

@dataclass(frozen=True)
class Deliver:
    module: str
    candidates: list[str]
    reason: str


@dataclass(frozen=True)
class Ask:
    candidates: list[str]
    reason: str


@dataclass(frozen=True)
class Query:
    servers: list[str]


@dataclass(frozen=True)
class Unroutable:
    candidates: list[str]
    reason: str


Decision = Deliver | Ask | Query | Unroutable


def decide(cfg: ClientConfig, wanted: Sequence[str], preselected: str | None,
           published: Mapping[str, Sequence[str]], answers: Mapping[str, Sequence[str]] | None
           ) -> Decision:
    """Where a wake-up naming the brands ``wanted`` goes, in the client's mode.

    ``preselected``: the stored choice (Ex 1); ``published``: module → brands the modules
    published (Ex 4); ``answers``: server → brands the server wallets answered for this
    wake-up (Ex 5), ``None`` before the question was asked.
    """
    every = list(cfg.modules)
    if cfg.mode == "preselect":
        chosen = designated_without_asking(every, preselected) if preselected else None
        if chosen is not None and chosen == preselected:
            return Deliver(chosen, every, "preselected")
        if cfg.no_preselection == "ask":
            return Ask(every, NO_PRESELECTION)
        return Unroutable(every, NO_PRESELECTION)
    if cfg.mode == "ask":
        return Ask(every, "user-choice")
    if cfg.mode == "brand-selector":
        held = {m: cfg.brands.get(s, []) for m, s in cfg.modules.items()}
        return by_brand(cfg, wanted, held, "brand info held by the selector")
    if cfg.mode == "brand-module":
        return by_brand(cfg, wanted, {m: list(published.get(m, [])) for m in every},
                        "brand info published by the modules")
    if answers is None:
        return Query(list(dict.fromkeys(cfg.modules.values())))
    live = {m: list(answers.get(s, [])) for m, s in cfg.modules.items()}
    return by_brand(cfg, wanted, live,
                    f"brand info the server wallets answered ({len(answers)} of "
                    f"{len(set(cfg.modules.values()))})")


def by_brand(cfg: ClientConfig, wanted: Sequence[str], brands_of: Mapping[str, Sequence[str]],
             source: str) -> Decision:
    """The module that settles the first wanted brand; only matching modules are ever
    offered to the user (R-S7), and no match is unroutable (R-S10)."""
    if not wanted:
        return Unroutable(list(brands_of), NO_BRAND)
    match = match_brand(wanted, brands_of)
    if match is None:
        return Unroutable(list(brands_of), NO_MODULE_FOR_BRAND)
    brand, able = match
    if len(able) == 1 or cfg.several == "first":
        return Deliver(able[0], able, f"brand {brand} ({source})")
    return Ask(able, f"several modules settle brand {brand}")


def on_reply(candidates: Sequence[str], choice: str, cancel: bool) -> Deliver | Unroutable | None:
    """The user's answer to a module prompt: the chosen module, a cancel, or ``None`` for a
    choice that was not offered (ignored: the prompt stays open)."""
    if cancel:
        return Unroutable(list(candidates), USER_CANCEL)
    if choice_ok(choice, candidates):
        return Deliver(choice, list(candidates), "user-choice")
    return None
