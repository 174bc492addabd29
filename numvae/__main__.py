"""``python -m numvae``: the same as the ``numvae`` command."""
import sys

from .cli import main

sys.exit(main())
