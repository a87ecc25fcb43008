-- benefits 0.1.0 — core catalog: organizations, products, benefits, customers,
-- subscriptions, orders and grants.  The install script is assembled from the
-- files of sql/install/ in name order; each file owns one subsystem.

\echo Use "CREATE EXTENSION benefits" to load this file. \quit

-- Group roles.  Roles are cluster-wide, so they survive DROP EXTENSION and are
-- created only when missing.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'benefits_admin') THEN
        CREATE ROLE benefits_admin NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'benefits_app') THEN
        CREATE ROLE benefits_app NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'benefits_public') THEN
        CREATE ROLE benefits_public NOLOGIN;
    END IF;
END
$roles$;

REVOKE ALL ON SCHEMA benefits FROM PUBLIC;
GRANT USAGE ON SCHEMA benefits TO benefits_admin, benefits_app, benefits_public;

CREATE TABLE benefits.organizations (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL CHECK (name <> ''),
    -- How long past_due/unpaid subscriptions keep their benefits.
    grace_period    interval NOT NULL DEFAULT '0 days' CHECK (grace_period >= '0 days'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    modified_at     timestamptz
);

CREATE TABLE benefits.products (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES benefits.organizations ON DELETE CASCADE,
    name            text NOT NULL CHECK (name <> ''),
    external_id     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    modified_at     timestamptz,
    UNIQUE (organization_id, external_id),
    UNIQUE (id, organization_id)
);

CREATE TABLE benefits.benefits (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES benefits.organizations ON DELETE CASCADE,
    type            text NOT NULL CHECK (type IN ('license_keys', 'github_repository', 'discord',
                                                  'downloadable', 'meter_credits', 'custom')),
    description     text NOT NULL CHECK (description <> ''),
    properties      jsonb NOT NULL DEFAULT '{}',
    metadata        jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    modified_at     timestamptz,
    deleted_at      timestamptz,
    UNIQUE (id, organization_id)
);
CREATE INDEX ON benefits.benefits (organization_id) WHERE deleted_at IS NULL;

-- Ordered attachment of benefits to products.
CREATE TABLE benefits.product_benefits (
    product_id      uuid NOT NULL REFERENCES benefits.products ON DELETE CASCADE,
    benefit_id      uuid NOT NULL REFERENCES benefits.benefits ON DELETE CASCADE,
    position        integer NOT NULL,
    PRIMARY KEY (product_id, benefit_id),
    UNIQUE (product_id, position) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX ON benefits.product_benefits (benefit_id);

CREATE TABLE benefits.customers (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES benefits.organizations ON DELETE CASCADE,
    external_id     text,
    email           text,
    name            text,
    metadata        jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    modified_at     timestamptz,
    deleted_at      timestamptz,
    UNIQUE (organization_id, external_id),
    UNIQUE (id, organization_id)
);

-- Linked GitHub/Discord identities.  access_token is the customer's Discord
-- OAuth token with the guilds.join scope, needed to add them to a server.
CREATE TABLE benefits.customer_accounts (
    customer_id     uuid NOT NULL REFERENCES benefits.customers ON DELETE CASCADE,
    platform        text NOT NULL CHECK (platform IN ('github', 'discord')),
    account_id      text NOT NULL CHECK (account_id <> ''),
    username        text,
    access_token    text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    modified_at     timestamptz,
    PRIMARY KEY (customer_id, platform)
);

CREATE TABLE benefits.subscriptions (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id       uuid NOT NULL,
    customer_id           uuid NOT NULL,
    product_id            uuid NOT NULL,
    status                text NOT NULL CHECK (status IN ('incomplete', 'incomplete_expired', 'trialing',
                                                          'active', 'past_due', 'unpaid', 'canceled', 'revoked')),
    current_period_start  timestamptz NOT NULL DEFAULT now(),
    current_period_end    timestamptz,
    cancel_at_period_end  boolean NOT NULL DEFAULT false,
    canceled_at           timestamptz,
    ended_at              timestamptz,
    -- When the subscription entered past_due/unpaid; the grace period runs from here.
    past_due_at           timestamptz,
    metadata              jsonb NOT NULL DEFAULT '{}',
    created_at            timestamptz NOT NULL DEFAULT now(),
    modified_at           timestamptz,
    FOREIGN KEY (customer_id, organization_id) REFERENCES benefits.customers (id, organization_id) ON DELETE CASCADE,
    FOREIGN KEY (product_id, organization_id) REFERENCES benefits.products (id, organization_id)
);
CREATE INDEX ON benefits.subscriptions (customer_id);
CREATE INDEX ON benefits.subscriptions (product_id);

CREATE TABLE benefits.orders (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  uuid NOT NULL,
    customer_id      uuid NOT NULL,
    product_id       uuid NOT NULL,
    subscription_id  uuid REFERENCES benefits.subscriptions ON DELETE SET NULL,
    billing_reason   text NOT NULL DEFAULT 'purchase'
                     CHECK (billing_reason IN ('purchase', 'subscription_create', 'subscription_cycle', 'subscription_update')),
    status           text NOT NULL DEFAULT 'paid'
                     CHECK (status IN ('pending', 'paid', 'refunded', 'partially_refunded', 'disputed')),
    metadata         jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    modified_at      timestamptz,
    FOREIGN KEY (customer_id, organization_id) REFERENCES benefits.customers (id, organization_id) ON DELETE CASCADE,
    FOREIGN KEY (product_id, organization_id) REFERENCES benefits.products (id, organization_id)
);
CREATE INDEX ON benefits.orders (customer_id);
CREATE INDEX ON benefits.orders (subscription_id);

-- One row per (customer, benefit, subscription or order); a manual grant has
-- neither.  state: created -> active -> revoked, revoked -> active (re-grant).
CREATE TABLE benefits.grants (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  uuid NOT NULL,
    customer_id      uuid NOT NULL,
    benefit_id       uuid NOT NULL,
    subscription_id  uuid REFERENCES benefits.subscriptions ON DELETE CASCADE,
    order_id         uuid REFERENCES benefits.orders ON DELETE CASCADE,
    state            text NOT NULL DEFAULT 'created' CHECK (state IN ('created', 'active', 'revoked')),
    properties       jsonb NOT NULL DEFAULT '{}',
    previous_properties jsonb,
    error            jsonb,
    granted_at       timestamptz,
    revoked_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    modified_at      timestamptz,
    FOREIGN KEY (customer_id, organization_id) REFERENCES benefits.customers (id, organization_id) ON DELETE CASCADE,
    FOREIGN KEY (benefit_id, organization_id) REFERENCES benefits.benefits (id, organization_id) ON DELETE CASCADE,
    UNIQUE NULLS NOT DISTINCT (customer_id, benefit_id, subscription_id, order_id)
);
CREATE INDEX ON benefits.grants (subscription_id) WHERE subscription_id IS NOT NULL;
CREATE INDEX ON benefits.grants (order_id) WHERE order_id IS NOT NULL;

-- Organization defaults from the customer, so applications may omit it.
CREATE FUNCTION benefits.default_organization_from_customer() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NEW.organization_id IS NULL THEN
        SELECT c.organization_id INTO NEW.organization_id
          FROM benefits.customers c WHERE c.id = NEW.customer_id;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER organization_default BEFORE INSERT ON benefits.subscriptions
    FOR EACH ROW WHEN (NEW.organization_id IS NULL) EXECUTE FUNCTION benefits.default_organization_from_customer();
CREATE TRIGGER organization_default BEFORE INSERT ON benefits.orders
    FOR EACH ROW WHEN (NEW.organization_id IS NULL) EXECUTE FUNCTION benefits.default_organization_from_customer();

-- Meters: credit balances granted by meter_credits benefits.  The meters
-- subsystem adds the ledger and usage tables.
CREATE TABLE benefits.meters (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  uuid NOT NULL REFERENCES benefits.organizations ON DELETE CASCADE,
    name             text NOT NULL CHECK (name <> ''),
    -- Whether record_usage may drive a balance below zero.
    allow_overage    boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, organization_id)
);

-- Downloadable files in S3-compatible storage, referenced by downloadable benefits.
CREATE TABLE benefits.files (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  uuid NOT NULL REFERENCES benefits.organizations ON DELETE CASCADE,
    name             text NOT NULL CHECK (name <> ''),
    size             bigint NOT NULL CHECK (size >= 0 AND size <= 10737418240),
    mime_type        text NOT NULL DEFAULT 'application/octet-stream',
    checksum_sha256  text,
    storage_key      text NOT NULL DEFAULT gen_random_uuid()::text,
    enabled          boolean NOT NULL DEFAULT true,
    archived         boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    modified_at      timestamptz,
    UNIQUE (id, organization_id)
);

CREATE TRIGGER organization_default BEFORE INSERT ON benefits.grants
    FOR EACH ROW WHEN (NEW.organization_id IS NULL) EXECUTE FUNCTION benefits.default_organization_from_customer();
-- The benefit catalog (src/catalog.c, src/properties.c): benefits are created,
-- edited and deleted through these functions, which validate and normalize
-- their properties, and attached to products in order.  They are for
-- benefits_admin only (99_privileges.sql); nothing is granted to PUBLIC.

CREATE FUNCTION benefits.create_benefit(type text, organization_id uuid, description text, properties jsonb)
RETURNS benefits.benefits
LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'create_benefit';
COMMENT ON FUNCTION benefits.create_benefit(text, uuid, text, jsonb) IS
'Creates a benefit of the organization after validating its properties; aliases downloadables, meter_credit and a custom benefit with meter_id and credits are stored under their canonical type';

CREATE FUNCTION benefits.update_benefit(benefit_id uuid, description text DEFAULT NULL, properties jsonb DEFAULT NULL)
RETURNS benefits.benefits
LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'update_benefit';
COMMENT ON FUNCTION benefits.update_benefit(uuid, text, jsonb) IS
'Replaces the description and/or the properties of a benefit (NULL keeps them); the type cannot change';

CREATE FUNCTION benefits.delete_benefit(benefit_id uuid)
RETURNS void
LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'delete_benefit';
COMMENT ON FUNCTION benefits.delete_benefit(uuid) IS
'Soft-deletes a benefit (sets deleted_at) and detaches it from every product';

CREATE FUNCTION benefits.update_product_benefits(product_id uuid, benefit_ids uuid[])
RETURNS void
LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'update_product_benefits';
COMMENT ON FUNCTION benefits.update_product_benefits(uuid, uuid[]) IS
'Makes benefit_ids, in this order, the benefits of the product';
-- License keys and their activations.

CREATE TABLE benefits.license_keys (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id    uuid NOT NULL,
    customer_id        uuid NOT NULL,
    benefit_id         uuid,
    -- Canonical form (see LicenseKeyCanonical): what validate_license looks up.
    -- Compared bytewise: equality is the same under every deterministic
    -- collation, and the unique index's lookups then skip strcoll().
    key                text COLLATE "C" NOT NULL,
    display_key        text NOT NULL,
    status             text NOT NULL DEFAULT 'granted' CHECK (status IN ('granted', 'revoked', 'disabled')),
    usage              integer NOT NULL DEFAULT 0 CHECK (usage >= 0),
    limit_usage        integer CHECK (limit_usage > 0),
    limit_activations  integer CHECK (limit_activations > 0),
    validations        bigint NOT NULL DEFAULT 0,
    last_validated_at  timestamptz,
    expires_at         timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    modified_at        timestamptz,
    FOREIGN KEY (customer_id, organization_id) REFERENCES benefits.customers (id, organization_id) ON DELETE CASCADE,
    FOREIGN KEY (benefit_id, organization_id) REFERENCES benefits.benefits (id, organization_id) ON DELETE SET NULL (benefit_id),
    UNIQUE (organization_id, key),
    -- One key per customer and benefit: every grant of the benefit shares it,
    -- and a re-grant restores it.
    UNIQUE (customer_id, benefit_id)
);
CREATE INDEX ON benefits.license_keys (benefit_id);

CREATE TABLE benefits.license_key_activations (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    license_key_id  uuid NOT NULL REFERENCES benefits.license_keys ON DELETE CASCADE,
    label           text NOT NULL CHECK (label <> ''),
    conditions      jsonb NOT NULL DEFAULT '{}',
    meta            jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    modified_at     timestamptz
);
CREATE INDEX ON benefits.license_key_activations (license_key_id);
-- Grants: the state machine trigger, manual grants and revokes, listing.

CREATE FUNCTION benefits.grants_state_guard() RETURNS trigger
    AS 'MODULE_PATHNAME', 'grants_state_guard' LANGUAGE C;
CREATE TRIGGER state_guard BEFORE INSERT OR UPDATE ON benefits.grants
    FOR EACH ROW EXECUTE FUNCTION benefits.grants_state_guard();

CREATE FUNCTION benefits.grant_benefit(customer_id uuid, benefit_id uuid)
    RETURNS benefits.grants
    AS 'MODULE_PATHNAME', 'grant_benefit' LANGUAGE C VOLATILE
    SET search_path = pg_catalog, pg_temp SET enable_seqscan = off;
COMMENT ON FUNCTION benefits.grant_benefit(uuid, uuid) IS
    'Grant a benefit to a customer by hand; idempotent, and restores a revoked grant';

CREATE FUNCTION benefits.revoke_benefit(customer_id uuid, benefit_id uuid)
    RETURNS void
    AS 'MODULE_PATHNAME', 'revoke_benefit' LANGUAGE C VOLATILE
    SET search_path = pg_catalog, pg_temp SET enable_seqscan = off;
COMMENT ON FUNCTION benefits.revoke_benefit(uuid, uuid) IS
    'Revoke a manual grant';

-- is_granted: true lists active grants, false the others (pending or revoked).
CREATE FUNCTION benefits.list_grants(customer_id uuid DEFAULT NULL, benefit_id uuid DEFAULT NULL,
                                     is_granted boolean DEFAULT NULL)
    RETURNS SETOF benefits.grants
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT g.* FROM benefits.grants g
         WHERE ($1 IS NULL OR g.customer_id = $1)
           AND ($2 IS NULL OR g.benefit_id = $2)
           AND ($3 IS NULL OR (g.state = 'active') = $3)
         ORDER BY g.created_at, g.id
    $$;

CREATE FUNCTION benefits.grant_benefit_bulk(customer_ids uuid[], benefit_id uuid)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'grant_benefit_bulk' LANGUAGE C VOLATILE
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION benefits.grant_benefit_bulk(uuid[], uuid) IS
    'Grant a benefit by hand to many customers at once, set-based; returns the grants made or restored';
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
                                          conditions jsonb DEFAULT '{}')
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
COMMENT ON FUNCTION benefits.validate_license(text, uuid, uuid, uuid, uuid, integer, jsonb) IS
    'Check a license key; read-only unless increment_usage is given';

