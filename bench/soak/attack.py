"""The API as an attacker sees it: schemathesis (all checks, every role) and a corpus of crafted inputs.

Schemathesis runs as its CLI does for a user (``schemathesis run <openapi.json> --checks all``) against the
service of a soak world, once per role with a fresh token, its JSON report read back. The injection corpus
below is sent with an admin token (so a refusal is about the input, never about permissions): every entry
must be refused with a 4xx — a 2xx means the input was taken, a 5xx means it broke something.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.soak.world import World, wait_for
from callcenter.store.tokens import create_token

SERVER_ERROR_CODES = {"ST101", "ST500", "ServerError"}  # schemathesis' "server error" failure


@dataclass
class SchemathesisResult:
    role: str
    generated: int = 0
    failures: Counter[str] = field(default_factory=Counter)  # "CODE title" → count
    server_errors: int = 0
    exit_code: int | None = None
    stop_reason: str = ""
    examples: dict[str, str] = field(default_factory=dict)  # code → "METHOD path → status" of its first case

    @property
    def violations(self) -> int:
        return sum(self.failures.values()) - self.server_errors

    @property
    def limiter(self) -> int:
        """ST401 failures whose every case was answered 429: the failed-token limiter (issue 12 item 11) at work."""
        if not only_status(self.examples.get("ST401", ""), "429"):
            return 0
        return sum(n for k, n in self.failures.items() if k.startswith("ST401 "))


async def schemathesis_role(world: World, role: str, max_examples: int, max_time: int) -> SchemathesisResult:
    extension = "1001" if role == "agent" else ""
    _row, token = await create_token(world.ctx.store.pool, role=role, extension=extension, name=f"schemathesis-{role}")
    report = Path(tempfile.mkdtemp(prefix="cc-soak-st-")) / "report.json"
    exe = str(Path(sys.executable).with_name("schemathesis"))
    proc = await asyncio.create_subprocess_exec(
        exe, "run", f"{world.base}/api/v1/openapi.json", "--checks", "all", "-H", f"Authorization: Bearer {token}",
        "-n", str(max_examples), "--max-time", str(max_time), "--seed", "12", "--exclude-path", "/api/v1/events",
        "--request-timeout", "20", "--report", "json", "--report-json-path", str(report),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=report.parent)  # its cache stays there
    result = SchemathesisResult(role)
    out, _ = await proc.communicate()
    result.exit_code = proc.returncode
    (report.parent / "output.txt").write_bytes(out)
    result.examples = first_examples(out.decode(errors="replace"))
    if not report.exists():
        result.failures["no report"] += 1
        return result
    data: dict[str, Any] = json.loads(report.read_text())
    result.generated = int(data.get("test_cases", {}).get("generated", 0))
    result.stop_reason = str(data.get("stop_reason", ""))
    for failure in data.get("failures", []):
        key = f"{failure.get('code')} {failure.get('title')}"
        result.failures[key] += int(failure.get("count", 1))
        if failure.get("code") in SERVER_ERROR_CODES or failure.get("type") == "ServerError":
            result.server_errors += int(failure.get("count", 1))
    return result


_OPERATION = re.compile(r"^_+ (\S.*?) _+$")  # "POST /api/v1/calls", "Stateful tests"
_CHECK = re.compile(r"^- (ST\d+) ")
_STATUS = re.compile(r"^\[(\d{3})\] ")


def first_examples(output: str) -> dict[str, str]:
    """From schemathesis' console report: per failure code, the statuses its cases got and a first operation."""
    first: dict[str, str] = {}
    statuses: dict[str, Counter[str]] = {}
    operation = ""
    codes: list[str] = []  # the checks one case failed, until its response line
    for line in output.splitlines():
        if m := _OPERATION.match(line.strip()):
            operation, codes = m.group(1), []
        elif m := _CHECK.match(line.strip()):
            codes.append(m.group(1))
        elif (m := _STATUS.match(line.strip())) and codes:
            for code in codes:
                statuses.setdefault(code, Counter())[m.group(1)] += 1
                first.setdefault(code, operation)
            codes = []
    return {c: f"{first[c]}; answered {', '.join(f'{s}×{n}' for s, n in statuses[c].most_common())}" for c in first}


def only_status(example: str, status: str) -> bool:
    """Did every case of this failure get ``status`` (per :func:`first_examples`)?"""
    answered = example.partition("; answered ")[2]
    return bool(answered) and all(part.split("×")[0] == status for part in answered.split(", "))


# (label, method, path, json body or raw bytes, query) — every one must be answered 4xx.
Entry = tuple[str, str, str, Any, dict[str, str] | None]


