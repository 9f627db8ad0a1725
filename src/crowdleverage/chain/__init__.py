"""chain layer (DESIGN.md §2)."""
