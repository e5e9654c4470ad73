"""Escrow releases on Cosmos: one bank MsgSend out of the multisig escrow, signed by m members.

Owns: the release's SIGN_MODE_LEGACY_AMINO_JSON sign bytes and TxBody, members' signatures,
assembling the signed TxRaw (legacy multisig), the validators' security check of proposed sign
bytes (`check_release`), and tx hashes.
Must not: talk to a node, read the clock, hold or log keys, or sign anything it did not build
or check.

Sign bytes (x/tx v0.13 `aminojson` handler, as used by Cosmos SDK v0.50): the StdSignDoc as
compact JSON with keys sorted at every level, integers as decimal strings, Go's HTML escaping
(<, >, & as \\u003c, \\u003e, \\u0026):
``{"account_number","chain_id","fee":{"amount":[{"amount","denom"}..],"gas"},"memo",
"msgs":[{"type":"cosmos-sdk/MsgSend","value":{"amount":[..],"from_address","to_address"}}],
"sequence"}``. `timeout_height` (always 0 here), `fee.payer`, `fee.granter` and `tip` are empty
and omitted; `fee.amount` is `[]` when empty; `memo` is always present. Coins sort by denom.
Checked byte for byte against simd v0.50.3 (`tx sign --sign-mode amino-json`): deterministic
(RFC 6979) signatures over these bytes equal simd's.

Each member signs sha256(sign bytes): 64-byte r||s with low S (the SDK rejects high S).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from coincurve import PrivateKey, PublicKey
from coincurve.ecdsa import cdata_to_der, deserialize_compact
from cosmpy.protos.cosmos.bank.v1beta1.tx_pb2 import MsgSend
from cosmpy.protos.cosmos.base.v1beta1.coin_pb2 import Coin as CoinProto
from cosmpy.protos.cosmos.crypto.multisig.v1beta1 import multisig_pb2
from cosmpy.protos.cosmos.tx.signing.v1beta1.signing_pb2 import SignMode
from cosmpy.protos.cosmos.tx.v1beta1 import tx_pb2
from google.protobuf.any_pb2 import Any as AnyProto

from adapters.cosmos import multisig
from adapters.errors import ConfigError, QuorumNotMet, ValidationError

MSG_SEND_TYPE_URL = "/cosmos.bank.v1beta1.MsgSend"
MSG_SEND_AMINO_NAME = "cosmos-sdk/MsgSend"
SIGN_MODE_LEGACY_AMINO_JSON = SignMode.Value("SIGN_MODE_LEGACY_AMINO_JSON")
MAX_MEMO_CHARS = 256  # x/auth default `max_memo_characters`
MAX_CHAIN_ID_CHARS = 50  # CometBFT's MaxChainIDLen
MAX_UINT64 = 2**64 - 1
MAX_SIGN_BYTES = 16_384  # a one-MsgSend sign doc is under 1 KiB; refuse anything far larger
MAX_AMOUNT = 2**256 - 1  # sdk.Int (cosmossdk.io/math) holds at most 256 bits
DENOM_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9/:._-]{2,127}")  # sdk.Coin denom regex (v0.50)
UINT_RE = re.compile(r"0|[1-9][0-9]*")
SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0
_GO_HTML_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


class CosmosReleaseMismatch(ValidationError):
    """Proposed release sign bytes do not match the burn they claim to pay (message, recipient,
    coin, chain, fee or memo). SECURITY: a validator refuses to sign them."""

    code = "release_mismatch"


def _uint(name: str, value: int, maximum: int = MAX_UINT64) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise ValidationError(f"{name} must be an int in 0..{maximum}, got {value!r}")
    return value


def _printable(name: str, text: str, limit: int) -> str:
    """ASCII 0x20..0x7E only: the one range where Python's and Go's JSON escaping agree
    (apart from the HTML escapes `_go_json` adds)."""
    if not isinstance(text, str) or len(text) > limit or any(not " " <= c <= "~" for c in text):
        raise ValidationError(f"{name} must be printable ASCII of at most {limit} chars")
    return text


@dataclass(frozen=True)
class Coin:
    """An amount of one denom, in its base units (`amount` > 0)."""

    denom: str
    amount: int

    def __post_init__(self) -> None:
        if not isinstance(self.denom, str) or not DENOM_RE.fullmatch(self.denom):
            raise ValidationError(f"bad denom {self.denom!r}")
        if _uint("amount", self.amount, MAX_AMOUNT) == 0:
            raise ValidationError("a coin amount must be positive")

    def to_proto(self) -> CoinProto:
        return CoinProto(denom=self.denom, amount=str(self.amount))


@dataclass(frozen=True)
class Fee:
    """A transaction fee: coins paid (sorted by denom, distinct; may be empty) and gas limit."""

    amount: tuple[Coin, ...]
    gas: int

    def __init__(self, amount: Iterable[Coin], gas: int) -> None:
        coins = tuple(amount)
        if not all(isinstance(c, Coin) for c in coins):
            raise ValidationError("fee amount must be Coins")
        coins = tuple(sorted(coins, key=lambda c: c.denom))
        if len({c.denom for c in coins}) != len(coins):
            raise ValidationError("duplicate denom in the fee")
        if _uint("gas", gas) == 0:
            raise ValidationError("gas limit must be positive")
        object.__setattr__(self, "amount", coins)
        object.__setattr__(self, "gas", gas)


def _coins_json(coins: Iterable[Coin]) -> list[dict[str, str]]:
    return [{"amount": str(c.amount), "denom": c.denom}
            for c in sorted(coins, key=lambda c: c.denom)]


def _go_json(value: object) -> bytes:
    """Sorted-key compact JSON escaped as Go's encoding/json does for printable ASCII."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return re.sub("[<>&]", lambda m: _GO_HTML_ESCAPES[m.group(0)], text).encode()


