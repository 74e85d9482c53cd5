"""Call log reads: filtered, visibility-scoped, keyset-paginated pages; streamed exports; call detail.

Pages are ordered ``started_at DESC, id DESC`` and continue *after* the last row seen (keyset), so
page 10,000 costs what page 1 costs and rows inserted between two page fetches never shift a page.
The WHERE clause is built from fixed fragments with numbered parameters: no user text reaches SQL.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

CALL_COLUMNS = (
    "id, pbx, source, direction, status, caller_raw, caller, caller_name, callee_raw, callee, callee_name,"
    " extension, trunk, queue, started_at, answered_at, ended_at, duration, billsec, ring_seconds, hangup_cause,"
    " tags, recording, linkedid, uniqueid, codes"
)


@dataclass(frozen=True)
class CallFilter:
    """What the caller asked for, plus the scope its token allows (``extensions`` None = all)."""

    since: datetime | None = None
    until: datetime | None = None
    direction: str | None = None
    status: str | None = None
    extension: str | None = None
    number: str | None = None  # as typed; see ``numbers`` for the forms it is matched in
    numbers: tuple[str, ...] = ()  # extra forms of ``number`` (cleaned, E.164 per PBX) matched too
    queue: str | None = None
    tag: str | None = None
    pbx: str | None = None
    has_recording: bool | None = None
    text: str | None = None
    ends_with: str | None = None  # last digits of caller or callee; see ``number_suffix``
    extensions_in: tuple[str, ...] | None = None  # e.g. a department's extensions (None = no such filter)
    scope_extensions: frozenset[str] | None = None
    scope_pbx: str = ""


def like_pattern(value: str, *, wildcard: str | None = "*") -> str:
    """Escape LIKE metacharacters; the user's ``*`` (if any) becomes ``%``."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace(wildcard, "%") if wildcard else escaped


class _Where:
    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.args: list[Any] = []

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, clause: str) -> None:
        self.clauses.append(clause)

    def sql(self, first: int = 0) -> str:
        return " AND ".join(self.clauses[first:]) if self.clauses[first:] else "TRUE"


def build_where(f: CallFilter, *, suffix_side: str | None = None, w: _Where | None = None) -> tuple[str, list[Any]]:
    """The WHERE clause and its arguments for a filter (pure: tested without a database).

    ``suffix_side`` ("caller" / "callee") keeps only that side of ``ends_with``: the callee side leaves out calls
    the caller side has, so the two are disjoint (``page_calls`` reads each in time order, then merges them).
    ``w`` continues another clause's numbered arguments (its clauses are not repeated in the result)."""
    w = w if w is not None else _Where()
    first = len(w.clauses)
    if f.since is not None:
        w.add(f"started_at >= {w.arg(f.since)}")
    if f.until is not None:
        w.add(f"started_at < {w.arg(f.until)}")
    for column in ("direction", "status", "extension", "queue", "pbx"):
        value = getattr(f, column)
        if value is not None:
            w.add(f"{column} = {w.arg(value)}")
    if f.number:
        _number_clause(w, [f.number, *f.numbers])
    if f.ends_with is not None:
        _suffix_clause(w, number_suffix(f.ends_with), suffix_side)
    if f.tag:
        key, has_value, value = f.tag.partition("=")
        if has_value:
            w.add(f"tags ->> {w.arg(key)} = {w.arg(value)}")
        else:
            w.add(f"tags ? {w.arg(key)}")
    if f.has_recording is not None:
        w.add("recording <> ''" if f.has_recording else "recording = ''")
    if f.extensions_in is not None:
        w.add(f"extension = ANY({w.arg(sorted(f.extensions_in))}::text[])")
    if f.text:
        w.add(f"search_text LIKE {w.arg('%' + like_pattern(f.text.lower(), wildcard=None) + '%')}")
    if f.scope_pbx:
        w.add(f"pbx = {w.arg(f.scope_pbx)}")
    if f.scope_extensions is not None:
        exts = w.arg(sorted(f.scope_extensions))
        w.add(f"(extension = ANY({exts}::text[]) OR caller = ANY({exts}::text[]) OR callee = ANY({exts}::text[]))")
    return w.sql(first), w.args


