"""geomae.bench."""
