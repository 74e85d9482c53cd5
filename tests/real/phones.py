"""pjsua soft phones: each registers one extension, plays its own tone and records what it hears.

A phone has its own SIP port and RTP range, ``--null-audio`` (the conference clock runs without a sound card),
``--auto-play`` of its tone and ``--auto-rec`` of everything it hears into one wav file. Never ``--auto-loop``
(an echo would ruin every who-hears-whom check). Commands go to pjsua's stdin (kept open as a pipe); its
console output is read line by line, and every wait is on a line it prints (registration, call states).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from pathlib import Path

from tests.real.asterisk import RealAsterisk, password_of
from tests.real.audio import RATE, TONES, WAV_HEADER, Recording, write_tone
from tests.real.ports import free_udp_port, free_udp_range

BYTES_PER_SECOND = RATE * 2

_STATE = re.compile(r"Call (\d+) state changed to (\w+)")
_DISCONNECTED = re.compile(r"Call (\d+) is DISCONNECTED")


class PhoneError(AssertionError):
    pass


class Phone:
    def __init__(self, ext: str, asterisk: RealAsterisk, folder: Path, tone_hz: int, *,
                 auto_answer: bool = True, label: str = "") -> None:
        self.ext = ext
        self.asterisk = asterisk
        self.folder = folder
        self.tone_hz = tone_hz
        self.auto_answer = auto_answer
        self.tone_path = write_tone(folder / f"tone-{ext}-{tone_hz}.wav", tone_hz)
        name = f"{ext}{label}"  # a label tells apart several runs of one extension's phone
        self.rec_path = folder / f"heard-{name}.wav"
        self.log_path = folder / f"pjsua-{name}.log"
        self.console_path = folder / f"pjsua-{name}.console"
        self.recording = Recording(self.rec_path)
        self.lines: list[tuple[float, str]] = []  # (monotonic time, console line)
        self.states: dict[int, str] = {}
        self._new_line = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<Phone {self.ext} {self.tone_hz} Hz>"

    # -- life ----------------------------------------------------------------------------------------------

    async def start(self, timeout: float = 20.0) -> None:
        site = self.asterisk.site
        sip_port = free_udp_port()
        rtp = free_udp_range(40)
        pjsua = self.asterisk.prefix / "bin" / "pjsua"
        args = [
            "--null-audio", "--clock-rate", "8000", "--snd-clock-rate", "8000", "--no-vad", "--ec-tail", "0",
            "--no-tones", "--add-codec", "PCMU", "--no-tcp", "--bound-addr", "127.0.0.1", "--ip-addr", "127.0.0.1",
            "--local-port", str(sip_port), "--rtp-port", str(rtp.start),
            "--id", f"sip:{self.ext}@127.0.0.1", "--registrar", f"sip:{site.sip_host}", "--realm", "*",
            "--username", self.ext, "--password", password_of(self.ext),
            "--play-file", str(self.tone_path), "--auto-play",
            "--rec-file", str(self.rec_path), "--auto-rec",
            "--log-file", str(self.log_path), "--log-level", "5", "--app-log-level", "3",
            "--max-calls", "4",
        ]
        if self.auto_answer:
            args += ["--auto-answer", "200"]
        # pjsua's log lines go through stdio: block-buffered into a pipe, they would arrive only when its menu
        # is printed again. stdbuf -oL makes them arrive as they are written.
        self._proc = await asyncio.create_subprocess_exec(
            "stdbuf", "-oL", str(pjsua), *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, cwd=self.folder, start_new_session=True)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        await self.wait_line(r"registration success", timeout=timeout, what="registration")
        await self.wait_online(timeout)

    async def wait_online(self, timeout: float = 20.0) -> None:
        """ARI shows the endpoint online (Asterisk's side of the registration)."""
        deadline = time.monotonic() + timeout
        while (state := await self.asterisk.endpoint_state(self.ext)) != "online":
            if time.monotonic() > deadline:
                raise PhoneError(f"{self.ext}: registered, but ARI shows the endpoint {state!r}")
            await asyncio.sleep(0.05)

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        with self.console_path.open("a") as console:
            while True:
                raw = await self._proc.stdout.readline()
                if not raw:
                    break
                line = raw.decode(errors="replace").rstrip("\r\n")
                console.write(line + "\n")
                console.flush()
                self.lines.append((time.monotonic(), line))
                if m := _STATE.search(line):
                    self.states[int(m.group(1))] = m.group(2)
                elif m := _DISCONNECTED.search(line):
                    self.states[int(m.group(1))] = "DISCONNECTED"
                self._new_line.set()
        self._new_line.set()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def stop(self, *, keep_recording: bool = True) -> None:
        """Quit pjsua: it hangs its calls up, unregisters, then idles a fixed second before it exits (pjsua_destroy
        lets ICE/TURN transports wind down; we have none) and writes the wav header. ``keep_recording=False``
        (the folder is about to be deleted) ends it once Asterisk has answered the unregistration instead."""
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            since = self.mark_line()
            with contextlib.suppress(ConnectionError, OSError):
                await self._send("q")
            if not keep_recording:
                with contextlib.suppress(PhoneError):
                    await self.wait_line(r"unregistration (success|failed)", since=since, timeout=3,
                                         what="the unregistration answered")
                    if proc.returncode is None:
                        proc.kill()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)

    # -- commands (pjsua's console menu) ------------------------------------------------------------------

    async def _send(self, *lines: str) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.returncode is not None:
            raise PhoneError(f"{self.ext}: pjsua is not running")
        proc.stdin.write("".join(line + "\n" for line in lines).encode())
        await proc.stdin.drain()

    def mark_line(self) -> int:
        """Index of the next console line: wait for something that happens after this point."""
        return len(self.lines)

    async def call(self, target: str) -> int:
        """Dial ``target`` (an extension, feature code or number) through Asterisk; returns the line mark."""
        since = self.mark_line()
        await self._send("m", f"sip:{target}@{self.asterisk.site.sip_host}")
        return since

    async def answer(self, code: int = 200) -> None:
        await self._send("a", str(code))

    async def hangup(self) -> None:
        """Hang up the current call."""
        await self._send("h")

    async def hangup_all(self) -> None:
        await self._send("ha")

    async def dtmf(self, digits: str) -> None:
        """RFC 2833 (RFC 4733) digits on the current call."""
        await self._send("#", digits)

    async def hold(self) -> None:
        await self._send("H")

    async def reinvite(self) -> None:
        """Re-INVITE the current call (takes it off hold)."""
        await self._send("v")

    async def blind_transfer(self, target: str) -> None:
        await self._send("x", f"sip:{target}@{self.asterisk.site.sip_host}")

    async def command(self, *lines: str) -> None:
        """Any other pjsua console command (one line per prompt it asks)."""
        await self._send(*lines)

    # -- waiting --------------------------------------------------------------------------------------------

    async def wait_line(self, pattern: str, *, since: int = 0, timeout: float = 15.0,
                        what: str = "") -> re.Match[str]:
        """The first console line from index ``since`` matching ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        index = since
        while True:
            while index < len(self.lines):
                if m := regex.search(self.lines[index][1]):
                    return m
                index += 1
            if self._proc is not None and self._proc.returncode is not None and self._reader is not None \
                    and self._reader.done():
                raise PhoneError(f"{self.ext}: pjsua exited while waiting for {what or pattern}")
            left = deadline - time.monotonic()
            if left <= 0:
                tail = "\n".join(line for _, line in self.lines[-15:])
                raise PhoneError(f"{self.ext}: no {what or pattern!r} within {timeout}s; last lines:\n{tail}")
            self._new_line.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_line.wait(), left)

    async def wait_state(self, state: str, *, since: int = 0, timeout: float = 15.0) -> int:
        """A call's state line (``CONFIRMED``, ``EARLY``, ``DISCONNECTED``…) after ``since``; returns the call id."""
        pattern = r"Call (\d+) is DISCONNECTED" if state == "DISCONNECTED" else rf"Call (\d+) state changed to {state}"
        m = await self.wait_line(pattern, since=since, timeout=timeout, what=f"call {state}")
        return int(m.group(1))

    async def wait_incoming(self, *, since: int = 0, timeout: float = 15.0) -> None:
        await self.wait_line(r"Incoming call for account", since=since, timeout=timeout, what="an incoming call")

    # -- what it heard --------------------------------------------------------------------------------------

    def recorded_seconds(self) -> float:
        """Seconds of audio in the recording so far (the file lags by pjsua's 0.25 s write buffer at most)."""
        try:
            size = self.rec_path.stat().st_size
        except FileNotFoundError:
            return 0.0
        return max(0, size - WAV_HEADER) / BYTES_PER_SECOND

    def mark(self) -> float:
        """A phase boundary as a recording offset (s): everything recorded before it is earlier audio."""
        return self.recorded_seconds()

    async def recorded_until(self, offset: float, timeout: float | None = None) -> None:
        """Wait until the recording holds audio up to ``offset`` seconds (audio accumulates in real time)."""
        limit = timeout if timeout is not None else (offset - self.recorded_seconds()) + 10
        deadline = time.monotonic() + limit
        while self.recorded_seconds() < offset:
            if time.monotonic() > deadline:
                raise PhoneError(f"{self.ext}: recording stuck at {self.recorded_seconds():.2f}s, wanted {offset}s")
            await asyncio.sleep(0.05)


