"""Writing results so that a crash or a full disk never leaves a half-written file looking done."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from dubplate.core.errors import DubplateError


def cache_dir(kind: str) -> Path:
    """Where results of `kind` ("tracks", "audio") are cached and reused across runs."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dubplate" / kind


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `final`, renamed onto `final` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    # The suffix is kept so that writers which pick a format by extension still work; the
    # random part keeps two runs writing the same file (a shared cache) off each other's temp.
    temp = final.with_name(f".{final.stem}.{secrets.token_hex(4)}.partial{final.suffix}")
    try:
        yield temp
        os.replace(temp, final)
    finally:
        temp.unlink(missing_ok=True)


@contextlib.contextmanager
def staged_dir(base: Path) -> Iterator[Path]:
    """A hidden work directory inside `base`, deleted if the block fails: a run that dies half
    way never leaves a version that looks finished."""
    base = Path(base)
    try:
        base.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=".partial-", dir=base))
        staged.chmod(0o755)  # mkdtemp makes it private; a published version should not be
    except OSError as error:
        raise DubplateError(f"{base}: cannot create output directory: {error.strerror}") from error
    try:
        yield staged
    finally:
        shutil.rmtree(staged, ignore_errors=True)


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
