"""The settlement server of seed 003: the correlation-ID join of the two settlement requests."""
