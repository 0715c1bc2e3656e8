"""One frozen, validated settings object, read from the environment and CLI flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kessai import keys
from kessai.errors import ConfigError

_SECOND = 1000


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


BROKER_KINDS = ("embedded", "kafka")
HOSTS = ("faust", "aiokafka")  # what a worker runs its agent on (kessai.runtime.Host)
STORE_SYNC_MODES = ("full", "normal")


@dataclass(frozen=True)
class Waits:
    """Every wait on the hot path, per broker kind (issue 6: no hop waits for a timer when data
    is there).

    ``embedded``: the Tansu broker does not answer a waiting fetch when data arrives, so the
    consumer's fetch wait must be short while records flow; it grows towards
    ``fetch_wait_idle_ms`` after ``idle_after_ms`` without a record, so an idle worker does not
    poll the broker hot. ``kafka``: a real broker answers a waiting fetch as soon as data
    arrives, so Kafka's own default (500 ms) costs nothing.
    """

    fetch_wait_busy_ms: int
    fetch_wait_idle_ms: int
    idle_after_ms: int = 2_000
    # Between the two: after a fetch came back empty, the wait doubles up to this until
    # ``idle_after_ms`` has passed, then up to ``fetch_wait_idle_ms`` (0: the busy wait, stay
    # short until idle).
    fetch_wait_quiet_ms: int = 0
    # After ``deep_idle_after_ms`` without a record, up to this (0: no deeper tier): a system
    # left alone polls less still, while a pause of a few seconds keeps the idle wait.
    fetch_wait_deep_ms: int = 0
    deep_idle_after_ms: int = 30_000
    linger_ms: int = 0
    commit_interval_ms: int = 200
    max_poll_records: int = 500

    def __post_init__(self) -> None:
        for name in ("fetch_wait_busy_ms", "fetch_wait_idle_ms", "commit_interval_ms",
                     "max_poll_records"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("idle_after_ms", "linger_ms", "deep_idle_after_ms"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.fetch_wait_idle_ms < self.fetch_wait_busy_ms:
            raise ConfigError("fetch_wait_idle_ms must be at least fetch_wait_busy_ms "
                              f"({self.fetch_wait_idle_ms} < {self.fetch_wait_busy_ms})")
        if self.fetch_wait_quiet_ms < 0 or self.fetch_wait_quiet_ms > self.fetch_wait_idle_ms:
            raise ConfigError("fetch_wait_quiet_ms must be between 0 (the busy wait) and "
                              f"fetch_wait_idle_ms, got {self.fetch_wait_quiet_ms}")
        if self.fetch_wait_deep_ms and self.fetch_wait_deep_ms < self.fetch_wait_idle_ms:
            raise ConfigError("fetch_wait_deep_ms must be 0 (no deeper tier) or at least "
                              f"fetch_wait_idle_ms, got {self.fetch_wait_deep_ms}")
        if self.fetch_wait_deep_ms and self.deep_idle_after_ms < self.idle_after_ms:
            raise ConfigError("deep_idle_after_ms must be at least idle_after_ms "
                              f"({self.deep_idle_after_ms} < {self.idle_after_ms})")

    @property
    def quiet_cap_ms(self) -> int:
        return max(self.fetch_wait_busy_ms, self.fetch_wait_quiet_ms)

    @classmethod
    def for_kind(cls, kind: str) -> Waits:
        if kind == "embedded":
            # Measured (docs/performance.md): a 20 ms quiet cap halves the empty fetches'
            # cost and lowers latency too (the cores are less busy polling); 1 s once idle
            # for 30 s: the 17 workers of `kessai up` idle at 0.28 instead of 0.52 cores.
            # Commits are off the hot path (records leave at once, the commit only makes the
            # handled offsets durable), so they need not tick every 200 ms: faust's commit and
            # livelock timers were most of an idle worker's wake-ups.
            return cls(fetch_wait_busy_ms=4, fetch_wait_idle_ms=250, fetch_wait_quiet_ms=20,
                       fetch_wait_deep_ms=1000, commit_interval_ms=1000)
        if kind == "kafka":
            return cls(fetch_wait_busy_ms=500, fetch_wait_idle_ms=500, commit_interval_ms=500)
        raise ConfigError(f"broker kind must be one of {', '.join(BROKER_KINDS)}, got {kind!r} "
                          "(set --broker-kind or KESSAI_BROKER_KIND)")


_WAIT_ENV = (("fetch_wait_busy_ms", "KESSAI_FETCH_WAIT_MS"),
             ("fetch_wait_idle_ms", "KESSAI_FETCH_WAIT_IDLE_MS"),
             ("idle_after_ms", "KESSAI_IDLE_AFTER_MS"),
             ("fetch_wait_quiet_ms", "KESSAI_FETCH_WAIT_QUIET_MS"),
             ("fetch_wait_deep_ms", "KESSAI_FETCH_WAIT_DEEP_MS"),
             ("deep_idle_after_ms", "KESSAI_DEEP_IDLE_AFTER_MS"),
             ("linger_ms", "KESSAI_LINGER_MS"),
             ("commit_interval_ms", "KESSAI_COMMIT_INTERVAL_MS"),
             ("max_poll_records", "KESSAI_MAX_POLL_RECORDS"))


def waits_from_env(kind: str) -> Waits:
    """The broker kind's defaults, each overridable by its environment variable."""
    base = Waits.for_kind(kind)
    changes = {name: _env_int(var, getattr(base, name)) for name, var in _WAIT_ENV}
    if os.environ.get("KESSAI_FETCH_WAIT_MS") and not os.environ.get("KESSAI_FETCH_WAIT_IDLE_MS"):
        changes["fetch_wait_idle_ms"] = max(changes["fetch_wait_idle_ms"],
                                            changes["fetch_wait_busy_ms"])
    if changes["fetch_wait_deep_ms"] and not os.environ.get("KESSAI_FETCH_WAIT_DEEP_MS"):
        changes["fetch_wait_deep_ms"] = max(changes["fetch_wait_deep_ms"],
                                            changes["fetch_wait_idle_ms"])
        changes["deep_idle_after_ms"] = max(changes["deep_idle_after_ms"],
                                            changes["idle_after_ms"])
    return replace(base, **changes)


