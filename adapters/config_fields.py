"""Checks shared by the chain config tables (``[[chains]]``, ``[[bitcoin]]``, ``[[cosmos]]``).

Owns: URL and secp256k1 public-key field formats. Must not touch the network. Raises
`ValueError` (pydantic turns it into the one-line config error).
"""

from __future__ import annotations

from collections.abc import Iterable


def http_url(value: str) -> str:
    """`value` unchanged if it is an ``http://`` or ``https://`` URL."""
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


def compressed_pubkeys(values: Iterable[str]) -> tuple[str, ...]:
    """33-byte compressed secp256k1 keys (SEC1) as lowercase hex without ``0x``, distinct.
    Whether each is a point on the curve is checked where the scripts are built."""
    out = []
    for key in values:
        text = key.lower().removeprefix("0x")
        if len(text) != 66 or text[:2] not in ("02", "03"):
            raise ValueError(f"{key!r} is not a 33-byte compressed secp256k1 key in hex")
        bytes.fromhex(text)
        out.append(text)
    if len(set(out)) != len(out):
        raise ValueError("validator_pubkeys has duplicates")
    return tuple(out)
