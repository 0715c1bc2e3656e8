"""The signed envelope and the sealed fields (DESIGN §3)."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest

from kessai import authenticators, crypto, envelope, keys
from kessai.clock import FakeClock
from kessai.errors import (
    BadSignature,
    DecodeError,
    SchemaError,
    SealError,
    StaleMessage,
    UnknownSender,
    UnknownType,
    UnsupportedVersion,
)
from kessai.money import Money
from schemas.v1 import FirstRequest, LineItem, OrderContent, ResultInquiry
from sim import devkeys

CONTENT = OrderContent([LineItem("XXXX", "pb", 500, 1)], "JPY", 25, 525)


@pytest.fixture(scope="module")
def kd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("keys")
    devkeys.init(d)
    return d


def make(kd: Path, actor: str = "shop-1", clock: FakeClock | None = None) -> bytes:
    msg = FirstRequest("shop-1", "o1", "o1", Money(525, "JPY"), "VIA_TERMINAL", content=CONTENT)
    env = envelope.seal_envelope(msg, "shop-1/o1", keys.load_actor(kd, actor),
                                 clock or FakeClock())
    return envelope.encode(env)


def test_round_trip_gives_back_the_message(kd: Path) -> None:
    opened = envelope.open_record(make(kd), keys.load_registry(kd))
    assert opened.message.amount == Money(525, "JPY")
    assert opened.envelope.sender == "shop-1" and opened.envelope.correlation_id == "shop-1/o1"


def test_headers_repeat_type_and_correlation_id(kd: Path) -> None:
    env = envelope.decode(make(kd))
    assert dict(env.headers()) == {"kessai-type": b"settlement-first",
                                   "kessai-correlation-id": b"shop-1/o1",
                                   "kessai-trace-id": env.trace_id.encode()}
    assert len(env.trace_id) == 32


@pytest.mark.parametrize("field", ["b", "cid", "s", "ts", "t"])
def test_changing_any_signed_field_breaks_the_signature(kd: Path, field: str) -> None:
    m = msgpack.unpackb(make(kd))
    m[field] = {"b": m["b"][:-1] + bytes([m["b"][-1] ^ 1]), "cid": "shop-1/o2", "s": "shop-2",
                "ts": m["ts"] + 1, "t": "result-inquiry"}[field]
    with pytest.raises((BadSignature, SchemaError)):
        envelope.open_record(msgpack.packb(m), keys.load_registry(kd))


def test_unknown_sender_is_rejected(kd: Path) -> None:
    m = msgpack.unpackb(make(kd))
    m["s"] = "mallory"
    with pytest.raises(UnknownSender):
        envelope.open_record(msgpack.packb(m), keys.load_registry(kd))


def test_garbage_is_a_decode_error(kd: Path) -> None:
    for raw in (b"", b"\xff\xfe", msgpack.packb([1, 2]), msgpack.packb({"v": 1})):
        with pytest.raises(DecodeError):
            envelope.open_record(raw, keys.load_registry(kd))


def test_unknown_type_and_version_are_rejected_before_crypto(kd: Path) -> None:
    m = msgpack.unpackb(make(kd))
    with pytest.raises(UnknownType):
        envelope.open_record(msgpack.packb({**m, "t": "no-such-type"}), keys.load_registry(kd))
    with pytest.raises(UnsupportedVersion):
        envelope.open_record(msgpack.packb({**m, "v": 99}), keys.load_registry(kd))


def test_stale_message_is_rejected(kd: Path) -> None:
    raw = make(kd, clock=FakeClock(1_000_000))
    with pytest.raises(StaleMessage):
        envelope.open_record(raw, keys.load_registry(kd), now_ms=1_000_000 + 61_000,
                             max_age_ms=60_000)


def test_schema_violation_is_rejected(kd: Path) -> None:
    shop = keys.load_actor(kd, "shop-1")
    body = msgpack.packb({"shop_id": "shop-1", "order_id": 7})  # order_id must be a string
    env = envelope.Envelope(1, ResultInquiry.TYPE, "id1", "c", "shop-1", 1, shop.kid, body, b"")
    env = envelope.Envelope(**{**env.__dict__,
                               "signature": crypto.sign(shop.signing_private,
                                                        env.signed_bytes())})
    with pytest.raises(SchemaError):
        envelope.open_record(envelope.encode(env), keys.load_registry(kd))


def test_first_request_with_a_card_number_field_is_rejected(kd: Path) -> None:
    # R21: account info may never ride in the shop's 1st request.
    shop = keys.load_actor(kd, "shop-1")
    m = msgpack.unpackb(make(kd))
    body = msgpack.unpackb(m["b"])
    body["pan"] = "4111111111111111"
    m["b"] = msgpack.packb(body)
    signed = envelope.signed_bytes(m["v"], m["t"], m["id"], m["cid"], m["s"], m["ts"], m["kid"],
                                   m["b"], m["tr"])
    m["sig"] = crypto.sign(shop.signing_private, signed)
    with pytest.raises(SchemaError) as err:
        envelope.open_record(msgpack.packb(m), keys.load_registry(kd))
    assert "4111" not in str(err.value)


def test_money_is_integer_minor_units_with_a_currency() -> None:
    with pytest.raises(SchemaError):
        Money(11.55, "JPY")  # type: ignore[arg-type]
    with pytest.raises(SchemaError):
        Money(1155, "yen")
    assert str(Money(1155, "JPY")) == "1155 JPY" and str(Money(1155, "USD")) == "11.55 USD"


def test_sealed_account_opens_only_for_its_order_and_with_the_settlement_key(kd: Path) -> None:
    reg = keys.load_registry(kd)
    settlement = keys.load_actor(kd, "settlement")
    issuer = keys.load_actor(kd, "issuer")
    sealed = crypto.seal(reg.sealing["settlement"][1],
                         authenticators.pack_account("4111111111111111", "2031-12"),
                         authenticators.account_context("shop-1/o1"))
    assert b"4111111111111111" not in sealed
    opened = crypto.open_sealed(settlement.seal_private, sealed,  # type: ignore[arg-type]
                                authenticators.account_context("shop-1/o1"))
    assert authenticators.unpack_account(opened) == ("4111111111111111", "2031-12")
    with pytest.raises(SealError):
        crypto.open_sealed(settlement.seal_private, sealed,  # type: ignore[arg-type]
                           authenticators.account_context("shop-1/o2"))
    with pytest.raises(SealError):
        crypto.open_sealed(issuer.seal_private, sealed,  # type: ignore[arg-type]
                           authenticators.account_context("shop-1/o1"))


def test_shop_authenticator_detects_any_change(kd: Path) -> None:
    key = bytes.fromhex(keys.load_actor(kd, "shop-1").secrets["settlement_mac"])
    tag = authenticators.shop_authenticator(key, "shop-1", "o1", "DECLINED", Money(525, "JPY"))
    assert authenticators.shop_authenticator_ok(key, "shop-1", "o1", "DECLINED",
                                                Money(525, "JPY"), tag)
    assert not authenticators.shop_authenticator_ok(key, "shop-1", "o1", "APPROVED",
                                                    Money(525, "JPY"), tag)
    other = bytes.fromhex(keys.load_actor(kd, "shop-2").secrets["settlement_mac"])
    assert not authenticators.shop_authenticator_ok(other, "shop-1", "o1", "DECLINED",
                                                    Money(525, "JPY"), tag)


def test_passwords_are_stored_only_as_salted_hashes(kd: Path) -> None:
    text = (kd / "actors" / "settlement.json").read_text()
    assert "bob-dev-password" not in text
    salt, digest = crypto.hash_password("pw")
    assert crypto.password_ok("pw", salt, digest) and not crypto.password_ok("pw2", salt, digest)
    assert crypto.hash_password("pw")[1] != digest  # a fresh salt each time
