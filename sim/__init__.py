"""Simulators and drivers around the bus: they use the runtime and the agents; the runtime never
imports them (only the CLI, ``kessai/cli.py``, composes them).

- ``sim.devdata`` / ``sim.devkeys``: the development world (shops, users, cards, wallets) and
  the key set `kessai keys init` (and `kessai up` on first use) writes for it.
- ``sim.agents`` / ``sim.shop``: the development system's agent variants (`kessai worker AGENT
  --sim`): the production shop with a dishonest 1st request on demand.
- ``sim.journey``: `kessai pay` and `kessai demo`, purchases driven through the terminal agent,
  each order's journey across the topics; ``sim.relay_demo`` with ``sim.phone``, a simulated
  limited terminal: `kessai demo relay`.
- ``sim.bench``: ``kessai bench``, purchases driven at a fixed rate or one at a time, measured
  against the raw-broker and crypto floors of the same run.
"""
