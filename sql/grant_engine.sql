-- The grant engine: subscriptions and orders grant and revoke by themselves.
INSERT INTO benefits.organizations (id, name) VALUES
    ('e0000000-0000-0000-0000-00000000000a', 'Engine Org'),
    ('e0000000-0000-0000-0000-00000000000b', 'Other Org');
INSERT INTO benefits.products (id, organization_id, name) VALUES
    ('e0000000-0000-0000-0000-0000000000b1', 'e0000000-0000-0000-0000-00000000000a', 'Pro'),
    ('e0000000-0000-0000-0000-0000000000b2', 'e0000000-0000-0000-0000-00000000000a', 'Team'),
    ('e0000000-0000-0000-0000-0000000000b3', 'e0000000-0000-0000-0000-00000000000a', 'Lifetime'),
    ('e0000000-0000-0000-0000-0000000000bb', 'e0000000-0000-0000-0000-00000000000b', 'Foreign');
INSERT INTO benefits.benefits (id, organization_id, type, description, properties) VALUES
    ('e0000000-0000-0000-0000-0000000000c1', 'e0000000-0000-0000-0000-00000000000a', 'license_keys', 'key',
     '{"prefix": "ENG", "expires": {"ttl": 1, "timeframe": "year"}, "activations": null, "limit_usage": null}'),
    ('e0000000-0000-0000-0000-0000000000c2', 'e0000000-0000-0000-0000-00000000000a', 'custom', 'note', '{"note": "Welcome"}'),
    ('e0000000-0000-0000-0000-0000000000c3', 'e0000000-0000-0000-0000-00000000000a', 'custom', 'team-note', '{"note": "Team"}'),
    ('e0000000-0000-0000-0000-0000000000c4', 'e0000000-0000-0000-0000-00000000000a', 'custom', 'first', '{"note": null}');
-- Pro: first, key, note (attachment order differs from insertion order); Team: note, team-note.
INSERT INTO benefits.product_benefits (product_id, benefit_id, position) VALUES
    ('e0000000-0000-0000-0000-0000000000b1', 'e0000000-0000-0000-0000-0000000000c2', 3),
    ('e0000000-0000-0000-0000-0000000000b1', 'e0000000-0000-0000-0000-0000000000c1', 2),
    ('e0000000-0000-0000-0000-0000000000b1', 'e0000000-0000-0000-0000-0000000000c4', 1),
    ('e0000000-0000-0000-0000-0000000000b2', 'e0000000-0000-0000-0000-0000000000c2', 1),
    ('e0000000-0000-0000-0000-0000000000b2', 'e0000000-0000-0000-0000-0000000000c3', 2),
    ('e0000000-0000-0000-0000-0000000000b3', 'e0000000-0000-0000-0000-0000000000c1', 1);
INSERT INTO benefits.customers (id, organization_id, external_id, email) VALUES
    ('e0000000-0000-0000-0000-0000000000d1', 'e0000000-0000-0000-0000-00000000000a', 'user-1', 'one@example.com'),
    ('e0000000-0000-0000-0000-0000000000d2', 'e0000000-0000-0000-0000-00000000000a', 'user-2', 'two@example.com'),
    ('e0000000-0000-0000-0000-0000000000d9', 'e0000000-0000-0000-0000-00000000000b', 'user-9', 'nine@example.com');
INSERT INTO benefits.webhook_endpoints (organization_id, url, secret, events) VALUES
    ('e0000000-0000-0000-0000-00000000000a', 'https://hooks.example.com/engine', 'whsec_dGVzdA==',
     ARRAY['benefit_grant.created', 'benefit_grant.revoked', 'benefit_grant.cycled', 'benefit_grant.updated']);

-- What customer 1 holds, per source, and the events written so far.
CREATE VIEW engine_grants AS
    SELECT CASE WHEN g.subscription_id IS NOT NULL THEN 'sub ' || right(g.subscription_id::text, 2)
                WHEN g.order_id IS NOT NULL THEN 'order ' || right(g.order_id::text, 2)
                WHEN g.source_subscription_id IS NOT NULL THEN 'deleted sub ' || right(g.source_subscription_id::text, 2)
                WHEN g.source_order_id IS NOT NULL THEN 'deleted order ' || right(g.source_order_id::text, 2)
                ELSE 'manual' END AS source,
           b.description AS benefit, g.state, g.error IS NOT NULL AS has_error
      FROM benefits.grants g JOIN benefits.benefits b ON b.id = g.benefit_id
     WHERE g.organization_id = 'e0000000-0000-0000-0000-00000000000a'
     ORDER BY 1, 2;
