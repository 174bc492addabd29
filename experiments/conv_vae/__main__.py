import sys

from experiments.conv_vae.conv_vae import main

sys.exit(main())
