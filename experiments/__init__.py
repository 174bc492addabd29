"""Paper reproductions and quality runs, one folder each, run from the repository's root
(``python -m experiments.iwae_table``); each writes its results (JSON, Markdown, PNG) into
its own ``results/`` folder."""
