"""Scoped API keys for the operator endpoints: creation, lookup, revocation, and the FastAPI
dependency that guards a route.

Owns: the ``api_keys`` table (relayer database, migration 0006) and every read and write of it,
`require_scope`, and `AuthRoute` (renders a 401 with ``WWW-Authenticate: Bearer``). Must not
change anything before a caller is authenticated and authorised.

Token: ``"fry_"`` + 64 lowercase hex characters (32 bytes from `secrets.token_hex`), shown once
at creation. Only ``sha256(token as UTF-8)`` (64 lowercase hex) is stored; a lookup hashes the
presented token, finds the row by that digest and compares with `hmac.compare_digest`.
Clients send ``Authorization: Bearer <token>``.

Scopes (space-separated in the table): ``routes:write`` (pause/unpause a route),
``chains:write`` (rescan a chain), ``transfers:write`` (retry/release a transfer),
``risk:read`` (the risk view).

SECURITY: a token is never logged, stored or returned after creation; logs carry the key's id
and name only. A missing, malformed, unknown or revoked token is 401 ``unauthorized``; a valid
key without the scope is 403 ``forbidden``; both are decided before any handler runs.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, insert, select, update

from adapters.errors import Forbidden, Unauthorized, ValidationError
from relayer.db import write_transaction
from relayer.store import Store

log = logging.getLogger(__name__)

TOKEN_PREFIX = "fry_"
TOKEN_LEN = len(TOKEN_PREFIX) + 64
SCOPES = frozenset({"routes:write", "chains:write", "transfers:write", "risk:read"})
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_TOKEN = re.compile(r"^fry_[0-9a-f]{64}$")

metadata = MetaData()
api_keys = Table(
    "api_keys", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("key_sha256", String(64), nullable=False, unique=True),
    Column("scopes", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key, without its secret."""

    id: int
    name: str
    scopes: frozenset[str]
    created_at: float
    revoked_at: float | None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "scopes": sorted(self.scopes),
                "created_at": self.created_at, "revoked_at": self.revoked_at}


def token_digest(token: str) -> str:
    """Hex SHA-256 of the UTF-8 token (what the table stores)."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes as a set; each must be one of `SCOPES`, at least one.

    Raises:
        ValidationError: an unknown scope, or none.
    """
    out = frozenset(scopes)
    unknown = out - SCOPES
    if unknown or not out:
        raise ValidationError(f"scopes must be a non-empty subset of {sorted(SCOPES)}; "
                              f"unknown: {sorted(unknown)}")
    return out


def _key(row: Any) -> ApiKey:
    return ApiKey(row.id, row.name, frozenset(row.scopes.split()), row.created_at, row.revoked_at)


class ApiKeyStore:
    """The ``api_keys`` table of the relayer database (thread-safe, like `Store`)."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine
        self.clock = store.clock

    def create(self, name: str, scopes: Iterable[str]) -> tuple[ApiKey, str]:
        """A new key named `name` with `scopes`.

        Returns:
            The stored key and its token (shown once; only its digest is kept).

        Raises:
            ValidationError: a name outside ``[A-Za-z0-9._-]{1,64}`` or a bad scope.
        """
        if not _NAME.match(name):
            raise ValidationError("key name must be 1..64 characters of [A-Za-z0-9._-]")
        wanted = parse_scopes(scopes)
        token = TOKEN_PREFIX + secrets.token_hex(32)
        now = self.clock.now()
        with write_transaction(self.engine) as conn:
            key_id = conn.execute(insert(api_keys).values(
                name=name, key_sha256=token_digest(token), scopes=" ".join(sorted(wanted)),
                created_at=now).returning(api_keys.c.id)).scalar_one()
        log.info("api key created key_id=%d key_name=%s scopes=%s", key_id, name,
                 ",".join(sorted(wanted)))
        return ApiKey(key_id, name, wanted, now, None), token

    def all(self) -> list[ApiKey]:
        """Every key, revoked ones included, by id."""
        with self.engine.connect() as conn:
            return [_key(r) for r in conn.execute(select(api_keys).order_by(api_keys.c.id))]

    def get(self, key_id: int) -> ApiKey | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        return None if row is None else _key(row)

    def revoke(self, key_id: int) -> bool:
        """Revoke key `key_id` (kept for the audit trail; never usable again).

        Returns:
            True if it was revoked now, False if it already was.

        Raises:
            ValidationError: no key has that id.
        """
        now = self.clock.now()
        with write_transaction(self.engine) as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
            if row is None:
                raise ValidationError(f"no API key with id {key_id}")
            if row.revoked_at is not None:
                return False
            conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=now))
        log.info("api key revoked key_id=%d key_name=%s", key_id, row.name)
        return True

    def authenticate(self, token: str) -> ApiKey | None:
        """The live key whose token this is, or None (malformed, unknown or revoked).

        SECURITY: looks the row up by the token's digest, then compares the digests with
        `hmac.compare_digest`; the token itself is never stored or logged.
        """
        if not _TOKEN.match(token):
            return None
        digest = token_digest(token)
        with self.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_sha256 == digest)).first()
        if row is None or not hmac.compare_digest(row.key_sha256, digest):
            return None
        if row.revoked_at is not None:
            return None
        return _key(row)


_bearer = HTTPBearer(auto_error=False, description="An operator API key: `Bearer fry_...`.")


def require_scope(scope: str, keys: ApiKeyStore) -> Callable[..., ApiKey]:
    """A FastAPI dependency: the caller's `ApiKey` if it holds `scope`.

    Args:
        scope: one of `SCOPES`.
        keys: where keys are looked up.

    Raises (from the dependency):
        Unauthorized: no ``Authorization: Bearer`` header, or an unknown or revoked token.
        Forbidden: the key lacks `scope`.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    def dependency(
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
    ) -> ApiKey:
        if credentials is None:
            raise Unauthorized("an API key is required (Authorization: Bearer <token>)")
        key = keys.authenticate(credentials.credentials)
        if key is None:
            raise Unauthorized("unknown or revoked API key")
        if scope not in key.scopes:
            log.warning("api key lacks scope key_id=%d key_name=%s scope=%s",
                        key.id, key.name, scope)
            raise Forbidden(f"this key lacks the {scope} scope")
        return key

    return dependency


class AuthRoute(APIRoute):
    """An `APIRoute` that renders `Unauthorized` as the standard error body with status 401
    and ``WWW-Authenticate: Bearer`` (RFC 6750 section 3); everything else goes to the app's
    error handlers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await inner(request)
            except Unauthorized as exc:
                from api.ledger import error_response

                response = error_response(401, exc.code, str(exc))
                response.headers["WWW-Authenticate"] = 'Bearer realm="ferry"'
                return response

        return handler
