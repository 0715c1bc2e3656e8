"""The multi-wallet selector of seed 004 (JP 2000-026330)."""
