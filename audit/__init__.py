"""The audit of the recorded history (issue 10): `kessai audit verify` and `kessai audit shadow`.

It reads the archiver's SQLite archive and checks, with the same pure functions the agents
decide with, that the record is intact and every decision follows from its inputs. Nothing but
the CLI (:mod:`kessai.cli`) imports this package; it imports only the agents' pure decision
modules (never an agent's faust shell), the runtime's pieces and the catalogue
(``tests/unit/test_architecture.py``).
"""
