"""What operators scrape and grep: Prometheus metrics, JSON logs, the request id (docs/configuration.md)."""
