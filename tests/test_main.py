"""The `geomae` command line: help text and the test suite's warning policy."""

import warnings

import pytest

from geomae.main import LIGHTNING_SUBCOMMANDS, SUBCOMMANDS, main


def test_help_says_what_every_subcommand_does(capsys):
    assert main(["--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in (*LIGHTNING_SUBCOMMANDS, *SUBCOMMANDS):
        described = [ln for ln in lines if ln.split()[:1] == [name]]
        assert len(described) == 1, name
        assert len(described[0].split()) > 3, described  # the name and a sentence


def test_no_arguments_prints_the_help_and_fails(capsys):
    assert main([]) == 2
    assert "bench-bands" in capsys.readouterr().out


def test_warnings_raised_in_geomae_fail_the_tests():
    """pyproject.toml turns a warning attributed to a geomae module into an error."""
    with pytest.raises(UserWarning, match="from geomae"):
        warnings.warn_explicit("from geomae", UserWarning, "geomae/x.py", 1, module="geomae.x")
    # a third-party module's warning is not an error
    with warnings.catch_warnings(record=True):
        warnings.warn_explicit("elsewhere", UserWarning, "other/x.py", 1, module="other.x")
