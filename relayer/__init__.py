"""The chain-neutral relayer engine: store, transfer machine, scheduler jobs, metrics, config, CLI.

The core modules (store, machine, engine, inbox, metrics) talk to chains through
`adapters.base.ChainAdapter` only and never import web3 or any `adapters.<chain>` package;
`relayer.cli` is the composition root that wires concrete adapters in.
"""