def _number_clause(w: _Where, forms: list[str]) -> None:
    """Caller or callee, raw or normalised, in any of the given forms; ``*`` is a wildcard."""
    unique = sorted(set(forms))
    if any("*" in form for form in unique):
        p = w.arg([like_pattern(form) for form in unique])
        w.add(f"(caller LIKE ANY({p}::text[]) OR callee LIKE ANY({p}::text[])"
              f" OR caller_raw LIKE ANY({p}::text[]) OR callee_raw LIKE ANY({p}::text[]))")
    else:
        p = w.arg(unique)
        w.add(f"(caller = ANY({p}::text[]) OR callee = ANY({p}::text[])"
              f" OR caller_raw = ANY({p}::text[]) OR callee_raw = ANY({p}::text[]))")


def number_suffix(typed: str) -> str:
    """The digits a stored E.164 number must end with, separators dropped.

    A fragment of 8 digits or more that starts with zeros is a number with its national (``0912…``) or
    international (``0098…``) prefix: the zeros go, so it matches with or without the country code. Shorter
    fragments are last digits and keep their zeros (``0710``). Dropping a leading digit only widens a suffix
    match, so a long fragment that really ended in zeros still finds its number.
    """
    digits = "".join(ch for ch in typed if "0" <= ch <= "9")
    return digits.lstrip("0") if len(digits) >= 8 else digits


LAST_DIGITS_INDEXED = 4  # migration 0033 keys calls on right(caller|callee, 4) and time


def _suffix_clause(w: _Where, digits: str, side: str | None = None) -> None:
    """``caller`` or ``callee`` ends with ``digits``. Exactly 4 digits: equality on the last-4-digits indexes
    (migration 0033), which also hold the time order; other lengths: a range on the reversed-number indexes
    (migration 0031; 5 digits or more match few calls, fewer than 4 digits many, in time order or not)."""
    if not digits:
        w.add("FALSE")  # no digit typed: nothing ends with it (the API refuses such input first)
        return
    if len(digits) == LAST_DIGITS_INDEXED:
        p = w.arg(digits)
        sides = {party: f"right({party}, {LAST_DIGITS_INDEXED}) = {p}" for party in ("caller", "callee")}
    else:
        backwards = digits[::-1]
        low, high = w.arg(backwards), w.arg(backwards[:-1] + chr(ord(backwards[-1]) + 1))
        sides = {party: f'(reverse({party}) COLLATE "C" >= {low} AND reverse({party}) COLLATE "C" < {high})'
                 for party in ("caller", "callee")}
    if side == "caller":
        w.add(sides["caller"])
    elif side == "callee":
        w.add(f"{sides['callee']} AND NOT {sides['caller']}")
    else:
        w.add(f"({sides['caller']} OR {sides['callee']})")


def _by_side(f: CallFilter) -> bool:
    """A page of a 4-digit ``ends_with`` is read side by side, each in its index's time order."""
    return f.ends_with is not None and len(number_suffix(f.ends_with)) == LAST_DIGITS_INDEXED


async def page_calls(pool: asyncpg.Pool, f: CallFilter, *, limit: int,
                     after: tuple[datetime, uuid.UUID] | None = None) -> tuple[list[dict[str, Any]], bool]:
    """One page after the keyset position ``after``; returns (rows, whether more follow)."""
    w = _Where()
    wheres = [build_where(f, suffix_side=side, w=w)[0] for side in (("caller", "callee") if _by_side(f) else (None,))]
    keyset = f" AND (started_at, id) < ({w.arg(after[0])}, {w.arg(after[1])})" if after is not None else ""
    n = w.arg(limit + 1)
    order = f"ORDER BY started_at DESC, id DESC LIMIT {n}"
    parts = [f"SELECT {CALL_COLUMNS} FROM calls WHERE {where}{keyset} {order}" for where in wheres]
    # one side: as is; two: each read in its own index order (the newest first), merged
    sql = parts[0] if len(parts) == 1 else f"SELECT * FROM (({parts[0]}) UNION ALL ({parts[1]})) AS sides {order}"
    args = w.args
    async with pool.acquire() as conn:
        rows = await conn.fetch(sql, *args)
    return [dict(r) for r in rows[:limit]], len(rows) > limit


