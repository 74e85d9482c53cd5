"""The FastAGI server over real sockets, with Asterisk's exact environment bytes and reply formats."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from agi_scripts.context import HandlerContext
from agi_scripts.server import FastAgiServer
from callcenter.domain import CallRecord, Direction, Source, call_id_for
from callcenter.store import CallStore, SpooledWriter
from tests.agi.agi_helpers import (
    AgiExchange,
    Replier,
    capture_environments,
    default_replies,
    env_text,
    fastagi_call,
    make_config,
)
from tests.waiting import eventually

LINKEDID = "1764099785.48"
URL_TAIL = f"pbx=main&linkedid={LINKEDID}"


async def agi(server: FastAgiServer, env: str | bytes, replies: Replier | None = None) -> AgiExchange:
    """One request as Asterisk makes it, then wait until the server has also made its store write."""
    exchange = await fastagi_call(server.port, env, replies)
    await server.idle()
    return exchange


async def calls_rows(store: CallStore) -> list[dict[str, Any]]:
    async with store.pool.acquire() as conn:
        return [dict(r) for r in await conn.fetch("SELECT * FROM calls ORDER BY started_at")]


async def test_the_captured_environment_for_an_unknown_script_is_refused_and_closed(fastagi, caplog) -> None:
    caplog.set_level(logging.WARNING, "agi_scripts")
    exchange = await agi(fastagi.server, capture_environments()[0])
    assert exchange.commands == [] and exchange.closed_by_server
    assert fastagi.server.stats.refused == 1
    assert "reason=unknown_script" in caplog.text and "script=lab" in caplog.text
    assert await calls_rows(fastagi.store) == []


async def test_inbound_call_is_tagged_with_number_department_and_channel_variables(fastagi) -> None:
    env = env_text(f"tag-inbound?{URL_TAIL}", uniqueid=LINKEDID, callerid="02075550142",
                   calleridname="ALICE MOBILE", args=("02075550100",))
    exchange = await agi(fastagi.server, env)
    call_id = call_id_for("main", LINKEDID)
    variables = exchange.set_variables()
    assert variables["CC_CALL_ID"] == str(call_id)
    assert variables["CC_DIRECTION"] == "inbound"
    assert variables["CC_DEPARTMENT"] == "sales"
    assert variables["CC_CALLER"] == "+442075550142"
    assert "CALLERID(name)" not in variables  # no CRM configured: Asterisk's name stays
    [row] = await calls_rows(fastagi.store)
    assert row["id"] == call_id and row["source"] == "agi" and row["source_id"] == LINKEDID
    assert (row["direction"], row["caller"], row["caller_raw"]) == ("inbound", "+442075550142", "02075550142")
    assert row["caller_name"] == "ALICE MOBILE" and row["callee"] == "+442075550100"
    assert row["tags"]["department"] == "sales" and row["linkedid"] == LINKEDID
    assert row["started_at"] == datetime.fromtimestamp(1764099785, UTC)
    events = await fastagi.store.call_events(call_id)
    assert [e["kind"] for e in events] == ["tag"]
    assert fastagi.server.stats.requests == 1 and fastagi.server.health()["state"] == "up"


async def test_the_same_hook_twice_writes_one_row_and_one_event(fastagi) -> None:
    env = env_text(f"tag-inbound?{URL_TAIL}", uniqueid=LINKEDID, args=("02075550199",))
    await agi(fastagi.server, env)
    await agi(fastagi.server, env)
    [row] = await calls_rows(fastagi.store)
    assert row["tags"]["department"] == "support"
    assert len(await fastagi.store.call_events(row["id"])) == 1


async def test_a_call_ari_already_wrote_gets_the_agi_tags_on_the_same_row(fastagi) -> None:
    call_id = call_id_for("main", LINKEDID)
    created = datetime(2025, 11, 25, 19, 43, 5, 908000, tzinfo=UTC)  # ARI's creationtime, later than the epoch
    await fastagi.store.upsert_call(CallRecord(id=call_id, pbx="main", source=Source.ARI, source_id="ari-chan-1",
                                               started_at=created, direction=Direction.INBOUND,
                                               extension="1002", linkedid=LINKEDID))
    await agi(fastagi.server, env_text(f"tag-inbound?{URL_TAIL}", uniqueid="1764099785.49",
                                              args=("02075550100",)))
    [row] = await calls_rows(fastagi.store)
    assert row["id"] == call_id and row["extension"] == "1002" and row["tags"]["department"] == "sales"
    assert row["started_at"] == created


async def test_without_linkedid_in_the_url_the_handler_asks_the_channel(fastagi) -> None:
    replies = default_replies({"CHANNEL(linkedid)": "1764099700.7"})
    exchange = await agi(fastagi.server, env_text("tag-internal?pbx=main", uniqueid="1764099700.9",
                                                         callerid="1001", extension="1002"), replies)
    assert exchange.commands[0] == "GET VARIABLE CHANNEL(linkedid)"
    assert exchange.set_variables()["CC_CALL_ID"] == str(call_id_for("main", "1764099700.7"))
    [row] = await calls_rows(fastagi.store)
    assert (row["direction"], row["caller"], row["callee"], row["source_id"]) == (
        "internal", "1001", "1002", "1764099700.7")


async def test_outbound_call_strips_the_outside_line_prefix_and_sets_department_and_account(fastagi) -> None:
    async with fastagi.store.pool.acquire() as conn:
        await conn.execute("INSERT INTO extensions (pbx, number, name, department) VALUES ('main','1001','Al','sales')")
    exchange = await agi(fastagi.server, env_text(f"tag-outbound?{URL_TAIL}", uniqueid=LINKEDID,
                                                         callerid="1001", args=("902075550142",)))
    variables = exchange.set_variables()
    assert variables["CC_NUMBER"] == "02075550142"
    assert variables["CC_CALLEE"] == "+442075550142"
    assert variables["CC_DEPARTMENT"] == "sales" and variables["CC_ACCOUNT"] == "sales"
    assert variables["CHANNEL(accountcode)"] == "sales"
    [row] = await calls_rows(fastagi.store)
    assert (row["direction"], row["extension"], row["callee_raw"], row["callee"]) == (
        "outbound", "1001", "902075550142", "+442075550142")


async def test_an_extensions_department_is_not_read_again_while_the_store_is_busy(fastagi) -> None:
    """The hook answers Asterisk after this read: under load every pool connection is busy writing calls."""
    async with fastagi.store.pool.acquire() as conn:
        await conn.execute("INSERT INTO extensions (pbx, number, name, department) VALUES ('main','1001','Al','sales')")
    env = env_text(f"tag-outbound?{URL_TAIL}", callerid="1001", args=("902075550142",))
    first = await agi(fastagi.server, env)
    assert first.set_variables()["CC_DEPARTMENT"] == "sales"
    pool = fastagi.store.pool
    fastagi.hctx.store_read_timeout = 3600  # a read now would hold the call for as long as the connections are held
    held = [await pool.acquire() for _ in range(pool.get_max_size())]  # the writes hold every connection
    try:
        # Asterisk's side, until the server closed the connection: answered with every connection still held
        again = await fastagi_call(fastagi.port, env, timeout=30)
    finally:
        for conn in held:
            await pool.release(conn)
    await fastagi.server.idle()  # its write, once the store has a connection again
    assert again.closed_by_server and again.set_variables()["CC_DEPARTMENT"] == "sales"


async def test_a_site_accountcode_is_kept_on_outbound_calls(fastagi) -> None:
    exchange = await agi(fastagi.server, env_text(f"tag-outbound?{URL_TAIL}", callerid="1001",
                                                         accountcode="ACME-7", args=("902075550142",)))
    variables = exchange.set_variables()
    assert variables["CC_ACCOUNT"] == "ACME-7" and "CHANNEL(accountcode)" not in variables


async def test_call_end_closes_the_record_with_status_billsec_and_cause(fastagi) -> None:
    await agi(fastagi.server, env_text(f"tag-inbound?{URL_TAIL}", uniqueid=LINKEDID, args=("02075550100",)))
    from agi_scripts.handlers import END_EXPRESSION

    replies = default_replies({END_EXPRESSION: "ANSWER|42|50|16|ANSWERED|42|50"})
    exchange = await agi(fastagi.server, env_text(f"call-end?{URL_TAIL}", uniqueid=LINKEDID,
                                                         extension="h"), replies)
    assert exchange.commands == [f'GET FULL VARIABLE "{END_EXPRESSION}"']
    [row] = await calls_rows(fastagi.store)
    assert (row["status"], row["billsec"], row["duration"]) == ("answered", 42, 50)
    assert row["hangup_cause"] == "Normal Clearing"  # HANGUPCAUSE 16, stored in Asterisk's words like ARI/AMI
    assert row["ended_at"] is not None and row["answered_at"] is not None
    assert row["direction"] == "inbound"  # call-end does not forget what tag-inbound wrote
    assert [e["kind"] for e in await fastagi.store.call_events(row["id"])] == ["tag", "agi_end"]


async def test_call_end_of_a_call_our_app_bridged_keeps_the_talk_time_the_app_measured(fastagi) -> None:
    """A call our ARI app drives (a queue call: no ``Dial()``, so no ``ANSWEREDTIME``) reaches the hang-up hook
    with whatever CDR record Asterisk's CDR engine holds current for the caller then — after the bridge it may be
    a record opened a moment ago, answered, 0 s (tests/real/test_flows.py's ringall test read billsec 0 once).
    That 0 is no measurement: the talk time the app wrote (from the agent's answer) stays."""
    from agi_scripts.handlers import END_EXPRESSION

    call_id = call_id_for("main", LINKEDID)
    answered = datetime(2026, 12, 6, 4, 0, 0, tzinfo=UTC)
    ended = datetime(2026, 12, 6, 4, 0, 12, tzinfo=UTC)
    await fastagi.store.upsert_call(CallRecord(
        id=call_id, pbx="main", source=Source.ARI, source_id=LINKEDID, started_at=answered,
        direction=Direction.INBOUND, extension="1002", queue="support", answered_at=answered, ended_at=ended,
        billsec=12, linkedid=LINKEDID))
    await agi(fastagi.server, env_text(f"call-end?{URL_TAIL}", uniqueid=LINKEDID, extension="h"),
              default_replies({END_EXPRESSION: "||||ANSWERED|0|12"}))
    [row] = await calls_rows(fastagi.store)
    assert (row["status"], row["billsec"], row["answered_at"]) == ("answered", 12, answered), row


@pytest.mark.parametrize(("values", "status"), [("NOANSWER||30|19|NO ANSWER||30", "missed"),
                                                ("BUSY||2|17|BUSY||2", "busy"),
                                                ("CHANUNAVAIL||0|20|FAILED||0", "failed")])
async def test_call_end_maps_dial_status(fastagi, values: str, status: str) -> None:
    from agi_scripts.handlers import END_EXPRESSION

    await agi(fastagi.server, env_text(f"call-end?{URL_TAIL}", extension="h"),
                       default_replies({END_EXPRESSION: values}))
    [row] = await calls_rows(fastagi.store)
    assert row["status"] == status and row["billsec"] == 0


async def test_hangup_line_then_511_closes_the_connection_and_keeps_a_whole_record(fastagi, caplog) -> None:
    caplog.set_level(logging.INFO, "agi_scripts")
    base = default_replies()

    def replies(command: str) -> str:
        if command.startswith(("SET VARIABLE", "EXEC MSet")):  # the caller hung up while we were tagging
            return "HANGUP\n511 Command Not Permitted on a dead channel or intercept routine\n"
        return base(command)

    exchange = await agi(fastagi.server, env_text(f"tag-inbound?{URL_TAIL}", args=("02075550100",)), replies)
    assert exchange.closed_by_server and len(exchange.commands) == 1
    assert fastagi.server.stats.hangups == 1 and fastagi.server.stats.errors == 0
    assert "event=fastagi_hangup" in caplog.text
    [row] = await calls_rows(fastagi.store)
    assert row["tags"]["department"] == "sales" and row["direction"] == "inbound"


async def test_asterisk_closing_mid_command_writes_nothing(fastagi) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", fastagi.port)
    writer.write(env_text("call-end?pbx=main", extension="h").encode())  # no linkedid: it will ask
    await writer.drain()
    assert (await reader.readline()).startswith(b"GET VARIABLE CHANNEL(linkedid)")
    writer.close()
    await writer.wait_closed()
    await eventually(lambda: fastagi.server.stats.hangups, what="the hang-up counted")
    assert fastagi.server.stats.hangups == 1
    assert await calls_rows(fastagi.store) == []


@pytest.mark.parametrize("garbage", [b"this is not agi\n\n", b"\n", b"agi_network: yes\n" * 300 + b"\n",
                                     b"\xff\xfe\x00binary\n\n",
                                     b"agi_network: " + b"x" * 100_000 + b"\n\n"])
async def test_malformed_environments_are_logged_and_closed_and_the_server_goes_on(fastagi, garbage) -> None:
    exchange = await agi(fastagi.server, garbage)
    assert exchange.commands == [] and exchange.closed_by_server
    assert fastagi.server.stats.errors == 1
    ok = await agi(fastagi.server, env_text(f"tag-internal?{URL_TAIL}", callerid="1001", extension="1002"))
    assert ok.set_variables()["CC_DIRECTION"] == "internal"


async def test_a_520_usage_reply_is_logged_as_our_bug_and_the_connection_closed(fastagi, caplog) -> None:
    usage = ("520-Invalid command syntax.  Proper usage follows:\nSets a variable to the current channel.\n"
             "520 End of proper usage.\n")
    exchange = await agi(fastagi.server, env_text(f"tag-internal?{URL_TAIL}", callerid="1001"),
                                  lambda c: usage if c.startswith(("SET", "EXEC")) else "200 result=0\n")
    assert exchange.closed_by_server and len(exchange.commands) == 1
    assert fastagi.server.stats.errors == 1 and "event=fastagi_command_refused" in caplog.text


async def test_the_variables_are_set_in_one_round_trip(fastagi) -> None:
    """Asterisk answers one AGI command at a time: six SET VARIABLEs were six round trips while the call waited."""
    exchange = await agi(fastagi.server, env_text(f"tag-inbound?{URL_TAIL}", args=("02075550100",)))
    assert len(exchange.commands) == 1 and exchange.commands[0].startswith('EXEC MSet "CC_CALL_ID=')
    assert exchange.set_variables()["CC_DEPARTMENT"] == "sales"


@pytest.mark.parametrize("agi_config", [make_config(departments={"+442075550100": 'Sales, "EU"'})])
async def test_a_value_mset_would_mangle_gets_a_set_variable_of_its_own(fastagi) -> None:
    exchange = await agi(fastagi.server, env_text(f"tag-inbound?{URL_TAIL}", args=("02075550100",)))
    assert [c.split(" ")[0:2] for c in exchange.commands] == [["EXEC", "MSet"], ["SET", "VARIABLE"]]
    assert exchange.set_variables()["CC_DEPARTMENT"] == 'Sales, "EU"'


async def test_an_asterisk_without_mset_gets_one_set_variable_each(fastagi) -> None:
    base = default_replies()
    exchange = await agi(fastagi.server, env_text(f"tag-inbound?{URL_TAIL}", args=("02075550100",)),
                         lambda c: "200 result=-2\n" if c.startswith("EXEC") else base(c))
    assert len([c for c in exchange.commands if c.startswith("SET VARIABLE")]) == 6
    assert exchange.set_variables()["CC_DEPARTMENT"] == "sales"


async def test_an_unknown_pbx_is_refused(fastagi) -> None:
    for key in ("nosuch", "shop"):  # not configured; configured but not an asterisk
        exchange = await agi(fastagi.server, env_text(f"tag-inbound?pbx={key}&linkedid=1.2"))
        assert exchange.commands == []
    assert fastagi.server.stats.refused == 2


async def test_the_pbx_argument_picks_the_number_plan_and_the_call_id(fastagi) -> None:
    exchange = await agi(fastagi.server, env_text(f"tag-inbound?pbx=branch&linkedid={LINKEDID}",
                                                         callerid="2125550142"))
    assert exchange.set_variables()["CC_CALLER"] == "+12125550142"
    assert exchange.set_variables()["CC_CALL_ID"] == str(call_id_for("branch", LINKEDID))


@pytest.fixture
async def secured(store: CallStore, tmp_path) -> AsyncIterator[FastAgiServer]:
    hctx = HandlerContext.from_config(make_config(secret="s3cr&t"), SpooledWriter(store, tmp_path / "s.jsonl"),
                                      pool=store.pool)
    server = FastAgiServer(hctx, port=0, secret="s3cr&t")
    await server.start()
    yield server
    await server.stop()


async def test_a_wrong_or_missing_secret_is_refused_and_logged(secured, caplog) -> None:
    caplog.set_level(logging.WARNING, "agi_scripts")
    for query in ("", "secret=wrong&", "secret=s3cr&"):
        exchange = await agi(secured, env_text(f"tag-internal?{query}linkedid=1.1", callerid="1001"))
        assert exchange.commands == []
    assert secured.stats.refused == 3 and caplog.text.count("reason=bad_secret") == 3
    good = await agi(secured, env_text("tag-internal?secret=s3cr%26t&linkedid=1.1", callerid="1001"))
    assert good.set_variables()["CC_DIRECTION"] == "internal"


async def crm_app(delay: float | asyncio.Event, names: dict[str, str], hits: list[str]) -> web.Application:
    """A CRM answering after ``delay`` seconds, or once the test sets the event ``delay``."""
    async def lookup(request: web.Request) -> web.Response:
        hits.append(request.query["number"])
        if isinstance(delay, asyncio.Event):
            await delay.wait()
        else:
            await asyncio.sleep(delay)
        name = names.get(request.query["number"])
        return web.json_response({"name": name}) if name else web.Response(status=404)

    app = web.Application()
    app.router.add_get("/lookup", lookup)
    return app


@pytest.fixture
async def crm_server(store: CallStore, tmp_path) -> AsyncIterator[Any]:
    servers: list[tuple[web.AppRunner, FastAgiServer]] = []

    async def start(delay: float | asyncio.Event, names: dict[str, str], hits: list[str]) -> FastAgiServer:
        runner = web.AppRunner(await crm_app(delay, names, hits))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        config = make_config(crm_lookup_url=f"http://127.0.0.1:{port}/lookup?number={{number}}", crm_timeout=0.3)
        hctx = HandlerContext.from_config(config, SpooledWriter(store, tmp_path / "c.jsonl"), pool=store.pool)
        server = FastAgiServer(hctx, port=0)
        await server.start()
        servers.append((runner, server))
        return server

    yield start
    for runner, server in servers:
        await server.stop()
        await server.hctx.close()
        await runner.cleanup()


async def test_the_crm_name_becomes_the_caller_name_and_is_cached(crm_server, store) -> None:
    hits: list[str] = []
    server = await crm_server(0.0, {"+442075550142": 'Acme "Ltd"'}, hits)
    env = env_text(f"tag-inbound?{URL_TAIL}", callerid="02075550142", args=("02075550100",))
    first = await agi(server, env)
    second = await agi(server, env)
    assert first.set_variables()["CALLERID(name)"] == 'Acme "Ltd"'
    assert second.set_variables()["CALLERID(name)"] == 'Acme "Ltd"'
    assert hits == ["+442075550142"]
    [row] = await calls_rows(store)
    assert row["caller_name"] == 'Acme "Ltd"'


async def test_a_slow_crm_never_delays_the_call_beyond_its_timeout(crm_server, store) -> None:
    crm_answers, hits = asyncio.Event(), []
    server = await crm_server(crm_answers, {"+442075550142": "Too Late"}, hits)
    try:
        # the CRM has not answered when the call is: only crm_timeout (0.3 s) can have ended the wait
        exchange = await fastagi_call(server.port, env_text(f"tag-inbound?{URL_TAIL}", callerid="02075550142"),
                                      timeout=30)
        assert hits == ["+442075550142"] and not crm_answers.is_set()
    finally:
        crm_answers.set()
    await server.idle()
    assert exchange.closed_by_server and "CALLERID(name)" not in exchange.set_variables()
    assert exchange.set_variables()["CC_DIRECTION"] == "inbound"
    assert server.hctx.crm.failures == 1


async def test_a_dead_crm_is_skipped(store, tmp_path) -> None:
    config = make_config(crm_lookup_url="http://127.0.0.1:9/lookup?number={number}", crm_timeout=0.3)
    hctx = HandlerContext.from_config(config, SpooledWriter(store, tmp_path / "d.jsonl"), pool=store.pool)
    server = FastAgiServer(hctx, port=0)
    await server.start()
    try:
        exchange = await agi(server, env_text(f"tag-inbound?{URL_TAIL}", callerid="02075550142"))
        assert exchange.set_variables()["CC_CALLER"] == "+442075550142"
    finally:
        await server.stop()
        await hctx.close()


async def test_many_concurrent_requests_are_all_served(fastagi) -> None:
    envs = [env_text(f"tag-internal?pbx=main&linkedid=1764099785.{n}", uniqueid=f"1764099785.{n}",
                     callerid="1001", extension="1002") for n in range(50)]
    results = await asyncio.gather(*(agi(fastagi.server, e) for e in envs))
    assert all(r.set_variables()["CC_DIRECTION"] == "internal" for r in results)
    assert len(await calls_rows(fastagi.store)) == 50 and fastagi.server.stats.requests == 50


async def test_a_burst_of_hook_connections_while_the_service_is_busy_is_served_whole(fastagi) -> None:
    """Asterisk gives a FastAGI connection 2 s to be accepted (``MAX_AGI_CONNECT``); while our event loop is busy
    the kernel queues the connections, up to the listen backlog, and drops the rest's handshakes: that hook is
    lost. bench real_load saw it when 500 calls hung up at once (``FastAGI connection … timed out``, no
    ``agi_end``). A burst of 300 while the loop accepts nothing: every one connects, every one is served."""
    burst = 300
    connected: list[socket.socket] = []
    try:
        for _ in range(burst):  # blocking connects: the event loop runs nothing meanwhile, nobody accepts
            try:
                connected.append(socket.create_connection(("127.0.0.1", fastagi.server.port), timeout=0.5))
            except OSError:  # the handshake was dropped: the kernel's queue for this listener is full
                break
        assert len(connected) == burst
        envs = [env_text(f"tag-internal?pbx=main&linkedid=1764099785.{n}", uniqueid=f"1764099785.{n}",
                         callerid="1001", extension="1002") for n in range(burst)]
        results = await asyncio.gather(*(fastagi_call(fastagi.server.port, env, sock=sock)
                                         for env, sock in zip(envs, connected, strict=True)))
    finally:
        for sock in connected:
            sock.close()
    assert all(r.set_variables()["CC_DIRECTION"] == "internal" for r in results)
    await fastagi.server.idle()
    assert len(await calls_rows(fastagi.store)) == burst and fastagi.server.stats.requests == burst


class SlowWriter:
    """The real writer behind a store that takes its call writes only once the test lets it (``release``)."""

    def __init__(self, inner: SpooledWriter) -> None:
        self.inner = inner
        self.release = asyncio.Event()

    async def upsert_call(self, record: CallRecord) -> Any:
        await self.release.wait()
        return await self.inner.upsert_call(record)

    async def add_event(self, event: Any) -> None:
        await self.inner.add_event(event)


async def test_a_slow_store_never_holds_up_the_call_and_the_record_still_lands(store: CallStore, tmp_path) -> None:
    writer = SlowWriter(SpooledWriter(store, tmp_path / "w.jsonl"))
    hctx = HandlerContext.from_config(make_config(), writer, pool=store.pool)
    server = FastAgiServer(hctx, port=0)
    await server.start()
    try:
        # the call is answered and released while its write is still held
        exchange = await fastagi_call(server.port, env_text(f"tag-inbound?{URL_TAIL}", args=("02075550100",)),
                                      timeout=30)
        assert exchange.closed_by_server and not writer.release.is_set()
        assert exchange.set_variables()["CC_DEPARTMENT"] == "sales"
        assert await calls_rows(store) == []
        writer.release.set()
        await server.idle()
        [row] = await calls_rows(store)
        assert row["tags"]["department"] == "sales"
    finally:
        writer.release.set()
        await server.stop()
        await hctx.close()


async def test_call_end_without_dial_or_cdr_values_measures_the_duration_from_the_stored_start(fastagi) -> None:
    from datetime import timedelta

    call_id = call_id_for("main", LINKEDID)
    started = datetime.now(UTC) - timedelta(seconds=30)
    await fastagi.store.upsert_call(CallRecord(id=call_id, pbx="main", source=Source.ARI, source_id=LINKEDID,
                                               started_at=started, direction=Direction.INBOUND, linkedid=LINKEDID))
    await agi(fastagi.server, env_text(f"call-end?{URL_TAIL}", extension="h"))  # every value empty
    [row] = await calls_rows(fastagi.store)
    assert 29 <= row["duration"] <= 32 and row["ended_at"] is not None
    assert row["status"] == "ringing"  # nothing known about the outcome: what ARI wrote stays
