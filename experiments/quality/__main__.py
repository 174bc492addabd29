import sys

from experiments.quality.quality import main

sys.exit(main())
