"""rate_distortion: see rate_distortion.py."""
