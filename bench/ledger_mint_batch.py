"""Benchmark: the ledger's own mint rate, without HTTP: `Ledger.mint_batch` on a SQLite file,
2,000 mints each carrying a 3-of-5 quorum certificate, in batches of 500.

This is the ceiling the end-to-end lock -> mint figure (`lock_to_mint.py`) can approach.
Run: `.venv/bin/python bench/ledger_mint_batch.py`.
"""

from __future__ import annotations

import tempfile
import time

from nacl.signing import SigningKey

from ledger.testing import open_harness
from ledger.types import MintStatus

MINTS = 2_000


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        h = open_harness(f"sqlite:///{tmp}/bench.sqlite")
        users = [bytes(SigningKey.generate().verify_key) for _ in range(100)]
        requests = [h.certify(h.lock(n, 10**15 + n, users[n % 100])) for n in range(1, MINTS + 1)]
        start = time.perf_counter()
        results = []
        for i in range(0, len(requests), 500):
            results += h.ledger.mint_batch(requests[i : i + 500])
        elapsed = time.perf_counter() - start
        ok = all(r.status is MintStatus.MINTED for r in results)
        h.ledger.check_invariants()
        h.ledger.close()
    print("ledger mint_batch, SQLite, 3 Ed25519 signatures per mint, batches of 500")
    print(f"  mints        {MINTS}")
    print(f"  elapsed      {elapsed:.3f} s")
    print(f"  rate         {MINTS / elapsed:,.0f} mints/s")
    print(f"  all minted   {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
