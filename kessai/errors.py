"""One exception hierarchy for kessai.

```
KessaiError
├── ConfigError            bad settings or arguments (CLI exit code 2)
│   └── KeysMissing        no key set where one was expected
├── BrokerUnavailable      the Kafka bootstrap does not answer (retriable)
├── DecodeError            bytes that are not a kessai envelope we understand
│   ├── UnknownType
│   └── UnsupportedVersion
├── IntegrityError         well-formed, but not trustworthy
│   ├── BadSignature
│   ├── UnknownSender
│   ├── StaleMessage
│   ├── ReplayedMessage
│   └── SealError          a sealed field cannot be opened
└── SchemaError            a body that violates its message type
```

Every error carries a stable ``code`` (written into dead letters) and ``retriable``.
Messages never include card numbers, PINs or passwords.
"""

from __future__ import annotations


class KessaiError(Exception):
    code = "kessai_error"
    retriable = False


class ConfigError(KessaiError):
    code = "config"


class KeysMissing(ConfigError):
    code = "keys_missing"


class BrokerUnavailable(KessaiError):
    code = "broker_unavailable"
    retriable = True


class DecodeError(KessaiError):
    code = "undecodable"


class UnknownType(DecodeError):
    code = "unknown_type"


class UnsupportedVersion(DecodeError):
    code = "unsupported_version"


class IntegrityError(KessaiError):
    code = "integrity"


class BadSignature(IntegrityError):
    code = "bad_signature"


class UnknownSender(IntegrityError):
    code = "unknown_sender"


class StaleMessage(IntegrityError):
    code = "stale"


class ReplayedMessage(IntegrityError):
    code = "replayed"


class SealError(IntegrityError):
    code = "seal"


class SchemaError(KessaiError):
    code = "schema"
