"""The GitHub events the gate reacts to, run from the durable queue: merge checks and deployment gates."""
