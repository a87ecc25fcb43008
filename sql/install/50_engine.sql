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
-- credit packs, top-ups and adjustments, expiry of unused credits, removal
-- on revoke).  units is signed.
CREATE TABLE benefits.meter_credits (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id  uuid NOT NULL,
    customer_id      uuid NOT NULL,
    meter_id         uuid NOT NULL REFERENCES benefits.meters ON DELETE CASCADE,
    -- No foreign key: the handler credits before the grant row is written.
    grant_id         uuid,
    reason           text NOT NULL CHECK (reason IN ('grant', 'cycle', 'expire', 'revoke', 'pack', 'top_up', 'adjustment')),
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

-- idempotency_key: a retry with the same key returns the first call's
-- result; occurred_at: when the usage happened (default now).
CREATE FUNCTION benefits.record_usage(customer_id uuid, meter_id uuid, units bigint,
                                      idempotency_key text DEFAULT NULL, occurred_at timestamptz DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'record_usage'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off;

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
                          benefits.record_usage(uuid, uuid, bigint, text, timestamptz)
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
-- value of null ignores rows in that status.  The product is the column
-- product_column ('product' when neither is given) or the value of
-- product_expression, a SQL expression over the row's columns held to the
-- rules of track_expr.c (built-in immutable functions only, evaluated as the
-- role that tracked the table).
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

-- Attach the tracking trigger to an application's orders (payments) table.
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

-- Detach the tracking trigger; the subscriptions and orders it wrote stay.
CREATE FUNCTION benefits.untrack(source regclass) RETURNS boolean
AS 'MODULE_PATHNAME', 'untrack'
LANGUAGE C STRICT SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION benefits.track_trigger() RETURNS trigger
AS 'MODULE_PATHNAME', 'track_trigger'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off;

COMMENT ON FUNCTION benefits.run_maintenance() IS
    'Apply every grant change due by the clock (canceled subscriptions past their period end, past_due/unpaid past the grace period). The background worker calls it periodically; with pg_cron: SELECT cron.schedule(''benefits-maintenance'', ''* * * * *'', ''SELECT benefits.run_maintenance()'')';
COMMENT ON FUNCTION benefits.record_usage(uuid, uuid, bigint, text, timestamptz) IS
    'Consume meter units and return the new balance; never below zero unless the meter allows overage (23514 otherwise); a repeated idempotency key returns the first result';
COMMENT ON FUNCTION benefits.meter_balance(uuid, uuid) IS
    'The customer''s balance on a meter (0 before any credit)';
COMMENT ON FUNCTION benefits.enqueue_grant_event(uuid, text, jsonb) IS
    'Write a benefit_grant.* webhook event of a grant to every subscribed endpoint (the worker calls it when a provider confirms)';
COMMENT ON FUNCTION benefits.track_subscriptions(regclass, uuid, text, text, text, text, jsonb, text, text, text, text) IS
    'Drive grants from an application''s own subscriptions table (Stripe statuses by default; the product from a column or an expression)';
COMMENT ON FUNCTION benefits.track_orders(regclass, uuid, text, text, text, text, jsonb, text, text, text, text) IS
    'Drive grants from an application''s own orders or payments table (the product from a column or an expression)';
