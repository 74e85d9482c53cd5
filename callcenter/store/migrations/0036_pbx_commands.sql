-- Call control from any instance (issue 16): an instance that does not drive a PBX writes the action as a row here
-- and NOTIFYs; the PBX's owner claims it (pending -> running, only before its deadline, so an action the issuer
-- has given up on is never carried out late), runs it on its own ARI app and writes the reply or the error, and
-- NOTIFYs the issuer back. The issuer waits at most until the deadline, then marks a still-pending row expired.
-- Rows are kept a short while for the logs and then deleted by the instances themselves.
CREATE TABLE IF NOT EXISTS pbx_commands (
    id           bigserial PRIMARY KEY,
    pbx_key      text NOT NULL,
    port         text NOT NULL,
    method       text NOT NULL,
    args         jsonb NOT NULL DEFAULT '{}',
    issued_by    text NOT NULL,
    issued_at    timestamptz NOT NULL DEFAULT now(),
    deadline     timestamptz NOT NULL,
    state        text NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'running', 'done', 'failed', 'expired')),
    claimed_by   text,
    claimed_at   timestamptz,
    finished_at  timestamptz,
    reply        jsonb,
    error        jsonb
);

CREATE INDEX IF NOT EXISTS pbx_commands_pending ON pbx_commands (pbx_key, id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS pbx_commands_issued_at ON pbx_commands (issued_at);
