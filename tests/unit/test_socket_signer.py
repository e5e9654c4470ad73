"""The external signer: `SocketSigner` against a real `SignerServer` (thread) or a real
``ferry signer serve`` process gives the file signer's exact signatures; the socket is private;
failures are typed; the ``[validator] signer`` config picks the implementation."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pydantic
import pytest

from adapters.errors import ConfigError, InvalidSignature, SignerRefused, SignerUnavailable
from relayer.cli.wiring import build_key_signer
from validators.config import ValidatorSection
from validators.key_signer import KeySigner, recv_frame, send_frame
from validators.keystore import KdfParams, ValidatorKeys, hot_wallet_secrets, new_keystore
from validators.signer_server import SignerServer
from validators.socket_signer import SocketSigner

FAST_KDF = KdfParams(time_cost=1, memory_cost_kib=8, parallelism=1)  # tests only
MESSAGES = [b"ferry/attestation/v1\n{}", b"", bytes(range(256)) * 40]
DIGESTS = [bytes(32), bytes(range(32)), hashlib.sha256(b"release").digest()]


@pytest.fixture()
def keys() -> ValidatorKeys:
    return ValidatorKeys.generate()


@pytest.fixture()
def sock_path(tmp_path) -> Path:
    return tmp_path / "signer" / "v1.sock"


@pytest.fixture()
def served(keys, sock_path) -> Iterator[SignerServer]:
    with SignerServer(keys, sock_path) as server:
        yield server


@pytest.fixture()
def client(served, sock_path) -> Iterator[SocketSigner]:
    signer = SocketSigner(sock_path, timeout_s=5)
    signer.wait_ready(timeout_s=5)
    yield signer
    signer.close()


def raw_request(path: Path, frame: dict | bytes) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(path))
        if isinstance(frame, bytes):
            s.sendall(len(frame).to_bytes(4, "big") + frame)
        else:
            send_frame(s, frame)
        return recv_frame(s)


def test_socket_signer_gives_the_file_signers_signatures_for_every_method(keys, client):
    assert isinstance(keys, KeySigner) and isinstance(client, KeySigner)
    assert (client.ed25519_public, client.ed25519_public_hex, client.evm_address,
            client.secp256k1_public, client.info) == (
        keys.ed25519_public, keys.ed25519_public_hex, keys.evm_address, keys.secp256k1_public,
        keys.info)
    for message in MESSAGES:
        assert client.sign_attestation(message) == keys.sign_attestation(message)
    for digest in DIGESTS:
        assert client.sign_digest(digest) == keys.sign_digest(digest)
        assert client.sign_der(digest) == keys.sign_der(digest)
        assert client.sign_compact(digest) == keys.sign_compact(digest)


def test_a_digest_of_the_wrong_length_fails_as_it_does_in_the_file_signer(keys, client, sock_path):
    for method in ("sign_digest", "sign_der", "sign_compact"):
        for signer in (keys, client):
            with pytest.raises(InvalidSignature, match="32 bytes"):
                getattr(signer, method)(bytes(31))
        answer = raw_request(sock_path, {"v": 1, "op": method, "data": "0x" + "00" * 33})
        assert answer == {"ok": False, "error": {"code": "invalid_signature",
                                                 "message": "digest must be 32 bytes"}}


def test_the_socket_is_0600_in_a_0700_directory(served, sock_path):
    assert stat.S_ISSOCK(sock_path.lstat().st_mode)
    assert stat.S_IMODE(sock_path.lstat().st_mode) == 0o600
    assert stat.S_IMODE(sock_path.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize("frame,code", [
    ({"v": 1, "op": "export_private_key"}, "unknown_op"),
    ({"v": 1, "op": "sign_digest"}, "bad_request"),
    ({"v": 1, "op": "sign_digest", "data": "0xzz"}, "bad_request"),
    ({"v": 2, "op": "info"}, "bad_request"),
    (b"not json", "bad_request"),
])
def test_the_server_refuses_unknown_or_malformed_requests_with_a_typed_error(served, sock_path,
                                                                             frame, code):
    answer = raw_request(sock_path, frame)
    assert answer["ok"] is False and answer["error"]["code"] == code


def test_the_client_raises_signer_refused_for_an_error_answer(client):
    with pytest.raises(SignerRefused, match="unknown_op"):
        client._call("export_private_key", b"")


def test_concurrent_clients_each_get_their_own_correct_signatures(keys, served, sock_path):
    failures: list[BaseException] = []

    def work(n: int) -> None:
        signer = SocketSigner(sock_path, timeout_s=10)
        try:
            for i in range(25):
                digest = hashlib.sha256(f"{n}/{i}".encode()).digest()
                assert signer.sign_digest(digest) == keys.sign_digest(digest)
                assert signer.sign_attestation(digest) == keys.sign_attestation(digest)
        except (AssertionError, SignerRefused, SignerUnavailable) as exc:  # main thread
            failures.append(exc)
        finally:
            signer.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not failures


def test_the_server_log_names_what_was_signed_but_no_secret(keys, client, caplog):
    caplog.set_level(logging.DEBUG)
    client.sign_digest(DIGESTS[1])
    client.sign_attestation(MESSAGES[0])
    text = caplog.text.lower()
    assert "signed op=sign_digest digest=0x" + DIGESTS[1].hex() in text
    assert "message_sha256=" + hashlib.sha256(MESSAGES[0]).hexdigest() in text
    for secret in hot_wallet_secrets(keys):
        assert secret.hex() not in text


def test_the_server_refuses_a_directory_open_to_others_and_a_live_socket(keys, tmp_path,
                                                                         served, sock_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with pytest.raises(ConfigError, match="mode 0700"):
        SignerServer(keys, shared / "v.sock").start()
    with pytest.raises(ConfigError, match="already serves"):
        SignerServer(keys, sock_path).start()


def test_a_signer_with_another_identity_is_refused_after_a_reconnect(keys, sock_path, client,
                                                                      served):
    client.sign_digest(DIGESTS[0])
    served.stop()
    with SignerServer(ValidatorKeys.generate(), sock_path), \
            pytest.raises(SignerRefused, match="changed identity"):
        client.sign_digest(DIGESTS[0])


class _Liar:
    """A hostile signer: announces `keys` but signs with other keys."""

    def __init__(self, keys: ValidatorKeys) -> None:
        self._keys, self._other = keys, ValidatorKeys.generate()
        self.ed25519_public, self.ed25519_public_hex = keys.ed25519_public, keys.ed25519_public_hex
        self.evm_address, self.secp256k1_public, self.info = (
            keys.evm_address, keys.secp256k1_public, keys.info)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._other, name)  # sign_* of the other key


def test_a_signature_that_does_not_verify_under_the_announced_key_is_refused(keys, sock_path):
    with SignerServer(_Liar(keys), sock_path):  # type: ignore[arg-type]
        signer = SocketSigner(sock_path, timeout_s=5)
        with pytest.raises(SignerRefused):
            signer.sign_attestation(b"m")
        for method in ("sign_digest", "sign_der", "sign_compact"):
            with pytest.raises(SignerRefused):
                getattr(signer, method)(DIGESTS[2])
        signer.close()


def _serve(key_file: Path, sock: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FERRY_PASSPHRASE": "pw", "FERRY_LOG_FORMAT": "text"}
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "relayer.cli", "signer", "serve",
                                 "--keystore", str(key_file), "--socket", str(sock)],
                                stdout=out, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL)


def test_a_killed_signer_process_is_signer_unavailable_and_a_restart_is_picked_up(tmp_path,
                                                                                 sock_path):
    key_file = tmp_path / "v1.json"
    keys = new_keystore(key_file, "pw", kdf=FAST_KDF)
    proc = _serve(key_file, sock_path, tmp_path / "signer.log")
    signer = SocketSigner(sock_path, timeout_s=5)
    try:
        signer.wait_ready(timeout_s=30)
        assert stat.S_IMODE(sock_path.lstat().st_mode) == 0o600
        assert signer.sign_der(DIGESTS[1]) == keys.sign_der(DIGESTS[1])
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        with pytest.raises(SignerUnavailable):
            signer.sign_der(DIGESTS[1])
        with pytest.raises(SignerUnavailable, match="not ready after"):
            SocketSigner(sock_path).wait_ready(timeout_s=0.3)
        proc = _serve(key_file, sock_path, tmp_path / "signer.log")  # removes the stale socket
        SocketSigner(sock_path).wait_ready(timeout_s=30)
        assert signer.sign_compact(DIGESTS[2]) == keys.sign_compact(DIGESTS[2])  # reconnected
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert not sock_path.exists()  # a clean stop removes its socket
    finally:
        signer.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert "Traceback" not in (tmp_path / "signer.log").read_text()


# -- [validator] signer -----------------------------------------------------------------------

BASE = {"name": "v1", "relayer_url": "http://127.0.0.1:8100", "ledger_url": "http://127.0.0.1:8000",
        "state_file": "/data/v1-state.json"}


@pytest.mark.parametrize("fields,message", [
    ({"keystore": "/k.json"}, 'passphrase required with signer = "file"'),
    ({"passphrase": "p"}, "keystore required"),
    ({"keystore": "/k.json", "passphrase": "p", "signer_socket": "/s"},
     'signer_socket is only read with signer = "socket"'),
    ({"signer": "socket"}, 'signer_socket is required with signer = "socket"'),
    ({"signer": "socket", "signer_socket": "/s", "keystore": "/k.json", "passphrase": "p"},
     "keystore and passphrase must not be set"),
    ({"signer": "hsm", "signer_socket": "/s"}, "'file' or 'socket'"),
])
def test_the_signer_setting_refuses_inconsistent_keys(fields, message):
    with pytest.raises(pydantic.ValidationError, match=message):
        ValidatorSection(**{**BASE, **fields})


def test_the_config_builds_the_file_signer_or_a_ready_socket_signer(tmp_path, keys, served,
                                                                     sock_path):
    key_file = tmp_path / "v1.json"
    on_disk = new_keystore(key_file, "pw", kdf=FAST_KDF)
    file_signer = build_key_signer(ValidatorSection(**BASE, keystore=key_file, passphrase="pw"))
    assert file_signer == on_disk
    socket_signer = build_key_signer(ValidatorSection(**BASE, signer="socket",
                                                      signer_socket=sock_path))
    assert isinstance(socket_signer, SocketSigner)
    assert socket_signer.ed25519_public_hex == keys.ed25519_public_hex
    socket_signer.close()
