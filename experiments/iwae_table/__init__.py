"""iwae_table: see iwae_table.py."""
