"""Models of this app arrive with their issues (see README's layout)."""
