"""EVM chain family (Ethereum, BSC and other EIP-155 chains): adapter, watcher, finality,
and the local anvil devnet runner.

Owns: everything that speaks web3/JSON-RPC to EVM chains and the `Bridge` contract.
Must not import other `adapters.<chain>` packages; the core reaches it only via `ChainAdapter`.
"""
