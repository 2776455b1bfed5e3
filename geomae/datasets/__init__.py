"""geomae.datasets."""
