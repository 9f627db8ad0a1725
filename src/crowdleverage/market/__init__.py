"""market layer (DESIGN.md §2)."""
