-- Core call store (DESIGN §3). One row per call whatever the source; idempotent on (pbx, source, source_id).

CREATE TABLE IF NOT EXISTS pbx (
    key         text PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('asterisk', 'panasonic', 'segal', 'danjeh')),
    settings    jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS calls (
    id               uuid NOT NULL,
    pbx              text NOT NULL,
    source           text NOT NULL CHECK (source IN ('ari', 'ami', 'agi', 'smdr', 'cid', 'api')),
    source_id        text NOT NULL,
    direction        text NOT NULL CHECK (direction IN ('inbound', 'outbound', 'internal', 'unknown')),
    status           text NOT NULL CHECK (status IN ('ringing', 'answered', 'missed', 'busy', 'failed',
                                                     'abandoned', 'in_progress')),
    caller_raw       text NOT NULL DEFAULT '',
    caller           text NOT NULL DEFAULT '',
    caller_name      text NOT NULL DEFAULT '',
    callee_raw       text NOT NULL DEFAULT '',
    callee           text NOT NULL DEFAULT '',
    callee_name      text NOT NULL DEFAULT '',
    extension        text NOT NULL DEFAULT '',
    trunk            text NOT NULL DEFAULT '',
    queue            text NOT NULL DEFAULT '',
    started_at       timestamptz NOT NULL,
    answered_at      timestamptz,
    ended_at         timestamptz,
    duration         integer NOT NULL DEFAULT 0,
    billsec          integer NOT NULL DEFAULT 0,
    ring_seconds     integer NOT NULL DEFAULT 0,
    hangup_cause     text NOT NULL DEFAULT '',
    tags             jsonb NOT NULL DEFAULT '{}'::jsonb,
    recording        text NOT NULL DEFAULT '',
    linkedid         text NOT NULL DEFAULT '',
    uniqueid         text NOT NULL DEFAULT '',
    codes            text[] NOT NULL DEFAULT '{}',
    search_text      text GENERATED ALWAYS AS (lower(caller_raw || ' ' || caller || ' ' || caller_name || ' ' ||
                         callee_raw || ' ' || callee || ' ' || callee_name || ' ' || extension || ' ' || queue)) STORED,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, started_at)
) PARTITION BY RANGE (started_at);

CREATE TABLE IF NOT EXISTS calls_default PARTITION OF calls DEFAULT;

-- Idempotency and identity live outside the partitioned table so a call keeps one id even when a
-- later source (AGI after ARI) sees it, and (pbx, source, source_id) is unique across partitions.
CREATE TABLE IF NOT EXISTS call_keys (
    pbx         text NOT NULL,
    source      text NOT NULL,
    source_id   text NOT NULL,
    call_id     uuid NOT NULL,
    started_at  timestamptz NOT NULL,
    PRIMARY KEY (pbx, source, source_id)
);
CREATE INDEX IF NOT EXISTS call_keys_call_id ON call_keys (call_id);

CREATE INDEX IF NOT EXISTS calls_started_id ON calls (started_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS calls_extension ON calls (extension, started_at DESC);
CREATE INDEX IF NOT EXISTS calls_caller ON calls (caller);
CREATE INDEX IF NOT EXISTS calls_callee ON calls (callee);
CREATE INDEX IF NOT EXISTS calls_linkedid ON calls (linkedid) WHERE linkedid <> '';

CREATE TABLE IF NOT EXISTS call_events (
    id          bigserial PRIMARY KEY,
    call_id     uuid NOT NULL,
    at          timestamptz NOT NULL,
    kind        text NOT NULL,
    source      text NOT NULL DEFAULT '',
    dedupe_key  text,
    data        jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS call_events_call ON call_events (call_id, at, id);
CREATE UNIQUE INDEX IF NOT EXISTS call_events_dedupe ON call_events (call_id, dedupe_key)
    WHERE dedupe_key IS NOT NULL;

CREATE TABLE IF NOT EXISTS queue_attempts (
    id            bigserial PRIMARY KEY,
    call_id       uuid NOT NULL,
    queue         text NOT NULL,
    extension     text NOT NULL,
    started_at    timestamptz NOT NULL,
    ring_seconds  integer NOT NULL DEFAULT 0,
    result        text NOT NULL CHECK (result IN ('answered', 'no_answer', 'busy', 'rejected', 'cancelled',
                                                  'unavailable'))
);
CREATE UNIQUE INDEX IF NOT EXISTS queue_attempts_once ON queue_attempts (call_id, extension, started_at);
CREATE INDEX IF NOT EXISTS queue_attempts_ext ON queue_attempts (extension, started_at);

CREATE TABLE IF NOT EXISTS org_units (
    id          serial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    admins      text[] NOT NULL DEFAULT '{}',
    members     text[] NOT NULL DEFAULT '{}'
);

CREATE TABLE IF NOT EXISTS extensions (
    pbx         text NOT NULL DEFAULT '',
    number      text NOT NULL,
    name        text NOT NULL DEFAULT '',
    department  text NOT NULL DEFAULT '',
    org_unit    text NOT NULL DEFAULT '',
    PRIMARY KEY (pbx, number)
);

CREATE TABLE IF NOT EXISTS monitor_groups (
    id          serial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    level       text NOT NULL CHECK (level IN ('listen', 'whisper', 'barge', 'takeover')),
    observers   text[] NOT NULL DEFAULT '{}',
    observed    text[] NOT NULL DEFAULT '{}',
    announce    boolean NOT NULL DEFAULT false
);

CREATE TABLE IF NOT EXISTS api_tokens (
    id          uuid PRIMARY KEY,
    name        text NOT NULL DEFAULT '',
    token_hash  text NOT NULL UNIQUE,
    role        text NOT NULL CHECK (role IN ('admin', 'supervisor', 'agent', 'crm')),
    extension   text NOT NULL DEFAULT '',
    org_unit    text NOT NULL DEFAULT '',
    pbx         text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz
);

CREATE TABLE IF NOT EXISTS retention_rules (
    category    text PRIMARY KEY CHECK (category IN ('calls', 'recordings', 'queue_reports')),
    keep_days   integer CHECK (keep_days IS NULL OR keep_days BETWEEN 1 AND 999)
);

CREATE TABLE IF NOT EXISTS quarantine (
    id           bigserial PRIMARY KEY,
    pbx          text NOT NULL,
    source       text NOT NULL,
    raw          bytea NOT NULL,
    error        text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS quarantine_received ON quarantine (received_at);
