"""Ferry's one exception tree. Every package raises from here; library errors are translated
at the boundary (`raise RpcUnavailable(chain=...) from exc`).

Owns: the error classes only. Must not import anything from Ferry.

    BridgeError
    ├── ChainError(chain)                  a chain or its RPC misbehaved
    │   ├── RetryableChainError            worth retrying (tenacity retries these only)
    │   │   ├── RpcUnavailable             connection refused, timeout, 5xx
    │   │   └── NonceTooLow                a sender nonce raced another submission
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
    │   └── InvalidAddress
    ├── HtlcError                          hashlock / timelock violations
    ├── IllegalTransition                  a state machine refused a move
    ├── ConfigError                        bad or missing configuration
    ├── KeystoreError                      wrong passphrase, corrupt key file
    └── Unsupported                        an optional adapter capability is absent
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


class HtlcError(BridgeError):
    code = "htlc_error"


class IllegalTransition(BridgeError):
    code = "illegal_transition"


class ConfigError(BridgeError):
    code = "config_error"


class KeystoreError(BridgeError):
    code = "keystore_error"


class Unsupported(BridgeError):
    code = "unsupported"
