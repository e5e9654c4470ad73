"""Bitcoin: a validator-multisig vault (P2WSH m-of-n) watched and paid out through btcd's RPC.

Modules: `config` (the ``[[bitcoin]]`` table), `keys` (secp256k1 ECDSA through coincurve),
`scripts` (vault and per-account deposit scripts, addresses), `tx` (release transactions, BIP-143
sighashes, witnesses), `rpc` (btcd JSON-RPC), `adapter` (watcher and submitter), `finality`,
`errors`, `devnet` (a btcd regtest node for tests and ``ferry devnet``).
Must not import another `adapters.<chain>` package.
"""
