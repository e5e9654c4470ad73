"""A local Cosmos SDK devnet for demos and tests: a simd (simapp of cosmos-sdk v0.50.3) runner
and a wallet.

Owns: initialising a one-validator simd home (``simd init``, genesis accounts, gentx), patching
its ``config.toml`` and ``app.toml`` to free loopback ports and fast blocks, starting and stopping
simd, readiness polling, and `CosmosWallet`, a one-key secp256k1 account that signs bank and
authz transactions (SIGN_MODE_DIRECT) through cosmpy and waits for their inclusion.
Must not be used against a network with real value (the wallet key lives in memory, the
validator key in a ``test`` keyring), and must not log a key or a mnemonic.

Policy of the node: ``minimum-gas-prices = "0.001stake"`` (`MIN_GAS_PRICE_STAKE`): CheckTx
refuses a transaction whose fee is below ``ceil(gas_limit * 0.001)`` stake, so no transaction is
free and fee bugs show (a release of 200_000 gas pays 200 stake). Blocks every ~250 ms
(``timeout_commit``); tx indexer ``kv`` (``tx_search`` and gRPC GetTx need it).
"""

from __future__ import annotations

import math
import secrets
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Self

import grpc
import httpx
from cosmpy.aerial.client import LedgerClient, NetworkConfig
from cosmpy.aerial.exceptions import BroadcastError, QueryTimeoutError
from cosmpy.aerial.tx import SigningCfg, Transaction, TxFee
from cosmpy.aerial.tx_helpers import TxResponse
from cosmpy.crypto.address import Address
from cosmpy.crypto.keypairs import PrivateKey
from cosmpy.protos.cosmos.authz.v1beta1.authz_pb2 import GenericAuthorization, Grant
from cosmpy.protos.cosmos.authz.v1beta1.tx_pb2 import MsgExec, MsgGrant
from cosmpy.protos.cosmos.bank.v1beta1.bank_pb2 import Input, Output
from cosmpy.protos.cosmos.bank.v1beta1.tx_pb2 import MsgMultiSend, MsgSend
from cosmpy.protos.cosmos.base.v1beta1.coin_pb2 import Coin
from google.protobuf.any_pb2 import Any as ProtoAny
from google.protobuf.message import Message

from adapters.devnode import NodeProcess, free_port, tool_binary
from adapters.errors import ChainError, ConfigError, RpcUnavailable, SubmissionReverted, WrongChain

DEFAULT_CHAIN_ID = "ferry-sim-1"
BECH32_PREFIX = "cosmos"
BOND_DENOM = "stake"
MIN_GAS_PRICE_STAKE = Decimal("0.001")  # stake per gas unit, app.toml minimum-gas-prices
DEFAULT_GAS_LIMIT = 200_000  # gas units; a MsgSend uses ~70k, an authz MsgExec ~90k
# Every genesis account also holds these (base units): a second denom, and a look-alike of it
# that a watcher must not confuse with it.
DEFAULT_EXTRA_DENOMS: Mapping[str, int] = {"uatom": 10**12, "uatomm": 10**12}
VALIDATOR_STAKE = 10**14  # stake base units held by the validator account at genesis
VALIDATOR_BOND = 10**8  # its self-delegation (voting power 100 at the default 10^6 reduction)
TIMEOUT_COMMIT = "250ms"  # CometBFT consensus timeout_commit: the block interval
_REPO_ROOT = Path(__file__).resolve().parents[2]
_DEFAULT_SIMD = _REPO_ROOT / ".ferry" / "tools" / "bin" / "simd"
_MSG_SEND_URL = "/cosmos.bank.v1beta1.MsgSend"


def simd_binary() -> Path:
    """Path of the simd binary: env ``FERRY_SIMD``, else ``<repo>/.ferry/tools/bin/simd``.

    Raises:
        ConfigError: the binary does not exist or is not executable.
    """
    return tool_binary("simd", "FERRY_SIMD", _DEFAULT_SIMD,
                       "run `make install` (builds it with go)")


def min_fee_stake(gas_limit: int, gas_price_stake: Decimal = MIN_GAS_PRICE_STAKE) -> int:
    """The smallest fee (stake base units) CheckTx accepts for `gas_limit` gas units:
    ``ceil(gas_price * gas_limit)`` (x/auth ante ``checkTxFeeWithValidatorMinGasPrices``)."""
    return math.ceil(gas_price_stake * gas_limit)


