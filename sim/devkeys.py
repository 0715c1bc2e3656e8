"""The development key set (`kessai keys init`, and `kessai up` on first use): one signing key
per actor of the development world (:mod:`sim.devdata`), sealing keys for the settlement
domain, the shared authenticator keys, password hashes, the users' devices and wallets, and
each actor's configuration (a shop's catalogue, the relay's users and preset wallets).

Everything here is made up for development and tests; the runtime (:mod:`kessai.keys`) only
reads the files this writes. A production key set would be written by the operator's own
tooling in the same layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kessai import certificates, crypto, keys
from protocols import wakeup as protocols_wakeup
from schemas.codec import to_body
from schemas.relay import Certificate
from schemas.wakeup import GatewayCertificate
from sim import devdata

CERTIFICATE_NOT_AFTER_MS = 4_102_444_800_000  # 2100-01-01: development certificates


def actors() -> list[str]:
    """Every identity of the development key set."""
    return [*devdata.SERVICE_ACTORS, *devdata.SHOPS, *devdata.WALLETS,
            *(keys.user_actor(u.user_id) for u in devdata.USERS),
            devdata.SELECTOR, *(m.module_id for m in devdata.MODULES), *wakeup_actors()]


def wakeup_actors() -> list[str]:
    """Seed 002: the payment gateway, its direction server, the POS terminals, the phones."""
    return ["paygate", "direction", *devdata.WAKEUP_POS, *devdata.WAKEUP_WEBSHOPS,
            *(f"device-{d}" for d in devdata.WAKEUP_PHONES)]


def init(directory: Path, *, force: bool = False) -> list[str]:
    """Create a development key set in ``directory``. Returns the actors created.

    Raises:
        ConfigError: a key set is there already and ``force`` is false.
    """
    keys.refuse_existing(directory, force)
    private: dict[str, dict[str, Any]] = {}
    signing: dict[str, list[str]] = {}
    for actor in actors():
        private[actor], signing[actor] = keys.new_actor(actor)
    sealing = {actor: keys.add_seal_key(private[actor])
               for actor in ("settlement", "issuer", "gateway", "ca", "paygate",
                             *devdata.WALLETS)}

    _shops(private)
    _users(private)
    _wallets(private)
    _relay(private)
    _selector(private)
    _wakeup(private)
    keys.write(directory, private, signing, sealing, force=force)
    return list(private)


def ensure(directory: Path) -> bool:
    """Create the development key set if ``directory`` has none. True if it was created."""
    return keys.ensure(directory, init)


def _shops(private: dict[str, dict[str, Any]]) -> None:
    """Each shop's key shared with the settlement server (seed 003 cl. 7) and its catalogue."""
    settlement = private["settlement"]
    settlement["shop_mac"] = {}
    for shop in devdata.SHOPS:
        k = crypto.new_secret().hex()
        settlement["shop_mac"][shop] = k
        private[shop]["settlement_mac"] = k
        private[shop]["catalogue"] = {code: [name, price] for code, (name, price)
                                      in devdata.Catalogue().items.items()}


def _users(private: dict[str, dict[str, Any]]) -> None:
    """Seed 003: each user's key shared with the settlement server (cl. 11), how they
    authenticate, held accounts (cl. 15), the FI host's accounts, and the users' devices."""
    settlement = private["settlement"]
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
            "signing": private[keys.user_actor(u.user_id)]["signing"],
            "result_mac": k,
            "cards": {c.alias: {"pan": c.pan, "expiry": c.expiry} for c in u.cards},
        }
    private["issuer"]["accounts"] = [
        {"pan": c.pan, "expiry": c.expiry, "limit": c.limit_minor, "currency": c.currency}
        for c in [*(c for u in devdata.USERS for c in u.cards), *devdata.EXTRA_ACCOUNTS]]


