import os
import stat

import pytest

from geomae.fileio import atomic_write


def test_atomic_write_replaces_with_umask_permissions(tmp_path):
    target = tmp_path / "sub" / "weights.bin"
    old = os.umask(0o022)
    try:
        atomic_write(target, lambda f: f.write(b"first"))
        atomic_write(target, lambda f: f.write(b"second"))
    finally:
        os.umask(old)
    assert target.read_bytes() == b"second"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # not mkstemp's 0o600
    assert [p.name for p in target.parent.iterdir()] == ["weights.bin"]


def test_failed_write_keeps_the_old_file_and_no_partial(tmp_path):
    target = tmp_path / "weights.bin"
    target.write_bytes(b"good")

    def boom(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, boom)
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.bin"]
