-- The revokes of one subscription are applied as a batch (one lock and one
-- read for all of its grants); each must still see what the revokes before
-- it did and what the customer's other grants hold.
INSERT INTO benefits.organizations (id, name) VALUES ('f5000000-0000-0000-0000-00000000000a', 'Revoke Batch Org');
INSERT INTO benefits.meters (id, organization_id, name) VALUES
    ('f5000000-0000-0000-0000-0000000000a1', 'f5000000-0000-0000-0000-00000000000a', 'calls');
INSERT INTO benefits.products (id, organization_id, name) VALUES
    ('f5000000-0000-0000-0000-0000000000b1', 'f5000000-0000-0000-0000-00000000000a', 'Pro'),
    ('f5000000-0000-0000-0000-0000000000b2', 'f5000000-0000-0000-0000-00000000000a', 'Key only');
INSERT INTO benefits.benefits (id, organization_id, type, description, properties) VALUES
    ('f5000000-0000-0000-0000-0000000000c1', 'f5000000-0000-0000-0000-00000000000a', 'license_keys', 'key',
     '{"prefix": "RVK", "expires": null, "activations": null, "limit_usage": null}'),
    ('f5000000-0000-0000-0000-0000000000c2', 'f5000000-0000-0000-0000-00000000000a', 'custom', 'note', '{"note": "Hi"}'),
    ('f5000000-0000-0000-0000-0000000000c3', 'f5000000-0000-0000-0000-00000000000a', 'meter_credits', 'credits low',
     '{"meter_id": "f5000000-0000-0000-0000-0000000000a1", "units": 10, "low_balance_threshold": 3}'),
    ('f5000000-0000-0000-0000-0000000000c4', 'f5000000-0000-0000-0000-00000000000a', 'meter_credits', 'credits high',
     '{"meter_id": "f5000000-0000-0000-0000-0000000000a1", "units": 20, "low_balance_threshold": 7}');
-- Pro: key, note and two credit benefits of one meter; "Key only" shares the key.
INSERT INTO benefits.product_benefits (product_id, benefit_id, position) VALUES
    ('f5000000-0000-0000-0000-0000000000b1', 'f5000000-0000-0000-0000-0000000000c1', 1),
    ('f5000000-0000-0000-0000-0000000000b1', 'f5000000-0000-0000-0000-0000000000c2', 2),
    ('f5000000-0000-0000-0000-0000000000b1', 'f5000000-0000-0000-0000-0000000000c3', 3),
    ('f5000000-0000-0000-0000-0000000000b1', 'f5000000-0000-0000-0000-0000000000c4', 4),
    ('f5000000-0000-0000-0000-0000000000b2', 'f5000000-0000-0000-0000-0000000000c1', 1);
INSERT INTO benefits.customers (id, organization_id, external_id) VALUES
    ('f5000000-0000-0000-0000-0000000000d1', 'f5000000-0000-0000-0000-00000000000a', 'rb-1'),
    ('f5000000-0000-0000-0000-0000000000d2', 'f5000000-0000-0000-0000-00000000000a', 'rb-2');
INSERT INTO benefits.webhook_endpoints (organization_id, url, secret, events) VALUES
    ('f5000000-0000-0000-0000-00000000000a', 'https://hooks.example.com/revoke-batch', 'whsec_dGVzdA==',
     ARRAY['benefit_grant.created', 'benefit_grant.revoked']);
CREATE VIEW revoke_batch_state AS
    SELECT right(g.customer_id::text, 2) AS customer, right(g.subscription_id::text, 2) AS sub,
           b.description AS benefit, g.state, g.revoked_at IS NOT NULL AS has_revoked_at,
           (SELECT count(*) FROM benefits.outbox o WHERE o.grant_id = g.id
               AND o.event_type = 'benefit_grant.revoked') AS revoked_events
      FROM benefits.grants g JOIN benefits.benefits b ON b.id = g.benefit_id
     WHERE g.organization_id = 'f5000000-0000-0000-0000-00000000000a'
     ORDER BY 1, 2, 3;
CREATE VIEW revoke_batch_keys AS
    SELECT right(k.customer_id::text, 2) AS customer, k.status FROM benefits.license_keys k
     WHERE k.organization_id = 'f5000000-0000-0000-0000-00000000000a' ORDER BY 1;
CREATE VIEW revoke_batch_meter AS
    SELECT right(m.customer_id::text, 2) AS customer, m.balance, m.low_balance_threshold
      FROM benefits.meter_balances m
     WHERE m.organization_id = 'f5000000-0000-0000-0000-00000000000a' ORDER BY 1;

INSERT INTO benefits.subscriptions (id, customer_id, product_id, status) VALUES
    ('f5000000-0000-0000-0000-0000000000e1', 'f5000000-0000-0000-0000-0000000000d1',
     'f5000000-0000-0000-0000-0000000000b1', 'active'),
    ('f5000000-0000-0000-0000-0000000000e2', 'f5000000-0000-0000-0000-0000000000d1',
     'f5000000-0000-0000-0000-0000000000b2', 'active');
SELECT * FROM revoke_batch_state;
SELECT * FROM revoke_batch_meter;

-- 1. Pro lapses: its four grants go in one batch.  The key stays granted
--    ("Key only" still holds the benefit); both credit benefits are taken
--    back, and the threshold left is none (the second revoke sees the
--    first); every revoke reports once.
UPDATE benefits.subscriptions SET status = 'past_due' WHERE id = 'f5000000-0000-0000-0000-0000000000e1';
SELECT * FROM revoke_batch_state;
SELECT * FROM revoke_batch_keys;
SELECT * FROM revoke_batch_meter;

-- 2. "Key only" moves to customer 2: customer 1's last grant of the key goes,
--    and with it the key; customer 2 gets a key of their own.
UPDATE benefits.subscriptions SET customer_id = 'f5000000-0000-0000-0000-0000000000d2'
 WHERE id = 'f5000000-0000-0000-0000-0000000000e2';
SELECT * FROM revoke_batch_state;
SELECT * FROM revoke_batch_keys;

-- 3. Pro comes back and lapses again in one transaction: grants and revokes
--    of the same rows, each reported.
BEGIN;
UPDATE benefits.subscriptions SET status = 'active' WHERE id = 'f5000000-0000-0000-0000-0000000000e1';
UPDATE benefits.subscriptions SET status = 'canceled', ended_at = now() WHERE id = 'f5000000-0000-0000-0000-0000000000e1';
COMMIT;
SELECT * FROM revoke_batch_state;
SELECT * FROM revoke_batch_keys;
SELECT * FROM revoke_batch_meter;
