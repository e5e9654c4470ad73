"""Run every benchmark in bench/ (``make bench``), one after another, and summarise.

Picks up every ``bench/*.py`` except this file and helpers whose name starts with ``_``, in
name order. Each runs as its own process (its output streams through), bounded by
``--timeout-s`` (SIGTERM, which each benchmark turns into stopping the nodes it started, then
SIGKILL after a grace period). A failing benchmark does not stop the others; the exit status
is 1 if any failed, timed out or could not start.

Run: .venv/bin/python bench/run_all.py [--timeout-s S] [name ...]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
GRACE_S = 20.0
# Benchmarks whose own bound exceeds the default --timeout-s (the larger of the two applies).
LONGER_S = {"replicas": 900.0}  # two whole devnets, 5,000 locks through each


def discover() -> list[Path]:
    return sorted(p for p in BENCH.glob("*.py")
                  if p.name != Path(__file__).name and not p.name.startswith("_"))


def run_one(script: Path, timeout_s: float) -> tuple[str, float]:
    """Run `script`; returns (outcome, seconds). Outcome is PASS, FAIL (exit n) or TIMEOUT."""
    start = time.monotonic()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        proc = subprocess.Popen([sys.executable, str(script)], cwd=REPO, env=env,
                                stdin=subprocess.DEVNULL)
    except OSError as exc:
        print(f"cannot start {script.name}: {exc}", flush=True)
        return "FAIL (not started)", 0.0
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the benchmark stops its own nodes on SIGTERM
        try:
            proc.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return "TIMEOUT", time.monotonic() - start
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(timeout=GRACE_S)
        raise
    return ("PASS" if code == 0 else f"FAIL (exit {code})"), time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--timeout-s", type=float, default=240.0,
                        help="wall-clock bound per benchmark (default 240)")
    parser.add_argument("names", nargs="*", help="run only these (e.g. relayer_rss)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop the running one cleanly
    scripts = discover()
    if args.names:
        wanted = {n.removesuffix(".py") for n in args.names}
        unknown = wanted - {s.stem for s in scripts}
        if unknown:
            print(f"no such benchmark: {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        scripts = [s for s in scripts if s.stem in wanted]
    results = []
    for script in scripts:
        print(f"\n=== {script.relative_to(REPO)} ===", flush=True)
        outcome, seconds = run_one(script, max(args.timeout_s, LONGER_S.get(script.stem, 0.0)))
        print(f"=== {script.name}: {outcome} in {seconds:.0f}s ===", flush=True)
        results.append((script.name, outcome, seconds))
    print("\nsummary:")
    width = max((len(n) for n, _, _ in results), default=10)
    for name, outcome, seconds in results:
        print(f"  {name.ljust(width)}  {outcome:<16}  {seconds:6.0f}s")
    failed = [n for n, outcome, _ in results if outcome != "PASS"]
    print(f"{len(results) - len(failed)} of {len(results)} passed" +
          (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
