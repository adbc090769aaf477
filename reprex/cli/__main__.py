"""`python -m reprex.cli` is the `reprex` command."""

from reprex.cli import main

main()
