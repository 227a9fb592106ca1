"""Writing results so that a crash or a full disk never leaves a half-written file looking done."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import OpenImageIO as oiio

from dubplate.core.errors import DubplateError

log = logging.getLogger(__name__)

_NO_FLUSH = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}
Result = TypeVar("Result")


def cache_dir(kind: str) -> Path:
    """Where results of `kind` ("tracks", "audio", "plate_checks") are cached and reused across
    runs."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dubplate" / kind


def cached_result(
    entry: Path,
    what: str,
    load: Callable[[Path], Result],
    make: Callable[[], Result],
    save: Callable[[Result, Path], object],
) -> Result:
    """The `what` that `load` reads from the cache directory `entry`; else `make`'s, which `save`
    leaves there for the next run. A damaged entry (`load` raises a DubplateError) is made again;
    a cache that cannot be written (read-only, full) costs only the keeping."""
    entry = Path(entry)
    if entry.is_dir():
        try:
            result = load(entry)
            log.info("%s: cached %s", what, entry)
            return result
        except DubplateError as error:
            log.warning("%s; the %s is made again", error, what)
            shutil.rmtree(entry, ignore_errors=True)
    result = make()
    try:
        with staged_dir(entry.parent) as staged:
            save(result, staged)
            try:
                os.rename(staged, entry)
            except OSError:  # another run cached the same meanwhile: keep theirs
                pass
    except (OSError, DubplateError) as error:
        log.warning("%s: the %s is not cached (%s)", entry.parent, what, error)
    return result


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `final`, renamed onto `final` only if the block succeeds and
    once its data is on the disk."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    # The suffix is kept so that writers which pick a format by extension still work; the
    # random part keeps two runs writing the same file (a shared cache) off each other's temp.
    temp = final.with_name(f".{final.stem}.{secrets.token_hex(4)}.partial{final.suffix}")
    try:
        yield temp
        _flush_to_disk(temp, final)
        os.replace(temp, final)
    finally:
        temp.unlink(missing_ok=True)


