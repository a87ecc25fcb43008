-- Existing application tables drive grants: a Stripe subscriptions table
-- synced into PostgreSQL (text ids, status, the customer id in "customer").
INSERT INTO benefits.organizations (id, name) VALUES ('7a000000-0000-0000-0000-00000000000a', 'Track Org');
INSERT INTO benefits.products (id, organization_id, name, external_id) VALUES
    ('7a000000-0000-0000-0000-0000000000b1', '7a000000-0000-0000-0000-00000000000a', 'Pro', 'prod_Pro'),
    ('7a000000-0000-0000-0000-0000000000b2', '7a000000-0000-0000-0000-00000000000a', 'Book', 'prod_Book');
INSERT INTO benefits.benefits (id, organization_id, type, description, properties) VALUES
    ('7a000000-0000-0000-0000-0000000000c1', '7a000000-0000-0000-0000-00000000000a', 'custom', 'pro-note', '{"note": "Pro"}'),
    ('7a000000-0000-0000-0000-0000000000c2', '7a000000-0000-0000-0000-00000000000a', 'custom', 'book-note', '{"note": "Book"}');
INSERT INTO benefits.product_benefits (product_id, benefit_id, position) VALUES
    ('7a000000-0000-0000-0000-0000000000b1', '7a000000-0000-0000-0000-0000000000c1', 1),
    ('7a000000-0000-0000-0000-0000000000b2', '7a000000-0000-0000-0000-0000000000c2', 1);
INSERT INTO benefits.customers (id, organization_id, external_id) VALUES
    ('7a000000-0000-0000-0000-0000000000d1', '7a000000-0000-0000-0000-00000000000a', 'cus_Alice');
INSERT INTO benefits.webhook_endpoints (organization_id, url, secret, events) VALUES
    ('7a000000-0000-0000-0000-00000000000a', 'https://hooks.example.com/track', 'whsec_dGVzdA==',
     ARRAY['benefit_grant.created', 'benefit_grant.revoked']);

