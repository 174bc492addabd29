"""quality: see quality.py."""
