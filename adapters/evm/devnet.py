"""Local EVM devnets for demos and tests: an anvil process runner and contract deployment.

Owns: starting and stopping `anvil` on a free loopback port in its own datadir, readiness
polling, and deploying/funding Ferry's contracts on such a devnet with locally signed
transactions. Must not be used against a network with real value (it funds accounts with
``anvil_setBalance`` and ships anvil's public dev key), and must not hold keys beyond a call.
"""

from __future__ import annotations

import http.client
import json
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

from eth_account import Account
from web3 import Web3
from web3.exceptions import ContractLogicError, TimeExhausted
from web3.types import RPCEndpoint, TxReceipt

from adapters.devnode import NodeProcess, free_port, tool_binary
from adapters.errors import ChainError, RpcUnavailable, SubmissionReverted, WrongChain
from contracts import load_artifact

# Anvil's first default dev account (mnemonic "test test ... junk"). Public knowledge:
# devnet-only funding/deployer key, NEVER use it on a network with real value.
ANVIL_DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ANVIL_DEV_ADDRESS = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"

_REPO_ROOT = Path(__file__).resolve().parents[2]
_DEFAULT_ANVIL = _REPO_ROOT / "contracts" / "node_modules" / ".bin" / "anvil"
_TX_TIMEOUT_S = 30.0


def anvil_binary() -> Path:
    """Path of the anvil binary: env ``FERRY_ANVIL``, else the npm one under ``contracts/``.

    Raises:
        ConfigError: the binary does not exist or is not executable.
    """
    return tool_binary("anvil", "FERRY_ANVIL", _DEFAULT_ANVIL, "run `npm ci` in contracts/")


class AnvilNode:
    """One anvil process on ``127.0.0.1:<free port>``, with its own datadir and log file.

    Use as a context manager (starts, waits ready, always stops) or call `start`,
    `wait_ready` and `stop` yourself. If `workdir` is not given a temporary directory is
    created and removed by `stop`.

    Args:
        chain_id: EIP-155 chain id served (``--chain-id``).
        block_time_s: interval mining period in seconds; None mines one block per tx.
        workdir: directory for the log file and anvil's cache.
    """

    def __init__(
        self, chain_id: int, *, block_time_s: float | None = None, workdir: Path | None = None
    ) -> None:
        self.chain_id = chain_id
        self.block_time_s = block_time_s
        self.port = 0
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="ferry-anvil-"))
        self.log_path = self.workdir / "anvil.log"
        self._proc = NodeProcess(self.log_path)
        self._final_tail: str | None = None

    @property
    def chain(self) -> str:
        """CAIP-2 id of the served chain (``"eip155:<chain_id>"``)."""
        return f"eip155:{self.chain_id}"

    @property
    def pid(self) -> int | None:
        """OS process id while running, else None."""
        return self._proc.pid

    @property
    def rpc_url(self) -> str:
        """HTTP JSON-RPC endpoint (valid after `start`)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Spawn anvil; returns immediately (call `wait_ready`). Raises ConfigError, ChainError."""
        if self._proc.started:
            raise ChainError("anvil already started", chain=self.chain)
        self.port = free_port()
        cmd = [str(anvil_binary()), "--host", "127.0.0.1", "--port", str(self.port),
               "--chain-id", str(self.chain_id), "--cache-path", str(self.workdir / "cache")]
        if self.block_time_s is not None:
            cmd += ["--block-time", str(self.block_time_s)]
        self._proc.spawn(cmd, self.workdir)
        return self

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Poll ``eth_chainId`` until it answers with `chain_id`, at most `timeout_s` seconds.

        Raises:
            ChainError: the process exited or did not answer in time (message has the log tail).
            WrongChain: something answered on the port with another chain id.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            code = self._proc.exit_code()
            if code is not None:
                raise ChainError(f"anvil exited (code {code}); log:\n{self.log_tail()}",
                                 chain=self.chain)
            try:
                served = int(_rpc(self.rpc_url, "eth_chainId", [], timeout_s=1.0), 16)
            except (OSError, ValueError, http.client.HTTPException):
                served = None  # not listening yet
            if served is not None:
                if served != self.chain_id:
                    raise WrongChain(f"port {self.port} serves chain id {served}", chain=self.chain)
                return
            if time.monotonic() >= deadline:
                raise ChainError(f"anvil not ready after {timeout_s}s; log:\n{self.log_tail()}",
                                 chain=self.chain)
            time.sleep(0.05)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate the process (kill after `timeout_s`); idempotent."""
        self._proc.stop(timeout_s)
        if self._own_workdir and self.workdir.exists():
            self._final_tail = self.log_tail(lines=500)
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        """The last `lines` lines of anvil's log (kept after `stop` removes a temp datadir)."""
        if self.log_path.exists() or self._final_tail is None:
            return self._proc.log_tail(lines)
        return "\n".join(self._final_tail.splitlines()[-lines:]) or "<empty log>"

    def __enter__(self) -> Self:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _rpc(url: str, method: str, params: list[Any], *, timeout_s: float) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        reply = json.loads(resp.read())
    if "error" in reply:
        raise ValueError(reply["error"])
    return reply["result"]


