"""``python -m numvae``: the same as the ``numvae`` command."""
import sys

from numvae.commands.entry import main

sys.exit(main())
