"""What every relay flow shares: sessions and their hidden strings, the contents converter's
entry point, the terminal's view of a session, stepping a session while sending one message,
and the keep-alive wait. The flows (``setwallet``: FIG. 3; ``twosided``; ``enrol``) read as their
protocol steps on top of this.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agents.relay import flow, sessions
from agents.relay.config import RelayConfig
from agents.relay.pages import Action, convert, error_page, progress_page
from agents.relay.profiles import Profile, UnknownProfile, load_profiles, profile
from agents.relay.store import RelayDB, RelaySession
from agents.relay.templates import MissingItem
from agents.relay.waiting import Waiters
from kessai.runtime import AgentContext

log = logging.getLogger("kessai.relay")


@dataclass(frozen=True)
class View:
    """What the HTTP server 43 sends the terminal: one page and what it is."""

    html: str
    kind: str
    session: RelaySession | None = None
    status: int = 200
    profile: str = ""

    @property
    def size(self) -> int:
        return len(self.html.encode())


class Refused(Exception):
    """A terminal request the relay answers with an error page only (carries that page)."""

    def __init__(self, view: View) -> None:
        super().__init__(view.kind)
        self.view = view


@dataclass
class RelayCore:
    ctx: AgentContext
    db: RelayDB
    config: RelayConfig
    waiters: Waiters

    @property
    def session_key(self) -> bytes:
        return bytes.fromhex(self.ctx.actor_keys("relay").secrets["session_key"])

    def now(self) -> int:
        return self.ctx.clock.now_ms()

    # -- terminal profiles -------------------------------------------------------------------

    def profile_of(self, name: str) -> Profile:
        return profile(name)

    @staticmethod
    def fallback_profile() -> Profile:
        """For pages to a terminal whose profile is unknown: the most limited one."""
        return min(load_profiles().values(), key=lambda p: (p.max_content_bytes, p.max_chars))

    async def refuse_profile(self, exc: UnknownProfile, path: str) -> View:
        await self.ctx.audit("unknown-profile", f"relay:{path}", str(exc))
        return self.error_view(self.fallback_profile(), str(exc), status=400)

    # -- sessions ----------------------------------------------------------------------------

    async def new_session(self, flow_name: flow.Flow, prof: Profile, **fields: Any) -> RelaySession:
        sid = "rs-" + secrets.token_hex(12)
        now = self.now()
        session = RelaySession(sid=sid, token=sessions.new_token(self.session_key, sid),
                               flow=flow_name, profile=prof.name,
                               stage=flow.first_stage(flow_name), created_ms=now,
                               updated_ms=now, **fields)
        await self.db.create(session)
        return session

    async def session_of(self, token: str, path: str) -> RelaySession:
        """The session behind a hidden string (FIG. 6 ③), or an error page (R29a, R47).

        Raises:
            Refused: a forged or malformed string, a session the relay does not hold, or one
                that has expired; each is audited.
        """
        fallback = self.fallback_profile()
        try:
            sid = sessions.read_token(self.session_key, token)
        except sessions.ForgedSession:
            await self.ctx.audit("forged-session", f"relay:{path}",
                                 "a terminal sent a session string the relay did not issue")
            raise Refused(self.error_view(
                fallback, "This page is not valid any more. Please start the payment again "
                "from the shop.", status=403)) from None
        session = await self.db.get(sid)
        if session is None:
            await self.ctx.audit("unknown-session", f"relay:{sid}",
                                 "a valid session string for a session the relay does not hold")
            raise Refused(self.error_view(
                fallback, "This payment is not known here. Please start again from the shop.",
                status=404))
        if self.now() - session.created_ms > self.config.session_ttl_ms:
            await self.ctx.audit("expired-session", f"relay:{sid}",
                                 f"session string used after {self.config.session_ttl_ms} ms")
            raise Refused(self.error_view(
                self.profile_of(session.profile), "This payment session has expired. Please "
                "start again from the shop.", status=410))
        return session

    # -- the contents converter (claims 4–7, 13, 14) -----------------------------------------

    def convert(self, kind: str, source: str, session: RelaySession,
                actions: Sequence[Action] = (), title: str = "") -> list[str]:
        """Contents for the terminal, summarized and divided for its profile (R19–R27).

        Raises:
            MissingItem: the contents lack an item the template requires (R23).
        """
        pages = convert(kind, source, self.profile_of(session.profile),
                        txn_id=session.txn_id or session.sid, session_token=session.token,
                        actions=list(actions), title=title)
        return [p.html for p in pages]

    def error_view(self, prof: Profile, message: str, *, session: RelaySession | None = None,
                   status: int = 200) -> View:
        page = error_page(prof, message, session_token=session.token if session else "")
        return View(page.html, "error", session, status, prof.name)

    async def conversion_failed(self, session: RelaySession, exc: MissingItem,
                                what: str) -> list[str]:
        """R23: no page without its required items; an error page and an audit event."""
        await self.ctx.audit("conversion-failed", session.txn_id or f"relay:{session.sid}",
                             f"{what}: {exc}")
        prof = self.profile_of(session.profile)
        return [error_page(prof, "The payment page could not be shown (it lacks "
                           f"{', '.join(exc.missing)}). Nothing was paid.",
                           session_token=session.token).html]

    # -- the terminal's view of a session ----------------------------------------------------

    def view(self, session: RelaySession, index: int = 0) -> View:
        """Progress contents while the session waits (claim 11), else its latest pages."""
        prof = self.profile_of(session.profile)
        if session.stage in flow.WAITING or not session.pages:
            page = progress_page(prof, txn_id=session.txn_id or session.sid,
                                 session_token=session.token,
                                 auto_refresh_s=self.config.refresh_s(prof.name) or None)
            return View(page.html, "progress", session, 200, prof.name)
        if not 0 <= index < len(session.pages):
            return self.error_view(prof, f"There is no page {index + 1} here.", session=session,
                                   status=404)
        return View(session.pages[index], session.page_kind, session, 200, prof.name)

    async def settle(self, session: RelaySession, started_ms: int) -> View:
        """Wait for the session's next contents up to the keep-alive period (claim 10)."""

        async def look() -> tuple[bool, RelaySession]:
            current = await self.db.get(session.sid)
            assert current is not None
            return current.stage in flow.WAITING, current

        _, current = await self.waiters.wait(session.sid, started_ms, look)
        return self.view(current)

    async def show(self, session: RelaySession, **changes: Any) -> RelaySession | None:
        """Move ``session`` on from the stage it is in, then wake its waiting terminal."""
        moved = await self.db.advance(session.sid, session.stage, self.now(), **changes)
        if moved is not None:
            self.waiters.notify(session.sid)
        return moved

    async def step(self, session: RelaySession, request: str, topic: str, msg: Any,
                   key: str, **changes: Any) -> RelaySession | None:
        """Move the session one step (compare-and-set) and send the step's message once.

        None: another request took this step first, and nothing was sent (R33). If sending
        fails, the stage goes back so the terminal can try again.
        """
        step = flow.STEPS[request]
        moved = await self.db.advance(session.sid, step.valid_in, self.now(), stage=step.then,
                                      **changes)
        if moved is None:
            return None
        try:
            await self.ctx.emit(topic, msg, key, sender="relay")
        except Exception:
            await self.db.advance(session.sid, step.then, self.now(), stage=step.valid_in)
            raise
        self.waiters.notify(session.sid)
        return moved

    async def out_of_step(self, session: RelaySession, request: str, detail: str) -> View:
        await self.ctx.audit("out-of-step", session.txn_id or f"relay:{session.sid}", detail)
        return self.view(session)