def _wallets(private: dict[str, dict[str, Any]]) -> None:
    """Seeds 000/001: personal wallets on the wallet servers, with certificates the CA issued
    in advance ([d:174]), and the wallet passwords the terminal simulator types in."""
    ca_private = bytes.fromhex(private["ca"]["signing"])
    for wallet_id in devdata.WALLETS:
        private[wallet_id]["users"] = {}
    for i, acct in enumerate(devdata.WALLET_ACCOUNTS):
        user_key = crypto.new_signing_key()
        cert = certificates.issue(ca_private, Certificate(
            serial=f"dev-{i + 1:04d}", user_id=acct.user_id, wallet_id=acct.wallet_id,
            brand=acct.brand, public_key=crypto.signing_public(user_key),
            not_after_ms=CERTIFICATE_NOT_AFTER_MS))
        salt, digest = crypto.hash_password(acct.password)
        private[acct.wallet_id]["users"][acct.user_id] = {
            "password_salt": salt.hex(), "password_hash": digest.hex(),
            "brand": acct.brand, "pan": acct.pan, "expiry": acct.expiry,
            "signing": user_key.hex(),
            "certificate": {k: (v.hex() if isinstance(v, bytes) else v)
                            for k, v in to_body(cert).items()},
        }
    private["terminal"]["wallet_passwords"] = {
        f"{a.wallet_id}/{a.user_id}": a.password for a in devdata.WALLET_ACCOUNTS}


def _relay(private: dict[str, dict[str, Any]]) -> None:
    """The relay's session-token key, each user's preset wallet ([d:194]), and how each user
    authenticates (the two-sided flow pays for password and channel users only)."""
    relay = private["relay"]
    relay["session_key"] = crypto.new_secret().hex()
    relay["preset_wallet"] = dict(devdata.RELAY_PRESET_WALLET)
    relay["users"] = {u.user_id: {"auth": u.auth, "held": u.held} for u in devdata.USERS}


def _selector(private: dict[str, dict[str, Any]]) -> None:
    """Seed 004: the selector's clients, each module's server wallets and brand info, each
    server wallet's modules and, for a master, its clients' slaves."""
    private[devdata.SELECTOR]["clients"] = dict(devdata.SELECTOR_CLIENTS)
    private[devdata.SELECTOR]["page_clients"] = sorted(
        {c for cfg in devdata.MASTERS.values() for c in cfg} - set(devdata.SELECTOR_CLIENTS))
    # carol's set-up of each example is a user of its own, paying through its server wallets
    # (the authenticated channel, cl. 12), with its own result key.
    settlement = private["settlement"]
    for client in devdata.SELECTOR_EXAMPLE_CLIENTS:
        settlement["users"][client] = {"auth": "channel"}
        settlement["user_mac"][client] = crypto.new_secret().hex()
    # The settlement server learns which server wallets speak for which (channel) user.
    for acct in devdata.WALLET_ACCOUNTS:
        wallets = private["settlement"]["users"][acct.user_id].setdefault("wallets", [])
        wallets.append(acct.wallet_id)
    for wallet_id in devdata.WALLETS:
        private[wallet_id]["modules"] = {m.module_id: {"client": m.client_id,
                                                       "direct": m.multi or m.direct}
                                         for m in devdata.MODULES if wallet_id in m.servers}
        private[wallet_id]["master"] = dict(devdata.MASTERS.get(wallet_id, {}))
    for m in devdata.MODULES:
        private[m.module_id]["module"] = {
            "client": m.client_id, "servers": list(m.servers), "brands": list(m.brands),
            "multi": m.multi, "direct": m.multi or m.direct,
            "slave_brands": {s: list(b) for s, b in m.slave_brands},
            "slave_info": list(m.slave_info)}


