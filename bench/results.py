"""Keeping bench/RESULTS.md: each benchmark owns one marked section and rewrites only it."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "RESULTS.md"


def provenance() -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
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
        text = text[: text.index(start)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text)
    return RESULTS
