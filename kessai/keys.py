"""Development key sets: one signing key per actor, sealing keys for the settlement domain,
shared authenticator keys, password hashes and the users' wallets.

Layout of a key directory::

    registry.json          public: every actor's signing key, the sealing public keys
    actors/<actor>.json    private (mode 0600): that actor's keys and secrets

Every process loads the registry plus only its own private file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kessai import crypto, devdata
from kessai.errors import ConfigError, KeysMissing

REGISTRY = "registry.json"


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


@dataclass(frozen=True)
class Registry:
    signing: dict[str, tuple[str, bytes]]  # actor -> (kid, public key)
    sealing: dict[str, tuple[str, bytes]]  # "settlement"/"issuer" -> (kid, public key)

    def signing_key(self, actor: str) -> tuple[str, bytes] | None:
        return self.signing.get(actor)


@dataclass(frozen=True)
class ActorKeys:
    actor: str
    kid: str
    signing_private: bytes
    seal_private: bytes | None = None
    secrets: dict[str, Any] = field(default_factory=dict)


def init(directory: Path, *, force: bool = False) -> list[str]:
    """Create a development key set in ``directory``. Returns the actors created.

    Refuses to overwrite an existing set unless ``force``; an existing set is kept as is, so
    `kessai up` can call this on every start.
    """
    directory = Path(directory)
    if (directory / REGISTRY).exists() and not force:
        raise ConfigError(f"a key set already exists in {directory}; pass --force to replace it")
    (directory / "actors").mkdir(parents=True, exist_ok=True)
    os.chmod(directory / "actors", 0o700)

    actors = [*devdata.SERVICE_ACTORS, *devdata.SHOPS, *devdata.WALLETS,
              *(user_actor(u.user_id) for u in devdata.USERS)]
    private: dict[str, dict[str, Any]] = {}
    signing: dict[str, list[str]] = {}
    for actor in actors:
        sk = crypto.new_signing_key()
        pub = crypto.signing_public(sk)
        private[actor] = {"actor": actor, "kid": crypto.key_id(pub), "signing": sk.hex()}
        signing[actor] = [crypto.key_id(pub), pub.hex()]

    sealing: dict[str, list[str]] = {}
    for actor in ("settlement", "issuer", "gateway", "ca", *devdata.WALLETS):
        xk = crypto.new_seal_key()
        xpub = crypto.seal_public(xk)
        private[actor]["seal"] = xk.hex()
        sealing[actor] = [crypto.key_id(xpub), xpub.hex()]

    # Shared keys exchanged in advance (seed 003 cl. 7 with each shop, cl. 11 with each user).
    settlement = private["settlement"]
    settlement["shop_mac"] = {}
    for shop in devdata.SHOPS:
        k = crypto.new_secret().hex()
        settlement["shop_mac"][shop] = k
        private[shop]["settlement_mac"] = k
    settlement["user_mac"] = {}
    settlement["users"] = {}
    settlement["held_accounts"] = {}
    terminal = private["terminal"]
    terminal["wallets"] = {}
    for u in devdata.USERS:
        k = crypto.new_secret().hex()
        settlement["user_mac"][u.user_id] = k
        record: dict[str, Any] = {"auth": u.auth}
        if u.password is not None:
            salt, digest = crypto.hash_password(u.password)
            record["password_salt"] = salt.hex()
            record["password_hash"] = digest.hex()
        settlement["users"][u.user_id] = record
        if u.held:
            card = u.cards[0]
            settlement["held_accounts"][u.user_id] = {"pan": card.pan, "expiry": card.expiry}
        # The terminal simulator is the users' device: it holds their cards, passwords and
        # authenticator keys, as a phone or PC would.
        terminal["wallets"][u.user_id] = {
            "auth": u.auth,
            "password": u.password,
            "held": u.held,
            "signing": private[user_actor(u.user_id)]["signing"],
            "result_mac": k,
            "cards": {c.alias: {"pan": c.pan, "expiry": c.expiry} for c in u.cards},
        }
    private["issuer"]["accounts"] = [
        {"pan": c.pan, "expiry": c.expiry, "limit": c.limit_minor, "currency": c.currency}
        for u in devdata.USERS for c in u.cards
    ] + [{"pan": c.pan, "expiry": c.expiry, "limit": c.limit_minor, "currency": c.currency}
         for c in devdata.EXTRA_ACCOUNTS]

    _init_wallets(private, sealing)

    for actor, data in private.items():
        path = directory / "actors" / _file_name(actor)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1, ensure_ascii=False)
    (directory / REGISTRY).write_text(json.dumps(
        {"version": 1, "signing": signing, "sealing": sealing}, indent=1))
    return actors


def ensure(directory: Path) -> bool:
    """Create the development key set if ``directory`` has none. True if it was created."""
    if (Path(directory) / REGISTRY).exists():
        return False
    init(directory)
    return True


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


def _init_wallets(private: dict[str, dict[str, Any]], sealing: dict[str, list[str]]) -> None:
    """Personal wallets on the wallet servers, with certificates the CA issued in advance
    (seeds 000/001 [d:174]); the relay's session-token key and preset wallets."""
    from kessai import certificates
    from schemas.codec import to_body
    from schemas.relay import Certificate

    ca_private = bytes.fromhex(private["ca"]["signing"])
    for wallet_id in devdata.WALLETS:
        private[wallet_id]["users"] = {}
    for i, acct in enumerate(devdata.WALLET_ACCOUNTS):
        user_key = crypto.new_signing_key()
        cert = certificates.issue(ca_private, Certificate(
            serial=f"dev-{i + 1:04d}", user_id=acct.user_id, wallet_id=acct.wallet_id,
            brand=acct.brand, public_key=crypto.signing_public(user_key),
            not_after_ms=4_102_444_800_000))  # 2100-01-01: development certificates
        salt, digest = crypto.hash_password(acct.password)
        private[acct.wallet_id]["users"][acct.user_id] = {
            "password_salt": salt.hex(), "password_hash": digest.hex(),
            "brand": acct.brand, "pan": acct.pan, "expiry": acct.expiry,
            "signing": user_key.hex(),
            "certificate": {k: (v.hex() if isinstance(v, bytes) else v)
                            for k, v in to_body(cert).items()},
        }
    private["relay"]["session_key"] = crypto.new_secret().hex()
    private["relay"]["preset_wallet"] = dict(devdata.RELAY_PRESET_WALLET)
    # The relay's HTTP users (a limited terminal logs in to the relay for the two-sided flow)
    # and the demo passwords the terminal simulator types in.
    private["terminal"]["wallet_passwords"] = {
        f"{a.wallet_id}/{a.user_id}": a.password for a in devdata.WALLET_ACCOUNTS}
    del sealing  # sealing keys for wallets/gateway/ca were made with the others
