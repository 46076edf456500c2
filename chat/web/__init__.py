"""HTTP: the JSON API and health/metrics routes (http_api), and the pages with their
security headers (pages)."""
