"""Tooling for a Solana devnet (the LiteSVM-backed `adapters.solana.devnet_rpc` server, or any
test validator): create the escrow's accounts and act as a user.

Owns: `SolanaDeployer` (airdrops; a mint; the SPL Token multisig of given Ed25519 keys and
threshold; the escrow ATAs; a durable nonce account with a given authority) and `SolanaWallet`
(one keypair: wrap SOL, mint to, deposit = ``TransferChecked`` into the escrow ATA + Memo,
token balances), plus `wait_<condition>(..., timeout_s)` helpers that poll the node.
Must not be used against a network with real value (keys live in memory), and must not log a
key. solana-py 0.41 has no synchronous client: calls go through `adapters.solana.rpc.SolanaRpc`
(its `AsyncClient` on one private loop thread).

Account layouts and instructions: spl-token ``state::{Mint (82 bytes), Multisig (355)}``,
``InitializeMint2``, ``InitializeMultisig``, ``MintTo``, ``SyncNative``, ``TransferChecked``;
spl-associated-token-account ``CreateIdempotent``; System ``CreateAccount``,
``InitializeNonceAccount`` (80-byte nonce state); spl-memo v2.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Self

import solders.system_program as system
from solana.rpc.commitment import Confirmed
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.token.state import Mint
from solders.transaction import Transaction
from spl.token.constants import MINT_LEN, MULTISIG_LEN
from spl.token.instructions import (
    create_idempotent_associated_token_account,
    get_associated_token_address,
    initialize_mint2,
    initialize_multisig,
    mint_to,
    sync_native,
    transfer_checked,
)
from spl.token.models import (
    InitializeMint2Params,
    InitializeMultisigParams,
    MintToParams,
    SyncNativeParams,
    TransferCheckedParams,
)

from adapters.errors import ChainError, SubmissionReverted
from adapters.solana.release import MEMO_PROGRAM, NATIVE_MINT, NONCE_ACCOUNT_LEN, TOKEN_PROGRAM
from adapters.solana.rpc import SignatureStatus, SolanaRpc

LAMPORTS_PER_SOL = 1_000_000_000
_LEVELS = {"processed": 0, "confirmed": 1, "finalized": 2}
POLL_S = 0.05


def memo_ix(text: str | bytes) -> Instruction:
    """A Memo v2 instruction carrying `text` (UTF-8), no signer accounts."""
    return Instruction(MEMO_PROGRAM, text.encode() if isinstance(text, str) else text, [])


class _Payer:
    """One keypair that signs and pays, over a `SolanaRpc` of the node at `node_url`."""

    def __init__(self, node_url: str, keypair: Keypair | None = None, *,
                 chain: str = "solana:devnet", timeout_s: float = 20.0) -> None:
        self.keypair = keypair or Keypair()
        self.chain, self.timeout_s = chain, timeout_s
        self.rpc = SolanaRpc(node_url, chain=chain, read_attempts=3, read_deadline_s=timeout_s)

    @property
    def pubkey(self) -> Pubkey:
        return self.keypair.pubkey()

    @property
    def address(self) -> str:
        return str(self.keypair.pubkey())

    def close(self) -> None:
        self.rpc.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def lamports(self, address: Pubkey | str | None = None) -> int:
        """SOL balance of `address` (default this key) in lamports, at ``confirmed``."""
        key = Pubkey.from_string(str(address or self.pubkey))
        return int(self.rpc.run(lambda c: c.get_balance(key, commitment=Confirmed),
                                "getBalance", retry=True).value)

    def airdrop(self, lamports: int = 10 * LAMPORTS_PER_SOL,
                to: Pubkey | None = None) -> str:
        """``requestAirdrop`` of `lamports` to `to` (default this key); waits for
        ``confirmed``. Returns the airdrop's signature."""
        key = to or self.pubkey
        sig = str(self.rpc.run(lambda c: c.request_airdrop(key, lamports), "requestAirdrop")
                  .value)
        self.wait_status(sig, "confirmed")
        return sig

    def rent(self, size: int) -> int:
        """Lamports that make an account of `size` bytes rent exempt."""
        return int(self.rpc.run(lambda c: c.get_minimum_balance_for_rent_exemption(size),
                                "getMinimumBalanceForRentExemption", retry=True).value)

    def send(self, instructions: Sequence[Instruction], extra_signers: Sequence[Keypair] = (),
             *, skip_preflight: bool = False, expect_failure: bool = False,
             commitment: str = "confirmed") -> str:
        """Sign (this key pays, first) with a recent blockhash, send, wait for `commitment`.

        Args:
            skip_preflight: send without simulation, so a failing transaction is recorded.
            expect_failure: it must fail (else `ChainError`); otherwise it must succeed.

        Returns:
            The signature (base58).

        Raises:
            SubmissionReverted: it failed and was not expected to. ChainError: refused, not
                seen in time, or succeeded when it should have failed.
        """
        blockhash = self.rpc.run(lambda c: c.get_latest_blockhash(Confirmed),
                                 "getLatestBlockhash", retry=True).value.blockhash
        tx = Transaction.new_signed_with_payer(list(instructions), self.pubkey,
                                               [self.keypair, *extra_signers], blockhash)
        sig = self.rpc.send_transaction(bytes(tx), skip_preflight=skip_preflight)
        status = self.wait_status(sig, commitment)
        if expect_failure and not status.failed:
            raise ChainError(f"tx {sig} was meant to fail but succeeded", chain=self.chain)
        if status.failed and not expect_failure:
            raise SubmissionReverted(f"tx {sig} failed", chain=self.chain)
        return sig

    def wait_status(self, signature: str, commitment: str = "confirmed",
                    timeout_s: float | None = None) -> SignatureStatus:
        """Poll ``getSignatureStatuses`` until `signature` is at `commitment` or better, at
        most `timeout_s` (default the helper's). Raises ChainError on timeout."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            status = self.rpc.signature_status(signature)
            if status is not None and _LEVELS[status.commitment] >= _LEVELS[commitment]:
                return status
            if time.monotonic() > deadline:
                raise ChainError(f"tx {signature} not {commitment} in time", chain=self.chain)
            time.sleep(POLL_S)

    def wait_finalized(self, signature: str, timeout_s: float | None = None) -> SignatureStatus:
        """`wait_status` at ``finalized``."""
        return self.wait_status(signature, "finalized", timeout_s)

    def wait_slot_finalized(self, slot: int, timeout_s: float | None = None) -> int:
        """Poll ``getSlot(finalized)`` until it reaches `slot`; returns the finalized slot.
        Raises ChainError on timeout."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while (finalized := self.rpc.slot("finalized")) < slot:
            if time.monotonic() > deadline:
                raise ChainError(f"slot {slot} not finalized in time", chain=self.chain)
            time.sleep(POLL_S)
        return finalized

    def token_balance(self, mint: Pubkey | str, owner: Pubkey | str | None = None) -> int:
        """Balance (base units, finalized) of ATA(`owner` (default this key), `mint`); 0 if the
        account does not exist."""
        ata = get_associated_token_address(Pubkey.from_string(str(owner or self.pubkey)),
                                           Pubkey.from_string(str(mint)))
        return self.rpc.token_balance(str(ata)) or 0

    def decimals(self, mint: Pubkey | str) -> int:
        """The mint's decimals, read from its account (``confirmed``)."""
        info = self.rpc.account(str(mint), "confirmed")
        if info is None:
            raise ChainError(f"no mint {mint}", chain=self.chain)
        return Mint.from_bytes(info.data[:MINT_LEN]).decimals


