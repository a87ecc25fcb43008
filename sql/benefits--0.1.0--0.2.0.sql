-- benefits 0.1.0 -> 0.2.0.  Every schema change of 0.2.0 is made here as well
-- as in the parts of the install script (sql/install/), so that an upgraded
-- database and a fresh 0.2.0 install have the same schema; test/t/070_upgrade.pl
-- compares the two.

\echo Use "ALTER EXTENSION benefits UPDATE TO '0.2.0'" to load this file. \quit

-- First of all: the schema must be a superuser's (0.1.0 installed into any
-- existing schema named benefits).  Whoever owns it could rename it away and
-- put look-alike objects in its place for this script and the extension's
-- SECURITY DEFINER functions to use.  Every name here is qualified.
DO $schema$
DECLARE
    owner name;
BEGIN
    SELECT r.rolname INTO owner
      FROM pg_catalog.pg_extension e
      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
      JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
     WHERE e.extname OPERATOR(pg_catalog.=) 'benefits' AND NOT r.rolsuper;
    IF FOUND THEN
        RAISE EXCEPTION 'the schema of extension benefits is owned by %, who is not a superuser', owner
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Make a superuser the owner of that schema (ALTER SCHEMA ... OWNER TO), check its contents, then update.';
    END IF;
END
$schema$;

-- Linked accounts: only the shapes link_account accepts.  An account stored
-- by 0.1.0 in another shape stops the upgrade with the list to fix.
DO $accounts$
DECLARE
    bad text;
BEGIN
    SELECT pg_catalog.string_agg(pg_catalog.format('%s (%s)', a.customer_id, a.platform), ', ') INTO bad
      FROM benefits.customer_accounts a
     WHERE NOT CASE a.platform
        WHEN 'github' THEN a.username ~ '^[A-Za-z0-9][A-Za-z0-9-]{0,38}$'
                           AND pg_catalog.octet_length(a.account_id) <= 100 AND a.account_id !~ '[[:cntrl:]]'
        WHEN 'discord' THEN a.account_id ~ '^[1-9][0-9]{0,19}$'
                            AND (pg_catalog.length(a.account_id) < 20 OR a.account_id COLLATE "C" <= '18446744073709551615')
                            AND (a.username IS NULL OR (a.username <> '' AND pg_catalog.octet_length(a.username) <= 100
                                                        AND a.username !~ '[[:cntrl:]]'))
        END
        OR NOT COALESCE(a.access_token <> '' AND pg_catalog.octet_length(a.access_token) <= 2048
                        AND a.access_token !~ '[[:cntrl:]]', true);
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'benefits 0.2.0 refuses linked accounts that could steer provider requests: %', bad
            USING ERRCODE = 'check_violation',
                  HINT = 'Link these accounts again with valid values (benefits.link_account), or delete them, then update.';
    END IF;
END
$accounts$;
ALTER TABLE benefits.customer_accounts
    ADD CONSTRAINT customer_accounts_shape CHECK (CASE platform
        WHEN 'github' THEN username ~ '^[A-Za-z0-9][A-Za-z0-9-]{0,38}$'
                           AND octet_length(account_id) <= 100 AND account_id !~ '[[:cntrl:]]'
        WHEN 'discord' THEN account_id ~ '^[1-9][0-9]{0,19}$'
                            AND (length(account_id) < 20 OR account_id COLLATE "C" <= '18446744073709551615')
                            AND (username IS NULL OR (username <> '' AND octet_length(username) <= 100
                                                      AND username !~ '[[:cntrl:]]'))
        END),
    ADD CONSTRAINT customer_accounts_access_token_shape CHECK (access_token <> '' AND octet_length(access_token) <= 2048
                                                               AND access_token !~ '[[:cntrl:]]');

-- Functions that write what benefits_admin may no longer write directly (the
-- outbox, webhook endpoints) run as the extension's owner.
ALTER FUNCTION benefits.create_benefit(text, uuid, text, jsonb) SECURITY DEFINER;
ALTER FUNCTION benefits.update_benefit(uuid, text, jsonb) SECURITY DEFINER;
ALTER FUNCTION benefits.delete_benefit(uuid) SECURITY DEFINER;
ALTER FUNCTION benefits.update_product_benefits(uuid, uuid[]) SECURITY DEFINER;
ALTER FUNCTION benefits.grant_benefit(uuid, uuid) SECURITY DEFINER;
ALTER FUNCTION benefits.revoke_benefit(uuid, uuid) SECURITY DEFINER;
ALTER FUNCTION benefits.grant_benefit_bulk(uuid[], uuid) SECURITY DEFINER;
ALTER FUNCTION benefits.enable_webhook_endpoint(uuid) SECURITY DEFINER;
ALTER FUNCTION benefits.retry_job(bigint) SECURITY DEFINER;

