"""`python -m relayer.cli` is the `ferry` command (used to start child processes)."""

from relayer.cli import main

main()