def _flush_to_disk(path: Path, final: Path) -> None:
    """Wait until `path`'s data is on the disk: a rename can reach it before the data does, and a
    node that loses its power then leaves a file under its final name, empty or in part. A file
    system that cannot flush (some FUSE mounts) is passed over."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as error:
        if error.errno not in _NO_FLUSH:
            raise DubplateError(f"{final}: cannot write ({error.strerror})") from error


def write_image(path: Path, spec: oiio.ImageSpec, pixels: np.ndarray) -> None:
    """Write `pixels` with OpenImageIO through a temporary file: a write that fails half way
    leaves nothing at `path`."""
    with atomic_path(path) as temp:
        out = oiio.ImageOutput.create(str(temp))
        if out is None:
            raise DubplateError(f"{path}: cannot write ({oiio.geterror().strip()})")
        try:
            written = out.open(str(temp), spec) and out.write_image(np.ascontiguousarray(pixels))
            error = out.geterror()
        finally:
            # DPX's writer buffers the frame: a disk that fills up shows only on closing. (Its
            # error text alone is no sign: TIFF's close leaves one about Exif data and succeeds.)
            closed = out.close()
        if not closed:
            error = "; ".join(filter(None, (error, out.geterror())))
        if not (written and closed) or error:
            raise DubplateError(f"{path}: cannot write ({error or 'unknown error'})")
        if out.format_name() == "dpx":
            _name_dpx_header(temp, path)


DPX_FILE_NAME = slice(36, 136)  # the generic header's image file name (SMPTE 268M)


def _name_dpx_header(written: Path, path: Path) -> None:
    """A DPX names its own file in its header; OpenImageIO writes there the path it was opened
    with, here the temporary one, so the final name goes in its place."""
    field = DPX_FILE_NAME.stop - DPX_FILE_NAME.start
    name = os.fsencode(Path(path).name)[: field - 1].ljust(field, b"\0")
    with open(written, "r+b") as header:
        header.seek(DPX_FILE_NAME.start)
        header.write(name)


@contextlib.contextmanager
def staged_dir(base: Path) -> Iterator[Path]:
    """A hidden work directory inside `base`, deleted if the block fails: a run that dies half
    way never leaves a version that looks finished."""
    base = Path(base)
    try:
        base.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=".staging-", dir=base))
        staged.chmod(0o755)  # mkdtemp makes it private; a published version should not be
    except OSError as error:
        raise DubplateError(f"{base}: cannot create output directory: {error.strerror}") from error
    try:
        yield staged
    finally:
        shutil.rmtree(staged, ignore_errors=True)


@contextlib.contextmanager
def resumable_dir(base: Path, key: str) -> Iterator[Path]:
    """The hidden work directory inside `base` of the work `key` names (what is made, from
    what): kept when the block fails with files in it, so that the same work run again takes
    up where it stopped (a crash, a full disk, a farm node taken away), and removed when it
    holds none. Locked while in use (by a lock file beside it, which any filesystem locks):
    two runs of the same work never write it at once."""
    staged = Path(base) / f".partial-{key}"
    try:
        staged.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DubplateError(
            f"{staged.parent}: cannot create output directory: {error.strerror}"
        ) from error
    with _work_lock(staged):
        try:
            staged.mkdir(exist_ok=True)
        except OSError as error:
            raise DubplateError(f"{staged}: cannot create it: {error.strerror}") from error
        for cut_off in staged.rglob(".*.partial*"):  # a write the last run did not finish
            cut_off.unlink()
        try:
            yield staged
        except BaseException:
            _keep_if_worked_on(staged)
            raise


@contextlib.contextmanager
def _work_lock(staged: Path) -> Iterator[None]:
    path = _lock_path(staged)
    try:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise DubplateError(f"{path}: cannot create it: {error.strerror}") from error
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DubplateError(
                f"{staged}: another run of the same work is writing it; let it finish or stop it"
            ) from None
        except OSError as error:  # a filesystem that cannot lock: run unguarded, and say so
            log.warning("%s: cannot be locked (%s): a second run of it is not refused", path, error)
        # The lock of a run that ended, whose file it removed: this run's lock is elsewhere.
        held, named = os.fstat(handle), _stat_or_none(path)
        if named is None or (named.st_dev, named.st_ino) != (held.st_dev, held.st_ino):
            raise DubplateError(f"{staged}: another run took it up meanwhile; run it again")
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
    finally:
        os.close(handle)


def _stat_or_none(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def _keep_if_worked_on(staged: Path) -> None:
    files = [p for p in staged.rglob("*") if p.is_file()] if staged.is_dir() else []
    if not files:
        shutil.rmtree(staged, ignore_errors=True)
        return
    log.warning(
        "%s: kept, with the %d file(s) written before it stopped; the same command again takes"
        " up where it stopped",
        staged,
        len(files),
    )


def unfinished_work(base: Path) -> list[Path]:
    """The work directories `resumable_dir` kept in `base` that no run is writing now."""
    base = Path(base)
    found = sorted(p for p in base.glob(".partial-*") if p.is_dir()) if base.is_dir() else []
    return [work for work in found if not _in_use(work)]


def _lock_path(staged: Path) -> Path:
    return staged.with_name(staged.name + ".lock")


def _in_use(staged: Path) -> bool:
    try:
        handle = os.open(_lock_path(staged), os.O_RDWR)
    except OSError:  # none: the run that kept it has ended
        return False
    try:
        fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(handle)


def file_stamps(paths: Iterable[Path]) -> list[list[Any]]:
    """Each file's absolute path, size and modification time: what a cache or resumed work keys
    on to tell that a file changed, without reading it."""
    stamps = []
    for path in paths:
        stat = Path(path).stat()
        stamps.append([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns])
    return stamps


def key_of(what: dict) -> str:
    """A short hash of `what` (JSON): the name of a cache entry or of resumable work."""
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:24]


def publish_version(staged: Path, base: Path) -> Path:
    """Rename a finished staged directory to the next free `base/vNNN`; earlier versions stay."""
    base = Path(base)
    taken = [int(m.group(1)) for p in base.iterdir() if (m := re.fullmatch(r"v(\d{3,})", p.name))]
    number = max(taken, default=0) + 1
    while True:
        final = base / f"v{number:03d}"
        if not final.exists():
            try:
                # rename() onto an existing empty directory would succeed, hence the check above.
                os.rename(staged, final)
                return final
            except FileExistsError:
                pass
            except OSError as error:
                if error.errno != errno.ENOTEMPTY:
                    raise DubplateError(
                        f"{final}: cannot publish output: {error.strerror}"
                    ) from error
        number += 1  # taken by another run meanwhile
