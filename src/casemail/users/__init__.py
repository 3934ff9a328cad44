"""Users and teams: just enough for personal and team accounts."""
