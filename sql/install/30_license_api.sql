-- License keys API: validation, activation, import and administration
-- (src/license_validate.c, src/license_admin.c, src/license_stats.c).

-- What validate_license answers.  valid is true only for code 'valid'.  For
-- not_found every other field is NULL, whatever the reason (unknown key, key
-- of another organization, malformed key).  For the other codes the key's
-- fields are filled in.  validations and last_validated_at include the counts
-- still waiting in shared memory for a flush, so they move at once.
CREATE TYPE benefits.license_validation AS (
    valid              boolean,
    code               text,
    message            text,
    license_key_id     uuid,
    customer_id        uuid,
    benefit_id         uuid,
    display_key        text,
    status             text,
    expires_at         timestamptz,
    usage              integer,
    limit_usage        integer,
    limit_activations  integer,
    validations        bigint,
    last_validated_at  timestamptz,
    activation_id      uuid
);

-- What activate_license answers.  ok is true only for code 'activated'.
-- activations is the key's number of activations (after this one).
CREATE TYPE benefits.license_activation AS (
    ok                 boolean,
    code               text,
    message            text,
    activation_id      uuid,
    label              text,
    license_key_id     uuid,
    conditions         jsonb,
    meta               jsonb,
    created_at         timestamptz,
    activations        integer,
    limit_activations  integer
);

CREATE FUNCTION benefits.validate_license(key text, organization_id uuid,
                                          activation_id uuid DEFAULT NULL,
                                          benefit_id uuid DEFAULT NULL,
                                          customer_id uuid DEFAULT NULL,
                                          increment_usage integer DEFAULT NULL,
                                          conditions jsonb DEFAULT '{}',
                                          fingerprint text DEFAULT NULL)
    RETURNS benefits.license_validation
    AS 'MODULE_PATHNAME', 'validate_license'
    LANGUAGE C VOLATILE;
-- Neither SECURITY DEFINER nor SET search_path here, unlike the other calls
-- of benefits_public: each clause costs a noticeable part of a validation.
-- The read path makes direct index lookups, which resolve nothing by name
-- and check no privileges; with increment_usage the C code switches to the
-- function's owner for its UPDATE and pins the search path itself, so its
-- SPI statements are prepared and run under pg_catalog alone
-- (src/license_validate.c, BecomeOwner and PinSearchPath).
COMMENT ON FUNCTION benefits.validate_license(text, uuid, uuid, uuid, uuid, integer, jsonb, text) IS
    'Check a license key; read-only unless increment_usage is given';

CREATE FUNCTION benefits.activate_license(key text, organization_id uuid, label text,
                                          conditions jsonb DEFAULT '{}', meta jsonb DEFAULT '{}',
                                          fingerprint text DEFAULT NULL)
    RETURNS benefits.license_activation
    AS 'MODULE_PATHNAME', 'activate_license'
    LANGUAGE C VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION benefits.activate_license(text, uuid, text, jsonb, jsonb, text) IS
    'Activate a license key (a device, an installation), within the key''s activation limit; a fingerprint activated again gets its activation back';

CREATE FUNCTION benefits.deactivate_license(key text, organization_id uuid, activation_id uuid)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'deactivate_license'
    LANGUAGE C VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION benefits.deactivate_license(text, uuid, uuid) IS
    'Deactivate an activation of a license key (kept as history, its seat freed); false when there was no such live activation';

-- Validations per organization and day (UTC), added by each flush: their
-- history for the merchant's dashboard (license_keys keeps the totals).
CREATE TABLE benefits.license_validations_daily (
    organization_id  uuid NOT NULL REFERENCES benefits.organizations ON DELETE CASCADE,
    day              date NOT NULL,
    validations      bigint NOT NULL CHECK (validations >= 0),
    PRIMARY KEY (organization_id, day)
);

-- Validation counters: see src/license_stats.c.  The background worker calls
-- flush_validation_stats() every benefits.validation_flush_interval (1s).
CREATE FUNCTION benefits.flush_validation_stats() RETURNS bigint
    AS 'MODULE_PATHNAME', 'flush_validation_stats'
    LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION benefits.flush_validation_stats() IS
    'Write the validation counts waiting in shared memory into license_keys; returns the rows updated';

