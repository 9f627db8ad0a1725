"""audit layer (DESIGN.md §2)."""
