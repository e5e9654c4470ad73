"""Validators: attestation formats, signing, quorum checks, key storage and the validator daemon."""
