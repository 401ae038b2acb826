"""agent-gate: governed, attributable, least-privilege actions for AI coding agents."""
