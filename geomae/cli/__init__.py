"""Subcommands of the ``geomae`` command line (each module: ``build_parser`` + ``main``)."""
