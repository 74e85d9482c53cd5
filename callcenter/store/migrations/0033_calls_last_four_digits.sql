-- Call-log search by the last 4 digits (issue 14), the commonest way people search. A 4-digit suffix matches
-- about 1 number in 10,000: ~1,000 calls at 10 M, all of which the reversed-number indexes (0031) must fetch to
-- sort them by time before the newest page of 50 is known (p99 119 ms at 10 M). Keyed on the last 4 digits and
-- then on time, these read the newest matches first: a page is ~50 rows read per side of the call, whatever the
-- table's size (calllog.page_calls reads caller and callee sides each in order and merges them).
CREATE INDEX IF NOT EXISTS calls_caller_last4 ON calls (right(caller, 4), started_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS calls_callee_last4 ON calls (right(callee, 4), started_at DESC, id DESC);
