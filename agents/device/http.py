"""The phone's screen in a browser (seed 002): a person logs in for a card (Fig. 13 and the
user id / password screen), sees the wake-up arrive, the details with Agree / Not agree
(Fig. 16), the method list (Fig. 17), the completion; for embodiment 2 answers the
confirmation with their password; and (V4) asks for the transaction history.

Served by the device worker (``KESSAI_DEVICE_HTTP_PORT``, default 8470, loopback). The typed
password stays in this process: it is compared with the UIM here (D1) and, for the
confirmation reply, sealed to the gateway before anything leaves. Every button becomes a
``DeviceCommand`` from the phone itself, so each state change happens in a stream event like
any other input.
"""

from __future__ import annotations

import html
import json
import os
from typing import TYPE_CHECKING, Any

from aiohttp import web

from agents.device import app
from kessai import crypto, http
from kessai.runtime import AgentContext
from protocols import wakeup
from schemas.wakeup import DeviceCommand

if TYPE_CHECKING:
    from agents.device.agent import Devices

COMMANDS = "kessai.device.commands"
DEFAULT_PORT = 8470

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Phone {device_id}</title>
<style>
body {{ font-family: sans-serif; background: #333; }}
.phone {{ width: 300px; margin: 20px auto; background: #f4f4f4; border-radius: 24px;
          padding: 18px; }}
#screen {{ min-height: 90px; background: #dfe9d8; padding: 10px; border-radius: 6px; }}
label {{ display: block; margin: 6px 0; }}
button {{ margin: 4px 4px 0 0; }}
</style></head>
<body><div class="phone">
<h3>Phone {device_id}</h3>
<div id="screen" data-screen="{screen}"><b id="screen-name">{screen}</b>
<p id="screen-text">{text}</p></div>
<div id="actions"></div>
<p><button id="show-history">Transaction history</button></p>
<div id="history" data-request=""></div>
</div>
<script>
const base = "/phone/{device_id}";
const cards = {cards};
let shown = null;
async function post(path, data) {{
  await fetch(base + path, {{method: "POST", headers: {{"Content-Type": "application/json"}},
                             body: JSON.stringify(data)}});
}}
document.getElementById("show-history").onclick = () => post("/history", {{}});
function render(s) {{
  const h = document.getElementById("history");
  if (s.history_id && h.dataset.request !== s.history_id) {{
    h.innerHTML = s.history;  // the gateway's rendering of table 154b (escaped there)
    h.dataset.request = s.history_id;
  }}
  document.getElementById("screen").dataset.screen = s.screen;
  document.getElementById("screen-name").textContent = s.screen;
  document.getElementById("screen-text").textContent = s.text;
  if (shown === s.seq) return;
  shown = s.seq;
  const a = document.getElementById("actions");
  a.innerHTML = "";
  if (s.screen === "details") {{
    for (const label of ["Agree", "Not agree"]) {{
      const b = document.createElement("button");
      b.textContent = label;
      b.onclick = () => post("/press", {{action: label === "Agree" ? "agree" : "not_agree"}});
      a.appendChild(b);
    }}
  }} else if (s.screen === "methods") {{
    for (const o of s.options) {{
      const l = document.createElement("label");
      l.innerHTML = `<input type="radio" name="method" value="${{o.split(":")[0]}}"> ${{o}}`;
      a.appendChild(l);
    }}
    const b = document.createElement("button");
    b.textContent = "OK";
    b.onclick = () => {{
      const c = document.querySelector("input[name=method]:checked");
      if (c) post("/press", {{action: "choose", method: c.value}});
    }};
    a.appendChild(b);
  }} else if (s.screen === "confirm") {{
    a.innerHTML = `<label>Password <input id="reply-password" type="password"></label>
      <button id="reply">Reply</button>`;
    document.getElementById("reply").onclick = () =>
      post("/confirm", {{password: document.getElementById("reply-password").value}});
  }} else if (!s.busy) {{
    a.innerHTML = `<label>Card <select id="card">${{cards.map(c =>
        `<option>${{c}}</option>`).join("")}}</select></label>
      <label>User ID <input id="user-id"></label>
      <label>Password <input id="password" type="password"></label>
      <label>POS <input id="pos" value="pos-1"> (empty for a web shop)</label>
      <button id="login">OK</button>`;
    document.getElementById("login").onclick = () => post("/login", {{
      card: document.getElementById("card").value,
      user_id: document.getElementById("user-id").value,
      password: document.getElementById("password").value,
      pos_id: document.getElementById("pos").value}});
  }}
}}
async function poll() {{
  try {{ render(await (await fetch(base + "/screen.json")).json()); }} catch (e) {{}}
  setTimeout(poll, 300);
}}
poll();
</script></body></html>
"""


def port_from_env() -> int:
    return int(os.environ.get("KESSAI_DEVICE_HTTP_PORT", DEFAULT_PORT))


class Front:
    def __init__(self, ctx: AgentContext, devices: Devices) -> None:
        self.ctx = ctx
        self.devices = devices

    def uim(self, request: web.Request) -> app.Uim:
        uim = self.devices.uims.get(request.match_info["device_id"])
        if uim is None:
            raise web.HTTPNotFound(text="no such phone here")
        return uim

    def current(self, uim: app.Uim) -> dict[str, Any]:
        screens = self.devices.screens.get(uim.device_id)
        state = self.devices.load(uim.device_id)
        last = screens[-1] if screens else None
        return {"screen": last.screen if last else "home",
                "text": last.text if last else "Select a card, enter your user ID and "
                                                 "password.",
                "options": list(last.options) if last else [],
                "seq": self.devices.screen_seq.get(uim.device_id, 0),
                "busy": state.session is not None,
                "history_id": self.devices.histories.get(uim.device_id, ("", ""))[0],
                "history": self.devices.histories.get(uim.device_id, ("", ""))[1]}

    async def index(self, request: web.Request) -> web.Response:
        links = "".join(f'<li><a href="/phone/{d}">{d}</a></li>' for d in self.devices.uims)
        return web.Response(text=f"<!doctype html><ul>{links}</ul>", content_type="text/html")

    async def page(self, request: web.Request) -> web.Response:
        uim = self.uim(request)
        cur = self.current(uim)
        return web.Response(text=PAGE.format(
            device_id=html.escape(uim.device_id), screen=html.escape(cur["screen"]),
            text=html.escape(cur["text"]), cards=json.dumps(uim.cards)),
            content_type="text/html")

    async def screen(self, request: web.Request) -> web.Response:
        return web.json_response(self.current(self.uim(request)))

    async def command(self, uim: app.Uim, cmd: DeviceCommand) -> None:
        await self.ctx.emit(COMMANDS, cmd, uim.device_id, sender=f"device-{uim.device_id}")

    async def login(self, request: web.Request) -> web.Response:
        """D1 on the phone: the typed pair is compared here; only the outcome travels."""
        uim = self.uim(request)
        form = await request.json()
        cred = next((c for c in uim.credentials if c.card == str(form.get("card"))), None)
        typed_ok = cred is not None and app.login(
            uim, app.Phone(), cred.card, str(form.get("user_id", "")),
            str(form.get("password", "")), "", 0, self.devices.policy).state.auth is not None
        await self.command(uim, DeviceCommand(
            uim.device_id, "login", card=str(form.get("card", "")),
            user_id=str(form.get("user_id", "")), pos_id=str(form.get("pos_id", "")),
            wrong_password=not typed_ok))
        return web.json_response({"ok": True})

    async def press(self, request: web.Request) -> web.Response:
        uim = self.uim(request)
        form = await request.json()
        action = str(form.get("action"))
        if action not in ("agree", "not_agree", "choose", "history"):
            raise web.HTTPBadRequest(text="unknown action")
        await self.command(uim, DeviceCommand(uim.device_id, action,  # type: ignore[arg-type]
                                              method=str(form.get("method", ""))))
        return web.json_response({"ok": True})

    async def history(self, request: web.Request) -> web.Response:
        """V4: ask the gateway for the logged-in user's history (shown when it comes)."""
        uim = self.uim(request)
        await self.command(uim, DeviceCommand(uim.device_id, "history"))
        return web.json_response({"ok": True})

    async def confirm(self, request: web.Request) -> web.Response:
        """K2: the typed password, sealed to the gateway here, answers the confirmation."""
        uim = self.uim(request)
        form = await request.json()
        state = self.devices.load(uim.device_id)
        if state.confirm is None:
            raise web.HTTPConflict(text="nothing to confirm")
        sealed = crypto.seal(self.ctx.registry.sealing["paygate"][1],
                             str(form.get("password", "")).encode(),
                             wakeup.reply_password_context(state.confirm["request_ref"]))
        await self.command(uim, DeviceCommand(uim.device_id, "confirm", reply_sealed=sealed))
        return web.json_response({"ok": True})

    def app(self) -> web.Application:
        a = web.Application()
        a.router.add_get("/", self.index)
        a.router.add_get("/phone/{device_id}", self.page)
        a.router.add_get("/phone/{device_id}/screen.json", self.screen)
        a.router.add_post("/phone/{device_id}/login", self.login)
        a.router.add_post("/phone/{device_id}/press", self.press)
        a.router.add_post("/phone/{device_id}/confirm", self.confirm)
        a.router.add_post("/phone/{device_id}/history", self.history)
        return a


def register(ctx: AgentContext, devices: Devices) -> None:
    async def nothing() -> None:
        return None

    http.serve(ctx, Front(ctx, devices).app(), "127.0.0.1", port_from_env(), "phone screens",
               nothing)