CREATE FUNCTION benefits.activate_license(key text, organization_id uuid, label text,
                                          conditions jsonb DEFAULT '{}', meta jsonb DEFAULT '{}')
    RETURNS benefits.license_activation
    AS 'MODULE_PATHNAME', 'activate_license'
    LANGUAGE C VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION benefits.activate_license(text, uuid, text, jsonb, jsonb) IS
    'Activate a license key (a device, an installation), within the key''s activation limit';

CREATE FUNCTION benefits.deactivate_license(key text, organization_id uuid, activation_id uuid)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'deactivate_license'
    LANGUAGE C VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION benefits.deactivate_license(text, uuid, uuid) IS
    'Remove an activation of a license key; false when there was no such activation';

-- Validation counters: see src/license_stats.c.  The background worker calls
-- flush_validation_stats() every benefits.validation_flush_interval (1s).
CREATE FUNCTION benefits.flush_validation_stats() RETURNS bigint
    AS 'MODULE_PATHNAME', 'flush_validation_stats'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION benefits.flush_validation_stats() IS
    'Write the validation counts waiting in shared memory into license_keys; returns the rows updated';

CREATE FUNCTION benefits.validation_stats(OUT pending_keys bigint, OUT pending_validations bigint,
                                          OUT dropped bigint, OUT used bigint, OUT capacity integer)
    AS 'MODULE_PATHNAME', 'validation_stats'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION benefits.validation_stats() IS
    'Validation counts waiting for a flush in this database, counts dropped because the shared table was full (all databases), and its fill';

