"""Phone segments from PocketSphinx all-phone decoding, and the groups the mouth cares about.

The dub is spoken by someone else, often in another language: what the mouth must follow is
which sounds are made, not who makes them. All-phone decoding with the English acoustic model
maps any language onto the 39 ARPAbet phones; a bilabial is a bilabial in French too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from pocketsphinx import Decoder, get_model_path

from dubplate.core.audio.windows import Windows
from dubplate.core.media.audio import ANALYSIS_RATE

PHONES = (
    "SIL", "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G",
    "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH",
    "UH", "UW", "V", "W", "Y", "Z", "ZH",
)  # fmt: skip
# Viseme groups: phones that look alike on the mouth.
VISEMES = {
    "silence": ("SIL",),
    "bilabial": ("P", "B", "M"),
    "labiodental": ("F", "V"),
    "dental": ("TH", "DH"),
    "alveolar": ("T", "D", "N", "S", "Z", "L"),
    "postalveolar": ("SH", "ZH", "CH", "JH"),
    "velar": ("K", "G", "NG", "HH"),
    "open_vowel": ("AA", "AE", "AH", "AO", "AW", "AY"),
    "mid_vowel": ("EH", "ER", "EY"),
    "close_vowel": ("IH", "IY", "Y"),
    "rounded": ("UW", "UH", "OW", "OY", "W", "R"),
}
# How far each viseme opens the lips, 0 (closed) to 1 (widest), by phonetics alone: what the A2E
# prior expects of any actor until their own footage says otherwise.
VISEME_OPENNESS = {
    "silence": 0.1,
    "bilabial": 0.0,
    "labiodental": 0.15,
    "dental": 0.3,
    "alveolar": 0.35,
    "postalveolar": 0.35,
    "velar": 0.4,
    "open_vowel": 1.0,
    "mid_vowel": 0.75,
    "close_vowel": 0.45,
    "rounded": 0.4,
}
# How far each viseme spreads (+) or rounds (-) the lips, in halves of the actor's usual range of
# mouth width either side of its mean, by phonetics alone: /uw ow w r/ round them, /sh ch/ round
# them less, /iy ih/ and /eh ey/ draw the corners apart. On the shared clips' held-out tails this
# axis took A2E's lower-face error from 0.83 to 0.80 of the mean expression's (woman_flag_a 3.71
# to 3.30 px; man_map 1.92 to 2.05 against the opening alone, both with the prior's opening fitted
# jointly with the width; bench/a2e_bench.py).
VISEME_SPREAD = {
    "silence": 0.0,
    "bilabial": 0.0,
    "labiodental": 0.0,
    "dental": 0.0,
    "alveolar": 0.0,
    "postalveolar": -0.5,
    "velar": 0.0,
    "open_vowel": 0.0,
    "mid_vowel": 0.25,
    "close_vowel": 0.5,
    "rounded": -1.0,
}
PHONE_INDEX = {phone: i for i, phone in enumerate(PHONES)}
# Utterances this long at most: the decoder's search memory grows with utterance length.
CHUNK_SECONDS = 30.0
FRAME_SECONDS = 0.01  # PocketSphinx frames


@dataclass(frozen=True)
class PhoneSegment:
    phone: str
    start: float  # seconds
    end: float


def decoder() -> Decoder:
    model = os.path.join(get_model_path(), "en-us")
    return Decoder(
        hmm=os.path.join(model, "en-us"),
        allphone=os.path.join(model, "en-us-phone.lm.bin"),
        lw=2.0,
        beam=1e-20,
        pbeam=1e-20,
        samprate=ANALYSIS_RATE,
        loglevel="FATAL",
    )


class PhoneDecoder:
    """Phone segments of 16 kHz mono float samples fed a block at a time, decoded in utterances
    of at most CHUNK_SECONDS."""

    def __init__(self) -> None:
        self.engine = decoder()
        chunk = int(CHUNK_SECONDS * ANALYSIS_RATE)
        self.utterances = Windows(chunk, chunk)
        self.decoded = 0  # samples
        self.segments: list[PhoneSegment] = []

    def feed(self, samples: np.ndarray) -> None:
        for utterance in self.utterances.feed(samples):
            self._decode(utterance)

    def finish(self) -> list[PhoneSegment]:
        rest = self.utterances.rest()
        if len(rest):
            self._decode(rest)
        return self.segments

    def _decode(self, samples: np.ndarray) -> None:
        offset = self.decoded / ANALYSIS_RATE
        self.decoded += len(samples)
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)
        self.engine.start_utt()
        self.engine.process_raw(pcm.tobytes(), full_utt=True)
        self.engine.end_utt()
        # An utterance shorter than a few decoder frames (a last chunk of 30 ms) has no segments.
        for seg in self.engine.seg() or ():
            phone = seg.word if seg.word in PHONE_INDEX else "SIL"  # noise and fillers
            self.segments.append(
                PhoneSegment(
                    phone,
                    offset + seg.start_frame * FRAME_SECONDS,
                    offset + (seg.end_frame + 1) * FRAME_SECONDS,
                )
            )


def decode_phones(samples: np.ndarray) -> list[PhoneSegment]:
    """Phone segments of 16 kHz mono float samples (`PhoneDecoder`, fed them at once)."""
    phones = PhoneDecoder()
    phones.feed(samples)
    return phones.finish()


def phone_table(segments: list[PhoneSegment]) -> np.ndarray:
    """(N, 3) float array of phone index, start, end: the cacheable form."""
    return np.array([(PHONE_INDEX[s.phone], s.start, s.end) for s in segments], np.float64).reshape(
        -1, 3
    )