CREATE FUNCTION benefits.validation_stats(OUT pending_keys bigint, OUT pending_validations bigint,
                                          OUT dropped bigint, OUT used bigint, OUT capacity integer)
    AS 'MODULE_PATHNAME', 'validation_stats'
    LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION benefits.validation_stats() IS
    'Validation counts waiting for a flush in this database, counts dropped because the shared table was full (all databases), and its fill';

-- A hot standby's validation counts: its validation forwarder (a background
-- worker, src/license_forward.c) sends them here in numbered batches, and
-- each sender's last batch applied is kept so that a batch sent again is not
-- counted twice.  Rows of senders silent for a week are deleted.
CREATE TABLE benefits.validation_count_senders (
    sender       uuid PRIMARY KEY,
    last_batch   bigint NOT NULL CHECK (last_batch > 0),
    received_at  timestamptz NOT NULL
);
REVOKE ALL ON benefits.validation_count_senders FROM PUBLIC;

CREATE FUNCTION benefits.receive_validation_counts(sender uuid, batch bigint, license_key_ids uuid[],
                                                   counts bigint[], last_validated timestamptz[])
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'receive_validation_counts'
    LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION benefits.receive_validation_counts(uuid, bigint, uuid[], bigint[], timestamptz[]) IS
    'Add a hot standby''s validation counts (one batch of its forwarder) to the keys; returns the keys updated, 0 for a batch already received';
