"""Fixtures live in plain modules (tests/fixtures.py) and are registered here."""

pytest_plugins = ["tests.fixtures"]