def connect(rpc_url: str, timeout_s: float = 10.0) -> Web3:
    """A `Web3` over HTTP to `rpc_url` with a per-request timeout of `timeout_s` seconds."""
    return Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))


def transact(
    w3: Web3, call: Any, *, sender_key: str, value_wei: int = 0, gas: int | None = None
) -> TxReceipt:
    """Sign `call` (a bound contract function or constructor) locally, send, wait for receipt.

    Args:
        call: e.g. ``contract.functions.lock(token, amount, recipient)``.
        sender_key: 32-byte secp256k1 private key, ``0x`` hex.
        value_wei: native value to send with the call.
        gas: gas limit; None estimates it (a revert then raises before anything is sent).

    Raises:
        SubmissionReverted: gas estimation or execution reverted (message names the error).
        RpcUnavailable: the node did not answer, or no receipt within 30 s.
    """
    account = Account.from_key(sender_key)
    chain = "?"
    try:
        chain_id = w3.eth.chain_id
        chain = f"eip155:{chain_id}"
        params: dict[str, Any] = {
            "from": account.address, "value": value_wei, "chainId": chain_id,
            "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        }
        if gas is not None:
            params["gas"] = gas
        signed = account.sign_transaction(call.build_transaction(params))
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=_TX_TIMEOUT_S)
    except ContractLogicError as exc:
        raise SubmissionReverted(_revert_name(call, exc), chain=chain) from exc
    except (OSError, TimeExhausted) as exc:  # requests' errors are OSErrors
        raise RpcUnavailable(str(exc), chain=chain) from exc
    if receipt["status"] != 1:
        raise SubmissionReverted(f"tx {tx_hash.to_0x_hex()} reverted", chain=chain)
    return receipt


def _revert_name(call: Any, exc: ContractLogicError) -> str:
    """``"reverted: <CustomError>"`` when the revert data matches an error in the ABI."""
    data = exc.data if isinstance(exc.data, str) else ""
    abi = getattr(call, "contract_abi", None) or getattr(call, "abi", None)
    for item in abi if isinstance(abi, list) else []:
        if item.get("type") == "error":
            sig = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
            if data.startswith(Web3.keccak(text=sig)[:4].to_0x_hex()):
                return f"reverted: {item['name']} ({data})"
    return f"reverted: {exc.message or data}"


def deploy(w3: Web3, artifact_name: str, *args: Any, sender_key: str) -> str:
    """Deploy contract `artifact_name` (see `contracts.load_artifact`), signed with `sender_key`.

    Args:
        artifact_name: ``"Bridge"``, ``"TestToken"`` or ``"FeeToken"``.
        *args: constructor arguments, addresses checksummed.
        sender_key: deployer private key, ``0x`` hex.

    Returns:
        The new contract's address, lowercase ``0x`` hex.

    Raises:
        ConfigError: no such artifact. SubmissionReverted: the constructor reverted.
    """
    artifact = load_artifact(artifact_name)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = transact(w3, factory.constructor(*args), sender_key=sender_key)
    return str(receipt["contractAddress"]).lower()


def _checksum(addresses: Sequence[str]) -> list[str]:
    return [Web3.to_checksum_address(a) for a in addresses]


def deploy_bridge(
    w3: Web3, validators: Sequence[str], threshold: int, allowed_tokens: Sequence[str],
    *, sender_key: str,
) -> str:
    """Deploy `Bridge` with its first validator set (set nonce 1) and token allow-list.

    Args:
        validators: EVM addresses of the validators (distinct, nonzero).
        threshold: signatures required, 0 < threshold <= len(validators).
        allowed_tokens: tokens `lock` accepts; include ``NATIVE_TOKEN`` for the native coin.
        sender_key: deployer private key, ``0x`` hex.

    Returns:
        The bridge address, lowercase ``0x`` hex.
    """
    return deploy(w3, "Bridge", _checksum(validators), threshold, _checksum(allowed_tokens),
                  sender_key=sender_key)


def deploy_test_token(
    w3: Web3, *, sender_key: str, name: str = "Ferry Test Token", symbol: str = "FTT",
    fee_on_transfer: bool = False,
) -> str:
    """Deploy a `TestToken` (18 decimals, open `mint`), or a 1%-burning `FeeToken`."""
    return deploy(w3, "FeeToken" if fee_on_transfer else "TestToken", name, symbol,
                  sender_key=sender_key)


def fund(w3: Web3, address: str, wei: int) -> None:
    """Set (not add to) the native balance of `address` to `wei` via ``anvil_setBalance``.

    Raises:
        ChainError: the node refused (not anvil, or bad arguments).
    """
    params = [Web3.to_checksum_address(address), hex(wei)]
    reply = w3.provider.make_request(RPCEndpoint("anvil_setBalance"), params)
    if reply.get("error"):
        raise ChainError(f"anvil_setBalance failed: {reply['error']}",
                         chain=f"eip155:{w3.eth.chain_id}")
