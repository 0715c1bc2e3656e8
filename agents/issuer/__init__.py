"""The FI host of seed 003 ([0017]): approval check (credit / balance) and collection.

``rules`` decides, ``ledger`` records each decision once per order, ``agent`` wires them to
``kessai.authorizations`` → ``kessai.authorization-results``.
"""
