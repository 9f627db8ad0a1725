"""flows layer (DESIGN.md §2)."""
