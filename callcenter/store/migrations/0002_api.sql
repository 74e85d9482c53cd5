-- HTTP API (issue 8): an audit trail for destructive admin actions, and indexes for call-log filters.

CREATE TABLE IF NOT EXISTS admin_audit (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    token_id  uuid,
    action    text NOT NULL,
    detail    jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS admin_audit_at ON admin_audit (at);

CREATE INDEX IF NOT EXISTS calls_queue ON calls (queue, started_at DESC) WHERE queue <> '';
CREATE INDEX IF NOT EXISTS calls_tags ON calls USING gin (tags);
CREATE INDEX IF NOT EXISTS queue_attempts_queue ON queue_attempts (queue, started_at);
