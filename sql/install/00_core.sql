-- benefits — core catalog: organizations, products, benefits, customers,
-- subscriptions, orders and grants.  The install script is assembled from the
-- files of sql/install/ in name order; each file owns one subsystem.

\echo Use "CREATE EXTENSION benefits" to load this file. \quit

-- The schema must be a superuser's.  CREATE EXTENSION uses an existing schema
-- named benefits as it is, and whoever owns a schema can rename it away and
-- put look-alike objects in its place, which the extension's SECURITY DEFINER
-- functions and its superuser worker would then use.
DO $schema$
DECLARE
    owner name;
BEGIN
    SELECT r.rolname INTO owner
      FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner
     WHERE n.nspname = 'benefits' AND NOT r.rolsuper;
    IF FOUND THEN
        RAISE EXCEPTION 'schema "benefits" is owned by %, who is not a superuser', owner
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Drop or rename that schema, or make a superuser its owner, before CREATE EXTENSION benefits.';
    END IF;
END
$schema$;

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
    -- the role a hot standby's forwarder connects as is granted this one
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'benefits_replica') THEN
        CREATE ROLE benefits_replica NOLOGIN;
    END IF;
END
$roles$;

REVOKE ALL ON SCHEMA benefits FROM PUBLIC;
GRANT USAGE ON SCHEMA benefits TO benefits_admin, benefits_app, benefits_public, benefits_replica;

