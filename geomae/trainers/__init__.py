"""geomae.trainers."""
