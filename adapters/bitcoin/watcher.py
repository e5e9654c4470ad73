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
- an output paying the bare vault address carries no recipient: reported, not credited;
- an output paying a registered mint intent's HTLC script (`adapters.bitcoin.intents`) is
  credited to the intent (recipient = intent id, sender marked ``htlc:``;
  `htlc.mint_intent`) unless it is dust or `intent_reason` refuses it (the safety margin).
Reported outputs come back as `LockEvent`s with ``uncredited`` set and a zero recipient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from bitcoin.core import CBlock, b2lx

from adapters.base import LockEvent
from adapters.bitcoin.scripts import outpoint_nonce
from htlc.mint_intent import HTLC_SENDER_PREFIX, MintIntent

if TYPE_CHECKING:
    from adapters.bitcoin.adapter import DepositRegistry
    from adapters.bitcoin.intents import IntentRegistry
    from adapters.bitcoin.scripts import Vault

TOKEN = "btc"
NO_RECIPIENT = bytes(32)
DUST = "dust"
BARE_VAULT = "no_recipient_commitment"
COINBASE = "coinbase"


def deposits_in_block(
    raw: bytes, *, height: int, block_hash: str, chain: str, vault: Vault,
    registry: DepositRegistry, min_deposit_sats: int,
    intents: IntentRegistry | None = None,
    intent_reason: Callable[[MintIntent], str | None] | None = None,
) -> tuple[list[LockEvent], str]:
    """Deposit events in one block, in transaction and output order.

    Args:
        raw: the serialized block (``getblock <hash> 0``).
        height, block_hash: where the block sits (display hex hash).
        chain: CAIP-2 id carried by the events.
        vault: the vault (its address is the events' ``contract``).
        registry: known deposit scripts.
        min_deposit_sats: smaller outputs are reported as dust.
        intents: known mint-intent scripts (None: no HTLC minting on this chain).
        intent_reason: why a funded intent is not credited now (None: it is).

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
        if not coinbase and _spends_custody(transaction, registry, intents):
            continue
        txid = b2lx(transaction.GetTxid())
        sender = COINBASE if coinbase else (
            f"{b2lx(transaction.vin[0].prevout.hash)}:{transaction.vin[0].prevout.n}")
        for vout, out in enumerate(transaction.vout):
            spk = bytes(out.scriptPubKey)
            account = registry.account_of(spk)
            htlc = None if intents is None or account is not None else (
                intents.htlc_of_script(spk))
            if account is None and spk != vault_spk and htlc is None:
                continue
            amount = int(out.nValue)
            reason = None
            if htlc is not None:
                account = htlc.intent.intent_id
            if coinbase:
                reason = COINBASE
            elif account is None:
                reason = BARE_VAULT
            elif amount < min_deposit_sats:
                reason = DUST
            elif htlc is not None and intent_reason is not None:
                reason = intent_reason(htlc.intent)
            events.append(LockEvent(
                chain=chain, contract=contract, nonce=outpoint_nonce(txid, vout), token=TOKEN,
                sender=sender if htlc is None else HTLC_SENDER_PREFIX + sender, amount=amount,
                recipient=NO_RECIPIENT if reason else account,  # type: ignore[arg-type]
                tx_hash=txid, log_index=vout, block_number=height, block_hash=block_hash,
                uncredited=reason))
    return events, b2lx(block.hashPrevBlock)


def _spends_custody(transaction: object, registry: DepositRegistry,
                    intents: IntentRegistry | None) -> bool:
    """Whether an input spends the vault, a deposit script or a mint-HTLC script (a sweep or
    a user's refund): Ferry's own spends, whose vault outputs are change, not deposits."""
    wit = getattr(transaction, "wit", None)
    if wit is None:
        return False
    for inwit in wit.vtxinwit:
        stack = inwit.scriptWitness.stack
        if stack and (registry.is_custody_script(bytes(stack[-1])) or (
                intents is not None and intents.is_intent_script(bytes(stack[-1])))):
            return True
    return False
