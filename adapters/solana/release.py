"""Escrow releases on Solana: one durable-nonce transaction out of the SPL Token multisig escrow.

Owns: the release message (a legacy `solders.message.Message`), reading it back
(`read_release`), the validators' security check of a proposed message
(`check_release_message`), the signer choice, Ed25519 signatures, assembling the wire
transaction, and decoding the accounts a release depends on (nonce account, SPL multisig).
Must not: talk to a node, read the clock, hold or log keys other than the fee payer's
`Keypair` handed to `assemble`, or sign anything.

A release message is exactly (see notes/DESIGN-solana.md, "Releases"):
  0. System `AdvanceNonceAccount(nonce_account, authority=fee_payer)`;
  1. ATA `CreateIdempotent(payer=fee_payer, ata=ATA(dest, mint), owner=dest, mint)`;
  2. Token `TransferChecked(escrow ATA -> ATA(dest, mint), authority=multisig, amount, decimals,
     signers = m member keys sorted by bytes)`;
  3. Memo v2 ``ferry release 0x<burn id, 64 lowercase hex>`` (the fee payer as its signer).
with the fee payer first and recent_blockhash = the nonce account's durable nonce value.
Wire format (https://solana.com/docs/core/transactions): header (3 bytes: required signatures
= 1 + m, readonly signed = m, readonly unsigned = 8), compact-u16 count and 32-byte account
keys, 32-byte recent blockhash, compact-u16 count and compiled instructions. A transaction
is compact-u16 signature count, 64-byte Ed25519 signatures (one per required signer, in
account-key order) and the message; at most 1232 bytes (PACKET_DATA_SIZE), which bounds the
threshold (`MAX_THRESHOLD`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import solders.system_program as system
from construct import ConstructError
from solders.errors import BincodeError
from solders.hash import Hash
from solders.instruction import AccountMeta, CompiledInstruction, Instruction
from solders.keypair import Keypair
from solders.message import Message, MessageV0, MessageV1
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.token.state import Multisig
from solders.transaction import Transaction, VersionedTransaction
from spl.memo.instructions import create_memo
from spl.memo.models import MemoParams
from spl.token import constants as spl_consts
from spl.token import instructions as spl_ix
from spl.token.models import TransferCheckedParams

from adapters.errors import InvalidSignature, QuorumNotMet, ValidationError

TOKEN_PROGRAM: Pubkey = spl_consts.TOKEN_PROGRAM_ID
TOKEN_2022_PROGRAM: Pubkey = spl_consts.TOKEN_2022_PROGRAM_ID
ATA_PROGRAM: Pubkey = spl_consts.ASSOCIATED_TOKEN_PROGRAM_ID
MEMO_PROGRAM: Pubkey = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
MEMO_V1_PROGRAM: Pubkey = Pubkey.from_string("Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo")
NATIVE_MINT: Pubkey = spl_consts.WRAPPED_SOL_MINT
SYSTEM_PROGRAM: Pubkey = system.ID
PACKET_DATA_SIZE = 1232  # most bytes of a wire transaction (solana-sdk `PACKET_DATA_SIZE`)
MAX_SIGNERS = 11  # SPL Token `MAX_SIGNERS`
MAX_THRESHOLD = 6  # m = 6 gives a 1189-byte transaction, m = 7 would be 1286 > PACKET_DATA_SIZE
MAX_U64 = 2**64 - 1
NONCE_ACCOUNT_LEN = 80  # solana-program `nonce::State::size()`
_BURN_ID_RE = re.compile(r"(?:0x)?([0-9a-fA-F]{64})")
_MEMO_RE = re.compile(r"ferry release 0x([0-9a-f]{64})")
_DECODE_ERRORS = (ValueError, BincodeError, ConstructError)  # solders / construct parse errors
_RELEASE_PROGRAMS = (SYSTEM_PROGRAM, ATA_PROGRAM, TOKEN_PROGRAM, MEMO_PROGRAM)


def escrow_ata(multisig: Pubkey, mint: Pubkey) -> Pubkey:
    """The escrow of `mint`: ATA(multisig, mint) of the classic Token program (PDA of
    [owner, token program, mint] under the ATA program)."""
    return spl_ix.get_associated_token_address(multisig, mint, TOKEN_PROGRAM)


def release_memo(burn_id_hex: str) -> str:
    """``"ferry release 0x" + 64 lowercase hex``.

    Args:
        burn_id_hex: the 32-byte burn id as 64 hex digits, ``0x`` optional, any case.

    Raises:
        ValidationError: not 32 bytes of hex.
    """
    match = _BURN_ID_RE.fullmatch(burn_id_hex) if isinstance(burn_id_hex, str) else None
    if match is None:
        raise ValidationError(f"burn id {burn_id_hex!r} is not 32 bytes of hex")
    return f"ferry release 0x{match.group(1).lower()}"


def _keys(members: Collection[bytes], what: str, threshold: int | None = None) -> list[bytes]:
    """Distinct 32-byte keys; with `threshold`, also checks 1 <= threshold <= len(keys)."""
    if not all(isinstance(k, bytes | bytearray) and len(k) == 32 for k in members):
        raise ValidationError(f"{what} must be 32-byte Ed25519 keys")
    keys = [bytes(k) for k in members]
    if len(set(keys)) != len(keys):
        raise ValidationError(f"{what} must be distinct")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int)
                                  or not 1 <= threshold <= len(keys)):
        raise ValidationError(f"threshold {threshold!r} is not in 1..{len(keys)}")
    return keys


def choose_signers(members: Sequence[bytes], threshold: int,
                   avoid: Sequence[bytes] = ()) -> list[bytes]:
    """The plan's m signers: members sorted bytewise, skipping `avoid` (members that did not
    sign an earlier plan in time); if fewer than `threshold` remain, avoided members fill the
    rest in `avoid`'s order (callers list the least recently missed first, so successive
    plans rotate through them instead of naming the same absent member again).

    Args:
        members: the multisig's 32-byte Ed25519 keys (any order, distinct).
        threshold: m, 1 <= m <= len(members).
        avoid: 32-byte keys to skip when possible, in the order they may fill in.

    Returns:
        `threshold` keys, sorted bytewise.

    Raises:
        ValidationError: bad keys or threshold.
    """
    keys = sorted(_keys(members, "members", threshold))
    skip = {bytes(k) for k in avoid}
    kept = [k for k in keys if k not in skip]
    fill = list(dict.fromkeys(bytes(k) for k in avoid if bytes(k) in keys))
    return sorted((kept + fill)[:threshold])


def _pubkey(name: str, value: object) -> Pubkey:
    if not isinstance(value, Pubkey):
        raise ValidationError(f"{name} must be a solders Pubkey, got {type(value).__name__}")
    return value


def _uint(name: str, value: object, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise ValidationError(f"{name} must be an int in 0..{maximum}, got {value!r}")
    return value


def build_release_message(*, fee_payer: Pubkey, nonce_account: Pubkey, nonce_value: Hash,
                          multisig: Pubkey, mint: Pubkey, decimals: int, dest_owner: Pubkey,
                          amount: int, burn_id_hex: str, signers: Sequence[bytes]) -> bytes:
    """The release message of `amount` base units of `mint` from the escrow to `dest_owner`.

    Instructions are built with solders' `advance_nonce_account` and solana-py's
    `create_idempotent_associated_token_account` (ATA instruction 1, data ``[1]``),
    `transfer_checked` (Token instruction 12: u8 12, u64 LE amount, u8 decimals; accounts
    source w, mint, dest w, multisig, then each signer as readonly signer) and `create_memo`.

    Args:
        fee_payer: pays fees and the ATA's rent; the nonce authority.
        nonce_account: the durable nonce account; `nonce_value` its stored nonce (32 bytes).
        multisig: the SPL Token multisig owning the escrow ATA.
        mint: classic SPL Token mint; `decimals` its decimals (0..255).
        dest_owner: the destination wallet (owner of the ATA that receives), not the multisig.
        amount: base units, 1..2**64-1.
        burn_id_hex: the burn id, see `release_memo`.
        signers: `threshold` distinct 32-byte member keys (any order; they are sorted).

    Returns:
        The serialized legacy message (what every signer signs), at most
        1232 - 1 - 64 * (1 + len(signers)) bytes.

    Raises:
        ValidationError: a bad argument, keys that coincide (e.g. a member is the fee payer),
            or a message too large for one transaction.
    """
    for name, key in (("fee_payer", fee_payer), ("nonce_account", nonce_account),
                      ("multisig", multisig), ("mint", mint), ("dest_owner", dest_owner)):
        _pubkey(name, key)
    if not isinstance(nonce_value, Hash):
        raise ValidationError("nonce_value must be a solders Hash")
    if _uint("amount", amount, MAX_U64) == 0:
        raise ValidationError("a release amount must be positive")
    _uint("decimals", decimals, 255)
    memo = release_memo(burn_id_hex)
    members = sorted(_keys(signers, "signers"))
    if not 1 <= len(members) <= MAX_THRESHOLD:
        raise ValidationError(f"{len(members)} signers, a release carries 1..{MAX_THRESHOLD}")
    if dest_owner == multisig:
        raise ValidationError("the destination is the escrow's own multisig")
    dest_ata = spl_ix.get_associated_token_address(dest_owner, mint, TOKEN_PROGRAM)
    instructions = [
        system.advance_nonce_account(system.AdvanceNonceAccountParams(
            nonce_pubkey=nonce_account, authorized_pubkey=fee_payer)),
        spl_ix.create_idempotent_associated_token_account(fee_payer, dest_owner, mint, TOKEN_PROGRAM),
        spl_ix.transfer_checked(TransferCheckedParams(
            program_id=TOKEN_PROGRAM, source=escrow_ata(multisig, mint), mint=mint,
            dest=dest_ata, owner=multisig, amount=amount, decimals=decimals,
            signers=[Pubkey(k) for k in members])),
        create_memo(MemoParams(program_id=MEMO_PROGRAM, signer=fee_payer,
                               message=memo.encode())),
    ]
    message = Message.new_with_blockhash(instructions, fee_payer, nonce_value)
    # fee payer, m signers, nonce, escrow ATA, dest ATA, RecentBlockhashes sysvar, dest owner,
    # mint, multisig and the System, ATA, Token and Memo programs: 12 + m distinct keys.
    if len(message.account_keys) != 12 + len(members):
        raise ValidationError("release accounts coincide (a key is used in two roles)")
    raw = bytes(message)
    if len(raw) + 1 + 64 * (1 + len(members)) > PACKET_DATA_SIZE:
        raise ValidationError("the release does not fit in one transaction")
    return raw


@dataclass(frozen=True)
class ReleaseShape:
    """What a release message pays, read back from its bytes.

    Attributes:
        nonce_value: the recent_blockhash = durable nonce value, base58.
        signers: the m member keys (32 bytes each) in message order (= sorted bytewise).
        memo: ``ferry release 0x<64 hex>``.
        multisig: the transfer's authority (the escrow's owner); added to the contract.
    """

    fee_payer: Pubkey
    nonce_account: Pubkey
    nonce_value: str
    signers: tuple[bytes, ...]
    mint: Pubkey
    dest_owner: Pubkey
    amount: int
    decimals: int
    memo: str
    multisig: Pubkey


def _writable(message: Message | MessageV0 | MessageV1, index: int) -> bool:
    """Header rule for static keys: signed accounts first, the readonly ones at each group's end
    (program ids and reserved sysvars, which the runtime also demotes, never concern us)."""
    header = message.header
    signed = header.num_required_signatures
    if index < signed:
        return index < signed - header.num_readonly_signed_accounts
    return index < len(message.account_keys) - header.num_readonly_unsigned_accounts


def _decompile(message: Message, compiled: CompiledInstruction) -> Instruction:
    keys = message.account_keys
    if compiled.program_id_index >= len(keys) or any(i >= len(keys) for i in compiled.accounts):
        raise ValidationError("an instruction indexes past the account keys")
    metas = [AccountMeta(keys[i], message.is_signer(i), _writable(message, i))
             for i in compiled.accounts]
    return Instruction(keys[compiled.program_id_index], compiled.data, metas)


def read_release(message: bytes) -> ReleaseShape:
    """Read a release message back; only the exact layout of `build_release_message` passes.

    SECURITY: decodes the fields, rebuilds the message from them and requires identical bytes,
    so programs, instruction count and order, account flags, header counts, the escrow source,
    the destination ATA and the memo leave no freedom. v0 messages (address lookup tables) and
    trailing bytes are refused.

    Raises:
        ValidationError: anything else.
    """
    raw = bytes(message)
    if not raw or len(raw) > PACKET_DATA_SIZE:
        raise ValidationError(f"a release message of {len(raw)} bytes")
    if raw[0] & 0x80:
        raise ValidationError("a versioned (v0) message; a release is a legacy message")
    try:
        msg = Message.from_bytes(raw)
    except _DECODE_ERRORS as exc:
        raise ValidationError(f"unparsable message: {exc}") from exc
    if bytes(msg) != raw:
        raise ValidationError("message bytes are not canonical (trailing or re-encoded bytes)")
    keys = msg.account_keys
    if len(msg.instructions) != 4:
        raise ValidationError(f"{len(msg.instructions)} instructions, a release has 4")
    ixs = [_decompile(msg, c) for c in msg.instructions]
    if tuple(ix.program_id for ix in ixs) != _RELEASE_PROGRAMS:
        raise ValidationError("programs are not System, ATA, Token, Memo v2 in that order")
    nonce_ix, ata_ix, transfer_ix, memo_ix = ixs
    if len(nonce_ix.accounts) != 3 or len(ata_ix.accounts) != 6 or len(transfer_ix.accounts) < 5:
        raise ValidationError("instruction account counts are not a release's")
    try:  # solders' decoders index accounts without bounds checks: counts are checked above
        nonce = system.decode_advance_nonce_account(nonce_ix)
        transfer = spl_ix.decode_transfer_checked(transfer_ix)
    except _DECODE_ERRORS as exc:
        raise ValidationError(f"undecodable instruction: {exc}") from exc
    memo = _MEMO_RE.fullmatch(memo_ix.data.decode("ascii", errors="replace"))
    if memo is None:
        raise ValidationError("the memo is not 'ferry release 0x<64 hex>'")
    shape = ReleaseShape(
        fee_payer=keys[0], nonce_account=nonce["nonce_pubkey"],
        nonce_value=str(msg.recent_blockhash),
        signers=tuple(bytes(k) for k in transfer.signers), mint=transfer.mint,
        dest_owner=ata_ix.accounts[2].pubkey, amount=transfer.amount,
        decimals=transfer.decimals, memo=memo.group(0), multisig=transfer.owner)
    again = build_release_message(
        fee_payer=shape.fee_payer, nonce_account=shape.nonce_account,
        nonce_value=msg.recent_blockhash, multisig=shape.multisig, mint=shape.mint,
        decimals=shape.decimals, dest_owner=shape.dest_owner, amount=shape.amount,
        burn_id_hex=memo.group(1), signers=shape.signers)
    if again != raw:
        raise ValidationError("the message is not exactly a release's layout")
    return shape


def check_release_message(message: bytes, *, fee_payer: Pubkey, nonce_account: Pubkey,
                          multisig: Pubkey, mint: Pubkey, decimals: int, dest_owner: Pubkey,
                          amount: int, burn_id_hex: str, members: Collection[bytes],
                          threshold: int) -> ReleaseShape:
    """SECURITY: the validator's check before signing: `message` pays exactly this burn.

    Every expected value must come from the validator's own config and its own read of the
    burn, never from the proposer; only the nonce value and the signer set come from the
    message. Signers must be distinct members, exactly `threshold` of them; then the message
    must equal, byte for byte, the one built from the expected values. Whether the nonce
    value may be signed at all (no double pay) is the caller's check.

    Args:
        members: the multisig's 32-byte keys; `threshold` its m.
        (other args): as `build_release_message`.

    Returns:
        The message's shape.

    Raises:
        ValidationError: the message is not a release, or differs; the text names what differs.
    """
    shape = read_release(message)
    member_keys = set(_keys(members, "members", threshold))
    if any(k not in member_keys for k in shape.signers):
        raise ValidationError("a signer is not a member of the multisig")
    if len(set(shape.signers)) != len(shape.signers) or len(shape.signers) != threshold:
        raise ValidationError(f"{len(shape.signers)} signers, want exactly {threshold} distinct")
    want = {"fee_payer": fee_payer, "nonce_account": nonce_account, "multisig": multisig,
            "mint": mint, "decimals": decimals, "dest_owner": dest_owner, "amount": amount,
            "memo": release_memo(burn_id_hex)}
    differ = [name for name, value in want.items() if getattr(shape, name) != value]
    if differ:
        raise ValidationError(f"release message differs from the burn in: {', '.join(differ)}")
    expected = build_release_message(
        fee_payer=fee_payer, nonce_account=nonce_account,
        nonce_value=Hash.from_string(shape.nonce_value), multisig=multisig, mint=mint,
        decimals=decimals, dest_owner=dest_owner, amount=amount, burn_id_hex=burn_id_hex,
        signers=shape.signers)
    if expected != bytes(message):
        raise ValidationError("release message bytes differ from the expected release")
    return shape


def verify_signature(message: bytes, signer: bytes, signature: bytes) -> bool:
    """Whether `signature` (64 bytes) is `signer`'s (32-byte key) Ed25519 signature of
    `message` (RFC 8032, as Solana's runtime checks it)."""
    if not (isinstance(signer, bytes) and len(signer) == 32
            and isinstance(signature, bytes) and len(signature) == 64):
        return False
    return bool(Signature.from_bytes(signature).verify(Pubkey(signer), bytes(message)))


def assemble(message: bytes, signatures: Mapping[bytes, bytes], fee_payer: Keypair) -> bytes:
    """The signed wire transaction of a release message.

    The fee payer signs here; the members' signatures go in the message's signer order.

    Args:
        message: a release message (checked with `read_release`).
        signatures: member key (32 bytes) -> its 64-byte signature of `message`; extra
            entries are ignored.
        fee_payer: the message's fee payer (account key 0).

    Returns:
        compact-u16 signature count, 64 bytes per signature, the message; <= 1232 bytes.

    Raises:
        QuorumNotMet: a required member's signature is missing.
        InvalidSignature: a required member's signature does not verify.
        ValidationError: not a release message, or `fee_payer` is not its fee payer.
    """
    shape = read_release(message)
    raw = bytes(message)
    if fee_payer.pubkey() != shape.fee_payer:
        raise ValidationError("the keypair is not the message's fee payer")
    sigs = {bytes(k): bytes(v) for k, v in signatures.items()}
    missing = [k.hex() for k in shape.signers if k not in sigs]
    if missing:
        raise QuorumNotMet(f"missing signatures of {', '.join(missing)}")
    bad = [k.hex() for k in shape.signers if not verify_signature(raw, k, sigs[k])]
    if bad:
        raise InvalidSignature(f"signatures of {', '.join(bad)} do not verify")
    msg = Message.from_bytes(raw)
    by_key = {Pubkey(k): Signature.from_bytes(sigs[k]) for k in shape.signers}
    ordered = [fee_payer.sign_message(raw)] + [
        by_key[k] for k in msg.account_keys[1:msg.header.num_required_signatures]]
    wire = bytes(Transaction.populate(msg, ordered))
    if len(wire) > PACKET_DATA_SIZE:
        raise ValidationError(f"a {len(wire)}-byte transaction exceeds {PACKET_DATA_SIZE}")
    return wire


def tx_signature(raw: bytes) -> str:
    """The transaction id: its first (fee payer's) signature, base58.

    Raises:
        ValidationError: `raw` is not a wire transaction.
    """
    try:
        tx = VersionedTransaction.from_bytes(bytes(raw))
    except _DECODE_ERRORS as exc:
        raise ValidationError(f"not a transaction: {exc}") from exc
    if not tx.signatures:
        raise ValidationError("a transaction without signatures")
    return str(tx.signatures[0])


def durable_nonce_of(tx: Transaction | VersionedTransaction, *,
                     nonce_account: Pubkey | None = None) -> str | None:
    """The nonce value (recent_blockhash, base58) of a durable-nonce transaction; None for any
    other transaction.

    Durable-nonce means what the runtime accepts (agave `SanitizedMessage::get_durable_nonce`):
    instruction 0 is System AdvanceNonceAccount (data u32 LE 4, trailing bytes allowed) whose
    first account is a writable static key. (solders' `uses_durable_nonce` skips the writable
    check, so it is not used.)

    SECURITY: nonce accounts advanced in the same slot hold the same value, so anyone can send a
    transaction at our nonce value that advances their own nonce account (and mentions ours).
    Pass `nonce_account` to get the value only when instruction 0 advances that account.
    """
    msg = tx.message
    keys = msg.account_keys
    ix = msg.instructions[0] if msg.instructions else None
    if ix is None or ix.program_id_index >= len(keys) \
            or keys[ix.program_id_index] != SYSTEM_PROGRAM or ix.data[:4] != b"\x04\0\0\0" \
            or not ix.accounts or ix.accounts[0] >= len(keys) \
            or not _writable(msg, ix.accounts[0]):
        return None
    if nonce_account is not None and keys[ix.accounts[0]] != nonce_account:
        return None
    return str(msg.recent_blockhash)


def memo_of(tx: Transaction | VersionedTransaction) -> str | None:
    """The text of `tx`'s top-level Memo (v1 or v2) instructions, UTF-8 (invalid bytes
    replaced), joined by "; " when several; None if it has none."""
    keys = tx.message.account_keys
    texts = [ix.data.decode("utf-8", errors="replace") for ix in tx.message.instructions
             if ix.program_id_index < len(keys)
             and keys[ix.program_id_index] in (MEMO_PROGRAM, MEMO_V1_PROGRAM)]
    return "; ".join(texts) if texts else None


def decode_nonce_account(data: bytes) -> tuple[str, str]:
    """(authority, durable nonce value), both base58, of a nonce account's data.

    Layout (solana-program `nonce::state::Versions`, bincode, 80 bytes): u32 LE version
    (1 = Current; 0 = Legacy, which cannot serve durable transactions), u32 LE state
    (1 = Initialized), 32-byte authority, 32-byte durable nonce, u64 LE lamports per signature.

    Raises:
        ValidationError: not an initialized current-version nonce account.
    """
    data = bytes(data)
    if len(data) != NONCE_ACCOUNT_LEN:
        raise ValidationError(f"nonce account data of {len(data)} bytes, want 80")
    version, state = int.from_bytes(data[0:4], "little"), int.from_bytes(data[4:8], "little")
    if version != 1 or state != 1:
        raise ValidationError(f"not an initialized current nonce account ({version}, {state})")
    return str(Pubkey(data[8:40])), str(Hash(data[40:72]))


def decode_multisig(data: bytes) -> tuple[int, tuple[bytes, ...]]:
    """(m, the n signer keys) of an SPL Token `Multisig` account.

    Layout (spl-token `state::Multisig`, 355 bytes): u8 m, u8 n, u8 is_initialized,
    11 x 32-byte signer keys (the first n used). Decoded with solders' `Multisig`.

    Raises:
        ValidationError: wrong length, not initialized, or not 1 <= m <= n <= 11.
    """
    data = bytes(data)
    if len(data) != spl_consts.MULTISIG_LEN:
        raise ValidationError(f"multisig data of {len(data)} bytes, want {spl_consts.MULTISIG_LEN}")
    try:
        multisig = Multisig.from_bytes(data)
    except ValueError as exc:
        raise ValidationError(f"not an initialized multisig: {exc}") from exc
    if not multisig.is_initialized or not 1 <= multisig.m <= multisig.n <= MAX_SIGNERS:
        raise ValidationError(f"bad multisig m={multisig.m} n={multisig.n}")
    return multisig.m, tuple(bytes(k) for k in multisig.signers[:multisig.n])
