"""HTLC atomic swaps: hashlocks, timelock arithmetic, per-chain HTLC scripts and contract calls,
and the swap state machine. The bridge (lock -> mint, burn -> release) does not depend on it.

Modules:
    errors     the HtlcError branch of Ferry's error tree.
    hashlock   32-byte secrets and their SHA-256 hashlocks (every chain).
    timelock   BlockHeight / UnixTime (never mixed), chain timing, the legs' safety margin.
    machine    SwapStatus, TRANSITIONS, TERMINAL and the relayer's `next_action` (pure).
    bitcoin    the P2WSH HTLC script (BIP-199 shape, BIP-65 CLTV), its redeem and refund
               spends, and finding a secret in a mempool or block transaction.
    evm        calls of the HTLC contract on EVM chains (the only module importing web3).

The chain-neutral modules (errors, hashlock, timelock, machine) import no chain library.
"""
