"""The user's side of an atomic swap with a Ferry relayer (`ferry swap ...` and the demo).

Owns: talking to the relayer's swap API and acting on the user's own chains with the user's own
keys through the same HTLC drivers the relayer uses (`htlc.legs_*`): lock, redeem with the
secret, refund, and pre-sign a Bitcoin refund for the relayer to broadcast. Must not trust the
relayer: every lock the user acts on is found on chain by its exact terms (`HtlcLeg.find_lock`),
and the secret never leaves this process until the user redeems on chain.

Keys: one key file (`validators.keystore` format, `ferry keys new`): its secp256k1 key is the
user's Bitcoin key (refunds, redeems, P2WPKH wallet) and EVM account; its Ed25519 key the
user's ledger account.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from nacl.signing import SigningKey

from adapters.errors import BridgeError, ConfigError, ValidationError
from htlc.legs import LegRef, LegTerms
from htlc.timelock import BlockHeight, Instant, UnixTime
from relayer.config import FerryConfig
from relayer.quotes import SwapChain


class RelayerRefused(BridgeError):
    """The relayer answered with an error body (its code and message are kept)."""

    code = "relayer_refused"


@dataclass(frozen=True)
class SwapLegInfo:
    """One leg from the relayer's swap view (`api.swaps.LegView`), parsed."""

    chain: str
    asset: str
    amount: int
    sender: bytes
    recipient: bytes
    expiry: Instant
    htlc: dict[str, Any]

    @classmethod
    def parse(cls, view: dict[str, Any]) -> SwapLegInfo:
        kind, value = view["expiry"]["kind"], int(view["expiry"]["value"])
        expiry: Instant = BlockHeight(value) if kind == "height" else UnixTime(value)
        return cls(view["chain"], view["asset"], int(view["amount"]),
                   bytes.fromhex(view["sender"][2:]), bytes.fromhex(view["recipient"][2:]),
                   expiry, view["htlc"])

    def terms(self, hashlock: bytes) -> LegTerms:
        return LegTerms(self.chain, self.asset, self.amount, hashlock, self.expiry, self.sender,
                        self.recipient)


