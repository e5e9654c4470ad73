"""`ferry keys create|new|show|export|import|rotate`: round trips keep the public keys, rotation
keeps the old file, failures are one line with exit code 1, and no secret is ever printed."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.errors import KeystoreError
from relayer.cli import app
from validators.key_files import public_identity, rotate
from validators.keystore import ValidatorKeys, hot_wallet_secrets, load_keystore

PASS, EXPORT_PASS = "operational passphrase", "export passphrase"
SEED = bytes(range(1, 33))
SECP = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")


def ferry(*args: str, **env: str):  # type: ignore[no-untyped-def]
    """Run `ferry` in-process (CliRunner) with only the passphrase variables given."""
    clean = {k: None for k in ("FERRY_PASSPHRASE", "FERRY_EXPORT_PASSPHRASE",
                               "FERRY_NEW_PASSPHRASE")}
    return CliRunner().invoke(app, list(args), env={**clean, **env})


def ferry_process(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `ferry` as a process, as an operator does (errors: one line, exit code 1)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    return subprocess.run([sys.executable, "-m", "relayer.cli", *args], capture_output=True,
                          text=True, timeout=60, check=False, env={**base, **env},
                          stdin=subprocess.DEVNULL)


def secrets_hex(keys: ValidatorKeys) -> list[str]:
    return [s.hex() for s in hot_wallet_secrets(keys)]


def assert_no_secret(text: str, *keys: ValidatorKeys) -> None:
    for k in keys:
        for secret in secrets_hex(k):
            assert secret not in text.lower()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_create_show_export_import_round_trip_keeps_the_public_keys(tmp_path):
    key_file, export, imported = tmp_path / "v1.json", tmp_path / "v1.export", tmp_path / "v1b.json"
    created = ferry("keys", "create", "--out", str(key_file), FERRY_PASSPHRASE=PASS)
    assert created.exit_code == 0, created.output
    identity = json.loads(created.output)
    keys = load_keystore(key_file, PASS)
    assert identity == {"keystore": str(key_file), **public_identity(keys)}

    shown = ferry("keys", "show", "--keystore", str(key_file))  # no passphrase at all
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output) == {**identity, "verified": False}

    exported = ferry("keys", "export", "--keystore", str(key_file), "--out", str(export),
                     FERRY_PASSPHRASE=PASS, FERRY_EXPORT_PASSPHRASE=EXPORT_PASS)
    assert exported.exit_code == 0, exported.output
    assert load_keystore(export, EXPORT_PASS) == keys  # encrypted under the export passphrase
    with pytest.raises(KeystoreError):
        load_keystore(export, PASS)

    done = ferry("keys", "import", "--from-export", str(export), "--out", str(imported),
                 FERRY_PASSPHRASE="the new host's passphrase", FERRY_EXPORT_PASSPHRASE=EXPORT_PASS)
    assert done.exit_code == 0, done.output
    assert load_keystore(imported, "the new host's passphrase") == keys
    verified = ferry("keys", "show", "--verify", "--keystore", str(imported),
                     FERRY_PASSPHRASE="the new host's passphrase")
    assert json.loads(verified.output) | {"keystore": ""} == {
        **identity, "keystore": "", "verified": True}
    assert [mode(p) for p in (key_file, export, imported)] == [0o600] * 3
    for result in (created, shown, exported, done, verified):
        assert_no_secret(result.output, keys)
    assert_no_secret(export.read_text() + imported.read_text(), keys)  # never plaintext on disk


def test_keys_new_is_an_alias_of_create(tmp_path):
    made = ferry("keys", "new", "--out", str(tmp_path / "k.json"), FERRY_PASSPHRASE=PASS)
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)["ed25519"] == load_keystore(tmp_path / "k.json",
                                                               PASS).ed25519_public_hex


def test_export_refuses_its_source_passphrase_and_an_existing_file(tmp_path):
    key_file = tmp_path / "v1.json"
    ferry("keys", "create", "--out", str(key_file), FERRY_PASSPHRASE=PASS)
    same = ferry("keys", "export", "--keystore", str(key_file), "--out", str(tmp_path / "e"),
                 FERRY_PASSPHRASE=PASS, FERRY_EXPORT_PASSPHRASE=PASS)
    assert same.exit_code == 1 and "must differ" in str(same.exception)
    assert not (tmp_path / "e").exists()
    (tmp_path / "taken").write_text("an operator's file")
    taken = ferry("keys", "export", "--keystore", str(key_file), "--out", str(tmp_path / "taken"),
                  FERRY_PASSPHRASE=PASS, FERRY_EXPORT_PASSPHRASE=EXPORT_PASS)
    assert taken.exit_code == 1 and "refusing to overwrite" in str(taken.exception)
    assert (tmp_path / "taken").read_text() == "an operator's file"


def test_import_reads_raw_keys_as_hex_or_bytes(tmp_path):
    (tmp_path / "seed.hex").write_text("0x" + SEED.hex() + "\n")
    (tmp_path / "secp.bin").write_bytes(SECP)
    done = ferry("keys", "import", "--out", str(tmp_path / "v.json"), "--ed25519-seed-file",
                 str(tmp_path / "seed.hex"), "--secp256k1-key-file", str(tmp_path / "secp.bin"),
                 FERRY_PASSPHRASE=PASS)
    assert done.exit_code == 0, done.output
    expected = ValidatorKeys(SEED, SECP)
    assert json.loads(done.output)["evm_address"] == expected.evm_address
    assert load_keystore(tmp_path / "v.json", PASS) == expected
    assert_no_secret(done.output, expected)


@pytest.mark.parametrize("args,message", [
    ([], "pass --from-export FILE, or both"),
    (["--ed25519-seed-file", "seed"], "pass --from-export FILE, or both"),
    (["--from-export", "x", "--ed25519-seed-file", "seed"], "not both"),
    (["--ed25519-seed-file", "short", "--secp256k1-key-file", "secp"], "must hold 32 bytes"),
])
def test_import_refuses_a_missing_or_bad_source_without_echoing_it(tmp_path, monkeypatch, args,
                                                                   message):
    (tmp_path / "seed").write_text(SEED.hex())
    (tmp_path / "short").write_text("ab" * 31)
    (tmp_path / "secp").write_text(SECP.hex())
    monkeypatch.chdir(tmp_path)
    done = ferry("keys", "import", "--out", str(tmp_path / "v.json"), *args,
                 FERRY_PASSPHRASE=PASS)
    assert done.exit_code == 1 and message in str(done.exception)
    assert "ab" * 31 not in str(done.exception) and SEED.hex() not in str(done.exception)
    assert not (tmp_path / "v.json").exists()


def test_two_rotations_in_the_same_second_keep_both_retired_files(tmp_path):
    from validators.keystore import KdfParams

    fast = KdfParams(time_cost=1, memory_cost_kib=8 * 1024, parallelism=1)
    key_file = tmp_path / "v1.json"
    ferry("keys", "create", "--out", str(key_file), FERRY_PASSPHRASE=PASS)
    first_bytes = key_file.read_bytes()
    now = datetime(2026, 11, 22, 6, 0, 0, tzinfo=UTC)
    first, _, retired_1 = rotate(key_file, PASS, now=now, kdf=fast)
    second_bytes = key_file.read_bytes()
    middle, _, retired_2 = rotate(key_file, PASS, now=now, kdf=fast)
    assert retired_1.name == "v1.json.20261122T060000Z.retired"
    assert retired_2.name == "v1.json.20261122T060000Z.2.retired"
    assert (retired_1.read_bytes(), retired_2.read_bytes()) == (first_bytes, second_bytes)
    assert load_keystore(retired_2, PASS) == middle != first


def test_rotate_writes_new_keys_and_keeps_the_old_file_retired(tmp_path):
    key_file = tmp_path / "v1.json"
    ferry("keys", "create", "--out", str(key_file), FERRY_PASSPHRASE=PASS)
    before, old = key_file.read_bytes(), load_keystore(key_file, PASS)
    rotated = ferry("keys", "rotate", "--keystore", str(key_file), FERRY_PASSPHRASE=PASS)
    assert rotated.exit_code == 0, rotated.output
    doc = json.loads(rotated.output)
    new = load_keystore(key_file, PASS)
    assert doc["old"] == public_identity(old) and doc["new"] == public_identity(new)
    assert new.ed25519_public != old.ed25519_public and new.evm_address != old.evm_address
    retired = Path(doc["retired"])
    assert retired.parent == tmp_path and retired.name.startswith("v1.json.")
    assert retired.name.endswith("Z.retired")
    assert retired.read_bytes() == before and mode(retired) == 0o600  # still encrypted
    assert load_keystore(retired, PASS) == old
    assert mode(key_file) == 0o600
    assert_no_secret(rotated.output, old, new)

    again = ferry("keys", "rotate", "--keystore", str(key_file), FERRY_PASSPHRASE=PASS,
                  FERRY_NEW_PASSPHRASE="after rotation")
    assert again.exit_code == 0, again.output
    assert load_keystore(key_file, "after rotation").ed25519_public_hex == \
        json.loads(again.output)["new"]["ed25519"]


def test_show_needs_the_passphrase_only_to_verify_or_for_an_older_file(tmp_path):
    key_file = tmp_path / "v1.json"
    ferry("keys", "create", "--out", str(key_file), FERRY_PASSPHRASE=PASS)
    doc = json.loads(key_file.read_text())
    del doc["secp256k1_public"]  # a file written before the field existed
    (tmp_path / "old.json").write_text(json.dumps(doc))
    needs = ferry("keys", "show", "--keystore", str(tmp_path / "old.json"))
    assert needs.exit_code == 1 and "set FERRY_PASSPHRASE" in str(needs.exception)
    shown = ferry("keys", "show", "--keystore", str(tmp_path / "old.json"), FERRY_PASSPHRASE=PASS)
    assert json.loads(shown.output)["verified"] is True
    assert json.loads(shown.output)["secp256k1_pubkey"] == load_keystore(
        key_file, PASS).secp256k1_public.hex()


def test_a_public_field_that_lies_is_caught_by_verify(tmp_path):
    key_file = tmp_path / "v1.json"
    ferry("keys", "create", "--out", str(key_file), FERRY_PASSPHRASE=PASS)
    doc = json.loads(key_file.read_text())
    doc["secp256k1_public"] = "0x" + ValidatorKeys.generate().secp256k1_public.hex()
    key_file.write_text(json.dumps(doc))
    lied = ferry("keys", "show", "--verify", "--keystore", str(key_file), FERRY_PASSPHRASE=PASS)
    assert lied.exit_code == 1 and "public fields do not match" in str(lied.exception)


@pytest.mark.parametrize("command", [
    ["keys", "show", "--verify", "--keystore", "{f}"],
    ["keys", "export", "--keystore", "{f}", "--out", "{f}.export"],
    ["keys", "rotate", "--keystore", "{f}"],
    ["signer", "serve", "--keystore", "{f}", "--socket", "{f}.sock"],
])
def test_a_wrong_passphrase_is_one_line_and_exit_code_1(tmp_path, command):
    key_file = tmp_path / "v1.json"
    ferry("keys", "create", "--out", str(key_file), FERRY_PASSPHRASE=PASS)
    before = key_file.read_bytes()
    run = ferry_process(*[a.format(f=key_file) for a in command],
                        FERRY_PASSPHRASE="not the passphrase", FERRY_EXPORT_PASSPHRASE=EXPORT_PASS)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        f"ferry: error: cannot decrypt keystore {key_file}: wrong passphrase or corrupted file"]
    assert run.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v1.json"]  # nothing written
    assert key_file.read_bytes() == before


def test_without_a_passphrase_or_a_terminal_the_error_names_the_variable(tmp_path):
    run = ferry_process("keys", "create", "--out", str(tmp_path / "v.json"))
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        "ferry: error: set FERRY_PASSPHRASE (no terminal to prompt for the passphrase)"]
    assert not (tmp_path / "v.json").exists()
