-- Meter credits: credits on grant and on each renewal, usage, balances,
-- removal on revoke, the low-balance event.
INSERT INTO benefits.organizations (id, name) VALUES
    ('a1000000-0000-0000-0000-00000000000a', 'Meter Org'),
    ('a1000000-0000-0000-0000-00000000000b', 'Other Meter Org');
INSERT INTO benefits.meters (id, organization_id, name, allow_overage) VALUES
    ('a1000000-0000-0000-0000-0000000000a1', 'a1000000-0000-0000-0000-00000000000a', 'api-calls', false),
    ('a1000000-0000-0000-0000-0000000000a2', 'a1000000-0000-0000-0000-00000000000a', 'tokens', false),
    ('a1000000-0000-0000-0000-0000000000a3', 'a1000000-0000-0000-0000-00000000000a', 'overage-ok', true);
INSERT INTO benefits.products (id, organization_id, name) VALUES
    ('a1000000-0000-0000-0000-0000000000b1', 'a1000000-0000-0000-0000-00000000000a', 'Calls'),
    ('a1000000-0000-0000-0000-0000000000b2', 'a1000000-0000-0000-0000-00000000000a', 'Tokens');
INSERT INTO benefits.benefits (id, organization_id, type, description, properties) VALUES
    ('a1000000-0000-0000-0000-0000000000c1', 'a1000000-0000-0000-0000-00000000000a', 'meter_credits', '10 calls',
     '{"meter_id": "a1000000-0000-0000-0000-0000000000a1", "units": 10, "rollover": false, "low_balance_threshold": 3}'),
    ('a1000000-0000-0000-0000-0000000000c2', 'a1000000-0000-0000-0000-00000000000a', 'meter_credits', '100 tokens',
     '{"meter_id": "a1000000-0000-0000-0000-0000000000a2", "units": 100, "rollover": true}');
INSERT INTO benefits.product_benefits (product_id, benefit_id, position) VALUES
    ('a1000000-0000-0000-0000-0000000000b1', 'a1000000-0000-0000-0000-0000000000c1', 1),
    ('a1000000-0000-0000-0000-0000000000b2', 'a1000000-0000-0000-0000-0000000000c2', 1);
INSERT INTO benefits.customers (id, organization_id, external_id) VALUES
    ('a1000000-0000-0000-0000-0000000000d1', 'a1000000-0000-0000-0000-00000000000a', 'meter-1'),
    ('a1000000-0000-0000-0000-0000000000d2', 'a1000000-0000-0000-0000-00000000000a', 'meter-2'),
    ('a1000000-0000-0000-0000-0000000000d9', 'a1000000-0000-0000-0000-00000000000b', 'meter-9');
-- An endpoint subscribes to low-balance events like to any other.
SELECT count(*) AS endpoints FROM benefits.create_webhook_endpoint('a1000000-0000-0000-0000-00000000000a',
    'https://hooks.example.com/meters', ARRAY['meter.low_balance', 'benefit_grant.created']);

-- No credits yet.
SELECT benefits.meter_balance('a1000000-0000-0000-0000-0000000000d1', 'a1000000-0000-0000-0000-0000000000a1');

-- The grant credits 10 units and records the credit on the grant.
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status) VALUES
    ('a1000000-0000-0000-0000-0000000000e1', 'a1000000-0000-0000-0000-0000000000d1',
     'a1000000-0000-0000-0000-0000000000b1', 'active');
SELECT benefits.meter_balance('a1000000-0000-0000-0000-0000000000d1', 'a1000000-0000-0000-0000-0000000000a1');
SELECT state, properties->>'last_credited_units' AS units,
       properties->>'last_credited_meter_id' = 'a1000000-0000-0000-0000-0000000000a1' AS meter
  FROM benefits.grants WHERE subscription_id = 'a1000000-0000-0000-0000-0000000000e1';
-- Its webhook spells the type as Polar does.
SELECT payload #>> '{data,benefit,type}' FROM benefits.outbox
 WHERE organization_id = 'a1000000-0000-0000-0000-00000000000a' AND event_type = 'benefit_grant.created';

-- Usage depletes; the balance is answered from the balance row.
SELECT benefits.record_usage('a1000000-0000-0000-0000-0000000000d1', 'a1000000-0000-0000-0000-0000000000a1', 4);
SELECT benefits.record_usage('a1000000-0000-0000-0000-0000000000d1', 'a1000000-0000-0000-0000-0000000000a1', 0);
SELECT count(*) AS low_balance_events FROM benefits.outbox WHERE event_type = 'meter.low_balance';
-- Falling below the threshold (3) writes one low-balance event.
SELECT benefits.record_usage('a1000000-0000-0000-0000-0000000000d1', 'a1000000-0000-0000-0000-0000000000a1', 4);
SELECT payload->'type' AS type, payload #> '{data,balance}' AS balance,
       payload #> '{data,low_balance_threshold}' AS threshold,
       payload #>> '{data,customer_id}' = 'a1000000-0000-0000-0000-0000000000d1' AS customer
  FROM benefits.outbox WHERE event_type = 'meter.low_balance';
-- Already below: no second event.
SELECT benefits.record_usage('a1000000-0000-0000-0000-0000000000d1', 'a1000000-0000-0000-0000-0000000000a1', 1);
SELECT count(*) AS low_balance_events FROM benefits.outbox WHERE event_type = 'meter.low_balance';
-- More than the balance: refused, nothing recorded.
SELECT benefits.record_usage('a1000000-0000-0000-0000-0000000000d1', 'a1000000-0000-0000-0000-0000000000a1', 2);
SELECT benefits.meter_balance('a1000000-0000-0000-0000-0000000000d1', 'a1000000-0000-0000-0000-0000000000a1');
SELECT count(*), sum(units), min(balance_after) FROM benefits.meter_usage
 WHERE customer_id = 'a1000000-0000-0000-0000-0000000000d1';

