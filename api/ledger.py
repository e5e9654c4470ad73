"""HTTP API of the native ledger (notes/DESIGN.md "Ledger HTTP API"), a thin FastAPI router over
`ledger.service.Ledger`.

Owns: the request/response schemas, the route table, and the mapping of `BridgeError` to HTTP
status and the ``{"error": {"code", "message"}}`` body. Must not hold ledger rules (the service
does) nor touch the database.

Routes (prefix ``/v1/ledger``): GET status, POST mints, POST transactions, GET accounts/{account},
GET burns?after_seq&limit, GET burns/{burn_id}, GET assets, POST validator-set,
GET journal?after_seq&limit, POST deposit-accounts, GET deposit-accounts?chain&after_seq&limit,
POST htlcs/{htlc_id}/redeem, POST htlcs/{htlc_id}/refund, GET htlcs/{htlc_id},
GET htlcs?hashlock&after_seq&limit (an ``htlc_lock`` is submitted through POST transactions),
POST mint-intents, GET mint-intents?chain&after_seq&limit, GET mint-intents/{intent_id};
GET risk, POST risk/release|pause|unpause (`api.ledger_risk`, 401 ``unauthorized``);
GET journal/root, GET journal/{seq}/proof?tree_size, GET accounts/{account}/history?cursor&limit
(`api.ledger_history`: RFC 6962 journal root, audit paths, account history with proofs).
Status codes: 400 invalid input (an unconfigured bridge chain included: ``unknown_bridge``;
``bad_preimage``, ``timelock_too_short``), 404 unknown asset/account/route, ``unknown_burn``
and ``unknown_htlc``, 409 conflicts with the current state (bad nonce, insufficient balance,
wrong epoch, ``htlc_already_settled``, ``htlc_not_expired``, ``htlc_expired``,
``illegal_transition``, ``rescan_refused``), 401 ``unauthorized`` and 403 ``forbidden`` (operator
API keys, `api.auth`), 404 also ``unknown_transfer``/``unknown_route``/``unknown_chain``,
503 retryable, 500 otherwise.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from adapters.errors import (
    BadNonce,
    BridgeError,
    Forbidden,
    HtlcError,
    IllegalTransition,
    InsufficientBalance,
    RescanRefused,
    RetryableChainError,
    Unauthorized,
    UnknownAccount,
    UnknownAsset,
    UnknownChain,
    UnknownRoute,
    UnknownTransfer,
    ValidationError,
)
from api.ledger_metrics import install_ledger_observability, observe_mints, observe_transaction
from htlc.errors import (
    BadPreimage,
    HtlcAlreadySettled,
    HtlcExpired,
    HtlcNotExpired,
    TimelockTooShort,
    UnknownHtlc,
)
from htlc.mint_intent import MintIntent
from ledger.errors import WrongEpoch
from ledger.fields import parse_account
from ledger.service import MAX_PAGE, Ledger
from ledger.transactions import SignedTx
from ledger.types import (
    UNKNOWN_BURN_CODE,
    Htlc,
    MintRequest,
    MintResult,
    MintStatus,
    signatures_from_json,
    validator_set_from_json,
)
from validators.attestation import parse_hex

log = logging.getLogger(__name__)
MAX_MINTS_PER_REQUEST = 1000
MAX_SIGNATURES = 256

IntLike = StrictStr | StrictInt  # integers arrive as decimal strings (or JSON integers)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LockEventIn(_In):
    chain: StrictStr
    contract: StrictStr
    nonce: IntLike
    token: StrictStr
    sender: StrictStr
    amount: IntLike
    recipient: StrictStr
    tx_hash: StrictStr
    log_index: IntLike
    block_number: IntLike
    block_hash: StrictStr


class SignatureIn(_In):
    validator: StrictStr
    signature: StrictStr


class MintIn(_In):
    event: LockEventIn
    epoch: IntLike
    signatures: list[SignatureIn] = Field(max_length=MAX_SIGNATURES)


class MintsIn(_In):
    mints: list[MintIn] = Field(max_length=MAX_MINTS_PER_REQUEST)


class MintResultOut(BaseModel):
    event_id: str
    status: Literal["minted", "duplicate", "rejected", "deferred"]
    code: str | None
    seq: int | None
    retry_at: float | None = None


class MintsOut(BaseModel):
    results: list[MintResultOut]


class TxIn(_In):
    tx: dict[StrictStr, StrictStr]
    signature: StrictStr


class TxOut(BaseModel):
    seq: int
    burn_id: str | None
    htlc_id: str | None


class AccountOut(BaseModel):
    account: str
    nonce: str
    balances: dict[str, str]


class BurnOut(BaseModel):
    seq: int
    burn_id: str
    account: str
    asset: str
    origin_chain: str
    origin_token: str
    amount: str
    dest_chain: str
    dest_address: str
    tx: dict[str, str]
    signature: str


class BurnsOut(BaseModel):
    burns: list[BurnOut]


class AssetOut(BaseModel):
    asset: str
    symbol: str
    origin_chain: str
    origin_token: str
    decimals: int
    supply: str
    minted_total: str
    burned_total: str


class AssetsOut(BaseModel):
    assets: list[AssetOut]


class MemberJson(_In):
    ed25519: StrictStr
    evm_address: StrictStr


class ValidatorSetJson(_In):
    epoch: IntLike
    threshold: IntLike
    members: list[MemberJson] = Field(max_length=MAX_SIGNATURES)


class StatusOut(BaseModel):
    network: str
    epoch: str
    validator_set: ValidatorSetJson
    journal_seq: int
    journal_head: str
    journal_root: str  # RFC 6962 root of entries 1..journal_seq (`api.ledger_history`)


class ValidatorSetIn(_In):
    validator_set: ValidatorSetJson
    signatures: list[SignatureIn] = Field(max_length=MAX_SIGNATURES)


class ValidatorSetOut(BaseModel):
    seq: int
    epoch: str


class JournalEntryOut(BaseModel):
    seq: int
    kind: str
    payload: str
    prev_hash: str
    hash: str


class JournalOut(BaseModel):
    entries: list[JournalEntryOut]


class DepositAccountIn(_In):
    chain: StrictStr
    account: StrictStr


class DepositAccountOut(BaseModel):
    seq: int
    chain: str
    account: str
    registered_at: float


class DepositRegistrationOut(DepositAccountOut):
    created: bool


class DepositAccountsOut(BaseModel):
    accounts: list[DepositAccountOut]


class HtlcRedeemIn(_In):
    preimage: StrictStr = Field(max_length=200)  # 0x hex; the ledger wants exactly 32 bytes


class HtlcRefundIn(_In):
    pass


class HtlcOut(BaseModel):
    htlc_id: str
    seq: int
    origin: Literal["lock", "mint"]
    sender: str | None
    recipient: str
    asset: str
    amount: str
    hashlock: str
    timelock: str
    state: Literal["locked", "redeemed", "refunded"]
    preimage: str | None
    created_at: float
    settled_at: float | None


class HtlcsOut(BaseModel):
    htlcs: list[HtlcOut]


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


def get_ledger(request: Request) -> Ledger:
    """The `Ledger` stored on ``app.state.ledger`` by `create_ledger_app`."""
    ledger: Ledger = request.app.state.ledger
    return ledger


LedgerDep = Annotated[Ledger, Depends(get_ledger)]
AfterSeq = Annotated[int, Query(ge=0)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
router = APIRouter(prefix="/v1/ledger", responses={400: {"model": ErrorOut}})


@router.get("/status", response_model=StatusOut)
def get_status(ledger: LedgerDep) -> StatusOut:
    status = ledger.status()
    root = ledger.history.root(status.journal_seq)[1]
    return StatusOut.model_validate({**status.to_json(), "journal_root": "0x" + root.hex()})


@router.post("/mints", response_model=MintsOut)
def post_mints(body: MintsIn, ledger: LedgerDep, request: Request) -> MintsOut:
    """Mint each lock event that carries a quorum certificate; one result per item, in order.
    An item that does not parse is ``rejected`` with its error code; the others still apply."""
    parsed: list[MintRequest | MintResult] = []
    for item in body.mints:
        raw = item.model_dump()
        try:
            parsed.append(MintRequest.from_json(raw))
        except BridgeError as exc:
            event = raw["event"]
            event_id = f"{event['chain']}/{str(event['contract']).lower()}/{event['nonce']}"
            parsed.append(MintResult(event_id, MintStatus.REJECTED, exc.code))
    requests = [p for p in parsed if isinstance(p, MintRequest)]
    minted = iter(ledger.mint_batch(requests))
    results = [next(minted) if isinstance(p, MintRequest) else p for p in parsed]
    observe_mints(request, results)
    return MintsOut(results=[MintResultOut.model_validate(r.to_json()) for r in results])


@router.post("/transactions", response_model=TxOut)
def post_transaction(body: TxIn, ledger: LedgerDep, request: Request) -> TxOut:
    """Apply a user-signed burn, transfer or htlc_lock (Ferry tx v1, `ledger.transactions`)."""
    signed = SignedTx.from_json(body.model_dump())
    receipt = ledger.submit_transaction(signed)
    observe_transaction(request, str(signed.body.get("kind")))
    return TxOut.model_validate(receipt.to_json())


@router.get("/accounts/{account}", response_model=AccountOut)
def get_account(account: str, ledger: LedgerDep) -> AccountOut:
    """Next nonce and balances of an account (``0x`` + 64 lowercase hex); unseen: nonce 0."""
    return AccountOut.model_validate(ledger.account(parse_account(account)).to_json())


@router.get("/burns", response_model=BurnsOut)
def get_burns(ledger: LedgerDep, after_seq: AfterSeq = 0, limit: Limit = 100) -> BurnsOut:
    burns = ledger.burns(after_seq, limit)
    return BurnsOut(burns=[BurnOut.model_validate(b.to_json()) for b in burns])


@router.get("/burns/{burn_id}", response_model=BurnOut, responses={404: {"model": ErrorOut}})
def get_burn(burn_id: str, ledger: LedgerDep) -> BurnOut | JSONResponse:
    """One burn by its 32-byte id (``0x`` hex), shaped as an item of GET burns; 404
    ``unknown_burn`` if the ledger has none (a missing route answers 404 ``not_found``)."""
    record = ledger.burn(parse_hex(burn_id, 32))
    if record is None:
        return error_response(404, UNKNOWN_BURN_CODE, f"no burn {burn_id}")
    return BurnOut.model_validate(record.to_json())


@router.get("/assets", response_model=AssetsOut)
def get_assets(ledger: LedgerDep) -> AssetsOut:
    return AssetsOut(assets=[AssetOut.model_validate(a.to_json()) for a in ledger.assets()])


@router.post("/validator-set", response_model=ValidatorSetOut)
def post_validator_set(body: ValidatorSetIn, ledger: LedgerDep) -> ValidatorSetOut:
    """Rotate to a new validator set certified by a quorum of the current one."""
    raw = body.model_dump()
    new_set = validator_set_from_json(raw["validator_set"])
    seq = ledger.rotate_validator_set(new_set, signatures_from_json(raw["signatures"]))
    return ValidatorSetOut(seq=seq, epoch=str(new_set.epoch))


@router.get("/journal", response_model=JournalOut)
def get_journal(ledger: LedgerDep, after_seq: AfterSeq = 0, limit: Limit = 100) -> JournalOut:
    entries = ledger.journal(after_seq, limit)
    return JournalOut(entries=[JournalEntryOut.model_validate(e.to_json()) for e in entries])


@router.post("/deposit-accounts", response_model=DepositRegistrationOut)
def post_deposit_account(body: DepositAccountIn, ledger: LedgerDep) -> DepositRegistrationOut:
    """Register (chain, account) for deposit-address scanning; idempotent (a repeat answers the
    stored seq with ``created: false``). Unauthenticated: a registration only makes deposits to
    that account's address creditable to that account."""
    registration = ledger.register_deposit_account(body.chain, parse_account(body.account))
    return DepositRegistrationOut.model_validate(registration.to_json())


