"""api layer (DESIGN.md §2)."""
