"""Quorum checks over Ed25519 attestations: the rule the ledger applies before any mint or
validator-set change.

Owns: `verify_quorum`. Must not decide what a message means; callers build it with
`validators.attestation`.
"""

from __future__ import annotations

from collections.abc import Iterable

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from adapters.errors import InvalidSignature, QuorumNotMet
from validators.attestation import ValidatorSet


def verify_quorum(
    message: bytes, signatures: Iterable[tuple[bytes, bytes]], validator_set: ValidatorSet
) -> frozenset[bytes]:
    """Check a quorum certificate: at least `threshold` distinct members signed `message`.

    SECURITY: strict. Any duplicate signer, non-member or signature that fails to verify
    rejects the whole certificate, so a relayer cannot pad a certificate with junk.

    Args:
        message: the exact signed bytes (from `lock_attestation_message` and friends).
        signatures: (32-byte Ed25519 public key, 64-byte signature) pairs.
        validator_set: the set of the current epoch.

    Returns:
        The signers' public keys.

    Raises:
        InvalidSignature: a duplicate signer, a non-member, a malformed or non-verifying signature.
        QuorumNotMet: fewer than `threshold` signatures.
    """
    members = validator_set.ed25519_keys
    signers: set[bytes] = set()
    for pubkey, sig in signatures:
        if pubkey in signers:
            raise InvalidSignature(f"duplicate signer 0x{pubkey.hex()}")
        if pubkey not in members:
            raise InvalidSignature(
                f"signer 0x{pubkey.hex()} is not in validator set epoch {validator_set.epoch}"
            )
        if len(sig) != 64:
            raise InvalidSignature("Ed25519 signature must be 64 bytes")
        try:
            VerifyKey(pubkey).verify(message, sig)
        except BadSignatureError as exc:
            raise InvalidSignature(f"signature by 0x{pubkey.hex()} does not verify") from exc
        signers.add(pubkey)
    if len(signers) < validator_set.threshold:
        raise QuorumNotMet(
            f"{len(signers)} of {validator_set.threshold} required signatures "
            f"(epoch {validator_set.epoch})"
        )
    return frozenset(signers)
