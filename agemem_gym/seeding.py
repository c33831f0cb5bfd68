"""Deterministic seeds derived from names (never Python's salted ``hash``)."""

from __future__ import annotations

import hashlib

__all__ = ["stable_seed"]


def stable_seed(*parts: object) -> int:
    """A 63-bit seed that depends only on the string forms of ``parts``.

    Example:
        >>> stable_seed("task", 3) == stable_seed("task", 3)
        True
    """
    digest = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1