@router.get("/deposit-accounts", response_model=DepositAccountsOut)
def get_deposit_accounts(
    ledger: LedgerDep, chain: Annotated[str, Query(max_length=64)], after_seq: AfterSeq = 0,
    limit: Limit = 100,
) -> DepositAccountsOut:
    """Registrations on `chain` with seq > `after_seq`, ascending by seq."""
    page = ledger.deposit_accounts(chain, after_seq, limit)
    return DepositAccountsOut(
        accounts=[DepositAccountOut.model_validate(r.to_json()) for r in page])


class MintIntentIn(_In):
    """Terms of an HTLC mint (`htlc.mint_intent.MintIntent`): hex fields ``0x``, integers as
    decimal strings."""

    chain: StrictStr = Field(max_length=64)
    account: StrictStr = Field(max_length=66)
    hashlock: StrictStr = Field(max_length=66)
    refund_pubkey: StrictStr = Field(max_length=68)
    btc_expiry: StrictStr = Field(max_length=20)
    ledger_timelock: StrictStr = Field(max_length=20)


class MintIntentOut(BaseModel):
    seq: int
    intent_id: str
    intent: dict[str, str]
    registered_at: float
    created: bool


class MintIntentsOut(BaseModel):
    intents: list[MintIntentOut]


@router.post("/mint-intents", response_model=MintIntentOut)
def post_mint_intent(body: MintIntentIn, ledger: LedgerDep) -> MintIntentOut:
    """Register an HTLC mint intent (`ledger.mint_intents`); idempotent for identical terms
    (``created: false``). Scanners derive its mint-HTLC address (`htlc.mint`)."""
    registration = ledger.register_mint_intent(MintIntent.from_json(body.model_dump()))
    return MintIntentOut.model_validate(registration.to_json())


