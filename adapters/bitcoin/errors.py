"""Bitcoin-specific branches of Ferry's error tree (`adapters.errors`)::

    BridgeError
    +-- ChainError
    |   +-- RetryableChainError
    |   |   +-- FeeTooLow            btcd refused a transaction under its relay/mempool fee
    |   +-- TxRejected               btcd refused a transaction for good (script, conflict, ...)
    +-- ValidationError
        +-- InsufficientFunds        the vault's coins do not cover a release
        +-- ReleaseMismatch          a release transaction does not match the burn it claims

Owns: those classes. Must not import python-bitcoinlib (error types stay import-light).
"""

from __future__ import annotations

from adapters.errors import ChainError, RetryableChainError, ValidationError


class FeeTooLow(RetryableChainError):
    """The node refused a transaction because its fee rate is below what it relays or accepts
    (min relay fee, or too low to replace a conflicting mempool transaction): bump and retry."""

    code = "fee_too_low"


class TxRejected(ChainError):
    """The node refused a transaction for a reason a retry cannot fix."""

    code = "tx_rejected"


class InsufficientFunds(ValidationError):
    """The vault's spendable coins do not cover a release (or the fee leaves no payee output)."""

    code = "insufficient_funds"


class ReleaseMismatch(ValidationError):
    """A proposed release transaction does not match the burn it claims to pay (outputs,
    amounts, fee or inputs). SECURITY: a validator refuses to sign it."""

    code = "release_mismatch"
