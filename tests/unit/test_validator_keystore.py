"""Validator keystore: encrypted round trip, refusals, file hygiene, no secret leaks."""

from __future__ import annotations

import json
import pickle
import stat

import pytest
from nacl.signing import SigningKey, VerifyKey

from adapters.errors import InvalidSignature, KeystoreError
from validators.eip712 import SECP256K1_N, address_of, recover_signer
from validators.keystore import (
    PRODUCTION_KDF,
    KdfParams,
    ValidatorKeys,
    import_keystore,
    load_keystore,
    new_keystore,
    save_keystore,
)

FAST_KDF = KdfParams(time_cost=1, memory_cost_kib=8, parallelism=1)  # tests only
PASSPHRASE = "correct horse battery staple"
SEED = bytes(range(1, 33))
SECP = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")


def test_new_keystore_round_trips_both_keys(tmp_path):
    path = tmp_path / "v1.json"
    created = new_keystore(path, PASSPHRASE, kdf=FAST_KDF)
    loaded = load_keystore(path, PASSPHRASE)
    assert loaded == created
    assert loaded.ed25519_public == created.ed25519_public
    assert loaded.evm_address == created.evm_address
    message = b"ferry/attestation/v1\n{}"
    assert loaded.sign_attestation(message) == created.sign_attestation(message)
    VerifyKey(loaded.ed25519_public).verify(message, loaded.sign_attestation(message))
    digest = bytes(range(32))
    assert recover_signer(digest, loaded.sign_digest(digest)) == created.evm_address


def test_import_keystore_keeps_the_given_keys(tmp_path):
    path = tmp_path / "imported.json"
    keys = import_keystore(path, PASSPHRASE, ed25519_seed=SEED, secp256k1_key=SECP, kdf=FAST_KDF)
    assert keys.ed25519_public == bytes(SigningKey(SEED).verify_key)
    assert keys.evm_address == address_of(SECP)
    assert load_keystore(path, PASSPHRASE.encode()) == keys


@pytest.mark.parametrize(
    ("seed", "secp"),
    [(SEED[:31], SECP), (SEED, SECP[:31]), (SEED, b"\x00" * 32), (SEED, SECP256K1_N.to_bytes(32))],
)
def test_import_keystore_refuses_bad_key_material(tmp_path, seed, secp):
    path = tmp_path / "bad.json"
    with pytest.raises(KeystoreError) as info:
        import_keystore(path, PASSPHRASE, ed25519_seed=seed, secp256k1_key=secp, kdf=FAST_KDF)
    assert secp.hex() not in str(info.value)
    assert not path.exists()


def test_wrong_passphrase_is_a_keystore_error_without_key_material(tmp_path):
    path = tmp_path / "v.json"
    import_keystore(path, PASSPHRASE, ed25519_seed=SEED, secp256k1_key=SECP, kdf=FAST_KDF)
    with pytest.raises(KeystoreError, match="wrong passphrase") as info:
        load_keystore(path, "not the passphrase")
    text = str(info.value)
    assert SEED.hex() not in text and SECP.hex() not in text and PASSPHRASE not in text


def test_empty_passphrase_is_refused(tmp_path):
    with pytest.raises(KeystoreError, match="empty"):
        new_keystore(tmp_path / "v.json", "", kdf=FAST_KDF)


def test_keystore_file_is_mode_0600_and_has_no_plaintext_secret(tmp_path):
    path = tmp_path / "v.json"
    keys = import_keystore(path, PASSPHRASE, ed25519_seed=SEED, secp256k1_key=SECP, kdf=FAST_KDF)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert SEED.hex() not in text and SECP.hex() not in text and PASSPHRASE not in text
    doc = json.loads(text)
    assert doc["version"] == 1
    assert doc["kdf"] == {
        "name": "argon2id",
        "version": 19,
        "salt": doc["kdf"]["salt"],
        "time_cost": 1,
        "memory_cost_kib": 8,
        "parallelism": 1,
    }
    assert doc["ed25519_public"] == keys.ed25519_public_hex
    assert doc["evm_address"] == keys.evm_address
    assert [p.name for p in tmp_path.iterdir()] == ["v.json"]  # no temp file left behind


def test_new_keystore_refuses_to_overwrite_an_existing_file(tmp_path):
    path = tmp_path / "v.json"
    first = new_keystore(path, PASSPHRASE, kdf=FAST_KDF)
    with pytest.raises(KeystoreError, match="overwrite"):
        new_keystore(path, PASSPHRASE, kdf=FAST_KDF)
    assert load_keystore(path, PASSPHRASE) == first
    save_keystore(path, first, "new passphrase", kdf=FAST_KDF, overwrite=True)
    assert load_keystore(path, "new passphrase") == first


def test_repr_str_and_pickle_never_expose_secrets():
    keys = ValidatorKeys(SEED, SECP)
    for text in (repr(keys), str(keys), f"{keys}"):
        assert SEED.hex() not in text and SECP.hex() not in text
        assert keys.ed25519_public_hex in text and keys.evm_address in text
    with pytest.raises(TypeError):
        pickle.dumps(keys)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(
            ciphertext=d["ciphertext"][:-2] + ("00" if d["ciphertext"][-2:] != "00" else "01")
        ),
        lambda d: d["kdf"].update(time_cost=2),
        lambda d: d["kdf"].update(salt="0x" + "11" * 16),
        lambda d: d["cipher"].update(nonce="0x" + "22" * 24),
        lambda d: d.update(evm_address="0x" + "33" * 20),
        lambda d: d.update(version=2),
        lambda d: d["kdf"].update(memory_cost_kib=1 << 40),
        lambda d: d["kdf"].update(time_cost="1"),
        lambda d: d.pop("ciphertext"),
        lambda d: d.update(ciphertext="0xzz"),
    ],
)
def test_tampered_keystore_is_refused(tmp_path, mutate):
    path = tmp_path / "v.json"
    import_keystore(path, PASSPHRASE, ed25519_seed=SEED, secp256k1_key=SECP, kdf=FAST_KDF)
    doc = json.loads(path.read_text())
    mutate(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(KeystoreError):
        load_keystore(path, PASSPHRASE)


def test_missing_or_non_json_file_is_a_keystore_error(tmp_path):
    with pytest.raises(KeystoreError, match="cannot read"):
        load_keystore(tmp_path / "absent.json", PASSPHRASE)
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    with pytest.raises(KeystoreError, match="not JSON"):
        load_keystore(bad, PASSPHRASE)


def test_production_kdf_defaults_are_strong():
    assert PRODUCTION_KDF.time_cost >= 3
    assert PRODUCTION_KDF.memory_cost_kib >= 64 * 1024
    assert PRODUCTION_KDF.parallelism >= 1


def test_sign_digest_requires_32_bytes():
    keys = ValidatorKeys(SEED, SECP)
    assert len(keys.sign_digest(b"\x01" * 32)) == 65
    with pytest.raises(InvalidSignature):
        keys.sign_digest(b"\x01" * 31)
