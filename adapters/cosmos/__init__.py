"""Cosmos SDK chains ("cosmos:<chain-id>"): `devnet` runs a simd v0.50.3 node for tests."""