@router.get("/mint-intents", response_model=MintIntentsOut)
def get_mint_intents(
    ledger: LedgerDep, chain: Annotated[str, Query(max_length=64)], after_seq: AfterSeq = 0,
    limit: Limit = 100,
) -> MintIntentsOut:
    """Intents on `chain` with registry seq > `after_seq`, ascending by seq."""
    page = ledger.mint_intents(chain, after_seq, limit)
    return MintIntentsOut(intents=[MintIntentOut.model_validate(r.to_json()) for r in page])


@router.get("/mint-intents/{intent_id}", response_model=MintIntentOut,
            responses={404: {"model": ErrorOut}})
def get_mint_intent(intent_id: str, ledger: LedgerDep) -> MintIntentOut | JSONResponse:
    """One intent by its 32-byte id; 404 ``unknown_mint_intent`` if none."""
    registration = ledger.mint_intent(parse_hex(intent_id, 32))
    if registration is None:
        return error_response(404, "unknown_mint_intent", f"no mint intent {intent_id}")
    return MintIntentOut.model_validate(registration.to_json())


HTLC_RESPONSES: dict[int | str, dict[str, object]] = {404: {"model": ErrorOut},
                                                    409: {"model": ErrorOut}}


def _htlc_out(htlc: Htlc) -> HtlcOut:
    return HtlcOut.model_validate(htlc.to_json())


