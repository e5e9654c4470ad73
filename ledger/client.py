"""Synchronous HTTP client of the ledger API (notes/DESIGN.md "Ledger HTTP API"), used by the
relayer and the validators.

Owns: `LedgerClient`. Must not retry (callers wrap it with tenacity on `RpcUnavailable` only)
nor hold keys (transactions arrive signed, see `ledger.transactions`).

Errors: a transport failure (refused, timeout, reset) or a 5xx answer raises
``RpcUnavailable(chain="ferry:ledger")``; an error body ``{"error": {"code", "message"}}`` raises
the typed error of that code (`ledger.errors.error_class_for_code`); an answer that does not
parse raises `BridgeError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from adapters.errors import (
    BridgeError,
    ChainError,
    InvalidAddress,
    RpcUnavailable,
    ValidationError,
)
from htlc.errors import (
    BadPreimage,
    HtlcAlreadySettled,
    HtlcExpired,
    HtlcNotExpired,
    TimelockTooShort,
    UnknownHtlc,
)
from htlc.mint_intent import MintIntent
from ledger.errors import error_class_for_code
from ledger.fields import account_hex
from ledger.history import HistoryPage, InclusionProof, JournalProof
from ledger.mint_intents import IntentRegistration
from ledger.risk import RiskReport
from ledger.transactions import SignedTx
from ledger.types import (
    UNKNOWN_BURN_CODE,
    AccountInfo,
    AssetInfo,
    BurnRecord,
    DepositRegistration,
    Htlc,
    HtlcState,
    JournalEntry,
    LedgerStatus,
    MintRequest,
    MintResult,
    TxReceipt,
    signatures_to_json,
)
from validators.attestation import LEDGER_CHAIN, ValidatorSet

MINTS_PER_REQUEST = 500  # the server accepts up to 1000
# HTLC error codes -> classes (`ledger.errors.error_class_for_code` knows only its own module
# and `adapters.errors`).
_HTLC_ERRORS: dict[str, type[BridgeError]] = {
    cls.code: cls for cls in (BadPreimage, TimelockTooShort, HtlcExpired, HtlcNotExpired,
                              HtlcAlreadySettled, UnknownHtlc)
}
T = TypeVar("T")


class LedgerClient:
    """Client of one ledger server.

    Args:
        base_url: e.g. ``http://127.0.0.1:8600`` (``LedgerSection.url``).
        timeout_s: per-request timeout (connect, read, write, pool), seconds.
        http: an `httpx.Client` to use instead of a new one (tests pass FastAPI's TestClient);
            its own base URL and timeout are then used, and `close` leaves it open.
    """

    def __init__(
        self, base_url: str, timeout_s: float = 10.0, *, http: httpx.Client | None = None
    ) -> None:
        self._owns_http = http is None
        self._http = http or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, method: str, path: str, *, json: Any = None,
              params: dict[str, int | str] | None = None,
              headers: dict[str, str] | None = None) -> dict[str, Any]:
        try:
            response = self._http.request(method, "/v1/ledger" + path, json=json, params=params,
                                          headers=headers)
        except httpx.TransportError as exc:
            raise RpcUnavailable(f"{method} {path}: {exc!r}", chain=LEDGER_CHAIN) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 500 and not _is_error_body(body):
            raise RpcUnavailable(f"{method} {path}: HTTP {response.status_code}",
                                 chain=LEDGER_CHAIN)
        if _is_error_body(body):
            raise _typed_error(body["error"], response.status_code)
        if response.status_code != 200 or not isinstance(body, dict):
            raise BridgeError(f"{method} {path}: unexpected HTTP {response.status_code} answer")
        return body

    def status(self) -> LedgerStatus:
        """``GET /v1/ledger/status``."""
        return _parse(LedgerStatus.from_json, self._call("GET", "/status"))

    def submit_mints(self, mints: Sequence[MintRequest]) -> list[MintResult]:
        """``POST /v1/ledger/mints`` in chunks of `MINTS_PER_REQUEST`; one result per mint."""
        results: list[MintResult] = []
        for start in range(0, len(mints), MINTS_PER_REQUEST):
            chunk = mints[start : start + MINTS_PER_REQUEST]
            body = self._call("POST", "/mints", json={"mints": [m.to_json() for m in chunk]})
            items = body.get("results")
            if not isinstance(items, list) or len(items) != len(chunk):
                raise BridgeError("mints answer does not have one result per mint")
            results.extend(_parse(MintResult.from_json, item) for item in items)
        return results

    def submit_transaction(self, tx: SignedTx) -> TxReceipt:
        """``POST /v1/ledger/transactions``: apply a signed burn, transfer or htlc_lock (the
        receipt's `htlc_id` is then the new HTLC's id, = ``tx.htlc_id``)."""
        return _parse(TxReceipt.from_json, self._call("POST", "/transactions", json=tx.to_json()))

    def account(self, account: bytes) -> AccountInfo:
        """``GET /v1/ledger/accounts/{account}`` for a 32-byte account."""
        return _parse(AccountInfo.from_json, self._call("GET", f"/accounts/{account_hex(account)}"))

    def burns(self, after_seq: int = 0, limit: int = 100) -> list[BurnRecord]:
        """``GET /v1/ledger/burns``: burns with journal seq > `after_seq`, oldest first."""
        body = self._call("GET", "/burns", params={"after_seq": after_seq, "limit": limit})
        return [_parse(BurnRecord.from_json, b) for b in _items(body, "burns")]

    def burn(self, burn_id: bytes) -> BurnRecord | None:
        """``GET /v1/ledger/burns/{burn_id}``: the burn with this 32-byte id, or None if the
        ledger answers ``unknown_burn`` (any other error, such as a 404 ``not_found`` from a
        ledger without this route, raises: absence is never guessed).

        Raises:
            InvalidAddress: `burn_id` is not 32 bytes.
            BridgeError: the answer is for another burn or does not parse.
        """
        if len(burn_id) != 32:
            raise InvalidAddress(f"burn_id must be 32 bytes, got {len(burn_id)}")
        try:
            body = self._call("GET", f"/burns/0x{burn_id.hex()}")
        except BridgeError as exc:
            if exc.code == UNKNOWN_BURN_CODE:
                return None
            raise
        record = _parse(BurnRecord.from_json, body)
        if record.burn_id != burn_id:
            raise BridgeError("burn answer is for another burn id")
        return record

    def register_deposit_account(self, chain: str, account: bytes) -> DepositRegistration:
        """``POST /v1/ledger/deposit-accounts``: register (chain, 32-byte account); idempotent
        (a repeat returns the stored seq with ``created=False``).

        Raises:
            InvalidAddress: `account` is not 32 bytes (or the server refused it).
            UnknownBridge: the ledger has no bridge for `chain`.
            BridgeError: the answer is for another pair or does not parse.
        """
        body = self._call("POST", "/deposit-accounts",
                          json={"chain": chain, "account": account_hex(account)})
        registration = _parse(DepositRegistration.from_json, body)
        if (registration.chain, registration.account) != (chain, account):
            raise BridgeError("deposit-accounts answer is for another (chain, account)")
        return registration

    def deposit_accounts(
        self, chain: str, after_seq: int = 0, limit: int = 1000
    ) -> list[DepositRegistration]:
        """``GET /v1/ledger/deposit-accounts``: registrations on `chain` with seq > `after_seq`,
        ascending by seq, at most `limit` (1..1000).

        Raises:
            UnknownBridge: the ledger has no bridge for `chain`.
            BridgeError: an item is for another chain, or seqs are not ascending past
                `after_seq` (a scanner paging on them would skip or repeat accounts).
        """
        body = self._call("GET", "/deposit-accounts",
                          params={"chain": chain, "after_seq": after_seq, "limit": limit})
        items = [_parse(DepositRegistration.from_json, a) for a in _items(body, "accounts")]
        if len(items) > limit:
            raise BridgeError(f"deposit-accounts answer has more than {limit} items")
        last = after_seq
        for item in items:
            if item.chain != chain or item.seq <= last:
                raise BridgeError("deposit-accounts answer is out of order or for another chain")
            last = item.seq
        return items

    def register_mint_intent(self, intent: MintIntent) -> IntentRegistration:
        """``POST /v1/ledger/mint-intents``: register HTLC mint terms; idempotent.

        Raises:
            UnknownBridge, ValidationError, InvalidAddress: refused (`ledger.mint_intents`).
            BridgeError: the answer is for other terms or does not parse.
        """
        body = self._call("POST", "/mint-intents", json=intent.to_json())
        registration = _parse(IntentRegistration.from_json, body)
        if registration.intent != intent:
            raise BridgeError("mint-intents answer is for other terms")
        return registration

    def mint_intent(self, intent_id: bytes) -> IntentRegistration | None:
        """``GET /v1/ledger/mint-intents/{id}``: the intent, or None if the ledger has none."""
        try:
            body = self._call("GET", f"/mint-intents/0x{bytes(intent_id).hex()}")
        except BridgeError as exc:
            if exc.code == "unknown_mint_intent":
                return None
            raise
        registration = _parse(IntentRegistration.from_json, body)
        if registration.intent_id != intent_id:
            raise BridgeError("mint-intents answer is for another id")
        return registration

    def mint_intents(self, chain: str, after_seq: int = 0, limit: int = 1000
                     ) -> list[IntentRegistration]:
        """``GET /v1/ledger/mint-intents``: intents on `chain` with seq > `after_seq`,
        ascending, at most `limit` (1..1000).

        Raises:
            BridgeError: an item for another chain, or seqs not ascending past `after_seq`.
        """
        body = self._call("GET", "/mint-intents",
                          params={"chain": chain, "after_seq": after_seq, "limit": limit})
        items = [_parse(IntentRegistration.from_json, a) for a in _items(body, "intents")]
        last = after_seq
        for item in items:
            if item.intent.chain != chain or item.seq <= last or len(items) > limit:
                raise BridgeError("mint-intents answer is out of order or for another chain")
            last = item.seq
        return items

    def redeem_htlc(self, htlc_id: bytes, preimage: bytes) -> Htlc:
        """``POST /v1/ledger/htlcs/{htlc_id}/redeem``: redeem with the preimage (the ledger
        wants exactly 32 bytes whose sha256 is the hashlock).

        Returns:
            The HTLC, ``redeemed``, showing `preimage`.

        Raises:
            ValidationError: `htlc_id` is not 32 bytes (not sent).
            BadPreimage, UnknownHtlc, HtlcAlreadySettled, HtlcExpired: the ledger refused.
            BridgeError: the answer is for another HTLC, not redeemed with this preimage, or
                does not parse.
        """
        body = self._call("POST", f"/htlcs/{_htlc_hex(htlc_id)}/redeem",
                          json={"preimage": "0x" + preimage.hex()})
        htlc = _answer_htlc(body, htlc_id)
        if htlc.state is not HtlcState.REDEEMED or htlc.preimage != preimage:
            raise BridgeError("redeem answer does not show the HTLC redeemed with this preimage")
        return htlc

    def refund_htlc(self, htlc_id: bytes) -> Htlc:
        """``POST /v1/ledger/htlcs/{htlc_id}/refund``: refund after the timelock.

        Returns:
            The HTLC, ``refunded``.

        Raises:
            ValidationError: `htlc_id` is not 32 bytes (not sent).
            UnknownHtlc, HtlcAlreadySettled, HtlcNotExpired: the ledger refused.
            BridgeError: the answer is for another HTLC, not refunded, or does not parse.
        """
        body = self._call("POST", f"/htlcs/{_htlc_hex(htlc_id)}/refund", json={})
        htlc = _answer_htlc(body, htlc_id)
        if htlc.state is not HtlcState.REFUNDED:
            raise BridgeError("refund answer does not show the HTLC refunded")
        return htlc

    def htlc(self, htlc_id: bytes) -> Htlc | None:
        """``GET /v1/ledger/htlcs/{htlc_id}``: the HTLC, or None if the ledger answers
        ``unknown_htlc`` (any other error raises).

        Raises:
            ValidationError: `htlc_id` is not 32 bytes (not sent).
            BridgeError: the answer is for another HTLC or does not parse.
        """
        try:
            body = self._call("GET", f"/htlcs/{_htlc_hex(htlc_id)}")
        except UnknownHtlc:
            return None
        return _answer_htlc(body, htlc_id)

    def htlcs_by_hashlock(
        self, hashlock: bytes, after_seq: int = 0, limit: int = 100
    ) -> list[Htlc]:
        """``GET /v1/ledger/htlcs?hashlock=``: HTLCs with this 32-byte hashlock and seq >
        `after_seq`, ascending by seq, at most `limit` (1..1000).

        Raises:
            ValidationError: `hashlock` is not 32 bytes (not sent).
            BridgeError: an item has another hashlock, or seqs are not ascending past
                `after_seq`.
        """
        body = self._call("GET", "/htlcs", params={
            "hashlock": _htlc_hex(hashlock, "hashlock"), "after_seq": after_seq, "limit": limit})
        items = [_parse(Htlc.from_json, h) for h in _items(body, "htlcs")]
        if len(items) > limit:
            raise BridgeError(f"htlcs answer has more than {limit} items")
        last = after_seq
        for item in items:
            if item.hashlock != hashlock or item.seq <= last:
                raise BridgeError("htlcs answer is out of order or for another hashlock")
            last = item.seq
        return items

    def assets(self) -> list[AssetInfo]:
        """``GET /v1/ledger/assets``."""
        return [_parse(AssetInfo.from_json, a) for a in _items(self._call("GET", "/assets"),
                                                               "assets")]

    def journal(self, after_seq: int = 0, limit: int = 100) -> list[JournalEntry]:
        """``GET /v1/ledger/journal``: entries with seq > `after_seq`, oldest first."""
        body = self._call("GET", "/journal", params={"after_seq": after_seq, "limit": limit})
        return [_parse(JournalEntry.from_json, e) for e in _items(body, "entries")]

    def rotate_validator_set(
        self, new_set: ValidatorSet, signatures: Sequence[tuple[bytes, bytes]]
    ) -> int:
        """``POST /v1/ledger/validator-set``; returns the journal seq of the rotation."""
        body = self._call("POST", "/validator-set", json={
            "validator_set": new_set.to_json(), "signatures": signatures_to_json(signatures)})
        seq = body.get("seq")
        if not isinstance(seq, int):
            raise BridgeError("validator-set answer has no seq")
        return seq

    # ---- risk (`api.ledger_risk`) ------------------------------------------------------------

    def risk(self) -> RiskReport:
        """``GET /v1/ledger/risk``: paused routes, deferred mints, window usage per route."""
        return _parse(RiskReport.from_json, self._call("GET", "/risk"))

    def release_mint(self, event_id: str, token: str) -> bool:
        """``POST /v1/ledger/risk/release``: operator release of a deferred (or not yet seen)
        mint. Returns whether it changed anything.

        Raises:
            Unauthorized: `token` is not the ledger's operator token (nothing changed).
        """
        return self._operator("/risk/release", {"event_id": event_id}, token)

    def pause_route(self, route: str, reason: str, token: str) -> bool:
        """``POST /v1/ledger/risk/pause``; returns whether the route was not paused before.

        Raises:
            Unauthorized: `token` is not the ledger's operator token (nothing changed).
        """
        return self._operator("/risk/pause", {"route": route, "reason": reason}, token)

    def unpause_route(self, route: str, token: str) -> bool:
        """``POST /v1/ledger/risk/unpause``; returns whether the route was paused.

        Raises:
            Unauthorized: `token` is not the ledger's operator token (nothing changed).
        """
        return self._operator("/risk/unpause", {"route": route}, token)

    def _operator(self, path: str, body: dict[str, str], token: str) -> bool:
        answer = self._call("POST", path, json=body,
                            headers={"Authorization": f"Bearer {token}"})
        changed = answer.get("changed")
        if not isinstance(changed, bool):
            raise BridgeError(f"{path} answer has no 'changed'")
        return changed

    def journal_root(self) -> tuple[int, bytes]:
        """``GET /v1/ledger/journal/root``: (tree size, 32-byte RFC 6962 root of the journal)."""
        body = self._call("GET", "/journal/root")
        proof = _parse(InclusionProof.from_json, {**body, "path": []})
        return proof.tree_size, proof.root

    def journal_proof(self, seq: int, tree_size: int | None = None) -> JournalProof:
        """``GET /v1/ledger/journal/{seq}/proof``: entry `seq`'s hash and audit path in the tree
        of the first `tree_size` entries (default: the whole journal).

        Raises:
            ValidationError: the ledger refused the seq/tree_size.
            BridgeError: the answer is for another seq or size, or its proof does not verify
                against its own root (`ledger.merkle.verify_inclusion`).
        """
        params: dict[str, int | str] | None = None if tree_size is None else {
            "tree_size": tree_size}
        proof = _parse(JournalProof.from_json,
                       self._call("GET", f"/journal/{int(seq)}/proof", params=params))
        if proof.seq != seq or (tree_size is not None and proof.proof.tree_size != tree_size):
            raise BridgeError("journal proof answer is for another seq or tree size")
        if not proof.verify():
            raise BridgeError(f"journal proof of seq {seq} does not verify against its root")
        return proof

    def account_history(
        self, account: bytes, cursor: str | None = None, limit: int = 100
    ) -> HistoryPage:
        """``GET /v1/ledger/accounts/{account}/history``: balance changes of a 32-byte account,
        newest first, at most `limit` (1..500); pass `next_cursor` back for the next page.

        Raises:
            InvalidCursor: the ledger did not issue `cursor`.
            BridgeError: more than `limit` items, items not newest first, or an item whose
                proof does not verify against its root.
        """
        params: dict[str, int | str] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        page = _parse(HistoryPage.from_json,
                      self._call("GET", f"/accounts/{account_hex(account)}/history",
                                 params=params))
        if len(page.items) > limit:
            raise BridgeError(f"history answer has more than {limit} items")
        seqs = [item.seq for item in page.items]
        if seqs != sorted(seqs, reverse=True):
            raise BridgeError("history answer is not newest first")
        if not all(item.verify() for item in page.items):
            raise BridgeError("history answer has an entry whose proof does not verify")
        return page


def _is_error_body(body: object) -> bool:
    return (isinstance(body, dict) and isinstance(body.get("error"), dict)
            and isinstance(body["error"].get("code"), str))


def _typed_error(error: dict[str, Any], status: int) -> BridgeError:
    cls = _HTLC_ERRORS.get(error["code"]) or error_class_for_code(error["code"])
    message = str(error.get("message", ""))
    if issubclass(cls, ChainError):
        return cls(message, chain=LEDGER_CHAIN)
    try:
        exc = cls(message)
    except TypeError:  # a class with required keyword arguments
        exc = BridgeError(message)
    if cls is BridgeError:
        exc.code = error["code"]  # keep the server's code visible
    return exc


def _htlc_hex(value: bytes, name: str = "htlc_id") -> str:
    if len(value) != 32:
        raise ValidationError(f"{name} must be 32 bytes, got {len(value)}")
    return "0x" + value.hex()


def _answer_htlc(body: dict[str, Any], htlc_id: bytes) -> Htlc:
    htlc = _parse(Htlc.from_json, body)
    if htlc.htlc_id != htlc_id:
        raise BridgeError("htlc answer is for another htlc id")
    return htlc


def _items(body: dict[str, Any], key: str) -> list[Any]:
    items = body.get(key)
    if not isinstance(items, list):
        raise BridgeError(f"answer has no {key!r} list")
    return items


def _parse(parser: Callable[[Any], T], data: Any) -> T:
    try:
        return parser(data)
    except BridgeError as exc:
        raise BridgeError(f"malformed ledger answer: {exc}") from exc