CREATE TABLE seen_events (id bigint);
CREATE VIEW new_events AS
    SELECT o.event_type, o.payload #>> '{data,benefit,description}' AS benefit,
           right(o.payload #>> '{data,customer_id}', 2) AS customer
      FROM benefits.outbox o
     WHERE o.organization_id = 'e0000000-0000-0000-0000-00000000000a' AND o.kind = 'webhook'
       AND o.id > (SELECT coalesce(max(id), 0) FROM seen_events)
     ORDER BY o.id;
CREATE PROCEDURE events_seen() LANGUAGE sql AS
    $$ INSERT INTO seen_events SELECT max(id) FROM benefits.outbox $$;

-- incomplete: nothing.
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status) VALUES
    ('e0000000-0000-0000-0000-0000000000e1', 'e0000000-0000-0000-0000-0000000000d1',
     'e0000000-0000-0000-0000-0000000000b1', 'incomplete');
SELECT * FROM engine_grants;
-- organization_id defaults from the customer
SELECT organization_id FROM benefits.subscriptions WHERE id = 'e0000000-0000-0000-0000-0000000000e1';

-- active: every benefit of the product, created in attachment order.
UPDATE benefits.subscriptions SET status = 'active' WHERE id = 'e0000000-0000-0000-0000-0000000000e1';
SELECT * FROM engine_grants;
SELECT * FROM new_events;
CALL events_seen();
-- A subscription's license key has no expiry (expires applies to one-time purchases).
SELECT k.expires_at IS NULL AS no_expiry, k.status FROM benefits.license_keys k
 WHERE k.customer_id = 'e0000000-0000-0000-0000-0000000000d1';

-- An update that changes nothing decisive changes nothing.
UPDATE benefits.subscriptions SET metadata = '{"plan": "x"}' WHERE id = 'e0000000-0000-0000-0000-0000000000e1';
UPDATE benefits.subscriptions SET status = 'trialing' WHERE id = 'e0000000-0000-0000-0000-0000000000e1';
SELECT * FROM new_events;

-- Product change Pro -> Team: note is shared and untouched (same grant, no
-- event), first and key are revoked, team-note is granted.
SELECT id AS note_grant FROM benefits.grants
 WHERE subscription_id = 'e0000000-0000-0000-0000-0000000000e1' AND benefit_id = 'e0000000-0000-0000-0000-0000000000c2' \gset
UPDATE benefits.subscriptions SET product_id = 'e0000000-0000-0000-0000-0000000000b2'
 WHERE id = 'e0000000-0000-0000-0000-0000000000e1';
SELECT * FROM engine_grants;
SELECT * FROM new_events;
CALL events_seen();
SELECT id = :'note_grant' AS same_note_grant, modified_at IS NULL AS untouched FROM benefits.grants
 WHERE subscription_id = 'e0000000-0000-0000-0000-0000000000e1' AND benefit_id = 'e0000000-0000-0000-0000-0000000000c2';
-- The key's grant is revoked, and so is the key (no other holder).
SELECT status FROM benefits.license_keys WHERE customer_id = 'e0000000-0000-0000-0000-0000000000d1';

-- Back to Pro: the same key comes back.
SELECT key AS old_key FROM benefits.license_keys WHERE customer_id = 'e0000000-0000-0000-0000-0000000000d1' \gset
UPDATE benefits.subscriptions SET product_id = 'e0000000-0000-0000-0000-0000000000b1'
 WHERE id = 'e0000000-0000-0000-0000-0000000000e1';
SELECT status, key = :'old_key' AS same_key FROM benefits.license_keys WHERE customer_id = 'e0000000-0000-0000-0000-0000000000d1';
SELECT * FROM new_events;
CALL events_seen();

-- canceled with the period still running: access is kept.
UPDATE benefits.subscriptions SET status = 'canceled', current_period_end = now() + interval '10 days'
 WHERE id = 'e0000000-0000-0000-0000-0000000000e1';