async def page_calls_offset(pool: asyncpg.Pool, f: CallFilter, *, limit: int, offset: int) -> list[dict[str, Any]]:
    """OFFSET paging — only the benchmark's baseline uses it, to show why the API does not."""
    where, args = build_where(f)
    args += [limit, offset]
    sql = (f"SELECT {CALL_COLUMNS} FROM calls WHERE {where} ORDER BY started_at DESC, id DESC"
           f" LIMIT ${len(args) - 1} OFFSET ${len(args)}")
    async with pool.acquire() as conn:
        return [dict(r) for r in await conn.fetch(sql, *args)]


async def stream_calls(pool: asyncpg.Pool, f: CallFilter, *, chunk: int = 1000
                       ) -> AsyncGenerator[list[dict[str, Any]], None]:
    """Every matching call, in keyset chunks: memory stays flat for any export size, and a connection is
    held only while a chunk is fetched, never while the consumer (a client not reading) is waited for.
    Calls that start during the export are not in it (they sort before the position already passed)."""
    after: tuple[datetime, uuid.UUID] | None = None
    while True:
        rows, more = await page_calls(pool, f, limit=chunk, after=after)
        if rows:
            yield rows
        if not more or not rows:
            return
        after = (rows[-1]["started_at"], rows[-1]["id"])


async def get_call(pool: asyncpg.Pool, call_id: uuid.UUID) -> dict[str, Any] | None:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(f"SELECT {CALL_COLUMNS} FROM calls WHERE id = $1 ORDER BY started_at LIMIT 1",
                                  call_id)
    return dict(row) if row else None


async def call_timeline(pool: asyncpg.Pool, call_id: uuid.UUID) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The call's events (in order) and its queue attempts."""
    async with pool.acquire() as conn:
        events = await conn.fetch(
            "SELECT at, kind, source, data FROM call_events WHERE call_id = $1 ORDER BY at, id", call_id)
        attempts = await conn.fetch(
            "SELECT queue, extension, started_at, ring_seconds, result FROM queue_attempts"
            " WHERE call_id = $1 ORDER BY started_at, id", call_id)
    return [dict(e) for e in events], [dict(a) for a in attempts]


# -- queue reports --------------------------------------------------------------------------------

async def queue_summary(pool: asyncpg.Pool, *, since: datetime, until: datetime, queue: str | None = None,
                        pbx: str = "", service_level_seconds: int = 20) -> list[dict[str, Any]]:
    """Per queue: offered, answered, abandoned, average wait, service level (answered within N s / offered)."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT queue, count(*) AS offered,"
            " count(*) FILTER (WHERE status = 'answered') AS answered,"
            " count(*) FILTER (WHERE status IN ('abandoned', 'missed')) AS abandoned,"
            " count(*) FILTER (WHERE status IN ('ringing', 'in_progress') AND ended_at IS NULL) AS in_progress,"
            " coalesce(round(avg(ring_seconds) FILTER (WHERE status = 'answered'), 1), 0)::float AS avg_wait_seconds,"
            " coalesce(round(avg(ring_seconds) FILTER (WHERE status IN ('abandoned', 'missed')), 1), 0)::float"
            "   AS avg_abandon_seconds,"
            " round(100.0 * count(*) FILTER (WHERE status = 'answered' AND ring_seconds <= $4)"
            "   / count(*), 1)::float AS service_level_percent"
            " FROM calls WHERE queue <> '' AND started_at >= $1 AND started_at < $2"
            " AND ($3::text IS NULL OR queue = $3) AND ($5 = '' OR pbx = $5)"
            " GROUP BY queue ORDER BY queue",
            since, until, queue, service_level_seconds, pbx)
    return [dict(r) for r in rows]


async def agent_report(pool: asyncpg.Pool, *, since: datetime, until: datetime, queue: str | None = None,
                       extensions: frozenset[str] | None = None, pbx: str = "") -> list[dict[str, Any]]:
    """Per queue and agent (from queue_attempts): attempts, answered, no-answer, average ring time."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT a.queue, a.extension, count(*) AS attempts,"
            " count(*) FILTER (WHERE a.result = 'answered') AS answered,"
            " count(*) FILTER (WHERE a.result = 'no_answer') AS no_answer,"
            " count(*) FILTER (WHERE a.result NOT IN ('answered', 'no_answer')) AS other,"
            " round(avg(a.ring_seconds), 1)::float AS avg_ring_seconds"
            " FROM queue_attempts a WHERE a.started_at >= $1 AND a.started_at < $2"
            " AND ($3::text IS NULL OR a.queue = $3) AND ($4::text[] IS NULL OR a.extension = ANY($4::text[]))"
            " AND ($5 = '' OR EXISTS (SELECT 1 FROM calls c WHERE c.id = a.call_id AND c.pbx = $5))"
            " GROUP BY a.queue, a.extension ORDER BY a.queue, a.extension",
            since, until, queue, None if extensions is None else sorted(extensions), pbx)
    return [dict(r) for r in rows]


