"""``numvae explore``'s page: the latent plane, the Encode panel and one training step,
in one self-contained HTML file (``numvae.explorer.page``), from a bundle of the model's
weights and the test set's encoder means (``numvae.explorer.bundle``); the model shipped
with numvae for it (``numvae.explorer.shipped``)."""
