"""compliance layer (DESIGN.md §2)."""
