"""Statistics for the charts and for CRMs: calls per hour, service level over the day, agents' time.

Every figure is computed from the call log (and the pause intervals) with the caller's visibility applied
through the same :func:`callcenter.store.calllog.build_where` as the call log, so a chart never counts a call
its viewer could not open. Hours are the viewer's hours: ``tz`` is an IANA zone name PostgreSQL knows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from callcenter.store.calllog import CallFilter, build_where

_ANSWERED = "(status = 'answered' OR (status = 'in_progress' AND answered_at IS NOT NULL))"
_WAITING = "(status IN ('ringing', 'in_progress') AND answered_at IS NULL AND ended_at IS NULL)"


async def calls_per_hour(pool: asyncpg.Pool, f: CallFilter, tz: str) -> list[dict[str, Any]]:
    """Per local hour that had calls: answered (a call in progress once answered), missed, abandoned and the rest
    (busy, failed, still ringing)."""
    where, args = build_where(f)
    n = len(args) + 1
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT date_trunc('hour', started_at AT TIME ZONE ${n}) AS local_hour, count(*) AS total,"
            f" count(*) FILTER (WHERE {_ANSWERED}) AS answered,"
            " count(*) FILTER (WHERE status = 'missed') AS missed,"
            " count(*) FILTER (WHERE status = 'abandoned') AS abandoned"
            f" FROM calls WHERE {where} GROUP BY 1 ORDER BY 1", *args, tz)
    return [{"hour": r["local_hour"].strftime("%Y-%m-%dT%H:00"), "answered": r["answered"], "missed": r["missed"],
             "abandoned": r["abandoned"], "other": r["total"] - r["answered"] - r["missed"] - r["abandoned"]}
            for r in rows]


async def service_level_by_hour(pool: asyncpg.Pool, *, since: datetime, until: datetime, tz: str,
                                service_level_seconds: int, queue: str | None = None,
                                pbx: str = "") -> list[dict[str, Any]]:
    """Per queue and local hour: offered, answered, answered within the target, abandoned (queue aggregates).

    A caller still waiting has no outcome yet and is not counted (it would pull the day's figure down while
    it waits); a call answered and still talking counts as answered.
    """
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT queue, date_trunc('hour', started_at AT TIME ZONE $3) AS local_hour,"
            f" count(*) FILTER (WHERE NOT {_WAITING}) AS offered,"
            f" count(*) FILTER (WHERE {_ANSWERED}) AS answered,"
            f" count(*) FILTER (WHERE {_ANSWERED} AND ring_seconds <= $4) AS in_time,"
            " count(*) FILTER (WHERE status IN ('abandoned', 'missed')) AS abandoned"
            " FROM calls WHERE queue <> '' AND started_at >= $1 AND started_at < $2"
            " AND ($5::text IS NULL OR queue = $5) AND ($6 = '' OR pbx = $6)"
            f" GROUP BY 1, 2 HAVING count(*) FILTER (WHERE NOT {_WAITING}) > 0 ORDER BY 1, 2",
            since, until, tz, service_level_seconds, queue, pbx)
    return [{"queue": r["queue"], "hour": r["local_hour"].strftime("%Y-%m-%dT%H:00"), "offered": r["offered"],
             "answered": r["answered"], "answered_in_time": r["in_time"], "abandoned": r["abandoned"]}
            for r in rows]


async def agent_times(pool: asyncpg.Pool, *, since: datetime, until: datetime,
                      extensions: frozenset[str] | None = None, pbx: str = "") -> list[dict[str, Any]]:
    """Per extension: answered calls, talk and pause seconds inside the window, and the span they fall in.

    The span runs from the agent's first activity (call or pause) to its last, inside the window; idle is
    what the span leaves after talk and pause (we do not know log-in times, so time before the first call
    is not counted as idle).
    """
    scope = None if extensions is None else sorted(extensions)
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "WITH talk AS ("
            "  SELECT extension, count(*) AS calls,"
            "   sum(GREATEST(0, EXTRACT(EPOCH FROM (LEAST(coalesce(ended_at, now()), $2)"
            "        - GREATEST(coalesce(answered_at, started_at), $1)))))::bigint AS talk_seconds,"
            "   min(started_at) AS first_at, max(LEAST(coalesce(ended_at, now()), $2)) AS last_at"
            "  FROM calls WHERE status = 'answered' AND extension <> '' AND answered_at IS NOT NULL"
            "   AND started_at < $2 AND coalesce(ended_at, now()) > $1"
            "   AND ($3::text[] IS NULL OR extension = ANY($3::text[])) AND ($4 = '' OR pbx = $4)"
            "  GROUP BY extension),"
            " paused AS ("
            "  SELECT extension, sum(GREATEST(0, EXTRACT(EPOCH FROM (LEAST(coalesce(resumed_at, now()), $2)"
            "        - GREATEST(paused_at, $1)))))::bigint AS pause_seconds,"
            "   min(GREATEST(paused_at, $1)) AS first_at, max(LEAST(coalesce(resumed_at, now()), $2)) AS last_at"
            "  FROM (SELECT DISTINCT ON (extension, paused_at) * FROM agent_pauses"
            "        WHERE paused_at < $2 AND coalesce(resumed_at, now()) > $1) p"  # one pause in several queues
            "  WHERE ($3::text[] IS NULL OR extension = ANY($3::text[]))"
            "  GROUP BY extension)"
            " SELECT coalesce(t.extension, p.extension) AS extension, coalesce(t.calls, 0) AS calls,"
            "  coalesce(t.talk_seconds, 0) AS talk_seconds, coalesce(p.pause_seconds, 0) AS pause_seconds,"
            "  EXTRACT(EPOCH FROM (GREATEST(t.last_at, p.last_at) - LEAST(GREATEST(t.first_at, $1), p.first_at)))"
            "   ::bigint AS span_seconds"
            " FROM talk t FULL JOIN paused p ON p.extension = t.extension ORDER BY 1",
            since, until, scope, pbx)
    out = []
    for r in rows:
        talk, pause, span = int(r["talk_seconds"]), int(r["pause_seconds"]), max(0, int(r["span_seconds"] or 0))
        out.append({"extension": r["extension"], "calls": r["calls"], "talk_seconds": talk, "pause_seconds": pause,
                    "idle_seconds": max(0, span - talk - pause)})
    return out


async def record_pause(pool: asyncpg.Pool, queue: str, extension: str, paused: bool, reason: str,
                       at: datetime) -> None:
    """Open a pause interval (once: an open one stays as it is) or close the open one."""
    async with pool.acquire() as conn:
        if paused:
            await conn.execute(
                "INSERT INTO agent_pauses (queue, extension, reason, paused_at) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (queue, extension) WHERE resumed_at IS NULL DO NOTHING", queue, extension, reason, at)
        else:
            await conn.execute("UPDATE agent_pauses SET resumed_at = GREATEST($3, paused_at)"
                               " WHERE queue = $1 AND extension = $2 AND resumed_at IS NULL", queue, extension, at)
