-- Live queue state that must survive the service (issue 16): a new process, or a standby taking a PBX over, loads it
-- before it offers the first caller to an agent. Written by the owner of the PBX (ari_app/queues), latest state wins;
-- `generation` is the owner's lease generation (pbx_leases, 0034) at the write, NULL for a single instance.
-- Times are wall-clock (the database's timestamptz), never a process's monotonic clock.

-- One row per (pbx, queue, member): what the queue's strategies and the "free agent" rule read.
CREATE TABLE IF NOT EXISTS queue_member_state (
    pbx            text NOT NULL,
    queue          text NOT NULL,
    extension      text NOT NULL,
    paused         boolean NOT NULL DEFAULT false,
    reason         text NOT NULL DEFAULT '',
    wrapup_until   timestamptz,            -- not rung before this (NULL: no wrap-up)
    last_call_end  timestamptz,            -- least-recent (NULL: no queue call yet)
    calls_taken    integer NOT NULL DEFAULT 0 CHECK (calls_taken >= 0),   -- fewest-calls
    call_channel   text NOT NULL DEFAULT '',  -- the agent channel of its queue call now ('' : none): wrap-up on its end
    generation     bigint,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pbx, queue, extension)
);

-- One row per (pbx, queue): the strategy's memory and what the announcements estimate from.
CREATE TABLE IF NOT EXISTS queue_state (
    pbx            text NOT NULL,
    queue          text NOT NULL,
    last_rung      text NOT NULL DEFAULT '',              -- round-robin continues after this member
    recent_waits   double precision[] NOT NULL DEFAULT '{}',  -- seconds, the last answered waits (estimated wait)
    generation     bigint,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pbx, queue)
);

-- One row per caller waiting now. Its place in line is its entry time: a caller put back on hold after a
-- failed connection keeps its entry time and so its place. The channel itself stays in Asterisk's holding bridge.
CREATE TABLE IF NOT EXISTS queue_callers (
    pbx            text NOT NULL,
    channel_id     text NOT NULL,
    queue          text NOT NULL,
    call_id        uuid NOT NULL,
    joined_at      timestamptz NOT NULL,
    generation     bigint,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pbx, channel_id)
);
CREATE INDEX IF NOT EXISTS queue_callers_order ON queue_callers (pbx, queue, joined_at);
