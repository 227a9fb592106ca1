"""Memory the renderer stage of `actor build` takes at each crop size (issue 5: 256 by default,
512 and 1024 on a GPU; a few seconds to minutes of footage).

    .venv/bin/python bench/renderer_memory_bench.py [--sizes 256 512 1024] [--steps 2] [--no-write]

The actor is built (track and fit) on all of woman_seated_hd_20s.mp4, the 20 s the build-time
target is set for; then, for each size in a fresh process, the renderer stage as `actor build`
runs it (`train_actor_renderer`: every training frame's inputs made, a few steps, the finish
measured): the bytes of inputs a training frame takes at that size, the process's peak memory
that no file backs and its peak resident memory, and its wall time. On this CPU the steps at
512 and 1024 are slow; the memory is what a GPU host's RAM must hold all the same.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from results import FOOTAGE, arguments, provenance, publish, start

from dubplate.core.media import open_plate
from dubplate.core.morph.actor import build_actor
from dubplate.core.neural.store import train_actor_renderer
from dubplate.core.neural.train import RendererSettings
from dubplate.core.track import track_plate

CLIP = "woman_seated_hd_20s.mp4"
GIB = 2**30
BYTES_PER_PIXEL = 3 + 9 + 1 + 6  # a training frame's real crop, three renders, hole, references


def build(directory: Path) -> int:
    """The clip's actor (track and fit) in `directory`; its frame count."""
    plate = open_plate(FOOTAGE / CLIP)
    track = track_plate(plate, plate.info.frames)
    build_actor("seated", [(plate, track)]).save(directory)
    return len(plate.info.frames)


def _anonymous_bytes() -> int:
    """This process's resident memory that no file backs (what the kernel cannot drop)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


def child(directory: Path, size: int, steps: int) -> None:
    """The renderer stage in this process; prints as JSON its time, its peak resident memory
    and the peak of the part no file backs (sampled every 50 ms), which is what must fit: the
    page cache gives back file-backed pages it holds when memory runs short."""
    anonymous, done = [_anonymous_bytes()], threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            anonymous.append(_anonymous_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    began = time.perf_counter()
    train_actor_renderer(directory, RendererSettings(size=size, steps=steps))
    seconds = time.perf_counter() - began
    done.set()
    sampler.join()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "peak": peak, "anonymous": max(anonymous)}))


def measure(actor: Path, size: int, steps: int, folder: Path) -> dict:
    """The renderer stage at `size` on a copy of `actor`, in a fresh process."""
    directory = folder / f"actor_{size}"
    subprocess.run(["cp", "-r", str(actor), str(directory)], check=True)
    run = subprocess.run(
        [sys.executable, __file__, "--child", str(directory), str(size), str(steps)],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        reason = "killed (out of memory)" if run.returncode == -9 else run.stderr[-500:]
        return {"failed": reason}
    return json.loads(run.stdout.strip().splitlines()[-1])


def markdown(frames: int, steps: int, rows: dict[int, dict]) -> str:
    lines = [
        "## Renderer stage memory by crop size (issue 5): `bench/renderer_memory_bench.py`",
        "",
        provenance(),
        "",
        f"The actor of {CLIP} (all {frames} frames, 20 s), its renderer stage as `actor build`"
        f" runs it ({steps} steps: the inputs of every training frame made, then the finish"
        " measured), each size in a fresh process: the inputs a training frame takes (uint8"
        " crops, renders and references, the hole), the peak of the process's resident memory"
        " that no file backs (RssAnon, sampled every 50 ms: what must fit in memory), its peak"
        " resident memory with the file-backed pages the page cache held (VmHWM; those it"
        " gives back when memory runs short), and its wall time.",
        "",
        "| size | inputs a frame | inputs of all frames | peak anonymous | peak resident | time |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for size, row in rows.items():
        per_frame = BYTES_PER_PIXEL * size * size
        inputs = f"{per_frame / 2**20:.1f} MB | {per_frame * frames / GIB:.2f} GiB"
        if "failed" in row:
            lines.append(f"| {size} | {inputs} | {row['failed']} | | |")
        else:
            memory = f"{row['anonymous'] / GIB:.2f} GiB | {row['peak'] / GIB:.2f} GiB"
            lines.append(f"| {size} | {inputs} | {memory} | {row['seconds']:.0f} s |")
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return
    parser = arguments(__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--steps", type=int, default=2)
    args = start(parser)
    with tempfile.TemporaryDirectory(prefix="dubplate-renderer-memory-") as folder:
        actor = Path(folder) / "actor"
        frames = build(actor)
        rows = {}
        for size in args.sizes:
            rows[size] = measure(actor, size, args.steps, Path(folder))
            print(size, rows[size], flush=True)
    publish("renderer_memory_bench", markdown(frames, args.steps, rows), args)


if __name__ == "__main__":
    main()
