"""broker layer (DESIGN.md §2)."""
