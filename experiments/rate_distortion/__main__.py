import sys

from experiments.rate_distortion.rate_distortion import main

sys.exit(main())
