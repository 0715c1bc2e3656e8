"""The gateway's configuration: which settlement host serves a card brand, which certificate
serials are revoked. The request analyzing section 71 "select[s] the settlement host 75"
([d:161]); the patent names no rule, so the mapping is configuration ([I]).

- ``KESSAI_GATEWAY_HOSTS``: ``brand=host`` pairs, e.g. ``visa=issuer,mastercard=issuer``;
  replaces the default mapping (every common brand → ``issuer``, the development world's one
  settlement host). A host must hold a sealing key in the registry.
- ``KESSAI_GATEWAY_REVOKED``: comma-separated certificate serials the gateway refuses (R41).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from kessai.errors import ConfigError

DEFAULT_HOSTS: Mapping[str, str] = {
    brand: "issuer" for brand in ("visa", "mastercard", "jcb", "amex", "discover", "diners")}


def settlement_host(brand: str, hosts: Mapping[str, str] = DEFAULT_HOSTS) -> str | None:
    """The settlement host for ``brand`` (case-insensitive), or None if no host serves it."""
    return hosts.get(brand.strip().lower())


def parse_hosts(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in filter(None, (e.strip() for e in raw.split(","))):
        brand, sep, host = entry.partition("=")
        if not sep or not brand.strip() or not host.strip():
            raise ConfigError(f"KESSAI_GATEWAY_HOSTS entry {entry!r} must look like BRAND=HOST")
        out[brand.strip().lower()] = host.strip()
    return out


@dataclass(frozen=True)
class GatewayPolicy:
    hosts: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_HOSTS))
    revoked: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GatewayPolicy:
        env = os.environ if env is None else env
        hosts = parse_hosts(env.get("KESSAI_GATEWAY_HOSTS", "")) or dict(DEFAULT_HOSTS)
        revoked = frozenset(filter(None, (s.strip() for s in
                                          env.get("KESSAI_GATEWAY_REVOKED", "").split(","))))
        return cls(hosts, revoked)
