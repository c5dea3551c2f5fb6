"""``python -m gauda``: the command line, also what ``torchrun -m gauda train ...`` runs on each process."""

from gauda.cli import main

main()
