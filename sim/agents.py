"""The development system's agents: where the simulator replaces a production agent with a
variant that composes it (:func:`kessai.cli.agent_table`, `kessai worker AGENT --sim`).

`kessai up`, the end-to-end fixture and `kessai bench` run these; a production deployment
(``deploy/``) runs :data:`agents.AGENTS` only.
"""

from __future__ import annotations

SIMULATED: dict[str, str] = {
    "shop": "sim.shop",  # the production shop with a dishonest 1st request on demand (R33)
}
