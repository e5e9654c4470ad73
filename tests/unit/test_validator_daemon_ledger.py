"""ValidatorDaemon against the real ledger (SQLite, over its HTTP API via FastAPI's TestClient):
the burn records and status it signs from are the ledger's own wire format."""

from __future__ import annotations

import json

import httpx
from fastapi.testclient import TestClient
from nacl.signing import SigningKey, VerifyKey
from pydantic import SecretStr

from adapters.base import BlockRef, LockEvent
from adapters.evm.config import EvmChainConfig
from api.ledger import create_ledger_app
from ledger.client import LedgerClient
from ledger.testing import open_harness
from ledger.transactions import sign_burn
from validators.attestation import lock_attestation_message, parse_hex
from validators.config import ValidatorSection
from validators.daemon import ValidatorDaemon
from validators.eip712 import recover_signer, release_digest
from validators.keystore import ValidatorKeys

PAYEE = "0x" + "a7" * 20


class OneChain:
    def __init__(self, chain: str, events: list[LockEvent]) -> None:
        self.chain = chain
        self.events = events

    def head(self) -> BlockRef:
        return BlockRef(502, "0x" + "00" * 32)  # finalized 500 at the default depth 2

    def finalized(self) -> BlockRef:
        return BlockRef(500, "0x" + "00" * 32)

    def finalized_number(self, head_number: int) -> int:
        return head_number - 2

    def lock_events(self, from_block: int, to_block: int) -> list[LockEvent]:
        return [e for e in self.events if from_block <= e.block_number <= to_block]

    def set_nonce(self) -> int:
        return 1


def test_daemon_signs_locks_and_burns_read_from_the_real_ledger_api(tmp_path):
    h = open_harness(f"sqlite:///{tmp_path}/ledger.sqlite")
    user = SigningKey(b"\x07" * 32)
    lock = h.lock(1, 1000, bytes(user.verify_key), token=h.token)
    assert h.ledger.mint(h.certify(lock)).status == "minted"
    burn = sign_burn(user, h.network, 0, h.token_asset, 400, h.chain, PAYEE)
    receipt = h.ledger.submit_transaction(burn)

    sent: list[dict] = []

    def inbox(request: httpx.Request) -> httpx.Response:
        batch = json.loads(request.content)["attestations"]
        sent.extend(batch)
        return httpx.Response(200, json={"accepted": len(batch), "rejected": []})

    keys = ValidatorKeys.generate()
    section = ValidatorSection(
        name="v1",
        keystore=tmp_path / "k.json",
        passphrase=SecretStr("x"),
        relayer_url="http://relayer",
        ledger_url="http://ledger",
        state_file=tmp_path / "state.json",
    )
    chain = EvmChainConfig(
        name="ethereum", chain_id=31337, rpc_url="http://127.0.0.1:1", bridge_address=h.bridge
    )
    with TestClient(create_ledger_app(h.ledger), base_url="http://ledger") as http:
        daemon = ValidatorDaemon(
            section,
            h.network,
            [chain],
            keys,
            adapters={h.chain: OneChain(h.chain, [lock])},
            ledger=LedgerClient("http://ledger", http=http),
            relayer=httpx.Client(base_url="http://relayer", transport=httpx.MockTransport(inbox)),
        )
        result = daemon.run_once()
    assert result.ok and (result.locks_sent, result.releases_sent) == (1, 1)

    lock_att, release = sent
    epoch = h.validator_set.epoch
    assert lock_att["body"]["epoch"] == str(epoch)
    VerifyKey(keys.ed25519_public).verify(
        lock_attestation_message(h.network, lock, epoch), parse_hex(lock_att["signature"], 64)
    )
    assert release["burn_id"] == "0x" + receipt.burn_id.hex()
    digest = release_digest(
        31337,
        h.bridge,
        burn_id=receipt.burn_id,
        token=h.token,
        recipient=PAYEE,
        amount=400,
        set_nonce=1,
    )
    assert recover_signer(digest, parse_hex(release["signature"], 65)) == keys.evm_address
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["burn_seq"] == receipt.seq