-- Renewal without rollover: the unused unit expires, 10 are credited.
INSERT INTO benefits.orders (customer_id, product_id, subscription_id, billing_reason) VALUES
    ('a1000000-0000-0000-0000-0000000000d1', 'a1000000-0000-0000-0000-0000000000b1',
     'a1000000-0000-0000-0000-0000000000e1', 'subscription_cycle');
SELECT benefits.meter_balance('a1000000-0000-0000-0000-0000000000d1', 'a1000000-0000-0000-0000-0000000000a1');
SELECT reason, units, balance_after FROM benefits.meter_credits
 WHERE customer_id = 'a1000000-0000-0000-0000-0000000000d1' ORDER BY id;

-- Rollover: the unused balance is kept and 100 more are credited.
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status) VALUES
    ('a1000000-0000-0000-0000-0000000000e2', 'a1000000-0000-0000-0000-0000000000d1',
     'a1000000-0000-0000-0000-0000000000b2', 'active');
SELECT benefits.record_usage('a1000000-0000-0000-0000-0000000000d1', 'a1000000-0000-0000-0000-0000000000a2', 30);
INSERT INTO benefits.orders (customer_id, product_id, subscription_id, billing_reason) VALUES
    ('a1000000-0000-0000-0000-0000000000d1', 'a1000000-0000-0000-0000-0000000000b2',
     'a1000000-0000-0000-0000-0000000000e2', 'subscription_cycle');
SELECT benefits.meter_balance('a1000000-0000-0000-0000-0000000000d1', 'a1000000-0000-0000-0000-0000000000a2');

-- Revoke removes what is left of the grant's last credit (100 of 170), not more.
UPDATE benefits.subscriptions SET status = 'revoked' WHERE id = 'a1000000-0000-0000-0000-0000000000e2';
SELECT benefits.meter_balance('a1000000-0000-0000-0000-0000000000d1', 'a1000000-0000-0000-0000-0000000000a2');
-- Usage below the last credit: revoke removes only the rest.
UPDATE benefits.subscriptions SET status = 'active' WHERE id = 'a1000000-0000-0000-0000-0000000000e1';
SELECT benefits.record_usage('a1000000-0000-0000-0000-0000000000d1', 'a1000000-0000-0000-0000-0000000000a1', 8);
UPDATE benefits.subscriptions SET status = 'canceled' WHERE id = 'a1000000-0000-0000-0000-0000000000e1';
SELECT benefits.meter_balance('a1000000-0000-0000-0000-0000000000d1', 'a1000000-0000-0000-0000-0000000000a1');
-- The revoked grant's threshold no longer applies.
SELECT low_balance_threshold FROM benefits.meter_balances
 WHERE customer_id = 'a1000000-0000-0000-0000-0000000000d1' AND meter_id = 'a1000000-0000-0000-0000-0000000000a1';
-- Re-granted: credited again.
UPDATE benefits.subscriptions SET status = 'active' WHERE id = 'a1000000-0000-0000-0000-0000000000e1';
SELECT benefits.meter_balance('a1000000-0000-0000-0000-0000000000d1', 'a1000000-0000-0000-0000-0000000000a1');

-- A meter that allows overage goes below zero, even without any credit.
SELECT benefits.record_usage('a1000000-0000-0000-0000-0000000000d2', 'a1000000-0000-0000-0000-0000000000a3', 5);
SELECT benefits.record_usage('a1000000-0000-0000-0000-0000000000d2', 'a1000000-0000-0000-0000-0000000000a3', 2);
SELECT benefits.meter_balance('a1000000-0000-0000-0000-0000000000d2', 'a1000000-0000-0000-0000-0000000000a3');

-- Errors.
SELECT benefits.record_usage('a1000000-0000-0000-0000-0000000000d2', 'a1000000-0000-0000-0000-0000000000a1', 1);
SELECT benefits.record_usage('a1000000-0000-0000-0000-0000000000d1', 'a1000000-0000-0000-0000-0000000000a1', -1);
SELECT benefits.record_usage('a1000000-0000-0000-0000-0000000000d1', 'a1000000-0000-0000-0000-0000000000ff', 1);
SELECT benefits.record_usage('a1000000-0000-0000-0000-0000000000d9', 'a1000000-0000-0000-0000-0000000000a1', 1);
SELECT benefits.meter_balance('a1000000-0000-0000-0000-0000000000d9', 'a1000000-0000-0000-0000-0000000000a1');
SELECT benefits.meter_balance('a1000000-0000-0000-0000-0000000000d1', NULL);

-- Editing the benefit's threshold reaches its holders' balances.
SELECT (benefits.update_benefit('a1000000-0000-0000-0000-0000000000c1', NULL,
    '{"meter_id": "a1000000-0000-0000-0000-0000000000a1", "units": 10, "rollover": false, "low_balance_threshold": 8}')).id IS NOT NULL AS updated;
SELECT low_balance_threshold FROM benefits.meter_balances
 WHERE customer_id = 'a1000000-0000-0000-0000-0000000000d1' AND meter_id = 'a1000000-0000-0000-0000-0000000000a1';
SELECT benefits.record_usage('a1000000-0000-0000-0000-0000000000d1', 'a1000000-0000-0000-0000-0000000000a1', 3);
SELECT count(*) AS low_balance_events FROM benefits.outbox WHERE event_type = 'meter.low_balance';
