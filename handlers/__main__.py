"""``python -m handlers``: the ``cdc-router`` command line."""

from handlers.cli import main

main()
