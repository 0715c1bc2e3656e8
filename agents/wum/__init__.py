"""Seed 004 wallet connection modules (WUM): the client-side halves of the server wallets."""
