"""``python -m infovae ...`` is the ``infovae`` command."""

from infovae.cli import main

main()