def _formula_escaped(expr: str) -> str:
    """``api.routes.calls.escape_cell``: a leading ' before = + - @ tab CR (tested by code point: cheap)."""
    return f"CASE WHEN ascii({expr}) IN (61, 43, 45, 64, 9, 13) THEN '''' || {expr} ELSE {expr} END"


def _csv_quoted(expr: str) -> str:
    """A cell as Python's ``csv.writer`` (QUOTE_MINIMAL, CR LF line ends) writes it: in double quotes, inner
    quotes doubled, when it holds a quote, a comma, CR or LF."""
    return (f"CASE WHEN strpos({expr}, '\"') + strpos({expr}, ',') + strpos({expr}, E'\\r')"
            f" + strpos({expr}, E'\\n') > 0 THEN '\"' || replace({expr}, '\"', '\"\"') || '\"' ELSE {expr} END")


def _csv_cell(expr: str) -> str:
    """A text cell for COPY: formula-escaped; '' → NULL, which COPY writes as an empty field, as csv.writer does."""
    return f"NULLIF({_formula_escaped(expr)}, '')"


_CSV_CLID = "CASE WHEN caller_name <> '' THEN '\"' || caller_name || '\" <' || caller || '>' ELSE caller END"
_CSV_CALLDATE = "to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
_CSV_RECORDING = "regexp_replace(recording, '^.*/', '')"
_CSV_DISPOSITION = ("CASE status WHEN 'answered' THEN 'ANSWERED' WHEN 'in_progress' THEN 'ANSWERED' WHEN 'busy' THEN"
                    " 'BUSY' WHEN 'failed' THEN 'FAILED' ELSE 'NO ANSWER' END")

CSV_SELECT = ", ".join((  # the cells of api.routes.calls.csv_row, for COPY (copy_calls_csv)
    "id::text", _CSV_CALLDATE, _csv_cell("caller"), _csv_cell(_CSV_CLID), _csv_cell("callee"),
    _csv_cell("callee_name"), "duration", "billsec", _CSV_DISPOSITION, "direction", _csv_cell("extension"),
    _csv_cell("queue"), _csv_cell(_CSV_RECORDING)))


def _csv_line(text: Callable[[str], str], clid: str) -> str:
    return " || ',' || ".join((
        "id::text", _CSV_CALLDATE, text("caller"), clid, text("callee"), text("callee_name"), "duration::text",
        "billsec::text", _CSV_DISPOSITION, "direction", text("extension"), text("queue"),
        text(_CSV_RECORDING))) + " || E'\\r\\n'"


# One CSV line of api.routes.calls.csv_row's cells, as csv_text writes it. A call whose text holds no quote,
# comma, CR or LF (nearly every call) takes the short form: no cell needs quoting but a named caller's clid (it
# holds quotes); the others quote cell by cell. Each cell's expression is repeated inside the CASE that quotes
# it, which costs: the cheap test first is what keeps the export at several times Python's rate.
_CSV_PLAIN = "(caller || caller_name || callee || callee_name || extension || queue || recording) !~ '[\",\\r\\n]'"
_CSV_PLAIN_CLID = (f"CASE WHEN caller_name <> '' THEN '\"\"\"' || caller_name || '\"\" <' || caller || '>\"'"
                   f" ELSE {_formula_escaped('caller')} END")
