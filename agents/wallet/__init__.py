"""The server wallet of seeds 000/001 (wallet server 60): personal wallets, login, payment
conditions, confirming information and the SET payment request, reached through the relay."""
