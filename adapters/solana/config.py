"""Configuration of one Solana cluster: the ``[[solana]]`` table of Ferry's TOML file.

Owns: `SolanaChainConfig` and `MintConfig`, and their validation (base58 addresses, 32-byte
Ed25519 member keys, threshold, mints). Must not touch the network: checking the genesis hash,
the on-chain multisig, the nonce account and the mints against this config is the adapter's
job at start (`adapters.solana.adapter.SolanaAdapter.verify_chain`).

Identity (notes/DESIGN-solana.md "Identity on Solana"): the chain is CAIP-2
``"solana:" + genesis_hash[:32]`` (CAIP-30); an asset is its SPL mint address (base58, case
sensitive); the "bridge" is the SPL Token multisig; the escrow of a mint is the associated
token account ATA(multisig, mint) of the classic Token program.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address

from adapters.config_fields import http_url
from adapters.errors import InvalidAddress, UnknownAsset

MAX_SIGNERS = 11  # spl_token::instruction::MAX_SIGNERS (SPL Token `Multisig` holds n <= 11)


MAX_RELEASE_THRESHOLD = 6  # `adapters.solana.release.MAX_THRESHOLD`: 7 signers exceed 1232 B


def base58_pubkey(value: str) -> str:
    """`value` unchanged if it is a base58 32-byte address (any point; PDAs are off-curve).

    Raises:
        ValueError: not base58, or not 32 bytes once decoded.
    """
    try:
        key = Pubkey.from_string(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a base58 32-byte Solana address") from exc
    if str(key) != value:  # a non-canonical spelling (leading-zero digits) of the same bytes
        raise ValueError(f"{value!r} is not the canonical base58 of its 32 bytes")
    return value


def parse_pubkey(text: str) -> str:
    """A user-supplied Solana address (a release destination: the wallet that will own the
    token account paid), as its canonical base58.

    Raises:
        InvalidAddress: not a string, not base58, or not 32 bytes.
    """
    try:
        return base58_pubkey(text) if isinstance(text, str) else base58_pubkey(repr(text))
    except ValueError as exc:
        raise InvalidAddress(f"not a Solana address: {text!r}") from exc


def ed25519_pubkeys(values: tuple[str, ...]) -> tuple[str, ...]:
    """32-byte Ed25519 public keys as lowercase hex without ``0x``, distinct.

    Raises:
        ValueError: a key that is not 64 hex digits, or a duplicate.
    """
    out = []
    for key in values:
        text = key.lower().removeprefix("0x")
        try:
            raw = bytes.fromhex(text)
        except ValueError as exc:
            raise ValueError(f"{key!r} is not a 32-byte Ed25519 key in hex") from exc
        if len(raw) != 32:
            raise ValueError(f"{key!r} is not a 32-byte Ed25519 key in hex")
        out.append(text)
    if len(set(out)) != len(out):
        raise ValueError("validator_pubkeys has duplicates")
    return tuple(out)


class MintConfig(BaseModel):
    """An SPL mint the escrow accepts.

    Attributes:
        mint: the mint address (base58, compared exactly; wrapped SOL is
            ``So11111111111111111111111111111111111111112``).
        decimals: the mint's decimals (checked against the chain by ``verify_chain``; releases
            commit to it through ``TransferChecked``).
        min_deposit: smaller deposits are reported (``dust``), not credited (base units).
        symbol: display label only; never an identity.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mint: str
    decimals: int = Field(ge=0, le=255)
    min_deposit: int = Field(default=1, ge=1)
    symbol: str = ""

    @field_validator("mint")
    @classmethod
    def _mint(cls, value: str) -> str:
        return base58_pubkey(value)