def corpus(call_id: str) -> list[Entry]:
    c2c = "/api/v1/calls"
    out: list[Entry] = []
    for number in ("0501234567&PJSIP/9999", "0501234567,,t", "0501234567)", "${SHELL(id)}", "0501234567\nChannel: x",
                   "0501234567;", "0501234567|x", "../../etc/passwd", "0501234567' OR '1'='1", "'; DROP TABLE calls;--",
                   "\uff10\uff15\uff10\uff11", "0501234567\x00", "9" * 5000, "", "Local/0501234567@from-internal",
                   "0501234567@trunk", "*3361002&", "+", "%30%35"):
        body = {"extension": "1001", "number": number}
        out.append((f"click-to-call number {number[:24]!r}", "POST", c2c, body, None))
    for ext in ("1001&PJSIP/1002", "1001/../x", "PJSIP/1001", "${EXTEN}", "1001 ", "-1", "1" * 40):
        out.append((f"click-to-call extension {ext[:24]!r}", "POST", c2c, {"extension": ext, "number": "0501234567"},
                    None))
    for caller_id in ("ACME Sales", "0501234567\r\nX: y", "${CALLERID(num)}", "<script>"):
        out.append((f"click-to-call caller_id {caller_id!r}", "POST", c2c,
                    {"extension": "1001", "number": "0501234567", "caller_id": caller_id}, None))
    for target in ("2002&PJSIP/9999", "${SHELL(id)}", "2002\n", "Local/2002@x", "2002,t"):
        out.append((f"transfer target {target!r}", "POST", f"/api/v1/calls/{call_id}/transfer", {"target": target},
                    None))
    out.append(("JSON nested 5,000 deep", "POST", c2c, b"[" * 5000 + b"]" * 5000, None))
    out.append(("JSON object nested 5,000 deep", "POST", c2c, b'{"a":' * 5000 + b"1" + b"}" * 5000, None))
    out.append(("body of 3 MB", "POST", c2c, b'{"extension": "1001", "number": "' + b"1" * 3_000_000 + b'"}', None))
    out.append(("body that is not JSON", "POST", c2c, b"extension=1001&number=0501234567", None))
    out.append(("unknown body field", "POST", c2c, {"extension": "1001", "number": "0501234567", "context": "x"}, None))
    for key, value in (("cursor", "0001-01-01T00:00+14:00"), ("cursor", "' OR 1=1 --"), ("from", "1' OR '1'='1"),
                       ("until", "99999-01-01"), ("limit", "1;DROP TABLE calls"), ("limit", "-1"), ("limit", "9" * 400),
                       ("direction", "inbound' --"), ("status", "answered;"), ("has_recording", "yes please"),
                       ("from", "9" * 5000)):
        out.append((f"call log {key}={value[:24]!r}", "GET", "/api/v1/calls", None, {key: value}))
    for path in ("/api/v1/calls/..%2F..%2Fetc%2Fpasswd/recording", "/api/v1/calls/%2e%2e/recording",
                 "/api/v1/calls/not-a-uuid", "/api/v1/calls/00000000-0000-0000-0000-000000000000%00/recording"):
        out.append((f"path {path[14:50]!r}", "GET", path, None, None))
    for url in ("http://127.0.0.1:8080/hook", "http://169.254.169.254/latest/meta-data/", "http://[::1]/x",
                "http://0x7f000001/x", "http://2130706433/x", "http://localhost/x", "http://example.com/\r\nX: y",
                "file:///etc/passwd", "gopher://127.0.0.1:25/", "http://10.0.0.1/x", "http://[::ffff:127.0.0.1]/x"):
        out.append((f"webhook url {url[:40]!r}", "POST", "/api/v1/admin/webhooks", {"url": url}, None))
    return out


@dataclass
class CorpusResult:
    sent: int = 0
    refused: int = 0
    live_call: bool = False  # the transfer entries aimed at a call that was really up
    accepted: list[str] = field(default_factory=list)  # 2xx/3xx: the input was taken
    broke: list[str] = field(default_factory=list)  # 5xx or no answer
    five_xx: int = 0


async def injection_corpus(world: World) -> CorpusResult:
    headers = {"Authorization": f"Bearer {world.admin_token}"}
    result = CorpusResult()
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=30)) as session:
        world.sim.phone("1001").answer_after(0.05)
        async with session.post(world.base + "/api/v1/calls", json={"extension": "1001", "number": "0501234567"}) as r:
            body = await r.json()
        call_id = str(body.get("id") or body.get("call_id") or "00000000-0000-0000-0000-000000000000")
        try:
            await wait_for(lambda: len(world.sim.channels()) >= 2, 10, "the click-to-call is up")
            result.live_call = True
        except TimeoutError:
            pass
        for label, method, path, payload, query in corpus(call_id):
            result.sent += 1
            kwargs: dict[str, Any] = {"params": query}
            if isinstance(payload, bytes):
                kwargs["data"] = payload
                kwargs["headers"] = {"Content-Type": "application/json"}
            elif payload is not None:
                kwargs["json"] = payload
            try:
                async with session.request(method, world.base + path, **kwargs) as resp:
                    text = (await resp.read())[:200].decode("utf-8", "replace")
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                result.broke.append(f"{label}: no answer ({type(exc).__name__})")
                continue
            if 400 <= status < 500:
                result.refused += 1
            elif status >= 500:
                result.five_xx += 1
                result.broke.append(f"{label}: {status} {text}")
            else:
                result.accepted.append(f"{label}: {status}")
    await _credentials_not_echoed(world, result)
    return result


async def _credentials_not_echoed(world: World, result: CorpusResult) -> None:
    """A webhook URL with credentials may be refused, or taken — but then never shown back (issue 12: 16)."""
    headers = {"Authorization": f"Bearer {world.admin_token}"}
    url = "http://soak-user:soak-secret-pw@example.com/hook"
    result.sent += 1
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=30)) as session:
        async with session.post(world.base + "/api/v1/admin/webhooks", json={"url": url}) as resp:
            status = resp.status
        if 400 <= status < 500:
            result.refused += 1
            return
        async with session.get(world.base + "/api/v1/admin/webhooks") as resp:
            listed = await resp.text()
    if status >= 500:
        result.five_xx += 1
        result.broke.append(f"webhook url with credentials: {status}")
    elif "soak-secret-pw" in listed:
        result.accepted.append("webhook url with credentials: taken and its password shown back by GET")
    else:
        result.refused += 1  # taken, credentials kept out of every answer: what the issue asks
