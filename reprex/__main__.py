"""`python -m reprex` is the `reprex` command."""

from reprex.cli import main

main()
