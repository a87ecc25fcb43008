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
DROP SCHEMA stripe CASCADE;