def amino_sign_doc(
    chain_id: str, account_number: int, sequence: int, fee: Fee, memo: str,
    msgs: Sequence[MsgSend],
) -> bytes:
    """SIGN_MODE_LEGACY_AMINO_JSON sign bytes of a tx carrying bank `msgs` (see module doc).

    Args:
        chain_id: printable ASCII, at most 50 chars.
        account_number, sequence: the signer (escrow) account's, uint64.
        fee: the tx fee; payer and granter are never set.
        memo: printable ASCII, at most 256 chars.
        msgs: `cosmos.bank.v1beta1.MsgSend` protos (the only message Ferry signs).

    Returns:
        UTF-8 JSON bytes; sha256 of them is what each member signs.

    Raises:
        ValidationError: a field out of range, or a message that is not a valid MsgSend.
    """
    amino_msgs = []
    for msg in msgs:
        if not isinstance(msg, MsgSend):
            raise ValidationError(f"unsupported message {type(msg).__name__}")
        coins = [Coin(c.denom, int(c.amount)) for c in msg.amount if UINT_RE.fullmatch(c.amount)]
        if len(coins) != len(msg.amount) or not coins:
            raise ValidationError("MsgSend amount must be positive integer coins")
        amino_msgs.append({"type": MSG_SEND_AMINO_NAME, "value": {
            "amount": _coins_json(coins), "from_address": msg.from_address,
            "to_address": msg.to_address}})
    if not chain_id:
        raise ValidationError("empty chain id")
    return _go_json({
        "account_number": str(_uint("account_number", account_number)),
        "chain_id": _printable("chain_id", chain_id, MAX_CHAIN_ID_CHARS),
        "fee": {"amount": _coins_json(fee.amount), "gas": str(fee.gas)},
        "memo": _printable("memo", memo, MAX_MEMO_CHARS),
        "msgs": amino_msgs,
        "sequence": str(_uint("sequence", sequence)),
    })


@dataclass(frozen=True)
class UnsignedRelease:
    """A release awaiting signatures: `sign_bytes` is what members sign, `body_bytes` what is
    broadcast (the TxBody whose amino JSON view `sign_bytes` is).

    Attributes:
        chain_id: the Cosmos chain id.
        escrow: the escrow's bech32 address (the MsgSend's from_address and the signer).
        account_number, sequence: the escrow account's, at build time.
        to_address: the burn's bech32 recipient (lowercase).
        coin: what the recipient receives (the burned amount of the escrowed denom).
        fee: paid by the escrow on top of `coin`.
        memo: "ferry release <burn_id>".
        sign_bytes: amino JSON StdSignDoc, see `amino_sign_doc`.
        body_bytes: serialized `cosmos.tx.v1beta1.TxBody` {messages: [Any(MsgSend)], memo}.
    """

    chain_id: str
    escrow: str
    account_number: int
    sequence: int
    to_address: str
    coin: Coin
    fee: Fee
    memo: str
    sign_bytes: bytes = field(repr=False)
    body_bytes: bytes = field(repr=False)

    def digest(self) -> bytes:
        """sha256(sign_bytes): the 32 bytes each member signs."""
        return hashlib.sha256(self.sign_bytes).digest()