def _patch_toml(path: Path, values: Mapping[tuple[str, str], str]) -> None:
    """Rewrite ``key = value`` lines of `path` in place; keys are ``(section, key)`` with ``""``
    for the top-level table, values are TOML literals. Raises ConfigError if a key is absent."""
    missing = dict(values)
    section = ""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped.strip("[]").strip()
        elif "=" in stripped and not stripped.startswith("#"):
            key = stripped.split("=", 1)[0].strip()
            if (section, key) in missing:
                line = f"{key} = {missing.pop((section, key))}"
        lines.append(line)
    if missing:
        raise ConfigError(f"{path} has no keys {sorted(missing)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class SimdNode:
    """One simd validator on ``127.0.0.1:<free ports>`` with its own home and log.

    `start` initialises ``<workdir>/home`` unless it already holds a genesis (then the existing
    chain restarts as it is, `accounts` and `chain_id` ignored; `wait_ready` then raises
    WrongChain if that home serves another chain id). Use as a context manager (starts, waits
    ready, always stops) or call `start`, `wait_ready` and `stop` yourself. `workdir` belongs to
    the caller (never removed here).

    Args:
        workdir: directory for the simd home (``home/``) and the log (``simd.log``).
        chain_id: the CometBFT chain id (genesis ``chain_id``).
        accounts: bech32 address -> stake base units funded at genesis; each also gets
            `extra_denoms`.
        extra_denoms: denom -> base units given to every account of `accounts`.
        min_gas_price_stake: app.toml ``minimum-gas-prices`` in stake per gas unit.
        binary: simd path; None uses `simd_binary`.
    """

    def __init__(self, workdir: Path, *, chain_id: str = DEFAULT_CHAIN_ID,
                 accounts: Mapping[str, int] | None = None,
                 extra_denoms: Mapping[str, int] = DEFAULT_EXTRA_DENOMS,
                 min_gas_price_stake: Decimal = MIN_GAS_PRICE_STAKE,
                 binary: Path | None = None) -> None:
        if any(amount <= 0 for amount in (accounts or {}).values()):
            raise ValueError("genesis account amounts must be positive")
        self.workdir = Path(workdir)
        self.home = self.workdir / "home"
        self._chain_id = chain_id
        self.accounts = dict(accounts or {})
        self.extra_denoms = dict(extra_denoms)
        self.min_gas_price_stake = Decimal(min_gas_price_stake)
        self.binary = binary
        self.rpc_port = self.p2p_port = self.grpc_port = self.api_port = 0
        self.log_path = self.workdir / "simd.log"
        self._proc = NodeProcess(self.log_path)

    @property
    def chain_id(self) -> str:
        """The chain id this node is expected to serve (``"ferry-sim-1"``)."""
        return self._chain_id

    @property
    def caip2(self) -> str:
        """CAIP-2 id of the chain (``"cosmos:<chain-id>"``)."""
        return f"cosmos:{self._chain_id}"

    chain = caip2  # the name the other devnet nodes (and ChainError's `chain`) use

    @property
    def pid(self) -> int | None:
        """OS process id while running, else None."""
        return self._proc.pid

    @property
    def rpc_url(self) -> str:
        """CometBFT RPC (HTTP, JSON-RPC and URI forms) endpoint (valid after `start`)."""
        return f"http://127.0.0.1:{self.rpc_port}"

    @property
    def grpc_url(self) -> str:
        """Cosmos SDK gRPC endpoint, plaintext HTTP/2 (cosmpy: ``"grpc+" + grpc_url``)."""
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def rest_url(self) -> str:
        """Cosmos SDK REST (gRPC-gateway) endpoint, e.g. ``/cosmos/bank/v1beta1/balances/..``."""
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> Self:
        """Initialise the home if needed, patch ports and timing, spawn ``simd start``; returns
        at once (call `wait_ready`). Raises ConfigError (binary, CLI refused input), ChainError."""
        if self._proc.started:
            raise ChainError("simd already started", chain=self.chain)
        binary = self.binary or simd_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not (self.home / "config" / "genesis.json").exists():
            self._init_home(binary)
        ports: set[int] = set()
        while len(ports) < 4:
            ports.add(free_port())
        self.rpc_port, self.p2p_port, self.grpc_port, self.api_port = sorted(ports)
        self._patch_config()
        self._proc.spawn([str(binary), "start", "--home", str(self.home), "--log_no_color",
                          "--x-crisis-skip-assert-invariants"], self.workdir)
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Poll CometBFT ``/status`` until ``latest_block_height >= 1``, then until REST and
        gRPC listen, at most `timeout_s` seconds.

        Raises:
            ChainError: the process exited or was not ready in time (message has the log tail).
            WrongChain: the node serves another chain id (``node_info.network``).
        """
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=1.0) as http:
            while True:
                code = self._proc.exit_code()
                if code is not None:
                    raise ChainError(f"simd exited (code {code}); log:\n{self.log_tail()}",
                                     chain=self.chain)
                if self._ready(http):
                    return
                if time.monotonic() >= deadline:
                    raise ChainError(f"simd not ready after {timeout_s}s; log:\n{self.log_tail()}",
                                     chain=self.chain)
                time.sleep(0.05)

    def _ready(self, http: httpx.Client) -> bool:
        """True once a block is committed and REST and gRPC listen; WrongChain on a mismatch."""
        try:
            status = http.get(f"{self.rpc_url}/status").json()["result"]
        except (httpx.HTTPError, ValueError, KeyError):
            return False  # not listening yet
        network = status["node_info"]["network"]
        if network != self._chain_id:
            raise WrongChain(f"port {self.rpc_port} serves chain id {network!r}",
                             chain=self.chain)
        if int(status["sync_info"]["latest_block_height"]) < 1:
            return False
        try:
            rest_up = http.get(f"{self.rest_url}/cosmos/base/tendermint/v1beta1/node_info"
                               ).status_code == 200
        except httpx.HTTPError:
            return False
        return rest_up and _port_open(self.grpc_port)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate the process (SIGTERM; kill after `timeout_s`). Idempotent."""
        self._proc.stop(timeout_s)

    def log_tail(self, lines: int = 40) -> str:
        """The last `lines` lines of simd's output and of the init commands (``simd.log``)."""
        return self._proc.log_tail(lines)

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

    # ------------------------------------------------------------------ internals

    def _simd(self, binary: Path, *args: str) -> str:
        """Run one simd CLI command on the home; returns its stdout, logs both streams."""
        cmd = [str(binary), *args, "--home", str(self.home)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                                  stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ChainError(f"`simd {args[0]}` hung", chain=self.chain) from exc
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(f"$ simd {' '.join(args)}\n{done.stderr}")  # stdout may be a genesis
        if done.returncode != 0:
            raise ConfigError(f"`simd {' '.join(args)}` failed: {done.stderr.strip()[-500:]}")
        return done.stdout

    def _init_home(self, binary: Path) -> None:
        """``simd init``, a ``test``-keyring validator key, genesis accounts, gentx, collect."""
        kr = ("--keyring-backend", "test")
        self._simd(binary, "init", "ferry-devnet", "--chain-id", self._chain_id)
        self._simd(binary, "config", "set", "client", "chain-id", self._chain_id)
        self._simd(binary, "config", "set", "client", "keyring-backend", "test")
        self._simd(binary, "keys", "add", "validator", "--no-backup", *kr)  # no mnemonic printed
        validator = self._simd(binary, "keys", "show", "validator", "-a", *kr).strip()
        funds = {validator: f"{VALIDATOR_STAKE}{BOND_DENOM}"}
        for address, stake in self.accounts.items():
            balances = {BOND_DENOM: stake, **self.extra_denoms}
            funds[address] = ",".join(f"{amount}{denom}" for denom, amount in balances.items())
        for address, coins in funds.items():
            self._simd(binary, "genesis", "add-genesis-account", address, coins, *kr)
        self._simd(binary, "genesis", "gentx", "validator", f"{VALIDATOR_BOND}{BOND_DENOM}",
                   "--chain-id", self._chain_id, *kr)
        self._simd(binary, "genesis", "collect-gentxs")

    def _patch_config(self) -> None:
        """Loopback ports, fast blocks, kv indexer, no pprof (config.toml); REST on, gRPC port,
        min gas price (app.toml)."""
        def s(value: str) -> str:  # a TOML basic string (our values need no escapes)
            return '"' + value + '"'
        _patch_toml(self.home / "config" / "config.toml", {
            ("", "moniker"): s("ferry-devnet"),
            ("rpc", "laddr"): s(f"tcp://127.0.0.1:{self.rpc_port}"),
            ("rpc", "pprof_laddr"): s(""),
            ("p2p", "laddr"): s(f"tcp://127.0.0.1:{self.p2p_port}"),
            ("p2p", "pex"): "false",
            ("p2p", "addr_book_strict"): "false",
            ("consensus", "timeout_propose"): s("500ms"),
            ("consensus", "timeout_commit"): s(TIMEOUT_COMMIT),
            ("tx_index", "indexer"): s("kv"),
            ("instrumentation", "prometheus"): "false",
        })
        _patch_toml(self.home / "config" / "app.toml", {
            ("", "minimum-gas-prices"): s(f"{self.min_gas_price_stake}{BOND_DENOM},"
                                          f"{self.min_gas_price_stake}uatom"),
            ("api", "enable"): "true",
            ("api", "address"): s(f"tcp://127.0.0.1:{self.api_port}"),
            ("grpc", "enable"): "true",
            ("grpc", "address"): s(f"127.0.0.1:{self.grpc_port}"),
        })


def _coin(amount: int, denom: str) -> Coin:
    if amount <= 0:
        raise ValueError(f"amount must be positive, got {amount}")
    return Coin(amount=str(amount), denom=denom)


def _grpc_error(exc: grpc.RpcError, chain: str) -> ChainError:
    """RpcUnavailable for a down or slow node (retryable), else ChainError, with the details."""
    code = exc.code() if isinstance(exc, grpc.Call) else None
    retryable = code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    text = f"gRPC {code}: {exc.details() if isinstance(exc, grpc.Call) else exc}"
    return RpcUnavailable(text, chain=chain) if retryable else ChainError(text, chain=chain)


def _pack(msg: Message) -> ProtoAny:
    packed = ProtoAny()
    packed.Pack(msg, type_url_prefix="/")
    return packed


class CosmosWallet:
    """A devnet account of one secp256k1 key that signs (SIGN_MODE_DIRECT) and broadcasts bank
    and authz transactions, each waited for until included. Fees are paid in stake at the node's
    minimum gas price. Not thread-safe (one transaction at a time per wallet).
    SECURITY: devnet only; the key lives in memory.

    Args:
        node: the node to talk to (gRPC); it must be started before the first transaction.
        secret: 32-byte secp256k1 private key; None draws a random one.
        timeout_s: bound on waiting for a transaction's inclusion (seconds).
    """

    def __init__(self, node: SimdNode, secret: bytes | None = None, *, timeout_s: float = 20.0
                 ) -> None:
        self.node = node
        self._key = PrivateKey(secret if secret is not None else secrets.token_bytes(32))
        self.pubkey: bytes = self._key.public_key.public_key_bytes  # 33-byte compressed
        self.address = str(Address(self._key.public_key, BECH32_PREFIX))
        self.timeout_s = timeout_s
        self._client: LedgerClient | None = None

    @staticmethod
    def address_of(secret: bytes) -> str:
        """The account address of `secret`: bech32 ``"cosmos"`` of
        ``ripemd160(sha256(pubkey33))`` (ADR-028 legacy secp256k1 address, 20 bytes)."""
        return str(Address(PrivateKey(secret).public_key, BECH32_PREFIX))

    @property
    def client(self) -> LedgerClient:
        """cosmpy client of the node's gRPC endpoint (created on first use)."""
        if self._client is None:
            self._client = LedgerClient(NetworkConfig(
                chain_id=self.node.chain_id, url=f"grpc+{self.node.grpc_url}",
                fee_minimum_gas_price=0,  # unused: fees are computed by `min_fee_stake`
                fee_denomination=BOND_DENOM, staking_denomination=BOND_DENOM))
        return self._client

    def balance(self, denom: str = BOND_DENOM) -> int:
        """This account's balance of `denom` in base units (gRPC bank Balance)."""
        try:
            return int(self.client.query_bank_balance(Address(self.address), denom))
        except grpc.RpcError as exc:
            raise _grpc_error(exc, self.node.chain) from exc

    def send(self, to_address: str, amount: int, denom: str = BOND_DENOM, memo: str = "", *,
             gas_limit: int = DEFAULT_GAS_LIMIT) -> str:
        """Pay `amount` base units of `denom` to `to_address` (bank MsgSend) and wait.

        Returns:
            The tx hash, lowercase hex (32 bytes, sha256 of the tx bytes).

        Raises:
            ChainError: CheckTx refused it (message has the code and log).
            SubmissionReverted: it was included with a non-zero result code.
        """
        msg = MsgSend(from_address=self.address, to_address=to_address,
                      amount=[_coin(amount, denom)])
        return self._submit([msg], memo, gas_limit)

    def send_multi(self, outputs: Sequence[tuple[str, int, str]], memo: str = "", *,
                   gas_limit: int = DEFAULT_GAS_LIMIT) -> str:
        """Pay many ``(to_address, amount, denom)`` in one bank MsgMultiSend (one input: this
        account, v0.50 allows only one) and wait. Returns and raises as `send`."""
        totals: dict[str, int] = {}
        for _, amount, denom in outputs:
            totals[denom] = totals.get(denom, 0) + amount
        msg = MsgMultiSend(
            inputs=[Input(address=self.address,
                          coins=[_coin(totals[d], d) for d in sorted(totals)])],
            outputs=[Output(address=to, coins=[_coin(amount, denom)])
                     for to, amount, denom in outputs])
        return self._submit([msg], memo, gas_limit)

    def grant_send(self, grantee: str, *, gas_limit: int = DEFAULT_GAS_LIMIT) -> str:
        """Let `grantee` send from this account: authz MsgGrant of a GenericAuthorization for
        ``/cosmos.bank.v1beta1.MsgSend``, no expiration. Returns and raises as `send`."""
        grant = Grant(authorization=_pack(GenericAuthorization(msg=_MSG_SEND_URL)))
        return self._submit([MsgGrant(granter=self.address, grantee=grantee, grant=grant)], "",
                            gas_limit)

    def exec_send(self, granter: str, to_address: str, amount: int, denom: str = BOND_DENOM,
                  memo: str = "", *, gas_limit: int = DEFAULT_GAS_LIMIT) -> str:
        """As grantee, pay `amount` of `denom` from `granter` to `to_address`: an authz MsgExec
        wrapping a MsgSend (needs `granter`'s `grant_send` to this address). This account pays
        the fee. Returns and raises as `send`."""
        inner = MsgSend(from_address=granter, to_address=to_address,
                        amount=[_coin(amount, denom)])
        return self._submit([MsgExec(grantee=self.address, msgs=[_pack(inner)])], memo,
                            gas_limit)

    def send_failing(self, to_address: str, denom: str = BOND_DENOM, memo: str = "", *,
                     gas_limit: int = DEFAULT_GAS_LIMIT) -> str:
        """Broadcast a MsgSend of one base unit more than this account holds of `denom`, with
        enough gas and fee to be included: it passes CheckTx (v0.50 runs no message handler
        there) and fails in FinalizeBlock with code 5 (sdk ErrInsufficientFunds); the fee and
        the sequence are still spent. Returns the lowercase hex tx hash; raises ChainError if
        CheckTx refused it or it succeeded (the balance changed underneath)."""
        msg = MsgSend(from_address=self.address, to_address=to_address,
                      amount=[_coin(self.balance(denom) + 1, denom)])
        return self._submit([msg], memo, gas_limit, expect_failure=True)

    def wait_tx(self, tx_hash: str, timeout_s: float | None = None) -> TxResponse:
        """Poll gRPC GetTx until `tx_hash` (hex, any case) is in a block, at most `timeout_s`
        seconds (default: the wallet's `timeout_s`). Raises ChainError on timeout."""
        try:
            return self.client.wait_for_query_tx(
                tx_hash.upper(), timeout=timedelta(seconds=timeout_s or self.timeout_s),
                poll_period=timedelta(milliseconds=100))
        except QueryTimeoutError as exc:
            raise ChainError(f"tx {tx_hash} not included", chain=self.node.chain) from exc
        except grpc.RpcError as exc:
            raise _grpc_error(exc, self.node.chain) from exc

    def _submit(self, msgs: Sequence[Message], memo: str, gas_limit: int, *,
                expect_failure: bool = False) -> str:
        chain = self.node.chain
        try:
            account = self.client.query_account(Address(self.address))
            fee = min_fee_stake(gas_limit, self.node.min_gas_price_stake)
            tx = Transaction()
            for msg in msgs:
                tx.add_message(msg)
            tx.seal(SigningCfg.direct(self._key.public_key, account.sequence),
                    fee=TxFee(amount=f"{fee}{BOND_DENOM}" if fee else None, gas_limit=gas_limit),
                    memo=memo)
            tx.sign(self._key, self.node.chain_id, account.number, deterministic=True)
            tx_hash = str(self.client.broadcast_tx(tx.complete()).tx_hash).lower()
        except BroadcastError as exc:
            raise ChainError(f"simd refused the tx: {exc}", chain=chain) from exc
        except grpc.RpcError as exc:
            raise _grpc_error(exc, chain) from exc
        result = self.wait_tx(tx_hash)
        if expect_failure and result.code == 0:
            raise ChainError(f"tx {tx_hash} was meant to fail but succeeded", chain=chain)
        if not expect_failure and result.code != 0:
            raise SubmissionReverted(f"tx {tx_hash} code {result.code}: {result.raw_log}",
                                     chain=chain)
        return tx_hash
