"""``python -m hgpipe`` is the ``hgpipe`` command."""
from hgpipe.cli import main

main()