SELECT * FROM engine_grants;
SELECT benefits.run_maintenance();
SELECT * FROM engine_grants;
-- The period ends (the clock moves without a write to the row): run_maintenance revokes.
ALTER TABLE benefits.subscriptions DISABLE TRIGGER grants_sync;
UPDATE benefits.subscriptions SET current_period_end = now() - interval '1 minute'
 WHERE id = 'e0000000-0000-0000-0000-0000000000e1';
ALTER TABLE benefits.subscriptions ENABLE TRIGGER grants_sync;
SELECT benefits.run_maintenance();
SELECT * FROM engine_grants;
SELECT * FROM new_events;
CALL events_seen();
-- Nothing left to do.
SELECT benefits.run_maintenance();

-- Reactivated: granted again.
UPDATE benefits.subscriptions SET status = 'active', current_period_end = now() + interval '30 days'
 WHERE id = 'e0000000-0000-0000-0000-0000000000e1';
SELECT * FROM engine_grants;

-- canceled with neither ended_at nor a period end: revoked at once.
UPDATE benefits.subscriptions SET status = 'canceled', current_period_end = NULL
 WHERE id = 'e0000000-0000-0000-0000-0000000000e1';
SELECT * FROM engine_grants;
-- canceled with ended_at in the past (immediate cancel) although the period runs on: revoked.
UPDATE benefits.subscriptions SET status = 'active' WHERE id = 'e0000000-0000-0000-0000-0000000000e1';
UPDATE benefits.subscriptions SET status = 'canceled', current_period_end = now() + interval '5 days',
       ended_at = now() - interval '1 second'
 WHERE id = 'e0000000-0000-0000-0000-0000000000e1';
SELECT count(*) FILTER (WHERE state = 'revoked') AS revoked, count(*) AS total FROM engine_grants;

-- active with cancel_at_period_end: kept until the period ends, then run_maintenance revokes.
UPDATE benefits.subscriptions SET status = 'active', ended_at = NULL, cancel_at_period_end = true,
       current_period_end = now() + interval '5 days'
 WHERE id = 'e0000000-0000-0000-0000-0000000000e1';
SELECT count(*) FILTER (WHERE state = 'active') AS active FROM engine_grants;
ALTER TABLE benefits.subscriptions DISABLE TRIGGER grants_sync;
UPDATE benefits.subscriptions SET current_period_end = now() - interval '1 second'
 WHERE id = 'e0000000-0000-0000-0000-0000000000e1';
ALTER TABLE benefits.subscriptions ENABLE TRIGGER grants_sync;
SELECT benefits.run_maintenance();
SELECT count(*) FILTER (WHERE state = 'active') AS active FROM engine_grants;

-- revoked and incomplete_expired revoke at once.
UPDATE benefits.subscriptions SET status = 'active', cancel_at_period_end = false
 WHERE id = 'e0000000-0000-0000-0000-0000000000e1';
UPDATE benefits.subscriptions SET status = 'revoked' WHERE id = 'e0000000-0000-0000-0000-0000000000e1';
SELECT count(*) FILTER (WHERE state = 'active') AS active FROM engine_grants;
UPDATE benefits.subscriptions SET status = 'active' WHERE id = 'e0000000-0000-0000-0000-0000000000e1';
UPDATE benefits.subscriptions SET status = 'incomplete_expired' WHERE id = 'e0000000-0000-0000-0000-0000000000e1';
SELECT count(*) FILTER (WHERE state = 'active') AS active FROM engine_grants;

-- past_due with the default grace period (0 days): revoked at once; past_due_at is kept.
UPDATE benefits.subscriptions SET status = 'active' WHERE id = 'e0000000-0000-0000-0000-0000000000e1';
UPDATE benefits.subscriptions SET status = 'past_due' WHERE id = 'e0000000-0000-0000-0000-0000000000e1';
SELECT count(*) FILTER (WHERE state = 'active') AS active FROM engine_grants;
SELECT past_due_at IS NOT NULL AS grace_started FROM benefits.subscriptions WHERE id = 'e0000000-0000-0000-0000-0000000000e1';
UPDATE benefits.subscriptions SET status = 'active' WHERE id = 'e0000000-0000-0000-0000-0000000000e1';
SELECT past_due_at IS NULL AS cleared FROM benefits.subscriptions WHERE id = 'e0000000-0000-0000-0000-0000000000e1';
-- With a 3 day grace period: kept, then revoked by run_maintenance once the grace period has run out.
UPDATE benefits.organizations SET grace_period = '3 days' WHERE id = 'e0000000-0000-0000-0000-00000000000a';
UPDATE benefits.subscriptions SET status = 'unpaid' WHERE id = 'e0000000-0000-0000-0000-0000000000e1';
SELECT count(*) FILTER (WHERE state = 'active') AS active FROM engine_grants;
SELECT benefits.run_maintenance();
ALTER TABLE benefits.subscriptions DISABLE TRIGGER grants_sync;
UPDATE benefits.subscriptions SET past_due_at = now() - interval '3 days 1 second'
 WHERE id = 'e0000000-0000-0000-0000-0000000000e1';
