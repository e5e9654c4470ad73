"""HTLC atomic swaps: hashlocks, timelock arithmetic, per-chain HTLC scripts and contract calls,
and the swap state machine. Not built yet: the bridge (lock -> mint, burn -> release) does not
depend on it. See the project's issues for the swap work."""
