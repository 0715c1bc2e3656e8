"""Terminal-capability profiles (spec R18): what a class of terminal can show.

The limits are the patent's ([d:254]): the number of characters that can be displayed, the
shades of gray of images, the allowed size of contents. With them: whether the browser keeps
cookies ([d:276]), and whether it is a PC-class browser that may get the wallet's contents
unchanged (R18, R20). How a terminal's class is learned is left open by the patent; the relay
looks the profile up by the name the terminal gives. Profiles are configuration, packaged as
``profiles.json`` next to this module.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

from kessai.errors import ConfigError

COMPACT = "compact"
STANDARD = "standard"
LEVELS: tuple[str, ...] = (COMPACT, STANDARD)

# Below this many characters a screen gets the shortest wording of each template; the
# standard wording of the longest template (confirming, a few items) needs about 500.
STANDARD_MIN_CHARS = 600

_INT_FIELDS = ("max_chars", "max_gray_levels", "max_content_bytes")
_BOOL_FIELDS = ("cookies", "full_html")


class UnknownProfile(ConfigError):
    code = "unknown_profile"


@dataclass(frozen=True)
class Profile:
    """One terminal class. ``full_html``: a PC-class browser that may get pass-through
    contents when they are within its limits (R18, R20)."""

    name: str
    max_chars: int
    max_gray_levels: int
    max_content_bytes: int
    cookies: bool
    full_html: bool


def parse_profiles(raw: object) -> dict[str, Profile]:
    """``{"phone": {"max_chars": 400, ...}, ...}`` → profiles by name, checked eagerly.

    Raises:
        ConfigError: not an object of objects, a missing or unknown field, a limit that is not a
            positive integer, a flag that is not true/false.
    """
    if not isinstance(raw, dict) or not raw:
        raise ConfigError("profiles.json must be a non-empty object of profiles")
    out: dict[str, Profile] = {}
    for name, spec in raw.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"profiles.json: profile {name!r} must be an object")
        known = set(_INT_FIELDS) | set(_BOOL_FIELDS)
        if set(spec) != known:
            raise ConfigError(
                f"profiles.json: profile {name!r} must have exactly {sorted(known)}; "
                f"missing {sorted(known - set(spec))}, unknown {sorted(set(spec) - known)}")
        for key in _INT_FIELDS:
            value = spec[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"profiles.json: profile {name!r}: {key} must be a positive "
                                  f"integer, got {value!r}")
        for key in _BOOL_FIELDS:
            if not isinstance(spec[key], bool):
                raise ConfigError(f"profiles.json: profile {name!r}: {key} must be true or "
                                  f"false, got {spec[key]!r}")
        out[name] = Profile(name=name, **spec)
    return out


@functools.cache
def _packaged() -> Mapping[str, Profile]:
    # Read once: profiles are configuration shipped with the package, not per-request data.
    text = resources.files("agents.relay").joinpath("profiles.json").read_text("utf-8")
    return MappingProxyType(parse_profiles(json.loads(text)))


def load_profiles() -> dict[str, Profile]:
    """The packaged profiles by name (a fresh dict; the loaded set is shared and read-only)."""
    return dict(_packaged())


def profile(name: str) -> Profile:
    """The profile called ``name``.

    Raises:
        UnknownProfile: no such profile; the message lists the known names.
    """
    profiles = _packaged()
    try:
        return profiles[name]
    except KeyError:
        raise UnknownProfile(f"unknown terminal profile {name!r}; known: "
                             f"{', '.join(sorted(profiles))}") from None


def template_level(p: Profile) -> str:
    """Which wording of the templates a terminal gets ("the level of the change", [d:260]).

    PC-class browsers that cannot take the contents unchanged get the standard wording too.
    """
    return STANDARD if p.full_html or p.max_chars >= STANDARD_MIN_CHARS else COMPACT
