"""The signed envelope every kessai record value is (DESIGN §3).

Wire form (msgpack map): ``v`` schema version, ``t`` message type, ``id`` message id,
``cid`` correlation id, ``s`` sender actor, ``ts`` created-at (ms), ``kid`` signing key id,
``b`` body (msgpack bytes), ``sig`` Ed25519 signature, ``tr`` trace id (one per purchase,
carried across every hop and flow; issue 6 item 6).

A record emitted while a handler runs inherits the trace of the record being handled
(:data:`CURRENT_TRACE`, set by the door); a record emitted outside any handler starts a trace.

The signature covers a domain-separation prefix, the header fields and the body bytes, so no
field can be changed or moved between envelopes without detection.
"""

from __future__ import annotations

import contextvars
import uuid
from dataclasses import dataclass
from typing import Any

import msgpack

from kessai import crypto
from kessai.clock import Clock
from kessai.errors import (
    BadSignature,
    DecodeError,
    SchemaError,
    StaleMessage,
    UnknownSender,
)
from kessai.keys import ActorKeys, Registry
from schemas.codec import from_body, message_class, to_body

DOMAIN = b"kessai/envelope/v1\x00"
HEADER_TYPE = "kessai-type"
HEADER_CID = "kessai-correlation-id"
HEADER_TRACE = "kessai-trace-id"

#: The trace of the record being handled; what :func:`seal_envelope` stamps by default.
CURRENT_TRACE: contextvars.ContextVar[str] = contextvars.ContextVar("kessai_trace", default="")


def new_trace_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Envelope:
    version: int
    type: str
    id: str
    correlation_id: str
    sender: str
    created_ms: int
    kid: str
    body: bytes
    signature: bytes
    trace_id: str = ""

    def signed_bytes(self) -> bytes:
        return signed_bytes(self.version, self.type, self.id, self.correlation_id, self.sender,
                            self.created_ms, self.kid, self.body, self.trace_id)

    def headers(self) -> list[tuple[str, bytes]]:
        return [(HEADER_TYPE, self.type.encode()), (HEADER_CID, self.correlation_id.encode()),
                (HEADER_TRACE, self.trace_id.encode())]


def signed_bytes(version: int, type_: str, id_: str, cid: str, sender: str, created_ms: int,
                 kid: str, body: bytes, trace_id: str = "") -> bytes:
    header = msgpack.packb([version, type_, id_, cid, sender, created_ms, kid, trace_id])
    return DOMAIN + header + body


def pack_body(obj: Any) -> bytes:
    return msgpack.packb(to_body(obj), use_bin_type=True)


def seal_envelope(obj: Any, correlation_id: str, keys: ActorKeys, clock: Clock,
                  trace_id: str | None = None) -> Envelope:
    """Sign ``obj`` (a registered message) into an envelope from ``keys.actor``.

    The trace is ``trace_id``, else the trace of the record being handled, else a new one.
    """
    body = pack_body(obj)
    trace = trace_id or CURRENT_TRACE.get() or new_trace_id()
    env = Envelope(obj.VERSION, obj.TYPE, uuid.uuid4().hex, correlation_id, keys.actor,
                   clock.now_ms(), keys.kid, body, b"", trace)
    sig = crypto.sign(keys.signing_private, env.signed_bytes())
    return Envelope(**{**env.__dict__, "signature": sig})


def encode(env: Envelope) -> bytes:
    return msgpack.packb({
        "v": env.version, "t": env.type, "id": env.id, "cid": env.correlation_id,
        "s": env.sender, "ts": env.created_ms, "kid": env.kid, "b": env.body,
        "sig": env.signature, "tr": env.trace_id,
    }, use_bin_type=True)


def decode(raw: bytes) -> Envelope:
    """Parse the envelope structure. Raises DecodeError; checks no signature."""
    try:
        m = msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except Exception as exc:
        raise DecodeError("value is not msgpack") from exc
    if not isinstance(m, dict):
        raise DecodeError("envelope is not a map")
    spec = {"v": int, "t": str, "id": str, "cid": str, "s": str, "ts": int, "kid": str,
            "b": bytes, "sig": bytes}
    for name, tp in spec.items():
        if not isinstance(m.get(name), tp) or isinstance(m.get(name), bool):
            raise DecodeError(f"envelope field {name!r} missing or not {tp.__name__}")
    trace = m.get("tr", "")
    if not isinstance(trace, str):
        raise DecodeError("envelope field 'tr' is not str")
    return Envelope(m["v"], m["t"], m["id"], m["cid"], m["s"], m["ts"], m["kid"], m["b"],
                    m["sig"], trace)


def verify(env: Envelope, registry: Registry) -> None:
    known = registry.signing_key(env.sender)
    if known is None:
        raise UnknownSender(f"sender {env.sender!r} is not in the key registry")
    kid, public = known
    if env.kid != kid:
        raise BadSignature(f"key id {env.kid} is not {env.sender}'s current key")
    crypto.verify(public, env.signature, env.signed_bytes())


def check_fresh(env: Envelope, now_ms: int, max_age_ms: int, max_skew_ms: int = 60_000) -> None:
    age = now_ms - env.created_ms
    if age > max_age_ms:
        raise StaleMessage(f"message is {age // 1000}s old (limit {max_age_ms // 1000}s)")
    if age < -max_skew_ms:
        raise StaleMessage(f"message is {-age // 1000}s in the future")


def body_of(env: Envelope) -> Any:
    """Decode the body into its message dataclass (version checked)."""
    cls = message_class(env.type, env.version)
    try:
        raw = msgpack.unpackb(env.body, raw=False, strict_map_key=True)
    except Exception as exc:
        raise DecodeError("body is not msgpack") from exc
    return from_body(cls, raw)


@dataclass(frozen=True)
class Opened:
    envelope: Envelope
    message: Any


def open_record(raw: bytes, registry: Registry, *, now_ms: int | None = None,
                max_age_ms: int | None = None) -> Opened:
    """decode → verify signature → check freshness → decode body. The one door into an agent."""
    env = decode(raw)
    message_class(env.type, env.version)  # unknown type/version before any crypto work
    verify(env, registry)
    if now_ms is not None and max_age_ms is not None:
        check_fresh(env, now_ms, max_age_ms)
    try:
        msg = body_of(env)
    except SchemaError:
        raise
    return Opened(env, msg)