def build_release(
    chain_id: str, escrow_pubkeys: Iterable[bytes], threshold: int, account_number: int,
    sequence: int, to_address: str, denom: str, amount: int, fee: Fee, memo: str,
    *, prefix: str = multisig.DEFAULT_PREFIX, tx_sig_limit: int = multisig.DEFAULT_TX_SIG_LIMIT,
) -> UnsignedRelease:
    """Build the unsigned release of `amount` `denom` from the escrow to `to_address`.

    `prefix` is the chain's bech32 prefix; `tx_sig_limit` its x/auth parameter (see
    `multisig.escrow_pubkey`).

    Raises:
        ConfigError: bad escrow keys or threshold.
        InvalidAddress: `to_address` is not a `prefix` bech32 address.
        ValidationError: bad denom, amount, sequence numbers, chain id or memo.
    """
    escrow = multisig.escrow_address(escrow_pubkeys, threshold, prefix, tx_sig_limit=tx_sig_limit)
    recipient = multisig.canonical_address(to_address, prefix)
    coin = Coin(denom, amount)
    msg = MsgSend(from_address=escrow, to_address=recipient, amount=[coin.to_proto()])
    sign_bytes = amino_sign_doc(chain_id, account_number, sequence, fee, memo, [msg])
    body = tx_pb2.TxBody(
        messages=[AnyProto(type_url=MSG_SEND_TYPE_URL, value=msg.SerializeToString())],
        memo=memo)
    return UnsignedRelease(chain_id, escrow, account_number, sequence, recipient, coin, fee,
                           memo, sign_bytes, body.SerializeToString())


def _sign_bytes(unsigned: UnsignedRelease | bytes) -> bytes:
    return unsigned.sign_bytes if isinstance(unsigned, UnsignedRelease) else bytes(unsigned)


def sign(unsigned: UnsignedRelease | bytes, secret32: bytes) -> bytes:
    """A member's signature of a release: 64-byte r||s, low S, RFC 6979 deterministic.

    SECURITY: signs whatever the sign bytes say; a validator runs `check_release` on the same
    bytes first.

    Args:
        unsigned: the release, or its sign bytes.
        secret32: the member's 32-byte secp256k1 secret.
    """
    digest = hashlib.sha256(_sign_bytes(unsigned)).digest()
    # libsecp256k1 always produces normalized (low-S) signatures; drop the recovery id.
    return bytes(PrivateKey(bytes(secret32)).sign_recoverable(digest, hasher=None)[:64])


def verify(unsigned: UnsignedRelease | bytes, pubkey33: bytes, sig64: bytes) -> bool:
    """Whether `sig64` (r||s, low S) signs the release's sign bytes under `pubkey33`."""
    sig64 = bytes(sig64)
    if len(sig64) != 64 or int.from_bytes(sig64[32:], "big") > SECP256K1_HALF_N:
        return False
    digest = hashlib.sha256(_sign_bytes(unsigned)).digest()
    try:
        der = cdata_to_der(deserialize_compact(sig64))
        return bool(PublicKey(bytes(pubkey33)).verify(der, digest, hasher=None))
    except (ValueError, TypeError):
        return False


