"""Cookie emulation for terminals without cookies (FIG. 6; spec R28, R29, R29a).

The wallet tells sessions apart by a cookie, ``session_id=…`` ([d:276]). The relay takes the
id out of the wallet's cookie (FIG. 6 ①), gives the terminal a hidden string in its pages
instead (②), and turns that string back into the cookie on the terminal's next request (③).

The hidden string is a *token*: the relay's own session id and an HMAC tag over it, so a
terminal cannot make one up or change one (R29a). It does not carry the wallet's cookie: which
cookie belongs to which relay session is the relay's state, and the terminal never sees a raw
cookie (R28 (c), R43).
"""

from __future__ import annotations

import base64
import hmac
import re

from kessai.crypto import mac
from kessai.errors import ConfigError, DecodeError, IntegrityError

COOKIE_NAME = "session_id"
TAG_BYTES = 16  # a 128-bit truncated HMAC-SHA256 tag: unforgeable, and short on a phone page
_DOMAIN = b"kessai/relay-session/v1\x00"  # so a tag made here means nothing anywhere else
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_TAG = re.compile(r"[A-Za-z0-9_-]{22}")  # TAG_BYTES in unpadded url-safe base64
_COOKIE_VALUE = re.compile(r"[!#-+\--:<-\[\]-~]{1,256}")  # RFC 6265 cookie-octets


class ForgedSession(IntegrityError):
    """A session token that the relay did not make (or that was changed)."""

    code = "forged_session"


class BadCookie(DecodeError):
    code = "bad_cookie"


def _tag(key: bytes, relay_session_id: str) -> bytes:
    return mac(key, _DOMAIN + relay_session_id.encode())[:TAG_BYTES]


def new_token(key: bytes, relay_session_id: str) -> str:
    """The hidden string for ``relay_session_id``: ``<id>.<tag>``, url-safe, and safe inside an
    HTML attribute or comment.

    Raises:
        ConfigError: the id is not 1–128 characters of ``A-Z a-z 0-9 _ -``.
    """
    if not _SESSION_ID.fullmatch(relay_session_id):
        raise ConfigError("a relay session id must be 1-128 characters of A-Z a-z 0-9 _ -")
    tag = base64.urlsafe_b64encode(_tag(key, relay_session_id)).rstrip(b"=").decode()
    return f"{relay_session_id}.{tag}"


def read_token(key: bytes, token: str) -> str:
    """The relay session id in ``token`` (FIG. 6 ③, first half).

    Raises:
        ForgedSession: malformed, or the tag does not match (R29a). The message does not
            repeat the token.
    """
    session_id, _, tag_text = token.rpartition(".")
    if not (_SESSION_ID.fullmatch(session_id) and _TAG.fullmatch(tag_text)):
        raise ForgedSession("the session string is not one the relay issued")
    # Compare whole canonical strings, not decoded tags: base64's spare low bits would let
    # a changed last character decode to the same tag.
    if not hmac.compare_digest(new_token(key, session_id).encode(), token.encode()):
        raise ForgedSession("the session string is not one the relay issued")
    return session_id


def cookie_of(set_cookie: str) -> str:
    """FIG. 6 ①: the session id in the wallet's ``session_id=…; Path=/`` (a leading
    ``Set-Cookie:`` is allowed). An empty value means the contents set no cookie: "".

    Raises:
        BadCookie: a non-empty value without a well-formed ``session_id``.
    """
    text = set_cookie.strip()
    if text[:11].lower() == "set-cookie:":
        text = text[11:].strip()
    if not text:
        return ""
    name, sep, value = text.split(";", 1)[0].partition("=")
    value = value.strip()
    if not sep or name.strip() != COOKIE_NAME or not _COOKIE_VALUE.fullmatch(value):
        raise BadCookie(f"the wallet's cookie does not start with a well-formed {COOKIE_NAME}")
    return value


def cookie_header(session_id: str) -> str:
    """FIG. 6 ③: the cookie the relay attaches when forwarding to the wallet.

    Raises:
        BadCookie: an id that a cookie cannot carry.
    """
    if not _COOKIE_VALUE.fullmatch(session_id):
        raise BadCookie(f"a {COOKIE_NAME} cannot carry that value")
    return f"{COOKIE_NAME}={session_id}"
