"""Transports over real sockets, pty pairs as serial ports, and real files — no mocked transport."""

from __future__ import annotations

import asyncio
import os
import tty
from pathlib import Path

import pytest

from bridges.legacy_pbx.decoder import LegacyDecoder
from bridges.legacy_pbx.link import pump
from bridges.legacy_pbx.records import Alarm, Item, LegacyCall
from bridges.legacy_pbx.testing import FakePanasonic, stepping_clock
from bridges.legacy_pbx.transports import Backoff, FileTransport, SerialTransport, TcpTransport
from tests.waiting import eventually

OUT = b"06/01/11 15:11     101 01 09332991400                    00:00'39               \r\n"
ALM = b"06/01/11 15:49    MN ALM #510 00 10000 SMDR disconnect\r\n"


class Collector:
    def __init__(self) -> None:
        self.items: list[Item] = []
        self.changed = asyncio.Event()

    async def __call__(self, items: list[Item]) -> None:
        self.items += items
        self.changed.set()

    async def wait_calls(self, n: int, timeout: float = 5.0) -> list[LegacyCall]:
        async def until() -> None:
            while len(self.calls) < n:
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(until(), timeout)
        return self.calls

    @property
    def calls(self) -> list[LegacyCall]:
        return [i for i in self.items if isinstance(i, LegacyCall)]


async def test_tcp_logs_in_with_smdr_and_the_password_then_reads_records_and_alarms() -> None:
    pbx = await FakePanasonic().start()
    transport = TcpTransport("127.0.0.1", pbx.port, name="t", login_settle=0.1)
    sink = Collector()
    task = asyncio.create_task(pump(transport, LegacyDecoder("panasonic"), sink))
    try:
        await asyncio.wait_for(pbx.logged_in.wait(), 5)
        await pbx.send(ALM + OUT)
        calls = await sink.wait_calls(1)
        assert calls[0].number_raw == "09332991400"
        assert any(isinstance(i, Alarm) for i in sink.items)
        assert transport.status.state == "connected" and pbx.logins == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pbx.close()


async def test_tcp_reconnects_with_backoff_after_the_pbx_drops_the_link() -> None:
    pbx = await FakePanasonic().start()
    transport = TcpTransport("127.0.0.1", pbx.port, backoff=Backoff(base=0.05, cap=0.2), login_settle=0.1)
    sink = Collector()
    task = asyncio.create_task(pump(transport, LegacyDecoder("panasonic"), sink))
    try:
        await asyncio.wait_for(pbx.logged_in.wait(), 5)
        await eventually(lambda: transport.status.state == "connected", what="the first connection")
        await pbx.drop_clients()
        await asyncio.wait_for(pbx.logged_in.wait(), 5)
        await pbx.send(OUT)
        await sink.wait_calls(1)
        assert pbx.logins == 2 and transport.status.connects == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pbx.close()


async def test_a_rejected_password_is_a_clear_error_and_is_not_retried_in_a_tight_loop(
        caplog: pytest.LogCaptureFixture) -> None:
    pbx = await FakePanasonic(password="SECRET").start()
    transport = TcpTransport("127.0.0.1", pbx.port, password="PCCSMDR", rejected_delay=300,
                             backoff=Backoff(base=0.01, cap=0.01))
    task = asyncio.create_task(pump(transport, LegacyDecoder("panasonic"), Collector()))
    try:
        # "error" is set as the transport begins its long wait: a tight loop would have reconnected by now
        await eventually(lambda: transport.status.state == "error", what="the rejection")
        assert pbx.rejected == 1 and pbx.connections == 1
        assert "rejected" in transport.status.error
        assert transport.status.as_dict()["retry_in_seconds"] == 300
        assert "event=legacy_login_rejected" in caplog.text and "PCCSMDR" not in caplog.text  # no secrets
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pbx.close()


async def test_a_pbx_that_sends_no_prompt_still_gets_the_login() -> None:
    pbx = await FakePanasonic(prompt=False).start()
    transport = TcpTransport("127.0.0.1", pbx.port, prompt_timeout=0.3, login_settle=0.1)
    sink = Collector()
    task = asyncio.create_task(pump(transport, LegacyDecoder("panasonic"), sink))
    try:
        await asyncio.wait_for(pbx.logged_in.wait(), 10)
        await pbx.send(OUT)
        await sink.wait_calls(1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pbx.close()


async def test_serial_port_reads_a_caller_id_box_on_a_pty() -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    device = os.ttyname(slave)
    transport = SerialTransport(device, baud=9600)
    sink = Collector()
    task = asyncio.create_task(pump(transport, LegacyDecoder("segal", clock=stepping_clock()), sink))
    try:
        await eventually(lambda: transport.status.state == "connected", what="the pty opened")
        os.write(master, b"\r\nL1HF@\r\n\r\nL1D0@\r\nL1D2@\r\nL1HND:02 T0012@\r\n")
        calls = await sink.wait_calls(1)
        assert (calls[0].number_raw, calls[0].talk_seconds, calls[0].line) == ("02", 12, "1")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        os.close(master)
        os.close(slave)


async def test_serial_port_that_does_not_exist_is_retried_and_reported() -> None:
    transport = SerialTransport("/dev/does-not-exist-legacy", backoff=Backoff(base=0.01, cap=0.02))
    task = asyncio.create_task(pump(transport, LegacyDecoder("segal"), Collector()))
    try:
        await eventually(lambda: transport.status.state == "reconnecting", what="the first failed open")
        assert "does-not-exist" in transport.status.error
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_file_import_reads_to_the_end_and_tail_follows_growth_and_rotation(tmp_path: Path) -> None:
    path = tmp_path / "smdr.txt"
    path.write_bytes(OUT)
    sink = Collector()
    await pump(FileTransport(path), LegacyDecoder("panasonic"), sink)
    assert len(sink.calls) == 1

    tail_sink = Collector()
    task = asyncio.create_task(pump(FileTransport(path, tail=True, poll=0.02), LegacyDecoder("panasonic"), tail_sink))
    try:
        await tail_sink.wait_calls(1)
        with path.open("ab") as fh:
            fh.write(OUT.replace(b"15:11", b"15:12"))
        await tail_sink.wait_calls(2)
        path.unlink()
        path.write_bytes(OUT.replace(b"15:11", b"15:13"))  # rotated: a new, shorter file
        await tail_sink.wait_calls(3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_missing_import_file_is_an_error() -> None:
    with pytest.raises(FileNotFoundError):
        await pump(FileTransport("/nonexistent/smdr.txt"), LegacyDecoder("panasonic"), Collector())


async def test_the_service_follows_a_capture_file_from_its_end(tmp_path: Path) -> None:
    path = tmp_path / "smdr.txt"
    path.write_bytes(OUT)  # history: left to `legacy import`
    sink = Collector()
    transport = FileTransport(path, tail=True, poll=0.02, start_at_end=True)
    task = asyncio.create_task(pump(transport, LegacyDecoder("panasonic"), sink))
    try:
        await eventually(lambda: transport.status.state != "starting", what="the file opened")
        with path.open("ab") as fh:
            fh.write(OUT.replace(b"15:11", b"15:12"))
        await sink.wait_calls(1)
        with path.open("ab") as fh:  # the marker: lines are read in file order, history (15:11) would come first
            fh.write(OUT.replace(b"15:11", b"15:14"))
        calls = await sink.wait_calls(2)
        assert [c.natural_key[:14] for c in calls] == ["06/01/11 15:12", "06/01/11 15:14"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
