-- Export slots (issue 12, item 1): a token runs at most http.exports_per_token CSV exports at once across every
-- instance sharing this database. A slot is a lease, renewed while its export runs and deleted when it ends; an
-- instance that dies leaves leases that simply expire. Not an advisory lock: that would pin a connection for as
-- long as a slow client reads, and the export holds none while it waits for its client.
CREATE TABLE IF NOT EXISTS export_slots (
    token_id    uuid NOT NULL,
    slot        integer NOT NULL,
    holder      uuid NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (token_id, slot)
);
