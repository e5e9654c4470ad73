"""A local Bitcoin regtest devnet for demos and tests: a btcd process runner and a faucet.

Owns: starting and stopping btcd (``--regtest``) on free loopback ports in its own datadir,
readiness polling, and `Faucet`, a one-key P2WPKH wallet that mines regtest coins and pays
scriptPubKeys with locally signed transactions. Must not be used against a network with real
value (regtest only, the faucet key lives in memory), and must not log the faucet key or the
RPC password.

Policy of the node: ``--norelaypriority --limitfreerelay=0`` make btcd refuse every
transaction under its min relay fee, as Bitcoin Core does (btcd otherwise relays free
transactions that spend old coins, which would hide fee bugs).
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Self

from bitcoin import segwit_addr
from bitcoin.core import (
    CBlock,
    CMutableTransaction,
    COutPoint,
    CTxIn,
    CTxInWitness,
    CTxOut,
    CTxWitness,
    Hash160,
    b2lx,
    lx,
)
from bitcoin.core.script import (
    OP_0,
    OP_CHECKSIG,
    OP_DUP,
    OP_EQUALVERIFY,
    OP_HASH160,
    SIGHASH_ALL,
    SIGVERSION_WITNESS_V0,
    CScript,
    CScriptWitness,
    SignatureHash,
)

from adapters.bitcoin.config import GENESIS
from adapters.bitcoin.errors import InsufficientFunds
from adapters.bitcoin.keys import public_key, sign_digest
from adapters.bitcoin.rpc import BtcRpc
from adapters.devnode import NodeProcess, free_port, tool_binary
from adapters.errors import ChainError, RpcUnavailable, WrongChain

REGTEST_CHAIN = f"bip122:{GENESIS['regtest'][:32]}"
COINBASE_MATURITY = 100  # blocks (consensus; regtest too)
_HRP = {"mainnet": "bc", "testnet": "tb", "signet": "tb", "regtest": "bcrt"}
_REPO_ROOT = Path(__file__).resolve().parents[2]
_DEFAULT_BTCD = _REPO_ROOT / ".ferry" / "tools" / "bin" / "btcd"
_CHANGE_DUST_SATS = 1_000  # smaller change is left to the fee
_SEQUENCE_RBF = 0xFFFFFFFD  # BIP-125 opt-in
_SEQUENCE_FINAL = 0xFFFFFFFF


def btcd_binary() -> Path:
    """Path of the btcd binary: env ``FERRY_BTCD``, else ``<repo>/.ferry/tools/bin/btcd``.

    Raises:
        ConfigError: the binary does not exist or is not executable.
    """
    return tool_binary("btcd", "FERRY_BTCD", _DEFAULT_BTCD,
                       "run `make install` (builds it with go)")


def p2wpkh_script(pubkey: bytes) -> bytes:
    """The P2WPKH scriptPubKey ``OP_0 <HASH160(pubkey)>`` (BIP-141 v0 keyhash) of a 33-byte
    compressed `pubkey` (what `htlc.legs_bitcoin.CoinWallet.script_pubkey` pays)."""
    return b"\x00\x14" + bytes(Hash160(pubkey))


def address_p2wpkh(pubkey: bytes, network: str) -> str:
    """The P2WPKH bech32 address (BIP-173, witness v0) of a 33-byte compressed `pubkey`.

    Args:
        network: mainnet, testnet, signet or regtest (hrp bc / tb / tb / bcrt).
    """
    encoded = segwit_addr.encode(_HRP[network], 0, Hash160(pubkey))
    if encoded is None:
        raise ValueError("cannot encode address")
    return str(encoded)


class BtcdNode:
    """One btcd regtest process on ``127.0.0.1:<free ports>`` with its own datadir and log.

    Use as a context manager (starts, waits ready, always stops) or call `start`,
    `wait_ready` and `stop` yourself. `workdir` belongs to the caller (never removed here).

    Args:
        workdir: directory for the config file, datadir, btcd's own logs and ``btcd.log``.
        mining_address: ``--miningaddr``: the bech32 address every `BtcRpc.generate` block pays.
        rpc_user, rpc_password: RPC credentials (written to the config file, not argv);
            the password defaults to a random one.
        min_relay_fee_btc_kvb: ``--minrelaytxfee`` in BTC/kvB (btcd's default is 0.00001,
            i.e. 1 sat/vB); a Decimal or its string, never a float.
        binary: btcd path; None uses `btcd_binary`.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        mining_address: str,
        rpc_user: str = "ferry",
        rpc_password: str | None = None,
        min_relay_fee_btc_kvb: Decimal | str | None = None,
        binary: Path | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.mining_address = mining_address
        self.rpc_user = rpc_user
        self.rpc_password = rpc_password or secrets.token_hex(16)
        self.min_relay_fee_btc_kvb = (
            None if min_relay_fee_btc_kvb is None else Decimal(min_relay_fee_btc_kvb)
        )
        self.binary = binary
        self.rpc_port = 0
        self.p2p_port = 0
        self.log_path = self.workdir / "btcd.log"
        self._proc = NodeProcess(self.log_path)

    @property
    def chain(self) -> str:
        """CAIP-2 id of regtest (``"bip122:0f9188f13cb7b2c71f2a335e3a4fc328"``)."""
        return REGTEST_CHAIN

    @property
    def pid(self) -> int | None:
        """OS process id while running, else None."""
        return self._proc.pid

    @property
    def rpc_url(self) -> str:
        """HTTP JSON-RPC endpoint (valid after `start`)."""
        return f"http://127.0.0.1:{self.rpc_port}"

    def rpc(self, *, timeout_s: float = 10.0, read_attempts: int = 4) -> BtcRpc:
        """A new `BtcRpc` client of this node (the caller closes it)."""
        return BtcRpc(self.rpc_url, self.rpc_user, self.rpc_password, chain=self.chain,
                      timeout_s=timeout_s, read_attempts=read_attempts)

    def start(self) -> Self:
        """Spawn btcd; returns immediately (call `wait_ready`). Raises ConfigError, ChainError."""
        if self._proc.started:
            raise ChainError("btcd already started", chain=self.chain)
        binary = self.binary or btcd_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.rpc_port, self.p2p_port = free_port(), free_port()
        conf = self.workdir / "btcd.conf"
        conf.write_text(f"rpcuser={self.rpc_user}\nrpcpass={self.rpc_password}\n")
        conf.chmod(0o600)
        cmd = [
            str(binary), f"--configfile={conf}", "--regtest", "--notls", "--txindex",
            f"--datadir={self.workdir / 'data'}", f"--logdir={self.workdir / 'logs'}",
            f"--rpclisten=127.0.0.1:{self.rpc_port}", f"--listen=127.0.0.1:{self.p2p_port}",
            f"--miningaddr={self.mining_address}", "--nobanning", "--nodnsseed", "--noonion",
            "--norelaypriority", "--limitfreerelay=0",
        ]
        if self.min_relay_fee_btc_kvb is not None:
            cmd.append(f"--minrelaytxfee={self.min_relay_fee_btc_kvb:f}")
        self._proc.spawn(cmd, self.workdir)
        return self

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Poll ``getblockhash 0`` until it answers the regtest genesis, at most `timeout_s` s.

        Raises:
            ChainError: the process exited or did not answer in time (message has the log tail).
            WrongChain: something answered on the port with another genesis block.
            ConfigError: the node refused the credentials.
        """
        deadline = time.monotonic() + timeout_s
        with self.rpc(timeout_s=1.0, read_attempts=1) as rpc:
            while True:
                code = self._proc.exit_code()
                if code is not None:
                    raise ChainError(f"btcd exited (code {code}); log:\n{self.log_tail()}",
                                     chain=self.chain)
                try:
                    genesis: str | None = rpc.genesis_hash()
                except RpcUnavailable:
                    genesis = None  # not listening yet
                if genesis is not None:
                    if genesis != GENESIS["regtest"]:
                        raise WrongChain(f"port {self.rpc_port} serves genesis {genesis}",
                                         chain=self.chain)
                    return
                if time.monotonic() >= deadline:
                    raise ChainError(f"btcd not ready after {timeout_s}s; log:\n{self.log_tail()}",
                                     chain=self.chain)
                time.sleep(0.05)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate the process (SIGTERM: btcd flushes its database; kill after `timeout_s`).
        Idempotent."""
        self._proc.stop(timeout_s)

    def log_tail(self, lines: int = 40) -> str:
        """The last `lines` lines of btcd's output (``<workdir>/btcd.log``)."""
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


