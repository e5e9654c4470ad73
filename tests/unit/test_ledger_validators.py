"""Validator-set rotation on the ledger: only a quorum of the current set can hand over, and the
old set stops counting at once."""

from __future__ import annotations

import pytest

from adapters.errors import InvalidSignature, QuorumNotMet
from ledger.errors import WrongEpoch
from ledger.testing import Harness, make_validator_set, sign_rotation
from ledger.types import MintStatus


def test_rotation_switches_sets_and_old_signatures_stop_counting(h, alice):
    new_set, new_keys = make_validator_set(4, 3, epoch=2)
    seq = h.ledger.rotate_validator_set(new_set, sign_rotation(h.keys[:3], h.network, 1, new_set))
    status = h.ledger.status()
    assert (status.epoch, status.validator_set, status.journal_seq) == (2, new_set, seq)

    old = h.ledger.mint(h.certify(h.lock(1, 5, alice)))  # old set, old epoch
    assert (old.status, old.code) == (MintStatus.REJECTED, "wrong_epoch")
    old_keys_new_epoch = h.ledger.mint(h.certify(h.lock(1, 5, alice), epoch=2))
    assert (old_keys_new_epoch.status, old_keys_new_epoch.code) == (MintStatus.REJECTED,
                                                                    "invalid_signature")
    h.validator_set, h.keys = new_set, new_keys
    assert h.ledger.mint(h.certify(h.lock(1, 5, alice))).status is MintStatus.MINTED
    assert h.ledger.verify_journal() == h.ledger.status().journal_seq


def test_old_set_can_not_rotate_again_after_handover(h):
    set2, keys2 = make_validator_set(3, 2, epoch=2)
    h.ledger.rotate_validator_set(set2, sign_rotation(h.keys[:3], h.network, 1, set2))
    set3, _ = make_validator_set(3, 2, epoch=3)
    with pytest.raises(InvalidSignature):
        h.ledger.rotate_validator_set(set3, sign_rotation(h.keys[:3], h.network, 2, set3))
    seq = h.ledger.rotate_validator_set(set3, sign_rotation(keys2[:2], h.network, 2, set3))
    assert h.ledger.status().epoch == 3 and seq == h.ledger.status().journal_seq


def _rejections(h: Harness) -> list[tuple[str, object, list[tuple[bytes, bytes]], type]]:
    new_set, _ = make_validator_set(3, 2, epoch=2)
    same_epoch, _ = make_validator_set(3, 2, epoch=1)
    good = sign_rotation(h.keys[:3], h.network, 1, new_set)
    return [
        ("below threshold", new_set, good[:2], QuorumNotMet),
        ("duplicate signer", new_set, good[:2] + good[:1], InvalidSignature),
        ("other network", new_set, sign_rotation(h.keys[:3], "mainnet", 1, new_set),
         InvalidSignature),
        ("signed for a stale epoch", new_set, sign_rotation(h.keys[:3], h.network, 0, new_set),
         InvalidSignature),
        ("epoch not increasing", same_epoch,
         sign_rotation(h.keys[:3], h.network, 1, same_epoch), WrongEpoch),
        ("signed a different set", make_validator_set(3, 2, epoch=2)[0], good, InvalidSignature),
    ]


@pytest.mark.parametrize("case", range(6))
def test_bad_rotation_is_rejected_and_changes_nothing(h, case):
    name, new_set, sigs, error = _rejections(h)[case]
    before = h.ledger.status()
    with pytest.raises(error):
        h.ledger.rotate_validator_set(new_set, sigs)  # type: ignore[arg-type]
    assert h.ledger.status() == before, name