CREATE SCHEMA stripe;
CREATE TABLE stripe.subscriptions (
    id                    text PRIMARY KEY,
    object                text DEFAULT 'subscription',
    customer              text NOT NULL,
    status                text NOT NULL,
    current_period_end    integer,
    cancel_at_period_end  boolean DEFAULT false,
    items                 jsonb,
    -- The product of the first item, as a column the trigger can read.
    product               text GENERATED ALWAYS AS (items #>> '{data,0,price,product}') STORED
);

SELECT benefits.track_subscriptions('stripe.subscriptions', '7a000000-0000-0000-0000-00000000000a',
    current_period_end_column => 'current_period_end', cancel_at_period_end_column => 'cancel_at_period_end');
SELECT kind, settings->'status_map'->>'paused' AS paused, settings->>'customer_column' AS customer_column
  FROM benefits.tracked_tables WHERE source = 'stripe.subscriptions'::regclass;

CREATE VIEW tracked_grants AS
    SELECT s.tracked_id, s.status, b.description AS benefit, g.state
      FROM benefits.subscriptions s
      JOIN benefits.grants g ON g.subscription_id = s.id
      JOIN benefits.benefits b ON b.id = g.benefit_id
     WHERE s.organization_id = '7a000000-0000-0000-0000-00000000000a'
     ORDER BY 1, 3;

-- The application writes its own table; grants follow.
INSERT INTO stripe.subscriptions (id, customer, status, current_period_end, items) VALUES
    ('sub_1', 'cus_Alice', 'active', extract(epoch FROM now() + interval '30 days')::integer,
     '{"data": [{"price": {"product": "prod_Pro"}}]}');
SELECT * FROM tracked_grants;
SELECT current_period_end > now() + interval '29 days' AS period_end_from_epoch
  FROM benefits.subscriptions WHERE tracked_id = 'sub_1';
-- Canceled at period end: kept while the period runs.
UPDATE stripe.subscriptions SET status = 'canceled' WHERE id = 'sub_1';
SELECT * FROM tracked_grants;
-- Period over.
UPDATE stripe.subscriptions SET current_period_end = extract(epoch FROM now() - interval '1 day')::integer WHERE id = 'sub_1';
SELECT * FROM tracked_grants;
-- paused maps to unpaid: revoked after the grace period (0 days).
UPDATE stripe.subscriptions SET status = 'active' WHERE id = 'sub_1';
UPDATE stripe.subscriptions SET status = 'paused' WHERE id = 'sub_1';
SELECT * FROM tracked_grants;
-- Product change through the items.
UPDATE stripe.subscriptions SET status = 'active', items = '{"data": [{"price": {"product": "prod_Book"}}]}' WHERE id = 'sub_1';
SELECT * FROM tracked_grants;
-- Deleting the application's row revokes.
SELECT id AS sub_1_mirror FROM benefits.subscriptions WHERE tracked_id = 'sub_1' \gset
DELETE FROM stripe.subscriptions WHERE id = 'sub_1';
SELECT count(*) AS mirrors FROM benefits.subscriptions WHERE tracked_id = 'sub_1';
SELECT event_type, count(*) FROM benefits.outbox WHERE organization_id = '7a000000-0000-0000-0000-00000000000a'
 GROUP BY 1 ORDER BY 1;
-- The mirror's grants stay, revoked, as history: the reference to the
-- deleted mirror cleared, its id kept in source_subscription_id.
SELECT b.description AS benefit, g.state, g.revoked_at IS NOT NULL AS revoked_at_set,
       g.subscription_id IS NULL AS reference_cleared, g.source_subscription_id = :'sub_1_mirror' AS source_kept
  FROM benefits.grants g JOIN benefits.benefits b ON b.id = g.benefit_id
 WHERE g.customer_id = '7a000000-0000-0000-0000-0000000000d1'
 ORDER BY 1;
-- The last revoked event (book-note, at the delete) names the mirror.
SELECT payload #>> '{data,benefit,description}' AS benefit,
       payload #>> '{data,subscription_id}' = :'sub_1_mirror' AS names_the_mirror
  FROM benefits.outbox WHERE organization_id = '7a000000-0000-0000-0000-00000000000a'
   AND event_type = 'benefit_grant.revoked'
 ORDER BY id DESC LIMIT 1;

-- Unknown customer, product or status: a clear error and nothing written.
INSERT INTO stripe.subscriptions (id, customer, status, items) VALUES
    ('sub_2', 'cus_Nobody', 'active', '{"data": [{"price": {"product": "prod_Pro"}}]}');
INSERT INTO stripe.subscriptions (id, customer, status, items) VALUES
    ('sub_2', 'cus_Alice', 'active', '{"data": [{"price": {"product": "prod_Gone"}}]}');
INSERT INTO stripe.subscriptions (id, customer, status, items) VALUES
    ('sub_2', 'cus_Alice', 'frozen', '{"data": [{"price": {"product": "prod_Pro"}}]}');
SELECT count(*) FROM stripe.subscriptions;

-- With on_unknown => 'skip' the row is written, skipped and logged.
SELECT benefits.track_subscriptions('stripe.subscriptions', '7a000000-0000-0000-0000-00000000000a', on_unknown => 'skip');
INSERT INTO stripe.subscriptions (id, customer, status, items) VALUES
    ('sub_2', 'cus_Nobody', 'active', '{"data": [{"price": {"product": "prod_Pro"}}]}');
SELECT row_id, reason FROM benefits.tracking_skips ORDER BY id;
SELECT count(*) AS mirrors FROM benefits.subscriptions WHERE tracked_id = 'sub_2';

-- A custom status map: a null value ignores the status.
SELECT benefits.track_subscriptions('stripe.subscriptions', '7a000000-0000-0000-0000-00000000000a',
    status_map => '{"live": "active", "ended": "revoked", "draft": null}');
INSERT INTO stripe.subscriptions (id, customer, status, items) VALUES
    ('sub_3', 'cus_Alice', 'draft', '{"data": [{"price": {"product": "prod_Pro"}}]}');
SELECT count(*) AS mirrors FROM benefits.subscriptions WHERE tracked_id = 'sub_3';
UPDATE stripe.subscriptions SET status = 'live' WHERE id = 'sub_3';
SELECT * FROM tracked_grants WHERE tracked_id = 'sub_3';
UPDATE stripe.subscriptions SET status = 'ended' WHERE id = 'sub_3';
SELECT * FROM tracked_grants WHERE tracked_id = 'sub_3';

-- Orders: a Stripe charges table.
CREATE TABLE stripe.charges (
    id        text PRIMARY KEY,
    customer  text,
    status    text NOT NULL,
    product   text
);
SELECT benefits.track_orders('stripe.charges', '7a000000-0000-0000-0000-00000000000a');
INSERT INTO stripe.charges VALUES ('ch_1', 'cus_Alice', 'pending', 'prod_Book');
SELECT o.status, count(g.*) AS grants FROM benefits.orders o LEFT JOIN benefits.grants g ON g.order_id = o.id
 WHERE o.tracked_id = 'ch_1' GROUP BY 1;
UPDATE stripe.charges SET status = 'succeeded' WHERE id = 'ch_1';
SELECT o.status, o.billing_reason, g.state FROM benefits.orders o JOIN benefits.grants g ON g.order_id = o.id
 WHERE o.tracked_id = 'ch_1';
UPDATE stripe.charges SET status = 'refunded' WHERE id = 'ch_1';
SELECT o.status, g.state FROM benefits.orders o JOIN benefits.grants g ON g.order_id = o.id WHERE o.tracked_id = 'ch_1';
-- failed is ignored by the default map.
INSERT INTO stripe.charges VALUES ('ch_2', 'cus_Alice', 'failed', 'prod_Book');
SELECT count(*) AS mirrors FROM benefits.orders WHERE tracked_id = 'ch_2';
-- Deleting a paid charge revokes its grant and keeps it, revoked, with the
-- deleted order's id in source_order_id.
INSERT INTO stripe.charges VALUES ('ch_4', 'cus_Alice', 'paid', 'prod_Pro');
SELECT id AS ch_4_mirror FROM benefits.orders WHERE tracked_id = 'ch_4' \gset
DELETE FROM stripe.charges WHERE id = 'ch_4';
SELECT count(*) AS mirrors FROM benefits.orders WHERE tracked_id = 'ch_4';
SELECT b.description AS benefit, g.state, g.order_id IS NULL AS reference_cleared
  FROM benefits.grants g JOIN benefits.benefits b ON b.id = g.benefit_id
 WHERE g.source_order_id = :'ch_4_mirror';
SELECT event_type AS events_naming_the_order
  FROM benefits.outbox WHERE organization_id = '7a000000-0000-0000-0000-00000000000a'
   AND payload #>> '{data,order_id}' = :'ch_4_mirror'
 ORDER BY id;

-- Argument errors.
SELECT benefits.track_subscriptions('stripe.subscriptions', '7a000000-0000-0000-0000-00000000000a', customer_column => 'customer_id');
SELECT benefits.track_subscriptions('stripe.subscriptions', '7a000000-0000-0000-0000-00000000000a', status_map => '{"active": "live"}');
SELECT benefits.track_subscriptions('stripe.subscriptions', '7a000000-0000-0000-0000-00000000000a', status_map => '["active"]');
SELECT benefits.track_subscriptions('stripe.subscriptions', '7a000000-0000-0000-0000-00000000000a', on_unknown => 'ignore');
SELECT benefits.track_subscriptions('stripe.subscriptions', '7a000000-0000-0000-0000-000000000000');
SELECT benefits.track_subscriptions('benefits.subscriptions', '7a000000-0000-0000-0000-00000000000a');
SELECT benefits.track_orders('stripe.charges', NULL);

-- untrack: the trigger goes, the mirrors stay.
SELECT benefits.untrack('stripe.charges');
SELECT benefits.untrack('stripe.charges');
INSERT INTO stripe.charges VALUES ('ch_3', 'cus_Nobody', 'succeeded', 'prod_Book');
SELECT count(*) AS orders FROM benefits.orders WHERE organization_id = '7a000000-0000-0000-0000-00000000000a';

SELECT benefits.untrack('stripe.subscriptions');

-- Columns must be able to hold what the trigger reads from them: an external
-- id is text-like, an integer or a uuid (22023 naming the argument).
CREATE SCHEMA stripe_sync;
CREATE TYPE stripe_sync.pair AS (a text, b text);
CREATE TABLE stripe_sync.shapes (
    id text PRIMARY KEY, customer text, status text,
    t text, v varchar(20), c char(8), i integer, b bigint, s smallint, u uuid,
    j json, jb jsonb, arr text[], comp stripe_sync.pair, by bytea, num numeric, ts timestamptz, flag boolean
);
CREATE FUNCTION pg_temp.try_track(args text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        EXECUTE format('SELECT benefits.track_orders(%L, %L, %s)', 'stripe_sync.shapes',
                       '7a000000-0000-0000-0000-00000000000a', args);
        RAISE EXCEPTION 'accepted';
    EXCEPTION WHEN OTHERS THEN
        RETURN CASE WHEN SQLERRM = 'accepted' THEN 'accepted' ELSE SQLSTATE || ': ' || SQLERRM END;
    END;
END
$$;
SELECT c AS product_column, pg_temp.try_track(format('product_column => %L', c)) AS result
  FROM unnest(ARRAY['t', 'v', 'c', 'i', 'b', 's', 'u', 'j', 'jb', 'arr', 'comp', 'by', 'num', 'ts', 'flag']) c;
SELECT pg_temp.try_track('customer_column => ''jb'', product_column => ''t''') AS customer_jsonb,
       pg_temp.try_track('id_column => ''arr'', product_column => ''t''') AS id_array,
       pg_temp.try_track('subscription_column => ''comp'', product_column => ''t''') AS subscription_composite,
       pg_temp.try_track('status_column => ''jb'', product_column => ''t''') AS status_jsonb,
       pg_temp.try_track('billing_reason_column => ''i'', product_column => ''t''') AS billing_reason_integer;
SELECT benefits.track_subscriptions('stripe_sync.shapes', '7a000000-0000-0000-0000-00000000000a',
    product_column => 't', current_period_end_column => 'jb');
SELECT benefits.track_subscriptions('stripe_sync.shapes', '7a000000-0000-0000-0000-00000000000a',
    product_column => 't', cancel_at_period_end_column => 'num');
-- No product column and no product_expression: the default column "product".
SELECT benefits.track_subscriptions('stripe_sync.shapes', '7a000000-0000-0000-0000-00000000000a');

-- A Stripe-synced subscriptions table as a sync tool writes it: an enum
-- status, integer epoch seconds, the product inside the jsonb items.
CREATE TYPE stripe_sync.subscription_status AS ENUM
    ('incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'canceled', 'unpaid', 'paused');
CREATE TABLE stripe_sync.subscriptions (
    id                    text PRIMARY KEY,
    customer              text NOT NULL,
    status                stripe_sync.subscription_status NOT NULL,
    current_period_end    integer,
    cancel_at_period_end  boolean DEFAULT false,
    items                 jsonb
);
-- A jsonb column cannot be the product ...
SELECT benefits.track_subscriptions('stripe_sync.subscriptions', '7a000000-0000-0000-0000-00000000000a',
    product_column => 'items');
-- ... an expression over the row can, and not together with a column.
SELECT benefits.track_subscriptions('stripe_sync.subscriptions', '7a000000-0000-0000-0000-00000000000a',
    product_column => 'items', product_expression => $$items->'data'->0->'price'->>'product'$$);
SELECT benefits.track_subscriptions('stripe_sync.subscriptions', '7a000000-0000-0000-0000-00000000000a',
    product_expression => $$items->'data'->0->'price'->>'product'$$,
    current_period_end_column => 'current_period_end', cancel_at_period_end_column => 'cancel_at_period_end');
SELECT settings->>'product_column' AS product_column, settings->>'product_expression' AS product_expression,
       settings->'expression_columns' ? 'items' AS reads_items, settings->>'expression_role' = 'postgres'::regrole::oid::text AS role
  FROM benefits.tracked_tables WHERE source = 'stripe_sync.subscriptions'::regclass;
CREATE VIEW sync_grants AS
    SELECT s.tracked_id, s.status, s.current_period_end > now() AS period_running, b.description AS benefit, g.state
      FROM benefits.subscriptions s
      JOIN benefits.tracked_tables t ON t.id = s.tracked_table AND t.source = 'stripe_sync.subscriptions'::regclass
      JOIN benefits.grants g ON g.subscription_id = s.id
      JOIN benefits.benefits b ON b.id = g.benefit_id
     ORDER BY 1, 4;
INSERT INTO stripe_sync.subscriptions VALUES
    ('sub_s1', 'cus_Alice', 'active', extract(epoch FROM now() + interval '30 days')::integer, false,
     '{"object": "list", "data": [{"id": "si_1", "price": {"id": "price_1", "product": "prod_Pro"}}]}');
SELECT * FROM sync_grants;
SELECT current_period_end BETWEEN now() + interval '29 days' AND now() + interval '31 days' AS epoch_converted
  FROM benefits.subscriptions WHERE tracked_id = 'sub_s1';
-- Canceled (enum value), period still running: kept; then the period ends.
UPDATE stripe_sync.subscriptions SET status = 'canceled' WHERE id = 'sub_s1';
SELECT * FROM sync_grants;
UPDATE stripe_sync.subscriptions SET current_period_end = extract(epoch FROM now() - interval '1 hour')::integer
 WHERE id = 'sub_s1';
SELECT * FROM sync_grants;
-- Renewed onto another product: the expression follows the items.
UPDATE stripe_sync.subscriptions
   SET status = 'active', current_period_end = extract(epoch FROM now() + interval '30 days')::integer,
       items = '{"data": [{"price": {"product": "prod_Book"}}]}'
 WHERE id = 'sub_s1';
SELECT * FROM sync_grants;
-- A product the expression cannot find (no items) is an unknown product.
INSERT INTO stripe_sync.subscriptions (id, customer, status, items) VALUES ('sub_s2', 'cus_Alice', 'active', NULL);
-- Many rows in one statement.
INSERT INTO stripe_sync.subscriptions (id, customer, status, items)
SELECT 'sub_m' || n, 'cus_Alice', 'trialing', jsonb_build_object('data', jsonb_build_array(
           jsonb_build_object('price', jsonb_build_object('product', CASE WHEN n % 2 = 0 THEN 'prod_Pro' ELSE 'prod_Book' END))))
  FROM generate_series(1, 4) n;
SELECT p.external_id, count(*) FROM benefits.subscriptions s JOIN benefits.products p ON p.id = s.product_id
 WHERE s.tracked_id LIKE 'sub_m%' GROUP BY 1 ORDER BY 1;

-- What product_expression may be: one scalar expression over the row's
-- columns, with built-in immutable functions and types only.
CREATE DOMAIN stripe_sync.items_doc AS jsonb CHECK (VALUE ? 'data');
CREATE FUNCTION stripe_sync.product_of(items jsonb) RETURNS text LANGUAGE sql IMMUTABLE
    RETURN items->'data'->0->'price'->>'product';
CREATE FUNCTION pg_temp.try_expression(expr text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        PERFORM benefits.track_subscriptions('stripe_sync.subscriptions', '7a000000-0000-0000-0000-00000000000a',
                                             product_expression => expr);
        RAISE EXCEPTION 'accepted';
    EXCEPTION WHEN OTHERS THEN
        RETURN CASE WHEN SQLERRM = 'accepted' THEN 'accepted' ELSE SQLSTATE || ': ' || SQLERRM END;
    END;
END
$$;
SELECT e AS product_expression, pg_temp.try_expression(e) AS result
  FROM unnest(ARRAY[
    $$coalesce(items #>> '{data,0,price,product}', 'prod_Pro')$$,
    $$lower(items->'data'->0->'price'->>'product')$$,
    $$CASE WHEN status = 'active' THEN 'prod_Pro' ELSE id END$$,
    $$items->'data'->0->'price'->'product'$$,
    $$(SELECT 'prod_Pro')$$,
    $$items->>'x' IN (SELECT external_id FROM benefits.products)$$,
    $$1; DROP TABLE stripe_sync.subscriptions$$,
    $$id FROM stripe.charges$$,
    $$id AS product$$,
    $$*$$,
    $$now()::text$$,
    $$random()::text$$,
    $$current_user$$,
    $$pg_read_file('/etc/passwd')$$,
    $$query_to_xml('SELECT 1', true, true, '')::text$$,
    $$table_to_xml('stripe_sync.subscriptions', true, true, '')::text$$,
    $$stripe_sync.product_of(items)$$,
    $$(items::stripe_sync.items_doc)->>'data'$$,
    $$max(NULL::stripe_sync.items_doc)::text$$,
    $$items OPERATOR(stripe_sync.->>) 'x'$$,
    $$max(id)$$,
    $$jsonb_array_elements(items->'data')->>'id'$$,
    $$xmin::text$$,
    $$subscriptions::text$$,
    $$charges.id$$,
    $$$1$$,
    $$nextval('benefits.tracking_skips_id_seq')::text$$,
    $$status$$
  ]) e;
-- A column of a user-defined type is refused before the expression is
-- analyzed (analysis applies input functions of the types it meets).
SELECT pg_temp.try_track($$product_expression => 'max(comp)::text'$$) AS user_type_column;
-- Errors inside the expression point into it.
SELECT benefits.track_subscriptions('stripe_sync.subscriptions', '7a000000-0000-0000-0000-00000000000a',
    product_expression => $$items->'data'->>$$);
SELECT benefits.track_subscriptions('stripe_sync.subscriptions', '7a000000-0000-0000-0000-00000000000a',
    product_expression => $$items->>'data' || no_such_column$$);

-- Checked with the caller's privileges and evaluated as the caller: a role
-- that may not read items cannot track with an expression reading it.
CREATE ROLE regress_track_admin;
GRANT benefits_admin TO regress_track_admin;
GRANT USAGE ON SCHEMA stripe_sync TO regress_track_admin;
GRANT TRIGGER, SELECT (id, customer, status, current_period_end, cancel_at_period_end)
    ON stripe_sync.subscriptions TO regress_track_admin;
SET ROLE regress_track_admin;
SELECT benefits.track_subscriptions('stripe_sync.subscriptions', '7a000000-0000-0000-0000-00000000000a',
    product_expression => $$items->'data'->0->'price'->>'product'$$);
RESET ROLE;
GRANT SELECT (items) ON stripe_sync.subscriptions TO regress_track_admin;
SET ROLE regress_track_admin;
SELECT benefits.track_subscriptions('stripe_sync.subscriptions', '7a000000-0000-0000-0000-00000000000a',
    product_expression => $$items->'data'->0->'price'->>'product'$$);
RESET ROLE;
SELECT settings->>'expression_role' = 'regress_track_admin'::regrole::oid::text AS evaluated_as_tracker
  FROM benefits.tracked_tables WHERE source = 'stripe_sync.subscriptions'::regclass;
-- The stored expression and role are the extension's to write, not the administrator's.
SET ROLE regress_track_admin;
UPDATE benefits.tracked_tables SET settings = jsonb_set(settings, '{expression_role}', '10')
 WHERE source = 'stripe_sync.subscriptions'::regclass;
RESET ROLE;
INSERT INTO stripe_sync.subscriptions (id, customer, status, items)
VALUES ('sub_s3', 'cus_Alice', 'active', '{"data": [{"price": {"product": "prod_Pro"}}]}');
SELECT * FROM sync_grants WHERE tracked_id = 'sub_s3';
-- Once the role may no longer read items, the trigger cannot evaluate it either.
REVOKE SELECT (items) ON stripe_sync.subscriptions FROM regress_track_admin;
UPDATE stripe_sync.subscriptions SET status = 'past_due' WHERE id = 'sub_s3';
-- Nor once the role is gone.
REVOKE ALL ON stripe_sync.subscriptions FROM regress_track_admin;
REVOKE ALL ON SCHEMA stripe_sync FROM regress_track_admin;
DROP ROLE regress_track_admin;
UPDATE stripe_sync.subscriptions SET status = 'past_due' WHERE id = 'sub_s3';
SELECT benefits.track_subscriptions('stripe_sync.subscriptions', '7a000000-0000-0000-0000-00000000000a',
    product_expression => $$items->'data'->0->'price'->>'product'$$);

-- A column the expression reads changing type stops the trigger until the
-- table is tracked again.
ALTER TABLE stripe_sync.subscriptions ALTER COLUMN items TYPE text USING items::text;
UPDATE stripe_sync.subscriptions SET status = 'active' WHERE id = 'sub_s3';
SELECT benefits.track_subscriptions('stripe_sync.subscriptions', '7a000000-0000-0000-0000-00000000000a',
    product_expression => $$items->'data'->0->'price'->>'product'$$);
ALTER TABLE stripe_sync.subscriptions ALTER COLUMN items TYPE jsonb USING items::jsonb;
UPDATE stripe_sync.subscriptions SET status = 'active' WHERE id = 'sub_s3';
SELECT * FROM sync_grants WHERE tracked_id = 'sub_s3';

-- Orders too: a Stripe invoices table, the product in the first line.
CREATE TABLE stripe_sync.invoices (
    id text PRIMARY KEY, customer text, status text, billing_reason text, lines jsonb
);
SELECT benefits.track_orders('stripe_sync.invoices', '7a000000-0000-0000-0000-00000000000a',
    billing_reason_column => 'billing_reason',
    product_expression => $$lines #>> '{data,0,price,product}'$$);
INSERT INTO stripe_sync.invoices VALUES
    ('in_1', 'cus_Alice', 'paid', 'manual', '{"data": [{"price": {"product": "prod_Book"}}]}');
SELECT o.status, o.billing_reason, p.external_id AS product, g.state
  FROM benefits.orders o JOIN benefits.products p ON p.id = o.product_id
  JOIN benefits.grants g ON g.order_id = o.id
 WHERE o.tracked_id = 'in_1';

SELECT benefits.untrack('stripe_sync.subscriptions'), benefits.untrack('stripe_sync.invoices');
DROP SCHEMA stripe_sync CASCADE;

-- A partitioned table: its rows, stored in its partitions, are mirrored as
-- the partitioned table's (the trigger fires on each partition as itself).
CREATE TABLE stripe.charges_by_month (id text, customer text, product text, status text, month int)
    PARTITION BY LIST (month);
CREATE TABLE stripe.charges_jan PARTITION OF stripe.charges_by_month FOR VALUES IN (1);
CREATE TABLE stripe.charges_feb PARTITION OF stripe.charges_by_month FOR VALUES IN (2);
SELECT benefits.track_orders('stripe.charges_by_month', '7a000000-0000-0000-0000-00000000000a');
INSERT INTO stripe.charges_by_month VALUES ('ch_part_1', 'cus_Alice', 'prod_Book', 'succeeded', 1),
                                           ('ch_part_2', 'cus_Alice', 'prod_Book', 'succeeded', 2);
SELECT o.tracked_id, o.status, t.source FROM benefits.orders o JOIN benefits.tracked_tables t ON t.id = o.tracked_table
 WHERE o.tracked_id LIKE 'ch_part_%' ORDER BY 1;
UPDATE stripe.charges_by_month SET status = 'refunded' WHERE id = 'ch_part_2';
SELECT status FROM benefits.orders WHERE tracked_id = 'ch_part_2';
SELECT benefits.untrack('stripe.charges_by_month');
DROP SCHEMA stripe CASCADE;
