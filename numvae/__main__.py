"""``python -m numvae``: the same as the ``numvae`` command."""
import sys

from ._entry import main

sys.exit(main())
