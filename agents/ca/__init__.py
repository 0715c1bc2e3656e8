"""The certificate authority / registration authority of seeds 000/001 (CA 80): enrols a
user's card, issues the certificate and sends it through the relay to the wallet server."""
