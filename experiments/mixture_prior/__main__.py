import sys

from experiments.mixture_prior.mixture_prior import main

sys.exit(main())