def _parse_preimage(text: str) -> bytes:
    """``0x`` hex -> bytes of any length (the ledger refuses all but 32: `BadPreimage`)."""
    try:
        return parse_hex(text)
    except ValidationError as exc:
        raise BadPreimage(f"preimage must be 0x hex: {exc}") from exc


@router.post("/htlcs/{htlc_id}/redeem", response_model=HtlcOut, responses=HTLC_RESPONSES)
def post_htlc_redeem(htlc_id: str, body: HtlcRedeemIn, ledger: LedgerDep) -> HtlcOut:
    """Redeem a locked HTLC with its 32-byte preimage (``{"preimage": "0x.."}``); unsigned: the
    preimage is the authority. Answers the HTLC, now ``redeemed``, preimage shown."""
    return _htlc_out(ledger.redeem_htlc(parse_hex(htlc_id, 32), _parse_preimage(body.preimage)))


@router.post("/htlcs/{htlc_id}/refund", response_model=HtlcOut, responses=HTLC_RESPONSES)
def post_htlc_refund(
    htlc_id: str, ledger: LedgerDep, body: HtlcRefundIn | None = None
) -> HtlcOut:
    """Refund a locked HTLC at or after its timelock (body ``{}`` or none); unsigned: a refund
    only ever pays the sender. Answers the HTLC, now ``refunded``."""
    return _htlc_out(ledger.refund_htlc(parse_hex(htlc_id, 32)))


