"""conv_vae: see conv_vae.py."""