ALTER TABLE benefits.subscriptions ENABLE TRIGGER grants_sync;
SELECT benefits.run_maintenance();
SELECT count(*) FILTER (WHERE state = 'active') AS active FROM engine_grants;
UPDATE benefits.organizations SET grace_period = '0 days' WHERE id = 'e0000000-0000-0000-0000-00000000000a';

-- Renewal orders cycle the active grants of the subscription.
UPDATE benefits.subscriptions SET status = 'active' WHERE id = 'e0000000-0000-0000-0000-0000000000e1';
CALL events_seen();
INSERT INTO benefits.orders (id, customer_id, product_id, subscription_id, billing_reason, status) VALUES
    ('e0000000-0000-0000-0000-0000000000f1', 'e0000000-0000-0000-0000-0000000000d1',
     'e0000000-0000-0000-0000-0000000000b1', 'e0000000-0000-0000-0000-0000000000e1', 'subscription_cycle', 'pending');
SELECT * FROM new_events;
UPDATE benefits.orders SET status = 'paid' WHERE id = 'e0000000-0000-0000-0000-0000000000f1';
SELECT * FROM new_events;
CALL events_seen();
-- Paid once: refunding the renewal does not cycle again nor revoke.
UPDATE benefits.orders SET status = 'refunded' WHERE id = 'e0000000-0000-0000-0000-0000000000f1';
SELECT * FROM new_events;

-- One-time purchase: paid grants, and the license expiry applies.
INSERT INTO benefits.orders (id, customer_id, product_id, status) VALUES
    ('e0000000-0000-0000-0000-0000000000f2', 'e0000000-0000-0000-0000-0000000000d2',
     'e0000000-0000-0000-0000-0000000000b3', 'paid');
SELECT * FROM engine_grants WHERE source LIKE 'order%';
SELECT expires_at > now() + interval '364 days' AS expires_in_a_year FROM benefits.license_keys
 WHERE customer_id = 'e0000000-0000-0000-0000-0000000000d2';
-- A partial refund keeps access; a refund revokes; paid again grants again; a dispute revokes.
UPDATE benefits.orders SET status = 'partially_refunded' WHERE id = 'e0000000-0000-0000-0000-0000000000f2';
SELECT * FROM engine_grants WHERE source LIKE 'order%';
UPDATE benefits.orders SET status = 'refunded' WHERE id = 'e0000000-0000-0000-0000-0000000000f2';
SELECT * FROM engine_grants WHERE source LIKE 'order%';
UPDATE benefits.orders SET status = 'paid' WHERE id = 'e0000000-0000-0000-0000-0000000000f2';
UPDATE benefits.orders SET status = 'disputed' WHERE id = 'e0000000-0000-0000-0000-0000000000f2';
SELECT * FROM engine_grants WHERE source LIKE 'order%';
-- pending changes nothing.
INSERT INTO benefits.orders (id, customer_id, product_id, status) VALUES
    ('e0000000-0000-0000-0000-0000000000f3', 'e0000000-0000-0000-0000-0000000000d1',
     'e0000000-0000-0000-0000-0000000000b3', 'pending');
SELECT count(*) FROM benefits.grants WHERE order_id = 'e0000000-0000-0000-0000-0000000000f3';

-- The same benefit through two purchases: kept until the last one goes.
UPDATE benefits.orders SET status = 'paid' WHERE id = 'e0000000-0000-0000-0000-0000000000f3';
SELECT count(*) AS key_grants FROM benefits.grants
 WHERE customer_id = 'e0000000-0000-0000-0000-0000000000d1' AND benefit_id = 'e0000000-0000-0000-0000-0000000000c1'
   AND state = 'active';
