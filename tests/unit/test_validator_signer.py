"""LockSigner and ReleaseSigner: what a validator signs, and every reason it refuses."""

from __future__ import annotations

import dataclasses

import pytest
from nacl.signing import SigningKey

from adapters.base import NATIVE_TOKEN, LockEvent, asset_key
from adapters.errors import InvalidSignature
from adapters.evm.config import EvmChainConfig
from ledger.transactions import SignedTx, sign_burn
from ledger.types import BurnRecord
from validators.attestation import ValidatorSet, lock_attestation_message, parse_hex
from validators.eip712 import recover_signer, release_digest
from validators.keystore import ValidatorKeys
from validators.quorum import verify_quorum
from validators.signer import LockSigner, RefusalReason, ReleaseSigner, SigningRefused

NETWORK = "devnet"
ETH = "eip155:31337"
BSC = "eip155:31338"
BRIDGE = "0x" + "b1" * 20
BSC_BRIDGE = "0x" + "b2" * 20
TOKEN = "0x" + "70" * 20
PAYEE = "0x" + "a7" * 20
CHAINS = [
    EvmChainConfig(
        name="ethereum", chain_id=31337, rpc_url="http://127.0.0.1:1", bridge_address=BRIDGE
    ),
    EvmChainConfig(
        name="bsc", chain_id=31338, rpc_url="http://127.0.0.1:2", bridge_address=BSC_BRIDGE
    ),
]


@pytest.fixture(scope="module")
def keys() -> ValidatorKeys:
    return ValidatorKeys(bytes(range(32)), bytes.fromhex("11" * 32))


def lock_event(**changes: object) -> LockEvent:
    event = LockEvent(
        chain=ETH,
        contract=BRIDGE,
        nonce=7,
        token=NATIVE_TOKEN,
        sender="0x" + "5e" * 20,
        amount=10**18,
        recipient=b"\x42" * 32,
        tx_hash="0x" + "ab" * 32,
        log_index=0,
        block_number=100,
        block_hash="0x" + "cd" * 32,
    )
    return dataclasses.replace(event, **changes)


# -- LockSigner -------------------------------------------------------------------------------


def test_lock_signer_signs_a_final_bridge_event_that_verifies_in_a_quorum(keys):
    event = lock_event()
    payload = LockSigner(NETWORK, keys, CHAINS).sign(event, finalized_height=100, epoch=3)
    assert payload["kind"] == "lock"
    assert payload["validator"] == keys.ed25519_public_hex
    assert payload["body"]["event_id"] == f"{ETH}/{BRIDGE}/7"
    assert payload["body"]["epoch"] == "3"
    signature = parse_hex(payload["signature"], 64)
    validator_set = ValidatorSet(epoch=3, members=(keys.info,), threshold=1)
    message = lock_attestation_message(NETWORK, event, 3)
    assert verify_quorum(message, [(keys.ed25519_public, signature)], validator_set) == {
        keys.ed25519_public
    }


def test_lock_signature_does_not_verify_under_another_epoch_or_network(keys):
    event = lock_event()
    payload = LockSigner(NETWORK, keys, CHAINS).sign(event, finalized_height=100, epoch=3)
    signature = parse_hex(payload["signature"], 64)
    validator_set = ValidatorSet(epoch=4, members=(keys.info,), threshold=1)
    for message in (
        lock_attestation_message(NETWORK, event, 4),
        lock_attestation_message("mainnet", event, 3),
    ):
        with pytest.raises(InvalidSignature):
            verify_quorum(message, [(keys.ed25519_public, signature)], validator_set)


def test_lock_signing_is_deterministic(keys):
    signer = LockSigner(NETWORK, keys, CHAINS)
    first = signer.sign(lock_event(), finalized_height=150, epoch=1)
    assert signer.sign(lock_event(), finalized_height=200, epoch=1) == first


