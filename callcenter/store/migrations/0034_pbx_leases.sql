-- PBX ownership (issue 16): each [[pbx]] is driven by exactly one service instance at a time, the holder of its
-- lease. The lease is a row, renewed by its holder well before expires_at; a holder that dies (kill -9, network cut)
-- simply stops renewing and another instance takes the row once it has expired. Every take-over by a different
-- instance increments generation: the fencing token a late, paused ex-owner is refused with. Expiry is judged by
-- the database's clock only, so instances never compare their own clocks. Not an advisory lock: a paused process
-- keeps its session (and such a lock) for ever, and fencing needs a number that outlives the session.
CREATE TABLE IF NOT EXISTS pbx_leases (
    pbx_key      text PRIMARY KEY,
    instance_id  text NOT NULL,
    generation   bigint NOT NULL,
    address      text NOT NULL DEFAULT '',
    acquired_at  timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);
