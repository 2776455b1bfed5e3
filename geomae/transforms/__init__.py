"""geomae.transforms."""
