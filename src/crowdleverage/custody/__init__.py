"""custody layer (DESIGN.md §2)."""