class RecordingClock:
    """Maps recording offsets to wall-clock (monotonic) time by watching the file grow: pjsua writes its
    recording in blocks as the audio arrives, so when the file reaches N samples, sample N is about *now*.
    Polled every 2 ms while running; good to a few ms (the same error for every method a benchmark compares)."""

    def __init__(self, phone: Phone) -> None:
        self.phone = phone
        self.points: list[tuple[float, float]] = []  # (monotonic time, recorded seconds)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        last = -1.0
        while True:
            seconds = self.phone.recorded_seconds()
            if seconds != last:
                self.points.append((time.monotonic(), seconds))
                last = seconds
            await asyncio.sleep(0.002)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def wall(self, offset: float) -> float | None:
        """Monotonic time at which the audio at ``offset`` (s) was recorded, or None when not yet written."""
        for at, seconds in self.points:
            if seconds >= offset:
                return at - (seconds - offset)
        return None

    def offset(self, at: float) -> float:
        """The recording offset being written at monotonic time ``at`` (the inverse of :meth:`wall`)."""
        for when, seconds in self.points:
            if when >= at:
                return max(0.0, seconds - (when - at))
        return self.points[-1][1] if self.points else 0.0


class Phones:
    """Starts phones for a test and stops them after it; tones are handed out so no two phones share one."""

    def __init__(self, asterisk: RealAsterisk, folder: Path, *, shares_tones_with: Phones | None = None) -> None:
        """``shares_tones_with``: the phones of another Asterisk in the same test (no two phones share a tone)."""
        self.asterisk = asterisk
        self.folder = folder
        self.started: list[Phone] = []
        self.peer = shares_tones_with

    async def start(self, ext: str, *, tone_hz: int | None = None, auto_answer: bool = True,
                    label: str = "") -> Phone:
        used = {p.tone_hz for p in self.started + (self.peer.started if self.peer else []) if p.running}
        hz = tone_hz if tone_hz is not None else next(t for t in TONES if t not in used)
        phone = Phone(ext, self.asterisk, self.folder, hz, auto_answer=auto_answer, label=label)
        self.started.append(phone)
        await phone.start()
        return phone

    async def stop_all(self, *, keep_recordings: bool = True) -> None:
        await asyncio.gather(*(p.stop(keep_recording=keep_recordings) for p in self.started),
                             return_exceptions=True)


async def connected(a: Phone, a_since: int, b: Phone, b_since: int, timeout: float = 15.0) -> None:
    """Both ends of a call CONFIRMED (after their marks)."""
    await asyncio.gather(a.wait_state("CONFIRMED", since=a_since, timeout=timeout),
                         b.wait_state("CONFIRMED", since=b_since, timeout=timeout))

