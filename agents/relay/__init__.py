"""The relay server for limited terminals (seeds 000/001): see docs/relay.md."""
