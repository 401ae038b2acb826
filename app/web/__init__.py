"""The HTTP face: decisions, grants, the GitHub webhook, decision pages, OpenAPI, and shared HTTP helpers."""
