"""Speed benchmarks, one module per section; ``python -m benchmarks.speed`` is the driver
(see __main__.py), and conv_layers, conv_vae and iwae_training have their own command line
(``python -m benchmarks.speed.conv_layers``). Figures kept: results/*.json.

Nothing is imported here: the thread count of NumPy's BLAS must be set before NumPy is
first imported, and each section module does that itself."""
