"""What each shop sells: part of the shop's configuration in the key set.

A shop's key file holds ``catalogue``: product code → ``[name, unit price in minor units]``
(the development key set's is written by ``sim/devkeys.py``). The shop worker reads the
catalogue of every shop it serves once, at start, and refuses to start without one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kessai.errors import ConfigError
from kessai.keys import ActorKeys

Catalogue = Mapping[str, tuple[str, int]]  # product code → (name, unit price)


def parse(shop_id: str, raw: Any) -> dict[str, tuple[str, int]]:
    """The catalogue from ``shop_id``'s key-file form.

    Raises:
        ConfigError: no catalogue, or an entry that is not ``code: [name, whole price ≥ 0]``.
    """
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"the key file of {shop_id} has no catalogue (product code → "
                          "[name, unit price]); recreate the key set with 'kessai keys init "
                          "--force'")
    out: dict[str, tuple[str, int]] = {}
    for code, entry in raw.items():
        if not (isinstance(entry, (list, tuple)) and len(entry) == 2
                and isinstance(entry[0], str) and isinstance(entry[1], int)
                and not isinstance(entry[1], bool) and entry[1] >= 0):
            raise ConfigError(f"catalogue of {shop_id}: product {code!r} must be "
                              "[name, unit price in minor units]")
        out[str(code)] = (entry[0], entry[1])
    return out


def of_shops(keys: Mapping[str, ActorKeys]) -> dict[str, Catalogue]:
    """The catalogue of every shop a worker serves, from the shops' key files."""
    return {shop: parse(shop, k.secrets.get("catalogue")) for shop, k in keys.items()}
