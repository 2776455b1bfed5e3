"""geomae.models."""