@pytest.mark.parametrize(
    ("changes", "finalized", "reason"),
    [
        ({"contract": "0x" + "ee" * 20}, 100, RefusalReason.FOREIGN_CONTRACT),
        ({"contract": BSC_BRIDGE}, 100, RefusalReason.FOREIGN_CONTRACT),
        ({"chain": "eip155:1"}, 100, RefusalReason.FOREIGN_CHAIN),
        ({}, 99, RefusalReason.NOT_FINAL),
        ({"amount": 0}, 100, RefusalReason.BAD_AMOUNT),
        ({"amount": 2**256}, 100, RefusalReason.BAD_AMOUNT),
        ({"recipient": b"\x42" * 31}, 100, RefusalReason.BAD_RECIPIENT),
        ({"recipient": b"\x00" * 32}, 100, RefusalReason.BAD_RECIPIENT),
    ],
)
def test_lock_signer_refuses_without_signing(keys, changes, finalized, reason):
    with pytest.raises(SigningRefused) as info:
        LockSigner(NETWORK, keys, CHAINS).sign(
            lock_event(**changes), finalized_height=finalized, epoch=1
        )
    assert info.value.reason is reason


def test_lock_signer_accepts_mixed_case_contract_of_the_bridge(keys):
    payload = LockSigner(NETWORK, keys, CHAINS).sign(
        lock_event(contract=BRIDGE.upper().replace("0X", "0x")), finalized_height=100, epoch=1
    )
    assert payload["body"]["contract"] == BRIDGE


# -- ReleaseSigner ----------------------------------------------------------------------------


class FakeBridge:
    def __init__(self, set_nonce: int) -> None:
        self.value = set_nonce
        self.reads = 0

    def set_nonce(self) -> int:
        self.reads += 1
        return self.value


USER = SigningKey(b"\x07" * 32)


def burn_record(
    *,
    seq: int = 1,
    network: str = NETWORK,
    amount: int = 5 * 10**17,
    dest_chain: str = ETH,
    dest_address: str = PAYEE,
    origin_chain: str = ETH,
    origin_token: str = TOKEN,
    **record_changes: object,
) -> BurnRecord:
    """A burn as the ledger reports it, signed by USER; `record_changes` tamper with the record."""
    asset = asset_key(origin_chain, origin_token)
    signed = sign_burn(USER, network, 0, asset, amount, dest_chain, dest_address)
    record = BurnRecord(
        seq=seq,
        burn_id=signed.tx_id,
        account=bytes(USER.verify_key),
        asset=asset,
        origin_chain=origin_chain,
        origin_token=origin_token,
        amount=amount,
        dest_chain=dest_chain,
        dest_address=dest_address,
        tx=dict(signed.body),
        signature=signed.signature,
    )
    return dataclasses.replace(record, **record_changes)


def release_signer(keys: ValidatorKeys, set_nonce: int = 1) -> ReleaseSigner:
    bridges = {ETH: FakeBridge(set_nonce), BSC: FakeBridge(1)}
    return ReleaseSigner(NETWORK, keys, CHAINS, bridges)


def test_release_signer_signs_a_user_signed_burn_recoverable_to_the_validator(keys):
    burn = burn_record()
    payload = release_signer(keys, set_nonce=4).sign(burn)
    assert payload == {
        "kind": "release",
        "validator": keys.evm_address,
        "signature": payload["signature"],
        "chain": ETH,
        "burn_id": "0x" + burn.burn_id.hex(),
        "token": TOKEN,
        "recipient": PAYEE,
        "amount": str(burn.amount),
        "set_nonce": "4",
    }
    digest = release_digest(
        31337,
        BRIDGE,
        burn_id=burn.burn_id,
        token=TOKEN,
        recipient=PAYEE,
        amount=burn.amount,
        set_nonce=4,
    )
    assert recover_signer(digest, parse_hex(payload["signature"], 65)) == keys.evm_address


def test_release_signature_is_bound_to_the_bridge_set_nonce(keys):
    burn = burn_record()
    payload = release_signer(keys, set_nonce=4).sign(burn)
    stale = release_digest(
        31337,
        BRIDGE,
        burn_id=burn.burn_id,
        token=TOKEN,
        recipient=PAYEE,
        amount=burn.amount,
        set_nonce=3,
    )
    assert recover_signer(stale, parse_hex(payload["signature"], 65)) != keys.evm_address