class SolanaChainConfig(BaseModel):
    """One Solana cluster Ferry watches and pays out on.

    Attributes:
        name: operator-facing label; never an identity.
        genesis_hash: the cluster's genesis hash (base58, 32 bytes), as ``getGenesisHash``
            answers it (else `WrongChain`).
        rpc_url: the JSON-RPC endpoint (``http(s)://``).
        multisig: the SPL Token `Multisig` account that owns the escrow token accounts.
        validator_pubkeys: its n signers, the validators' 32-byte Ed25519 keys (hex), 1..11.
        threshold: signatures a release needs (the multisig's m).
        fee_payer: the relayer's Ed25519 key (base58) that pays fees and ATA rent of releases
            and is the authority of `nonce_account`.
        nonce_account: the durable nonce account releases use as their blockhash.
        mints: the mints the escrow accepts; anything else is reported, not credited.
        confirmation_depth: slots below the finalized slot before a deposit counts (0: the
            finalized slot itself).
        start_block: first slot scanned. max_block_range: slots per scan (``lock_events``).
        poll_interval_s, request_timeout_s: watcher pacing; one HTTP request's timeout.
        signing_timeout_s: a release plan not signed by then is re-planned without the members
            that did not sign (``plan_release(avoid=...)``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    genesis_hash: str
    rpc_url: str
    multisig: str
    validator_pubkeys: tuple[str, ...] = Field(min_length=1, max_length=MAX_SIGNERS)
    threshold: int = Field(ge=1)
    fee_payer: str
    nonce_account: str
    mints: tuple[MintConfig, ...] = Field(min_length=1)
    confirmation_depth: int = Field(default=0, ge=0)
    start_block: int = Field(default=0, ge=0)
    max_block_range: int = Field(default=500, ge=1)
    poll_interval_s: float = Field(default=1.0, gt=0)
    request_timeout_s: float = Field(default=10.0, gt=0)
    signing_timeout_s: float = Field(default=20.0, gt=0)

    @field_validator("genesis_hash")
    @classmethod
    def _genesis_hash(cls, value: str) -> str:
        try:
            parsed = Hash.from_string(value)
        except Exception as exc:  # solders.ParseHashError is not a ValueError
            raise ValueError(f"{value!r} is not a base58 32-byte hash") from exc
        if str(parsed) != value:
            raise ValueError(f"{value!r} is not the canonical base58 of its 32 bytes")
        return value

    @field_validator("rpc_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value).rstrip("/")

    @field_validator("multisig", "fee_payer", "nonce_account")
    @classmethod
    def _address(cls, value: str) -> str:
        return base58_pubkey(value)

    @field_validator("validator_pubkeys")
    @classmethod
    def _pubkeys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return ed25519_pubkeys(value)

    @model_validator(mode="after")
    def _cross(self) -> SolanaChainConfig:
        if self.threshold > len(self.validator_pubkeys):
            raise ValueError(f"threshold {self.threshold} exceeds the "
                             f"{len(self.validator_pubkeys)} pubkeys")
        if len({m.mint.lower() for m in self.mints}) != len(self.mints):
            raise ValueError("a mint is listed twice (mints are also compared lowercase)")
        if self.threshold > MAX_RELEASE_THRESHOLD:
            raise ValueError(f"threshold {self.threshold} exceeds {MAX_RELEASE_THRESHOLD}: a "
                             "release signed by more members does not fit in one transaction")
        roles = {self.multisig, self.fee_payer, self.nonce_account}
        if len(roles) != 3:
            raise ValueError("multisig, fee_payer and nonce_account must be distinct accounts")
        return self

    @property
    def caip2(self) -> str:
        """CAIP-2 chain id (CAIP-30): ``"solana:"`` + the first 32 characters of the genesis
        hash (mainnet-beta: ``solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp``)."""
        return "solana:" + self.genesis_hash[:32]

    @property
    def bridge_address(self) -> str:
        """The multisig address as the chain's "bridge" in ledger and attestation terms:
        lowercased, as the ledger and the attestation format store every event field (use
        `multisig` for anything sent to the chain)."""
        return self.multisig.lower()

    @property
    def use_finalized_tag(self) -> bool:
        """False: finality is the adapter's (``finalized`` commitment), not a block tag."""
        return False

    def mint_config(self, mint: str) -> MintConfig:
        """The configured entry of `mint` (base58). The core lowercases tokens (ledger asset
        keys and attestation fields do, for every chain), so a lowercase form matches too;
        two mints that differ only in case cannot both be configured (`_cross`).

        Raises:
            UnknownAsset: the escrow does not accept `mint`.
        """
        for m in self.mints:
            if m.mint == mint or m.mint.lower() == mint:
                return m
        raise UnknownAsset(f"{self.caip2} escrow does not accept mint {mint!r}")

    def escrow_of(self, mint: str) -> str:
        """The escrow token account of `mint`: ATA(multisig, mint) of the classic SPL Token
        program (base58). Raises ValueError for an address that is not base58."""
        return str(get_associated_token_address(Pubkey.from_string(self.multisig),
                                                Pubkey.from_string(base58_pubkey(mint))))
