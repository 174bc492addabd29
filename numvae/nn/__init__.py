"""The network's building blocks, each forward with its backward right below it:
``layers`` (Dense, the activations, Sequential), ``conv`` (Conv2d, ConvTranspose2d by
im2col) and ``flows`` (the masked layers of MADE and one step of an inverse
autoregressive flow). They know nothing of the VAE."""
