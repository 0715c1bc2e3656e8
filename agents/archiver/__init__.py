"""The archiver: every catalogued topic into a hash-chained SQLite archive (issue 10)."""
