"""Memory a reel-long dub track costs (issue 4: long audio in chunks, bounded memory).

    .venv/bin/python bench/audio_memory_bench.py [--minutes 30] [--no-write]

A reel of speech (the shared 60-s English news tiled, 48 kHz stereo, 24-bit WAV) is analysed
for A2E (phones and log-mel, `cached_analysis`) read a block at a time (`open_audio`, what
`dub`, `a2e predict` and `qc` do), and held whole first (`load_audio`) for comparison; then a
10-s shot's part three quarters in is read (what a dub muxes). Each in a fresh process: its
peak resident memory over what the imports took, and its time.
"""

from __future__ import annotations

import multiprocessing
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import soundfile
import soxr
from results import SHARED, arguments, provenance, publish, start

from dubplate.core.audio.features import analyse, analyse_samples, cached_analysis
from dubplate.core.media import load_audio, open_audio

SPEECH = SHARED / "audio" / "en_news_60s.wav"
RATE, CHANNELS = 48000, 2
SHOT_SECONDS = 10.0


def write_reel(path: Path, minutes: int) -> Path:
    """`minutes` of the shared news speech at 48 kHz stereo, written a minute at a time."""
    speech, rate = soundfile.read(str(SPEECH), dtype="float32")
    minute = soxr.resample(speech, rate, RATE, quality="HQ")[: 60 * RATE]
    stereo = np.stack([minute, 0.8 * minute], axis=1)
    with soundfile.SoundFile(str(path), "w", RATE, CHANNELS, "PCM_24") as file:
        for _ in range(minutes):
            file.write(stereo)
    return path


def _peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _measure(way: str, reel: str, cache: str, results: multiprocessing.Queue) -> None:
    """One way of reading `reel`, in this (fresh) process: seconds, and MB of its peak memory
    over the process's peak before it."""
    if way != "shot":
        analyse_samples(np.zeros(16000, np.float32))  # librosa's lazy imports and caches
    before = _peak_kb()
    began = time.perf_counter()
    if way == "streamed":
        cached_analysis(open_audio(reel), Path(cache))
    elif way == "whole":
        analyse(load_audio(reel))
    else:  # a few MB, under the imports' peak: traced instead
        tracemalloc.start()
        sound = open_audio(reel)
        duration = soundfile.info(reel).duration
        sound.part(0.75 * duration, SHOT_SECONDS).load()
        traced = tracemalloc.get_traced_memory()[1] / 2**20
        results.put((time.perf_counter() - began, traced))
        return
    results.put((time.perf_counter() - began, (_peak_kb() - before) / 1024))


def measure(way: str, reel: Path, cache: Path) -> tuple[float, float]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_measure, args=(way, str(reel), str(cache), results))
    process.start()
    seconds, megabytes = results.get()
    process.join()
    return seconds, megabytes


WAYS = {
    "streamed": "analysis, read a block at a time (`open_audio`, as `dub` reads a dub track)",
    "whole": "analysis, the file held whole first (`load_audio`)",
    "shot": f"a {SHOT_SECONDS:.0f}-s shot's part, three quarters in (`open_audio(...).part`)",
}


def markdown(minutes: int, rows: dict[str, tuple[float, float]]) -> str:
    decoded = minutes * 60 * RATE * CHANNELS * 4 / 2**20
    lines = [
        "## Reel-long dub tracks (issue 4): `bench/audio_memory_bench.py`",
        "",
        provenance(),
        "",
        f"A {minutes}-minute 48 kHz stereo 24-bit WAV of speech ({decoded:.0f} MB as float"
        " samples), each way in a fresh process: its peak resident memory over the process's"
        " peak before it (imports, and for the analyses a second's analysis that loads what"
        " librosa loads on first use; for the shot's part, the peak of what tracemalloc"
        " traces), and its wall time.",
        "",
        "| what | peak memory | time |",
        "| --- | --- | --- |",
    ]
    for way, label in WAYS.items():
        seconds, megabytes = rows[way]
        lines.append(f"| {label} | {megabytes:.1f} MB | {seconds:.2f} s |")
    return "\n".join(lines)


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--minutes", type=int, default=30, help="length of the reel")
    args = start(parser)
    with tempfile.TemporaryDirectory(prefix="dubplate-audio-bench-") as folder:
        reel = write_reel(Path(folder) / "reel.wav", args.minutes)
        rows = {}
        for way in WAYS:
            rows[way] = measure(way, reel, Path(folder) / "cache")
            print(way, f"{rows[way][0]:.2f} s, {rows[way][1]:.1f} MB", flush=True)
    publish("audio_memory_bench", markdown(args.minutes, rows), args)


if __name__ == "__main__":
    main()
