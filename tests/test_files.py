"""Writing a file so that no reader ever sees it half written."""

import pytest

from dubplate.core.files import atomic_path


def test_two_writers_of_one_file_keep_off_each_others_temporary_file(tmp_path):
    """Two runs filling a shared cache with the same entry: each renames its own whole file."""
    final = tmp_path / "entry.npz"
    with atomic_path(final) as first, atomic_path(final) as second:
        assert first != second
        first.write_bytes(b"first")
        second.write_bytes(b"second")
    assert final.read_bytes() == b"first"  # the last to finish renames last
    assert list(tmp_path.iterdir()) == [final]


def test_a_failed_write_leaves_nothing(tmp_path):
    final = tmp_path / "entry.npz"
    with pytest.raises(OSError, match="disk full"), atomic_path(final) as temp:
        temp.write_bytes(b"half")
        raise OSError("disk full")
    assert not any(tmp_path.iterdir())
