"""Chain adapters: the chain-neutral protocol (`adapters.base`), the error tree (`adapters.errors`)
and one sub-package per chain family. Adapters never import each other or the relayer."""