class SwapUser:
    """A user's swap wallet.

    Args:
        cfg: a config naming the chains' RPC endpoints (``[[chains]]``, ``[[bitcoin]]``,
            ``[ledger]``); the relayer's ``[swaps]`` section is not needed.
        relayer_url: the relayer's HTTP API.
        ed25519: the user's ledger key. secp256k1: the user's 32-byte Bitcoin/EVM key.
        btc_wallet_start: first block the user's Bitcoin wallet scans for its coins.
        http: a client to use instead of one to `relayer_url` (tests pass the app's client).
    """

    def __init__(self, cfg: FerryConfig, relayer_url: str, ed25519: SigningKey,
                 secp256k1: bytes, *, btc_wallet_start: int = 0,
                 http: httpx.Client | None = None) -> None:
        self.cfg, self._ed, self._secp = cfg, ed25519, secp256k1
        self._http = http or httpx.Client(base_url=relayer_url.rstrip("/"), timeout=30)
        self._btc_start = btc_wallet_start
        self._legs: dict[tuple[str, str], Any] = {}

    # ------------------------------------------------------------------ identities
    def identity(self, chain: str) -> bytes:
        """The user's identity on `chain`: EVM address (20 bytes), Bitcoin compressed key
        (33 bytes), ledger account (32 bytes)."""
        namespace = chain.split(":", 1)[0]
        if namespace == "eip155":
            from validators.eip712 import address_of

            return bytes.fromhex(address_of(self._secp)[2:])
        if namespace == "bip122":
            from adapters.bitcoin.keys import public_key

            return public_key(self._secp)
        return bytes(self._ed.verify_key)

    # ------------------------------------------------------------------ relayer API
    def _call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        try:
            r = self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise RelayerRefused(f"relayer unreachable: {exc}") from exc
        body = r.json()
        if r.status_code >= 400:
            err = body.get("error", {})
            raise RelayerRefused(f"{err.get('code', r.status_code)}: {err.get('message', body)}")
        return dict(body)

    def quote(self, pair: str, amount: int) -> dict[str, Any]:
        return self._call("GET", "/v1/quotes", params={"pair": pair, "amount": str(amount)})

    def start(self, pair: str, amount: int, hashlock: bytes,
              recipient: bytes | None = None) -> dict[str, Any]:
        """Agree a swap; the relayer pays `recipient` (default: the user's own identity on the
        relayer's chain)."""
        info = self._call("GET", "/v1/quotes", params={"pair": pair})["pairs"]
        if not info:
            raise ValidationError(f"the relayer offers no pair {pair}")
        user_chain, relayer_chain = info[0]["user_chain"], info[0]["relayer_chain"]
        to = recipient if recipient is not None else self.identity(relayer_chain)
        return self._call("POST", "/v1/swaps", json={
            "pair": pair, "amount": str(amount), "hashlock": "0x" + hashlock.hex(),
            "user_sender": "0x" + self.identity(user_chain).hex(),
            "user_recipient": "0x" + to.hex()})

    def status(self, swap_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/swaps/{swap_id}")

    # ------------------------------------------------------------------ chain actions
    def lock(self, swap: dict[str, Any]) -> LegRef:
        """Lock the user's leg exactly as agreed (refused if the terms are not the user's)."""
        leg = SwapLegInfo.parse(swap["initiator"])
        if leg.sender != self.identity(leg.chain):
            raise ValidationError("this swap's lock is not from this key")
        driver = self.leg(leg.chain, leg.htlc)
        return driver.broadcast_lock(driver.prepare_lock(leg.terms(_hashlock(swap))))  # type: ignore[no-any-return]

    def presign_refund(self, swap: dict[str, Any]) -> dict[str, Any]:
        """Sign the refund of the user's Bitcoin lock now (valid from its timelock) and hand it
        to the relayer, which broadcasts it then if the user is offline."""
        from htlc.bitcoin import build_refund

        leg = SwapLegInfo.parse(swap["initiator"])
        driver = self.leg(leg.chain, leg.htlc)
        ref = self._find(driver, leg, swap)
        txid, vout = ref.id.split(":")
        raw = build_refund((txid, int(vout)), ref.amount, bytes.fromhex(ref.witness_script),
                           self._secp, driver.wallet.script_pubkey, driver.fee_rate_sat_vb)
        return self._call("POST", f"/v1/swaps/{swap['id']}/refund", json={"raw_tx": "0x" + raw.hex()})

    def redeem(self, swap: dict[str, Any], secret: bytes) -> str:
        """Redeem the relayer's leg with the secret (revealing it); the tx id."""
        leg = SwapLegInfo.parse(swap["participant"])
        if leg.recipient != self.identity(leg.chain):
            raise ValidationError("the relayer's lock does not pay this key")
        driver = self.leg(leg.chain, leg.htlc)
        return str(driver.redeem(self._find(driver, leg, swap), secret))

    def refund(self, swap: dict[str, Any]) -> str:
        """Refund the user's own leg (from its timelock on); the tx id."""
        leg = SwapLegInfo.parse(swap["initiator"])
        driver = self.leg(leg.chain, leg.htlc)
        return str(driver.refund(self._find(driver, leg, swap)))

    def _find(self, driver: Any, leg: SwapLegInfo, swap: dict[str, Any]) -> LegRef:
        ref = driver.find_lock(leg.terms(_hashlock(swap)))
        if ref is None:
            raise ValidationError(f"no lock with the agreed terms on {leg.chain}")
        return ref  # type: ignore[no-any-return]

    def leg(self, chain: str, htlc: dict[str, Any]) -> Any:
        """The user's HTLC driver on `chain` (EVM: the contract the swap names)."""
        from relayer.cli.swaps import chain_timing

        key = (chain, str(htlc.get("contract", "")))
        if key in self._legs:
            return self._legs[key]
        namespace = chain.split(":", 1)[0]
        if namespace == "eip155":
            from adapters.evm.devnet import connect
            from htlc.legs_evm import EvmLeg

            evm = next((c for c in self.cfg.chains if c.caip2 == chain), None)
            if evm is None:
                raise ConfigError(f"no [[chains]] entry for {chain}")
            driver: Any = EvmLeg(connect(evm.rpc_url), htlc["contract"], "0x" + self._secp.hex(),
                                 chain_timing(SwapChain(chain=chain, htlc_address=htlc["contract"]),
                                         evm.confirmation_depth, "time"))
        elif namespace == "bip122":
            from adapters.bitcoin.adapter import BitcoinAdapter
            from htlc.btc_wallet import ScanningWallet
            from htlc.legs_bitcoin import BitcoinLeg

            btc = self.cfg.bitcoin_chain(chain)
            rpc = BitcoinAdapter(btc).rpc
            driver = BitcoinLeg(rpc, btc.network, self._secp,
                                chain_timing(SwapChain(chain=chain), btc.confirmation_depth, "height"),
                                None, btc.fee_rate_sat_vb,
                                ScanningWallet(rpc, self._secp, self._btc_start))
        else:
            from htlc.legs_ledger import LedgerLeg
            from ledger.client import LedgerClient

            driver = LedgerLeg(LedgerClient(str(self.cfg.ledger.url)), self._ed, self.cfg.network,
                               chain_timing(SwapChain(chain=chain), 1, "time"))
        self._legs[key] = driver
        return driver


def _hashlock(swap: dict[str, Any]) -> bytes:
    return bytes.fromhex(str(swap["hashlock"])[2:])
