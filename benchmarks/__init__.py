"""numvae's speed benchmarks, run by hand from the repository's root (``python -m
benchmarks.speed``); their figures are written down in docs/performance.md and the README,
never asserted in a test. Paper reproductions and quality runs live in experiments/."""
