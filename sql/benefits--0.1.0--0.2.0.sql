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