class SolanaDeployer(_Payer):
    """Creates a bridge's accounts on a devnet; its keypair pays (fund it with `airdrop`).

    Args:
        node_url: the devnet's JSON-RPC URL. payer: the paying keypair (default: a new one).
        chain: CAIP-2 id for error messages. timeout_s: default bound of the waits.
    """

    def create_account(self, size: int, owner: Pubkey) -> Keypair:
        """A new rent-exempt account of `size` bytes owned by program `owner` (uninitialised;
        its keypair must sign the initialising transaction too)."""
        account = Keypair()
        self.send([system.create_account(system.CreateAccountParams(
            from_pubkey=self.pubkey, to_pubkey=account.pubkey(), lamports=self.rent(size),
            space=size, owner=owner))], [account])
        return account

    def create_mint(self, decimals: int, authority: Pubkey | None = None) -> Pubkey:
        """A new classic SPL Token mint with `decimals` and mint authority `authority`
        (default this key), no freeze authority."""
        mint = Keypair()
        self.send([
            system.create_account(system.CreateAccountParams(
                from_pubkey=self.pubkey, to_pubkey=mint.pubkey(), lamports=self.rent(MINT_LEN),
                space=MINT_LEN, owner=TOKEN_PROGRAM)),
            initialize_mint2(InitializeMint2Params(
                program_id=TOKEN_PROGRAM, mint=mint.pubkey(), decimals=decimals,
                mint_authority=authority or self.pubkey, freeze_authority=None)),
        ], [mint])
        return mint.pubkey()

    def create_multisig(self, keys: Sequence[bytes], threshold: int) -> Pubkey:
        """A new SPL Token `Multisig`: `threshold` of `keys` (32-byte Ed25519 public keys,
        1..11, in this order)."""
        multisig = Keypair()
        self.send([
            system.create_account(system.CreateAccountParams(
                from_pubkey=self.pubkey, to_pubkey=multisig.pubkey(),
                lamports=self.rent(MULTISIG_LEN), space=MULTISIG_LEN, owner=TOKEN_PROGRAM)),
            initialize_multisig(InitializeMultisigParams(
                program_id=TOKEN_PROGRAM, multisig=multisig.pubkey(), m=threshold,
                signers=[Pubkey(bytes(k)) for k in keys])),
        ], [multisig])
        return multisig.pubkey()

    def create_token_account(self, owner: Pubkey, mint: Pubkey,
                             program: Pubkey = TOKEN_PROGRAM) -> Pubkey:
        """ATA(`owner`, `mint`) of `program`, created if missing (``CreateIdempotent``)."""
        self.send([create_idempotent_associated_token_account(self.pubkey, owner, mint,
                                                              program)])
        return get_associated_token_address(owner, mint, program)

    def create_escrow_accounts(self, multisig: Pubkey, mints: Sequence[Pubkey]) -> dict[str, str]:
        """The escrow ATA(multisig, mint) of each mint (classic Token): mint -> ATA, base58."""
        self.send([create_idempotent_associated_token_account(self.pubkey, multisig, m)
                   for m in mints])
        return {str(m): str(get_associated_token_address(multisig, m)) for m in mints}

    def create_nonce_account(self, authority: Pubkey) -> Pubkey:
        """A new durable nonce account whose authority is `authority`."""
        nonce = Keypair()
        self.send(list(system.create_nonce_account(
            self.pubkey, nonce.pubkey(), authority, self.rent(NONCE_ACCOUNT_LEN))), [nonce])
        return nonce.pubkey()


