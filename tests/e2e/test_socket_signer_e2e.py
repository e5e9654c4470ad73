"""Validators whose keys live in ``ferry signer serve`` processes: their attestations count.

A 3-of-3 devnet (`Devnet(socket_signers=2)`): validators 1 and 2 sign through external signer
processes over Unix sockets, validator 3 decrypts its key file. A lock is minted only if all
three attested, so the mint proves the socket-signed attestations were valid and counted.
"""

from __future__ import annotations

import stat

import pytest
from nacl.signing import SigningKey

from adapters.base import NATIVE_TOKEN, asset_key
from adapters.evm import devnet as evm
from ledger.client import LedgerClient
from relayer.cli.devnet import Devnet
from tests.e2e.test_stack import _lock, wait_until

pytestmark = pytest.mark.e2e
ETH = "eip155:31337"


@pytest.fixture
def signer_devnet(devnet_factory) -> Devnet:
    return devnet_factory(validators=3, threshold=3, socket_signers=2)


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
    wait_until(lambda: ledger.account(account).balances.get(weth) == 10**18, 90,
               "the 3-of-3 mint")
    for i in (1, 2):
        log = net.services[f"signer-{i}"].log_path.read_text()
        assert "signed op=sign_attestation" in log
        assert "Traceback" not in log
    signer_dir = net.signer_dir
    assert signer_dir is not None
    net.stop()
    assert not signer_dir.exists()  # stopped signers, their sockets removed
