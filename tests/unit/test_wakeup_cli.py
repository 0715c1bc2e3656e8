"""`kessai pay --flow wakeup`: clear one-line errors (exit 2) for what the dev world lacks."""

from __future__ import annotations

import pytest

from kessai.cli import main


@pytest.mark.parametrize("argv, says", [
    (["--device", "0000000"], "unknown phone '0000000'"),
    (["--pos", "pos-9"], "unknown POS 'pos-9'"),
    (["--card", "CARD Z"], "phone 1234567 has no card 'CARD Z'"),
    (["--item", "NOPE:1"], "--item must be CODE[:QTY]"),
    (["--webshop", "webshop-9"], "unknown web shop 'webshop-9'"),
    (["--webshop", "webshop-1", "--embodiment", "2"], "--webshop is embodiment 1's V3"),
])
def test_bad_wakeup_arguments_are_one_line_errors(argv: list[str], says: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pay", "--flow", "wakeup", "--bootstrap", "127.0.0.1:1", *argv]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1


@pytest.mark.parametrize("agent", ["device", "webshop"])
def test_up_refuses_replicas_of_an_agent_that_serves_a_page(agent: str) -> None:
    """The phone's and the web shop's pages listen on one port each: `kessai up --replicas`
    takes one worker only (checked before anything starts)."""
    from agents import AGENTS
    from kessai.cli import LISTENS_ON_A_PORT
    from kessai.errors import ConfigError
    from kessai.supervisor import parse_replicas

    with pytest.raises(ConfigError, match=f"{agent} listens on one fixed port"):
        parse_replicas(f"{agent}=2", list(AGENTS), LISTENS_ON_A_PORT)


def test_an_older_key_set_is_given_the_web_shop(tmp_path) -> None:
    """`kessai up` on a key set made before V3 adds webshop-1 (merchant code, catalogue) so
    its worker starts, and changes nothing else."""
    import json

    from kessai import keys
    from sim import devkeys

    devkeys.init(tmp_path)
    registry = json.loads((tmp_path / keys.REGISTRY).read_text())
    del registry["signing"]["webshop-1"]
    (tmp_path / keys.REGISTRY).write_text(json.dumps(registry))
    (tmp_path / "actors" / "webshop-1.json").unlink()
    pos = (tmp_path / "actors" / "pos-1.json").read_text()
    assert devkeys.add_missing_services(tmp_path) == ["webshop-1"]
    shop = keys.load_actor(tmp_path, "webshop-1")
    assert shop.secrets["merchant_code"] == "1111111111"
    assert shop.secrets["catalogue"]["TEA1"] == ["Sencha 100g", 1200]
    assert "webshop-1" in keys.load_registry(tmp_path).signing
    assert (tmp_path / "actors" / "pos-1.json").read_text() == pos
    assert devkeys.add_missing_services(tmp_path) == []
