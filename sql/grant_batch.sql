-- Activations granted together: a statement that activates many
-- subscriptions has each benefit's grants written set-based at the
-- statement's end (activations.c, grants_batch.c).  Two mirror groups of
-- customers, A and B, go through the same changes: A's subscriptions in
-- one multi-row UPDATE, B's one statement each.  Both must end the same.
INSERT INTO benefits.organizations (id, name) VALUES ('ba000000-0000-0000-0000-00000000000a', 'Batch Org');
INSERT INTO benefits.products (id, organization_id, name) VALUES
    ('ba000000-0000-0000-0000-0000000000b1', 'ba000000-0000-0000-0000-00000000000a', 'Pro'),
    ('ba000000-0000-0000-0000-0000000000b2', 'ba000000-0000-0000-0000-00000000000a', 'Keys only');
INSERT INTO benefits.meters (id, organization_id, name) VALUES
    ('ba000000-0000-0000-0000-0000000000e1', 'ba000000-0000-0000-0000-00000000000a', 'calls');
INSERT INTO benefits.webhook_endpoints (organization_id, url, secret, events) VALUES
    ('ba000000-0000-0000-0000-00000000000a', 'https://hooks.example.com/batch', 'whsec_dGVzdA==',
     ARRAY['benefit_grant.created', 'benefit_grant.revoked']);
SELECT id AS note FROM benefits.create_benefit('custom', 'ba000000-0000-0000-0000-00000000000a', 'Note',
    '{"note": "Welcome"}') \gset
SELECT id AS license FROM benefits.create_benefit('license_keys', 'ba000000-0000-0000-0000-00000000000a', 'Key',
    '{"prefix": "bat", "expires": {"ttl": 1, "timeframe": "year"}, "activations": {"limit": 3, "enable_customer_admin": true}, "limit_usage": 50}') \gset
SELECT id AS credits FROM benefits.create_benefit('meter_credits', 'ba000000-0000-0000-0000-00000000000a', 'Credits',
    '{"meter_id": "ba000000-0000-0000-0000-0000000000e1", "units": 100, "low_balance_threshold": 10}') \gset
SELECT id AS github FROM benefits.create_benefit('github_repository', 'ba000000-0000-0000-0000-00000000000a', 'Repos',
    '{"repositories": [{"owner": "acme", "name": "engine", "permission": "push"},
                       {"owner": "acme", "name": "docs", "permission": "pull"}]}') \gset
SELECT id AS discord FROM benefits.create_benefit('discord', 'ba000000-0000-0000-0000-00000000000a', 'Chat',
    '{"guild_id": "300000000000000000", "roles": [{"role_id": "300000000000000001", "name": "Member"}, {"role_id": "300000000000000002", "name": "Beta"}]}') \gset
SELECT benefits.update_product_benefits('ba000000-0000-0000-0000-0000000000b1',
    ARRAY[:'note', :'license', :'credits', :'github', :'discord']::uuid[]);
SELECT benefits.update_product_benefits('ba000000-0000-0000-0000-0000000000b2', ARRAY[:'license']::uuid[]);

-- Customers a1..a6 and b1..b6 (the same accounts in both groups):
--   1 GitHub and Discord linked; 2 nothing linked; 3 GitHub linked and the
--   repositories already delivered through an active manual grant; 4 two
--   subscriptions (Pro and Keys only) activated together; 5 a subscription
--   that held its grants before (revoked by past_due, now restored); 6 a
--   subscription revoked and another activated in the same statement.
INSERT INTO benefits.customers (id, organization_id, external_id)
SELECT ('ba000000-0000-0000-0000-0000000' || g || '000' || n)::uuid, 'ba000000-0000-0000-0000-00000000000a', g || n
  FROM unnest(ARRAY['a', 'b']) g, generate_series(1, 6) n;
CREATE VIEW batch_customers AS
    SELECT c.id, left(c.external_id, 1) AS grp, right(c.external_id, 1)::int AS n FROM benefits.customers c
     WHERE c.organization_id = 'ba000000-0000-0000-0000-00000000000a';
SELECT count(benefits.link_account(id, 'github', 'gh-' || n, 'dev' || n)) FROM batch_customers WHERE n IN (1, 3);
SELECT count(benefits.link_account(id, 'discord', '40000000000000000' || n, 'chat' || n, 'token')) FROM batch_customers WHERE n = 1;
SELECT count(benefits.grant_benefit(id, :'github')) FROM batch_customers WHERE n = 3;
UPDATE benefits.grants SET state = 'active'
 WHERE benefit_id = :'github' AND subscription_id IS NULL AND order_id IS NULL;