UPDATE benefits.subscriptions SET status = 'revoked' WHERE id = 'e0000000-0000-0000-0000-0000000000e1';
SELECT status FROM benefits.license_keys WHERE customer_id = 'e0000000-0000-0000-0000-0000000000d1';
UPDATE benefits.orders SET status = 'refunded' WHERE id = 'e0000000-0000-0000-0000-0000000000f3';
SELECT status FROM benefits.license_keys WHERE customer_id = 'e0000000-0000-0000-0000-0000000000d1';

-- A benefit deleted from the catalog is not granted.
UPDATE benefits.benefits SET deleted_at = now() WHERE id = 'e0000000-0000-0000-0000-0000000000c4';
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status) VALUES
    ('e0000000-0000-0000-0000-0000000000e2', 'e0000000-0000-0000-0000-0000000000d2',
     'e0000000-0000-0000-0000-0000000000b1', 'active');
SELECT * FROM engine_grants WHERE source = 'sub e2';

-- Deleting a subscription revokes its grants first (events, provider removal).
CALL events_seen();
DELETE FROM benefits.subscriptions WHERE id = 'e0000000-0000-0000-0000-0000000000e2';
SELECT * FROM new_events;
CALL events_seen();

-- Errors: nothing is written.
-- A product of another organization.
INSERT INTO benefits.subscriptions (customer_id, product_id, status) VALUES
    ('e0000000-0000-0000-0000-0000000000d1', 'e0000000-0000-0000-0000-0000000000bb', 'active');
-- A deleted customer cannot be granted anything.
UPDATE benefits.customers SET deleted_at = now() WHERE id = 'e0000000-0000-0000-0000-0000000000d2';
INSERT INTO benefits.subscriptions (customer_id, product_id, status) VALUES
    ('e0000000-0000-0000-0000-0000000000d2', 'e0000000-0000-0000-0000-0000000000b2', 'active');
SELECT count(*) FROM benefits.subscriptions WHERE customer_id = 'e0000000-0000-0000-0000-0000000000d2';
SELECT * FROM new_events;

-- Deleting a subscription or order keeps its grants as history: revoked, the
-- reference cleared, the deleted row's id in source_subscription_id or
-- source_order_id.  Kept grants collide neither with a manual grant of the
-- same benefit nor with one another.
CALL events_seen();
INSERT INTO benefits.customers (id, organization_id, external_id) VALUES
    ('e0000000-0000-0000-0000-0000000000d3', 'e0000000-0000-0000-0000-00000000000a', 'user-3');
CREATE VIEW history_grants AS
    SELECT CASE WHEN g.subscription_id IS NOT NULL THEN 'sub ' || right(g.subscription_id::text, 2)
                WHEN g.order_id IS NOT NULL THEN 'order ' || right(g.order_id::text, 2)
                WHEN g.source_subscription_id IS NOT NULL THEN 'deleted sub ' || right(g.source_subscription_id::text, 2)
                WHEN g.source_order_id IS NOT NULL THEN 'deleted order ' || right(g.source_order_id::text, 2)
                ELSE 'manual' END AS source,
           b.description AS benefit, g.state, g.revoked_at IS NOT NULL AS revoked_at_set
      FROM benefits.grants g JOIN benefits.benefits b ON b.id = g.benefit_id
     WHERE g.customer_id = 'e0000000-0000-0000-0000-0000000000d3'
     ORDER BY 1, 2;
-- A manual grant of note, and two subscriptions of Team (note, team-note).
SELECT state FROM benefits.grant_benefit('e0000000-0000-0000-0000-0000000000d3', 'e0000000-0000-0000-0000-0000000000c2');
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status) VALUES
    ('e0000000-0000-0000-0000-0000000000e3', 'e0000000-0000-0000-0000-0000000000d3',
     'e0000000-0000-0000-0000-0000000000b2', 'active'),
    ('e0000000-0000-0000-0000-0000000000e4', 'e0000000-0000-0000-0000-0000000000d3',
     'e0000000-0000-0000-0000-0000000000b2', 'active');
