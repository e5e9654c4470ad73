"""Ledger-specific leaves of Ferry's one error tree (`adapters.errors`), and the code -> class map
the HTTP client uses to turn an error body back into the typed error.

Owns: the classes below and `error_class_for_code`. Must not import anything from Ferry except
`adapters.errors`.

    BridgeError                      (adapters.errors)
    ├── ValidationError
    │   ├── WrongEpoch               a certificate signed under an epoch that is not current
    │   ├── WrongNetwork             a transaction signed for another Ferry network
    │   └── UnknownBridge            a lock event's contract is not the configured bridge
    ├── JournalCorrupt               the journal hash chain (or its replay) does not check out
    └── InvariantViolation           supply != minted - burned, or != sum of balances
"""

from __future__ import annotations

import adapters.errors as base_errors
from adapters.errors import BridgeError, ValidationError


class WrongEpoch(ValidationError):
    """The request names a validator-set epoch other than the ledger's current one.

    Retrying with signatures from the current set can succeed; retrying as is cannot.
    """

    code = "wrong_epoch"


class WrongNetwork(ValidationError):
    """A signed transaction names another Ferry network (e.g. ``devnet`` vs ``mainnet``)."""

    code = "wrong_network"


class UnknownBridge(ValidationError):
    """No bridge is configured for the event's chain, or the event's contract is not it."""

    code = "unknown_bridge"


class JournalCorrupt(BridgeError):
    """The stored journal does not verify. `seq` is the first entry found broken (-1: the head)."""

    code = "journal_corrupt"

    def __init__(self, message: str, *, seq: int = -1) -> None:
        self.seq = seq
        super().__init__(f"{message} (seq={seq})")


class InvariantViolation(BridgeError):
    """A supply invariant failed; the message lists every failing asset."""

    code = "invariant_violation"


def _all_classes() -> dict[str, type[BridgeError]]:
    classes: dict[str, type[BridgeError]] = {}
    for module_vars in (vars(base_errors), globals()):
        for value in list(module_vars.values()):
            if isinstance(value, type) and issubclass(value, BridgeError):
                classes.setdefault(value.code, value)
    return classes


_BY_CODE = _all_classes()


def error_class_for_code(code: str) -> type[BridgeError]:
    """The error class whose `code` is `code`; `BridgeError` for a code this build doesn't know."""
    return _BY_CODE.get(code, BridgeError)