def test_release_signing_is_deterministic_and_reads_set_nonce_from_the_bridge(keys):
    bridge = FakeBridge(2)
    signer = ReleaseSigner(NETWORK, keys, CHAINS, {ETH: bridge, BSC: FakeBridge(1)})
    assert signer.sign(burn_record()) == signer.sign(burn_record())
    assert bridge.reads == 2


def test_release_signer_accepts_a_checksummed_dest_address(keys):
    mixed = "0x" + "A7" * 20
    payload = release_signer(keys).sign(burn_record(dest_address=mixed))
    assert payload["recipient"] == PAYEE


def _bad_signature(burn: BurnRecord) -> BurnRecord:
    flipped = bytes([burn.signature[0] ^ 1]) + burn.signature[1:]
    return dataclasses.replace(burn, signature=flipped)


def _signed_by_someone_else(burn: BurnRecord) -> BurnRecord:
    other = SigningKey(b"\x09" * 32)
    return dataclasses.replace(burn, signature=other.sign(b"x").signature)


def _hand_signed(**body_changes: str) -> BurnRecord:
    """A burn whose body the ledger's own signer would refuse to build, signed by USER anyway."""
    burn = burn_record()
    body = {**burn.tx, **body_changes}
    signed = SignedTx(body=body, signature=b"")
    signature = USER.sign(signed.signed_bytes).signature
    return dataclasses.replace(
        burn,
        tx=body,
        signature=signature,
        burn_id=signed.tx_id,
        dest_address=body["dest_address"],
        amount=int(body["amount"]),
    )


@pytest.mark.parametrize(
    ("burn", "reason"),
    [
        (_bad_signature(burn_record()), RefusalReason.BAD_USER_SIGNATURE),
        (_signed_by_someone_else(burn_record()), RefusalReason.BAD_USER_SIGNATURE),
        (burn_record(dest_chain=BSC), RefusalReason.WRONG_DEST_CHAIN),
        (burn_record(amount=10), None),  # control: a small amount is fine
        (dataclasses.replace(burn_record(), amount=10**30), RefusalReason.TX_MISMATCH),
        (
            dataclasses.replace(burn_record(), dest_address="0x" + "66" * 20),
            RefusalReason.TX_MISMATCH,
        ),
        (dataclasses.replace(burn_record(), burn_id=b"\x01" * 32), RefusalReason.TX_MISMATCH),
        (
            dataclasses.replace(burn_record(), origin_token="0x" + "71" * 20),
            RefusalReason.TX_MISMATCH,
        ),
        (dataclasses.replace(burn_record(), account=b"\x05" * 32), RefusalReason.TX_MISMATCH),
        (burn_record(network="mainnet"), RefusalReason.WRONG_NETWORK),
        (burn_record(origin_chain="eip155:1", dest_chain="eip155:1"), RefusalReason.FOREIGN_CHAIN),
        (_hand_signed(dest_address="0x" + "00" * 20), RefusalReason.MALFORMED_TX),
        (_hand_signed(amount="0"), RefusalReason.MALFORMED_TX),
        (_hand_signed(extra="ignored?"), RefusalReason.MALFORMED_TX),
        (
            dataclasses.replace(burn_record(), tx={**burn_record().tx, "kind": "transfer"}),
            RefusalReason.NOT_A_BURN,
        ),
    ],
)
def test_release_signer_refuses_without_signing(keys, burn, reason):
    signer = release_signer(keys)
    if reason is None:
        assert signer.sign(burn)["amount"] == str(burn.amount)
        return
    with pytest.raises(SigningRefused) as info:
        signer.sign(burn)
    assert info.value.reason is reason


def test_release_signer_refuses_a_chain_without_a_bridge_reader(keys):
    signer = ReleaseSigner(NETWORK, keys, CHAINS, {BSC: FakeBridge(1)})
    with pytest.raises(SigningRefused) as info:
        signer.sign(burn_record())
    assert info.value.reason is RefusalReason.FOREIGN_CHAIN
