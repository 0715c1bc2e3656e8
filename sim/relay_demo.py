"""`kessai demo relay`: one purchase from a simulated phone through the relay (seeds 000/001,
FIG. 3), against a running system (`kessai up`). The phone browses the shop, confirms, presses
the final-payment button (which points at the relay), logs in at its preset wallet, agrees the
conditions, approves and inquires until the result. Every HTTP exchange (with the size of the
page the relay converted for the phone) and every bus hop of the payment is printed in order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from typing import Any

from kessai.broker import wait_reachable
from kessai.errors import ConfigError
from kessai.settings import Settings
from sim import devdata
from sim.journey import Hop, Watcher, summary
from sim.phone import Exchange, Phone, PhoneError, Screen

FIG5 = [("XXXX", 1), ("YYYY", 1)]
_TXN = re.compile(r"txn-[0-9a-f]{20}")
_SID = re.compile(r"rs-[0-9a-f]{24}")


def relay_summary(h: Hop) -> str:
    """One line per relay-flow message (the seed-003 ones as ``sim.journey`` says)."""
    b, t = h.body, h.type
    amount = b.get("amount")
    money = f"{amount[0]} {amount[1]}" if isinstance(amount, list) else ""
    if t == "relay-procedure-request":
        return f"③④ procedure request: cart {b['cart_id']} at {b['shop_id']} ({b['flow']})"
    if t == "relay-payment-information":
        return f"⑤ payment information {money}, wallets {', '.join(b['usable_wallets'])}"
    if t == "wallet-payment-information":
        return f"⑥ payment information → {b['wallet_id']} (the shop's envelope, unchanged)"
    if t == "wallet-contents":
        return f"{b['kind']} contents from {b['wallet_id']}" + (
            " (with its session cookie)" if b.get("set_cookie") else "")
    if t == "wallet-login":
        return f"⑩ login of {b['user_name']} (password sealed, cookie restored)"
    if t == "wallet-conditions":
        return f"conditions: {b['card_brand']}, {b['method']}"
    if t == "wallet-final-approval":
        return "⑪' final approval"
    if t == "set-payment-request":
        return f"⑪ payment request, certificate {b['certificate']['serial']} (card sealed)"
    if t == "set-payment-request-forwarded":
        return "⑪ carried by the shop to the gateway, unchanged"
    if t == "set-approval-response":
        return f"⑫ {'approved' if b['approved'] else 'declined: ' + b['reason']} {money}"
    if t == "set-approval-forwarded":
        return "⑫ carried by the shop to the wallet, unchanged"
    if t == "relay-terminal-traffic":
        return f"terminal {b['direction']} {b['path']} {b['kind']} ({b['size']} bytes)"
    return summary(h)


def _related(h: Hop, ids: set[str]) -> bool:
    b = h.body
    text = " ".join(str(v) for v in (h.key, h.correlation_id, b.get("txn_id"),
                                     b.get("session"), b.get("join_key")) if v)
    if not any(i in text for i in ids):
        return False
    if b.get("shop_id") and b.get("order_id"):
        ids.add(f"{b['shop_id']}/{b['order_id']}")
    return True


async def purchase(settings: Settings, shop_url: str, profile: str, user: str,
                   timeout_s: float) -> dict[str, Any]:
    """Drive the phone and watch the bus; returns the journey as one report."""
    account = next((a for a in devdata.WALLET_ACCOUNTS
                    if (a.wallet_id, a.user_id) == (devdata.RELAY_PRESET_WALLET.get(user),
                                                    user)), None)
    if account is None:
        raise ConfigError(f"user {user!r} has no preset wallet for the relay demo; "
                          f"try one of {', '.join(devdata.RELAY_PRESET_WALLET)}")
    watcher = Watcher(settings)
    await watcher.start()
    hops: list[Hop] = []
    stop = asyncio.Event()

    async def watch() -> None:
        while not stop.is_set():
            hops.extend(await watcher.poll(200))

    watching = asyncio.create_task(watch())
    phone = Phone(profile, timeout_s=timeout_s)
    error = ""
    try:
        async with phone:
            await phone.shop_for(shop_url, "shop-1", FIG5)
            await phone.submit("/pay", {"user": user}, button="set-wallet")
            await _until(phone, "login", timeout_s)
            await phone.submit("/login", {"user_name": user, "password": account.password})
            await _until(phone, "conditions", timeout_s)
            await phone.submit("/conditions")
            await _until(phone, "confirming", timeout_s)
            await phone.submit("/approve")
            await phone.inquire_until(lambda s: s.kind != "progress", timeout_s=timeout_s)
    except (PhoneError, OSError) as exc:
        error = str(exc) or type(exc).__name__
    finally:
        await asyncio.sleep(1.0)  # trailing hops (the shop's status, traffic records)
        stop.set()
        await watching
        await watcher.stop()
    return _report(phone, hops, error)


async def _until(phone: Phone, kind: str, timeout_s: float) -> Screen:
    screen = await phone.inquire_until(lambda s: s.kind != "progress", timeout_s=timeout_s)
    if screen.kind != kind:
        raise PhoneError(f"expected the {kind} page, got: {screen.text[:160]}")
    return screen


def _report(phone: Phone, hops: list[Hop], error: str) -> dict[str, Any]:
    ids: set[str] = set()
    for screen in phone.screens:
        ids |= set(_SID.findall(screen.html)) | set(_TXN.findall(screen.text))
    mine = [h for h in sorted(hops, key=lambda h: (h.at_ms, h.topic, h.offset))
            if ids and _related(h, ids)]
    last = phone.screen
    t0 = phone.exchanges[0].at_ms if phone.exchanges else 0
    events: list[tuple[int, dict[str, Any]]] = []
    for x in phone.exchanges:
        events.append((x.at_ms, _exchange_json(x, t0)))
    for h in mine:
        events.append((h.at_ms, {"t_ms": h.at_ms - t0, "topic": h.topic, "type": h.type,
                                 "sender": h.sender, "signature_valid": h.signature_valid,
                                 "summary": relay_summary(h)}))
    outcome = "ERROR" if error else ("APPROVED" if last and "completed" in last.text
                                     else "NOT_APPROVED")
    return {"outcome": outcome, "error": error,
            "txn_id": next((i for i in sorted(ids) if i.startswith("txn-")), ""),
            "session": next((i for i in sorted(ids) if i.startswith("rs-")), ""),
            "result_page": last.text if last else "",
            "journey": [e for _, e in sorted(events, key=lambda e: e[0])]}


def _exchange_json(x: Exchange, t0: int) -> dict[str, Any]:
    return {"t_ms": x.at_ms - t0, "http": f"{x.method} {x.url}", "status": x.status,
            "page": x.kind, "visible_chars": x.chars, "bytes": x.size}


def print_report(report: dict[str, Any], profile: str, out: Any = sys.stdout) -> None:
    out.write(f"\nrelay purchase as a {profile}: {report['outcome']}  "
              f"txn {report['txn_id'] or '?'}  session {report['session'] or '?'}\n")
    for e in report["journey"]:
        at = f"+{e['t_ms'] / 1000:6.3f}s"
        if "http" in e:
            out.write(f"   {at}  HTTP {profile:<6} {e['http']:<28} {e['status']} "
                      f"{e['page']:<16} {e['visible_chars']:>4} chars {e['bytes']:>5} bytes\n")
        else:
            mark = "✓" if e["signature_valid"] else "✗"
            out.write(f"   {at}  {e['topic']:<34} {e['sender']:<9} {mark} {e['summary']}\n")
    out.write(f"\nthe {profile} shows: {report['result_page']}\n")
    if report["error"]:
        out.write(f"error: {report['error']}\n")


def _port_url(var: str, default: int) -> str:
    raw = os.environ.get(var) or str(default)
    if not raw.isdigit():
        raise ConfigError(f"{var} must be a port number, got {raw!r}")
    return f"http://127.0.0.1:{raw}"


def run_relay_demo(args: argparse.Namespace, settings: Settings) -> int:
    shop_url = (getattr(args, "shop_url", None) or _port_url("KESSAI_SHOP_HTTP_PORT", 8450))
    profile = getattr(args, "profile", None) or "phone"
    user = getattr(args, "user", None) or "alice"
    wait_reachable(settings.bootstrap, timeout_s=5)
    started = time.monotonic()
    # The shop's confirm page names the relay (KESSAI_RELAY_URL of the shop worker); the
    # phone follows its final-payment button there.
    report = asyncio.run(purchase(settings, shop_url.rstrip("/"), profile, user,
                                  getattr(args, "timeout", 60.0)))
    report["elapsed_s"] = round(time.monotonic() - started, 3)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print_report(report, profile)
    return 0 if report["outcome"] == "APPROVED" else 1
