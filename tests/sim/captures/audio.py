"""Tone levels per frame of a recorded WAV (Hann-windowed Goertzel), for the notes of a capture."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path


def level(samples: tuple[int, ...], hz: float, rate: int = 8000) -> float:
    """dBFS of the ``hz`` sine in ``samples``."""
    n = len(samples)
    win = [0.5 - 0.5 * math.cos(2 * math.pi * i / (n - 1)) for i in range(n)]
    k = 2 * math.cos(2 * math.pi * hz / rate)
    s1 = s2 = 0.0
    for i, v in enumerate(samples):
        s1, s2 = v * win[i] / 32768 + k * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - k * s1 * s2
    amp = 2 * math.sqrt(max(power, 0.0)) / sum(win)
    return 20 * math.log10(amp / math.sqrt(2) + 1e-9)


def rms(samples: tuple[int, ...]) -> float:
    return 20 * math.log10(math.sqrt(sum(v * v for v in samples) / len(samples)) / 32768 + 1e-9)


def summary(path: Path, start: float, end: float, tones: dict[str, float], frame: float = 0.1) -> str:
    """Median level of each tone and of everything, over 100 ms frames from ``start`` to ``end`` seconds."""
    with wave.open(str(path)) as w:
        rate = w.getframerate()
        data = struct.unpack(f"<{w.getnframes()}h", w.readframes(w.getnframes()))
    step = int(rate * frame)
    rows: dict[str, list[float]] = {name: [] for name in [*tones, "all"]}
    for i in range(int(start * rate), min(int(end * rate), len(data)) - step + 1, step):
        chunk = data[i:i + step]
        for name, hz in tones.items():
            rows[name].append(level(chunk, hz, rate))
        rows["all"].append(rms(chunk))
    med = {k: sorted(v)[len(v) // 2] if v else float("nan") for k, v in rows.items()}
    return ", ".join(f"{k} {v:.0f} dBFS" for k, v in med.items()) + f" ({len(rows['all'])} frames)"
