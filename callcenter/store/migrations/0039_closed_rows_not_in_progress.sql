-- A closed call row never says in_progress (cc_write_calls of 0038, one rule more). Two writers close a call
-- the ARI app drives: its own last write, and the call-end FastAGI hook (the witness of the end should the ARI
-- feed be down). For a call Asterisk did not Dial (our Stasis queue, a click-to-call), the hook knows when it
-- ended but not how; when its write came first, the row read "ended, in_progress" until the ARI app's write —
-- a real-tier test under load read it so. in_progress means answered and not ended (the live model's status),
-- so a closed in_progress row is an answered one. And a writer's late live snapshot (ringing, in_progress: the
-- ARI app's writes lag under load) does not put a closed row's outcome back: the hook's "answered" stays.
-- CallStore.upsert_call applies the same rules.
CREATE OR REPLACE FUNCTION cc_write_calls(
    c_id uuid[], c_pbx text[], c_source text[], c_source_id text[], c_started_at timestamptz[],
    c_direction text[], c_status text[], c_caller_raw text[], c_caller text[], c_caller_name text[],
    c_callee_raw text[], c_callee text[], c_callee_name text[], c_extension text[], c_trunk text[],
    c_queue text[], c_answered_at timestamptz[], c_ended_at timestamptz[], c_duration integer[],
    c_billsec integer[], c_ring_seconds integer[], c_hangup_cause text[], c_tags text[], c_recording text[],
    c_linkedid text[], c_uniqueid text[], c_codes text[],  -- tags and codes as JSON text
    e_call_id uuid[], e_at timestamptz[], e_kind text[], e_source text[], e_dedupe_key text[], e_data text[]
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    lock_key text;
    r record;
    start timestamptz;
BEGIN
    FOR lock_key IN SELECT DISTINCT k.id::text COLLATE "C" FROM unnest(c_id) AS k(id) ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended(lock_key, 0));
    END LOOP;
    FOR r IN
        SELECT * FROM unnest(c_id, c_pbx, c_source, c_source_id, c_started_at, c_direction, c_status,
                             c_caller_raw, c_caller, c_caller_name, c_callee_raw, c_callee, c_callee_name,
                             c_extension, c_trunk, c_queue, c_answered_at, c_ended_at, c_duration, c_billsec,
                             c_ring_seconds, c_hangup_cause, c_tags, c_recording, c_linkedid, c_uniqueid, c_codes)
            WITH ORDINALITY AS u(id, pbx, source, source_id, started_at, direction, status, caller_raw, caller,
                                 caller_name, callee_raw, callee, callee_name, extension, trunk, queue,
                                 answered_at, ended_at, duration, billsec, ring_seconds, hangup_cause, tags,
                                 recording, linkedid, uniqueid, codes, n)
        ORDER BY n
    LOOP
        start := COALESCE((SELECT c.started_at FROM calls c WHERE c.id = r.id LIMIT 1),
                          (SELECT k.started_at FROM call_keys k WHERE k.call_id = r.id
                           ORDER BY k.started_at LIMIT 1),
                          r.started_at);
        INSERT INTO call_keys (pbx, source, source_id, call_id, started_at)
        VALUES (r.pbx, r.source, r.source_id, r.id, start)
        ON CONFLICT (pbx, source, source_id) DO NOTHING;
        INSERT INTO calls AS c (id, pbx, source, source_id, started_at, direction, status, caller_raw, caller,
                                caller_name, callee_raw, callee, callee_name, extension, trunk, queue, answered_at,
                                ended_at, duration, billsec, ring_seconds, hangup_cause, tags, recording, linkedid,
                                uniqueid, codes)
        VALUES (r.id, r.pbx, r.source, r.source_id, start, COALESCE(r.direction, 'unknown'),
                COALESCE(r.status, 'ringing'), COALESCE(r.caller_raw, ''), COALESCE(r.caller, ''),
                COALESCE(r.caller_name, ''), COALESCE(r.callee_raw, ''), COALESCE(r.callee, ''),
                COALESCE(r.callee_name, ''), COALESCE(r.extension, ''), COALESCE(r.trunk, ''),
                COALESCE(r.queue, ''), r.answered_at, r.ended_at, COALESCE(r.duration, 0),
                COALESCE(r.billsec, 0), COALESCE(r.ring_seconds, 0), COALESCE(r.hangup_cause, ''),
                COALESCE(r.tags::jsonb, '{}'::jsonb), COALESCE(r.recording, ''), COALESCE(r.linkedid, ''),
                COALESCE(r.uniqueid, ''), COALESCE(ARRAY(SELECT jsonb_array_elements_text(r.codes::jsonb)), '{}'))
        ON CONFLICT (id, started_at) DO UPDATE SET
            direction = COALESCE(r.direction, c.direction),
            -- a row that is closed is never in progress: the call was answered (in_progress = answered, not
            -- ended), whichever of the hang-up hook's close and the ARI app's last write comes first; and a
            -- closed row's outcome is not put back to a live status by a writer's late snapshot
            status = CASE WHEN r.status IN ('ringing', 'in_progress') AND c.ended_at IS NOT NULL
                               AND c.status NOT IN ('ringing', 'in_progress') THEN c.status
                          WHEN COALESCE(r.status, c.status) = 'in_progress'
                               AND COALESCE(r.ended_at, c.ended_at) IS NOT NULL THEN 'answered'
                          ELSE COALESCE(r.status, c.status) END,
            caller_raw = COALESCE(r.caller_raw, c.caller_raw),
            caller = COALESCE(r.caller, c.caller),
            caller_name = COALESCE(r.caller_name, c.caller_name),
            callee_raw = COALESCE(r.callee_raw, c.callee_raw),
            callee = COALESCE(r.callee, c.callee),
            callee_name = COALESCE(r.callee_name, c.callee_name),
            extension = COALESCE(r.extension, c.extension),
            trunk = COALESCE(r.trunk, c.trunk),
            queue = COALESCE(r.queue, c.queue),
            answered_at = COALESCE(r.answered_at, c.answered_at),
            ended_at = COALESCE(r.ended_at, c.ended_at),
            duration = COALESCE(r.duration, c.duration),
            billsec = COALESCE(r.billsec, c.billsec),
            ring_seconds = COALESCE(r.ring_seconds, c.ring_seconds),
            hangup_cause = COALESCE(r.hangup_cause, c.hangup_cause),
            tags = c.tags || COALESCE(r.tags::jsonb, '{}'::jsonb),
            recording = COALESCE(r.recording, c.recording),
            linkedid = COALESCE(r.linkedid, c.linkedid),
            uniqueid = COALESCE(r.uniqueid, c.uniqueid),
            codes = CASE WHEN r.codes IS NULL THEN c.codes
                         ELSE ARRAY(SELECT jsonb_array_elements_text(r.codes::jsonb)) END,
            updated_at = now();
    END LOOP;
    INSERT INTO call_events (call_id, at, kind, source, dedupe_key, data)
    SELECT u.call_id, u.at, u.kind, u.source, u.dedupe_key, u.data::jsonb
    FROM unnest(e_call_id, e_at, e_kind, e_source, e_dedupe_key, e_data)
        AS u(call_id, at, kind, source, dedupe_key, data)
    ON CONFLICT (call_id, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING;
END
$$;
