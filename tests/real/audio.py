"""Tones and who-hears-whom, measured from recorded audio (shared/asterisk-real/README.md).

Each party plays its own sine tone (8 kHz, 16-bit mono, −12 dBFS) and records what it hears. Per 100 ms
frame a Hann-windowed single-bin DFT (Goertzel) gives each tone's level. In a phase, a tone is *heard* when it
is above −40 dBFS in ≥ 80 % of the frames, *absent* when in < 5 %, and anything between is a failure
(``unclear``). The first 2 s of a phase are skipped (the path settles; the phase mark may lag by the
recorder's 0.25 s buffer). One addition to the README's method: a frame counts only when the tone also stands
15 dB above the spectrum 150 Hz either side (a sine is narrow; a spoken prompt's energy near 600 Hz is not).
"""

from __future__ import annotations

import math
import struct
import wave
from dataclasses import dataclass
from pathlib import Path

RATE = 8000
FRAME = RATE // 10  # 100 ms
HEARD_DBFS = -40.0
HEARD_SHARE = 0.80
ABSENT_SHARE = 0.05
SETTLE_SECONDS = 2.0
TONE_DBFS = -12.0
WAV_HEADER = 44

NARROW_DB = 15.0  # a tone stands this far above the spectrum 150 Hz either side of it; speech does not
NEIGHBOUR_HZ = 150

# Distinct tones well apart (more than NEIGHBOUR_HZ) and not each other's low harmonics: agent, customer,
# supervisor first (as measured for DESIGN §10), then more for extra parties (queue members, transfer targets).
TONES = (600, 1400, 2200, 1000, 2600, 1700, 400, 3100)

_HANN = [0.5 - 0.5 * math.cos(2 * math.pi * n / (FRAME - 1)) for n in range(FRAME)]
_HANN_SUM = sum(_HANN)


def write_tone(path: Path, hz: int, seconds: int = 1, dbfs: float = TONE_DBFS) -> Path:
    """A whole number of seconds of an integer-Hz sine loops without a click (pjsua loops the file)."""
    amplitude = 32767 * 10 ** (dbfs / 20)
    samples = [round(amplitude * math.sin(2 * math.pi * hz * n / RATE)) for n in range(RATE * seconds)]
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return path


def tone_dbfs(frame: list[int] | tuple[int, ...], hz: float) -> float:
    """Level of a sine at ``hz`` in one frame, dBFS of its peak amplitude (Hann window, Goertzel)."""
    w = 2 * math.pi * hz / RATE
    coeff = 2 * math.cos(w)
    s1 = s2 = 0.0
    for x, win in zip(frame, _HANN, strict=False):
        s0 = x * win + coeff * s1 - s2
        s2, s1 = s1, s0
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    amplitude = 2 * math.sqrt(max(power, 0.0)) / _HANN_SUM
    return 20 * math.log10(amplitude / 32768) if amplitude > 0 else -200.0


def tone_present(frame: list[int] | tuple[int, ...], hz: float) -> bool:
    """Above −40 dBFS, and a narrow peak (a sine), not a broad hump of speech."""
    level = tone_dbfs(frame, hz)
    if level <= HEARD_DBFS:
        return False
    around = max(tone_dbfs(frame, hz - NEIGHBOUR_HZ), tone_dbfs(frame, hz + NEIGHBOUR_HZ))
    return level - around >= NARROW_DB


@dataclass(frozen=True)
class Verdict:
    hz: int
    share: float  # of frames above HEARD_DBFS
    frames: int

    @property
    def word(self) -> str:
        if self.frames == 0:
            return "no-audio"
        if self.share >= HEARD_SHARE:
            return "heard"
        if self.share < ABSENT_SHARE:
            return "absent"
        return "unclear"


class Recording:
    """A pjsua ``--rec-file`` (8 kHz, 16-bit mono), read whole when analysed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def samples(self) -> tuple[int, ...]:
        """The samples so far. pjsua writes the wav header only when it closes the file, so a recording still
        being written is read as raw 16-bit PCM after the 44-byte header (the format pjsua was told to use)."""
        raw = self.path.read_bytes()
        if raw[:4] == b"RIFF" and raw[12:16] == b"fmt ":
            _fmt, channels, rate, _byterate, _align, bits = struct.unpack("<HHIIHH", raw[20:36])
            if (channels, rate, bits) != (1, RATE, 16):
                raise ValueError(f"{self.path}: expected 8 kHz 16-bit mono, got {channels} ch {rate} Hz {bits} bit")
        pcm = raw[WAV_HEADER:]
        return struct.unpack(f"<{len(pcm) // 2}h", pcm[: len(pcm) // 2 * 2])

    def verdicts(self, tones: dict[str, int], start: float, end: float,
                 settle: float = SETTLE_SECONDS) -> dict[str, Verdict]:
        """For each named tone, how it was heard between ``start``+``settle`` and ``end`` (seconds)."""
        data = self.samples()
        first = int((start + settle) * RATE)
        last = min(int(end * RATE), len(data))
        frames = [data[i:i + FRAME] for i in range(first, last - FRAME + 1, FRAME)]
        out = {}
        for name, hz in tones.items():
            above = sum(1 for f in frames if tone_present(f, hz))
            out[name] = Verdict(hz, above / len(frames) if frames else 0.0, len(frames))
        return out


def loud_seconds(recording: Recording, start: float, end: float, dbfs: float = HEARD_DBFS) -> float:
    """Seconds of 100 ms frames whose RMS is above ``dbfs`` between ``start`` and ``end``: a spoken prompt."""
    data = recording.samples()
    first, last = int(start * RATE), min(int(end * RATE), len(data))
    loud = 0
    for i in range(first, last - FRAME + 1, FRAME):
        frame = data[i:i + FRAME]
        rms = math.sqrt(sum(x * x for x in frame) / FRAME)
        if rms > 0 and 20 * math.log10(rms / 32768) > dbfs:
            loud += 1
    return loud * FRAME / RATE


def describe(verdicts: dict[str, Verdict]) -> str:
    return ", ".join(f"{name} {v.hz} Hz {v.word} ({v.share:.0%} of {v.frames})" for name, v in verdicts.items())


ONSET_FRAME = RATE // 50  # 20 ms: fine enough in time for latencies, the tones are 800 Hz apart
ONSET_STEP = RATE // 400  # 2.5 ms


def first_heard(recording: Recording, hz: int, after: float = 0.0) -> float | None:
    """Offset (s) at which ``hz`` first reached this phone after ``after``: the centre of the first 20 ms
    frame (2.5 ms steps) where it is above −40 dBFS (for latency measurements)."""
    data = recording.samples()
    window = [0.5 - 0.5 * math.cos(2 * math.pi * n / (ONSET_FRAME - 1)) for n in range(ONSET_FRAME)]
    total = sum(window)
    coeff = 2 * math.cos(2 * math.pi * hz / RATE)
    floor = 32768 * 10 ** (HEARD_DBFS / 20)
    for i in range(int(after * RATE), len(data) - ONSET_FRAME + 1, ONSET_STEP):
        s1 = s2 = 0.0
        for x, win in zip(data[i:i + ONSET_FRAME], window, strict=True):
            s0 = x * win + coeff * s1 - s2
            s2, s1 = s1, s0
        amplitude = 2 * math.sqrt(max(s1 * s1 + s2 * s2 - coeff * s1 * s2, 0.0)) / total
        if amplitude > floor:
            return (i + ONSET_FRAME / 2) / RATE
    return None
