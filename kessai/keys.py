"""Key sets: where a key set lives, how it is laid out, and loading it.

Layout of a key directory::

    registry.json          public: every actor's signing key, the sealing public keys
    actors/<actor>.json    private (mode 0600): that actor's keys, secrets and configuration

Every process loads the registry plus only its own private files. The registry names every
actor, so it also says which shops, wallet servers and users exist: the actors of a kind
(:meth:`Registry.actors_of`, kinds as :func:`kessai.handlers.actor_kind` names them).

The runtime only reads key sets. What a development key set holds (every actor's secrets, the
users, their cards and wallets) is the simulator's business (:mod:`sim.devkeys`); it writes
the files through :func:`write`, and ``kessai up`` creates one on first use through
:func:`ensure` with the generator the CLI hands it.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kessai import crypto
from kessai.errors import ConfigError, KeysMissing
from kessai.handlers import actor_kind

REGISTRY = "registry.json"

# Creates a key set in a directory (refusing to replace one unless forced); returns the actors.
Generator = Callable[..., list[str]]


def default_dir() -> Path:
    env = os.environ.get("KESSAI_KEYS")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "kessai" / "keys"


def user_actor(user_id: str) -> str:
    return f"user:{user_id}"


def _file_name(actor: str) -> str:
    return actor.replace(":", "_") + ".json"


def of_kind(actors: Iterable[str], kind: str) -> list[str]:
    """The actors of ``kind`` among ``actors``, sorted (``shop`` → ``shop-1``, ``shop-2``)."""
    return sorted(a for a in actors if actor_kind(a) == kind)


@dataclass(frozen=True)
class Registry:
    signing: dict[str, tuple[str, bytes]]  # actor -> (kid, public key)
    sealing: dict[str, tuple[str, bytes]]  # "settlement"/"issuer"/wallets… -> (kid, public key)

    def signing_key(self, actor: str) -> tuple[str, bytes] | None:
        return self.signing.get(actor)

    @functools.cached_property
    def _kinds(self) -> dict[str, tuple[str, ...]]:
        kinds: dict[str, list[str]] = {}
        for actor in sorted(self.signing):
            kinds.setdefault(actor_kind(actor), []).append(actor)
        return {k: tuple(v) for k, v in kinds.items()}

    def actors_of(self, kind: str) -> tuple[str, ...]:
        """Every actor of ``kind`` in the key set, sorted: ``actors_of("wallet")``."""
        return self._kinds.get(kind, ())


@dataclass(frozen=True)
class ActorKeys:
    actor: str
    kid: str
    signing_private: bytes
    seal_private: bytes | None = None
    secrets: dict[str, Any] = field(default_factory=dict)


# -- making key sets -------------------------------------------------------------------------

def new_actor(actor: str) -> tuple[dict[str, Any], list[str]]:
    """A fresh signing key for ``actor``: its private record and its registry entry."""
    sk = crypto.new_signing_key()
    pub = crypto.signing_public(sk)
    kid = crypto.key_id(pub)
    return {"actor": actor, "kid": kid, "signing": sk.hex()}, [kid, pub.hex()]


def add_seal_key(record: dict[str, Any]) -> list[str]:
    """Give an actor's private record a fresh sealing key; returns its registry entry."""
    xk = crypto.new_seal_key()
    xpub = crypto.seal_public(xk)
    record["seal"] = xk.hex()
    return [crypto.key_id(xpub), xpub.hex()]


def refuse_existing(directory: Path, force: bool) -> None:
    if (Path(directory) / REGISTRY).exists() and not force:
        raise ConfigError(f"a key set already exists in {directory}; pass --force to replace it")


def write(directory: Path, private: Mapping[str, Mapping[str, Any]],
          signing: Mapping[str, list[str]], sealing: Mapping[str, list[str]], *,
          force: bool = False) -> None:
    """Write a key set: each actor's private file (mode 0600, in a 0700 directory), then the
    registry, so a registry on disk always has its actors' files.

    Raises:
        ConfigError: a key set is there already and ``force`` is false.
    """
    directory = Path(directory)
    refuse_existing(directory, force)
    (directory / "actors").mkdir(parents=True, exist_ok=True)
    os.chmod(directory / "actors", 0o700)
    for actor, data in private.items():
        path = directory / "actors" / _file_name(actor)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1, ensure_ascii=False)
    (directory / REGISTRY).write_text(json.dumps(
        {"version": 1, "signing": dict(signing), "sealing": dict(sealing)}, indent=1))


def ensure(directory: Path, create: Generator) -> bool:
    """Create a key set with ``create`` if ``directory`` has none. True if it was created."""
    if (Path(directory) / REGISTRY).exists():
        return False
    create(directory)
    return True


# -- loading ---------------------------------------------------------------------------------

def _missing(directory: Path, what: str) -> KeysMissing:
    return KeysMissing(
        f"no {what} in {directory}; create a development key set with "
        f"'kessai keys init {directory}' (or point --keys / KESSAI_KEYS at one)")


def load_registry(directory: Path) -> Registry:
    path = Path(directory) / REGISTRY
    if not path.exists():
        raise _missing(Path(directory), "key registry")
    raw = json.loads(path.read_text())
    return Registry(
        signing={a: (v[0], bytes.fromhex(v[1])) for a, v in raw["signing"].items()},
        sealing={a: (v[0], bytes.fromhex(v[1])) for a, v in raw["sealing"].items()},
    )


def load_actor(directory: Path, actor: str) -> ActorKeys:
    path = Path(directory) / "actors" / _file_name(actor)
    if not path.exists():
        raise _missing(Path(directory), f"keys for actor {actor!r}")
    raw = json.loads(path.read_text())
    seal = raw.pop("seal", None)
    return ActorKeys(
        actor=actor,
        kid=raw.pop("kid"),
        signing_private=bytes.fromhex(raw.pop("signing")),
        seal_private=bytes.fromhex(seal) if seal else None,
        secrets=raw,
    )
