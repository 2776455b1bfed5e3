"""geomae.datamodules."""
