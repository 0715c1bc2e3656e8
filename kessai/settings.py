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
        if self.default_result_mode not in ("VIA_TERMINAL", "DIRECT_BOTH", "SHOP_POLLS"):
            raise ConfigError("default result mode must be VIA_TERMINAL, DIRECT_BOTH or "
                              f"SHOP_POLLS, got {self.default_result_mode!r}")

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
        if os.environ.get("KESSAI_RESULT_MODE"):
            env["default_result_mode"] = os.environ["KESSAI_RESULT_MODE"]
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
        }
