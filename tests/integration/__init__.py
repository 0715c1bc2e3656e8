"""Integration tests against the session's throwaway Kafka-protocol broker."""
