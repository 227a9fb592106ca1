"""Writing results so that a crash or a full disk never leaves a half-written file looking finished."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from dubplate.core.errors import DubplateError


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `final`; it is renamed onto `final` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    # The suffix is kept so that writers which pick a format by extension still work.
    temp = final.with_name(f".{final.stem}.partial{final.suffix}")
    try:
        yield temp
        os.replace(temp, final)
    finally:
        temp.unlink(missing_ok=True)


def new_version_dir(base: Path) -> Path:
    """Create and return the next free `base/vNNN`, so an earlier result is never overwritten."""
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    taken = [int(m.group(1)) for p in base.iterdir() if (m := re.fullmatch(r"v(\d{3,})", p.name))]
    number = max(taken, default=0) + 1
    while True:
        path = base / f"v{number:03d}"
        try:
            path.mkdir()
            return path
        except FileExistsError:  # another process took it between listing and creating
            number += 1
        except OSError as error:
            raise DubplateError(f"{path}: cannot create output directory: {error.strerror}") from error
