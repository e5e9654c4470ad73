"""Ferry tx v1: building, signing, parsing and verifying user transactions (no database)."""

from __future__ import annotations

import hashlib

import pytest
from nacl.signing import SigningKey

from adapters.errors import InvalidAddress, InvalidSignature, ValidationError
from ledger.errors import WrongNetwork
from ledger.transactions import (
    TX_DOMAIN,
    BurnTx,
    SignedTx,
    TransferTx,
    parse_transaction,
    sign_burn,
    sign_transfer,
    verify_transaction,
)
from validators.attestation import canonical

NET = "ferry-test"
ASSET = "eip155:31337/0x0000000000000000000000000000000000000000"
DEST = "0x" + "22" * 20


@pytest.fixture()
def key() -> SigningKey:
    return SigningKey.generate()


def test_burn_signs_domain_separated_canonical_body_and_burn_id_is_its_sha256(key):
    tx = sign_burn(key, NET, 0, ASSET, 10**18, "eip155:31337", DEST.upper().replace("0X", "0x"))
    assert tx.body["dest_address"] == DEST  # lowercased
    assert tx.signed_bytes == TX_DOMAIN + canonical(dict(tx.body))
    assert tx.burn_id == hashlib.sha256(tx.signed_bytes).digest()
    parsed = verify_transaction(tx, NET)
    assert isinstance(parsed, BurnTx)
    assert (parsed.account, parsed.nonce, parsed.amount) == (bytes(key.verify_key), 0, 10**18)
    assert parsed.burn_id == tx.burn_id


def test_transfer_round_trips_through_json(key):
    to = bytes(SigningKey.generate().verify_key)
    tx = sign_transfer(key, NET, 3, ASSET, 5, to)
    again = SignedTx.from_json(tx.to_json())
    assert again == SignedTx(body=dict(tx.body), signature=tx.signature)
    parsed = verify_transaction(again, NET)
    assert isinstance(parsed, TransferTx) and parsed.to == to and parsed.nonce == 3
    assert tx.burn_id is None


def test_signature_by_another_key_is_refused(key):
    tx = sign_burn(key, NET, 0, ASSET, 1, "eip155:31337", DEST)
    forged = SignedTx(tx.body, SigningKey.generate().sign(tx.signed_bytes).signature)
    with pytest.raises(InvalidSignature):
        verify_transaction(forged, NET)


def test_tampered_amount_breaks_the_signature(key):
    tx = sign_burn(key, NET, 0, ASSET, 1, "eip155:31337", DEST)
    with pytest.raises(InvalidSignature):
        verify_transaction(SignedTx({**tx.body, "amount": "2"}, tx.signature), NET)


def test_transaction_for_another_network_is_refused(key):
    tx = sign_burn(key, "mainnet", 0, ASSET, 1, "eip155:31337", DEST)
    with pytest.raises(WrongNetwork):
        verify_transaction(tx, NET)


def _body(**changes: str | None) -> dict[str, str]:
    body = {"network": NET, "kind": "burn", "account": "0x" + "aa" * 32, "nonce": "0",
            "asset": ASSET, "amount": "1", "dest_chain": "eip155:31337", "dest_address": DEST}
    for k, v in changes.items():
        if v is None:
            body.pop(k)
        else:
            body[k] = v
    return body


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({}, None),
        ({"amount": "0"}, ValidationError),
        ({"amount": str(2**256)}, ValidationError),
        ({"amount": str(2**256 - 1)}, None),
        ({"amount": "-1"}, ValidationError),
        ({"amount": "01"}, ValidationError),
        ({"amount": "1.5"}, ValidationError),
        ({"amount": " 1"}, ValidationError),
        ({"nonce": "00"}, ValidationError),
        ({"nonce": str(2**63)}, ValidationError),
        ({"kind": "mint"}, ValidationError),
        ({"extra": "x"}, ValidationError),
        ({"dest_chain": None}, ValidationError),
        ({"account": "0x" + "AA" * 32}, InvalidAddress),
        ({"account": "0x" + "aa" * 31}, InvalidAddress),
        ({"dest_address": "0x" + "22" * 19}, InvalidAddress),
        ({"dest_address": "0x" + "2G" * 20}, InvalidAddress),
        ({"dest_address": "0x" + "00" * 20}, InvalidAddress),
        ({"dest_address": "0x" + "AB" * 20}, InvalidAddress),
        ({"dest_chain": "ethereum"}, ValidationError),
        ({"dest_chain": "cosmos:cosmoshub-4", "dest_address": "cosmos1abc"}, None),
        ({"dest_chain": "cosmos:cosmoshub-4", "dest_address": "has space"}, InvalidAddress),
        ({"asset": "no-slash"}, ValidationError),
        ({"asset": "eip155:31337/0xABC"}, InvalidAddress),
    ],
)
def test_burn_body_parsing(changes, error):
    signed = SignedTx(_body(**changes), b"\x00" * 64)
    if error is None:
        assert isinstance(parse_transaction(signed), BurnTx)
    else:
        with pytest.raises(error):
            parse_transaction(signed)


@pytest.mark.parametrize(
    ("to", "error"),
    [("0x" + "bb" * 32, None), ("0x" + "aa" * 32, ValidationError), ("0xbb", InvalidAddress)],
)
def test_transfer_body_parsing(to, error):
    body = {"network": NET, "kind": "transfer", "account": "0x" + "aa" * 32, "nonce": "0",
            "asset": ASSET, "amount": "1", "to": to}
    if error is None:
        assert isinstance(parse_transaction(SignedTx(body, b"\x00" * 64)), TransferTx)
    else:
        with pytest.raises(error):
            parse_transaction(SignedTx(body, b"\x00" * 64))


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"tx": _body(), "signature": "0x" + "00" * 64}, None),
        ({"tx": _body(), "signature": "0x" + "00" * 63}, InvalidSignature),
        ({"tx": _body(), "signature": 5}, InvalidSignature),
        ({"tx": {**_body(), "nonce": 0}, "signature": "0x" + "00" * 64}, ValidationError),
        ({"signature": "0x" + "00" * 64}, ValidationError),
        ([], ValidationError),
    ],
)
def test_signed_tx_from_json(data, error):
    if error is None:
        assert SignedTx.from_json(data).body == _body()
    else:
        with pytest.raises(error):
            SignedTx.from_json(data)


def test_signing_helpers_refuse_what_the_ledger_would_refuse(key):
    with pytest.raises(ValidationError):
        sign_burn(key, NET, 0, ASSET, 0, "eip155:31337", DEST)
    with pytest.raises(ValidationError):
        sign_transfer(key, NET, -1, ASSET, 1, bytes(32))