CREATE FUNCTION benefits.import_license_key(customer_id uuid, benefit_id uuid, key text,
                                            limit_usage integer DEFAULT NULL,
                                            limit_activations integer DEFAULT NULL,
                                            expires_at timestamptz DEFAULT NULL,
                                            status text DEFAULT 'granted',
                                            usage integer DEFAULT 0)
    RETURNS benefits.license_keys
    AS 'MODULE_PATHNAME', 'import_license_key'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION benefits.import_license_key(uuid, uuid, text, integer, integer, timestamptz, text, integer) IS
    'Store a key issued by another system as a customer''s key for a license_keys benefit; NULL limits come from the benefit';

CREATE FUNCTION benefits.rotate_license_key(license_key_id uuid)
    RETURNS benefits.license_keys
    AS 'MODULE_PATHNAME', 'rotate_license_key'
    LANGUAGE C VOLATILE;
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
    benefits.validate_license(text, uuid, uuid, uuid, uuid, integer, jsonb),
    benefits.activate_license(text, uuid, text, jsonb, jsonb),
    benefits.deactivate_license(text, uuid, uuid)
    TO benefits_public, benefits_app;
-- The outbox: every provider call and webhook delivery is a row written in the
-- transaction that caused it.  The background worker claims rows with a lease,
-- performs the I/O outside any transaction, and records the result.

CREATE TABLE benefits.webhook_endpoints (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id       uuid NOT NULL REFERENCES benefits.organizations ON DELETE CASCADE,
    url                   text NOT NULL,
    secret                text NOT NULL,
    events                text[] NOT NULL,
    enabled               boolean NOT NULL DEFAULT true,
    consecutive_failures  integer NOT NULL DEFAULT 0,
    disabled_at           timestamptz,
    disabled_reason       text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    modified_at           timestamptz
);
CREATE INDEX ON benefits.webhook_endpoints (organization_id) WHERE enabled;

CREATE TABLE benefits.outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id  uuid NOT NULL,
    -- webhook: a delivery to endpoint_id; github/discord: a provider call.
    kind             text NOT NULL CHECK (kind IN ('webhook', 'github', 'discord')),
    -- Jobs of one grant run in id order: a revoke never overtakes its grant.
    grant_id         uuid,
    endpoint_id      uuid REFERENCES benefits.webhook_endpoints ON DELETE CASCADE,
    -- Webhooks: the event type and the webhook-id header, stable across retries.
    event_type       text,
    message_id       text,
    -- Webhooks: 'deliver'.  GitHub: add_collaborator, remove_collaborator.
    -- Discord: add_member, add_role, remove_role, kick_member.
    action           text NOT NULL,
    payload          jsonb NOT NULL,
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'done', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    run_after        timestamptz NOT NULL DEFAULT now(),
    leased_until     timestamptz,
    last_status      integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    -- Provider jobs run in id order per access they touch, whatever the
    -- grant: a revoke of one grant never overtakes another grant's add of
    -- the same collaborator or member.  NULL (webhooks, incomplete
    -- payloads): ordered by grant only.
    chain_key        text GENERATED ALWAYS AS (CASE kind
        WHEN 'github' THEN 'github:' || lower(payload->>'owner') || '/' || lower(payload->>'repo')
                           || '/' || lower(payload->>'username')
        WHEN 'discord' THEN 'discord:' || (payload->>'guild_id') || '/' || (payload->>'user_id')
        END) STORED,
    CHECK ((kind = 'webhook') = (endpoint_id IS NOT NULL AND message_id IS NOT NULL))
);
CREATE INDEX outbox_due ON benefits.outbox (run_after, id) WHERE state IN ('pending', 'running');
CREATE INDEX outbox_grant ON benefits.outbox (grant_id, id) WHERE grant_id IS NOT NULL AND state <> 'done';
CREATE INDEX outbox_chain ON benefits.outbox (chain_key, id) WHERE chain_key IS NOT NULL AND state IN ('pending', 'running');
-- The delivery worker's SQL: the commit wake-up trigger, webhook endpoints
-- and signatures, dead jobs and their retry.  The worker itself is C
-- (src/worker.c); it serves the databases in benefits.database_names.

-- Wake the database's worker when a transaction that queued jobs commits.
CREATE FUNCTION benefits.outbox_wake() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'outbox_wake';
CREATE TRIGGER outbox_wake AFTER INSERT ON benefits.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION benefits.outbox_wake();

-- Wake the worker when the calling transaction commits.
CREATE FUNCTION benefits.wake_worker() RETURNS void
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'wake_worker';

-- Pending deliveries of one endpoint (dead-lettered when it is disabled).
CREATE INDEX outbox_endpoint_pending ON benefits.outbox (endpoint_id) WHERE state = 'pending';

-- Standard Webhooks signature header value: v1,<base64 HMAC-SHA256 of
-- "msg_id.timestamp.body" keyed with the decoded whsec_ secret>.
CREATE FUNCTION benefits.sign_webhook(secret text, msg_id text, "timestamp" bigint, body text)
    RETURNS text LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'sign_webhook';

-- A new endpoint secret: whsec_ + base64 of 24 random bytes.
CREATE FUNCTION benefits.generate_webhook_secret() RETURNS text
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'generate_webhook_secret';

-- Raise 22023 unless url is an absolute http(s) URL of an allowed host.
CREATE FUNCTION benefits.check_webhook_url(url text) RETURNS void
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'check_webhook_url';

-- The event types an endpoint can subscribe to.
CREATE FUNCTION benefits.webhook_event_types() RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ARRAY['benefit.created', 'benefit.updated',
                 'benefit_grant.created', 'benefit_grant.updated',
                 'benefit_grant.cycled', 'benefit_grant.revoked',
                 'meter.low_balance'];

-- Register a webhook endpoint with a fresh secret.  The returned row is the
-- only time the secret is shown to anyone but benefits_admin.
CREATE FUNCTION benefits.create_webhook_endpoint(organization_id uuid, url text, events text[])
    RETURNS benefits.webhook_endpoints
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    known text[] := benefits.webhook_event_types();
    ev text;
    i integer := 0;
    result benefits.webhook_endpoints;
BEGIN
    IF organization_id IS NULL THEN
        RAISE EXCEPTION 'organization_id must not be null' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM benefits.organizations o WHERE o.id = create_webhook_endpoint.organization_id) THEN
        RAISE EXCEPTION 'organization % does not exist', organization_id USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF url IS NULL THEN
        RAISE EXCEPTION 'url must not be null' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM benefits.check_webhook_url(url);
    IF events IS NULL OR cardinality(events) = 0 THEN
        RAISE EXCEPTION 'events must name at least one event type'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Event types: ' || array_to_string(known, ', ') || '.';
    END IF;
    FOREACH ev IN ARRAY events LOOP
        i := i + 1;
        IF ev IS NULL OR NOT ev = ANY (known) THEN
            RAISE EXCEPTION 'events[%] is not a webhook event type: %', i, coalesce(quote_literal(ev), 'null')
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Event types: ' || array_to_string(known, ', ') || '.';
        END IF;
    END LOOP;
    INSERT INTO benefits.webhook_endpoints (organization_id, url, secret, events)
    VALUES (create_webhook_endpoint.organization_id, create_webhook_endpoint.url,
            benefits.generate_webhook_secret(),
            ARRAY(SELECT DISTINCT e FROM unnest(events) e ORDER BY e))
    RETURNING * INTO result;
    RETURN result;
