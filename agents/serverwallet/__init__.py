"""Seed 004 server wallets: brand info, module sessions, master/slave (Ex 5-12)."""
