"""Cursor pagination shared by the API's list routes.

Owns: the opaque cursor format, the ``limit`` and ``cursor`` query parameters and the page
shape ``{"items": [...], "next_cursor": str | null}``. Must not know what is paged.

A cursor is ``base64url("<list name>:<position>")`` without padding: the list name keeps a
cursor of one list from being replayed against another, the position is an integer
in 0..10**18-1 (a row id or sequence number; it fits a BIGINT) the next page starts after. Clients treat it as opaque;
a cursor that does not decode, or is for another list, is 400 ``invalid_cursor``.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from adapters.errors import InvalidCursor

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
_BODY = re.compile(r"([a-z_]{1,32}):(0|[1-9][0-9]{0,17})")  # < 2**63: a BIGINT

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page (1..500).")]
Cursor = Annotated[str | None, Query(max_length=100, description="`next_cursor` of the "
                                                                  "previous page.")]
T = TypeVar("T")
__all__ = ["Cursor", "InvalidCursor", "Limit", "Page", "decode_cursor", "encode_cursor",
           "next_cursor"]


class Page(BaseModel, Generic[T]):
    """One page of a list; `next_cursor` is None on the last page."""

    items: list[T]
    next_cursor: str | None


def encode_cursor(name: str, position: int) -> str:
    """The opaque cursor of list `name` (``[a-z_]{1,32}``) after `position` (0..10**18-1).

    Raises:
        ValueError: a name or position outside those ranges.
    """
    text = f"{name}:{position}"
    if not _BODY.fullmatch(text):
        raise ValueError(f"cannot encode cursor {text!r}")
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, name: str) -> int | None:
    """The position a cursor of list `name` stands for; None for no cursor (the first page).

    Raises:
        InvalidCursor: not base64url, not of the cursor form, or a cursor of another list.
    """
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        text = raw.decode("ascii")
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor("cursor is not valid (pass next_cursor back unchanged)") from exc
    match = _BODY.fullmatch(text)
    if match is None or match.group(1) != name or encode_cursor(name, int(match.group(2))) \
            != cursor:
        raise InvalidCursor("cursor is not valid for this list")
    return int(match.group(2))


def next_cursor(name: str, positions: list[int], limit: int) -> str | None:
    """The cursor after the last of `positions` when the page is full, else None.

    A full page may be followed by an empty one; that costs one request, never a skipped item.
    """
    return encode_cursor(name, positions[-1]) if len(positions) >= limit and positions else None
