"""How the suite is split over pytest-xdist's workers (README: ``pytest -q -n 2``).

A work unit runs on one worker, its tests in collection order. Each module is one unit, so a
module's fixtures are set up on one worker only; the modules with tests on the running system
of tests/e2e (the package's ``system`` fixture: 16 worker processes) are one unit together, so
that system is started once. tests/e2e/conftest.py refuses to collect a module that uses the
system and is not named here, and puts these modules first when split (they are the longest
unit; the other worker takes everything else meanwhile).
"""

from __future__ import annotations

SYSTEM_MODULES = ("test_audit_e2e.py", "test_cli.py", "test_dead_letters.py",
                  "test_kill_each_worker.py", "test_pan_scan.py", "test_relay_browser.py",
                  "test_relay_e2e.py", "test_selector_scenarios.py", "test_settlement_e2e.py",
                  "test_settlement_scenarios.py", "test_wakeup_scenarios.py",
                  "test_worker_restart.py")
SYSTEM_UNIT = "tests/e2e: the running system"


def work_unit(nodeid: str) -> str:
    """The work unit of the test ``nodeid``: its module, or the running system's unit."""
    module = nodeid.split("::", 1)[0]
    folder, _, name = module.rpartition("/")
    return SYSTEM_UNIT if folder == "tests/e2e" and name in SYSTEM_MODULES else module
