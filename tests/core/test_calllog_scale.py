"""Call log at scale: search by a number's last digits, CSV cells formatted by PostgreSQL (issue 14)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api.routes.calls import csv_row, csv_text
from callcenter.domain import CallRecord, CallStatus, Direction, Source, call_id_for
from callcenter.store import CallStore
from callcenter.store.calllog import (
    CallFilter,
    copy_calls_csv,
    number_suffix,
    page_calls,
    page_calls_offset,
    stream_calls,
    stream_calls_csv,
)

AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def call(n: int, caller: str, callee: str, **extra: object) -> CallRecord:
    fields: dict[str, object] = {"direction": Direction.INBOUND, "status": CallStatus.ANSWERED, **extra}
    return CallRecord(id=call_id_for("main", f"c{n}"), pbx="main", source=Source.ARI, source_id=f"c{n}",
                      started_at=AT + timedelta(minutes=n), caller=caller, callee=callee, **fields)  # type: ignore[arg-type]


async def found(store: CallStore, typed: str) -> set[str]:
    rows, _ = await page_calls(store.pool, CallFilter(ends_with=typed), limit=50)
    return {r["source_id"] for r in await store.pool.fetch(
        "SELECT source_id FROM calls WHERE id = ANY($1::uuid[])", [r["id"] for r in rows])}


def test_a_long_fragment_loses_its_national_or_international_zeros_and_last_digits_keep_theirs() -> None:
    assert number_suffix("0912 123 4567") == number_suffix("0098 912 123 4567")[2:] == "9121234567"
    assert number_suffix("+98 (912) 123-4567") == "989121234567"
    assert number_suffix("0710") == "0710"


async def test_calls_are_found_by_the_last_digits_of_either_party_with_or_without_country_code(
        store: CallStore) -> None:
    await store.upsert_call(call(1, "+989121234567", "201"))
    await store.upsert_call(call(2, "201", "+989121230710"))
    await store.upsert_call(call(3, "+441234567", "202"))  # ends with 1234567, but not 91234567

    assert await found(store, "4567") == {"c1", "c3"}
    assert await found(store, "0912 123 4567") == {"c1"}
    assert await found(store, "+98 912 123 4567") == {"c1"}
    assert await found(store, "0710") == {"c2"}
    assert await found(store, "201") == {"c1", "c2"}  # the extension is a party too
    assert await found(store, "-") == set()


async def test_csv_cells_from_postgresql_are_the_api_csv_rows(store: CallStore) -> None:
    """``copy_calls_csv`` writes what ``csv_text(csv_row(...))`` writes, apart from LF for CR LF line ends."""
    await store.upsert_call(call(1, "+989121234567", "201", caller_name='Acme, "Ltd"', queue="sales",
                                 recording="/var/spool/asterisk/monitor/x.wav", duration=75, billsec=60))
    await store.upsert_call(call(2, "=cmd|calc", "@201", callee_name="-minus", status=CallStatus.BUSY))
    await store.upsert_call(call(3, "", "202", status=CallStatus.MISSED, extension="202"))
    expected = b"".join([csv_text(csv_row(r) for r in chunk) async for chunk in stream_calls(store.pool,
                                                                                           CallFilter())])
    written: list[bytes] = []

    async def write(data: bytes) -> None:
        written.append(data)

    await copy_calls_csv(store.pool, CallFilter(), write)
    assert b"".join(written) == expected.replace(b"\r\n", b"\n")


async def test_csv_chunks_from_postgresql_are_byte_for_byte_the_api_csv_rows(store: CallStore) -> None:
    """``stream_calls_csv`` (what ``GET /api/v1/calls.csv`` sends) writes exactly ``csv_text(csv_row(...))``: CR LF
    line ends, quoting only where csv.writer quotes, formula starts escaped, over several chunk boundaries."""
    tricky = [dict(caller_name='Acme, "Ltd"', queue="sales", recording="/var/spool/asterisk/monitor/x.wav",
                   duration=75, billsec=60),
              dict(caller_name="line\nbreak", callee_name="cr\rhere", status=CallStatus.BUSY),
              dict(callee_name="-minus", extension="+201", queue="@q", status=CallStatus.FAILED),
              dict(callee_name="\tTab", queue="=SUM(A1)", caller_name="Zoë ☎", status=CallStatus.MISSED),
              dict(recording="plain.wav", status=CallStatus.IN_PROGRESS, direction=Direction.OUTBOUND),
              dict(callee_name='"quoted"', queue="a,b", status=CallStatus.ABANDONED)]
    for n in range(23):
        extra = tricky[n % len(tricky)]
        await store.upsert_call(call(n, "=cmd|calc" if n == 3 else f"+98912123{n:04}", "@201" if n == 4 else "202",
                                     **extra))  # type: ignore[arg-type]
    exports = {}
    for filt in (CallFilter(), CallFilter(scope_extensions=frozenset({"202"})), CallFilter(ends_with="0005")):
        expected = b"".join([csv_text(csv_row(r) for r in chunk)
                             async for chunk in stream_calls(store.pool, filt, chunk=7)])
        for size in (1, 5, 23, 100):
            got = b"".join([data async for data in stream_calls_csv(store.pool, filt, chunk=size)])
            assert got == expected, (filt, size)
        exports[filt] = expected
    everything = exports[CallFilter()]
    assert everything.count(b"\r\n") >= 23 and b"'=SUM(A1)" in everything and b'"Acme, ""Ltd"""' in everything
    assert b'"line\nbreak' in everything and b",'\tTab," in everything and "Zoë ☎".encode() in everything
    assert 0 < exports[CallFilter(scope_extensions=frozenset({"202"}))].count(b"\r\n") < 23


async def test_last_four_digits_pages_merge_both_parties_in_time_order_once_each(store: CallStore) -> None:
    """A 4-digit ``ends_with`` is read caller side and callee side apart (each in its index's time order) and
    merged: keyset pages still list every match once, newest first, a call matching on both sides once,
    within the token's scope."""
    for n in range(40):
        caller = f"+4420794{n:02}4567" if n % 3 != 1 else "+442079460000"
        callee = "+989121234567" if n % 4 == 0 else ("201" if n % 2 else "202")
        await store.upsert_call(call(n, caller, callee, extension="201" if n % 2 else "202"))
    await store.upsert_call(call(99, "+441234567", "+449994567", extension="202"))  # both sides, once
    await store.upsert_call(call(98, "+441234568", "+449994566"))  # neither
    for scope in (None, frozenset({"201"})):
        filt = CallFilter(ends_with="4567", scope_extensions=scope)
        everything = await page_calls_offset(store.pool, filt, limit=100, offset=0)  # one OR query, sorted
        paged: list[dict[str, object]] = []
        after = None
        while True:
            rows, more = await page_calls(store.pool, filt, limit=7, after=after)
            paged += rows
            if not more:
                break
            after = (rows[-1]["started_at"], rows[-1]["id"])
        assert [r["id"] for r in paged] == [r["id"] for r in everything]
        assert len({r["id"] for r in paged}) == len(paged)
        assert all(r["caller"].endswith("4567") or r["callee"].endswith("4567") for r in paged)
        expected = 1 + sum(1 for n in range(40) if n % 3 != 1 or n % 4 == 0) if scope is None else None
        if expected is not None:
            assert len(paged) == expected
        else:
            assert paged and all("201" in (r["extension"], r["caller"], r["callee"]) for r in paged)
