"""`python -m affecttrack` runs the command-line interface."""

from affecttrack.cli import main

main()
