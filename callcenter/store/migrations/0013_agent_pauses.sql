-- Queue member pauses as intervals, for the per-agent talk / idle / pause statistics (issue 13).
-- Written by the API's pause route (the one way to pause a member); an open pause has resumed_at NULL.
CREATE TABLE IF NOT EXISTS agent_pauses (
    id          bigserial PRIMARY KEY,
    queue       text NOT NULL,
    extension   text NOT NULL,
    reason      text NOT NULL DEFAULT '',
    paused_at   timestamptz NOT NULL,
    resumed_at  timestamptz,
    CHECK (resumed_at IS NULL OR resumed_at >= paused_at)
);
CREATE UNIQUE INDEX IF NOT EXISTS agent_pauses_open ON agent_pauses (queue, extension) WHERE resumed_at IS NULL;
CREATE INDEX IF NOT EXISTS agent_pauses_ext ON agent_pauses (extension, paused_at);
