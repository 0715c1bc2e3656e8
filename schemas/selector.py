"""Version 1 of the multi-wallet selector messages (seed 004, JP 2000-026330, Oki).

The wake-up itself is seed 003's M4 ``PaymentRequest``: the selector hands the shop's signed
envelope bytes on unchanged ([0029] "受け渡す"), wrapped in a :class:`HandedWakeup` that names
the chosen wallet connection module. A wake-up id is the wake-up's join key
(``<shop_id>/<order_id>``): a shop that sends M4 again for the same order wakes no one twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from schemas.codec import message
from schemas.relay import Certificate

PromptKind = Literal["module", "slave", "address"]


@message
@dataclass(frozen=True)
class Preselection:
    """Ex 1 (claim 2): the user's choice of module, made before payment and stored
    (compacted topic keyed by client, [0027] "記憶する")."""

    TYPE: ClassVar[str] = "selector-preselection"
    VERSION: ClassVar[int] = 1
    client_id: str
    module_id: str


@message
@dataclass(frozen=True)
class HandedWakeup:
    """M4 (selector → module): the wake-up, byte for byte, for exactly one module."""

    TYPE: ClassVar[str] = "selector-handed-wakeup"
    VERSION: ClassVar[int] = 1
    wakeup_id: str
    client_id: str
    module_id: str
    mode: str
    original: bytes  # the shop's signed PaymentRequest envelope, verified again on use


@message
@dataclass(frozen=True)
class BrandInfo:
    """Brand information 60a/60b: the brands a module's server wallet settles (Ex 4, claim 5:
    published by the module itself, compacted, keyed by client)."""

    TYPE: ClassVar[str] = "wallet-brand-info"
    VERSION: ClassVar[int] = 1
    client_id: str
    module_id: str
    server_id: str
    brands: list[str]
    version: int = 1


@message
@dataclass(frozen=True)
class BrandQuery:
    """M5 (Ex 5, 6): the brands a server wallet settles for this client, asked live."""

    TYPE: ClassVar[str] = "wallet-brand-query"
    VERSION: ClassVar[int] = 1
    wakeup_id: str
    client_id: str
    server_id: str


@message
@dataclass(frozen=True)
class BrandAnswer:
    """M5's answer, signed by the server wallet it speaks for."""

    TYPE: ClassVar[str] = "wallet-brand-answer"
    VERSION: ClassVar[int] = 1
    wakeup_id: str
    client_id: str
    server_id: str
    brands: list[str]


@message
@dataclass(frozen=True)
class Prompt:
    """M2 / M11 / M12: ask the user to choose a module or a slave, or to type an address."""

    TYPE: ClassVar[str] = "selector-prompt"
    VERSION: ClassVar[int] = 1
    wakeup_id: str
    client_id: str
    kind: PromptKind
    candidates: list[str]
    deadline_ms: int
    asked_by: str = "selector"


@message
@dataclass(frozen=True)
class PromptReply:
    """M3 / M11 / M12: the user's answer (a candidate, an address, or a cancel)."""

    TYPE: ClassVar[str] = "selector-prompt-reply"
    VERSION: ClassVar[int] = 1
    wakeup_id: str
    client_id: str
    choice: str = ""
    cancel: bool = False


@message
@dataclass(frozen=True)
class SelectorTick:
    """Selector-internal: a timer asks the owner of a client's partition to check the
    deadlines of that client's pending wake-ups."""

    TYPE: ClassVar[str] = "selector-tick"
    VERSION: ClassVar[int] = 1
    client_id: str
    due_ms: int


@message
@dataclass(frozen=True)
class RoutingEvent:
    """Every routing decision (R-X3): mode, candidates, the chosen target and why."""

    TYPE: ClassVar[str] = "selector-routing-event"
    VERSION: ClassVar[int] = 1
    wakeup_id: str
    client_id: str
    mode: str
    candidates: list[str]
    chosen: str
    reason: str
    decided_by: str = "selector"


@message
@dataclass(frozen=True)
class UnroutableWakeup:
    """A wake-up no module (or server wallet) can take, with the reason (R-S10, R-M10)."""

    TYPE: ClassVar[str] = "selector-unroutable-wakeup"
    VERSION: ClassVar[int] = 1
    wakeup_id: str
    client_id: str
    mode: str
    reason: str
    original: bytes


@message
@dataclass(frozen=True)
class ModuleSettle:
    """M7 / M8: a module asks its paired server wallet to settle a handed-over wake-up.
    Ex 11 and 12 attach the client's slave brand info (63b) or slave info (64b) — untrusted."""

    TYPE: ClassVar[str] = "wallet-module-settle"
    VERSION: ClassVar[int] = 1
    wakeup_id: str
    client_id: str
    module_id: str
    server_id: str
    handed: bytes  # the selector's signed HandedWakeup envelope (or the shop's M4, Ex 6-12)
    slave_brands: dict[str, list[str]] = field(default_factory=dict)  # 63b: slave → brands
    slave_info: list[str] = field(default_factory=list)  # 64b: slaves holding some cert


@message
@dataclass(frozen=True)
class SlaveRequest:
    """M9 / M10 (master → slave): settle this wake-up through the virtual module (proxy), or
    hand over the brand certificate (fetch, Ex 8)."""

    TYPE: ClassVar[str] = "wallet-slave-request"
    VERSION: ClassVar[int] = 1
    wakeup_id: str
    client_id: str
    master_id: str
    slave_id: str
    action: Literal["proxy", "certificate"]
    brand: str
    original: bytes  # the shop's signed M4, unchanged


@message
@dataclass(frozen=True)
class SlaveAnswer:
    """The slave's answer to the master: its settlement (proxy) or the certificate (fetch)."""

    TYPE: ClassVar[str] = "wallet-slave-answer"
    VERSION: ClassVar[int] = 1
    wakeup_id: str
    client_id: str
    master_id: str
    slave_id: str
    action: Literal["proxy", "certificate"]
    ok: bool
    brand: str
    detail: str = ""
    certificate: Certificate | None = None  # Ex 8: the slave's brand certificate (public)
    account_sealed: bytes | None = None  # Ex 8: sealed to the settlement server, this order


@message
@dataclass(frozen=True)
class WalletSettled:
    """The settlement a wake-up led to, from the server wallet to the module (and any
    operator): who settled it, with which brand, through whom, and the 2nd request's order."""

    TYPE: ClassVar[str] = "wallet-settled"
    VERSION: ClassVar[int] = 1
    wakeup_id: str
    client_id: str
    module_id: str
    server_id: str
    settled_by: str
    brand: str
    via: str  # "self", "proxy:<slave>", "certificate:<slave>"
    ok: bool
    detail: str = ""
