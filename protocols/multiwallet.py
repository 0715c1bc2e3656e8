"""Which wallet a payment goes to, when a user has several: the rules the relay's wallet
choice (seeds 000/001, claim 14, R34–R36) and the multi-wallet selector (seed 004, claims 1–7)
share, and the pairing rule of seed 004's wallet connection modules. Pure functions.

- :func:`designated_without_asking`: the user's preset choice if it is among the candidates,
  else the only candidate, else ``None`` (ask the user among the candidates).
- :func:`choice_ok`: a user's choice is taken only if it was offered.
- :func:`match_brand`: the candidates that settle a wake-up's brands, in the wake-up's order
  of brand preference (claims 4–7).
- :func:`check_pairing`: one module ↔ one server wallet (claim 1, [0024]).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kessai.errors import ConfigError


def designated_without_asking(candidates: Sequence[str], preset: str | None) -> str | None:
    """The wallet (or module) to use without asking the user, or ``None``: ask.

    The preset one if it is a candidate (relay R36, selector Ex 1 claim 2); the only candidate
    if there is one (relay R36); otherwise the user chooses among the candidates (R34, claim 3).
    """
    if preset is not None and preset in candidates:
        return preset
    if len(candidates) == 1:
        return candidates[0]
    return None


def choice_ok(choice: str, candidates: Sequence[str]) -> bool:
    """Only a candidate the user was offered may be chosen (relay R35; selector R-S7)."""
    return choice in candidates


def match_brand(wanted: Sequence[str], brands_of: Mapping[str, Sequence[str]]
                ) -> tuple[str, list[str]] | None:
    """The first wanted brand some candidate settles, and every candidate that settles it
    (in ``brands_of``'s order, the configured priority); ``None`` if none settles any.

    ``wanted`` is the wake-up's brands, the shop's order of preference; ``brands_of`` maps a
    candidate (module or server wallet) to the brands it settles.
    """
    for brand in wanted:
        able = [c for c, brands in brands_of.items() if brand in brands]
        if able:
            return brand, able
    return None


def check_pairing(pairs: Mapping[str, Sequence[str]], *, multi: Sequence[str] = ()) -> None:
    """Refuse a configuration that does not pair modules and server wallets one to one.

    ``pairs`` maps each module to the server wallets it is bound to; a module in ``multi``
    (claim 7's common module, Ex 6) may serve several.

    Raises:
        ConfigError: a module bound to no server or to two, or two modules bound to one server.
    """
    owner: dict[str, str] = {}
    for module, servers in pairs.items():
        if not servers:
            raise ConfigError(f"module {module} is bound to no server wallet")
        if len(servers) > 1 and module not in multi:
            raise ConfigError(f"module {module} is bound to {len(servers)} server wallets "
                              f"({', '.join(servers)}); a module settles with exactly one")
        if module in multi:
            continue
        for server in servers:
            if server in owner:
                raise ConfigError(f"modules {owner[server]} and {module} are both bound to "
                                  f"server wallet {server}; each server has one module")
            owner[server] = module