CALL events_seen();
DELETE FROM benefits.subscriptions WHERE id = 'e0000000-0000-0000-0000-0000000000e3';
SELECT * FROM history_grants;
SELECT * FROM new_events;
-- The revoked event names the subscription, which was still there.
SELECT o.payload #>> '{data,subscription_id}' AS subscription_id, o.payload #>> '{data,is_revoked}' AS is_revoked
  FROM benefits.outbox o
 WHERE o.organization_id = 'e0000000-0000-0000-0000-00000000000a' AND o.event_type = 'benefit_grant.revoked'
   AND o.id > (SELECT max(id) FROM seen_events)
 ORDER BY o.id;
CALL events_seen();
-- The second subscription's grants are kept beside the first's.
DELETE FROM benefits.subscriptions WHERE id = 'e0000000-0000-0000-0000-0000000000e4';
SELECT * FROM history_grants;
SELECT * FROM new_events;
CALL events_seen();
-- An order's grants likewise (Lifetime: key).
INSERT INTO benefits.orders (id, customer_id, product_id, status) VALUES
    ('e0000000-0000-0000-0000-0000000000f5', 'e0000000-0000-0000-0000-0000000000d3',
     'e0000000-0000-0000-0000-0000000000b3', 'paid');
DELETE FROM benefits.orders WHERE id = 'e0000000-0000-0000-0000-0000000000f5';
SELECT * FROM history_grants WHERE source LIKE '%order%';
SELECT status FROM benefits.license_keys WHERE customer_id = 'e0000000-0000-0000-0000-0000000000d3';
SELECT * FROM new_events;
CALL events_seen();
-- The manual grant is still the one revoke_benefit and grant_benefit act on.
SELECT benefits.revoke_benefit('e0000000-0000-0000-0000-0000000000d3', 'e0000000-0000-0000-0000-0000000000c2');
SELECT state FROM benefits.grant_benefit('e0000000-0000-0000-0000-0000000000d3', 'e0000000-0000-0000-0000-0000000000c2');
SELECT benefits.grant_benefit_bulk(ARRAY['e0000000-0000-0000-0000-0000000000d3']::uuid[], 'e0000000-0000-0000-0000-0000000000c3');
SELECT * FROM history_grants;
SELECT * FROM new_events;
CALL events_seen();
-- A kept grant stays revoked.
\set VERBOSITY terse
UPDATE benefits.grants SET state = 'active'
 WHERE source_subscription_id = 'e0000000-0000-0000-0000-0000000000e3' AND state = 'revoked';
\set VERBOSITY default
-- list_grants shows the history.
SELECT count(*) FILTER (WHERE source_subscription_id IS NOT NULL) AS from_subscriptions,
       count(*) FILTER (WHERE source_order_id IS NOT NULL) AS from_orders
  FROM benefits.list_grants(customer_id => 'e0000000-0000-0000-0000-0000000000d3', is_granted => false);
-- Deleting the customer takes everything with it, live subscriptions and kept grants alike.
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status) VALUES
    ('e0000000-0000-0000-0000-0000000000e5', 'e0000000-0000-0000-0000-0000000000d3',
     'e0000000-0000-0000-0000-0000000000b2', 'active');
CALL events_seen();
DELETE FROM benefits.customers WHERE id = 'e0000000-0000-0000-0000-0000000000d3';
SELECT count(*) AS grants_left FROM benefits.grants WHERE customer_id = 'e0000000-0000-0000-0000-0000000000d3';
SELECT * FROM new_events;
-- A subscription of a customer already deleted (deleted_at): nothing is
-- revoked for that customer, and its grants go with the subscription, as
-- they did before grants were kept.
INSERT INTO benefits.customers (id, organization_id, external_id) VALUES
    ('e0000000-0000-0000-0000-0000000000d4', 'e0000000-0000-0000-0000-00000000000a', 'user-4');
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status) VALUES
    ('e0000000-0000-0000-0000-0000000000e6', 'e0000000-0000-0000-0000-0000000000d4',
     'e0000000-0000-0000-0000-0000000000b2', 'active');
UPDATE benefits.customers SET deleted_at = now() WHERE id = 'e0000000-0000-0000-0000-0000000000d4';
CALL events_seen();
DELETE FROM benefits.subscriptions WHERE id = 'e0000000-0000-0000-0000-0000000000e6';
SELECT count(*) AS grants_left FROM benefits.grants WHERE customer_id = 'e0000000-0000-0000-0000-0000000000d4';
SELECT * FROM new_events;
