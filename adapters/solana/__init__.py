"""Solana adapter: SPL Token multisig escrow, deposits with memos, durable-nonce releases."""
