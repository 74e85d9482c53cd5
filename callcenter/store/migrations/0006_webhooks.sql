-- Webhooks (issue 8): admin-configured receivers of call events, and a durable, ordered delivery queue.

CREATE TABLE IF NOT EXISTS webhooks (
    id          serial PRIMARY KEY,
    url         text NOT NULL,
    secret      text NOT NULL,
    events      text[] NOT NULL DEFAULT '{}',          -- empty = every call event
    enabled     boolean NOT NULL DEFAULT true,
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per (webhook, event). ``event_key`` is a hash of the event, so several service instances that
-- all hear the same bus event enqueue it once. Rows of one ``call_key`` are sent in ``id`` order: a row is
-- due only when no earlier row of the same webhook and call is still pending.
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id               bigserial PRIMARY KEY,
    webhook_id       integer NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_key        text NOT NULL,
    topic            text NOT NULL,
    call_key         text NOT NULL,
    sequence         integer NOT NULL DEFAULT 1,
    payload          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    last_error       text,
    last_status_code integer,
    created_at       timestamptz NOT NULL DEFAULT now(),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    locked_until     timestamptz,
    delivered_at     timestamptz,
    UNIQUE (webhook_id, event_key)
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_call ON webhook_deliveries (webhook_id, call_key, id);
CREATE INDEX IF NOT EXISTS webhook_deliveries_list ON webhook_deliveries (webhook_id, id DESC);
