"""Decisions published to GitHub: check runs (and, for environments, deployment protection answers)."""
