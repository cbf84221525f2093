"""Build arguments named like secrets (``planner.secret_looking_args``) as history keeps them:
an HMAC-SHA256 of name and value under history's key (a private file beside the database),
never the value. Two builds' values can be compared (the cache explanations), nothing more: a
copy of the database alone does not allow guessing them."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from tui.engine.planner import secret_looking_args

SECRET_PREFIX = "hmac-sha256:"


def secret_digest(key: bytes, name: str, value: str) -> str:
    mac = hmac.new(key, f"{name}\0{value}".encode("utf-8", "surrogateescape"), hashlib.sha256)
    return SECRET_PREFIX + mac.hexdigest()


def is_withheld(value: str) -> bool:
    """Whether a stored build argument is a digest (its value was not kept)."""
    return value.startswith(SECRET_PREFIX)


def withhold(build_args: Mapping[str, str], key: bytes) -> dict[str, str]:
    """``build_args`` with each secret-looking one's value replaced by its digest."""
    secret = set(secret_looking_args(tuple(build_args.items())))
    return {name: secret_digest(key, name, value) if name in secret else value
            for name, value in build_args.items()}


def has_secret(build_args: Mapping[str, str]) -> bool:
    return bool(secret_looking_args(tuple(build_args.items())))
