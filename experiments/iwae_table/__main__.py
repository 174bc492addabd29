import sys

from experiments.iwae_table.iwae_table import main

sys.exit(main())
