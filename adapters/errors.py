"""Ferry's one exception tree. Every package raises from here; library errors are translated
at the boundary (`raise RpcUnavailable(chain=...) from exc`).

Owns: the error classes only. Must not import anything from Ferry.

    BridgeError
    ├── ChainError(chain)                  a chain or its RPC misbehaved
    │   ├── RetryableChainError            worth retrying (tenacity retries these only)
    │   │   ├── RpcUnavailable             connection refused, timeout, 5xx
    │   │   ├── NonceTooLow                a sender nonce raced another submission
    │   │   └── RpcDisagreement            a chain's RPC endpoints answered differently
    │   ├── WrongChain                     the RPC serves another chain id
    │   ├── ReorgDetected                  block-hash continuity broke at a height
    │   └── SubmissionReverted             a submitted transaction reverted on chain
    ├── ValidationError                    bad input: rejected, nothing changed
    │   ├── InvalidSignature
    │   ├── QuorumNotMet
    │   ├── UnknownAsset
    │   ├── UnknownAccount
    │   ├── InsufficientBalance
    │   ├── BadNonce
    │   ├── InvalidAddress
    │   ├── UnknownTransfer                no relayer transfer has that id
    │   ├── UnknownRoute                   no configured route has that key (operator API)
    │   ├── UnknownChain                   no configured chain has that CAIP-2 id
    │   ├── RescanRefused                  a rescan height outside [start_block, cursor]
    │   ├── InvalidCursor                  a pagination cursor that does not decode (API)
    │   └── AmountTooSmall                 below the route's smallest creditable deposit
    ├── HtlcError                          hashlock / timelock violations
    ├── IllegalTransition                  a state machine refused a move
    ├── ConfigError                        bad or missing configuration
    ├── KeystoreError                      wrong passphrase, corrupt key file
    ├── SignerError                        the external signer process failed a request
    │   ├── SignerUnavailable              no answer on its socket (retryable: reconnect)
    │   └── SignerRefused                  it answered with an error, or a bad signature
    ├── Unsupported                        an optional adapter capability is absent
    ├── Unauthorized                       no, unknown or revoked API key (HTTP 401)
    └── Forbidden                          an API key without the needed scope (HTTP 403)
"""

from __future__ import annotations


class BridgeError(Exception):
    """Root of every error Ferry raises on purpose. `code` is a stable machine-readable name."""

    code = "bridge_error"


class ChainError(BridgeError):
    code = "chain_error"

    def __init__(self, message: str = "", *, chain: str = "?") -> None:
        self.chain = chain
        super().__init__(f"{message} (chain={chain})" if message else f"chain={chain}")


class RetryableChainError(ChainError):
    code = "chain_retryable"


class RpcUnavailable(RetryableChainError):
    code = "rpc_unavailable"


class NonceTooLow(RetryableChainError):
    code = "nonce_too_low"


class WrongChain(ChainError):
    code = "wrong_chain"


class ReorgDetected(ChainError):
    code = "reorg_detected"

    def __init__(self, message: str = "", *, chain: str = "?", height: int = -1) -> None:
        self.height = height
        super().__init__(message or f"reorg at height {height}", chain=chain)


class SubmissionReverted(ChainError):
    code = "submission_reverted"


class ValidationError(BridgeError):
    code = "invalid_input"


class InvalidSignature(ValidationError):
    code = "invalid_signature"


class QuorumNotMet(ValidationError):
    code = "quorum_not_met"


class UnknownAsset(ValidationError):
    code = "unknown_asset"


class UnknownAccount(ValidationError):
    code = "unknown_account"


class InsufficientBalance(ValidationError):
    code = "insufficient_balance"


class BadNonce(ValidationError):
    code = "bad_nonce"


class InvalidAddress(ValidationError):
    code = "invalid_address"


class UnknownTransfer(ValidationError):
    """No relayer transfer has that id (operator release/retry of a transfer)."""

    code = "unknown_transfer"


class HtlcError(BridgeError):
    code = "htlc_error"


class IllegalTransition(BridgeError):
    code = "illegal_transition"


class ConfigError(BridgeError):
    code = "config_error"


class KeystoreError(BridgeError):
    code = "keystore_error"


class SignerError(BridgeError):
    """The external signer (`validators.socket_signer`) did not sign. Nothing was signed."""

    code = "signer_error"


class SignerUnavailable(SignerError):
    """The signer socket is missing, refused the connection, timed out or hung up; worth
    retrying (the client reconnects on the next request)."""

    code = "signer_unavailable"


class SignerRefused(SignerError):
    """The signer answered with an error (unknown operation, malformed request), or with a
    signature that does not verify under its public key, or changed identity. Not retryable."""

    code = "signer_refused"


class Unsupported(BridgeError):
    code = "unsupported"


class UnknownRoute(ValidationError):
    """No configured route has that key (`validators.risk.route_key`)."""

    code = "unknown_route"


class UnknownChain(ValidationError):
    """No configured chain has that CAIP-2 id."""

    code = "unknown_chain"


class RescanRefused(ValidationError):
    """A rescan height below the chain's ``start_block`` or above its scan cursor."""

    code = "rescan_refused"


class InvalidCursor(ValidationError):
    """A pagination cursor that does not decode, or belongs to another list (`api.pagination`)."""

    code = "invalid_cursor"


class AmountTooSmall(ValidationError):
    """An amount below the smallest deposit the route credits (dust would never be minted)."""

    code = "amount_too_small"


class Unauthorized(BridgeError):
    """No credentials, or an unknown or revoked API key (HTTP 401). Nothing was changed."""

    code = "unauthorized"


class Forbidden(BridgeError):
    """A valid API key without the scope the call needs (HTTP 403). Nothing was changed."""

    code = "forbidden"


class RpcDisagreement(RetryableChainError):
    """SECURITY: the RPC endpoints asked for one minting-relevant read (logs, blocks, finality)
    answered differently, so nothing is acted on; the job retries at its next interval."""

    code = "rpc_disagreement"