def _wakeup(private: dict[str, dict[str, Any]]) -> None:
    """Seed 002: the gateway's tables (Figs. 7–10) and its CA-issued server certificate, the
    phones' UIM area 233, the POS merchant codes, and the cards at the credit server."""
    users = {u.user_id: u for u in devdata.WAKEUP_USERS}
    paygate = private["paygate"]
    paygate["users"] = {u.user_id: {"device_id": u.device_id, "card_number": u.card_number,
                                    "expiration": u.expiration}
                        for u in devdata.WAKEUP_USERS}
    paygate["issuers"] = [list(row) for row in devdata.WAKEUP_ISSUERS]
    paygate["merchants"] = [[code, name, issuer, list(methods)]
                            for code, name, issuer, methods in devdata.WAKEUP_MERCHANTS]
    paygate["credit_servers"] = {code: "issuer" for _, _, code, _ in devdata.WAKEUP_ISSUERS}
    paygate["address"] = devdata.WAKEUP_GATEWAY_ADDRESS
    paygate["mail_address"] = devdata.WAKEUP_GATEWAY_MAIL
    cert = protocols_wakeup.issue_certificate(
        bytes.fromhex(private["ca"]["signing"]), GatewayCertificate(
            "paygate", devdata.WAKEUP_GATEWAY_ADDRESS,
            crypto.signing_public(bytes.fromhex(paygate["signing"])),
            CERTIFICATE_NOT_AFTER_MS))
    paygate["certificate"] = {k: (v.hex() if isinstance(v, bytes) else v)
                              for k, v in to_body(cert).items()}
    private["direction"]["mail_address"] = devdata.WAKEUP_GATEWAY_MAIL
    for pos_id, merchant in devdata.WAKEUP_POS.items():
        private[pos_id]["merchant_code"] = merchant
    _webshops(private)
    for device_id, cards in devdata.WAKEUP_PHONES.items():
        private[f"device-{device_id}"]["uim"] = {
            "device_id": device_id,
            "gateway_address": devdata.WAKEUP_GATEWAY_ADDRESS,
            "gateway_mail": devdata.WAKEUP_GATEWAY_MAIL,
            "trust_anchor": "ca",
            "credentials": [{"card": card, "user_id": uid, "password": users[uid].password}
                            for card, uid in cards],
        }
    private["issuer"]["accounts"] = [*private["issuer"]["accounts"], *(
        {"pan": u.card_number, "expiry": u.expiration, "limit": u.limit_minor,
         "currency": "JPY"} for u in devdata.WAKEUP_USERS if u.card_number)]
    # Embodiment 2 (Fig. 25B): the gateway checks the password of the confirmation reply.
    paygate["passwords"] = {}
    for u in devdata.WAKEUP_USERS:
        salt, digest = crypto.hash_password(u.password)
        paygate["passwords"][u.user_id] = {"salt": salt.hex(), "hash": digest.hex()}


def _webshops(private: dict[str, dict[str, Any]]) -> None:
    """Seed 002 V3: each web shop's merchant code and catalogue (of those in ``private``)."""
    for shop_id, merchant in devdata.WAKEUP_WEBSHOPS.items():
        if shop_id in private:
            private[shop_id]["merchant_code"] = merchant
            private[shop_id]["catalogue"] = {code: [name, price] for code, (name, price)
                                             in devdata.Catalogue().items.items()}


# Services whose development identity is a signing key and nothing more, so an older key set
# can be given one without being made again.
KEY_ONLY_SERVICES: tuple[str, ...] = ("archiver",)


def add_missing_services(directory: Path) -> list[str]:
    """Give an existing development key set the service actors added since it was made (the
    archiver, issue 10): a signing key each, nothing else changed. Returns the actors added."""
    import json
    import os

    registry_path = Path(directory) / keys.REGISTRY
    if not registry_path.exists():
        return []
    registry = json.loads(registry_path.read_text())
    missing = [a for a in (*KEY_ONLY_SERVICES, *devdata.WAKEUP_WEBSHOPS)
               if a not in registry["signing"]]
    for actor in missing:
        private, registry["signing"][actor] = keys.new_actor(actor)
        if actor in devdata.WAKEUP_WEBSHOPS:  # seed 002 V3: its merchant code and catalogue
            shaped: dict[str, dict[str, Any]] = {actor: private}
            _webshops(shaped)
        path = Path(directory) / "actors" / f"{actor}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(private, fh, indent=1)
    if missing:
        registry_path.write_text(json.dumps(registry, indent=1))
    return missing
