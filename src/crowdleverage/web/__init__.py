"""web layer (DESIGN.md §2)."""
