"""Authentication: API tokens (OAuth2 providers come later)."""
