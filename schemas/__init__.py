"""Message types of the kessai bus: one dataclass per protocol message, msgpack on the wire.

Each type names its wire ``TYPE`` and ``VERSION``; ``schemas.codec`` turns instances into
plain msgpack-able dicts and back, checking every field against its annotation.
"""

from schemas.codec import REGISTRY, from_body, message_class, to_body
from schemas.relay import *  # noqa: F403
from schemas.selector import *  # noqa: F403
from schemas.v1 import *  # noqa: F403  (the message types are this package's API)
from schemas.wakeup import *  # noqa: F403

__all__ = ["REGISTRY", "from_body", "message_class", "to_body"]
