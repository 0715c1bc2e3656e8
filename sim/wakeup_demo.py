"""`kessai demo wakeup` and `kessai pay --flow wakeup`: seed 002's mobile wake-up payments,
driven as the clerk at the POS and the person holding the phone, each journey printed hop by
hop across the topics with its outcome, and the POS's receipt.

The phone's user acts on what the phone shows (``kessai.device.screens``): Agree or Not agree
on the details, a method from the list. The password is typed by the simulated user on the
phone itself (the command only says whether they get it wrong), never put on the bus.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer

from kessai import envelope, keys
from kessai.broker import wait_reachable
from kessai.clock import SystemClock
from kessai.errors import ConfigError
from kessai.settings import Settings
from schemas.wakeup import DeviceCommand, PosSale, SaleItem, WebOrder
from sim import devdata
from sim.journey import Hop, Watcher

PHONE_END = {"rejected", "aborted", "stopped", "error"}


@dataclass
class Journey:
    name: str
    pos_id: str = "pos-1"
    device_id: str = "1234567"
    card: str = "CARD A"
    method: str = "L"
    agree: bool = True
    wrong_password: bool = False
    items: list[SaleItem] = field(default_factory=lambda: [SaleItem("Sencha 100g", 2, 1200),
                                                           SaleItem("Mug", 1, 1800)])
    tax: int = 420
    expect: str = "COMPLETED"
    embodiment: int = 1  # 2: the encrypted card number (the user id typed at the POS)
    webshop: str = ""  # V3: check out at this web shop (``pos_id`` names it too)
    sale_ref: str = field(default_factory=lambda: "sale-" + uuid.uuid4().hex[:8])
    hops: list[Hop] = field(default_factory=list)
    outcome: str = ""
    transaction_number: str = ""
    receipt: list[str] = field(default_factory=list)
    phone: list[str] = field(default_factory=list)
    started_ms: int = 0
    elapsed_s: float = 0.0
    encrypted: bytes = b""

    @property
    def user_id(self) -> str:
        for card, uid in devdata.WAKEUP_PHONES.get(self.device_id, ()):
            if card == self.card:
                return uid
        cards = ", ".join(c for c, _ in devdata.WAKEUP_PHONES.get(self.device_id, ()))
        raise ConfigError(f"phone {self.device_id} has no card {self.card!r}; its cards: "
                          f"{cards}")

    def related(self, h: Hop) -> bool:
        b = h.body
        if h.at_ms < self.started_ms - 1000:
            return False
        if b.get("device_id") == self.device_id or h.key in (self.device_id, self.user_id):
            return True
        if self.webshop and b.get("shop_id") == self.webshop \
                and b.get("order_ref") == self.sale_ref:
            return True
        if b.get("pos_id") == self.pos_id \
                and b.get("sale_ref", b.get("request_ref", self.sale_ref)) == self.sale_ref:
            return h.type != "shortrange-user-id" or b.get("user_id") == self.user_id
        if h.type == "key-distribution":
            return bool(self.encrypted) and b.get("encrypted_card_number") == self.encrypted
        return bool(self.transaction_number) and \
            b.get("transaction_number") == self.transaction_number

    def report(self) -> dict[str, Any]:
        t0 = self.hops[0].at_ms if self.hops else self.started_ms
        return {"name": self.name, "order_id": self.transaction_number or self.sale_ref,
                "sale_ref": self.sale_ref, "outcome": self.outcome or "TIMEOUT",
                "expected": self.expect, "pos": self.pos_id, "device": self.device_id,
                "user": self.user_id, "elapsed_s": round(self.elapsed_s, 3),
                "phone": self.phone, "receipt": self.receipt,
                "journey": [h.as_json(t0) | {"summary": summary(h)} for h in self.hops]}


def summary(h: Hop) -> str:
    b, t = h.body, h.type
    if t == "pos-sale":
        lines = ", ".join(f"{i['name']}×{i['quantity']}" for i in b["items"])
        return f"clerk enters {lines} (+tax {b['tax']}), service: {b['use_service']}"
    if t == "device-command":
        return f"user presses {b['action']}" + (f" {b['card']}" if b["card"] else "") + \
            (f" {b['method']}" if b["method"] else "") + \
            (" (types a wrong password)" if b["wrong_password"] else "")
    if t == "phone-screen":
        opts = f" [{' | '.join(b['options'])}]" if b["options"] else ""
        return f"phone shows {b['screen']}: {b['text']}{opts}"
    if t == "shortrange-user-id":
        return f"user id {b['user_id']} handed to {b['pos_id']} over short range"
    if t == "txn-number-request":
        return f"request for a txn number: user {b['user_id']}, merchant {b['merchant_code']}, " \
               f"total {b['total']} {b['currency']} (no card)"
    if t == "txn-number":
        return f"transaction number {b['transaction_number']}"
    if t == "mail-request":
        return f"mail request for user {b['user_id']} → device {b['device_id']}"
    if t == "reception-notice":
        return f"reception message to device {b['device_id']} (mail {b['mail_id']})"
    if t == "mail-fetch":
        return f"device fetches {b['mail_id']}"
    if t == "mail":
        return f"mail from {b['sender']}: {', '.join(b['commands'])}"
    if t == "session-open":
        return f"connect to {b['address']}, ask for the certificate"
    if t == "server-certificate":
        return f"certificate of {b['certificate']['subject']} for {b['certificate']['address']}"
    if t == "auth-request":
        return f"authenticity {b['authentic']}, user {b['user_id']}, device {b['device_id']}"
    if t == "transaction-details":
        return f"details: shop {b['merchant_name']}, total {b['total'][0]} {b['total'][1]}"
    if t == "proceed-request":
        return "Agree: request for proceeding payment"
    if t == "payment-methods":
        return f"allowed methods {', '.join(b['methods'])}"
    if t == "method-choice":
        return f"method {b['method']}"
    if t == "credit-request":
        return f"credit request {b['amount'][0]} {b['amount'][1]}, method {b['method']} " \
               "(card and expiry sealed to the credit server)"
    if t == "credit-response":
        return "completion" if b["approved"] else f"refused: {b['reason']}"
    if t == "pos-completion":
        return f"{b['outcome']}" + (f" ({b['reason']})" if b["reason"] else "")
    if t == "completion-notice":
        return f"{b['outcome']} to the phone"
    if t == "session-error":
        return f"error: {b['reason']}"
    if t == "pos-receipt":
        return f"receipt printed: {b['outcome']}"
    if t == "card-number-request":
        return f"user id {b['user_id']} + merchant {b['merchant_code']} for an encrypted card " \
               "number"
    if t == "confirmation-mail":
        return f"confirmation mail to device {b['device_id']}: {b['amount'][0]} " \
               f"{b['amount'][1]} at shop {b['merchant_name']}"
    if t == "confirmation-reply":
        return "reply with the password (sealed to the gateway)"
    if t == "card-refused":
        return f"rejected: {b['reason']}"
    if t == "encrypted-card":
        return f"encrypted card number ({len(b['encrypted_card_number'])} bytes; no key), " \
               f"credit server {b['credit_server']}"
    if t == "key-distribution":
        return "ciphertext + decryption key (sealed to the credit server)"
    if t == "pos-credit-request":
        return f"credit request {b['amount'][0]} {b['amount'][1]} with the encrypted number"
    if t == "credit-answer":
        return "allowance" if b["allowed"] else f"failure of authentication ({b['reason']})"
    if t == "web-order":
        lines = ", ".join(f"{i['name']}×{i['quantity']}" for i in b["items"])
        return f"checkout at {b['shop_id']}: {lines} (+tax {b['tax']}), user id {b['user_id']}"
    if t == "web-order-result":
        return f"the web shop shows {b['outcome']}" + (f" ({b['reason']})" if b["reason"]
                                                          else "")
    if t == "wakeup-tick":
        return "deadline reached"
    if t == "dead-letter":
        return f"dead letter: {b['reason']}"
    return t


class Driver:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.operator = keys.load_actor(settings.keys_dir, "operator")
        self.producer: AIOKafkaProducer | None = None

    async def send(self, topic: str, msg: Any, key: str) -> None:
        assert self.producer is not None
        env = envelope.seal_envelope(msg, key, self.operator, SystemClock())
        await self.producer.send_and_wait(topic, envelope.encode(env), key=key.encode(),
                                          headers=env.headers())

    async def run(self, journeys: list[Journey], timeout_s: float, progress: bool) -> None:
        await asyncio.to_thread(wait_reachable, self.settings.bootstrap)
        watcher = Watcher(self.settings)
        await watcher.start()
        self.producer = AIOKafkaProducer(bootstrap_servers=self.settings.bootstrap, acks="all",
                                         enable_idempotence=False)
        await self.producer.start()
        try:
            for j in journeys:
                await self.one(watcher, j, timeout_s)
                if progress:
                    print(f"  {j.name}: {j.outcome or 'TIMEOUT'}", file=sys.stderr, flush=True)
        finally:
            await self.producer.stop()
            await watcher.stop()

    async def one(self, watcher: Watcher, j: Journey, timeout_s: float) -> None:
        j.started_ms = SystemClock().now_ms()
        t0 = time.monotonic()
        sale_sent = False
        keys_seen: list[Hop] = []
        if j.embodiment == 2:
            # S01: the user types their user id at the POS; the phone only confirms (K2).
            sale_sent = True
            await self.send("kessai.pos.sales", PosSale(
                j.pos_id, j.sale_ref, j.items, j.tax, "JPY", encrypted_card_user=j.user_id,
                method=j.method), j.pos_id)
        else:
            # Sa1–Sa6 first (the person logs in on the phone at the counter), then the clerk.
            # V3: no POS at hand; the phone only authenticates, the id is typed at the shop.
            await self.send("kessai.device.commands", DeviceCommand(
                j.device_id, "login", card=j.card, user_id=j.user_id,
                pos_id="" if j.webshop else j.pos_id, wrong_password=j.wrong_password),
                j.device_id)
        quiet_until: float | None = None
        while time.monotonic() - t0 < timeout_s:
            for h in await watcher.poll(200):
                if h.type == "key-distribution":
                    keys_seen.append(h)  # sent before the POS's copy names the ciphertext
                    continue
                if not j.related(h):
                    continue
                j.hops.append(h)
                b = h.body
                if h.type == "phone-screen" and b["device_id"] == j.device_id:
                    j.phone.append(f"{b['screen']}: {b['text']}")
                    if b["screen"] == "authenticated" and j.webshop and not sale_sent:
                        sale_sent = True
                        await self.send("kessai.webshop.orders", WebOrder(
                            j.webshop, j.sale_ref, j.user_id, j.items, j.tax), j.webshop)
                    elif b["screen"] == "handed_over" and not sale_sent:
                        sale_sent = True
                        await self.send("kessai.pos.sales", PosSale(
                            j.pos_id, j.sale_ref, j.items, j.tax, "JPY"), j.pos_id)
                    elif b["screen"] == "details":
                        await self.send("kessai.device.commands", DeviceCommand(
                            j.device_id, "agree" if j.agree else "not_agree"), j.device_id)
                    elif b["screen"] == "confirm":
                        await self.send("kessai.device.commands", DeviceCommand(
                            j.device_id, "confirm", wrong_password=j.wrong_password),
                            j.device_id)
                    elif b["screen"] == "methods":
                        await self.send("kessai.device.commands", DeviceCommand(
                            j.device_id, "choose", method=j.method), j.device_id)
                    elif b["screen"] in PHONE_END and not j.outcome:
                        j.outcome = f"PHONE_{b['screen'].upper()}"
                        if not sale_sent or b["screen"] == "stopped":
                            quiet_until = time.monotonic() + 1.0
                elif h.type == "encrypted-card" and b["request_ref"] == j.sale_ref:
                    j.encrypted = b["encrypted_card_number"]
                elif h.type == "txn-number" and b["sale_ref"] == j.sale_ref:
                    j.transaction_number = b["transaction_number"]
                elif h.type == "pos-receipt" and b["sale_ref"] == j.sale_ref:
                    j.outcome, j.receipt = b["outcome"], list(b["lines"])
                    quiet_until = time.monotonic() + 0.5
                elif h.type == "web-order-result" and b["order_ref"] == j.sale_ref:
                    j.outcome = b["outcome"]
                    j.receipt = [f"WEB SHOP {j.webshop}  ORDER {j.sale_ref}",
                                 f"TRANSACTION {b['transaction_number'] or '-'}",
                                 b["outcome"] + (f" ({b['reason']})" if b["reason"] else "")]
                    quiet_until = time.monotonic() + 0.5
            if quiet_until is not None and time.monotonic() > quiet_until:
                break
        j.hops += [h for h in keys_seen if j.related(h)]
        j.hops.sort(key=lambda h: (h.at_ms, h.topic, h.offset))
        j.elapsed_s = time.monotonic() - t0


def print_journey(j: Journey, out: Any = sys.stdout) -> None:
    r = j.report()
    out.write(f"\n{r['name']}: txn {j.transaction_number or '-'} (user {r['user']} on phone "
              f"{j.device_id} at {j.pos_id})  outcome {r['outcome']}  {r['elapsed_s']:.2f}s\n")
    for hop in r["journey"]:
        mark = "✓" if hop["signature_valid"] else "✗"
        out.write(f"   +{hop['t_ms'] / 1000:6.3f}s  {hop['topic']:<30} {hop['sender']:<15} "
                  f"{mark} {hop['summary']}\n")
    if j.receipt:
        out.write("   receipt:\n" + "".join(f"     | {line}\n" for line in j.receipt))


def demo_journeys() -> list[Journey]:
    return [
        Journey("happy path: installments at merchant A (Fig. 10: L, I, R)", method="I"),
        Journey("second card on the same phone (user 00004)", card="CARD B", method="R"),
        Journey("partial bonus at merchant B (issuer 2a22222)", pos_id="pos-2",
                device_id="2234567", method="pB"),
        Journey("wrong password on the phone: nothing sent", device_id="3345678",
                wrong_password=True, expect="PHONE_REJECTED"),
        Journey("card in no issuer range: stopped before the methods", device_id="5555555",
                expect="STOPPED"),
        Journey("web shop (V3): user id typed at checkout, phone confirms",
                pos_id="webshop-1", webshop="webshop-1", method="R"),
        Journey("embodiment 2: encrypted card number, confirmed on the phone", embodiment=2),
        Journey("embodiment 2: wrong password in the reply", pos_id="pos-2",
                device_id="2234567", embodiment=2, wrong_password=True, expect="REJECTED"),
    ]


def demo(settings: Settings, as_json: bool, timeout_s: float = 45.0) -> int:
    journeys = demo_journeys()
    if not as_json:
        print(f"kessai demo wakeup: {len(journeys)} mobile wake-up payments (seed 002) on "
              f"{settings.bootstrap}", flush=True)
    asyncio.run(Driver(settings).run(journeys, timeout_s, progress=not as_json))
    ok = all(j.outcome == j.expect for j in journeys)
    for j in journeys:
        if as_json:
            print(json.dumps(j.report(), ensure_ascii=False))
        else:
            print_journey(j)
    if not as_json:
        print("\nsummary:")
        for j in journeys:
            mark = "ok" if j.outcome == j.expect else "UNEXPECTED"
            print(f"  {j.name:<62} {j.outcome or 'TIMEOUT':<15} {mark}")
    sys.stdout.flush()
    return 0 if ok else 1


def journey_from_args(args: argparse.Namespace) -> Journey:
    if args.device not in devdata.WAKEUP_PHONES:
        raise ConfigError(f"unknown phone {args.device!r}; dev phones: "
                          f"{', '.join(devdata.WAKEUP_PHONES)}")
    webshop = getattr(args, "webshop", "")
    if webshop and webshop not in devdata.WAKEUP_WEBSHOPS:
        raise ConfigError(f"unknown web shop {webshop!r}; dev web shops: "
                          f"{', '.join(devdata.WAKEUP_WEBSHOPS)}")
    if webshop and args.embodiment == 2:
        raise ConfigError("--webshop is embodiment 1's V3; embodiment 2 pays at a POS")
    if args.pos not in devdata.WAKEUP_POS:
        raise ConfigError(f"unknown POS {args.pos!r}; dev POS: {', '.join(devdata.WAKEUP_POS)}")
    card = "CARD A" if args.card == "main" else args.card
    items = []
    catalogue = devdata.Catalogue().items
    for spec in args.item or ["TEA1:2", "MUG1:1"]:
        code, _, qty = spec.partition(":")
        if code not in catalogue or (qty and not qty.isdigit()):
            raise ConfigError(f"--item must be CODE[:QTY] with a code of {', '.join(catalogue)}")
        name, price = catalogue[code]
        items.append(SaleItem(name, int(qty or 1), price))
    j = Journey("pay", webshop or args.pos, args.device, card, args.method, not args.not_agree,
                args.wrong_password, items, tax=sum(i.price * i.quantity for i in items) // 10,
                embodiment=args.embodiment, webshop=webshop)
    j.user_id  # noqa: B018  (raises a clear error for a card the phone does not hold)
    return j


def run_pay(args: argparse.Namespace, settings: Settings) -> int:
    j = journey_from_args(args)
    asyncio.run(Driver(settings).run([j], args.timeout, progress=False))
    if args.json:
        print(json.dumps(j.report(), ensure_ascii=False))
    else:
        print_journey(j)
    return 0 if j.outcome else 1


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    return demo(settings, as_json=args.json, timeout_s=args.timeout)
