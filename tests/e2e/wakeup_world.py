"""Seed 002 scenario helpers: drive the clerk and the phone's user, read what happened, on
either tier (the in-memory bus or the real broker with every agent a worker process)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from kessai import envelope
from schemas.wakeup import DeviceCommand, PhoneScreen, PosSale, Receipt, SaleItem
from tests.e2e import bus as broker_bus
from tests.e2e.tiers import MemoryTier, Tier, wait_for_after

# One set of timings for both tiers ([X] values, shortened so the broker tier can wait them
# out); the e2e system fixture gives its workers the same through the environment.
WAKEUP_ENV = {
    "KESSAI_PAYGATE_DEVICE_WAIT_MS": "8000",
    "KESSAI_PAYGATE_CONFIRM_MS": "8000",
    "KESSAI_PAYGATE_METHOD_MS": "20000",
    "KESSAI_DEVICE_RESPONSE_MS": "5000",
    "KESSAI_DEVICE_AUTH_TTL_MS": "12000",
    "KESSAI_PAYGATE_REPLY_MS": "15000",
    "KESSAI_CREDIT_KEY_WAIT_MS": "3000",
    "KESSAI_POS_POLL_MS": "500",
}
POLL_MS = int(WAKEUP_ENV["KESSAI_POS_POLL_MS"])
WAKEUP_AGENTS = ("paygate", "direction", "pos", "device", "issuer", "webshop")
FIG16_ITEMS = [SaleItem("Sencha 100g", 2, 1200), SaleItem("Mug", 1, 1800)]
TAX = 420
TOTAL = 2 * 1200 + 1800 + TAX


def ref() -> str:
    return "s-" + uuid.uuid4().hex[:10]


async def sale(tier: Tier, pos_id: str, sale_ref: str, use_service: bool = True) -> None:
    await tier.send("kessai.pos.sales", PosSale(pos_id, sale_ref, FIG16_ITEMS, TAX, "JPY",
                                                use_service), pos_id, "operator")
    await next_poll(tier)


async def next_poll(tier: Tier) -> None:
    """In memory, time moves only when told: let the POS's poll timer come round once (on
    the broker it comes round by itself)."""
    if isinstance(tier, MemoryTier):
        await tier.elapse(POLL_MS)


async def press(tier: Tier, device_id: str, action: str, **kw: Any) -> None:
    await tier.send("kessai.device.commands", DeviceCommand(device_id, action, **kw),  # type: ignore[arg-type]
                    device_id, "operator")
    if action == "login":
        await next_poll(tier)  # the hand-over waits in the mobile terminal for a poll


async def raw_values(tier: Tier, topic: str) -> list[bytes]:
    """The value bytes of every record on ``topic`` so far, decodable or not."""
    if isinstance(tier, MemoryTier):
        await tier.bus.drain()
        return [r.value for r in tier.bus.log.get(topic, [])]
    return [r.value for r in await broker_bus.read_all(tier.settings, topic)]


async def records(tier: Tier, topic: str) -> list[tuple[Any, Any]]:
    """(envelope, message) of every record on ``topic`` so far."""
    out = []
    for value in await raw_values(tier, topic):
        env = envelope.decode(value)
        out.append((env, envelope.body_of(env)))
    return out


async def messages(tier: Tier, topic: str, kind: type | None = None) -> list[Any]:
    return [m for _, m in await records(tier, topic) if kind is None or isinstance(m, kind)]


async def screen(tier: Tier, device_id: str, name: str, after: int = 0,
                 timeout: float = 30.0, after_ms: int = 0) -> PhoneScreen:
    """The first screen ``name`` the phone showed after its ``after`` first screens, once
    ``after_ms`` of time have passed (see :func:`tests.e2e.tiers.wait_for_after`)."""
    if isinstance(tier, MemoryTier):
        await tier.elapse(after_ms)
    else:
        timeout += after_ms / 1000
    seen: list[int] = [0]

    def match(m: Any) -> bool:
        if not (isinstance(m, PhoneScreen) and m.device_id == device_id):
            return False
        seen[0] += 1
        return seen[0] > after and m.screen == name

    async def probe() -> PhoneScreen:
        seen[0] = 0
        for m in await messages(tier, "kessai.device.screens"):
            if match(m):
                return m  # type: ignore[no-any-return]
        raise TimeoutError(f"{device_id} never showed {name}")

    return await eventually(tier, probe, timeout)


async def screens_of(tier: Tier, device_id: str) -> list[PhoneScreen]:
    return [m for m in await messages(tier, "kessai.device.screens", PhoneScreen)
            if m.device_id == device_id]


async def receipt(tier: Tier, pos_id: str, sale_ref: str, timeout: float = 30.0,
                  after_ms: int = 0) -> Receipt:
    """The POS's receipt for the sale, once ``after_ms`` of time have passed."""
    return await wait_for_after(  # type: ignore[no-any-return]
        tier, after_ms, "kessai.pos.receipts",
        lambda m: isinstance(m, Receipt) and m.pos_id == pos_id and m.sale_ref == sale_ref,
        timeout)


async def eventually(tier: Tier, probe: Any, timeout: float = 30.0) -> Any:
    """``probe()`` once on the in-memory bus (it has settled); retried on the broker."""
    if isinstance(tier, MemoryTier):
        return await probe()
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await probe()
        except (TimeoutError, AssertionError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
