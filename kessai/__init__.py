"""kessai: a Kafka-native payment message bus.

Importing this package defines names only; nothing connects anywhere.
"""

__version__ = "0.1.0"
