"""oracle layer (DESIGN.md §2)."""
