"""A throw-away real Asterisk 22 with pjsua phones, to record captures for the simulator (not a test).

Starts the Asterisk that ``scripts/build-asterisk.sh`` built, with its own configs in a temporary folder
on free loopback ports (SIP, HTTP/ARI, AMI), and pjsua phones that play a tone and record what they hear.
Everything it starts it stops itself (by process id). ``record.py`` beside it drives the scenarios.
"""

from __future__ import annotations

import math
import os
import random
import socket
import struct
import subprocess
import tempfile
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
ARI_USER, ARI_PASSWORD, APP = "lab", "lab", "lab-test"


def asterisk_prefix() -> Path:
    """The cached build (exit 1 of ``--check`` means it is not built yet)."""
    out = subprocess.run([str(REPO / "scripts/build-asterisk.sh"), "--check"], capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        raise SystemExit("the real Asterisk is not built yet (scripts/build-asterisk.sh)")
    return Path(out.stdout.strip().splitlines()[-1])


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tone_wav(path: Path, hz: float, seconds: float = 10.0) -> None:
    """8 kHz 16-bit mono sine at -12 dBFS (pjsua loops it)."""
    amp = 32767 * 10 ** (-12 / 20)
    frames = b"".join(struct.pack("<h", int(amp * math.sin(2 * math.pi * hz * i / 8000)))
                      for i in range(int(8000 * seconds)))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(frames)


@dataclass
class Phone:
    ext: str
    tone: float
    answer: int | None = 200        # auto-answer code; None = let it ring
    proc: subprocess.Popen[str] | None = None
    out: list[str] = field(default_factory=list)
    heard: Path | None = None

    def send(self, line: str) -> None:
        assert self.proc and self.proc.stdin
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def call(self, uri: str) -> None:
        self.send("m")
        time.sleep(0.2)
        self.send(uri)

    def hangup(self) -> None:
        self.send("h")


class Lab:
    def __init__(self, dialplan: str, phones: list[Phone], workdir: Path | None = None) -> None:
        self.prefix = asterisk_prefix()
        self.dir = workdir or Path(tempfile.mkdtemp(prefix="cc-lab-"))
        self.dialplan = dialplan
        self.phones = {p.ext: p for p in phones}
        self.sip_port = free_port(socket.SOCK_DGRAM)
        self.http_port = free_port()
        self.ami_port = free_port()
        base = random.randrange(10000, 19000, 100)
        self.rtp = (base, base + 99)
        self.ast: subprocess.Popen[bytes] | None = None

    @property
    def ari_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/ari"

    def write_configs(self) -> None:
        d, p = self.dir, self.prefix
        for sub in ("run", "log", "spool/recording", "db", "keys"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        files = {
            "asterisk.conf": f"""[directories]
astetcdir => {d}
astmoddir => {p}/lib/asterisk/modules
astvarlibdir => {p}/var/lib/asterisk
astdbdir => {d}/db
astkeydir => {d}/keys
astdatadir => {p}/var/lib/asterisk
astagidir => {p}/var/lib/asterisk/agi-bin
astspooldir => {d}/spool
astrundir => {d}/run
astlogdir => {d}/log
astsbindir => {p}/sbin
[options]
verbose = 3
runuser = root
rungroup = root
transmit_silence = yes
""",
            "modules.conf": """[modules]
autoload = yes
noload = chan_iax2.so
noload = chan_unistim.so
noload = pbx_dundi.so
noload = app_voicemail.so
noload = res_hep.so
noload = res_hep_rtcp.so
noload = res_hep_pjsip.so
noload = cdr_sqlite3_custom.so
noload = cel_sqlite3_custom.so
noload = res_config_sqlite3.so
noload = chan_mgcp.so
noload = chan_skinny.so
""",
            "logger.conf": "[general]\n[logfiles]\nmessages.log => notice,warning,error,verbose(3)\n",
            "http.conf": f"[general]\nenabled = yes\nbindaddr = 127.0.0.1\nbindport = {self.http_port}\n",
            "ari.conf": f"[general]\nenabled = yes\npretty = no\n[{ARI_USER}]\ntype = user\nread_only = no\n"
                        f"password = {ARI_PASSWORD}\npassword_format = plain\n",
            "manager.conf": f"[general]\nenabled = yes\nwebenabled = no\nport = {self.ami_port}\nbindaddr = 127.0.0.1\n"
                            f"[{ARI_USER}]\nsecret = {ARI_PASSWORD}\ndeny = 0.0.0.0/0.0.0.0\n"
                            "permit = 127.0.0.1/255.255.255.255\nread = all\nwrite = all\nwritetimeout = 5000\n",
            "rtp.conf": f"[general]\nrtpstart = {self.rtp[0]}\nrtpend = {self.rtp[1]}\n",
            "musiconhold.conf": "[default]\nmode = files\ndirectory = /usr/share/asterisk/moh\n",
            "extensions.conf": "[general]\nstatic = yes\nwriteprotect = yes\n[globals]\n" + self.dialplan,
            "pjsip.conf": self._pjsip(),
            "cdr.conf": "[general]\nenable = no\n",
        }
        for name, text in files.items():
            (d / name).write_text(text)

    def _pjsip(self) -> str:
        out = [f"[transport-udp]\ntype = transport\nprotocol = udp\nbind = 127.0.0.1:{self.sip_port}\n"]
        for ext in self.phones:
            out.append(f"""[{ext}]
type = endpoint
context = internal
disallow = all
allow = ulaw
auth = {ext}
aors = {ext}
direct_media = no
rtp_symmetric = yes
force_rport = yes
rewrite_contact = yes
media_address = 127.0.0.1
bind_rtp_to_media_address = yes
dtmf_mode = rfc4733
[{ext}]
type = auth
auth_type = userpass
username = {ext}
password = pw{ext}
[{ext}]
type = aor
max_contacts = 1
remove_existing = yes
""")
        return "\n".join(out)

    def cli(self, command: str) -> str:
        out = subprocess.run([str(self.prefix / "sbin/asterisk"), "-C", str(self.dir / "asterisk.conf"), "-rx",
                              command], capture_output=True, text=True, timeout=30, check=False)
        return out.stdout

    def start(self) -> None:
        self.write_configs()
        self.ast = subprocess.Popen([str(self.prefix / "sbin/asterisk"), "-C", str(self.dir / "asterisk.conf"),
                                     "-f", "-n", "-g"], stdin=subprocess.DEVNULL,
                                    stdout=open(self.dir / "asterisk.out", "wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (self.dir / "run/asterisk.ctl").exists() and "fully booted" in self.cli("core waitfullybooted").lower():
                return
            time.sleep(0.2)
        raise RuntimeError(f"Asterisk did not boot (see {self.dir}/asterisk.out)")

    def start_phone(self, phone: Phone) -> None:
        wav = self.dir / f"tone-{phone.ext}.wav"
        tone_wav(wav, phone.tone)
        phone.heard = self.dir / f"heard-{phone.ext}.wav"
        rtp = 20000 + (int(phone.ext) % 100) * 40 + random.randrange(0, 20) * 1000
        args = [str(self.prefix / "bin/pjsua"), "--null-audio", "--clock-rate", "8000", "--snd-clock-rate", "8000",
                "--no-vad", "--ec-tail", "0", "--no-tones", "--add-codec", "PCMU", "--no-tcp",
                "--bound-addr", "127.0.0.1", "--ip-addr", "127.0.0.1",
                "--local-port", str(free_port(socket.SOCK_DGRAM)),
                "--rtp-port", str(rtp), "--id", f"sip:{phone.ext}@127.0.0.1",
                "--registrar", f"sip:127.0.0.1:{self.sip_port}", "--realm", "*", "--username", phone.ext,
                "--password", f"pw{phone.ext}", "--play-file", str(wav), "--auto-play",
                "--rec-file", str(phone.heard), "--auto-rec", "--log-file", str(self.dir / f"pjsua-{phone.ext}.log"),
                "--log-level", "5", "--app-log-level", "3", "--max-calls", "4"]
        if phone.answer is not None:
            args += ["--auto-answer", str(phone.answer)]
        phone.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, bufsize=1)
        os.set_blocking(phone.proc.stdout.fileno(), False)  # type: ignore[union-attr]

    def pump(self) -> None:
        """Read what the phones printed so far."""
        for phone in self.phones.values():
            if phone.proc and phone.proc.stdout:
                while True:
                    line = phone.proc.stdout.readline()
                    if not line:
                        break
                    phone.out.append(line.rstrip())

    def stop(self) -> None:
        for phone in self.phones.values():
            if phone.proc and phone.proc.poll() is None:
                try:
                    phone.send("q")
                    phone.proc.wait(3)
                except (OSError, subprocess.TimeoutExpired):
                    phone.proc.kill()
        if self.ast and self.ast.poll() is None:
            self.cli("core stop now")
            try:
                self.ast.wait(15)
            except subprocess.TimeoutExpired:
                self.ast.kill()
