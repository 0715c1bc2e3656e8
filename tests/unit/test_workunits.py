"""The split of the suite over pytest-xdist's workers (tests/workunits.py)."""

from __future__ import annotations

from tests.workunits import SYSTEM_UNIT, work_unit


def test_a_module_is_one_unit() -> None:
    a = work_unit("tests/unit/test_door.py::test_actor_kinds")
    assert a == work_unit("tests/unit/test_door.py::test_sender_is_binds_the_identity[x-y]")
    assert a == "tests/unit/test_door.py"
    assert a != work_unit("tests/unit/test_trace.py::test_every_hop_of_a_purchase_carries_its_trace")


def test_the_modules_on_the_running_system_are_one_unit() -> None:
    assert work_unit("tests/e2e/test_cli.py::test_pay") == SYSTEM_UNIT
    assert work_unit("tests/e2e/test_wakeup_scenarios.py::test_1[broker]") == SYSTEM_UNIT
    # a module of that name elsewhere, and an e2e module with its own system, are their own
    assert work_unit("tests/unit/test_cli.py::test_x") == "tests/unit/test_cli.py"
    assert work_unit("tests/e2e/test_bench.py::test_x") == "tests/e2e/test_bench.py"
