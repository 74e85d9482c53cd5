"""The call history page in Chromium: filters, keyset pages, CSV of the same filter, a call's timeline and its
recording played in the page (the audio element gets Range answers and seeks). Real API, real Postgres."""

from __future__ import annotations

import csv
import io
import math
import os
import struct
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from callcenter.config import parse_config
from callcenter.domain import CallEvent, CallRecord, CallStatus, Direction, QueueAttempt, Source, call_id_for
from callcenter.store import CallStore
from callcenter.store import admin as admin_store
from tests.browser.chromium import CHROMIUM, artifact, chromium_page
from tests.live.liveapi import LiveApi, start_api

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed")]
DAY = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
CUSTOMER = "+442079460555"
FOUND = call_id_for("old", "history-found")


def tone_wav(path: Path, seconds: int = 8, rate: int = 8000) -> None:
    """A real WAV (8 kHz, 16-bit mono, a 440 Hz tone) long enough to seek in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * n / rate)))
                                 for n in range(seconds * rate)))


async def seed(store: CallStore) -> None:
    """30 calls of 201 / 202 over the last two hours, and one inbound call with a full story and a recording."""
    for n in range(30):
        at = DAY + timedelta(minutes=2 * n)
        await store.upsert_call(CallRecord(
            id=call_id_for("main", f"h-{n}"), pbx="main", source=Source.ARI, source_id=f"h-{n}", started_at=at,
            direction=Direction.INBOUND if n % 3 else Direction.OUTBOUND,
            status=CallStatus.ANSWERED if n % 4 else CallStatus.MISSED, extension="201" if n % 2 else "202",
            caller=f"+4420794601{n:02d}", callee="201" if n % 2 else "202", billsec=30 + n, duration=40 + n,
            answered_at=at + timedelta(seconds=5) if n % 4 else None, ended_at=at + timedelta(seconds=40 + n)))
    at = DAY + timedelta(minutes=75, seconds=30)
    await store.upsert_call(CallRecord(
        id=FOUND, pbx="old", source=Source.SMDR, source_id="history-found", started_at=at, direction=Direction.INBOUND,
        status=CallStatus.ANSWERED, caller=CUSTOMER, caller_name="Umbrella Corp", callee="201", extension="201",
        queue="support", answered_at=at + timedelta(seconds=6), ended_at=at + timedelta(seconds=96), billsec=90,
        duration=96, ring_seconds=6, hangup_cause="Normal Clearing", recording="2026/history-found.wav"))
    story = [(0, "ring", "ari", {"extension": "202"}), (1, "ring", "ari", {"extension": "201"}),
             (6, "answer", "ari", {"extension": "201"}), (20, "hold", "ami", {"extension": "201"}),
             (31, "unhold", "ami", {"extension": "201"}),
             (40, "monitor_start", "ari", {"supervisor": "200", "target": "201", "mode": "listen"}),
             (52, "monitor_mode", "ari", {"supervisor": "200", "target": "201", "from": "listen", "to": "barge"}),
             (60, "monitor_stop", "ari", {"supervisor": "200", "target": "201", "mode": "barge"}),
             (96, "hangup", "smdr", {"cause": "Normal Clearing", "status": "answered"})]
    for offset, kind, source, data in story:
        await store.add_event(CallEvent(call_id=FOUND, at=at + timedelta(seconds=offset), kind=kind, source=source,
                                        data=data, dedupe_key=f"{kind}:{offset}"))
    await store.add_queue_attempt(QueueAttempt(call_id=FOUND, queue="support", extension="202", started_at=at,
                                               ring_seconds=1, result="no_answer"))
    await store.add_queue_attempt(QueueAttempt(call_id=FOUND, queue="support", extension="201",
                                               started_at=at + timedelta(seconds=1), ring_seconds=5, result="answered"))
    for number, department in (("201", "Sales"), ("202", "Support")):
        await admin_store.put_extension(store.pool, "", number, "", department, "")


async def start(store: CallStore, tmp_path: Path) -> LiveApi:
    recordings = tmp_path / "recordings"
    tone_wav(recordings / "2026" / "history-found.wav")
    config = parse_config({"pbx": [{"key": "main", "kind": "asterisk"},
                                   {"key": "old", "kind": "panasonic", "legacy": {"recordings_dir": str(recordings)}}]},
                          env={})
    api = await start_api(store, tmp_path, config=config)
    await seed(store)
    return api


async def rows(page: Any) -> list[str]:
    found: list[str] = await page.eval_on_selector_all("#history-rows tr", "ns => ns.map(n => n.dataset.call)")
    return found


async def search(page: Any, **fields: str) -> None:
    """Fill the filter form and wait for the table the API answered for it."""
    before = await page.get_attribute("#history-rows", "data-loaded")
    for name, value in fields.items():
        field = f'#history-filters [name="{name}"]'
        if await page.eval_on_selector(field, "n => n.tagName") == "SELECT":
            await page.select_option(field, value)
        else:
            await page.fill(field, value)
    await page.click('#history-filters button[type="submit"]')
    await page.wait_for_function("b => document.querySelector('#history-rows').dataset.loaded !== b", arg=before)


async def test_history_finds_a_call_shows_its_timeline_plays_its_recording_and_exports_the_filter(
        store: CallStore, tmp_path: Path) -> None:
    api = await start(store, tmp_path)
    base = api.url("/")
    try:
        async with chromium_page(base) as watched:
            page = watched.page
            ranges: list[tuple[str | None, int]] = []
            page.on("response", lambda r: ranges.append((r.request.headers.get("range"), r.status))
                    if "/recording" in r.url else None)
            await page.goto(f"{base}?access_token={api.tokens['supervisor']}#history")
            await page.wait_for_selector("#history-rows[data-loaded]")
            assert await page.get_attribute('#views a[data-view="history"]', "aria-current") == "page"

            # keyset pages: 31 calls, 25 a page
            first = await rows(page)
            assert len(first) == 25
            reply = await api.client.get("/api/v1/calls", params={"limit": "25"}, headers=api.auth("supervisor"))
            assert first == [c["id"] for c in (await reply.json())["items"]]  # the API's own order
            before = await page.get_attribute("#history-rows", "data-loaded")
            await page.click("#history-next")
            await page.wait_for_function("b => document.querySelector('#history-rows').dataset.loaded !== b",
                                         arg=before)
            second = await rows(page)
            assert len(second) == 6 and not set(first) & set(second)
            assert await page.is_disabled("#history-next")

            # a department (from the extension directory) and a status
            await search(page, department="Support", status="missed")
            reply = await api.client.get("/api/v1/calls", params={"department": "Support", "status": "missed"},
                                         headers=api.auth("supervisor"))
            expected = [c["id"] for c in (await reply.json())["items"]]
            assert await rows(page) == expected and len(expected) == 8  # n % 4 == 0 are missed, all even (202)

            # the CSV is the same filter
            async with page.expect_download() as download:
                await page.click("#csv-link")
            saved = await (await download.value).path()
            with open(saved, encoding="utf-8") as file:
                exported = list(csv.reader(io.StringIO(file.read())))
            assert exported[0][0] == "id" and [r[0] for r in exported[1:]] == expected

            # found by number; its timeline and queue attempts
            await search(page, department="", status="", number="*0555")
            assert await rows(page) == [str(FOUND)]
            await page.click(f'#history-rows tr[data-call="{FOUND}"]')
            await page.wait_for_selector(f'#call-detail[data-call="{FOUND}"]')
            assert page.url.endswith(f"#history/{FOUND}")
            timeline = await page.eval_on_selector_all("#detail-timeline li", "ns => ns.map(n => n.textContent)")
            assert [line.split(" ", 1)[0] for line in timeline] == [
                "+0:00", "+0:01", "+0:06", "+0:20", "+0:31", "+0:40", "+0:52", "+1:00", "+1:36"]
            assert "Monitoring started by 200 · on 201 · listen" in timeline[5] and timeline[5].endswith("ari")
            assert "listen → barge" in timeline[6]
            assert "Put on hold" in timeline[3] and timeline[3].endswith("ami")
            assert "Hung up cause: Normal Clearing" in timeline[8] and timeline[8].endswith("smdr")
            attempts = await page.eval_on_selector_all("#detail-attempts li", "ns => ns.map(n => n.textContent)")
            assert ["no_answer" in attempts[0], "answered" in attempts[1]] == [True, True]
            facts = await page.text_content("#detail-facts")
            assert "Normal Clearing" in facts and "SMDR" in facts

            # the recording plays in the page and seeks (Range requests answered with 206)
            await page.wait_for_function("document.querySelector('#recording').readyState >= 3")  # canplay
            duration = await page.evaluate("document.querySelector('#recording').duration")
            assert 7.9 < duration < 8.1
            position = await page.evaluate("""() => new Promise(done => {
                const audio = document.querySelector('#recording');
                audio.addEventListener('seeked', () => done(audio.currentTime), { once: true });
                audio.currentTime = 5.5;
            })""")
            assert abs(position - 5.5) < 0.1
            assert any(header and header.startswith("bytes=") and status == 206 for header, status in ranges), ranges
            await page.screenshot(path=artifact("history.png"), full_page=True)
            watched.assert_clean()
    finally:
        await api.close()
