-- History imports (`callcenter legacy import`, issue 14): how far each file has been committed, so an import
-- stopped with Ctrl-C resumes where it stopped and a second import of the same file adds nothing.
-- A file is known by its PBX and a hash of its first 64 KiB (a capture that grew keeps its key).
CREATE TABLE IF NOT EXISTS legacy_imports (
    pbx              text NOT NULL,
    file_key         text NOT NULL,
    path             text NOT NULL,
    committed_bytes  bigint NOT NULL DEFAULT 0 CHECK (committed_bytes >= 0),
    calls            bigint NOT NULL DEFAULT 0,
    quarantined      bigint NOT NULL DEFAULT 0,
    started_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pbx, file_key)
);
