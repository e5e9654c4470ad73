"""Ferry's native ledger: accounts (Ed25519 public keys), wrapped assets, quorum-certified mints
of lock events, user-signed burns and transfers, validator-set rotation, a hash-chained journal
and supply invariants.

Modules: `service` (the `Ledger`), `minting` (mint rules), `transactions` (signed tx format),
`journal` (hash chain + replay), `types` (values shared with the HTTP API and `client`),
`models`/`store`/`db` (SQLModel tables, Core SQL, engines and Alembic), `config`, `errors`,
`fields` (untrusted scalar parsers), `testing` (test and devnet helpers).
Must not import the relayer, `api` or any chain adapter.
"""