@router.get("/htlcs/{htlc_id}", response_model=HtlcOut, responses=HTLC_RESPONSES)
def get_htlc(htlc_id: str, ledger: LedgerDep) -> HtlcOut:
    """One HTLC by its 32-byte id; 404 ``unknown_htlc`` if the ledger has none."""
    htlc = ledger.htlc(parse_hex(htlc_id, 32))
    if htlc is None:
        raise UnknownHtlc(f"no htlc {htlc_id}")
    return _htlc_out(htlc)


@router.get("/htlcs", response_model=HtlcsOut)
def get_htlcs(
    ledger: LedgerDep, hashlock: Annotated[str, Query(max_length=66)], after_seq: AfterSeq = 0,
    limit: Limit = 100,
) -> HtlcsOut:
    """HTLCs with this 32-byte hashlock (``0x`` hex) and seq > `after_seq`, ascending by seq
    (how a watcher finds the preimage of a swap leg once it is redeemed)."""
    page = ledger.htlcs_by_hashlock(parse_hex(hashlock, 32), after_seq, limit)
    return HtlcsOut(htlcs=[_htlc_out(h) for h in page])


def http_status(exc: BridgeError) -> int:
    """HTTP status for a `BridgeError` (see the module docstring)."""
    if isinstance(exc, Unauthorized):
        return 401
    if isinstance(exc, Forbidden):
        return 403
    if isinstance(exc, UnknownAsset | UnknownAccount | UnknownHtlc | UnknownTransfer
                  | UnknownRoute | UnknownChain):
        return 404
    if isinstance(exc, BadNonce | InsufficientBalance | WrongEpoch | HtlcAlreadySettled
                  | HtlcNotExpired | HtlcExpired | RescanRefused | IllegalTransition):
        return 409
    if isinstance(exc, ValidationError | BadPreimage | TimelockTooShort):
        return 400
    if isinstance(exc, HtlcError):
        return 409
    if isinstance(exc, RetryableChainError):
        return 503
    return 500


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"code": code, "message": message}})


def install_error_handlers(app: FastAPI) -> None:
    """Render `BridgeError`, request validation errors and HTTP errors as the error body."""

    async def on_bridge_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, BridgeError)
        status = http_status(exc)
        if status >= 500:
            log.error("ledger request failed code=%s: %s", exc.code, exc)
        return error_response(status, exc.code, str(exc))

    async def on_invalid_request(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        return error_response(400, ValidationError.code, problems or "invalid request")

    async def on_http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = "not_found" if exc.status_code == 404 else f"http_{exc.status_code}"
        return error_response(exc.status_code, code, str(exc.detail))

    app.add_exception_handler(BridgeError, on_bridge_error)
    app.add_exception_handler(RequestValidationError, on_invalid_request)
    app.add_exception_handler(StarletteHTTPException, on_http_error)


def create_ledger_app(ledger: Ledger) -> FastAPI:
    """A FastAPI app serving `ledger` under ``/v1/ledger`` (run it with uvicorn)."""
    app = FastAPI(title="Ferry ledger", version="1")
    app.state.ledger = ledger
    app.include_router(router)
    from api.ledger_history import router as history_router  # both import this module
    from api.ledger_risk import risk_router

    app.include_router(risk_router)
    app.include_router(history_router)
    install_error_handlers(app)
    install_ledger_observability(app, ledger)  # GET /metrics, /healthz, /readyz
    return app