@dataclass(frozen=True)
class Coin:
    """An output the faucet can spend: ``txid:vout`` (display hex) worth `value_sats`."""

    txid: str
    vout: int
    value_sats: int
    coinbase: bool


class Faucet:
    """A regtest wallet of one key, paying to and from its P2WPKH scriptPubKey.

    It knows only the coins it saw created: coinbase outputs of blocks it mined (`mine`,
    `mature`) and outputs of its own transactions paying itself (change). Before spending a
    coin it asks the node (``gettxout``) whether the coin still exists and is mature.
    The node's ``--miningaddr`` must be `address`. Not thread-safe. SECURITY: regtest only.

    Args:
        rpc: client of the node.
        secret: 32-byte secp256k1 private key.
        network: address network (regtest unless pointed at another test network).
    """

    def __init__(self, rpc: BtcRpc, secret: bytes, *, network: str = "regtest") -> None:
        self.rpc = rpc
        self._secret = secret
        self.pubkey = public_key(secret)
        self.script_pubkey = bytes(CScript([OP_0, Hash160(self.pubkey)]))
        self.address = address_p2wpkh(self.pubkey, network)
        self._script_code = CScript(
            [OP_DUP, OP_HASH160, Hash160(self.pubkey), OP_EQUALVERIFY, OP_CHECKSIG]
        )  # BIP-143 scriptCode of P2WPKH
        self._coins: dict[tuple[str, int], Coin] = {}
        self._spent: set[tuple[str, int]] = set()
        self._inputs: dict[str, list[tuple[str, int]]] = {}  # our txid -> outpoints it spends

    def mine(self, blocks: int) -> list[str]:
        """Mine `blocks` blocks (to the node's ``--miningaddr``) and record their coinbase
        outputs paying this faucet. Returns the block hashes, oldest first."""
        hashes = self.rpc.generate(blocks)
        for block_hash in hashes:
            coinbase = CBlock.deserialize(self.rpc.raw_block(block_hash)).vtx[0]
            self._record(b2lx(coinbase.GetTxid()), coinbase.vout, coinbase=True)
        return hashes

    def mature(self, blocks: int = COINBASE_MATURITY + 1) -> list[str]:
        """Mine `blocks` blocks; from a fresh chain, the coinbases of heights 1 to
        ``blocks - 99`` are then spendable (maturity: 100 blocks, counted to the next block)."""
        return self.mine(blocks)

    def coins(self) -> list[Coin]:
        """Coins spendable now (unspent by this faucet, still on chain or in the mempool,
        coinbases mature), largest first."""
        return list(self._spendable())

    def _spendable(self) -> Iterator[Coin]:
        """`coins`, lazily: one ``gettxout`` per coin, only as far as the caller reads."""
        for outpoint, coin in sorted(self._coins.items(),
                                     key=lambda kv: (-kv[1].value_sats, kv[0])):
            if outpoint in self._spent:
                continue
            seen = self.rpc.tx_out(coin.txid, coin.vout, include_mempool=True)
            if seen is None:
                continue  # reorged away, or change of a replaced tx
            if coin.coinbase and seen["confirmations"] < COINBASE_MATURITY:
                continue
            yield coin

    def balance_sats(self) -> int:
        """Sum of `coins`."""
        return sum(c.value_sats for c in self.coins())

    def pay(
        self, script_pubkey: bytes, amount_sats: int, *, fee_rate_sat_vb: int = 2,
        rbf: bool = True, spend: Sequence[tuple[str, int]] | None = None,
    ) -> str:
        """Pay `amount_sats` to `script_pubkey`, change back to the faucet, and broadcast.

        Args:
            script_pubkey: the output script (e.g. a P2WSH ``OP_0 <32 bytes>``).
            amount_sats: value of the payment output.
            fee_rate_sat_vb: fee = vsize (upper bound, 72-byte signatures) * this rate.
            rbf: signal BIP-125 replaceability (nSequence 0xfffffffd) on every input.
            spend: exact outpoints ``(txid, vout)`` of faucet coins to spend, even ones an
                earlier faucet transaction spent (to build a conflicting replacement);
                None selects unspent coins, largest first.

        Returns:
            The txid (display hex).

        Raises:
            InsufficientFunds: the coins do not cover amount + fee.
            FeeTooLow, TxRejected: the node refused the transaction.
        """
        return self.pay_many([(script_pubkey, amount_sats)], fee_rate_sat_vb=fee_rate_sat_vb,
                             rbf=rbf, spend=spend)

    def pay_many(
        self, outputs: Sequence[tuple[bytes, int]], *, fee_rate_sat_vb: int = 2,
        rbf: bool = True, spend: Sequence[tuple[str, int]] | None = None,
    ) -> str:
        """Like `pay` with many ``(script_pubkey, amount_sats)`` outputs, in order, in one tx
        (the change output, if any, comes last)."""
        if not outputs or any(amount <= 0 for _, amount in outputs) or fee_rate_sat_vb < 0:
            raise ValueError("need outputs with positive amounts and a fee rate >= 0")
        target = sum(amount for _, amount in outputs)
        if spend is not None:
            unknown = [op for op in spend if op not in self._coins]
            if unknown:
                raise ValueError(f"not faucet coins: {unknown}")
            chosen = [self._coins[op] for op in spend]
            change, fee = self._change(chosen, outputs, fee_rate_sat_vb)
            if change < 0:
                raise InsufficientFunds(f"coins {list(spend)} do not cover {target} + {fee} sats")
        else:
            chosen = []
            for coin in self._spendable():
                chosen.append(coin)
                change, fee = self._change(chosen, outputs, fee_rate_sat_vb)
                if change >= 0:
                    break
            else:
                raise InsufficientFunds(f"faucet cannot cover {target} sats plus fee")
        tx = self._build(chosen, outputs, change, rbf)
        self._sign(tx, chosen)
        txid = self.rpc.send_raw_transaction(tx.serialize())
        self._inputs[txid] = [(c.txid, c.vout) for c in chosen]
        self._spent.update(self._inputs[txid])
        self._record(txid, tx.vout, coinbase=False)
        return txid

    def replace(
        self, txid: str, script_pubkey: bytes, amount_sats: int, fee_rate_sat_vb: int
    ) -> str:
        """Broadcast a BIP-125 replacement of faucet tx `txid`: same inputs, a new payment.

        The fee rate must beat the original's, and the fee must exceed the original's by the
        min relay fee of the replacement (else `FeeTooLow`).

        Returns:
            The replacement's txid (display hex).
        """
        if txid not in self._inputs:
            raise ValueError(f"{txid} is not a faucet transaction")
        new_txid = self.pay(script_pubkey, amount_sats, fee_rate_sat_vb=fee_rate_sat_vb,
                            rbf=True, spend=self._inputs[txid])
        if new_txid != txid:  # an identical "replacement" is the same tx, already known
            for outpoint in [op for op in self._coins if op[0] == txid]:
                del self._coins[outpoint]  # the replaced tx's change is gone
        return new_txid

    # ------------------------------------------------------------------ internals

    def _record(self, txid: str, vout: Sequence[CTxOut], *, coinbase: bool) -> None:
        for index, out in enumerate(vout):
            if bytes(out.scriptPubKey) == self.script_pubkey:
                self._coins[(txid, index)] = Coin(txid, index, int(out.nValue), coinbase)

    def _change(
        self, coins: Sequence[Coin], outputs: Sequence[tuple[bytes, int]], rate: int
    ) -> tuple[int, int]:
        """(change, fee) in sats for spending `coins`; change < 0 means not enough, and change
        below the dust limit is 0 (left to the fee)."""
        total_in = sum(c.value_sats for c in coins)
        target = sum(amount for _, amount in outputs)
        fee = self._vsize(coins, outputs, with_change=True) * rate
        change = total_in - target - fee
        if change >= _CHANGE_DUST_SATS:
            return change, fee
        fee = self._vsize(coins, outputs, with_change=False) * rate
        if total_in - target - fee < 0:
            return total_in - target - fee, fee
        return 0, total_in - target

    def _vsize(self, coins: Sequence[Coin], outputs: Sequence[tuple[bytes, int]],
               *, with_change: bool) -> int:
        """Virtual size (BIP-141, weight / 4 rounded up) with 72-byte placeholder signatures,
        the largest a low-S DER signature plus sighash byte can be."""
        tx = self._build(coins, outputs, _CHANGE_DUST_SATS if with_change else 0, True)
        tx.wit = CTxWitness([CTxInWitness(CScriptWitness([b"\x00" * 72, self.pubkey]))
                             for _ in coins])
        return math.ceil(tx.calc_weight() / 4)

    def _build(self, coins: Sequence[Coin], outputs: Sequence[tuple[bytes, int]],
               change_sats: int, rbf: bool) -> CMutableTransaction:
        sequence = _SEQUENCE_RBF if rbf else _SEQUENCE_FINAL
        vin = [CTxIn(COutPoint(lx(c.txid), c.vout), nSequence=sequence) for c in coins]
        vout = [CTxOut(amount, CScript(spk)) for spk, amount in outputs]
        if change_sats > 0:
            vout.append(CTxOut(change_sats, CScript(self.script_pubkey)))
        return CMutableTransaction(vin, vout, nLockTime=0, nVersion=2)

    def _sign(self, tx: CMutableTransaction, coins: Sequence[Coin]) -> None:
        """BIP-143 SIGHASH_ALL signatures; witness ``[sig || 0x01, pubkey]`` per input."""
        witnesses = []
        for index, coin in enumerate(coins):
            digest = SignatureHash(self._script_code, tx, index, SIGHASH_ALL,
                                   amount=coin.value_sats, sigversion=SIGVERSION_WITNESS_V0)
            sig = sign_digest(self._secret, digest) + bytes([SIGHASH_ALL])
            witnesses.append(CTxInWitness(CScriptWitness([sig, self.pubkey])))
        tx.wit = CTxWitness(witnesses)
