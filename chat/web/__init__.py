"""HTTP routes by resource (health, specialists, stats, transcripts, audit, crisis, dev),
what they share (common), and the pages with their security headers (pages)."""
