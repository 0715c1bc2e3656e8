"""`kessai up --replicas`: workers per agent type (issue 6 item 4)."""

from __future__ import annotations

import pytest

from kessai.errors import ConfigError
from kessai.supervisor import parse_replicas, worker_names


def test_replicas_spec_gives_workers_per_agent_type() -> None:
    agents = ["settlement", "issuer", "shop"]
    counts = parse_replicas("settlement=2, issuer=1", agents, single=("shop",))
    assert counts == {"settlement": 2, "issuer": 1, "shop": 1}
    assert worker_names(agents, counts) == [("settlement", "settlement-1"),
                                            ("settlement", "settlement-2"),
                                            ("issuer", "issuer"), ("shop", "shop")]
    assert parse_replicas(None, agents) == dict.fromkeys(agents, 1)
    for bad in ("settlement", "settlement=0", "settlement=x", "nobody=2", "shop=2"):
        with pytest.raises(ConfigError, match="--replicas"):
            parse_replicas(bad, agents, single=("shop",))