REVOKE EXECUTE ON FUNCTION benefits.receive_validation_counts(uuid, bigint, uuid[], bigint[], timestamptz[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION benefits.receive_validation_counts(uuid, bigint, uuid[], bigint[], timestamptz[])
    TO benefits_replica;

CREATE FUNCTION benefits.import_license_key(customer_id uuid, benefit_id uuid, key text,
                                            limit_usage integer DEFAULT NULL,
                                            limit_activations integer DEFAULT NULL,
                                            expires_at timestamptz DEFAULT NULL,
                                            status text DEFAULT 'granted',
                                            usage integer DEFAULT 0)
    RETURNS benefits.license_keys
    AS 'MODULE_PATHNAME', 'import_license_key'
    LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION benefits.import_license_key(uuid, uuid, text, integer, integer, timestamptz, text, integer) IS
    'Store a key issued by another system as a customer''s key for a license_keys benefit; NULL limits come from the benefit';

CREATE FUNCTION benefits.rotate_license_key(license_key_id uuid)
    RETURNS benefits.license_keys
    AS 'MODULE_PATHNAME', 'rotate_license_key'
    LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION benefits.rotate_license_key(uuid) IS
    'Replace a key by a new generated one, keeping its usage, counters and activations';

-- Administrative changes of one key.  NULL leaves a field unchanged; unset
-- lists the fields to clear (no usage limit, no activation limit, no expiry).
CREATE FUNCTION benefits.update_license_key(license_key_id uuid,
                                            status text DEFAULT NULL,
                                            limit_usage integer DEFAULT NULL,
                                            limit_activations integer DEFAULT NULL,
                                            expires_at timestamptz DEFAULT NULL,
                                            usage integer DEFAULT NULL,
                                            unset text[] DEFAULT '{}')
    RETURNS benefits.license_keys
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    k benefits.license_keys;
    clear text[] := coalesce(update_license_key.unset, '{}');
    field text;
BEGIN
    IF update_license_key.license_key_id IS NULL THEN
        RAISE EXCEPTION 'license_key_id must not be null' USING ERRCODE = '22023';
    END IF;
    IF update_license_key.status = 'revoked' THEN
        RAISE EXCEPTION 'status must be granted or disabled'
            USING ERRCODE = '22023', DETAIL = 'Got ''revoked''.',
                  HINT = 'A key is revoked with its grant: benefits.revoke_benefit.';
    ELSIF update_license_key.status NOT IN ('granted', 'disabled') THEN
        RAISE EXCEPTION 'status must be granted or disabled'
            USING ERRCODE = '22023', DETAIL = format('Got %L.', update_license_key.status);
    END IF;
    IF update_license_key.limit_usage IS NOT NULL AND update_license_key.limit_usage <= 0 THEN
        RAISE EXCEPTION 'limit_usage must be a positive integer'
            USING ERRCODE = '22023', DETAIL = format('Got %s.', update_license_key.limit_usage),
                  HINT = 'To remove the limit, pass unset => ''{limit_usage}''.';
    END IF;
    IF update_license_key.limit_activations IS NOT NULL AND update_license_key.limit_activations <= 0 THEN
        RAISE EXCEPTION 'limit_activations must be a positive integer'
            USING ERRCODE = '22023', DETAIL = format('Got %s.', update_license_key.limit_activations),
                  HINT = 'To remove the limit, pass unset => ''{limit_activations}''.';
    END IF;
    IF update_license_key.limit_activations > 1000 THEN
        RAISE EXCEPTION 'limit_activations must be at most 1000'
            USING ERRCODE = '22023', DETAIL = format('Got %s.', update_license_key.limit_activations);
    END IF;
    IF update_license_key.usage IS NOT NULL AND update_license_key.usage < 0 THEN
        RAISE EXCEPTION 'usage must not be negative'
            USING ERRCODE = '22023', DETAIL = format('Got %s.', update_license_key.usage);
    END IF;
    FOREACH field IN ARRAY clear LOOP
        IF field IS NULL OR field NOT IN ('limit_usage', 'limit_activations', 'expires_at') THEN
            RAISE EXCEPTION 'unset may only name limit_usage, limit_activations and expires_at'
                USING ERRCODE = '22023', DETAIL = format('Got %L.', field);
        END IF;
    END LOOP;
    IF ('limit_usage' = ANY (clear) AND update_license_key.limit_usage IS NOT NULL)
       OR ('limit_activations' = ANY (clear) AND update_license_key.limit_activations IS NOT NULL)
       OR ('expires_at' = ANY (clear) AND update_license_key.expires_at IS NOT NULL) THEN
        RAISE EXCEPTION 'unset names a field that is also given a value'
            USING ERRCODE = '22023', DETAIL = format('unset is %L.', clear);
    END IF;

    SELECT * INTO k FROM benefits.license_keys lk
     WHERE lk.id = update_license_key.license_key_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'license_key_id % does not exist', update_license_key.license_key_id
            USING ERRCODE = '22023';
    END IF;
    IF k.status = 'revoked' AND update_license_key.status IS NOT NULL THEN
        RAISE EXCEPTION 'status of a revoked license key cannot be changed'
            USING ERRCODE = '22023',
                  HINT = 'Granting the benefit again restores the key.';
    END IF;

    UPDATE benefits.license_keys AS lk SET
        status = coalesce(update_license_key.status, lk.status),
        usage = coalesce(update_license_key.usage, lk.usage),
        limit_usage = CASE WHEN 'limit_usage' = ANY (clear) THEN NULL
                           ELSE coalesce(update_license_key.limit_usage, lk.limit_usage) END,
        limit_activations = CASE WHEN 'limit_activations' = ANY (clear) THEN NULL
                                 ELSE coalesce(update_license_key.limit_activations, lk.limit_activations) END,
        expires_at = CASE WHEN 'expires_at' = ANY (clear) THEN NULL
                          ELSE coalesce(update_license_key.expires_at, lk.expires_at) END,
        modified_at = now()
     WHERE lk.id = update_license_key.license_key_id
    RETURNING lk.* INTO k;
    RETURN k;
END
$$;
COMMENT ON FUNCTION benefits.update_license_key(uuid, text, integer, integer, timestamptz, integer, text[]) IS
    'Change a key''s status (granted/disabled), usage, limits or expiry';

-- The public calls: an application's end users hold only benefits_public.
GRANT EXECUTE ON FUNCTION
    benefits.validate_license(text, uuid, uuid, uuid, uuid, integer, jsonb, text),
    benefits.activate_license(text, uuid, text, jsonb, jsonb, text),
    benefits.deactivate_license(text, uuid, uuid)
    TO benefits_public, benefits_app;
