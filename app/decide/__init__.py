"""The pure core: request and decision models, the engine, approvals, provenance and explanations (no I/O)."""
