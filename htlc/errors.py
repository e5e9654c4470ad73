"""HTLC branches of Ferry's error tree (`adapters.errors.HtlcError`)::

    BridgeError
    +-- HtlcError
        +-- BadPreimage          not exactly 32 bytes, or its SHA-256 is not the hashlock
        +-- TimelockTooShort     the legs' timelocks leave less than the safety margin
        +-- HtlcExpired          redeem after the timelock
        +-- HtlcNotExpired       refund before the timelock
        +-- HtlcAlreadySettled   redeem after refund, refund after redeem, or twice
        +-- UnknownHtlc          no HTLC with that id

Owns: those classes. Must not import chain libraries.
"""

from __future__ import annotations

from adapters.errors import HtlcError


class BadPreimage(HtlcError):
    code = "bad_preimage"


class TimelockTooShort(HtlcError):
    code = "timelock_too_short"


class HtlcExpired(HtlcError):
    code = "htlc_expired"


class HtlcNotExpired(HtlcError):
    code = "htlc_not_expired"


class HtlcAlreadySettled(HtlcError):
    code = "htlc_already_settled"


class UnknownHtlc(HtlcError):
    code = "unknown_htlc"