def assemble(
    unsigned: UnsignedRelease, escrow_pubkeys: Iterable[bytes], threshold: int,
    signatures: Mapping[bytes, bytes], *, tx_sig_limit: int = multisig.DEFAULT_TX_SIG_LIMIT,
) -> bytes:
    """The signed transaction (serialized `cosmos.tx.v1beta1.TxRaw`), ready to broadcast.

    Uses exactly `threshold` valid signatures, the first ones in sorted key order. The single
    SignerInfo carries Any(LegacyAminoPubKey), mode_info multi {CompactBitArray over all n keys
    (bit i = sorted key i, MSB first in each byte, extra_bits_stored = n % 8), one
    single{LEGACY_AMINO_JSON} per signature} and the escrow's sequence; signatures[0] is
    MultiSignature{the chosen signatures in key order}.

    Args:
        signatures: member pubkey (33 bytes) -> its 64-byte signature. Non-members and invalid
            signatures are ignored.

    Raises:
        ConfigError: the keys and threshold are not the release's escrow.
        QuorumNotMet: fewer than `threshold` valid member signatures.
    """
    keys = multisig.sorted_pubkeys(escrow_pubkeys)
    legacy = multisig.escrow_pubkey(keys, threshold, tx_sig_limit=tx_sig_limit)
    address = hashlib.sha256(multisig.amino_bytes(legacy)).digest()[:20]
    if multisig.encode_address(address, unsigned.escrow.rpartition("1")[0]) != unsigned.escrow:
        raise ConfigError("the keys and threshold are not this release's escrow")
    chosen: list[tuple[int, bytes]] = []
    for index, key in enumerate(keys):
        sig = signatures.get(key)
        if len(chosen) < threshold and sig is not None and verify(unsigned, key, sig):
            chosen.append((index, bytes(sig)))
    if len(chosen) < threshold:
        raise QuorumNotMet(f"{len(chosen)} valid signatures of {threshold} needed")
    elems = bytearray((len(keys) + 7) // 8)
    for index, _ in chosen:
        elems[index // 8] |= 1 << (7 - index % 8)
    single = tx_pb2.ModeInfo(single=tx_pb2.ModeInfo.Single(mode=SIGN_MODE_LEGACY_AMINO_JSON))
    multi = tx_pb2.ModeInfo.Multi(
        bitarray=multisig_pb2.CompactBitArray(extra_bits_stored=len(keys) % 8, elems=bytes(elems)),
        mode_infos=[single] * len(chosen))
    signer = tx_pb2.SignerInfo(
        public_key=AnyProto(type_url=multisig.MULTISIG_PUBKEY_TYPE_URL,
                            value=legacy.SerializeToString()),
        mode_info=tx_pb2.ModeInfo(multi=multi), sequence=unsigned.sequence)
    auth_info = tx_pb2.AuthInfo(signer_infos=[signer], fee=tx_pb2.Fee(
        amount=[c.to_proto() for c in unsigned.fee.amount], gas_limit=unsigned.fee.gas))
    multi_sig = multisig_pb2.MultiSignature(signatures=[sig for _, sig in chosen])
    raw = tx_pb2.TxRaw(body_bytes=unsigned.body_bytes,
                       auth_info_bytes=auth_info.SerializeToString(),
                       signatures=[multi_sig.SerializeToString()])
    return bytes(raw.SerializeToString())


def txhash(tx_raw_bytes: bytes) -> str:
    """The CometBFT tx hash: sha256 of the TxRaw bytes, 64 uppercase hex characters."""
    return hashlib.sha256(tx_raw_bytes).hexdigest().upper()


# ----------------------------------------------------------------------------- security check


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise CosmosReleaseMismatch("duplicate key in the sign doc")
    return dict(pairs)


def _obj(value: object, keys: set[str], what: str) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) != keys:
        raise CosmosReleaseMismatch(f"{what} is not an object with exactly {sorted(keys)}")
    return cast(dict[str, Any], value)


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise CosmosReleaseMismatch(f"{what} is not a string")
    return value


def _int_str(value: object, what: str) -> int:
    if not UINT_RE.fullmatch(_str(value, what)):
        raise CosmosReleaseMismatch(f"{what} is not a decimal integer string")
    return int(cast(str, value))


def _coins(value: object, what: str) -> tuple[Coin, ...]:
    if not isinstance(value, list):
        raise CosmosReleaseMismatch(f"{what} is not a list")
    items = [_obj(v, {"amount", "denom"}, what) for v in value]
    return tuple(Coin(_str(v["denom"], what), _int_str(v["amount"], what)) for v in items)


def _decode(sign_bytes: bytes) -> tuple[dict[str, Any], Fee, list[MsgSend]]:
    """Parse sign bytes into (doc, fee, msgs), insisting they re-encode to the same bytes."""
    if len(sign_bytes) > MAX_SIGN_BYTES:
        raise CosmosReleaseMismatch(f"sign doc of {len(sign_bytes)} bytes is too large")
    try:
        doc = _obj(json.loads(sign_bytes.decode("utf-8"), object_pairs_hook=_no_duplicates),
                   {"account_number", "chain_id", "fee", "memo", "msgs", "sequence"}, "sign doc")
        fee_doc = _obj(doc["fee"], {"amount", "gas"}, "fee")
        fee = Fee(_coins(fee_doc["amount"], "fee amount"), _int_str(fee_doc["gas"], "gas"))
        if not isinstance(doc["msgs"], list):
            raise CosmosReleaseMismatch("msgs is not a list")
        msgs = []
        for item in doc["msgs"]:
            msg = _obj(item, {"type", "value"}, "message")
            if msg["type"] != MSG_SEND_AMINO_NAME:
                raise CosmosReleaseMismatch(f"message type {msg['type']!r} is not a MsgSend")
            value = _obj(msg["value"], {"amount", "from_address", "to_address"}, "MsgSend")
            coins = _coins(value["amount"], "MsgSend amount")
            msgs.append(MsgSend(from_address=_str(value["from_address"], "from_address"),
                                to_address=_str(value["to_address"], "to_address"),
                                amount=[c.to_proto() for c in coins]))
        again = amino_sign_doc(
            _str(doc["chain_id"], "chain_id"), _int_str(doc["account_number"], "account_number"),
            _int_str(doc["sequence"], "sequence"), fee, _str(doc["memo"], "memo"), msgs)
    except CosmosReleaseMismatch:
        raise
    except (ValueError, RecursionError, ValidationError) as exc:
        raise CosmosReleaseMismatch(f"unparsable sign doc: {exc}") from exc
    if again != sign_bytes:
        raise CosmosReleaseMismatch("sign doc is not in canonical amino JSON form")
    return doc, fee, msgs


def check_release(
    unsigned_or_sign_bytes: UnsignedRelease | bytes, *, chain_id: str, escrow: str,
    to_address: str, denom: str, amount: int, max_fee: Coin, burn_id_memo: str,
    account_number: int | None = None, sequence: int | None = None,
    prefix: str = multisig.DEFAULT_PREFIX,
) -> None:
    """SECURITY: the validator's check that release sign bytes pay exactly one burn.

    Works on the sign bytes alone (what is signed is what is checked); every expected value
    must come from the validator's own view of the burn and the escrow, never from the
    proposer. The sequence makes each signature single-use, but the same burn could be
    proposed again at a later sequence: the caller must remember which burns it signed (or
    pass the escrow's current on-chain `sequence`).

    Args:
        to_address: the burn's recipient; compared in canonical lowercase bech32.
        max_fee: the most the escrow may pay in fees; a fee in any other denom is refused.
        burn_id_memo: the exact memo, "ferry release <burn_id>".
        account_number, sequence: when given, the sign doc must carry exactly these.

    Raises:
        CosmosReleaseMismatch: unparsable or non-canonical sign bytes; other than exactly one
            MsgSend; from other than `escrow`; to other than `to_address` (or to the escrow);
            other than exactly `amount` `denom`; another chain id, memo, account number or
            sequence; a fee above `max_fee` or in another denom.
    """
    sign_bytes = _sign_bytes(unsigned_or_sign_bytes)
    doc, fee, msgs = _decode(sign_bytes)
    try:
        want_from = multisig.canonical_address(escrow, prefix)
        want_to = multisig.canonical_address(to_address, prefix)
        want_coin = Coin(denom, amount)
    except ValidationError as exc:
        raise CosmosReleaseMismatch(f"bad expected value: {exc}") from exc
    if doc["chain_id"] != chain_id:
        raise CosmosReleaseMismatch(f"chain id {doc['chain_id']!r} is not {chain_id!r}")
    if account_number is not None and int(doc["account_number"]) != account_number:
        raise CosmosReleaseMismatch(f"account number {doc['account_number']} is not ours")
    if sequence is not None and int(doc["sequence"]) != sequence:
        raise CosmosReleaseMismatch(f"sequence {doc['sequence']} is not {sequence}")
    if len(msgs) != 1:
        raise CosmosReleaseMismatch(f"{len(msgs)} messages, want exactly one MsgSend")
    msg = msgs[0]
    if msg.from_address != want_from:
        raise CosmosReleaseMismatch(f"sends from {msg.from_address}, not the escrow")
    if want_to == want_from:
        raise CosmosReleaseMismatch("the recipient is the escrow itself")
    if msg.to_address != want_to:
        raise CosmosReleaseMismatch(f"pays {msg.to_address}, not the burn's {want_to}")
    coins = [Coin(c.denom, int(c.amount)) for c in msg.amount]
    if coins != [want_coin]:
        raise CosmosReleaseMismatch(f"sends {coins}, not exactly {want_coin}")
    for coin in fee.amount:
        if coin.denom != max_fee.denom or coin.amount > max_fee.amount:
            raise CosmosReleaseMismatch(f"fee {coin} exceeds the cap {max_fee}")
    if doc["memo"] != burn_id_memo:
        raise CosmosReleaseMismatch(f"memo {doc['memo']!r} is not {burn_id_memo!r}")
