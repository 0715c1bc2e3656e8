"""The relay's own settings, read once from the environment and validated eagerly.

- ``KESSAI_RELAY_HOST`` / ``KESSAI_RELAY_PORT``: the HTTP server 43 terminals reach
  (default 127.0.0.1:8460).
- ``KESSAI_RELAY_KEEPALIVE_MS``: claim 10's preset period. A terminal request that starts a
  bus step waits this long for the next contents, then gets the progress page (default 4000).
- ``KESSAI_RELAY_AUTO_REFRESH``: which terminal profiles poll by themselves and how often
  ([d:238-240]), e.g. ``game=3,phone=5`` or ``*=5``; a profile not named gets the manual
  inquiry button (claim 11). Default: none.
- ``KESSAI_RELAY_SESSION_TTL_MS``: how long a session string stays valid; long enough for a
  user who drops the call to reconnect and see the result (R32). Default one day.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from kessai.errors import ConfigError

DEFAULT_PORT = 8460


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "")
    if raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ConfigError(f"{name} must be a whole number from {low} to {high}, got {raw!r}")
    return int(raw)


def parse_auto_refresh(raw: str) -> dict[str, int]:
    """``game=3,phone=5`` → {"game": 3, "phone": 5}; ``*`` names every profile.

    Raises:
        ConfigError: an entry that is not ``PROFILE=SECONDS`` with 1 ≤ SECONDS ≤ 600.
    """
    out: dict[str, int] = {}
    for entry in filter(None, (e.strip() for e in raw.split(","))):
        name, sep, seconds = entry.partition("=")
        if not sep or not name.strip() or not seconds.strip().isdigit() \
                or not 1 <= int(seconds) <= 600:
            raise ConfigError(f"KESSAI_RELAY_AUTO_REFRESH entry {entry!r} must look like "
                              "PROFILE=SECONDS (1 to 600)")
        out[name.strip()] = int(seconds)
    return out


@dataclass(frozen=True)
class RelayConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    keepalive_ms: int = 4_000
    auto_refresh: dict[str, int] = field(default_factory=dict)
    session_ttl_ms: int = 24 * 3600 * 1000

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> RelayConfig:
        return cls(
            host=env.get("KESSAI_RELAY_HOST") or "127.0.0.1",
            port=_int(env, "KESSAI_RELAY_PORT", DEFAULT_PORT, 1, 65535),
            keepalive_ms=_int(env, "KESSAI_RELAY_KEEPALIVE_MS", 4_000, 1, 600_000),
            auto_refresh=parse_auto_refresh(env.get("KESSAI_RELAY_AUTO_REFRESH", "")),
            session_ttl_ms=_int(env, "KESSAI_RELAY_SESSION_TTL_MS", 24 * 3600 * 1000, 1_000,
                                366 * 24 * 3600 * 1000))

    def refresh_s(self, profile: str) -> int:
        """Seconds between automatic inquiries for ``profile``; 0 means the manual button."""
        return self.auto_refresh.get(profile, self.auto_refresh.get("*", 0))