-- Subscriptions: Pro for everyone, Keys only for 4 and 6 (6's is already active).
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status)
SELECT ('ba000000-0000-0000-0000-0000001' || grp || '000' || n)::uuid, id, 'ba000000-0000-0000-0000-0000000000b1',
       CASE WHEN n = 5 THEN 'active' ELSE 'incomplete' END
  FROM batch_customers ORDER BY grp, n;
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status)
SELECT ('ba000000-0000-0000-0000-0000002' || grp || '000' || n)::uuid, id, 'ba000000-0000-0000-0000-0000000000b2',
       CASE WHEN n = 6 THEN 'active' ELSE 'incomplete' END
  FROM batch_customers WHERE n IN (4, 6) ORDER BY grp, n;
UPDATE benefits.subscriptions SET status = 'past_due'
 WHERE id::text LIKE 'ba000000-0000-0000-0000-0000001_0005';
SELECT count(*) AS revoked_by_past_due FROM benefits.grants
 WHERE subscription_id::text LIKE 'ba000000-0000-0000-0000-0000001_0005' AND state = 'revoked';
DELETE FROM benefits.outbox WHERE organization_id = 'ba000000-0000-0000-0000-00000000000a';

-- Group A's activations in one statement; the DEBUG line says how the
-- batch went: 4 fresh subscriptions set-based, customer 4's second and
-- customer 5's (which holds revoked grants) one at a time.
SET client_min_messages = debug1;
UPDATE benefits.subscriptions SET status = 'active'
 WHERE status <> 'active' AND customer_id IN (SELECT id FROM batch_customers WHERE grp = 'a' AND n <> 6);
RESET client_min_messages;
-- Customer 6: one subscription revoked and one activated in one statement.
UPDATE benefits.subscriptions SET status = CASE status WHEN 'active' THEN 'revoked' ELSE 'active' END
 WHERE customer_id IN (SELECT id FROM batch_customers WHERE grp = 'a' AND n = 6);
-- Group B one subscription at a time.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT s.id, s.status FROM benefits.subscriptions s JOIN batch_customers c ON c.id = s.customer_id
              WHERE c.grp = 'b' AND (s.status <> 'active' OR c.n = 6) ORDER BY c.n, s.product_id
    LOOP
        UPDATE benefits.subscriptions SET status = CASE r.status WHEN 'active' THEN 'revoked' ELSE 'active' END
         WHERE id = r.id;
    END LOOP;
END
$$;