CREATE TABLE benefits.organizations (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL CHECK (name <> ''),
    -- How long past_due/unpaid subscriptions keep their benefits.
    grace_period    interval NOT NULL DEFAULT '0 days' CHECK (grace_period >= '0 days'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    modified_at     timestamptz,
    -- Names go into emails, pages and webhook payloads: bounded (README, "Limits").
    CONSTRAINT organizations_name_length CHECK (length(name) <= 256)
);

CREATE TABLE benefits.products (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES benefits.organizations ON DELETE CASCADE,
    name            text NOT NULL CHECK (name <> ''),
    external_id     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    modified_at     timestamptz,
    UNIQUE (organization_id, external_id),
    UNIQUE (id, organization_id),
    CONSTRAINT products_name_length CHECK (length(name) <= 256),
    CONSTRAINT products_external_id_length CHECK (length(external_id) <= 256)
);

CREATE TABLE benefits.benefits (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES benefits.organizations ON DELETE CASCADE,
    type            text NOT NULL CONSTRAINT benefits_type_check
                    CHECK (type IN ('license_keys', 'github_repository', 'discord', 'downloadable',
                                    'meter_credits', 'custom', 'feature_flag')),
    description     text NOT NULL CHECK (description <> ''),
    properties      jsonb NOT NULL DEFAULT '{}',
    metadata        jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    modified_at     timestamptz,
    deleted_at      timestamptz,
    UNIQUE (id, organization_id),
    -- Whoever writes the table, C reads these as objects.
    CONSTRAINT benefits_properties_object CHECK (jsonb_typeof(properties) = 'object'),
    CONSTRAINT benefits_metadata_object CHECK (jsonb_typeof(metadata) = 'object')
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
    UNIQUE (id, organization_id),
    -- The application writes customers directly: what every webhook payload,
    -- email and portal document about them carries is bounded here.
    CONSTRAINT customers_external_id_length CHECK (length(external_id) <= 256),
    CONSTRAINT customers_email_length CHECK (length(email) <= 254),
    CONSTRAINT customers_name_length CHECK (length(name) <= 2048),
    CONSTRAINT customers_metadata_size CHECK (octet_length(metadata::text) <= 65536)
);

-- Linked GitHub/Discord identities.  access_token is the customer's OAuth
-- token (for Discord with the guilds.join scope, needed to add them to a
-- server).
CREATE TABLE benefits.customer_accounts (
    customer_id     uuid NOT NULL REFERENCES benefits.customers ON DELETE CASCADE,
    platform        text NOT NULL CHECK (platform IN ('github', 'discord')),
    account_id      text NOT NULL CHECK (account_id <> ''),
    username        text,
    access_token    text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    modified_at     timestamptz,
    -- Discord's OAuth tokens expire: the worker renews the access token with
    -- the refresh token before it adds a member (src/oauth_jobs.c).
    refresh_token   text CONSTRAINT customer_accounts_refresh_token_shape
                         CHECK (refresh_token <> '' AND octet_length(refresh_token) <= 2048
                                AND refresh_token !~ '[[:cntrl:]]'),
    token_expires_at timestamptz,
    scopes          text[] CONSTRAINT customer_accounts_scopes_shape CHECK (cardinality(scopes) <= 20),
    PRIMARY KEY (customer_id, platform),
    -- The GitHub login and the Discord user id become path segments of
    -- provider requests: only their documented shapes are stored (the same
    -- rules as link_account's, src/provider_names.c).
    CONSTRAINT customer_accounts_shape CHECK (CASE platform
        WHEN 'github' THEN username ~ '^[A-Za-z0-9][A-Za-z0-9-]{0,38}$'
                           AND octet_length(account_id) <= 100 AND account_id !~ '[[:cntrl:]]'
        WHEN 'discord' THEN account_id ~ '^[1-9][0-9]{0,19}$'
                            AND (length(account_id) < 20 OR account_id COLLATE "C" <= '18446744073709551615')
                            AND (username IS NULL OR (username <> '' AND octet_length(username) <= 100
                                                      AND username !~ '[[:cntrl:]]'))
        END),
    CONSTRAINT customer_accounts_access_token_shape CHECK (access_token <> '' AND octet_length(access_token) <= 2048
                                                           AND access_token !~ '[[:cntrl:]]')
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
--
-- Deleting a subscription or order keeps its grants as history: the BEFORE
-- DELETE trigger grants_revoke (50_engine.sql) revokes them (with
-- benefit_grant.revoked events), then clears their reference and keeps the
-- deleted row's id in source_subscription_id or source_order_id, plain
-- columns without a foreign key; ON DELETE SET NULL clears what the trigger
-- did not reach.  The kept id is part of the grant's unique key, so a kept
-- grant collides neither with a manual grant of the same benefit (all four
-- ids null) nor with another kept grant (another source id); live and manual
-- grants have both source columns null, so among them the key is the
-- (customer, benefit, subscription, order) it always was.  A kept grant stays
-- revoked (grants_source_kept).
CREATE TABLE benefits.grants (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  uuid NOT NULL,
    customer_id      uuid NOT NULL,
    benefit_id       uuid NOT NULL,
    subscription_id  uuid,
    order_id         uuid,
    state            text NOT NULL DEFAULT 'created' CHECK (state IN ('created', 'active', 'revoked')),
    properties       jsonb NOT NULL DEFAULT '{}',
    previous_properties jsonb,
    error            jsonb,
    granted_at       timestamptz,
    revoked_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    modified_at      timestamptz,
    source_subscription_id uuid,
    source_order_id  uuid,
    FOREIGN KEY (customer_id, organization_id) REFERENCES benefits.customers (id, organization_id) ON DELETE CASCADE,
    FOREIGN KEY (benefit_id, organization_id) REFERENCES benefits.benefits (id, organization_id) ON DELETE CASCADE,
    CONSTRAINT grants_subscription_id_fkey FOREIGN KEY (subscription_id)
        REFERENCES benefits.subscriptions ON DELETE SET NULL,
    CONSTRAINT grants_order_id_fkey FOREIGN KEY (order_id) REFERENCES benefits.orders ON DELETE SET NULL,
    CONSTRAINT grants_source_key UNIQUE NULLS NOT DISTINCT (customer_id, benefit_id, subscription_id, order_id,
                                                            source_subscription_id, source_order_id),
    CONSTRAINT grants_source_kept CHECK ((source_subscription_id IS NULL AND source_order_id IS NULL)
                                         OR (subscription_id IS NULL AND order_id IS NULL AND state = 'revoked')),
    CONSTRAINT grants_properties_object CHECK (jsonb_typeof(properties) = 'object')
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
    UNIQUE (id, organization_id),
    CONSTRAINT meters_name_length CHECK (length(name) <= 256)
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
