"""Simulators and drivers around the bus: they use the runtime, the runtime never imports them.

- ``sim.bench``: ``kessai bench``, purchases driven at a fixed rate or one at a time, measured
  against the raw-broker and crypto floors of the same run.
"""
