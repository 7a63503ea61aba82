-- Submit a document flow from SQL, in the caller's own transaction: a Supabase RPC, a trigger on
-- EcoSign's table or pg_cron starts a flow atomically with the write that asked for it (a
-- rollback leaves no flow). The rules are the API's (POST /v1/document-jobs): the DocumentJob's
-- validation, each refusal naming its field (SQLSTATE 22023, the field also in the error's
-- COLUMN); a repeat of the same document and intent returns the flow that is active or
-- completed; an idempotency key returns the flow it created, or refuses another request; the
-- wake-up is the same NOTIFY, sent at commit. tests/integration/test_sql_submit.py holds this
-- function to the Python rules case by case.
--
-- SECURITY DEFINER: a caller needs EXECUTE on this function only (granted to no one here; see
-- docs/operations.md), never rights on the orchestrator's tables.

CREATE FUNCTION {schema}.refuse(field text, reason text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = field || ': ' || reason, COLUMN = field;
END
$$;

-- The height of a JSON value: 0 for a scalar or an empty container.
CREATE FUNCTION {schema}.json_height(value jsonb) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE jsonb_typeof(value)
        WHEN 'object' THEN coalesce(
            (SELECT 1 + max({schema}.json_height(v)) FROM jsonb_each(value) AS e(k, v)), 0)
        WHEN 'array' THEN coalesce(
            (SELECT 1 + max({schema}.json_height(v)) FROM jsonb_array_elements(value) AS e(v)), 0)
        ELSE 0
    END
$$;

-- metadata.step_inputs: per step, only the fields a caller may give, each as its rule says
-- (ecosign/inputs.py and the step table). What a step acts on never comes from the caller.
CREATE FUNCTION {schema}.check_step_inputs(inputs jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    step text;
    fields jsonb;
    key text;
    value jsonb;
    field text;
    allowed text;
    uuid_re constant text := '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
BEGIN
    IF inputs IS NULL OR jsonb_typeof(inputs) = 'null' THEN
        RETURN;
    END IF;
    IF jsonb_typeof(inputs) <> 'object' THEN
        PERFORM {schema}.refuse('metadata.step_inputs', 'must be an object keyed by step name');
    END IF;
    FOR step, fields IN SELECT * FROM jsonb_each(inputs) LOOP
        field := 'metadata.step_inputs.' || step;
        allowed := CASE step
            WHEN 'encrypt_source' THEN 'encrypted_data, metadata'
            WHEN 'append_tsa' THEN 'signer_id, workflow_id'
            WHEN 'build_artifact' THEN 'artifact_version'
            WHEN 'create_witness' THEN 'none'
            WHEN 'anchor_polygon' THEN 'none'
            WHEN 'anchor_bitcoin' THEN 'none'
            WHEN 'notify_artifact_ready' THEN 'none'
        END;
        IF allowed IS NULL THEN
            PERFORM {schema}.refuse(field, 'no such step');
        END IF;
        IF jsonb_typeof(fields) <> 'object' THEN
            PERFORM {schema}.refuse(field, 'must be an object of body fields');
        END IF;
        FOR key, value IN SELECT * FROM jsonb_each(fields) LOOP
            IF NOT key = ANY (string_to_array(allowed, ', ')) THEN
                PERFORM {schema}.refuse(field || '.' || key,
                    'not an input a caller may give this step (allowed: ' || allowed || ')');
            END IF;
            IF step = 'encrypt_source' AND key = 'encrypted_data' AND NOT (
                jsonb_typeof(value) = 'string'
                AND length(value #>> '{}') BETWEEN 4 AND 1000002
                AND (value #>> '{}') ~ '^[A-Za-z0-9+/]+={0,2}$'
                AND length(rtrim(value #>> '{}', '=')) BETWEEN 4 AND 1000000
            ) THEN
                PERFORM {schema}.refuse(field || '.' || key,
                    'must be base64 ciphertext (at most 1,000,000 characters)');
            END IF;
            IF step = 'encrypt_source' AND key = 'metadata' AND NOT (
                jsonb_typeof(value) = 'object'
                AND NOT EXISTS (
                    SELECT 1 FROM jsonb_each(value) AS f(name, item)
                    WHERE NOT CASE f.name
                        WHEN 'original_name' THEN jsonb_typeof(item) = 'string'
                            AND (item #>> '{}') ~ '^[^\x01-\x1f\x7f/\\]{1,255}$'
                        WHEN 'original_mime' THEN jsonb_typeof(item) = 'string'
                            AND (item #>> '{}')
                                ~ '^[a-z0-9][a-z0-9.+-]{0,63}/[a-z0-9][a-z0-9.+-]{0,63}$'
                        WHEN 'original_size' THEN jsonb_typeof(item) = 'number'
                            AND (item #>> '{}') ~ '^[0-9]{1,13}$'
                            AND (item #>> '{}')::numeric <= 1000000000000
                        ELSE false
                    END
                )
            ) THEN
                PERFORM {schema}.refuse(field || '.' || key,
                    'must be an object with original_name, original_mime and original_size');
            END IF;
            IF step = 'append_tsa' AND NOT (
                jsonb_typeof(value) = 'string' AND (value #>> '{}') ~ uuid_re
            ) THEN
                PERFORM {schema}.refuse(field || '.' || key, 'must be a lowercase UUID');
            END IF;
            IF step = 'build_artifact' AND NOT (
                jsonb_typeof(value) = 'string'
                AND (value #>> '{}') ~ '^v?[0-9]{1,6}(\.[0-9]{1,6}){0,3}$'
            ) THEN
                PERFORM {schema}.refuse(field || '.' || key,
                    'must be a version such as v1 or 2.1 (never a path)');
            END IF;
        END LOOP;
    END LOOP;
END
$$;

-- A group of flags (``actions``, ``forensic``): an object of some of ``names``, each a JSON
-- boolean; every flag present in ``flags`` (absent = false), the true ones in ``names`` order.
CREATE FUNCTION {schema}.flag_group(
    value jsonb, field text, names text[], OUT flags jsonb, OUT enabled text[]
)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    key text;
BEGIN
    IF jsonb_typeof(value) <> 'object' THEN
        PERFORM {schema}.refuse(field, 'Input should be an object');
    END IF;
    FOR key IN SELECT jsonb_object_keys(value) LOOP
        IF NOT key = ANY (names) THEN
            PERFORM {schema}.refuse(field || '.' || key, 'Extra inputs are not permitted');
        END IF;
        IF jsonb_typeof(value -> key) <> 'boolean' THEN
            PERFORM {schema}.refuse(field || '.' || key, 'Input should be a valid boolean');
        END IF;
    END LOOP;
    flags := (SELECT jsonb_object_agg(n, coalesce((value ->> n)::boolean, false))
              FROM unnest(names) AS n);
    enabled := ARRAY(SELECT n FROM unnest(names) WITH ORDINALITY AS a(n, i)
                     WHERE (value ->> n)::boolean ORDER BY i);
END
$$;

-- The DocumentJob, validated and normalised as the API stores it (every flag present), and the
-- flow's identity (its dedupe key: ecosign/model.py intent_key).
CREATE FUNCTION {schema}.document_job(job jsonb, OUT payload jsonb, OUT intent_key text)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    key text;
    value jsonb;
    doc text;
    actions jsonb;
    forensic jsonb;
    metadata jsonb;
    action_names constant text[] := ARRAY['protect', 'nda', 'sign_owner', 'sign_workflow'];
    forensic_names constant text[] := ARRAY['tsa', 'polygon', 'bitcoin'];
    enabled text[];
    evidence text[];
    staged boolean;
BEGIN
    IF job IS NULL OR jsonb_typeof(job) <> 'object' THEN
        PERFORM {schema}.refuse('job', 'must be a JSON object (a DocumentJob)');
    END IF;
    FOR key IN SELECT jsonb_object_keys(job) LOOP
        IF NOT key = ANY (ARRAY['document_entity_id', 'actions', 'forensic', 'metadata']) THEN
            PERFORM {schema}.refuse(key, 'Extra inputs are not permitted');
        END IF;
    END LOOP;

    value := job -> 'document_entity_id';
    IF value IS NULL THEN
        PERFORM {schema}.refuse('document_entity_id', 'Field required');
    END IF;
    IF jsonb_typeof(value) <> 'string' THEN
        PERFORM {schema}.refuse('document_entity_id', 'must be a UUID string');
    END IF;
    doc := value #>> '{}';
    IF doc !~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' THEN
        PERFORM {schema}.refuse('document_entity_id',
            'must be a UUID (8-4-4-4-12 hexadecimal digits)');
    END IF;
    doc := lower(doc);

    value := job -> 'actions';
    IF value IS NULL THEN
        PERFORM {schema}.refuse('actions', 'Field required');
    END IF;
    SELECT g.flags, g.enabled INTO actions, enabled
    FROM {schema}.flag_group(value, 'actions', action_names) AS g;
    IF cardinality(enabled) = 0 THEN
        PERFORM {schema}.refuse('actions',
            'at least one of protect, nda, sign_owner, sign_workflow must be true');
    END IF;
    SELECT g.flags, g.enabled INTO forensic, evidence
    FROM {schema}.flag_group(coalesce(job -> 'forensic', '{}'), 'forensic', forensic_names) AS g;

    metadata := job -> 'metadata';
    IF metadata IS NOT NULL AND jsonb_typeof(metadata) = 'null' THEN
        metadata := NULL;
    END IF;
    IF metadata IS NOT NULL THEN
        IF jsonb_typeof(metadata) <> 'object' THEN
            PERFORM {schema}.refuse('metadata', 'Input should be a valid dictionary');
        END IF;
        IF 1 + {schema}.json_height(metadata) > 32 THEN
            PERFORM {schema}.refuse('metadata', 'nesting deeper than 32 levels');
        END IF;
        value := metadata -> 'anchor_stage';
        IF value IS NOT NULL AND jsonb_typeof(value) <> 'null' AND NOT (
            jsonb_typeof(value) = 'string'
            AND (value #>> '{}') = ANY (ARRAY['initial', 'intermediate', 'final'])
        ) THEN
            PERFORM {schema}.refuse('metadata',
                'anchor_stage must be one of initial, intermediate, final');
        END IF;
        value := metadata -> 'step_index';
        IF value IS NOT NULL AND jsonb_typeof(value) <> 'null' THEN
            IF NOT (jsonb_typeof(value) = 'number' AND (value #>> '{}') ~ '^[0-9]+$') THEN
                PERFORM {schema}.refuse('metadata', 'step_index must be a whole number, 0 or more');
            END IF;
            IF (value #>> '{}')::numeric > 10000 THEN
                PERFORM {schema}.refuse('metadata', 'step_index must be at most 10000');
            END IF;
        END IF;
        value := metadata -> 'witness_hash';
        IF value IS NOT NULL AND jsonb_typeof(value) <> 'null' AND NOT (
            jsonb_typeof(value) = 'string' AND (value #>> '{}') ~ '^[0-9a-f]{64}$'
        ) THEN
            PERFORM {schema}.refuse('metadata',
                'witness_hash must be 64 lowercase hex characters (a SHA-256)');
        END IF;
        PERFORM {schema}.check_step_inputs(metadata -> 'step_inputs');
    END IF;

    payload := jsonb_build_object(
        'document_entity_id', doc, 'actions', actions, 'forensic', forensic);
    IF metadata IS NOT NULL THEN
        payload := payload || jsonb_build_object('metadata', metadata);
    END IF;
    intent_key := 'ecosign:' || doc || ':' || array_to_string(enabled, ',') || ':'
        || coalesce(nullif(array_to_string(evidence, ','), ''), '-') || ':'
        || CASE WHEN metadata ->> 'custody_mode' = 'hash_only'
                     AND jsonb_typeof(metadata -> 'custody_mode') = 'string'
                THEN 'hash_only' ELSE 'custody' END;
    staged := (actions ->> 'sign_workflow')::boolean AND metadata IS NOT NULL
        AND (metadata ? 'anchor_stage' OR metadata ? 'step_index' OR metadata ? 'witness_hash');
    IF staged THEN
        intent_key := intent_key || ':stage='
            || CASE WHEN jsonb_typeof(metadata -> 'anchor_stage') = 'string'
                    THEN metadata ->> 'anchor_stage' ELSE 'initial' END || '/'
            || CASE WHEN jsonb_typeof(metadata -> 'step_index') = 'number'
                    THEN metadata ->> 'step_index' ELSE '0' END || '/'
            || CASE WHEN jsonb_typeof(metadata -> 'witness_hash') = 'string'
                    THEN metadata ->> 'witness_hash' ELSE 'current' END;
    END IF;
END
$$;

-- The flow a request must return instead of creating one (NULL: none), as the API decides it:
-- the job its idempotency key created (the same request, or a refusal), else the newest active or
-- completed flow of the same document and intent.
CREATE FUNCTION {schema}.existing_document_job(
    payload jsonb, intent_key text, idempotency_key text
) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    holder record;
BEGIN
    IF idempotency_key IS NOT NULL THEN
        SELECT j.id, j.kind, j.payload INTO holder
        FROM {schema}.jobs AS j WHERE j.idempotency_key = existing_document_job.idempotency_key;
        IF FOUND THEN
            IF holder.kind <> 'ecosign.document' OR holder.payload <> existing_document_job.payload
            THEN
                RAISE EXCEPTION USING ERRCODE = '23505', COLUMN = 'idempotency_key',
                    MESSAGE = 'idempotency_key: already used by job ' || holder.id
                        || ' for a different request';
            END IF;
            RETURN holder.id;
        END IF;
    END IF;
    SELECT j.id INTO holder FROM {schema}.jobs AS j
    WHERE j.dedupe_key = existing_document_job.intent_key
      AND j.status IN ('queued', 'running', 'retrying', 'waiting', 'completed')
    ORDER BY j.id DESC
    LIMIT 1;
    RETURN holder.id;
END
$$;

CREATE FUNCTION {schema}.submit_document_job(
    job jsonb, idempotency_key text DEFAULT NULL, priority integer DEFAULT 0
) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    checked record;
    existing text;
    new_id text;
    now_at timestamptz := clock_timestamp();
BEGIN
    IF octet_length(job::text) > 1048576 THEN
        PERFORM {schema}.refuse('job', 'larger than 1 MiB');
    END IF;
    IF idempotency_key IS NOT NULL AND NOT length(idempotency_key) BETWEEN 1 AND 256 THEN
        PERFORM {schema}.refuse('idempotency_key', 'must be 1 to 256 characters');
    END IF;
    IF priority IS NULL THEN
        PERFORM {schema}.refuse('priority', 'must be an integer');
    END IF;
    SELECT * INTO checked FROM {schema}.document_job(job);
    existing := {schema}.existing_document_job(
        checked.payload, checked.intent_key, idempotency_key);
    IF existing IS NOT NULL THEN
        RETURN existing;
    END IF;
    -- A UUIDv7 as the Python side makes them: the time in milliseconds, then random bits.
    new_id := encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) PLACING
        substring(int8send((extract(epoch FROM now_at) * 1000)::bigint) FROM 3)
        FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid::text;
    BEGIN
        INSERT INTO {schema}.jobs (
            id, kind, queue, payload, status, priority, attempts, max_attempts, run_at,
            dedupe_key, cancel_requested, progress_message, steps, result, retry, created_at,
            updated_at, idempotency_key, fingerprint
        ) VALUES (
            new_id, 'ecosign.document', 'default', checked.payload, 'queued',
            submit_document_job.priority, 0, 54, now_at, checked.intent_key, false, '', '[]',
            'null', '{}', now_at, now_at, submit_document_job.idempotency_key,
            -- Compared by normalised payload, on this side and the Python side ("jsonb:").
            'jsonb:' || encode(sha256(convert_to(checked.payload::text, 'UTF8')), 'hex')
        );
    EXCEPTION WHEN unique_violation THEN
        -- A concurrent submission (API or SQL) of the same key or intent committed first.
        RETURN {schema}.existing_document_job(
            checked.payload, checked.intent_key, idempotency_key);
    END;
    INSERT INTO {schema}.events (job_id, type, at, attempt, data)
    VALUES (new_id, 'job_queued', now_at, 0, jsonb_build_object(
        'reason', 'enqueued', 'kind', 'ecosign.document', 'queue', 'default', 'via', 'sql'));
    PERFORM pg_notify(trim(BOTH '"' FROM '{schema}') || '_jobs_ready', '');
    RETURN new_id;
END
$$;

REVOKE ALL ON FUNCTION {schema}.submit_document_job(jsonb, text, integer) FROM PUBLIC;
