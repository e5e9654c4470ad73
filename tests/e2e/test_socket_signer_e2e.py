"""Validators whose keys live in ``ferry signer serve`` processes: their attestations count.

A 3-of-3 devnet (`Devnet(socket_signers=2)`): validators 1 and 2 sign through external signer
processes over Unix sockets, validator 3 decrypts its key file. A lock is minted only if all
three attested, so the mint proves the socket-signed attestations were valid and counted.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator

import pytest
from nacl.signing import SigningKey

from adapters.base import NATIVE_TOKEN, asset_key
from adapters.evm import devnet as evm
from ledger.client import LedgerClient
from relayer.cli.devnet import Devnet
from tests.e2e.test_stack import _lock, wait_until
from validators.keystore import KdfParams

pytestmark = pytest.mark.e2e
ETH = "eip155:31337"
FAST_KDF = KdfParams(time_cost=1, memory_cost_kib=8 * 1024, parallelism=1)  # tests only


@pytest.fixture
def signer_devnet(tmp_path) -> Iterator[Devnet]:
    net = Devnet(tmp_path / "devnet", validators=3, threshold=3, block_time_s=0.2, kdf=FAST_KDF,
                 poll_interval_s=0.2, socket_signers=2)
    try:
        net.start_chains()
        net.deploy()
        net.start_services()
        yield net
    except BaseException:
        for name, proc in net.services.items():
            print(f"----- {name} log tail\n{proc.log_tail()}")
        raise
    finally:
        net.stop()


def test_attestations_signed_through_ferry_signer_serve_count_toward_a_mint(signer_devnet):
    net = signer_devnet
    info = net.info
    assert info is not None
    for i in (1, 2):  # no key file, no passphrase in these validators' environment
        env = net.validator_env(i)
        assert env["FERRY_VALIDATOR__SIGNER"] == "socket"
        assert "FERRY_VALIDATOR__PASSPHRASE" not in env and "FERRY_VALIDATOR__KEYSTORE" not in env
        assert stat.S_IMODE(net.signer_socket(i).lstat().st_mode) == 0o600
    assert "FERRY_VALIDATOR__PASSPHRASE" in net.validator_env(3)

    account = bytes(SigningKey.generate().verify_key)
    _lock(net, evm.connect(info.rpc["ethereum"]), info.bridges["ethereum"], 10**18, account)
    ledger = LedgerClient(info.ledger_url)
    weth = asset_key(ETH, NATIVE_TOKEN)
    try:
        wait_until(lambda: ledger.account(account).balances.get(weth) == 10**18, 90,
                   "the 3-of-3 mint")
    except AssertionError:
        for name, proc in net.services.items():
            print(f"----- {name} log tail\n{proc.log_tail()}")
        raise
    for i in (1, 2):
        log = net.services[f"signer-{i}"].log_path.read_text()
        assert "signed op=sign_attestation" in log
        assert "Traceback" not in log
    signer_dir = net.signer_dir
    assert signer_dir is not None
    net.stop()
    assert not signer_dir.exists()  # stopped signers, their sockets removed
