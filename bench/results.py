"""Keeping bench/RESULTS.md: each benchmark owns one marked section and rewrites only it."""

from __future__ import annotations

import argparse
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from dubplate.core.files import atomic_path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "RESULTS.md"
SHARED = REPO.parent / "shared" / "data"
FOOTAGE = SHARED / "footage"


def arguments(doc: str) -> argparse.ArgumentParser:
    """The options every benchmark takes; a benchmark adds its own before parsing."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print, do not update RESULTS.md")
    return parser


def start(parser: argparse.ArgumentParser) -> argparse.Namespace:
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname).1s %(message)s")
    if not FOOTAGE.is_dir():
        sys.exit(f"no footage at {FOOTAGE}")
    return args


def publish(name: str, section: str, args: argparse.Namespace) -> None:
    """Print the section, and unless --no-write, make it the benchmark's part of RESULTS.md."""
    print(section)
    if not args.no_write:
        print(f"updated {update_section(name, section)}", file=sys.stderr)


def _head() -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()


# Taken when the benchmark starts: the code it measures, even if commits land while it runs.
COMMIT = _head()


def provenance() -> str:
    commit = COMMIT
    cpu = platform.processor() or platform.machine()
    return (
        f"Commit `{commit}`, {os.cpu_count()}-core {cpu} CPU, {platform.system()}; "
        f"measured {time.strftime('%Y-%m-%d')}."
    )


def update_section(name: str, body: str) -> Path:
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    section = f"{start}\n{body.strip()}\n{end}"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if start in text:
        if end not in text:
            raise SystemExit(f"{RESULTS}: {start} has no {end}; the section is printed above")
        text = text[: text.index(start)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with atomic_path(RESULTS) as temp:
        temp.write_text(text)
    return RESULTS