-- Everything each customer holds, without what differs by nature (ids,
-- keys, times): grants with their state, properties and error; keys;
-- balances; provider jobs; events.
CREATE VIEW batch_state AS
    SELECT c.grp, c.n, 'grant' AS what,
           concat_ws(' ', p.name, b.description, g.state,
                     (g.properties - '{license_key_id,display_key,last_credited_at}'::text[])::text,
                     g.error ->> 'action', g.granted_at IS NOT NULL) AS detail
      FROM benefits.grants g JOIN batch_customers c ON c.id = g.customer_id
      JOIN benefits.benefits b ON b.id = g.benefit_id
      LEFT JOIN benefits.subscriptions s ON s.id = g.subscription_id
      LEFT JOIN benefits.products p ON p.id = s.product_id
    UNION ALL
    SELECT c.grp, c.n, 'key', concat_ws(' ', k.status, k.limit_usage, k.limit_activations, k.expires_at IS NULL,
                                        k.key LIKE 'BAT-%', (SELECT count(*) FROM benefits.grants g
                                         WHERE g.properties->>'license_key_id' = k.id::text))
      FROM benefits.license_keys k JOIN batch_customers c ON c.id = k.customer_id
    UNION ALL
    SELECT c.grp, c.n, 'balance', concat_ws(' ', m.balance, m.credited, m.low_balance_threshold,
                                            (SELECT count(*) FROM benefits.meter_credits l
                                              WHERE l.customer_id = m.customer_id AND l.reason = 'grant'))
      FROM benefits.meter_balances m JOIN batch_customers c ON c.id = m.customer_id
    UNION ALL
    SELECT c.grp, c.n, 'job', concat_ws(' ', o.kind, o.action, (o.payload - 'customer_id')::text,
                                        o.payload->>'customer_id' = c.id::text)
      FROM benefits.outbox o JOIN benefits.grants g ON g.id = o.grant_id
      JOIN batch_customers c ON c.id = g.customer_id
     WHERE o.kind <> 'webhook'
    UNION ALL
    SELECT c.grp, c.n, 'event', concat_ws(' ', o.event_type, o.payload #>> '{data,benefit,description}',
                                          o.payload #>> '{data,customer,external_id}' = c.grp || c.n,
                                          (o.payload #>> '{data,is_granted}'))
      FROM benefits.outbox o JOIN benefits.grants g ON g.id = o.grant_id
      JOIN batch_customers c ON c.id = g.customer_id
     WHERE o.kind = 'webhook';
SELECT n, what, detail, count(*) FROM batch_state WHERE grp = 'a' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
-- Group B ended exactly the same.
(SELECT n, what, detail FROM batch_state WHERE grp = 'a' EXCEPT ALL SELECT n, what, detail FROM batch_state WHERE grp = 'b')
UNION ALL
(SELECT n, what, detail FROM batch_state WHERE grp = 'b' EXCEPT ALL SELECT n, what, detail FROM batch_state WHERE grp = 'a');
-- Events follow the statement's rows: each subscription's grants in
-- attachment order.
SELECT o.payload #>> '{data,customer,external_id}' AS customer, string_agg(o.payload #>> '{data,benefit,description}', ', ' ORDER BY o.id)
  FROM benefits.outbox o JOIN batch_customers c ON c.id = (o.payload #>> '{data,customer_id}')::uuid
 WHERE o.kind = 'webhook' AND c.grp = 'a' AND o.event_type = 'benefit_grant.created' AND c.n IN (1, 2)
 GROUP BY 1 ORDER BY 1;

-- grant_benefit_bulk takes the same set-based path for every type.
SELECT benefits.grant_benefit_bulk(array_agg(id), :'credits') AS bulk_credited FROM batch_customers;
SELECT benefits.grant_benefit_bulk(array_agg(id), :'github') AS bulk_github FROM batch_customers;
SELECT c.n, g.state, g.error ->> 'action' AS action, m.balance
  FROM benefits.grants g JOIN batch_customers c ON c.id = g.customer_id
  JOIN benefits.meter_balances m ON m.customer_id = c.id
 WHERE g.subscription_id IS NULL AND g.order_id IS NULL AND g.benefit_id = :'github' AND c.grp = 'a'
 ORDER BY c.n;

-- A statement that fails after its row triggers queued activations leaves
-- nothing of them: the subtransaction's queue goes with it, and the
-- transaction still commits.
UPDATE benefits.subscriptions SET status = 'revoked'
 WHERE customer_id IN (SELECT id FROM batch_customers WHERE n = 2);
SELECT count(*) AS live_grants_before FROM benefits.grants g JOIN batch_customers c ON c.id = g.customer_id
 WHERE c.n = 2 AND g.subscription_id IS NOT NULL AND g.state <> 'revoked';
CREATE FUNCTION batch_fail() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.customer_id = 'ba000000-0000-0000-0000-0000000b0002' THEN
        RAISE EXCEPTION 'failing after the engine queued activations';
    END IF;
    RETURN NULL;
END
$$;
BEGIN;
CREATE TRIGGER zz_fail AFTER UPDATE ON benefits.subscriptions FOR EACH ROW EXECUTE FUNCTION batch_fail();
SAVEPOINT before;
UPDATE benefits.subscriptions SET status = 'active'
 WHERE customer_id IN (SELECT id FROM batch_customers WHERE n = 2);
ROLLBACK TO SAVEPOINT before;
DROP TRIGGER zz_fail ON benefits.subscriptions;
COMMIT;
SELECT count(*) AS live_grants_after FROM benefits.grants g JOIN batch_customers c ON c.id = g.customer_id
 WHERE c.n = 2 AND g.subscription_id IS NOT NULL AND g.state <> 'revoked';
-- The same statement without the failure grants both customers.
UPDATE benefits.subscriptions SET status = 'active'
 WHERE customer_id IN (SELECT id FROM batch_customers WHERE n = 2);
SELECT count(*) AS live_grants_now FROM benefits.grants g JOIN batch_customers c ON c.id = g.customer_id
 WHERE c.n = 2 AND g.subscription_id IS NOT NULL AND g.state <> 'revoked';

-- A renewal that only moves the period end changes no grant and locks no
-- customer; a change that grants or revokes locks the customer.
BEGIN;
UPDATE benefits.subscriptions SET current_period_end = now() + interval '1 month'
 WHERE customer_id = 'ba000000-0000-0000-0000-0000000a0001';
SELECT xmax = pg_current_xact_id()::xid AS customer_locked_by_renewal
  FROM benefits.customers WHERE id = 'ba000000-0000-0000-0000-0000000a0001';
UPDATE benefits.subscriptions SET status = 'revoked' WHERE customer_id = 'ba000000-0000-0000-0000-0000000a0001';
SELECT xmax = pg_current_xact_id()::xid AS customer_locked_by_revoke
  FROM benefits.customers WHERE id = 'ba000000-0000-0000-0000-0000000a0001';
ROLLBACK;

-- Customers c1..c3 for the statements that nest others.
INSERT INTO benefits.customers (id, organization_id, external_id)
SELECT ('ba000000-0000-0000-0000-0000000c000' || n)::uuid, 'ba000000-0000-0000-0000-00000000000a', 'c' || n
  FROM generate_series(1, 3) n;
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status)
SELECT ('ba000000-0000-0000-0000-0000001c000' || n)::uuid, ('ba000000-0000-0000-0000-0000000c000' || n)::uuid,
       'ba000000-0000-0000-0000-0000000000b1', 'incomplete'
  FROM generate_series(1, 3) n;
-- A trigger of the application runs, in a subtransaction it rolls back, a
-- statement on orders (whose statement trigger also grants queued
-- activations): the activations queued by the outer statement are not
-- taken into that subtransaction and lost with it.
CREATE FUNCTION batch_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        UPDATE benefits.orders SET status = status WHERE false;
        RAISE EXCEPTION 'optional step failed';
    EXCEPTION WHEN others THEN
        RAISE NOTICE 'caught: %', SQLERRM;
    END;
    RETURN NULL;
END
$$;
CREATE TRIGGER zz_audit AFTER UPDATE ON benefits.subscriptions FOR EACH ROW EXECUTE FUNCTION batch_audit();
UPDATE benefits.subscriptions SET status = 'active'
 WHERE customer_id IN ('ba000000-0000-0000-0000-0000000c0001', 'ba000000-0000-0000-0000-0000000c0002');
DROP TRIGGER zz_audit ON benefits.subscriptions;
SELECT c.grp || c.n AS customer, count(g.id) AS live_grants
  FROM batch_customers c LEFT JOIN benefits.grants g ON g.customer_id = c.id AND g.state <> 'revoked'
 WHERE c.grp = 'c' AND c.n IN (1, 2) GROUP BY 1 ORDER BY 1;
-- A renewal order written by the same statement that activates the
-- subscription cycles the grants the activation made.
WITH s AS (UPDATE benefits.subscriptions SET status = 'active'
            WHERE id = 'ba000000-0000-0000-0000-0000001c0003' RETURNING *)
INSERT INTO benefits.orders (customer_id, product_id, subscription_id, billing_reason, status)
SELECT customer_id, product_id, id, 'subscription_cycle', 'paid' FROM s;
SELECT reason, units, balance_after FROM benefits.meter_credits
 WHERE customer_id = 'ba000000-0000-0000-0000-0000000c0003' ORDER BY id;
-- A trigger of the application deletes the subscription it just activated:
-- the activation is granted, then revoked with the subscription, no error.
CREATE FUNCTION batch_cancel_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM benefits.subscriptions WHERE id = NEW.id AND NEW.status = 'active';
    RETURN NULL;
END
$$;
CREATE TRIGGER zz_cancel AFTER UPDATE ON benefits.subscriptions FOR EACH ROW EXECUTE FUNCTION batch_cancel_order();
UPDATE benefits.subscriptions SET status = 'revoked' WHERE customer_id = 'ba000000-0000-0000-0000-0000000c0001';
UPDATE benefits.subscriptions SET status = 'active' WHERE customer_id = 'ba000000-0000-0000-0000-0000000c0001';
DROP TRIGGER zz_cancel ON benefits.subscriptions;
SELECT count(*) AS subscriptions_left, (SELECT count(*) FROM benefits.grants
        WHERE customer_id = 'ba000000-0000-0000-0000-0000000c0001' AND state <> 'revoked') AS live_grants_left
  FROM benefits.subscriptions WHERE customer_id = 'ba000000-0000-0000-0000-0000000c0001';
