"""How the agents' SQLite stores sync a commit: by broker kind, overridable, applied to every
store the hot path writes (issue 6: the issuer's and the shop's fsync per batch)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.issuer.ledger import Ledger
from agents.shop.orders import OrderDB
from kessai.errors import ConfigError
from kessai.settings import Settings

# SQLite's own numbers for PRAGMA synchronous.
NORMAL, FULL = 1, 2


def test_the_embedded_broker_syncs_normal_and_a_real_cluster_full(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KESSAI_STORE_SYNC", raising=False)
    assert Settings.from_env(broker_kind="embedded").sqlite_synchronous == "NORMAL"
    assert Settings.from_env(broker_kind="kafka").sqlite_synchronous == "FULL"
    monkeypatch.setenv("KESSAI_STORE_SYNC", "full")
    assert Settings.from_env(broker_kind="embedded").sqlite_synchronous == "FULL"
    monkeypatch.setenv("KESSAI_STORE_SYNC", "Normal")
    assert Settings.from_env(broker_kind="kafka").sqlite_synchronous == "NORMAL"


def test_a_worker_inherits_the_store_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KESSAI_STORE_SYNC", "full")
    parent = Settings.from_env(broker_kind="embedded")
    for name, value in parent.child_env().items():
        monkeypatch.setenv(name, value)
    assert Settings.from_env().sqlite_synchronous == "FULL"


def test_an_unknown_store_sync_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KESSAI_STORE_SYNC", "off")
    with pytest.raises(ConfigError, match="KESSAI_STORE_SYNC"):
        Settings.from_env()




@pytest.mark.parametrize("mode, number", [("NORMAL", NORMAL), ("FULL", FULL)])
async def test_the_shop_order_db_and_the_issuer_ledger_use_the_setting(
        tmp_path: Path, mode: str, number: int) -> None:
    orders = OrderDB(tmp_path / "shop.sqlite", synchronous=mode)
    await orders.open()
    ledger = await Ledger.open(tmp_path / "ledger.sqlite", synchronous=mode)
    try:
        # The pragma is per connection: read it on the store's own one.
        for conn in (await orders._db(), ledger._db):
            async with conn.execute("PRAGMA synchronous") as cur:
                assert (await cur.fetchone()) == (number,)
    finally:
        await orders.close()
        await ledger.close()


def test_a_store_refuses_an_unknown_sync_mode(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="synchronous"):
        OrderDB(tmp_path / "shop.sqlite", synchronous="OFF")
