"""EVM chain family (Ethereum, BSC and other EIP-155 chains): adapter, finality, and the local
anvil devnet runner. Reorg fork finding is chain-neutral and lives in `adapters.reorg`.

Owns: everything that speaks web3/JSON-RPC to EVM chains and the `Bridge` contract.
Must not import other `adapters.<chain>` packages; the core reaches it only via `ChainAdapter`.
"""
