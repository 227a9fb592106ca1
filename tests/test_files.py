"""Writing a file so that no reader ever sees it half written, and work that stopped half way
kept for the same work to take up."""

import errno
import os

import pytest

from dubplate.core.errors import DubplateError
from dubplate.core.files import atomic_path, resumable_dir, unfinished_work


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


@pytest.mark.parametrize(("code", "written"), [(errno.EIO, False), (errno.EINVAL, True)])
def test_a_file_is_renamed_into_place_only_once_flushed_to_the_disk(
    tmp_path, monkeypatch, code, written
):
    """A flush that fails (a disk error, a network file system's quota) leaves nothing and names
    the file; one the file system cannot do (some FUSE mounts) is passed over."""

    def fails(descriptor):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", fails)
    final = tmp_path / "frame.1001.exr"
    if written:
        with atomic_path(final) as temp:
            temp.write_bytes(b"whole")
        assert final.read_bytes() == b"whole"
    else:
        with pytest.raises(DubplateError, match=f"{final}: cannot write"):
            with atomic_path(final) as temp:
                temp.write_bytes(b"whole")
        assert not any(tmp_path.iterdir())


def test_work_stopped_with_files_in_it_is_kept_for_the_same_work_and_nothing_else(tmp_path):
    with pytest.raises(DubplateError, match="No space"), resumable_dir(tmp_path, "abc") as work:
        (work / "frames").mkdir()
        (work / "frames" / "f.1001.exr").write_bytes(b"done")
        (work / "frames" / ".f.1002.1a2b3c4d.partial.exr").write_bytes(b"half")  # cut off
        raise DubplateError("f.1002.exr: No space left on device")
    assert unfinished_work(tmp_path) == [work]
    with resumable_dir(tmp_path, "abc") as again:
        assert again == work
        # What was finished is there; the write that was cut off is not.
        assert [p.name for p in (work / "frames").iterdir()] == ["f.1001.exr"]
    with pytest.raises(RuntimeError), resumable_dir(tmp_path, "other"):
        raise RuntimeError("stopped before writing anything")
    assert unfinished_work(tmp_path) == [work]  # work that wrote nothing leaves nothing


def test_work_in_progress_is_refused_to_a_second_run_by_name(tmp_path):
    with resumable_dir(tmp_path, "abc") as work:
        with pytest.raises(DubplateError, match=f"{work}: another run of the same work"):
            with resumable_dir(tmp_path, "abc"):
                pass
        assert work.is_dir()  # the refused run took nothing away
        (work / "f.1001.exr").write_bytes(b"done")
        assert unfinished_work(tmp_path) == []  # in use: not for removing
        published = tmp_path / "v001"
        work.rename(published)
    assert published.is_dir() and unfinished_work(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v001"]  # its lock file gone too
