"""Decode one raw Bitcoin block into Ferry deposit events: pure, no network.

Owns: what counts as a deposit. Must not talk to a node or decide confirmation (the engine does,
from the adapter's finalized height).

Rules, per transaction of the block (raw bytes decoded with python-bitcoinlib, BIP-144 format):
- a transaction that spends a custody script (an input whose witness ends with the vault's or a
  registered deposit script) is Ferry's own release or consolidation: its outputs back to the
  vault are change, not deposits, and are skipped;
- the coinbase is never credited (its outputs cannot be spent for 100 blocks): reported;
- an output paying a registered account's deposit script is credited to that account, unless it
  is below ``min_deposit_sats`` (reported as dust);
- an output paying the bare vault address carries no recipient: reported, not credited.
Reported outputs come back as `LockEvent`s with ``uncredited`` set and a zero recipient.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bitcoin.core import CBlock, b2lx

from adapters.base import LockEvent
from adapters.bitcoin.scripts import outpoint_nonce

if TYPE_CHECKING:
    from adapters.bitcoin.adapter import DepositRegistry
    from adapters.bitcoin.scripts import Vault

TOKEN = "btc"
NO_RECIPIENT = bytes(32)
DUST = "dust"
BARE_VAULT = "no_recipient_commitment"
COINBASE = "coinbase"


def deposits_in_block(
    raw: bytes, *, height: int, block_hash: str, chain: str, vault: Vault,
    registry: DepositRegistry, min_deposit_sats: int,
) -> tuple[list[LockEvent], str]:
    """Deposit events in one block, in transaction and output order.

    Args:
        raw: the serialized block (``getblock <hash> 0``).
        height, block_hash: where the block sits (display hex hash).
        chain: CAIP-2 id carried by the events.
        vault: the vault (its address is the events' ``contract``).
        registry: known deposit scripts.
        min_deposit_sats: smaller outputs are reported as dust.

    Returns:
        (events, the block's parent hash in display hex).

    Raises:
        ValueError: `raw` is not a block, or its hash is not `block_hash`.
    """
    block = CBlock.deserialize(raw)
    if b2lx(block.GetHash()) != block_hash:
        raise ValueError(f"block at {height} does not hash to {block_hash}")
    vault_spk = vault.script_pubkey
    contract = vault.address
    events: list[LockEvent] = []
    for index, transaction in enumerate(block.vtx):
        coinbase = index == 0
        if not coinbase and _spends_custody(transaction, registry):
            continue
        txid = b2lx(transaction.GetTxid())
        sender = COINBASE if coinbase else (
            f"{b2lx(transaction.vin[0].prevout.hash)}:{transaction.vin[0].prevout.n}")
        for vout, out in enumerate(transaction.vout):
            spk = bytes(out.scriptPubKey)
            account = registry.account_of(spk)
            if account is None and spk != vault_spk:
                continue
            amount = int(out.nValue)
            reason = None
            if coinbase:
                reason = COINBASE
            elif account is None:
                reason = BARE_VAULT
            elif amount < min_deposit_sats:
                reason = DUST
            events.append(LockEvent(
                chain=chain, contract=contract, nonce=outpoint_nonce(txid, vout), token=TOKEN,
                sender=sender, amount=amount,
                recipient=NO_RECIPIENT if reason else account,  # type: ignore[arg-type]
                tx_hash=txid, log_index=vout, block_number=height, block_hash=block_hash,
                uncredited=reason))
    return events, b2lx(block.hashPrevBlock)


def _spends_custody(transaction: object, registry: DepositRegistry) -> bool:
    wit = getattr(transaction, "wit", None)
    if wit is None:
        return False
    for inwit in wit.vtxinwit:
        stack = inwit.scriptWitness.stack
        if stack and registry.is_custody_script(bytes(stack[-1])):
            return True
    return False