class SolanaWallet(_Payer):
    """A user: one keypair that pays its own fees (fund it with `airdrop`).

    Args:
        node_url: the devnet's JSON-RPC URL. keypair: its key (default: a new one).
        multisig: the escrow multisig `deposit` pays into (or pass it per call).
        chain, timeout_s: as `SolanaDeployer`.
    """

    def __init__(self, node_url: str, keypair: Keypair | None = None, *,
                 multisig: Pubkey | str | None = None, chain: str = "solana:devnet",
                 timeout_s: float = 20.0) -> None:
        super().__init__(node_url, keypair, chain=chain, timeout_s=timeout_s)
        self.multisig = None if multisig is None else Pubkey.from_string(str(multisig))

    def ata(self, mint: Pubkey | str) -> Pubkey:
        """This wallet's ATA of `mint` (classic Token)."""
        return get_associated_token_address(self.pubkey, Pubkey.from_string(str(mint)))

    def wrap_sol(self, lamports: int) -> str:
        """Move `lamports` into this wallet's wrapped-SOL ATA (created if missing):
        System transfer then ``SyncNative``."""
        ata = self.ata(NATIVE_MINT)
        return self.send([
            create_idempotent_associated_token_account(self.pubkey, self.pubkey, NATIVE_MINT),
            system.transfer(system.TransferParams(from_pubkey=self.pubkey, to_pubkey=ata,
                                                  lamports=lamports)),
            sync_native(SyncNativeParams(program_id=TOKEN_PROGRAM, account=ata)),
        ])

    def mint_to(self, mint: Pubkey | str, owner: Pubkey | str, amount: int) -> str:
        """Mint `amount` base units of `mint` (this wallet is its mint authority) into
        ATA(`owner`, mint), created if missing."""
        mint_key, owner_key = Pubkey.from_string(str(mint)), Pubkey.from_string(str(owner))
        return self.send([
            create_idempotent_associated_token_account(self.pubkey, owner_key, mint_key),
            mint_to(MintToParams(program_id=TOKEN_PROGRAM, mint=mint_key,
                                 dest=get_associated_token_address(owner_key, mint_key),
                                 mint_authority=self.pubkey, amount=amount)),
        ])

    def transfer_checked_ix(self, mint: Pubkey | str, dest: Pubkey | str, amount: int,
                            decimals: int | None = None) -> Instruction:
        """``TransferChecked`` of `amount` from this wallet's ATA of `mint` to token account
        `dest` (decimals read from the mint unless given)."""
        mint_key = Pubkey.from_string(str(mint))
        return transfer_checked(TransferCheckedParams(
            program_id=TOKEN_PROGRAM, source=self.ata(mint_key), mint=mint_key,
            dest=Pubkey.from_string(str(dest)), owner=self.pubkey, amount=amount,
            decimals=self.decimals(mint_key) if decimals is None else decimals))

    def deposit(self, mint: Pubkey | str, amount: int, memo: str | None, *,
                multisig: Pubkey | str | None = None, skip_preflight: bool = False,
                expect_failure: bool = False) -> str:
        """A bridge deposit: Memo(`memo`) (none if None) then ``TransferChecked`` of `amount`
        of `mint` into the escrow ATA(multisig, mint). Returns the signature (``confirmed``).
        """
        owner = Pubkey.from_string(str(multisig)) if multisig is not None else self.multisig
        if owner is None:
            raise ValueError("no multisig to deposit into")
        escrow = get_associated_token_address(owner, Pubkey.from_string(str(mint)))
        ixs = [] if memo is None else [memo_ix(memo)]
        ixs.append(self.transfer_checked_ix(mint, escrow, amount))
        return self.send(ixs, skip_preflight=skip_preflight, expect_failure=expect_failure)
