"""risk layer (DESIGN.md §2)."""
