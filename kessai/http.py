"""Serving an aiohttp front from a faust worker (the relay's and the shop's)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from kessai.runtime import AgentContext

log = logging.getLogger("kessai.http")


def serve(ctx: AgentContext, app: web.Application, host: str, port: int, what: str,
          on_stopped: Callable[[], Awaitable[Any]]) -> None:
    """Start ``app`` when the worker starts; stop it (then ``on_stopped``) on shutdown.

    No access log: page URLs carry session strings and cart ids. A port already in use is
    logged and the worker keeps running without HTTP.
    """
    runner = web.AppRunner(app, access_log=None)

    @ctx.on_start
    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            log.error("%s not started on %s:%d: %s", what, host, port, exc.strerror or exc)
            return
        log.info("%s on http://%s:%d/", what, host, port)

    @ctx.on_stop
    async def stop() -> None:
        await runner.cleanup()
        await on_stopped()