END
$$;

-- Turn a disabled endpoint back on (failure count cleared).  Deliveries that
-- died while it was disabled are retried with benefits.retry_job().
CREATE FUNCTION benefits.enable_webhook_endpoint(endpoint_id uuid) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE benefits.webhook_endpoints e
       SET enabled = true, consecutive_failures = 0, disabled_at = NULL, disabled_reason = NULL,
           modified_at = now()
     WHERE e.id = endpoint_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'webhook endpoint % does not exist', endpoint_id USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

-- Endpoint life events (today: webhook_endpoint.disabled), for the admin.
CREATE TABLE benefits.webhook_endpoint_events (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id      uuid NOT NULL REFERENCES benefits.webhook_endpoints ON DELETE CASCADE,
    organization_id  uuid NOT NULL,
    type             text NOT NULL,
    reason           text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON benefits.webhook_endpoint_events (endpoint_id);

-- Called by the worker for each failed delivery attempt.  Disables the
-- endpoint at once on 410 Gone, or after disable_after consecutive failures;
-- then its pending deliveries are dead-lettered (retry_job re-queues them),
-- a webhook_endpoint.disabled event is recorded and notified on channel
-- benefits_webhook_endpoint.  Returns whether it disabled the endpoint.
CREATE FUNCTION benefits.webhook_endpoint_failed(endpoint_id uuid, gone boolean, reason text, disable_after integer)
    RETURNS boolean
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    failures integer;
    org uuid;
    why text;
BEGIN
    UPDATE benefits.webhook_endpoints e
       SET consecutive_failures = e.consecutive_failures + 1
     WHERE e.id = endpoint_id AND e.enabled
    RETURNING e.consecutive_failures, e.organization_id INTO failures, org;
    IF NOT FOUND OR NOT (gone OR failures >= disable_after) THEN
        RETURN false;
    END IF;
    why := CASE WHEN gone THEN 'the endpoint answered 410 Gone'
                ELSE format('%s consecutive failed deliveries; the last: %s', failures, reason) END;
    UPDATE benefits.webhook_endpoints e
       SET enabled = false, disabled_at = now(), disabled_reason = why, modified_at = now()
     WHERE e.id = endpoint_id;
    UPDATE benefits.outbox o
       SET state = 'dead', finished_at = now(), leased_until = NULL,
           last_error = 'webhook endpoint disabled: ' || why
     WHERE o.endpoint_id = webhook_endpoint_failed.endpoint_id AND o.state = 'pending';
    INSERT INTO benefits.webhook_endpoint_events (endpoint_id, organization_id, type, reason)
    VALUES (endpoint_id, org, 'webhook_endpoint.disabled', why);
    PERFORM pg_notify('benefits_webhook_endpoint',
                      json_build_object('type', 'webhook_endpoint.disabled', 'endpoint_id', endpoint_id,
                                        'organization_id', org, 'reason', why)::text);
    RAISE LOG 'benefits: webhook endpoint % disabled: %', endpoint_id, why;
    RETURN true;
END
$$;

-- GitHub revoke, step 0: look for the customer's pending invitation in a
-- page of GET /repos/{owner}/{repo}/invitations.  Returns the payload patch
-- for the next step: delete that invitation, fetch the next page, or remove
-- the collaborator.  NULL when the page is not a readable JSON array (any
-- error reading it, e.g. invalid JSON or a \u0000 escape): the worker then
-- retries the listing, since removing the collaborator without having seen
-- the invitations could leave one pending.
CREATE FUNCTION benefits.github_invitation_step(body text, username text, has_next boolean, page integer)
    RETURNS jsonb
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    j jsonb;
    invitation text;
BEGIN
    BEGIN
        j := body::jsonb;
        IF jsonb_typeof(j) IS DISTINCT FROM 'array' THEN
            RETURN NULL;
        END IF;
        SELECT e->>'id' INTO invitation
          FROM jsonb_array_elements(j) e
         WHERE jsonb_typeof(e) = 'object' AND jsonb_typeof(e->'invitee') = 'object'
           AND lower(e->'invitee'->>'login') = lower(username)
         LIMIT 1;
    EXCEPTION WHEN OTHERS THEN
        RETURN NULL;
    END;
    IF invitation IS NOT NULL THEN
        RETURN jsonb_build_object('_step', 1, '_invitation_id', invitation);
    ELSIF has_next AND page < 100 THEN
        RETURN jsonb_build_object('_invitation_page', page + 1);
    END IF;
    RETURN jsonb_build_object('_step', 2);
END
$$;

-- Jobs that failed permanently or ran out of attempts, with their last error.
CREATE VIEW benefits.dead_jobs AS
SELECT id, organization_id, kind, action, grant_id, endpoint_id, event_type, message_id,
       attempts, last_status, last_error, created_at, finished_at, payload
  FROM benefits.outbox
 WHERE state = 'dead';

-- Queue a dead job again, with a fresh set of attempts.
CREATE FUNCTION benefits.retry_job(id bigint) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    job_state text;
    endpoint_enabled boolean;
BEGIN
    SELECT o.state, e.enabled INTO job_state, endpoint_enabled
      FROM benefits.outbox o LEFT JOIN benefits.webhook_endpoints e ON e.id = o.endpoint_id
     WHERE o.id = retry_job.id
       FOR UPDATE OF o;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job % does not exist', id USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF job_state <> 'dead' THEN
        RAISE EXCEPTION 'job % is %, not dead', id, job_state USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF endpoint_enabled IS FALSE THEN
        RAISE EXCEPTION 'job % delivers to a disabled webhook endpoint', id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Enable the endpoint first with benefits.enable_webhook_endpoint().';
    END IF;
    UPDATE benefits.outbox o
       SET state = 'pending', attempts = 0, run_after = now(), leased_until = NULL, finished_at = NULL
     WHERE o.id = retry_job.id;
    PERFORM benefits.wake_worker();
END
$$;

-- Done jobs by age, for pruning (benefits.outbox_retention).
CREATE INDEX outbox_done ON benefits.outbox (finished_at) WHERE state = 'done';
-- The grant engine: subscriptions and orders drive grants (subscriptions.c),
-- meter credits (meters.c), provider jobs and linked accounts
-- (provider_jobs.c) and webhook events into the outbox (events.c).

-- RFC 3339 in UTC with a Z, as webhook payloads spell times.  The body is
-- bound at creation (no search_path lookup at run time) and inlined.
CREATE FUNCTION benefits.rfc3339(ts timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
RETURN pg_catalog.to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');

-- Meter credits ---------------------------------------------------------------

-- The ledger: every credit and debit that is not usage (grants, cycles,
-- expiry of unused credits, removal on revoke).  units is signed.
CREATE TABLE benefits.meter_credits (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id  uuid NOT NULL,
    customer_id      uuid NOT NULL,
    meter_id         uuid NOT NULL REFERENCES benefits.meters ON DELETE CASCADE,
    -- No foreign key: the handler credits before the grant row is written.
    grant_id         uuid,
    reason           text NOT NULL CHECK (reason IN ('grant', 'cycle', 'expire', 'revoke')),
    units            bigint NOT NULL,
    balance_after    bigint NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (customer_id, organization_id) REFERENCES benefits.customers (id, organization_id) ON DELETE CASCADE
);
CREATE INDEX ON benefits.meter_credits (customer_id, meter_id, id);
CREATE INDEX ON benefits.meter_credits (grant_id) WHERE grant_id IS NOT NULL;

-- Usage recorded by record_usage.
CREATE TABLE benefits.meter_usage (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id      uuid NOT NULL REFERENCES benefits.customers ON DELETE CASCADE,
    meter_id         uuid NOT NULL REFERENCES benefits.meters ON DELETE CASCADE,
    units            bigint NOT NULL CHECK (units >= 0),
    balance_after    bigint NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON benefits.meter_usage (customer_id, meter_id, id);

-- The running balance per (customer, meter): what meter_balance reads and
-- what record_usage updates under the row lock.  low_balance_threshold is the
-- highest threshold of the customer's live meter_credits grants on the meter.
CREATE TABLE benefits.meter_balances (
    customer_id            uuid NOT NULL,
    meter_id               uuid NOT NULL REFERENCES benefits.meters ON DELETE CASCADE,
    organization_id        uuid NOT NULL,
    balance                bigint NOT NULL DEFAULT 0,
    credited               bigint NOT NULL DEFAULT 0,
    consumed               bigint NOT NULL DEFAULT 0,
    low_balance_threshold  bigint,
    modified_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, meter_id),
    FOREIGN KEY (customer_id, organization_id) REFERENCES benefits.customers (id, organization_id) ON DELETE CASCADE
);

CREATE FUNCTION benefits.meter_balance(customer_id uuid, meter_id uuid) RETURNS bigint
AS 'MODULE_PATHNAME', 'meter_balance'
LANGUAGE C STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off;

CREATE FUNCTION benefits.record_usage(customer_id uuid, meter_id uuid, units bigint) RETURNS bigint
AS 'MODULE_PATHNAME', 'record_usage'
LANGUAGE C STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off;

-- Webhook events --------------------------------------------------------------

CREATE FUNCTION benefits.enqueue_grant_event(grant_id uuid, event_type text,
                                             previous_properties jsonb DEFAULT NULL)
RETURNS integer
AS 'MODULE_PATHNAME', 'enqueue_grant_event'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off;

CREATE FUNCTION benefits.enqueue_benefit_event(benefit_id uuid, event_type text)
RETURNS integer
AS 'MODULE_PATHNAME', 'enqueue_benefit_event'
LANGUAGE C STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off;

-- Linked accounts ---------------------------------------------------------------

CREATE FUNCTION benefits.link_account(customer_id uuid, platform text, account_id text,
                                      username text DEFAULT NULL, access_token text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'link_account'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off;

-- Subscriptions and orders --------------------------------------------------------

-- Grace periods of past_due/unpaid subscriptions run from past_due_at, which
-- the BEFORE trigger keeps.
CREATE FUNCTION benefits.subscriptions_before() RETURNS trigger
AS 'MODULE_PATHNAME', 'subscriptions_before'
LANGUAGE C;

CREATE FUNCTION benefits.subscriptions_after() RETURNS trigger
AS 'MODULE_PATHNAME', 'subscriptions_after'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off;

CREATE FUNCTION benefits.orders_after() RETURNS trigger
AS 'MODULE_PATHNAME', 'orders_after'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off;

-- Deleting a subscription or order revokes its grants before the cascade.
CREATE FUNCTION benefits.grant_source_deleted() RETURNS trigger
AS 'MODULE_PATHNAME', 'grant_source_deleted'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off;

CREATE TRIGGER past_due_at BEFORE INSERT OR UPDATE OF status ON benefits.subscriptions
    FOR EACH ROW EXECUTE FUNCTION benefits.subscriptions_before();
CREATE TRIGGER grants_sync AFTER INSERT OR UPDATE ON benefits.subscriptions
    FOR EACH ROW EXECUTE FUNCTION benefits.subscriptions_after();
CREATE TRIGGER grants_sync AFTER INSERT OR UPDATE ON benefits.orders
    FOR EACH ROW EXECUTE FUNCTION benefits.orders_after();
-- The row triggers queue their webhook events; these write them once per
-- statement (events.c).
CREATE FUNCTION benefits.grants_sync_events() RETURNS trigger
AS 'MODULE_PATHNAME', 'grants_sync_events'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off;
CREATE TRIGGER grants_sync_events AFTER INSERT OR UPDATE ON benefits.subscriptions
    FOR EACH STATEMENT EXECUTE FUNCTION benefits.grants_sync_events();
CREATE TRIGGER grants_sync_events AFTER INSERT OR UPDATE ON benefits.orders
    FOR EACH STATEMENT EXECUTE FUNCTION benefits.grants_sync_events();
CREATE TRIGGER grants_revoke BEFORE DELETE ON benefits.subscriptions
    FOR EACH ROW EXECUTE FUNCTION benefits.grant_source_deleted();
CREATE TRIGGER grants_revoke BEFORE DELETE ON benefits.orders
    FOR EACH ROW EXECUTE FUNCTION benefits.grant_source_deleted();

-- A customer's live grants of a benefit ("does another holder remain", "is
-- the access already delivered"): both columns are index conditions.
CREATE INDEX grants_live_benefit_customer ON benefits.grants (benefit_id, customer_id)
    WHERE state <> 'revoked';

-- Subscriptions whose access may end with the clock (run_maintenance's scan).
CREATE INDEX subscriptions_due ON benefits.subscriptions (organization_id)
    WHERE status IN ('canceled', 'past_due', 'unpaid') OR cancel_at_period_end;

-- Applies every change that is due by the clock: canceled subscriptions whose
-- period has ended, past_due/unpaid ones whose grace period has run out.
-- Returns the number of subscriptions brought up to date.  The background
-- worker calls it periodically; with pg_cron:
--   SELECT cron.schedule('benefits-maintenance', '* * * * *', 'SELECT benefits.run_maintenance()');
CREATE FUNCTION benefits.run_maintenance() RETURNS integer
AS 'MODULE_PATHNAME', 'run_maintenance'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off;

GRANT EXECUTE ON FUNCTION benefits.meter_balance(uuid, uuid),
                          benefits.record_usage(uuid, uuid, bigint),
                          benefits.link_account(uuid, text, text, text, text)
    TO benefits_app;
GRANT SELECT ON benefits.meter_balances, benefits.meter_credits, benefits.meter_usage TO benefits_app;

-- Tracked application tables (track.c) ----------------------------------------

-- One row per application table whose rows drive subscriptions or orders.
CREATE TABLE benefits.tracked_tables (
    id               integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source           regclass NOT NULL UNIQUE,
    kind             text NOT NULL CHECK (kind IN ('subscriptions', 'orders')),
    organization_id  uuid NOT NULL REFERENCES benefits.organizations ON DELETE CASCADE,
    settings         jsonb NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- Rows of tracked tables skipped because they named an unknown customer,
-- product or status (on_unknown => 'skip').
CREATE TABLE benefits.tracking_skips (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tracked_table    integer NOT NULL REFERENCES benefits.tracked_tables ON DELETE CASCADE,
    row_id           text,
    reason           text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE benefits.subscriptions
    ADD COLUMN tracked_table integer REFERENCES benefits.tracked_tables ON DELETE SET NULL,
    ADD COLUMN tracked_id text,
    ADD UNIQUE (tracked_table, tracked_id);
ALTER TABLE benefits.orders
    ADD COLUMN tracked_table integer REFERENCES benefits.tracked_tables ON DELETE SET NULL,
    ADD COLUMN tracked_id text,
    ADD UNIQUE (tracked_table, tracked_id);

-- Attach the tracking trigger to an application's subscriptions table.  The
-- default status_map is Stripe's statuses (paused counts as unpaid); a map
-- value of null ignores rows in that status.
CREATE FUNCTION benefits.track_subscriptions(
    source regclass, organization_id uuid,
    id_column text DEFAULT 'id', customer_column text DEFAULT 'customer',
    product_column text DEFAULT 'product', status_column text DEFAULT 'status',
    status_map jsonb DEFAULT NULL,
    current_period_end_column text DEFAULT NULL, cancel_at_period_end_column text DEFAULT NULL,
    on_unknown text DEFAULT 'error')
RETURNS void
AS 'MODULE_PATHNAME', 'track_subscriptions'
LANGUAGE C;

-- Attach the tracking trigger to an application's orders (payments) table.
CREATE FUNCTION benefits.track_orders(
    source regclass, organization_id uuid,
    id_column text DEFAULT 'id', customer_column text DEFAULT 'customer',
    product_column text DEFAULT 'product', status_column text DEFAULT 'status',
    status_map jsonb DEFAULT NULL,
    subscription_column text DEFAULT NULL, billing_reason_column text DEFAULT NULL,
    on_unknown text DEFAULT 'error')
RETURNS void
AS 'MODULE_PATHNAME', 'track_orders'
LANGUAGE C;

-- Detach the tracking trigger; the subscriptions and orders it wrote stay.
CREATE FUNCTION benefits.untrack(source regclass) RETURNS boolean
AS 'MODULE_PATHNAME', 'untrack'
LANGUAGE C STRICT;

CREATE FUNCTION benefits.track_trigger() RETURNS trigger
AS 'MODULE_PATHNAME', 'track_trigger'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off;

COMMENT ON FUNCTION benefits.run_maintenance() IS
    'Apply every grant change due by the clock (canceled subscriptions past their period end, past_due/unpaid past the grace period). The background worker calls it periodically; with pg_cron: SELECT cron.schedule(''benefits-maintenance'', ''* * * * *'', ''SELECT benefits.run_maintenance()'')';
COMMENT ON FUNCTION benefits.record_usage(uuid, uuid, bigint) IS
    'Consume meter units and return the new balance; never below zero unless the meter allows overage (23514 otherwise)';
COMMENT ON FUNCTION benefits.meter_balance(uuid, uuid) IS
    'The customer''s balance on a meter (0 before any credit)';
COMMENT ON FUNCTION benefits.link_account(uuid, text, text, text, text) IS
    'Record a customer''s GitHub or Discord account and queue the provider jobs of the grants that waited for it';
COMMENT ON FUNCTION benefits.enqueue_grant_event(uuid, text, jsonb) IS
    'Write a benefit_grant.* webhook event of a grant to every subscribed endpoint (the worker calls it when a provider confirms)';
COMMENT ON FUNCTION benefits.track_subscriptions(regclass, uuid, text, text, text, text, jsonb, text, text, text) IS
    'Drive grants from an application''s own subscriptions table (Stripe statuses by default)';
COMMENT ON FUNCTION benefits.track_orders(regclass, uuid, text, text, text, text, jsonb, text, text, text) IS
    'Drive grants from an application''s own orders or payments table';
-- Downloadable files in S3-compatible storage: presigned URLs (signed in C,
-- src/s3.c), the upload life of a file, and download URLs for customers who
-- hold a grant of a downloadable benefit with the file.

-- Upload state.  A file is downloadable once its upload is complete
-- (uploaded_at set by complete_file_upload); upload_id is the multipart upload
-- in progress, if any.
ALTER TABLE benefits.files
    ADD COLUMN uploaded_at timestamptz,
    ADD COLUMN upload_id text;

-- What create_file answers: the file and how to upload its content.
--   upload_method PUT: send the bytes to upload_url.
--   upload_method POST (multipart, files over 5 GiB or when asked): POST to
--   upload_url to start a multipart upload; give its UploadId to
--   file_upload_parts for one URL per part, then POST the part list to
--   file_complete_multipart_url.  Either way, finish with complete_file_upload.
CREATE TYPE benefits.file_upload AS (
    id                 uuid,
    organization_id    uuid,
    name               text,
    size               bigint,
    mime_type          text,
    storage_key        text,
    upload_method      text,
    upload_url         text,
    multipart          boolean,
    part_size          bigint,
    part_count         integer,
    upload_expires_at  timestamptz
);

CREATE FUNCTION benefits.presign_s3_url(method text, key text, expires interval DEFAULT NULL,
                                        signed_at timestamptz DEFAULT now(), params jsonb DEFAULT '{}')
    RETURNS text
    AS 'MODULE_PATHNAME', 'presign_s3_url' LANGUAGE C STABLE;
COMMENT ON FUNCTION benefits.presign_s3_url(text, text, interval, timestamptz, jsonb) IS
    'AWS Signature V4 presigned URL for a request on the configured bucket (params: extra signed query parameters)';

CREATE FUNCTION benefits.s3_content_disposition(filename text, disposition text DEFAULT 'attachment')
    RETURNS text
    AS 'MODULE_PATHNAME', 's3_content_disposition' LANGUAGE C IMMUTABLE STRICT;

-- Internal: the download URL of a stored object, once access has been checked.
CREATE FUNCTION benefits.file_presigned_get(storage_key text, name text, mime_type text, expires interval DEFAULT NULL)
    RETURNS text
    AS 'MODULE_PATHNAME', 'file_presigned_get' LANGUAGE C STABLE;

-- The storage key of a new file: organization/file id/name, with the name
-- made safe as a path segment (no "/", no "." or ".." that clients collapse).
CREATE FUNCTION benefits.file_storage_key(organization_id uuid, file_id uuid, name text)
    RETURNS text LANGUAGE sql IMMUTABLE STRICT
    SET search_path = pg_catalog, pg_temp AS $$
    SELECT organization_id::text || '/' || file_id::text || '/' ||
           CASE WHEN name ~ '^\.+$' THEN 'file' ELSE regexp_replace(name, '[/[:cntrl:]]', '_', 'g') END
$$;

-- Registers a file and returns where to upload it.
CREATE FUNCTION benefits.create_file(organization_id uuid, name text, size bigint,
                                     mime_type text DEFAULT 'application/octet-stream',
                                     checksum_sha256 text DEFAULT NULL,
                                     storage_key text DEFAULT NULL,
                                     multipart boolean DEFAULT NULL,
                                     part_size bigint DEFAULT NULL)
    RETURNS benefits.file_upload
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    f benefits.files;
    r benefits.file_upload;
    ttl interval := current_setting('benefits.upload_url_ttl')::interval;
    use_multipart boolean;
BEGIN
    IF organization_id IS NULL OR NOT EXISTS (SELECT FROM benefits.organizations o WHERE o.id = create_file.organization_id) THEN
        RAISE EXCEPTION 'organization_id does not name an organization' USING ERRCODE = '22023';
    END IF;
    IF name IS NULL OR btrim(name) = '' OR length(name) > 255 OR name ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'name must be 1 to 255 characters without control characters' USING ERRCODE = '22023';
    END IF;
    IF size IS NULL OR size < 0 OR size > 10737418240 THEN
        RAISE EXCEPTION 'size must be between 0 and 10 GB (10737418240 bytes)' USING ERRCODE = '22023';
    END IF;
    IF mime_type IS NULL OR mime_type !~ '^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*( *;.*)?$'
       OR mime_type ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'mime_type must be a media type such as application/zip' USING ERRCODE = '22023';
    END IF;
    IF checksum_sha256 IS NOT NULL AND lower(checksum_sha256) !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'checksum_sha256 must be 64 hexadecimal digits' USING ERRCODE = '22023';
    END IF;
    IF storage_key IS NOT NULL AND (storage_key = '' OR octet_length(storage_key) > 1024) THEN
        RAISE EXCEPTION 'storage_key must be 1 to 1024 bytes' USING ERRCODE = '22023';
    END IF;

    use_multipart := coalesce(multipart, size > 5368709120);
    IF NOT use_multipart AND size > 5368709120 THEN
        RAISE EXCEPTION 'a file over 5 GiB must be uploaded in parts' USING ERRCODE = '22023';
    END IF;
    IF use_multipart THEN
        -- At most 10,000 parts of at least 5 MiB; 100 MiB unless the file needs larger.
        part_size := coalesce(part_size, greatest(104857600, ceil(size / 10000.0)::bigint));
        IF part_size < 5242880 OR part_size > 5368709120 THEN
            RAISE EXCEPTION 'part_size must be between 5 MiB and 5 GiB' USING ERRCODE = '22023';
        END IF;
        IF ceil(size::numeric / part_size) > 10000 THEN
            RAISE EXCEPTION 'part_size is too small: at most 10000 parts' USING ERRCODE = '22023';
        END IF;
    ELSIF part_size IS NOT NULL THEN
        RAISE EXCEPTION 'part_size applies to multipart uploads only' USING ERRCODE = '22023';
    END IF;

    f.id := gen_random_uuid();
    INSERT INTO benefits.files (id, organization_id, name, size, mime_type, checksum_sha256, storage_key)
    VALUES (f.id, create_file.organization_id, create_file.name, create_file.size, create_file.mime_type,
            lower(create_file.checksum_sha256),
            coalesce(create_file.storage_key, benefits.file_storage_key(create_file.organization_id, f.id, create_file.name)))
    RETURNING * INTO f;

    r.id := f.id; r.organization_id := f.organization_id; r.name := f.name; r.size := f.size;
    r.mime_type := f.mime_type; r.storage_key := f.storage_key; r.multipart := use_multipart;
    r.upload_expires_at := now() + ttl;
    IF use_multipart THEN
        r.upload_method := 'POST';
        r.upload_url := benefits.presign_s3_url('POST', f.storage_key, ttl, now(), '{"uploads": ""}');
        r.part_size := part_size;
        r.part_count := greatest(1, ceil(size::numeric / part_size))::integer;
    ELSE
        r.upload_method := 'PUT';
        r.upload_url := benefits.presign_s3_url('PUT', f.storage_key, ttl, now(), '{}');
        r.part_size := size;
        r.part_count := 1;
    END IF;
    RETURN r;
END
$$;

-- A fresh PUT URL for a file whose upload has not been completed (the first
-- one expired, or the content is being replaced).
CREATE FUNCTION benefits.file_upload_url(file_id uuid)
    RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    f benefits.files;
BEGIN
    SELECT * INTO f FROM benefits.files WHERE id = file_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'file % does not exist', file_id USING ERRCODE = '22023';
    END IF;
    IF f.size > 5368709120 THEN
        RAISE EXCEPTION 'file % is over 5 GiB and must be uploaded in parts', file_id USING ERRCODE = '22023';
    END IF;
    RETURN benefits.presign_s3_url('PUT', f.storage_key, current_setting('benefits.upload_url_ttl')::interval, now(), '{}');
END
$$;

-- One presigned PUT URL per part of a multipart upload started by POSTing to
-- create_file's upload_url; remembers the upload id.
CREATE FUNCTION benefits.file_upload_parts(file_id uuid, upload_id text, part_size bigint DEFAULT NULL)
    RETURNS TABLE (part_number integer, url text, size bigint)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    f benefits.files;
    ttl interval := current_setting('benefits.upload_url_ttl')::interval;
    n integer;
BEGIN
    IF upload_id IS NULL OR upload_id = '' OR length(upload_id) > 1024 THEN
        RAISE EXCEPTION 'upload_id must be the UploadId the storage returned' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO f FROM benefits.files WHERE id = file_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'file % does not exist', file_id USING ERRCODE = '22023';
    END IF;
    part_size := coalesce(part_size, greatest(104857600, ceil(f.size / 10000.0)::bigint));
    IF part_size < 5242880 OR part_size > 5368709120 OR ceil(f.size::numeric / part_size) > 10000 THEN
        RAISE EXCEPTION 'part_size must be between 5 MiB and 5 GiB, with at most 10000 parts' USING ERRCODE = '22023';
    END IF;
    UPDATE benefits.files SET upload_id = file_upload_parts.upload_id, modified_at = now() WHERE id = file_id;
    n := greatest(1, ceil(f.size::numeric / part_size))::integer;
    RETURN QUERY
        SELECT i, benefits.presign_s3_url('PUT', f.storage_key, ttl, now(),
                                          jsonb_build_object('partNumber', i::text, 'uploadId', file_upload_parts.upload_id)),
               least(part_size, f.size - (i - 1)::bigint * part_size)
          FROM generate_series(1, n) i;
END
$$;

-- The presigned POST that completes (with the parts' ETags in the body) the
-- multipart upload recorded by file_upload_parts.
CREATE FUNCTION benefits.file_complete_multipart_url(file_id uuid)
    RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    f benefits.files;
BEGIN
    SELECT * INTO f FROM benefits.files WHERE id = file_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'file % does not exist', file_id USING ERRCODE = '22023';
    END IF;
    IF f.upload_id IS NULL THEN
        RAISE EXCEPTION 'file % has no multipart upload in progress', file_id USING ERRCODE = '55000',
              HINT = 'Call benefits.file_upload_parts with the UploadId first.';
    END IF;
    RETURN benefits.presign_s3_url('POST', f.storage_key, current_setting('benefits.upload_url_ttl')::interval, now(),
                                   jsonb_build_object('uploadId', f.upload_id));
END
$$;

-- Marks the upload done: the file becomes downloadable.  The SHA-256 given
-- is recorded, or must match the one registered at create time.
CREATE FUNCTION benefits.complete_file_upload(file_id uuid, checksum_sha256 text DEFAULT NULL)
    RETURNS benefits.files
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    f benefits.files;
BEGIN
    IF checksum_sha256 IS NOT NULL AND lower(checksum_sha256) !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'checksum_sha256 must be 64 hexadecimal digits' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO f FROM benefits.files WHERE id = file_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'file % does not exist', file_id USING ERRCODE = '22023';
    END IF;
    IF checksum_sha256 IS NOT NULL AND f.checksum_sha256 IS NOT NULL
       AND f.checksum_sha256 <> lower(checksum_sha256) THEN
        RAISE EXCEPTION 'checksum_sha256 does not match the one registered for file %', file_id
              USING ERRCODE = '22023', DETAIL = format('Registered: %s.', f.checksum_sha256);
    END IF;
    UPDATE benefits.files
       SET uploaded_at = now(), upload_id = NULL, modified_at = now(),
           checksum_sha256 = coalesce(lower(complete_file_upload.checksum_sha256), files.checksum_sha256)
     WHERE id = file_id
    RETURNING * INTO f;
    RETURN f;
END
$$;

-- Renames, enables/disables or archives a file.  A disabled or archived file
-- gets no download URL.
CREATE FUNCTION benefits.update_file(file_id uuid, name text DEFAULT NULL,
                                     enabled boolean DEFAULT NULL, archived boolean DEFAULT NULL)
    RETURNS benefits.files
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    f benefits.files;
BEGIN
    IF name IS NOT NULL AND (btrim(name) = '' OR length(name) > 255 OR name ~ '[[:cntrl:]]') THEN
        RAISE EXCEPTION 'name must be 1 to 255 characters without control characters' USING ERRCODE = '22023';
    END IF;
    UPDATE benefits.files
       SET name = coalesce(update_file.name, files.name),
           enabled = coalesce(update_file.enabled, files.enabled),
           archived = coalesce(update_file.archived, files.archived),
           modified_at = now()
     WHERE id = file_id
    RETURNING * INTO f;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'file % does not exist', file_id USING ERRCODE = '22023';
    END IF;
    RETURN f;
END
$$;

-- Internal: why CUSTOMER may not download FILE, or NULL when they may.
-- Checks the grant first, so a customer without access learns nothing about
-- the file's state.
CREATE FUNCTION benefits.file_access_error(customer_id uuid, f benefits.files)
    RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE
        WHEN NOT EXISTS (
            SELECT FROM benefits.grants g
              JOIN benefits.benefits b ON b.id = g.benefit_id
             WHERE g.customer_id = file_access_error.customer_id
               AND g.state = 'active' AND b.deleted_at IS NULL
               AND b.type = 'downloadable' AND b.organization_id = f.organization_id
               AND b.properties -> 'files' ? f.id::text)
            THEN 'no_grant'
        WHEN f.archived OR NOT EXISTS (
            SELECT FROM benefits.grants g
              JOIN benefits.benefits b ON b.id = g.benefit_id
             WHERE g.customer_id = file_access_error.customer_id
               AND g.state = 'active' AND b.deleted_at IS NULL
               AND b.type = 'downloadable' AND b.organization_id = f.organization_id
               AND b.properties -> 'files' ? f.id::text
               AND coalesce((b.properties -> 'archived' ->> f.id::text)::boolean, false) = false)
            THEN 'archived'
        WHEN NOT f.enabled THEN 'disabled'
        WHEN f.uploaded_at IS NULL THEN 'not_uploaded'
    END
$$;

-- A time-limited download URL for a customer holding an active grant of a
-- downloadable benefit with the file.
CREATE FUNCTION benefits.file_download_url(customer_id uuid, file_id uuid, expires interval DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    f benefits.files;
BEGIN
    IF customer_id IS NULL OR file_id IS NULL THEN
        RAISE EXCEPTION 'customer_id and file_id must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO f FROM benefits.files WHERE id = file_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'file % does not exist', file_id USING ERRCODE = '22023';
    END IF;
    CASE benefits.file_access_error(customer_id, f)
        WHEN 'no_grant' THEN
            RAISE EXCEPTION 'customer % has no active grant of a benefit holding file %', customer_id, file_id
                  USING ERRCODE = '42501';
        WHEN 'archived' THEN
            RAISE EXCEPTION 'file % is archived', file_id USING ERRCODE = '55000',
                  DETAIL = 'Archived files are no longer offered for download.';
        WHEN 'disabled' THEN
            RAISE EXCEPTION 'file % is disabled', file_id USING ERRCODE = '55000';
        WHEN 'not_uploaded' THEN
            RAISE EXCEPTION 'file % has not been uploaded', file_id USING ERRCODE = '55000',
                  HINT = 'Upload its content and call benefits.complete_file_upload.';
        ELSE
            RETURN benefits.file_presigned_get(f.storage_key, f.name, f.mime_type, expires);
    END CASE;
END
$$;

GRANT EXECUTE ON FUNCTION benefits.file_download_url(uuid, uuid, interval) TO benefits_app;
-- Customer sessions and the customer portal.  A session token (src/portal.c)
-- is shown once; only its SHA-256 is stored.  The portal functions take the
-- token and show the customer what they were granted.

CREATE TABLE benefits.customer_sessions (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  uuid NOT NULL,
    customer_id      uuid NOT NULL,
    token_hash       bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    revoked_at       timestamptz,
    FOREIGN KEY (customer_id, organization_id) REFERENCES benefits.customers (id, organization_id) ON DELETE CASCADE
);
CREATE INDEX ON benefits.customer_sessions (customer_id);

CREATE FUNCTION benefits.create_customer_session(organization_id uuid, external_customer_id text)
    RETURNS text
    AS 'MODULE_PATHNAME', 'create_customer_session' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION benefits.create_customer_session(uuid, text) IS
    'A customer portal session token (bcs_...) for the customer with this external id; valid for benefits.customer_session_ttl';

CREATE FUNCTION benefits.revoke_customer_session(token text)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'revoke_customer_session' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- Ends every live session of a customer (the application logs them out everywhere).
CREATE FUNCTION benefits.revoke_customer_sessions(customer_id uuid)
    RETURNS integer
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
    WITH r AS (
        UPDATE benefits.customer_sessions s SET revoked_at = now()
         WHERE s.customer_id = revoke_customer_sessions.customer_id
           AND s.revoked_at IS NULL AND s.expires_at > now()
        RETURNING 1)
    SELECT count(*)::integer FROM r
$$;

-- Internal: the customer of a live session (SQLSTATE 28000 otherwise).
CREATE FUNCTION benefits.customer_session_customer(token text)
    RETURNS uuid
    AS 'MODULE_PATHNAME', 'customer_session_customer' LANGUAGE C VOLATILE;

CREATE FUNCTION benefits.html_escape(value text)
    RETURNS text
    AS 'MODULE_PATHNAME', 'html_escape' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

GRANT EXECUTE ON FUNCTION benefits.create_customer_session(uuid, text) TO benefits_app;
GRANT EXECUTE ON FUNCTION benefits.revoke_customer_sessions(uuid) TO benefits_app;
GRANT EXECUTE ON FUNCTION benefits.revoke_customer_session(text) TO benefits_app, benefits_public;

-- Internal: the portal document of one customer (what customer_portal
-- returns; src/portal_document.c describes its shape).  Benefits appear once
-- each, in attachment order (the order of the subscriptions/orders that
-- granted them, then each product's benefit order; manual grants last),
-- revoked ones not at all.
CREATE FUNCTION benefits.portal_document(customer_id uuid)
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 'portal_document' LANGUAGE C STABLE;

-- The customer portal: everything the session's customer was granted.
CREATE FUNCTION benefits.customer_portal(token text)
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 'customer_portal' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- Customer self-service: remove one activation of one of the customer's own
-- license keys, when the benefit lets customers manage activations.  The key
-- row is locked as activate_license locks it, so counting stays exact.
CREATE FUNCTION benefits.portal_deactivate_license(token text, activation_id uuid)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cid uuid := benefits.customer_session_customer(token);
    k record;
BEGIN
    SELECT lk.id, coalesce((b.properties #>> '{activations,enable_customer_admin}')::boolean, false) AS customer_admin
      INTO k
      FROM benefits.license_key_activations a
      JOIN benefits.license_keys lk ON lk.id = a.license_key_id
      JOIN benefits.benefits b ON b.id = lk.benefit_id
     WHERE a.id = activation_id AND lk.customer_id = cid AND lk.status = 'granted'
       AND EXISTS (SELECT FROM benefits.grants g
                    WHERE g.customer_id = cid AND g.benefit_id = lk.benefit_id AND g.state = 'active')
       FOR UPDATE OF lk;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'activation_id does not name an activation of your license keys' USING ERRCODE = '22023';
    END IF;
    IF NOT k.customer_admin THEN
        RAISE EXCEPTION 'the activations of this license key are managed by the seller' USING ERRCODE = '42501',
              HINT = 'Ask the seller to remove the activation.';
    END IF;
    DELETE FROM benefits.license_key_activations a WHERE a.id = activation_id AND a.license_key_id = k.id;
    RETURN FOUND;
END
$$;

-- The portal document as a complete, self-contained HTML page (rendered in C,
-- src/portal_html.c; every value escaped).  With action_url, each activation
-- a customer may remove gets a form posting activation_id there (the
-- application calls portal_deactivate_license with it).
CREATE FUNCTION benefits.portal_html(doc jsonb, action_url text DEFAULT NULL)
    RETURNS text
    AS 'MODULE_PATHNAME', 'portal_html' LANGUAGE C STABLE;

CREATE FUNCTION benefits.customer_portal_html(token text, action_url text DEFAULT NULL)
    RETURNS text
    AS 'MODULE_PATHNAME', 'customer_portal_html' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

GRANT EXECUTE ON FUNCTION benefits.customer_portal(text),
                          benefits.customer_portal_html(text, text),
                          benefits.portal_deactivate_license(text, uuid)
    TO benefits_app, benefits_public;
-- Privileges, applied last so they cover every part.  No table is readable by
-- PUBLIC and no function is executable by PUBLIC; each group role gets only
-- the grants below.  Parts grant their own functions to the roles.

REVOKE ALL ON ALL TABLES IN SCHEMA benefits FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA benefits FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA benefits FROM PUBLIC;

-- benefits_admin: the catalog and everything else — data only.  Never
-- TRIGGER, TRUNCATE or REFERENCES: the extension's SECURITY DEFINER functions
-- and the worker write these tables as their superuser owner, so a trigger an
-- administrator could attach would run with superuser rights.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA benefits TO benefits_admin;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA benefits TO benefits_admin;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA benefits TO benefits_admin;

-- benefits_app: the application writes customers, their linked accounts,
-- subscriptions and orders, and reads what they were granted.
GRANT SELECT ON benefits.organizations, benefits.products, benefits.benefits,
                benefits.product_benefits, benefits.grants, benefits.license_keys,
                benefits.license_key_activations, benefits.meters, benefits.files
    TO benefits_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON benefits.customers, benefits.customer_accounts,
                benefits.subscriptions, benefits.orders
    TO benefits_app;
GRANT EXECUTE ON FUNCTION benefits.list_grants(uuid, uuid, boolean) TO benefits_app;