_CSV_QUOTED_LINE = _csv_line(lambda e: _csv_quoted(f"({_formula_escaped(e)})"),
                             _csv_quoted(f"({_formula_escaped(_CSV_CLID)})"))
CSV_LINE = (f"CASE WHEN {_CSV_PLAIN} THEN {_csv_line(_formula_escaped, _CSV_PLAIN_CLID)} ELSE {_CSV_QUOTED_LINE} END")


async def _csv_chunk(pool: asyncpg.Pool, f: CallFilter, limit: int, after: tuple[datetime, uuid.UUID] | None
                     ) -> tuple[bytes, tuple[datetime, uuid.UUID] | None, int]:
    """Up to ``limit`` calls after ``after`` as CSV lines, formatted by PostgreSQL and joined into one value
    (one row crosses the wire, no Python object per call); returns (bytes, keyset position of the last, count)."""
    where, args = build_where(f)
    if after is not None:
        args = [*args, after[0], after[1]]
        where += f" AND (started_at, id) < (${len(args) - 1}, ${len(args)})"
    args.append(limit)
    sql = (f"WITH page AS MATERIALIZED (SELECT started_at, id, {CSV_LINE} AS line FROM calls WHERE {where}"
           f" ORDER BY started_at DESC, id DESC LIMIT ${len(args)})"
           # the lines in the page's order: a CTE scan yields its rows as the ORDER BY … LIMIT stored them
           " SELECT string_agg(line, '') AS csv, count(*) AS n,"
           " (SELECT started_at FROM page ORDER BY started_at, id LIMIT 1) AS last_at,"
           " (SELECT id FROM page ORDER BY started_at, id LIMIT 1) AS last_id FROM page")
    async with pool.acquire() as conn:
        row = await conn.fetchrow(sql, *args)
    if not row["n"]:
        return b"", None, 0
    return row["csv"].encode("utf-8"), (row["last_at"], row["last_id"]), row["n"]


async def stream_calls_csv(pool: asyncpg.Pool, f: CallFilter, *, chunk: int = 5000) -> AsyncGenerator[bytes, None]:
    """Every matching call as the API's CSV lines (``csv_text(csv_row(…))``, byte for byte), in keyset chunks
    formatted by PostgreSQL: several times the rate of building them in Python, memory flat (one chunk, plus the
    next being fetched while this one is sent), and a connection is held only while a chunk is fetched, never
    while the consumer waits for a client that does not read."""
    pending: asyncio.Task[tuple[bytes, tuple[datetime, uuid.UUID] | None, int]] | None
    pending = asyncio.ensure_future(_csv_chunk(pool, f, chunk, None))
    try:
        while pending is not None:
            data, last, count = await pending
            pending = asyncio.ensure_future(_csv_chunk(pool, f, chunk, last)) if count == chunk else None
            if count:
                yield data
    finally:
        if pending is not None:  # the consumer stopped (client gone or cut): the prefetch is not wanted
            pending.add_done_callback(lambda task: task.cancelled() or task.exception())
            pending.cancel()


async def copy_calls_csv(pool: asyncpg.Pool, f: CallFilter, write: Callable[[bytes], Awaitable[None]]) -> None:
    """The CSV export's rows formatted by PostgreSQL (``COPY … TO STDOUT CSV``), handed to ``write`` as they come.

    Same cells as the API's ``csv_row`` (tested equal, but LF line ends: COPY cannot write CR LF); no Python
    object per row, so it runs at COPY speed in flat memory — ``write`` applies the back-pressure.
    """
    where, args = build_where(f)
    sql = f"SELECT {CSV_SELECT} FROM calls WHERE {where} ORDER BY started_at DESC, id DESC"
    async with pool.acquire() as conn:
        await conn.copy_from_query(sql, *args, output=write, format="csv")
