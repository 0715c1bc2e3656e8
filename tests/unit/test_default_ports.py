"""`kessai up` runs every agent that serves a page on one machine: their default ports differ."""

from __future__ import annotations

from agents.device import http as device_http
from agents.relay import config as relay_config
from agents.selector import console as selector_console
from agents.shop import http as shop_http
from agents.webshop import http as webshop_http


def test_every_page_serving_agent_has_its_own_default_port() -> None:
    ports = {"shop": shop_http.DEFAULT_PORT, "relay": relay_config.DEFAULT_PORT,
             "device": device_http.DEFAULT_PORT, "selector": selector_console.DEFAULT_PORT,
             "webshop": webshop_http.DEFAULT_PORT}
    assert len(set(ports.values())) == len(ports), ports