@dataclass(frozen=True)
class Settings:
    bootstrap: str = "127.0.0.1:9092"
    keys_dir: Path = field(default_factory=keys.default_dir)
    data_dir: Path = field(default_factory=lambda: Path(".kessai"))
    # Pending-state lifetimes (spec R7, [I]: the patent names no timeout; keep configurable).
    t_first_ms: int = 24 * 3600 * _SECOND
    t_second_ms: int = 15 * 60 * _SECOND
    t_history_ms: int = 72 * 3600 * _SECOND  # R11: must outlive the shop's latest inquiry
    t_authorize_ms: int = 10 * _SECOND  # re-ask the FI host (same idempotency key) after this
    result_redelivery_ms: int = 5 * _SECOND  # DIRECT_BOTH: resend unacked shop results
    max_message_age_ms: int = 15 * 60 * _SECOND  # older envelopes are dead-lettered as stale
    timer_interval_s: float = 1.0
    default_result_mode: str = "VIA_TERMINAL"
    client_id_prefix: str = "kessai"
    # Consumer-group timings; short by default because the embedded broker holds every
    # JoinGroup for the full rebalance timeout (raise them on a production cluster).
    rebalance_timeout_s: float = 3.0
    session_timeout_s: float = 6.0
    broker_kind: str = "embedded"
    waits: Waits = field(default_factory=lambda: Waits.for_kind("embedded"))
    # How the agents' SQLite stores (shop orders, issuer ledger, …) sync a commit; "" = by
    # broker kind, see ``sqlite_synchronous``.
    store_sync: str = ""
    # The worker host: "aiokafka" (one consumer loop, kessai.aiokafka_host) or "faust"
    # (a faust app, kessai.runtime.FaustHost). KESSAI_HOST overrides. [IMPL] aiokafka by
    # default: the same agents, less CPU per record (docs/performance.md).
    host: str = "aiokafka"

    def __post_init__(self) -> None:
        host, sep, port = self.bootstrap.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError(
                f"bootstrap must look like HOST:PORT, got {self.bootstrap!r} "
                "(set --bootstrap or KESSAI_BOOTSTRAP)")
        for name in ("t_first_ms", "t_second_ms", "t_history_ms", "t_authorize_ms",
                     "result_redelivery_ms", "max_message_age_ms"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")
        if self.broker_kind not in BROKER_KINDS:
            raise ConfigError(f"broker kind must be one of {', '.join(BROKER_KINDS)}, got "
                              f"{self.broker_kind!r} (set --broker-kind or KESSAI_BROKER_KIND)")
        if self.host not in HOSTS:
            raise ConfigError(f"worker host must be one of {', '.join(HOSTS)}, got "
                              f"{self.host!r} (set KESSAI_HOST)")
        if self.store_sync not in ("", *STORE_SYNC_MODES):
            raise ConfigError(f"store sync must be one of {', '.join(STORE_SYNC_MODES)}, got "
                              f"{self.store_sync!r} (set KESSAI_STORE_SYNC)")
        if self.default_result_mode not in ("VIA_TERMINAL", "DIRECT_BOTH", "SHOP_POLLS"):
            raise ConfigError("default result mode must be VIA_TERMINAL, DIRECT_BOTH or "
                              f"SHOP_POLLS, got {self.default_result_mode!r}")

    @property
    def sqlite_synchronous(self) -> str:
        """SQLite's ``synchronous`` for the agents' stores (all in WAL mode).

        ``NORMAL`` keeps every commit through a crash of the worker (kill -9); only a power loss
        of the host can lose the last commits. ``FULL`` also syncs the WAL to the disk on every
        commit (on the project's machine 0.2–0.3 ms on a quiet disk, 12 ms on a busy one; once
        per batch). By broker kind: on a real
        cluster a charge or an order must survive the host's power loss, so ``FULL``; the
        embedded broker keeps the whole bus in memory, so a power loss loses far more than a
        store's last commit and the sync buys nothing there: ``NORMAL``.
        ``KESSAI_STORE_SYNC=full|normal`` overrides either.
        """
        mode = self.store_sync or ("normal" if self.broker_kind == "embedded" else "full")
        return mode.upper()

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        env: dict[str, Any] = {}
        if os.environ.get("KESSAI_BOOTSTRAP"):
            env["bootstrap"] = os.environ["KESSAI_BOOTSTRAP"]
        if os.environ.get("KESSAI_DATA"):
            env["data_dir"] = Path(os.environ["KESSAI_DATA"])
        for name, var in (("t_first_ms", "KESSAI_T_FIRST_MS"),
                          ("t_second_ms", "KESSAI_T_SECOND_MS"),
                          ("t_history_ms", "KESSAI_T_HISTORY_MS"),
                          ("t_authorize_ms", "KESSAI_T_AUTHORIZE_MS"),
                          ("result_redelivery_ms", "KESSAI_RESULT_REDELIVERY_MS"),
                          ("max_message_age_ms", "KESSAI_MAX_MESSAGE_AGE_MS")):
            if os.environ.get(var):
                env[name] = _env_int(var, 0)
        kind = overrides.get("broker_kind") or os.environ.get("KESSAI_BROKER_KIND") or "embedded"
        env["broker_kind"] = kind
        env["waits"] = waits_from_env(kind)
        if os.environ.get("KESSAI_RESULT_MODE"):
            env["default_result_mode"] = os.environ["KESSAI_RESULT_MODE"]
        if os.environ.get("KESSAI_HOST"):
            env["host"] = os.environ["KESSAI_HOST"].lower()
        if os.environ.get("KESSAI_STORE_SYNC"):
            env["store_sync"] = os.environ["KESSAI_STORE_SYNC"].lower()
        env.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**env)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def child_env(self) -> dict[str, str]:
        """Environment that gives a child worker process these same settings."""
        return {
            "KESSAI_BOOTSTRAP": self.bootstrap,
            "KESSAI_KEYS": str(self.keys_dir),
            "KESSAI_DATA": str(self.data_dir),
            "KESSAI_T_FIRST_MS": str(self.t_first_ms),
            "KESSAI_T_SECOND_MS": str(self.t_second_ms),
            "KESSAI_T_HISTORY_MS": str(self.t_history_ms),
            "KESSAI_T_AUTHORIZE_MS": str(self.t_authorize_ms),
            "KESSAI_RESULT_REDELIVERY_MS": str(self.result_redelivery_ms),
            "KESSAI_MAX_MESSAGE_AGE_MS": str(self.max_message_age_ms),
            "KESSAI_RESULT_MODE": self.default_result_mode,
            "KESSAI_BROKER_KIND": self.broker_kind,
            "KESSAI_STORE_SYNC": self.sqlite_synchronous.lower(),
            "KESSAI_HOST": self.host,
            **{var: str(getattr(self.waits, name)) for name, var in _WAIT_ENV},
        }