-- Every function that runs SQL resolves names in pg_catalog only.
ALTER FUNCTION benefits.flush_validation_stats() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION benefits.validation_stats() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION benefits.import_license_key(uuid, uuid, text, integer, integer, timestamptz, text, integer)
    SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION benefits.rotate_license_key(uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION benefits.track_subscriptions(regclass, uuid, text, text, text, text, jsonb, text, text, text)
    SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION benefits.track_orders(regclass, uuid, text, text, text, text, jsonb, text, text, text)
    SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION benefits.untrack(regclass) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION benefits.customer_session_customer(text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION benefits.portal_document(uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION benefits.portal_html(jsonb, text) SET search_path = pg_catalog, pg_temp;

-- Webhook endpoints: one checker of event types, and an update function.
-- The event types an endpoint subscribes to, checked and sorted (22023 for
-- an empty list or an unknown type, naming its position).
CREATE FUNCTION benefits.checked_webhook_events(events text[]) RETURNS text[]
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    known text[] := benefits.webhook_event_types();
    ev text;
    i integer := 0;
BEGIN
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
    RETURN ARRAY(SELECT DISTINCT e FROM unnest(events) e ORDER BY e);
END
$$;

-- Register a webhook endpoint with a fresh secret.  The returned row is the
-- only time the secret is shown to anyone but benefits_admin.  Endpoints are
-- written only through these functions (SECURITY DEFINER), so every URL the
-- worker calls has passed check_webhook_url.
CREATE OR REPLACE FUNCTION benefits.create_webhook_endpoint(organization_id uuid, url text, events text[])
    RETURNS benefits.webhook_endpoints
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
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
    INSERT INTO benefits.webhook_endpoints (organization_id, url, secret, events)
    VALUES (create_webhook_endpoint.organization_id, create_webhook_endpoint.url,
            benefits.generate_webhook_secret(), benefits.checked_webhook_events(events))
    RETURNING * INTO result;
    RETURN result;
END
$$;

-- Change an endpoint's URL or event types (NULL keeps them), checked as at
-- creation.  Deliveries already queued keep going to the endpoint.
CREATE FUNCTION benefits.update_webhook_endpoint(endpoint_id uuid, url text DEFAULT NULL, events text[] DEFAULT NULL)
    RETURNS benefits.webhook_endpoints
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    result benefits.webhook_endpoints;
BEGIN
    IF url IS NOT NULL THEN
        PERFORM benefits.check_webhook_url(url);
    END IF;
    UPDATE benefits.webhook_endpoints e
       SET url = coalesce(update_webhook_endpoint.url, e.url),
           events = CASE WHEN update_webhook_endpoint.events IS NULL THEN e.events
                         ELSE benefits.checked_webhook_events(update_webhook_endpoint.events) END,
           modified_at = now()
     WHERE e.id = endpoint_id
    RETURNING * INTO result;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'webhook endpoint % does not exist', endpoint_id USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN result;
END
$$;

REVOKE EXECUTE ON FUNCTION benefits.checked_webhook_events(text[]),
                          benefits.update_webhook_endpoint(uuid, text, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION benefits.checked_webhook_events(text[]),
                          benefits.update_webhook_endpoint(uuid, text, text[]) TO benefits_admin;

-- What the worker sends is written only by the extension's functions: the
-- outbox (every provider call and webhook), the webhook endpoints (the URLs
-- it calls, checked by check_webhook_url) and the tracked tables (whose
-- trigger writes subscriptions and orders).  benefits_admin may read them and
-- delete, which sends nothing.
REVOKE INSERT, UPDATE ON benefits.outbox, benefits.webhook_endpoints FROM benefits_admin;
REVOKE INSERT, UPDATE, DELETE ON benefits.tracked_tables FROM benefits_admin;

-- Linked accounts: the customers' OAuth tokens are readable by the
-- extension's owner only, and accounts are written through link_account,
-- which checks them.
REVOKE ALL ON benefits.customer_accounts FROM benefits_admin, benefits_app;
GRANT SELECT (customer_id, platform, account_id, username, created_at, modified_at), DELETE
    ON benefits.customer_accounts TO benefits_admin, benefits_app;

-- Trigger functions and the worker's own calls are executed by nobody but
-- the owner (a trigger fires without an EXECUTE check; without EXECUTE
-- nobody can attach these functions to a table of their own).
REVOKE EXECUTE ON FUNCTION
    benefits.default_organization_from_customer(), benefits.grants_state_guard(),
    benefits.subscriptions_before(), benefits.subscriptions_after(), benefits.orders_after(),
    benefits.grant_source_deleted(), benefits.grants_sync_events(), benefits.outbox_wake(),
    benefits.track_trigger(),
    benefits.webhook_endpoint_failed(uuid, boolean, text, integer),
    benefits.github_invitation_step(text, text, boolean, integer),
    benefits.enqueue_grant_event(uuid, text, jsonb), benefits.enqueue_benefit_event(uuid, text)
    FROM benefits_admin;

-- Feature flags: a seventh benefit type, and benefits' metadata settable
-- through create_benefit and update_benefit (new signatures: dropped and
-- created again, with their comments and privileges).
ALTER TABLE benefits.benefits DROP CONSTRAINT benefits_type_check,
    ADD CONSTRAINT benefits_type_check
    CHECK (type IN ('license_keys', 'github_repository', 'discord', 'downloadable',
                    'meter_credits', 'custom', 'feature_flag'));
DROP FUNCTION benefits.create_benefit(text, uuid, text, jsonb);
DROP FUNCTION benefits.update_benefit(uuid, text, jsonb);
CREATE FUNCTION benefits.create_benefit(type text, organization_id uuid, description text, properties jsonb,
                                        metadata jsonb DEFAULT NULL)
RETURNS benefits.benefits
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'create_benefit';
COMMENT ON FUNCTION benefits.create_benefit(text, uuid, text, jsonb, jsonb) IS
'Creates a benefit of the organization after validating its properties and metadata; aliases downloadables, meter_credit and a custom benefit with meter_id and credits are stored under their canonical type';

CREATE FUNCTION benefits.update_benefit(benefit_id uuid, description text DEFAULT NULL, properties jsonb DEFAULT NULL,
                                        metadata jsonb DEFAULT NULL)
RETURNS benefits.benefits
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'update_benefit';
COMMENT ON FUNCTION benefits.update_benefit(uuid, text, jsonb, jsonb) IS
'Replaces the description, the properties and/or the metadata of a benefit (NULL keeps them); the type cannot change';

REVOKE EXECUTE ON FUNCTION benefits.create_benefit(text, uuid, text, jsonb, jsonb),
                          benefits.update_benefit(uuid, text, jsonb, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION benefits.create_benefit(text, uuid, text, jsonb, jsonb),
                          benefits.update_benefit(uuid, text, jsonb, jsonb) TO benefits_admin;

-- Feature flags (src/type_feature_flag.c): a feature_flag benefit names its
-- feature in metadata.feature; a customer has the feature while they hold an
-- active grant of such a benefit.  Both functions are read-only and run with
-- the caller's rights (benefits_app and benefits_admin read grants and
-- benefits), so a Row-Level Security policy may call them.  has_feature, the
-- one a policy calls for every row, is C making two direct index lookups
-- (benefits_feature below, then grants_live_benefit_customer);
-- customer_features is an SQL-standard body, bound when created.  Neither
-- resolves a name through the caller's search_path.

CREATE INDEX benefits_feature ON benefits.benefits ((metadata ->> 'feature'))
    WHERE type = 'feature_flag' AND deleted_at IS NULL;

CREATE FUNCTION benefits.has_feature(customer_id uuid, feature text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'has_feature' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION benefits.has_feature(uuid, text) IS
    'Whether the customer holds an active grant of a feature_flag benefit whose metadata names this feature';

CREATE FUNCTION benefits.customer_features(customer_id uuid) RETURNS SETOF text
    LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT DISTINCT b.metadata ->> 'feature'
      FROM benefits.grants g JOIN benefits.benefits b ON b.id = g.benefit_id
     WHERE g.customer_id = customer_features.customer_id AND g.state = 'active'
       AND b.type = 'feature_flag' AND b.deleted_at IS NULL AND b.metadata ? 'feature'
     ORDER BY 1;
END;
COMMENT ON FUNCTION benefits.customer_features(uuid) IS
    'The features the customer holds through active grants of feature_flag benefits, in name order';

GRANT EXECUTE ON FUNCTION benefits.has_feature(uuid, text), benefits.customer_features(uuid) TO benefits_app;
REVOKE EXECUTE ON FUNCTION benefits.has_feature(uuid, text), benefits.customer_features(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION benefits.has_feature(uuid, text), benefits.customer_features(uuid) TO benefits_admin;

-- Benefit properties and metadata, and grant properties, are JSON objects
-- whoever writes them (C reads them as objects).
ALTER TABLE benefits.benefits
    ADD CONSTRAINT benefits_properties_object CHECK (jsonb_typeof(properties) = 'object'),
    ADD CONSTRAINT benefits_metadata_object CHECK (jsonb_typeof(metadata) = 'object');
ALTER TABLE benefits.grants
    ADD CONSTRAINT grants_properties_object CHECK (jsonb_typeof(properties) = 'object');
-- Deleting a subscription or order keeps its grants as history instead of
-- cascading them away: grants_revoke revokes them, then clears their
-- reference and keeps the deleted row's id in source_subscription_id or
-- source_order_id (plain columns, no foreign key), which are part of the
-- unique key so that a kept grant collides with no manual grant and no other
-- kept grant; the foreign keys clear what the trigger did not reach (ON
-- DELETE SET NULL).  A kept grant stays revoked.
ALTER TABLE benefits.grants
    ADD COLUMN source_subscription_id uuid,
    ADD COLUMN source_order_id uuid,
    DROP CONSTRAINT grants_subscription_id_fkey,
    DROP CONSTRAINT grants_order_id_fkey,
    DROP CONSTRAINT grants_customer_id_benefit_id_subscription_id_order_id_key,
    ADD CONSTRAINT grants_subscription_id_fkey FOREIGN KEY (subscription_id)
        REFERENCES benefits.subscriptions ON DELETE SET NULL,
    ADD CONSTRAINT grants_order_id_fkey FOREIGN KEY (order_id) REFERENCES benefits.orders ON DELETE SET NULL,
    ADD CONSTRAINT grants_source_key UNIQUE NULLS NOT DISTINCT (customer_id, benefit_id, subscription_id, order_id,
                                                                source_subscription_id, source_order_id),
    ADD CONSTRAINT grants_source_kept CHECK ((source_subscription_id IS NULL AND source_order_id IS NULL)
                                             OR (subscription_id IS NULL AND order_id IS NULL AND state = 'revoked'));

-- Tracking: the product of a tracked row may be a SQL expression over its
-- columns (product_expression, checked and evaluated as track_expr.c
-- describes), and product_column defaults to NULL ('product' when no
-- expression is given).  A new signature: dropped and created again, with
-- the comment and privileges of a fresh install.
DROP FUNCTION benefits.track_subscriptions(regclass, uuid, text, text, text, text, jsonb, text, text, text);
DROP FUNCTION benefits.track_orders(regclass, uuid, text, text, text, text, jsonb, text, text, text);
CREATE FUNCTION benefits.track_subscriptions(
    source regclass, organization_id uuid,
    id_column text DEFAULT 'id', customer_column text DEFAULT 'customer',
    product_column text DEFAULT NULL, status_column text DEFAULT 'status',
    status_map jsonb DEFAULT NULL,
    current_period_end_column text DEFAULT NULL, cancel_at_period_end_column text DEFAULT NULL,
    on_unknown text DEFAULT 'error', product_expression text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'track_subscriptions'
LANGUAGE C SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION benefits.track_orders(
    source regclass, organization_id uuid,
    id_column text DEFAULT 'id', customer_column text DEFAULT 'customer',
    product_column text DEFAULT NULL, status_column text DEFAULT 'status',
    status_map jsonb DEFAULT NULL,
    subscription_column text DEFAULT NULL, billing_reason_column text DEFAULT NULL,
    on_unknown text DEFAULT 'error', product_expression text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'track_orders'
LANGUAGE C SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION benefits.track_subscriptions(regclass, uuid, text, text, text, text, jsonb, text, text, text, text) IS
    'Drive grants from an application''s own subscriptions table (Stripe statuses by default; the product from a column or an expression)';
COMMENT ON FUNCTION benefits.track_orders(regclass, uuid, text, text, text, text, jsonb, text, text, text, text) IS
    'Drive grants from an application''s own orders or payments table (the product from a column or an expression)';
REVOKE EXECUTE ON FUNCTION benefits.track_subscriptions(regclass, uuid, text, text, text, text, jsonb, text, text, text, text),
                          benefits.track_orders(regclass, uuid, text, text, text, text, jsonb, text, text, text, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION benefits.track_subscriptions(regclass, uuid, text, text, text, text, jsonb, text, text, text, text),
                          benefits.track_orders(regclass, uuid, text, text, text, text, jsonb, text, text, text, text)
    TO benefits_admin;
-- The trigger evaluates a stored expression as the role stored with it.
-- Under 0.1.0 benefits_admin could write benefits.tracked_tables; 0.2.0
-- writes it only through track_*, so no expression setting from before the
-- update is kept.
UPDATE benefits.tracked_tables
   SET settings = settings - '{product_expression,expression_role,expression_columns}'::text[];

-- Customers link their own accounts from the portal (OAuth): tokens that can
-- be renewed, link states and attempts, the 'oauth' outbox job, and
-- link_account taking the tokens (new signature: dropped and created again,
-- with its comment and privileges).
ALTER TABLE benefits.customer_accounts
    ADD COLUMN refresh_token text CONSTRAINT customer_accounts_refresh_token_shape
        CHECK (refresh_token <> '' AND octet_length(refresh_token) <= 2048 AND refresh_token !~ '[[:cntrl:]]'),
    ADD COLUMN token_expires_at timestamptz,
    ADD COLUMN scopes text[] CONSTRAINT customer_accounts_scopes_shape CHECK (cardinality(scopes) <= 20);
GRANT SELECT (token_expires_at, scopes) ON benefits.customer_accounts TO benefits_admin, benefits_app;
-- The live grants of a benefit delivered to one GitHub or Discord account,
-- whichever customer holds them (two customers may link the same account):
-- its access is removed only when the last of them goes.
CREATE INDEX grants_live_delivered_account ON benefits.grants (benefit_id, (properties->>'account_id'))
    WHERE state <> 'revoked' AND properties ? 'account_id';
ALTER TABLE benefits.outbox DROP CONSTRAINT outbox_kind_check,
    ADD CONSTRAINT outbox_kind_check CHECK (kind IN ('webhook', 'github', 'discord', 'oauth'));
DROP FUNCTION benefits.link_account(uuid, text, text, text, text);
DROP FUNCTION benefits.customer_portal_html(text, text);
CREATE FUNCTION benefits.customer_portal_html(token text, action_url text DEFAULT NULL,
                                              link_redirect_uri text DEFAULT NULL)
    RETURNS text
    AS 'MODULE_PATHNAME', 'customer_portal_html' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE EXECUTE ON FUNCTION benefits.customer_portal_html(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION benefits.customer_portal_html(text, text, text) TO benefits_app, benefits_public;
GRANT EXECUTE ON FUNCTION benefits.customer_portal_html(text, text, text) TO benefits_admin;

CREATE FUNCTION benefits.link_account(customer_id uuid, platform text, account_id text,
                                      username text DEFAULT NULL, access_token text DEFAULT NULL,
                                      refresh_token text DEFAULT NULL, token_expires_at timestamptz DEFAULT NULL,
                                      scopes text[] DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'link_account'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off;
COMMENT ON FUNCTION benefits.link_account(uuid, text, text, text, text, text, timestamptz, text[]) IS
    'Record a customer''s GitHub or Discord account (and its OAuth tokens), move delivered access to it, and queue the provider jobs of the grants that waited for it';
GRANT EXECUTE ON FUNCTION benefits.link_account(uuid, text, text, text, text, text, timestamptz, text[])
    TO benefits_app;

-- The states handed out with authorize URLs, by their SHA-256: single-use
-- (deleted when the callback consumes them), bound to one session, customer
-- and platform, valid for ten minutes.
CREATE TABLE benefits.oauth_states (
    state_hash    bytea PRIMARY KEY CHECK (octet_length(state_hash) = 32),
    session_id    uuid NOT NULL REFERENCES benefits.customer_sessions ON DELETE CASCADE,
    customer_id   uuid NOT NULL REFERENCES benefits.customers ON DELETE CASCADE,
    platform      text NOT NULL CHECK (platform IN ('github', 'discord')),
    redirect_uri  text NOT NULL CHECK (octet_length(redirect_uri) <= 2048),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX ON benefits.oauth_states (customer_id);

-- A link in progress or failed, per customer and platform: the oauth job
-- linking the account (pending while it runs), or the error the customer is
-- shown with the action to connect again.  A link that succeeds leaves no row.
CREATE TABLE benefits.account_links (
    customer_id  uuid NOT NULL REFERENCES benefits.customers ON DELETE CASCADE,
    platform     text NOT NULL CHECK (platform IN ('github', 'discord')),
    job_id       bigint,
    error        text CHECK (octet_length(error) <= 500),
    created_at   timestamptz NOT NULL DEFAULT now(),
    modified_at  timestamptz,
    PRIMARY KEY (customer_id, platform)
);

-- Tokens an oauth job obtained, kept between the exchange and the reading of
-- the account (then they move to customer_accounts).  Owner only.
CREATE TABLE benefits.oauth_exchanges (
    job_id            bigint PRIMARY KEY REFERENCES benefits.outbox ON DELETE CASCADE,
    access_token      text NOT NULL CHECK (access_token <> '' AND octet_length(access_token) <= 2048
                                       AND access_token !~ '[[:cntrl:]]'),
    refresh_token     text CHECK (refresh_token <> '' AND octet_length(refresh_token) <= 2048
                                  AND refresh_token !~ '[[:cntrl:]]'),
    token_expires_at  timestamptz,
    scopes            text[],
    created_at        timestamptz NOT NULL DEFAULT now()
);

-- The provider's authorize URL for the session's customer to link an account
-- of platform, returning to redirect_uri (SQLSTATE 28000 for a bad session).
CREATE FUNCTION benefits.portal_link_url(token text, platform text, redirect_uri text)
    RETURNS text
    AS 'MODULE_PATHNAME', 'portal_link_url' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION benefits.portal_link_url(text, text, text) IS
    'The GitHub or Discord authorize URL, with a fresh single-use state, for the session''s customer to link an account';

-- What the provider sent back to the application's redirect handler: the
-- state is checked (and, with platform, that it was issued for that
-- platform) and consumed, the code queued for the worker.  Returns
-- 'pending', or 'failed' when the customer refused (code NULL).
CREATE FUNCTION benefits.portal_link_callback(token text, state text, code text, platform text DEFAULT NULL)
    RETURNS text
    AS 'MODULE_PATHNAME', 'portal_link_callback' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION benefits.portal_link_callback(text, text, text, text) IS
    'Check and consume an OAuth state and queue the exchange of the code; returns pending, or failed when access was refused';

-- Per platform (n: 1 github, 2 discord): unlinked, pending, linked or
-- failed, the account's name and what went wrong.  Neither SECURITY DEFINER
-- nor with settings, so the planner inlines it into the statement that calls
-- it: the customer portal (running as the extension's owner) plans it once,
-- where a call of account_link_status would plan its body on every call.
-- Not granted to benefits_app or benefits_public: account_link_status is theirs.
CREATE FUNCTION benefits.account_link_states(customer_id uuid)
    RETURNS TABLE (n integer, platform text, status text, username text, error text)
    LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT p.n, p.platform,
           CASE WHEN o.state IN ('pending', 'running') THEN 'pending'
                WHEN l.error IS NOT NULL OR o.state = 'dead' THEN 'failed'
                WHEN a.customer_id IS NOT NULL THEN 'linked'
                ELSE 'unlinked' END,
           a.username,
           CASE WHEN o.state IN ('pending', 'running') THEN NULL
                WHEN l.error IS NOT NULL THEN l.error
                WHEN o.state = 'dead' THEN 'Connecting the account did not complete. Connect it again.' END
      FROM (VALUES (1, 'github'), (2, 'discord')) AS p(n, platform)
      LEFT JOIN benefits.account_links l ON l.customer_id = account_link_states.customer_id AND l.platform = p.platform
      LEFT JOIN benefits.outbox o ON o.id = l.job_id
      LEFT JOIN benefits.customer_accounts a
             ON a.customer_id = account_link_states.customer_id AND a.platform = p.platform;
END;

REVOKE EXECUTE ON FUNCTION benefits.account_link_states(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION benefits.account_link_states(uuid) TO benefits_admin;

-- Per platform: unlinked, pending, linked or failed, the account's name and
-- what went wrong.  SECURITY DEFINER: it reads the state of the link's job
-- in the outbox, which benefits_app (to which it is granted) cannot read.
CREATE FUNCTION benefits.account_link_status(customer_id uuid)
    RETURNS TABLE (platform text, status text, username text, error text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT s.platform, s.status, s.username, s.error
      FROM benefits.account_link_states(account_link_status.customer_id) s
     ORDER BY s.n;
END;

CREATE FUNCTION benefits.portal_link_status(token text)
    RETURNS TABLE (platform text, status text, username text, error text)
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT s.platform, s.status, s.username, s.error
      FROM benefits.account_link_status(benefits.customer_session_customer(token)) s;
END;
COMMENT ON FUNCTION benefits.portal_link_status(text) IS
    'Per platform, whether the session''s customer has linked an account (unlinked, pending, linked, failed), its name and the last error';

-- Removes the session customer's account of platform: its access is removed
-- by provider jobs and its grants wait for a link again.  False when there
-- was no account.
CREATE FUNCTION benefits.portal_unlink_account(token text, platform text)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'portal_unlink_account' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off;
COMMENT ON FUNCTION benefits.portal_unlink_account(text, text) IS
    'Remove the session customer''s GitHub or Discord account and the access delivered to it';

GRANT EXECUTE ON FUNCTION benefits.portal_link_url(text, text, text),
                          benefits.portal_link_callback(text, text, text, text),
                          benefits.portal_link_status(text),
                          benefits.portal_unlink_account(text, text)
    TO benefits_app, benefits_public;
GRANT EXECUTE ON FUNCTION benefits.account_link_status(uuid) TO benefits_app;

-- The worker's side.  An answer function reads a provider's answer to one
-- step of a job and returns the verdict the worker records:
-- {"outcome": "step", "patch": {...}} (the next step, with the payload
-- patched), "done", "dead" (with "error") or "retry" (with "error").

-- The tokens of a token response (GitHub's or Discord's JSON), checked;
-- NULL when it carries no usable access token.
CREATE FUNCTION benefits.oauth_token_response(body text)
    RETURNS TABLE (access_token text, refresh_token text, token_expires_at timestamptz, scopes text[])
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    j jsonb;
    expires_in numeric;
BEGIN
    BEGIN
        j := body::jsonb;
    EXCEPTION WHEN OTHERS THEN
        RETURN;
    END;
    IF jsonb_typeof(j) IS DISTINCT FROM 'object' OR jsonb_typeof(j->'access_token') IS DISTINCT FROM 'string'
       OR NOT benefits.oauth_token_usable(j->>'access_token')
       OR (j ? 'refresh_token' AND jsonb_typeof(j->'refresh_token') = 'string'
           AND NOT benefits.oauth_token_usable(j->>'refresh_token')) THEN
        RETURN;
    END IF;
    IF jsonb_typeof(j->'expires_in') = 'number' THEN
        expires_in := (j->>'expires_in')::numeric;
    END IF;
    access_token := j->>'access_token';
    refresh_token := CASE WHEN jsonb_typeof(j->'refresh_token') = 'string' THEN j->>'refresh_token' END;
    token_expires_at := CASE WHEN expires_in > 0 AND expires_in <= 315360000
                             THEN now() + expires_in * interval '1 second' END;
    -- GitHub separates scopes with commas, Discord with spaces.
    scopes := CASE WHEN jsonb_typeof(j->'scope') = 'string' AND octet_length(j->>'scope') <= 1000
                   THEN ARRAY(SELECT s FROM regexp_split_to_table(j->>'scope', '[ ,]+') s WHERE s <> '') END;
    -- what customer_accounts accepts, or none (a stored pair must not fail its checks)
    IF cardinality(scopes) > 20 OR EXISTS (SELECT FROM unnest(scopes) s
                                            WHERE octet_length(s) > 100 OR s ~ '[[:cntrl:]]') THEN
        scopes := NULL;
    END IF;
    RETURN NEXT;
END
$$;

-- Why a token endpoint refused, for the job's last error: its "error" code,
-- never the body (which may hold a token the checks refused).
CREATE FUNCTION benefits.oauth_error_of(body text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN coalesce(left(regexp_replace(body::jsonb->>'error', '[^A-Za-z0-9_.-]', '', 'g'), 100),
                    'no usable access token in the answer');
EXCEPTION WHEN OTHERS THEN
    RETURN 'the answer is not JSON';
END
$$;

-- A token a provider returned: what customer_accounts accepts.
CREATE FUNCTION benefits.oauth_token_usable(token text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
    RETURN token <> '' AND octet_length(token) <= 2048 AND token !~ '[[:cntrl:]]';

-- The error of a link the customer has to start again.
CREATE FUNCTION benefits.oauth_link_failed(job_id bigint, customer_id uuid, platform text, error text)
    RETURNS void
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    UPDATE benefits.account_links l SET error = oauth_link_failed.error, modified_at = now()
     WHERE l.customer_id = oauth_link_failed.customer_id AND l.platform = oauth_link_failed.platform
       AND l.job_id = oauth_link_failed.job_id;
    DELETE FROM benefits.oauth_exchanges x WHERE x.job_id = oauth_link_failed.job_id;
END;

-- Step 0 of an oauth job: the answer to the code exchange.  The code leaves
-- the outbox here, whatever the answer: it is used once.
CREATE FUNCTION benefits.oauth_code_answer(job_id bigint, status integer, body text)
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    job record;
    tokens record;
    platform_name text;
BEGIN
    SELECT o.payload->>'platform' AS platform, (o.payload->>'customer_id')::uuid AS customer_id INTO job
      FROM benefits.outbox o WHERE o.id = oauth_code_answer.job_id;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('outcome', 'done');
    END IF;
    platform_name := CASE job.platform WHEN 'github' THEN 'GitHub' ELSE 'Discord' END;
    PERFORM 1 FROM benefits.customers c WHERE c.id = job.customer_id FOR NO KEY UPDATE;
    UPDATE benefits.outbox o SET payload = o.payload - 'code' WHERE o.id = oauth_code_answer.job_id;
    SELECT * INTO tokens FROM benefits.oauth_token_response(body) LIMIT 1;
    IF status BETWEEN 200 AND 299 AND tokens.access_token IS NOT NULL THEN
        INSERT INTO benefits.oauth_exchanges AS x (job_id, access_token, refresh_token, token_expires_at, scopes)
        VALUES (oauth_code_answer.job_id, tokens.access_token, tokens.refresh_token, tokens.token_expires_at,
                tokens.scopes)
        ON CONFLICT ON CONSTRAINT oauth_exchanges_pkey DO UPDATE
           SET access_token = EXCLUDED.access_token, refresh_token = EXCLUDED.refresh_token,
               token_expires_at = EXCLUDED.token_expires_at, scopes = EXCLUDED.scopes;
        RETURN jsonb_build_object('outcome', 'step', 'patch', jsonb_build_object('_step', 1));
    END IF;
    PERFORM benefits.oauth_link_failed(oauth_code_answer.job_id, job.customer_id, job.platform,
                                       platform_name || ' did not accept the sign-in. Connect your account again.');
    RETURN jsonb_build_object('outcome', 'dead', 'error',
                              format('oauth code exchange refused (HTTP %s): %s', status,
                                     benefits.oauth_error_of(body)));
END
$$;

-- Step 1 of an oauth job: the account read with the new token, linked to the
-- customer the state was bound to, unless a newer link attempt or an unlink
-- replaced this one meanwhile.
CREATE FUNCTION benefits.oauth_account_answer(job_id bigint, status integer, body text)
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    job record;
    tokens benefits.oauth_exchanges;
    j jsonb;
    account text;
    name text;
    platform_name text;
BEGIN
    SELECT o.payload->>'platform' AS platform, (o.payload->>'customer_id')::uuid AS customer_id INTO job
      FROM benefits.outbox o WHERE o.id = oauth_account_answer.job_id;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('outcome', 'done');
    END IF;
    platform_name := CASE job.platform WHEN 'github' THEN 'GitHub' ELSE 'Discord' END;
    PERFORM 1 FROM benefits.customers c WHERE c.id = job.customer_id FOR NO KEY UPDATE;
    PERFORM 1 FROM benefits.account_links l
     WHERE l.customer_id = job.customer_id AND l.platform = job.platform AND l.job_id = oauth_account_answer.job_id;
    IF NOT FOUND THEN
        DELETE FROM benefits.oauth_exchanges x WHERE x.job_id = oauth_account_answer.job_id;
        RETURN jsonb_build_object('outcome', 'done');
    END IF;
    SELECT * INTO tokens FROM benefits.oauth_exchanges x WHERE x.job_id = oauth_account_answer.job_id;
    BEGIN
        j := body::jsonb;
    EXCEPTION WHEN OTHERS THEN
        j := NULL;
    END;
    IF status BETWEEN 200 AND 299 AND jsonb_typeof(j) = 'object' AND tokens.job_id IS NOT NULL THEN
        account := CASE WHEN jsonb_typeof(j->'id') IN ('number', 'string') THEN j->>'id' END;
        name := CASE job.platform WHEN 'github' THEN j->>'login' ELSE j->>'username' END;
    END IF;
    IF account IS NULL THEN
        PERFORM benefits.oauth_link_failed(oauth_account_answer.job_id, job.customer_id, job.platform,
                                           platform_name || ' did not show the account. Connect your account again.');
        RETURN jsonb_build_object('outcome', 'dead', 'error',
                                  format('oauth account lookup failed (HTTP %s): %s', status,
                                         left(coalesce(body, ''), 200)));
    END IF;
    BEGIN
        PERFORM benefits.link_account(job.customer_id, job.platform, account, name, tokens.access_token,
                                      tokens.refresh_token, tokens.token_expires_at, tokens.scopes);
    EXCEPTION WHEN invalid_parameter_value THEN
        PERFORM benefits.oauth_link_failed(oauth_account_answer.job_id, job.customer_id, job.platform,
                                           'This ' || platform_name || ' account cannot be used. Connect another account.');
        RETURN jsonb_build_object('outcome', 'dead', 'error', 'oauth account refused: ' || SQLERRM);
    END;
    DELETE FROM benefits.account_links l
     WHERE l.customer_id = job.customer_id AND l.platform = job.platform AND l.job_id = oauth_account_answer.job_id;
    DELETE FROM benefits.oauth_exchanges x WHERE x.job_id = oauth_account_answer.job_id;
    RETURN jsonb_build_object('outcome', 'done');
END
$$;

-- A Discord add_member job refreshed its customer's token first: the new
-- pair is stored and the job goes on with it.  A refusal marks the link
-- failed, with the action to connect again, unless another job refreshed the
-- token meanwhile (Discord's refresh tokens are single-use), in which case
-- this one goes on with that token.
CREATE FUNCTION benefits.discord_refresh_answer(job_id bigint, status integer, body text)
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    customer uuid;
    tokens record;
BEGIN
    SELECT CASE WHEN o.payload->>'customer_id' ~ '^[0-9a-fA-F-]{36}$' THEN (o.payload->>'customer_id')::uuid END
      INTO customer FROM benefits.outbox o WHERE o.id = discord_refresh_answer.job_id;
    IF customer IS NULL THEN
        RETURN jsonb_build_object('outcome', 'dead', 'error', 'discord add_member: payload.customer_id is missing');
    END IF;
    PERFORM 1 FROM benefits.customers c WHERE c.id = customer FOR NO KEY UPDATE;
    SELECT * INTO tokens FROM benefits.oauth_token_response(body) LIMIT 1;
    IF status BETWEEN 200 AND 299 AND tokens.access_token IS NOT NULL THEN
        UPDATE benefits.customer_accounts a
           SET access_token = tokens.access_token,
               refresh_token = coalesce(tokens.refresh_token, a.refresh_token),
               token_expires_at = tokens.token_expires_at,
               scopes = coalesce(tokens.scopes, a.scopes), modified_at = now()
         WHERE a.customer_id = customer AND a.platform = 'discord';
        RETURN jsonb_build_object('outcome', 'step', 'patch', jsonb_build_object('_renewed', true));
    END IF;
    -- Another job of the customer may be renewing with the same (single-use)
    -- refresh token right now: try again once it is done.
    IF EXISTS (SELECT FROM benefits.outbox o
                WHERE o.kind = 'discord' AND o.action = 'add_member' AND o.state = 'running'
                  AND o.id <> discord_refresh_answer.job_id AND o.payload->>'customer_id' = customer::text) THEN
        RETURN jsonb_build_object('outcome', 'retry', 'error',
                                  'discord token refresh refused while another job renewed the token; trying again');
    END IF;
    IF EXISTS (SELECT FROM benefits.customer_accounts a
                WHERE a.customer_id = customer AND a.platform = 'discord'
                  AND a.token_expires_at > now() + benefits.oauth_refresh_margin()) THEN
        RETURN jsonb_build_object('outcome', 'step', 'patch', jsonb_build_object('_renewed', true));
    END IF;
    INSERT INTO benefits.account_links AS l (customer_id, platform, job_id, error)
    VALUES (customer, 'discord', NULL, 'Discord access expired. Connect your Discord account again.')
    ON CONFLICT ON CONSTRAINT account_links_pkey DO UPDATE
       SET job_id = NULL, error = EXCLUDED.error, modified_at = now();
    RETURN jsonb_build_object('outcome', 'dead', 'error',
                              format('discord token refresh refused (HTTP %s): %s; the customer must connect Discord again',
                                     status, benefits.oauth_error_of(body)));
END
$$;

-- How long before it expires a Discord token is refreshed.
CREATE FUNCTION benefits.oauth_refresh_margin() RETURNS interval
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN interval '10 minutes';

-- What the worker's requests for jobs need besides their payloads: the
-- customer's OAuth tokens, never stored in the outbox.  Per job of ids:
-- the access token to use, and for Discord add_member the refresh token
-- when the access token is about to expire.
CREATE FUNCTION benefits.job_credentials(ids bigint[])
    RETURNS TABLE (job_id bigint, access_token text, refresh_token text)
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT o.id, coalesce(x.access_token, a.access_token),
           CASE WHEN a.token_expires_at < now() + benefits.oauth_refresh_margin() THEN a.refresh_token END
      FROM benefits.outbox o
      LEFT JOIN benefits.oauth_exchanges x ON o.kind = 'oauth' AND x.job_id = o.id
      LEFT JOIN benefits.customer_accounts a
             ON o.kind = 'discord' AND o.action = 'add_member' AND a.platform = 'discord'
            AND a.customer_id = CASE WHEN o.payload->>'customer_id' ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
                                     THEN (o.payload->>'customer_id')::uuid END
     WHERE o.id = ANY (ids) AND (o.kind = 'oauth' OR (o.kind = 'discord' AND o.action = 'add_member'));
END;
REVOKE EXECUTE ON FUNCTION
    benefits.link_account(uuid, text, text, text, text, text, timestamptz, text[]),
    benefits.portal_link_url(text, text, text), benefits.portal_link_callback(text, text, text, text),
    benefits.account_link_status(uuid), benefits.portal_link_status(text), benefits.portal_unlink_account(text, text),
    benefits.oauth_token_response(text), benefits.oauth_token_usable(text), benefits.oauth_error_of(text),
    benefits.oauth_link_failed(bigint, uuid, text, text), benefits.oauth_code_answer(bigint, integer, text),
    benefits.oauth_account_answer(bigint, integer, text), benefits.discord_refresh_answer(bigint, integer, text),
    benefits.oauth_refresh_margin(), benefits.job_credentials(bigint[])
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    benefits.link_account(uuid, text, text, text, text, text, timestamptz, text[]),
    benefits.portal_link_url(text, text, text), benefits.portal_link_callback(text, text, text, text),
    benefits.account_link_status(uuid), benefits.portal_link_status(text), benefits.portal_unlink_account(text, text),
    benefits.oauth_token_usable(text), benefits.oauth_refresh_margin()
    TO benefits_admin;
REVOKE ALL ON benefits.oauth_states, benefits.oauth_exchanges, benefits.account_links FROM PUBLIC;
GRANT SELECT, DELETE ON benefits.account_links TO benefits_admin;
GRANT SELECT ON benefits.account_links TO benefits_app;

-- Licensing beyond online checks: machine fingerprints, deactivation history
-- and heartbeats of activations; per-organization Ed25519 signing keys and
-- signed offline license files (src/license_validate.c,
-- src/license_checkout.c, src/license_machines.c).  Activations stored by
-- 0.1.0 have no fingerprint and no heartbeat and stay live.
ALTER TABLE benefits.license_key_activations
    ADD COLUMN fingerprint text CHECK (octet_length(fingerprint) BETWEEN 1 AND 256),
    ADD COLUMN deactivated_at timestamptz,
    ADD COLUMN heartbeat_at timestamptz;
CREATE UNIQUE INDEX license_key_activations_live_fingerprint
    ON benefits.license_key_activations (license_key_id, fingerprint) WHERE deactivated_at IS NULL;

-- validate_license and activate_license take a fingerprint (new signatures:
-- dropped and created again, with their comments and privileges; calls
-- without it are unchanged).
DROP FUNCTION benefits.validate_license(text, uuid, uuid, uuid, uuid, integer, jsonb);
DROP FUNCTION benefits.activate_license(text, uuid, text, jsonb, jsonb);
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
COMMENT ON FUNCTION benefits.deactivate_license(text, uuid, uuid) IS
    'Deactivate an activation of a license key (kept as history, its seat freed); false when there was no such live activation';
REVOKE EXECUTE ON FUNCTION benefits.validate_license(text, uuid, uuid, uuid, uuid, integer, jsonb, text),
                          benefits.activate_license(text, uuid, text, jsonb, jsonb, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION benefits.validate_license(text, uuid, uuid, uuid, uuid, integer, jsonb, text),
                          benefits.activate_license(text, uuid, text, jsonb, jsonb, text)
    TO benefits_public, benefits_app, benefits_admin;

-- The portal deactivates as deactivate_license does: the row stays as history.
-- Customer self-service: deactivate one activation of one of the customer's
-- own license keys, when the benefit lets customers manage activations (the
-- row stays as history, as deactivate_license keeps it).  The key row is
-- locked as activate_license locks it, so counting stays exact.
CREATE OR REPLACE FUNCTION benefits.portal_deactivate_license(token text, activation_id uuid)
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
     WHERE a.id = activation_id AND a.deactivated_at IS NULL AND lk.customer_id = cid AND lk.status = 'granted'
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
    UPDATE benefits.license_key_activations a SET deactivated_at = now(), modified_at = now()
     WHERE a.id = activation_id AND a.license_key_id = k.id AND a.deactivated_at IS NULL;
    RETURN FOUND;
END
$$;

-- A released activation is an event endpoints may subscribe to.
-- The event types an endpoint can subscribe to.
CREATE OR REPLACE FUNCTION benefits.webhook_event_types() RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ARRAY['benefit.created', 'benefit.updated',
                 'benefit_grant.created', 'benefit_grant.updated',
                 'benefit_grant.cycled', 'benefit_grant.revoked',
                 'meter.low_balance', 'license_key.activation_released'];

-- Machines and offline licenses (src/license_validate.c, src/license_checkout.c):
-- heartbeats of activations, per-organization Ed25519 signing keys and
-- signed license files an application verifies without calling home.

-- An activation's machine says it is alive.  A single-row write (the
-- activation's heartbeat_at); run_maintenance releases the activations of a
-- benefit with activations.heartbeat that stay silent past their window.
CREATE FUNCTION benefits.heartbeat_license(key text, organization_id uuid, activation_id uuid)
    RETURNS benefits.license_validation
    AS 'MODULE_PATHNAME', 'heartbeat_license'
    LANGUAGE C VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION benefits.heartbeat_license(text, uuid, uuid) IS
    'Record that an activation''s machine is alive; answers like validate_license';

-- Each organization's Ed25519 key pairs: one current (retired_at NULL),
-- created on the first checkout or by rotate_license_signing_key, and the
-- retired ones, whose public keys stay listed so that files they signed
-- verify until they expire.  kid is the first 8 bytes of the SHA-256 of the
-- public key, in hex.  secret_key (libsodium's 64-byte form) is readable by
-- the extension's owner only (99_privileges.sql).
CREATE TABLE benefits.license_signing_keys (
    kid              text PRIMARY KEY CHECK (kid ~ '^[0-9a-f]{16}$'),
    organization_id  uuid NOT NULL REFERENCES benefits.organizations ON DELETE CASCADE,
    public_key       bytea NOT NULL CHECK (length(public_key) = 32),
    secret_key       bytea NOT NULL CHECK (length(secret_key) = 64),
    created_at       timestamptz NOT NULL DEFAULT now(),
    retired_at       timestamptz
);
CREATE UNIQUE INDEX license_signing_keys_current
    ON benefits.license_signing_keys (organization_id) WHERE retired_at IS NULL;
CREATE INDEX ON benefits.license_signing_keys (organization_id, created_at);

-- The public keys an application embeds to verify license files: base64 of
-- the 32 raw Ed25519 bytes, the current one first.  Public by nature, so
-- benefits_public may read them; nothing else of the table.
CREATE FUNCTION benefits.license_public_keys(organization_id uuid)
    RETURNS TABLE (kid text, public_key text, created_at timestamptz, retired_at timestamptz)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF license_public_keys.organization_id IS NULL THEN
        RAISE EXCEPTION 'organization_id must not be null' USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
        SELECT k.kid, encode(k.public_key, 'base64'), k.created_at, k.retired_at
          FROM benefits.license_signing_keys k
         WHERE k.organization_id = license_public_keys.organization_id
         ORDER BY k.retired_at IS NOT NULL, k.created_at DESC, k.kid;
END
$$;
COMMENT ON FUNCTION benefits.license_public_keys(uuid) IS
    'The organization''s Ed25519 public keys for license files (current first, then retired ones)';

-- A new current signing key for the organization (the first one, or the
-- next: the previous one is retired and stays listed).  Returns its kid.
CREATE FUNCTION benefits.rotate_license_signing_key(organization_id uuid)
    RETURNS text
    AS 'MODULE_PATHNAME', 'rotate_license_signing_key'
    LANGUAGE C VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION benefits.rotate_license_signing_key(uuid) IS
    'Create the organization''s next license signing key and retire the current one (still listed)';

-- A signed license file for a valid key (and live activation, when given),
-- valid for ttl but never past the key's own expiry; NULL for a key that
-- does not validate (validate_license says why).
CREATE FUNCTION benefits.checkout_license(key text, organization_id uuid,
                                          activation_id uuid DEFAULT NULL,
                                          ttl interval DEFAULT '30 days')
    RETURNS text
    AS 'MODULE_PATHNAME', 'checkout_license'
    LANGUAGE C VOLATILE;
-- Neither SECURITY DEFINER nor SET search_path, as for validate_license: the
-- two clauses cost about a tenth of a checkout.  Its direct index scans
-- resolve nothing by name and check no privileges; an organization's first
-- key is written as the function's owner under a search path the C code pins
-- (src/license_checkout.c, CurrentSigningKey).
COMMENT ON FUNCTION benefits.checkout_license(text, uuid, uuid, interval) IS
    'A signed offline license file (Ed25519) for a valid key, or NULL';

GRANT EXECUTE ON FUNCTION
    benefits.heartbeat_license(text, uuid, uuid),
    benefits.license_public_keys(uuid),
    benefits.checkout_license(text, uuid, uuid, interval)
    TO benefits_public, benefits_app;
REVOKE EXECUTE ON FUNCTION benefits.heartbeat_license(text, uuid, uuid),
                          benefits.license_public_keys(uuid),
                          benefits.rotate_license_signing_key(uuid),
                          benefits.checkout_license(text, uuid, uuid, interval)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION benefits.heartbeat_license(text, uuid, uuid),
                          benefits.license_public_keys(uuid),
                          benefits.rotate_license_signing_key(uuid),
                          benefits.checkout_license(text, uuid, uuid, interval)
    TO benefits_admin;
-- License signing keys: the Ed25519 secret keys are readable by the
-- extension's owner only; benefits_admin sees the other columns.
REVOKE ALL ON benefits.license_signing_keys FROM PUBLIC;
GRANT SELECT (kid, organization_id, public_key, created_at, retired_at)
    ON benefits.license_signing_keys TO benefits_admin;

-- Polar's key per grant: a license benefit with key_per = grant gives each
-- grant its own key (license_keys.grant_id); keys stored by 0.1.0 are
-- customer keys (grant_id NULL) and keep working as they are.
ALTER TABLE benefits.license_keys
    ADD COLUMN grant_id uuid,
    DROP CONSTRAINT license_keys_customer_id_benefit_id_key,
    ADD CONSTRAINT license_keys_holder_key UNIQUE NULLS NOT DISTINCT (customer_id, benefit_id, grant_id);
CREATE INDEX ON benefits.license_keys (grant_id) WHERE grant_id IS NOT NULL;

-- ---------------------------------------------------------------------------
-- Manual fulfillment (custom benefits with "fulfillment": "manual"): the same
-- objects, comments and privileges as sql/install/62_fulfillment.sql and
-- 99_privileges.sql.  No table changes: the state lives in grant properties.
CREATE FUNCTION benefits.complete_fulfillment(grant_id uuid, note text DEFAULT NULL)
    RETURNS benefits.grants
    AS 'MODULE_PATHNAME', 'complete_fulfillment' LANGUAGE C VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION benefits.complete_fulfillment(uuid, text) IS
    'Mark a manually fulfilled grant as delivered: it becomes active, with the seller''s note';
CREATE VIEW benefits.pending_fulfillments AS
SELECT g.id AS grant_id, g.organization_id, g.customer_id, g.benefit_id,
       coalesce(g.modified_at, g.created_at) AS since,
       g.subscription_id, g.order_id,
       c.email AS customer_email, c.name AS customer_name, b.description AS benefit_description
  FROM benefits.grants g
  JOIN benefits.customers c ON c.id = g.customer_id
  JOIN benefits.benefits b ON b.id = g.benefit_id
 WHERE g.state = 'created' AND g.properties ->> 'fulfillment' = 'pending'
 ORDER BY since, g.id;
COMMENT ON VIEW benefits.pending_fulfillments IS
    'Grants of manually fulfilled benefits waiting for the seller, oldest first';
CREATE INDEX grants_pending_fulfillment ON benefits.grants ((coalesce(modified_at, created_at)))
    WHERE state = 'created' AND properties ->> 'fulfillment' = 'pending';
REVOKE ALL ON benefits.pending_fulfillments FROM PUBLIC;
GRANT SELECT ON benefits.pending_fulfillments TO benefits_admin;
REVOKE EXECUTE ON FUNCTION benefits.complete_fulfillment(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION benefits.complete_fulfillment(uuid, text) TO benefits_admin;

-- ---------------------------------------------------------------------------
-- Customer email (the worker sends it over SMTP): the same objects as
-- sql/install/65_email.sql, and the outbox's new job kind, as
-- sql/install/40_outbox.sql.
ALTER TABLE benefits.organizations
    ADD COLUMN email_from text CONSTRAINT organizations_email_from_check
        CHECK (length(email_from) <= 254 AND email_from ~ '^[!-~]+$'
               AND email_from ~ '^[^@<>()\[\]\\,;:"]+@[^@<>()\[\]\\,;:"]+$'),
    ADD COLUMN support_email text CONSTRAINT organizations_support_email_check
        CHECK (length(support_email) <= 254 AND support_email ~ '^[!-~]+$'
               AND support_email ~ '^[^@<>()\[\]\\,;:"]+@[^@<>()\[\]\\,;:"]+$'),
    ADD COLUMN portal_url text CONSTRAINT organizations_portal_url_check
        CHECK (portal_url ~ '^https?://[!-~]+$' AND length(portal_url) <= 2048),
    ADD COLUMN email_disabled text[] NOT NULL DEFAULT '{}' CONSTRAINT organizations_email_disabled_check
        CHECK (email_disabled <@ ARRAY['benefits_granted', 'benefits_removed', 'fulfillment_completed',
                                       'revocation_warning', 'credits_low', 'license_expiring']::text[]);
ALTER TABLE benefits.customers ADD COLUMN email_opt_out boolean NOT NULL DEFAULT false;
ALTER TABLE benefits.subscriptions ADD COLUMN revocation_warning_for timestamptz;
ALTER TABLE benefits.license_keys ADD COLUMN expiry_warning_for timestamptz;
CREATE INDEX license_keys_expiring ON benefits.license_keys (expires_at)
    WHERE status = 'granted' AND expires_at IS NOT NULL;
COMMENT ON COLUMN benefits.customers.email_opt_out IS
    'No email the customer may decline (credits running low); access changes are still sent';
COMMENT ON COLUMN benefits.subscriptions.revocation_warning_for IS
    'The end of access the customer was last warned about (run_maintenance)';
COMMENT ON COLUMN benefits.license_keys.expiry_warning_for IS
    'The expiry the customer was last warned about (run_maintenance)';
ALTER TABLE benefits.outbox
    DROP CONSTRAINT outbox_kind_check,
    ADD CONSTRAINT outbox_kind_check CHECK (kind IN ('webhook', 'github', 'discord', 'oauth', 'email'));
-- New webhook event types, sent only to endpoints that list them: the
-- warnings before a subscription's benefits are revoked and before a license
-- key expires (run_maintenance).
CREATE OR REPLACE FUNCTION benefits.webhook_event_types() RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ARRAY['benefit.created', 'benefit.updated',
                 'benefit_grant.created', 'benefit_grant.updated',
                 'benefit_grant.cycled', 'benefit_grant.revoked',
                 'meter.low_balance', 'license_key.activation_released',
                 'benefit_grant.revocation_scheduled', 'license_key.expiring'];

-- ---------------------------------------------------------------------------
-- Meter credits: credit lots, top-ups, idempotent usage, usage history
-- (src/meter_ledger.c, src/meter_usage.c, src/meter_portal.c).  The same
-- objects as the install part 52_meter_lots.sql, then 0.1.0's balances
-- turned into lots.
-- ---------------------------------------------------------------------------

ALTER TABLE benefits.meter_credits DROP CONSTRAINT meter_credits_reason_check,
    ADD CONSTRAINT meter_credits_reason_check
    CHECK (reason IN ('grant', 'cycle', 'expire', 'revoke', 'pack', 'top_up', 'adjustment'));
DROP INDEX benefits.meter_usage_customer_id_meter_id_id_idx;

CREATE TABLE benefits.meter_lots (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id  uuid NOT NULL,
    customer_id      uuid NOT NULL,
    meter_id         uuid NOT NULL REFERENCES benefits.meters ON DELETE CASCADE,
    source           text NOT NULL CHECK (source IN ('grant', 'cycle', 'pack', 'top_up', 'adjustment')),
    grant_id         uuid,
    units            bigint NOT NULL CHECK (units > 0),
    remaining        bigint NOT NULL CHECK (remaining >= 0 AND remaining <= units),
    expires_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (customer_id, organization_id) REFERENCES benefits.customers (id, organization_id) ON DELETE CASCADE
);
CREATE INDEX meter_lots_consume ON benefits.meter_lots (customer_id, meter_id, expires_at NULLS LAST, id)
    WHERE remaining > 0;
CREATE INDEX meter_lots_grant ON benefits.meter_lots (grant_id, id) WHERE grant_id IS NOT NULL;

ALTER TABLE benefits.meter_balances ADD COLUMN settled_consumed bigint NOT NULL DEFAULT 0;
ALTER TABLE benefits.meter_credits
    ADD COLUMN lot_id bigint,
    ADD COLUMN idempotency_key text,
    ADD COLUMN note text;
CREATE UNIQUE INDEX meter_credits_idempotency ON benefits.meter_credits (customer_id, meter_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Usage happened when it was recorded (no default while the column is
-- filled, so no stored "missing value" differs from a fresh install's).
ALTER TABLE benefits.meter_usage
    ADD COLUMN idempotency_key text,
    ADD COLUMN occurred_at timestamptz;
UPDATE benefits.meter_usage SET occurred_at = created_at;
ALTER TABLE benefits.meter_usage
    ALTER COLUMN occurred_at SET DEFAULT now(),
    ALTER COLUMN occurred_at SET NOT NULL,
    DROP CONSTRAINT meter_usage_customer_id_fkey,
    DROP CONSTRAINT meter_usage_meter_id_fkey;
CREATE FUNCTION benefits.meter_balance_deleted() RETURNS trigger
AS 'MODULE_PATHNAME', 'meter_balance_deleted'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off;
CREATE TRIGGER usage_cascade AFTER DELETE ON benefits.meter_balances
    FOR EACH ROW EXECUTE FUNCTION benefits.meter_balance_deleted();
CREATE INDEX meter_usage_history ON benefits.meter_usage (customer_id, meter_id, occurred_at);
CREATE UNIQUE INDEX meter_usage_idempotency ON benefits.meter_usage (customer_id, meter_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- record_usage gains idempotency_key and occurred_at (a new signature: 0.1.0
-- callers passing three arguments call it unchanged).
DROP FUNCTION benefits.record_usage(uuid, uuid, bigint);
CREATE FUNCTION benefits.record_usage(customer_id uuid, meter_id uuid, units bigint,
                                      idempotency_key text DEFAULT NULL, occurred_at timestamptz DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'record_usage'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off;
COMMENT ON FUNCTION benefits.record_usage(uuid, uuid, bigint, text, timestamptz) IS
    'Consume meter units and return the new balance; never below zero unless the meter allows overage (23514 otherwise); a repeated idempotency key returns the first result';

CREATE FUNCTION benefits.adjust_credits(customer_id uuid, meter_id uuid, units bigint, reason text,
                                        idempotency_key text DEFAULT NULL) RETURNS bigint
AS 'MODULE_PATHNAME', 'adjust_credits'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off;
COMMENT ON FUNCTION benefits.adjust_credits(uuid, uuid, bigint, text, text) IS
    'Top up (positive units) or correct (negative) a customer''s credits on a meter and return the new balance; never below zero unless the meter allows overage (23514 otherwise); a repeated idempotency key returns the first result';

-- Units credited and used per bucket of [since, until), empty buckets
-- included, for charts.  Buckets start at since.
CREATE FUNCTION benefits.meter_usage_history(customer_id uuid, meter_id uuid, since timestamptz, until timestamptz,
                                             bucket interval DEFAULT '1 day')
RETURNS TABLE (bucket_start timestamptz, credited bigint, used bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    buckets double precision;
    step interval;
BEGIN
    IF customer_id IS NULL OR meter_id IS NULL OR since IS NULL OR until IS NULL OR bucket IS NULL THEN
        RAISE EXCEPTION '% must not be null',
            CASE WHEN customer_id IS NULL THEN 'customer_id' WHEN meter_id IS NULL THEN 'meter_id'
                 WHEN since IS NULL THEN 'since' WHEN until IS NULL THEN 'until' ELSE 'bucket' END
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT isfinite(since) OR NOT isfinite(until) OR until <= since THEN
        RAISE EXCEPTION 'until must be a finite time after since'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('since is %s and until is %s.', since, until);
    END IF;
    IF extract(month FROM bucket) <> 0 OR extract(year FROM bucket) <> 0 OR bucket < interval '1 minute'
       OR bucket > interval '366 days' THEN
        RAISE EXCEPTION 'bucket must be between 1 minute and 366 days, without months or years'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('bucket is %s.', bucket);
    END IF;
    -- Buckets of fixed length (a day is 24 hours), as date_bin counts them.
    step := make_interval(secs => extract(epoch FROM bucket));
    buckets := extract(epoch FROM until - since) / extract(epoch FROM step);
    IF buckets > 10000 THEN
        RAISE EXCEPTION 'since to until spans more than 10000 buckets'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('%s buckets of %s.', ceil(buckets), bucket);
    END IF;
    IF NOT EXISTS (SELECT FROM benefits.meters m WHERE m.id = meter_usage_history.meter_id) THEN
        RAISE EXCEPTION 'meter_id % does not exist', meter_id USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM benefits.customers c JOIN benefits.meters m ON m.organization_id = c.organization_id
                    WHERE c.id = meter_usage_history.customer_id AND m.id = meter_usage_history.meter_id) THEN
        RAISE EXCEPTION 'customer_id % does not exist in the meter''s organization', customer_id
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    WITH used AS (
        SELECT date_bin(step, u.occurred_at, since) AS b, sum(u.units)::bigint AS units
          FROM benefits.meter_usage u
         WHERE u.customer_id = meter_usage_history.customer_id AND u.meter_id = meter_usage_history.meter_id
           AND u.occurred_at >= since AND u.occurred_at < until
         GROUP BY 1),
    credited AS (
        SELECT date_bin(step, c.created_at, since) AS b, sum(c.units)::bigint AS units
          FROM benefits.meter_credits c
         WHERE c.customer_id = meter_usage_history.customer_id AND c.meter_id = meter_usage_history.meter_id
           AND c.created_at >= since AND c.created_at < until AND c.units > 0
         GROUP BY 1)
    SELECT s.b, coalesce(credited.units, 0), coalesce(used.units, 0)
      FROM generate_series(since, until - interval '1 microsecond', step) AS s(b)
      LEFT JOIN used ON used.b = s.b
      LEFT JOIN credited ON credited.b = s.b
     ORDER BY s.b;
END
$$;
COMMENT ON FUNCTION benefits.meter_usage_history(uuid, uuid, timestamptz, timestamptz, interval) IS
    'Units credited and used per bucket from since to until (empty buckets included), for charts';

REVOKE EXECUTE ON FUNCTION benefits.record_usage(uuid, uuid, bigint, text, timestamptz),
                          benefits.adjust_credits(uuid, uuid, bigint, text, text),
                          benefits.meter_usage_history(uuid, uuid, timestamptz, timestamptz, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION benefits.record_usage(uuid, uuid, bigint, text, timestamptz),
                          benefits.adjust_credits(uuid, uuid, bigint, text, text),
                          benefits.meter_usage_history(uuid, uuid, timestamptz, timestamptz, interval)
    TO benefits_app, benefits_admin;
GRANT SELECT ON benefits.meter_lots TO benefits_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON benefits.meter_lots TO benefits_admin;
GRANT USAGE ON SEQUENCE benefits.meter_lots_id_seq TO benefits_admin;
REVOKE EXECUTE ON FUNCTION benefits.meter_balance_deleted() FROM PUBLIC;

-- 0.1.0's data.  Usage happened when it was recorded.  A balance becomes
-- lots: what is left of each live grant's last credit, as 0.1.0 counted it
-- (min(balance, last credited units), the most recent credit first), with
-- the subscription's period end as expiry when the benefit has no rollover,
-- and what no grant accounts for as one adjustment lot.  All usage so far is
-- in those amounts.
WITH g AS (
    SELECT g.id AS grant_id, g.organization_id, g.customer_id,
           (g.properties ->> 'last_credited_meter_id')::uuid AS meter_id,
           (g.properties ->> 'last_credited_units')::bigint AS units,
           (g.properties ->> 'last_credited_at')::timestamptz AS credited_at,
           g.order_id IS NOT NULL AS pack,
           CASE WHEN NOT coalesce((b.properties ->> 'rollover')::boolean, false) AND s.current_period_end > now()
                THEN s.current_period_end END AS expires_at
      FROM benefits.grants g
      JOIN benefits.benefits b ON b.id = g.benefit_id
      LEFT JOIN benefits.subscriptions s ON s.id = g.subscription_id
     WHERE g.state <> 'revoked' AND b.type = 'meter_credits' AND g.properties ? 'last_credited_meter_id'),
a AS (
    SELECT g.*, m.balance,
           sum(g.units) OVER (PARTITION BY g.customer_id, g.meter_id ORDER BY g.credited_at DESC, g.grant_id)
               - g.units AS before
      FROM g JOIN benefits.meter_balances m ON m.customer_id = g.customer_id AND m.meter_id = g.meter_id
     WHERE m.balance > 0)
INSERT INTO benefits.meter_lots (organization_id, customer_id, meter_id, source, grant_id, units, remaining,
                                 expires_at, created_at)
SELECT organization_id, customer_id, meter_id, CASE WHEN pack THEN 'pack' ELSE 'grant' END, grant_id, units,
       LEAST(units, balance - before), expires_at, credited_at
  FROM a
 WHERE balance > before
 ORDER BY credited_at, grant_id;
INSERT INTO benefits.meter_lots (organization_id, customer_id, meter_id, source, units, remaining)
SELECT m.organization_id, m.customer_id, m.meter_id, 'adjustment', m.balance - l.n, m.balance - l.n
  FROM benefits.meter_balances m
  CROSS JOIN LATERAL (SELECT coalesce(sum(x.remaining), 0) AS n FROM benefits.meter_lots x
                       WHERE x.customer_id = m.customer_id AND x.meter_id = m.meter_id) l
 WHERE m.balance > l.n;
UPDATE benefits.meter_balances SET settled_consumed = consumed;

-- ---------------------------------------------------------------------------
-- The merchant's dashboard (sql/install/70_admin.sql): admin_overview,
-- admin_page_html, browser uploads (s3_presigned_post, file_upload_form).
-- For benefits_admin only.
-- ---------------------------------------------------------------------------

-- A browser upload form for exactly SIZE bytes at KEY: {url, fields}.
CREATE FUNCTION benefits.s3_presigned_post(key text, size bigint, redirect_url text,
                                           expires interval DEFAULT NULL, signed_at timestamptz DEFAULT NULL)
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 's3_presigned_post' LANGUAGE C STABLE;
COMMENT ON FUNCTION benefits.s3_presigned_post(text, bigint, text, interval, timestamptz) IS
    'SigV4 POST policy for a browser upload of exactly size bytes at key, redirecting to redirect_url';

-- The upload form of a registered file whose content has not been uploaded:
-- key and size fixed to the file's, valid benefits.upload_url_ttl.  Storage
-- sends the browser to redirect_url afterwards; the application then calls
-- complete_file_upload.
CREATE FUNCTION benefits.file_upload_form(file_id uuid, redirect_url text)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    f benefits.files;
BEGIN
    IF file_id IS NULL OR redirect_url IS NULL THEN
        RAISE EXCEPTION 'file_id and redirect_url must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO f FROM benefits.files WHERE id = file_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'file % does not exist', file_id USING ERRCODE = '22023';
    END IF;
    IF f.uploaded_at IS NOT NULL THEN
        RAISE EXCEPTION 'file % has been uploaded already', file_id USING ERRCODE = '55000',
              HINT = 'Register a new file with benefits.create_file to replace its content.';
    END IF;
    IF f.size > 5368709120 THEN
        RAISE EXCEPTION 'file % is over 5 GiB and must be uploaded in parts', file_id USING ERRCODE = '22023';
    END IF;
    RETURN benefits.s3_presigned_post(f.storage_key, f.size, redirect_url,
                                      current_setting('benefits.upload_url_ttl')::interval, now());
END
$$;

-- Everything the dashboard shows about an organization, as one document:
-- its products with their benefits in order, the benefits with their live
-- grants, the files and their upload state, delivery (jobs by kind and
-- state, dead jobs, disabled endpoints, grants waiting for an account or
-- failing, manual fulfillments waiting when that view exists) and usage
-- (validation counters, activations near their limit, low meter balances).
-- Lists are capped at 200 rows, usage lists at 10.
CREATE FUNCTION benefits.admin_overview(organization_id uuid)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    org benefits.organizations;
    fulfillments jsonb;
    result jsonb;
BEGIN
    IF organization_id IS NULL THEN
        RAISE EXCEPTION 'organization_id must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO org FROM benefits.organizations o WHERE o.id = admin_overview.organization_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'organization % does not exist', organization_id USING ERRCODE = '22023';
    END IF;
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'grant_id', p.grant_id, 'since', benefits.rfc3339(p.since),
               'customer', coalesce(p.customer_name, p.customer_email),
               'benefit', p.benefit_description) ORDER BY p.since, p.grant_id), '[]')
      INTO fulfillments
      FROM (SELECT * FROM benefits.pending_fulfillments p
             WHERE p.organization_id = admin_overview.organization_id ORDER BY p.since, p.grant_id LIMIT 200) p;

    SELECT jsonb_build_object(
        'organization', jsonb_build_object('id', org.id, 'name', org.name),
        'products', (
            SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'id', p.id, 'name', p.name,
                       'benefits', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                                'id', b.id, 'type', b.type, 'description', b.description)
                                            ORDER BY pb.position, b.id), '[]')
                                      FROM benefits.product_benefits pb
                                      JOIN benefits.benefits b ON b.id = pb.benefit_id
                                     WHERE pb.product_id = p.id))
                   ORDER BY p.name, p.id), '[]')
              FROM (SELECT * FROM benefits.products p
                     WHERE p.organization_id = admin_overview.organization_id
                     ORDER BY p.name, p.id LIMIT 200) p),
        'benefits', (
            SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'id', b.id, 'type', b.type, 'description', b.description,
                       'properties', b.properties,
                       'live_grants', (SELECT count(*) FROM benefits.grants g
                                        WHERE g.benefit_id = b.id AND g.state = 'active'),
                       'waiting_grants', (SELECT count(*) FROM benefits.grants g
                                           WHERE g.benefit_id = b.id AND g.state = 'created'))
                   ORDER BY b.created_at, b.id), '[]')
              FROM (SELECT * FROM benefits.benefits b
                     WHERE b.organization_id = admin_overview.organization_id AND b.deleted_at IS NULL
                     ORDER BY b.created_at, b.id LIMIT 200) b),
        'files', (
            SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'id', f.id, 'name', f.name, 'size', f.size, 'mime_type', f.mime_type,
                       'state', CASE WHEN f.archived THEN 'archived'
                                     WHEN NOT f.enabled THEN 'disabled'
                                     WHEN f.uploaded_at IS NULL THEN 'waiting_for_upload'
                                     ELSE 'uploaded' END,
                       'uploaded_at', benefits.rfc3339(f.uploaded_at))
                   ORDER BY f.created_at, f.id), '[]')
              FROM (SELECT * FROM benefits.files f
                     WHERE f.organization_id = admin_overview.organization_id
                     ORDER BY f.created_at, f.id LIMIT 200) f),
        'delivery', jsonb_build_object(
            'jobs', (
                SELECT coalesce(jsonb_agg(jsonb_build_object('kind', j.kind, 'state', j.state, 'count', j.n)
                                          ORDER BY j.kind, j.state), '[]')
                  FROM (SELECT o.kind, o.state, count(*) AS n FROM benefits.outbox o
                         WHERE o.organization_id = admin_overview.organization_id
                         GROUP BY o.kind, o.state) j),
            'dead_jobs', (
                SELECT coalesce(jsonb_agg(jsonb_build_object(
                           'id', d.id, 'kind', d.kind, 'action', d.action, 'event_type', d.event_type,
                           'attempts', d.attempts, 'last_status', d.last_status, 'last_error', d.last_error,
                           'finished_at', benefits.rfc3339(d.finished_at))
                       ORDER BY d.id DESC), '[]')
                  FROM (SELECT * FROM benefits.dead_jobs d
                         WHERE d.organization_id = admin_overview.organization_id
                         ORDER BY d.id DESC LIMIT 200) d),
            'disabled_endpoints', (
                SELECT coalesce(jsonb_agg(jsonb_build_object(
                           'id', e.id, 'url', e.url, 'disabled_at', benefits.rfc3339(e.disabled_at),
                           'reason', e.disabled_reason)
                       ORDER BY e.disabled_at, e.id), '[]')
                  FROM (SELECT * FROM benefits.webhook_endpoints e
                         WHERE e.organization_id = admin_overview.organization_id AND NOT e.enabled
                         ORDER BY e.disabled_at, e.id LIMIT 200) e),
            'attention_grants', (
                SELECT coalesce(jsonb_agg(jsonb_build_object(
                           'id', g.id, 'state', g.state, 'benefit', b.description, 'type', b.type,
                           'customer', coalesce(c.name, c.email, c.external_id), 'error', g.error)
                       ORDER BY g.granted_at NULLS FIRST, g.id), '[]')
                  FROM (SELECT * FROM benefits.grants g
                         WHERE g.organization_id = admin_overview.organization_id
                           AND g.state <> 'revoked' AND g.error IS NOT NULL
                         ORDER BY g.id LIMIT 200) g
                  JOIN benefits.benefits b ON b.id = g.benefit_id
                  JOIN benefits.customers c ON c.id = g.customer_id),
            'pending_fulfillments', fulfillments),
        'usage', jsonb_build_object(
            'validations_by_day', (
                SELECT coalesce(jsonb_agg(jsonb_build_object('day', to_char(d.day, 'YYYY-MM-DD'),
                                                             'keys', coalesce(v.keys, 0),
                                                             'validations', coalesce(h.validations, 0))
                                          ORDER BY d.day), '[]')
                  FROM generate_series((now() AT TIME ZONE 'UTC')::date - 13,
                                       (now() AT TIME ZONE 'UTC')::date, interval '1 day') AS d(day)
                  LEFT JOIN (SELECT (k.last_validated_at AT TIME ZONE 'UTC')::date AS day, count(*) AS keys
                               FROM benefits.license_keys k
                              WHERE k.organization_id = admin_overview.organization_id
                                AND k.last_validated_at >= now() - interval '14 days'
                              GROUP BY 1) v ON v.day = d.day::date
                  LEFT JOIN benefits.license_validations_daily h
                         ON h.organization_id = admin_overview.organization_id AND h.day = d.day::date),
            'top_keys', (
                SELECT coalesce(jsonb_agg(jsonb_build_object(
                           'id', k.id, 'display_key', k.display_key, 'status', k.status,
                           'customer', coalesce(c.name, c.email, c.external_id),
                           'validations', k.validations,
                           'last_validated_at', benefits.rfc3339(k.last_validated_at))
                       ORDER BY k.validations DESC, k.id), '[]')
                  FROM (SELECT * FROM benefits.license_keys k
                         WHERE k.organization_id = admin_overview.organization_id AND k.validations > 0
                         ORDER BY k.validations DESC, k.id LIMIT 10) k
                  JOIN benefits.customers c ON c.id = k.customer_id),
            'activations_near_limit', (
                SELECT coalesce(jsonb_agg(jsonb_build_object(
                           'id', k.id, 'display_key', k.display_key,
                           'customer', coalesce(c.name, c.email, c.external_id),
                           'activations', k.activations, 'limit', k.limit_activations)
                       ORDER BY k.activations::numeric / k.limit_activations DESC, k.id), '[]')
                  FROM (SELECT k.* FROM (
                          SELECT k.*, (SELECT count(*) FROM benefits.license_key_activations a
                                        WHERE a.license_key_id = k.id AND a.deactivated_at IS NULL) AS activations
                            FROM benefits.license_keys k
                           WHERE k.organization_id = admin_overview.organization_id
                             AND k.limit_activations IS NOT NULL AND k.status = 'granted') k
                         WHERE k.activations * 5 >= k.limit_activations * 4
                         ORDER BY k.activations::numeric / k.limit_activations DESC, k.id LIMIT 10) k
                  JOIN benefits.customers c ON c.id = k.customer_id),
            'low_balances', (
                SELECT coalesce(jsonb_agg(jsonb_build_object(
                           'customer', coalesce(c.name, c.email, c.external_id), 'meter', m.name,
                           'balance', mb.balance, 'threshold', mb.low_balance_threshold,
                           'credited', mb.credited)
                       ORDER BY mb.balance, m.name, c.id), '[]')
                  FROM (SELECT * FROM benefits.meter_balances mb
                         WHERE mb.organization_id = admin_overview.organization_id
                           AND mb.low_balance_threshold IS NOT NULL AND mb.balance <= mb.low_balance_threshold
                         ORDER BY mb.balance, mb.meter_id, mb.customer_id LIMIT 10) mb
                  JOIN benefits.meters m ON m.id = mb.meter_id
                  JOIN benefits.customers c ON c.id = mb.customer_id)))
      INTO result;
    RETURN result;
END
$$;

-- The dashboard page of one section: overview, products, benefits, files,
-- delivery or usage.  Forms post to action_url with an action field naming
-- the SQL function and the csrf_token given.  params: upload_redirect_url
-- (where storage sends the browser after an upload; without it the files
-- section shows no upload forms) and notice (a line shown at the top).
CREATE FUNCTION benefits.admin_page_html(organization_id uuid, section text DEFAULT 'overview',
                                         action_url text DEFAULT NULL, csrf_token text DEFAULT NULL,
                                         params jsonb DEFAULT '{}')
    RETURNS text
    AS 'MODULE_PATHNAME', 'admin_page_html' LANGUAGE C STABLE
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION benefits.admin_page_html(uuid, text, text, text, jsonb) IS
    'The merchant dashboard as a complete, self-contained HTML page';

REVOKE EXECUTE ON FUNCTION
    benefits.s3_presigned_post(text, bigint, text, interval, timestamptz),
    benefits.file_upload_form(uuid, text), benefits.admin_overview(uuid),
    benefits.admin_page_html(uuid, text, text, text, jsonb)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    benefits.s3_presigned_post(text, bigint, text, interval, timestamptz),
    benefits.file_upload_form(uuid, text), benefits.admin_overview(uuid),
    benefits.admin_page_html(uuid, text, text, text, jsonb)
    TO benefits_admin;

-- ---------------------------------------------------------------------------
-- Validations per organization and day (UTC), added by each flush: their
-- history for the merchant's dashboard (license_keys keeps the totals).
CREATE TABLE benefits.license_validations_daily (
    organization_id  uuid NOT NULL REFERENCES benefits.organizations ON DELETE CASCADE,
    day              date NOT NULL,
    validations      bigint NOT NULL CHECK (validations >= 0),
    PRIMARY KEY (organization_id, day)
);
REVOKE ALL ON benefits.license_validations_daily FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON benefits.license_validations_daily TO benefits_admin;

-- ---------------------------------------------------------------------------
-- Limits at the edges (README, "Limits"): names, external ids, emails and
-- customer metadata are bounded, since the application writes these tables
-- directly and their values go into every payload, email and page; and a
-- key's activation limit is at most 1000.  An upgrade stops here, naming the
-- constraint, if a stored row is past one of them.
ALTER TABLE benefits.organizations
    ADD CONSTRAINT organizations_name_length CHECK (length(name) <= 256);
ALTER TABLE benefits.products
    ADD CONSTRAINT products_name_length CHECK (length(name) <= 256),
    ADD CONSTRAINT products_external_id_length CHECK (length(external_id) <= 256);
ALTER TABLE benefits.customers
    ADD CONSTRAINT customers_external_id_length CHECK (length(external_id) <= 256),
    ADD CONSTRAINT customers_email_length CHECK (length(email) <= 254),
    ADD CONSTRAINT customers_name_length CHECK (length(name) <= 2048),
    ADD CONSTRAINT customers_metadata_size CHECK (octet_length(metadata::text) <= 65536);
ALTER TABLE benefits.meters
    ADD CONSTRAINT meters_name_length CHECK (length(name) <= 256);

CREATE OR REPLACE FUNCTION benefits.update_license_key(license_key_id uuid,
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

-- Validation counts of hot standbys, sent by their forwarder.
DO $roles$
BEGIN
    -- the role a hot standby's forwarder connects as is granted this one
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'benefits_replica') THEN
        CREATE ROLE benefits_replica NOLOGIN;
    END IF;
END
$roles$;
GRANT USAGE ON SCHEMA benefits TO benefits_replica;

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
GRANT SELECT ON benefits.validation_count_senders TO benefits_admin;
GRANT EXECUTE ON FUNCTION benefits.receive_validation_counts(uuid, bigint, uuid[], bigint[], timestamptz[])
    TO benefits_admin;

-- The claim's check for an earlier job of the same chain says "not done and
-- not dead", so that it can use only this index, never outbox_due.
DROP INDEX benefits.outbox_chain;
CREATE INDEX outbox_chain ON benefits.outbox (chain_key, id)
    WHERE chain_key IS NOT NULL AND state <> 'done' AND state <> 'dead';
