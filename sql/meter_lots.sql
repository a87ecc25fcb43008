-- Credit lots: top-ups and corrections (adjust_credits), renewals that expire
-- only the previous period's benefit credits, usage taking expiring credits
-- first, credit packs and their refund, non-recurring credits, idempotent
-- adjustments and usage, late usage, usage history, the portal's meter.
SET TIME ZONE 'UTC';
INSERT INTO benefits.organizations (id, name) VALUES
    ('c1400000-0000-0000-0000-00000000000a', 'Lots Org'),
    ('c1400000-0000-0000-0000-00000000000b', 'Other Lots Org');
INSERT INTO benefits.meters (id, organization_id, name, allow_overage) VALUES
    ('c1400000-0000-0000-0000-0000000000a1', 'c1400000-0000-0000-0000-00000000000a', 'API calls', false),
    ('c1400000-0000-0000-0000-0000000000a2', 'c1400000-0000-0000-0000-00000000000a', 'overage', true),
    ('c1400000-0000-0000-0000-0000000000a9', 'c1400000-0000-0000-0000-00000000000b', 'other', false);
INSERT INTO benefits.products (id, organization_id, name) VALUES
    ('c1400000-0000-0000-0000-0000000000b1', 'c1400000-0000-0000-0000-00000000000a', 'Monthly'),
    ('c1400000-0000-0000-0000-0000000000b2', 'c1400000-0000-0000-0000-00000000000a', '500 calls pack'),
    ('c1400000-0000-0000-0000-0000000000b3', 'c1400000-0000-0000-0000-00000000000a', 'Welcome bonus');
SELECT (benefits.create_benefit('meter_credits', 'c1400000-0000-0000-0000-00000000000a', '100 calls a month',
    '{"meter_id": "c1400000-0000-0000-0000-0000000000a1", "units": 100, "low_balance_threshold": 20}')).id AS monthly \gset
SELECT (benefits.create_benefit('meter_credits', 'c1400000-0000-0000-0000-00000000000a', '500 calls',
    '{"meter_id": "c1400000-0000-0000-0000-0000000000a1", "units": 500}')).id AS pack \gset
-- recurring false: credited once per grant; true is the default and not stored.
SELECT (benefits.create_benefit('meter_credits', 'c1400000-0000-0000-0000-00000000000a', '30 bonus calls',
    '{"meter_id": "c1400000-0000-0000-0000-0000000000a1", "units": 30, "recurring": false}')) AS bonus_row \gset
SELECT (:'bonus_row'::benefits.benefits).properties - 'meter_id' AS bonus_properties,
       (SELECT properties - 'meter_id' FROM benefits.benefits WHERE id = :'monthly') AS monthly_properties;
SELECT (:'bonus_row'::benefits.benefits).id AS bonus \gset
SELECT benefits.update_product_benefits('c1400000-0000-0000-0000-0000000000b1', ARRAY[:'monthly']::uuid[]),
       benefits.update_product_benefits('c1400000-0000-0000-0000-0000000000b2', ARRAY[:'pack']::uuid[]),
       benefits.update_product_benefits('c1400000-0000-0000-0000-0000000000b3', ARRAY[:'bonus']::uuid[]);
INSERT INTO benefits.customers (id, organization_id, external_id) VALUES
    ('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-00000000000a', 'lots-1'),
    ('c1400000-0000-0000-0000-0000000000d2', 'c1400000-0000-0000-0000-00000000000a', 'lots-2'),
    ('c1400000-0000-0000-0000-0000000000d9', 'c1400000-0000-0000-0000-00000000000b', 'lots-9');
SELECT count(*) AS endpoints FROM benefits.create_webhook_endpoint('c1400000-0000-0000-0000-00000000000a',
    'https://hooks.example.com/lots', ARRAY['meter.low_balance']);
-- A recurring property that is no boolean is refused by name.
SELECT benefits.create_benefit('meter_credits', 'c1400000-0000-0000-0000-00000000000a', 'bad',
    '{"meter_id": "c1400000-0000-0000-0000-0000000000a1", "units": 1, "recurring": "no"}');

-- The lots of customer 1 on the calls meter, in the order usage takes them.
CREATE FUNCTION pg_temp.lots() RETURNS TABLE (source text, units bigint, remaining bigint, expires boolean)
LANGUAGE sql AS $$
    SELECT source, units, remaining, expires_at IS NOT NULL FROM benefits.meter_lots
     WHERE customer_id = 'c1400000-0000-0000-0000-0000000000d1' AND meter_id = 'c1400000-0000-0000-0000-0000000000a1'
     ORDER BY expires_at NULLS LAST, id
$$;

-- 1. A subscription credits a lot that expires at the end of its period.
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status, current_period_end) VALUES
    ('c1400000-0000-0000-0000-0000000000e1', 'c1400000-0000-0000-0000-0000000000d1',
     'c1400000-0000-0000-0000-0000000000b1', 'active', now() + interval '30 days');
SELECT * FROM pg_temp.lots();
SELECT expires_at = (SELECT current_period_end FROM benefits.subscriptions WHERE id = 'c1400000-0000-0000-0000-0000000000e1')
       AS expires_at_period_end
  FROM benefits.meter_lots WHERE customer_id = 'c1400000-0000-0000-0000-0000000000d1';

-- 2. A top-up: a lot of its own without expiry, and the new balance.
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a1',
    50, 'bought 50 calls');
SELECT * FROM pg_temp.lots();

-- 3. Usage takes the expiring credits first: 30 of the subscription's lot.
--    The balance row alone changes; the lots take the usage at their next change.
SELECT benefits.record_usage('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a1', 30);
SELECT balance, consumed - settled_consumed AS not_yet_taken FROM benefits.meter_balances
 WHERE customer_id = 'c1400000-0000-0000-0000-0000000000d1' AND meter_id = 'c1400000-0000-0000-0000-0000000000a1';

-- 4. A renewal without rollover expires the 70 left of the benefit's
--    credits and keeps the top-up; the period's 100 are credited again.
INSERT INTO benefits.orders (customer_id, product_id, subscription_id, billing_reason) VALUES
    ('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000b1',
     'c1400000-0000-0000-0000-0000000000e1', 'subscription_cycle');
SELECT * FROM pg_temp.lots();
SELECT benefits.meter_balance('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a1');
SELECT reason, units, balance_after, note FROM benefits.meter_credits
 WHERE customer_id = 'c1400000-0000-0000-0000-0000000000d1' ORDER BY id;

-- 5. Usage beyond the expiring lot takes the rest from the top-up.
SELECT benefits.record_usage('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a1', 120);
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a1',
    5, 'goodwill');
SELECT * FROM pg_temp.lots();

-- 6. A credit pack (a one-time order): a lot no renewal expires.
INSERT INTO benefits.orders (id, customer_id, product_id, billing_reason, status) VALUES
    ('c1400000-0000-0000-0000-0000000000f1', 'c1400000-0000-0000-0000-0000000000d1',
     'c1400000-0000-0000-0000-0000000000b2', 'purchase', 'paid');
SELECT * FROM pg_temp.lots();
INSERT INTO benefits.orders (customer_id, product_id, subscription_id, billing_reason) VALUES
    ('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000b1',
     'c1400000-0000-0000-0000-0000000000e1', 'subscription_cycle');
SELECT * FROM pg_temp.lots();
SELECT benefits.meter_balance('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a1');

-- 7. Usage of 200: 100 from the expiring lot, then 35 from the top-ups in
--    the order received, then 65 from the pack.  A refund of the pack removes
--    the 435 left of it, nothing else.
SELECT benefits.record_usage('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a1', 200);
UPDATE benefits.orders SET status = 'refunded' WHERE id = 'c1400000-0000-0000-0000-0000000000f1';
SELECT * FROM pg_temp.lots();
SELECT benefits.meter_balance('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a1');
SELECT reason, units, balance_after FROM benefits.meter_credits
 WHERE customer_id = 'c1400000-0000-0000-0000-0000000000d1' AND reason = 'revoke';

-- 8. recurring false: credited at the grant, never at a renewal.
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status, current_period_end) VALUES
    ('c1400000-0000-0000-0000-0000000000e2', 'c1400000-0000-0000-0000-0000000000d2',
     'c1400000-0000-0000-0000-0000000000b3', 'active', now() + interval '30 days');
INSERT INTO benefits.orders (customer_id, product_id, subscription_id, billing_reason) VALUES
    ('c1400000-0000-0000-0000-0000000000d2', 'c1400000-0000-0000-0000-0000000000b3',
     'c1400000-0000-0000-0000-0000000000e2', 'subscription_cycle');
SELECT source, units, remaining, expires_at IS NOT NULL AS expires FROM benefits.meter_lots
 WHERE customer_id = 'c1400000-0000-0000-0000-0000000000d2';
SELECT benefits.meter_balance('c1400000-0000-0000-0000-0000000000d2', 'c1400000-0000-0000-0000-0000000000a1');

-- 9. Idempotent adjustments: the same key returns the first result and
--    changes nothing; other units or another reason with it are refused.
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d2', 'c1400000-0000-0000-0000-0000000000a1',
    40, 'order 7', 'topup-7');
SELECT benefits.record_usage('c1400000-0000-0000-0000-0000000000d2', 'c1400000-0000-0000-0000-0000000000a1', 1);
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d2', 'c1400000-0000-0000-0000-0000000000a1',
    40, 'order 7', 'topup-7');
SELECT count(*) AS ledger_rows FROM benefits.meter_credits WHERE idempotency_key = 'topup-7';
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d2', 'c1400000-0000-0000-0000-0000000000a1',
    41, 'order 7', 'topup-7');
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d2', 'c1400000-0000-0000-0000-0000000000a1',
    40, 'order 8', 'topup-7');
-- The key is per customer and meter: another customer may use it.
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a1',
    1, 'order 7', 'topup-7');
-- A correction takes credits like usage and never goes below zero here.
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d2', 'c1400000-0000-0000-0000-0000000000a1',
    -60, 'duplicate charge', 'fix-1');
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d2', 'c1400000-0000-0000-0000-0000000000a1',
    -69, 'too much');
SELECT benefits.meter_balance('c1400000-0000-0000-0000-0000000000d2', 'c1400000-0000-0000-0000-0000000000a1'),
       (SELECT count(*) FROM benefits.meter_credits WHERE note = 'too much') AS written;
SELECT source, units, remaining FROM benefits.meter_lots
 WHERE customer_id = 'c1400000-0000-0000-0000-0000000000d2' ORDER BY id;

-- 10. A correction crossing the low-balance threshold (20) sends the event.
SELECT count(*) AS low_balance_events FROM benefits.outbox WHERE event_type = 'meter.low_balance';
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a1',
    150, 'refill');
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a1',
    -140, 'clawback');
SELECT count(*) AS low_balance_events, max(payload #>> '{data,balance}') AS balance
  FROM benefits.outbox WHERE event_type = 'meter.low_balance';

-- 11. Idempotent usage: a retry returns the first result; other units or
--     another occurred_at with the same key are refused; nothing is written.
SELECT benefits.record_usage('c1400000-0000-0000-0000-0000000000d2', 'c1400000-0000-0000-0000-0000000000a1', 3,
    idempotency_key => 'evt-1');
SELECT benefits.record_usage('c1400000-0000-0000-0000-0000000000d2', 'c1400000-0000-0000-0000-0000000000a1', 2);
SELECT benefits.record_usage('c1400000-0000-0000-0000-0000000000d2', 'c1400000-0000-0000-0000-0000000000a1', 3,
    idempotency_key => 'evt-1');
SELECT benefits.record_usage('c1400000-0000-0000-0000-0000000000d2', 'c1400000-0000-0000-0000-0000000000a1', 4,
    idempotency_key => 'evt-1');
SELECT benefits.record_usage('c1400000-0000-0000-0000-0000000000d2', 'c1400000-0000-0000-0000-0000000000a1', 1,
    'evt-4', '2026-01-02 03:04:05+00');
SELECT benefits.record_usage('c1400000-0000-0000-0000-0000000000d2', 'c1400000-0000-0000-0000-0000000000a1', 1,
    'evt-4', '2026-01-02 03:04:05+00');
SELECT benefits.record_usage('c1400000-0000-0000-0000-0000000000d2', 'c1400000-0000-0000-0000-0000000000a1', 1,
    'evt-4', '2026-01-01 00:00:00+00');
SELECT count(*) AS usage_rows, sum(units) AS units FROM benefits.meter_usage
 WHERE customer_id = 'c1400000-0000-0000-0000-0000000000d2';
-- A refused usage with a key records nothing, so the key stays free.
SELECT benefits.record_usage('c1400000-0000-0000-0000-0000000000d2', 'c1400000-0000-0000-0000-0000000000a1', 1000,
    idempotency_key => 'evt-2');
SELECT count(*) AS evt2_rows FROM benefits.meter_usage WHERE idempotency_key = 'evt-2';
-- Late usage keeps its own time.
SELECT benefits.record_usage('c1400000-0000-0000-0000-0000000000d2', 'c1400000-0000-0000-0000-0000000000a1', 1,
    'evt-3', now() - interval '3 days');
SELECT occurred_at < created_at - interval '2 days' AS late FROM benefits.meter_usage WHERE idempotency_key = 'evt-3';
-- An overage meter with a key: the first usage creates the balance below zero.
SELECT benefits.record_usage('c1400000-0000-0000-0000-0000000000d2', 'c1400000-0000-0000-0000-0000000000a2', 5,
    idempotency_key => 'o-1');
SELECT benefits.record_usage('c1400000-0000-0000-0000-0000000000d2', 'c1400000-0000-0000-0000-0000000000a2', 5,
    idempotency_key => 'o-1');
-- A top-up first pays the overage; a correction may go below zero there.
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d2', 'c1400000-0000-0000-0000-0000000000a2',
    8, 'prepaid');
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d2', 'c1400000-0000-0000-0000-0000000000a2',
    -10, 'correction');
SELECT source, units, remaining FROM benefits.meter_lots
 WHERE customer_id = 'c1400000-0000-0000-0000-0000000000d2' AND meter_id = 'c1400000-0000-0000-0000-0000000000a2';

-- 12. Errors: SQLSTATE 22023 naming the field, 23514 for too little balance.
\set VERBOSITY default
SELECT benefits.adjust_credits(NULL, 'c1400000-0000-0000-0000-0000000000a1', 1, 'x');
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d1', NULL, 1, 'x');
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a1', NULL, 'x');
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a1', 1, NULL);
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a1', 0, 'x');
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a1',
    9007199254740992, 'x');
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a1',
    -9223372036854775807, 'x');
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a1',
    9007199254740991, 'x');
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a1', 1, '');
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a1', 1,
    repeat('r', 201));
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a1', 1,
    E'line\nbreak');
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a1', 1,
    'x', repeat('k', 201));
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a1', 1,
    'x', E'key\x01');
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d9', 'c1400000-0000-0000-0000-0000000000a1', 1, 'x');
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a9', 1, 'x');
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000ff', 1, 'x');
SELECT benefits.record_usage('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a1',
    9007199254740992);
SELECT benefits.record_usage('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a1', NULL);
SELECT benefits.record_usage(NULL, 'c1400000-0000-0000-0000-0000000000a1', 1);
SELECT benefits.record_usage('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a1', 1,
    occurred_at => '2999-01-01 00:00:00+00');
SELECT benefits.record_usage('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a1', 1,
    occurred_at => 'infinity');
SELECT benefits.record_usage('c1400000-0000-0000-0000-0000000000d1', 'c1400000-0000-0000-0000-0000000000a1', 1,
    idempotency_key => '');
SELECT benefits.record_usage('c1400000-0000-0000-0000-0000000000d9', 'c1400000-0000-0000-0000-0000000000a1', 1,
    idempotency_key => 'x');
\set VERBOSITY terse
-- Nothing of the refused calls was written.
SELECT count(*) AS ledger_rows, sum(units) AS units FROM benefits.meter_credits
 WHERE customer_id = 'c1400000-0000-0000-0000-0000000000d1';
SELECT count(*) AS balances FROM benefits.meter_balances WHERE customer_id = 'c1400000-0000-0000-0000-0000000000d9';

-- 13. Usage history: per bucket, credited and used, empty buckets included.
INSERT INTO benefits.customers (id, organization_id, external_id) VALUES
    ('c1400000-0000-0000-0000-0000000000d3', 'c1400000-0000-0000-0000-00000000000a', 'lots-3');
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d3', 'c1400000-0000-0000-0000-0000000000a1',
    100, 'start');
UPDATE benefits.meter_credits SET created_at = '2025-03-01 09:00:00+00'
 WHERE customer_id = 'c1400000-0000-0000-0000-0000000000d3';
SELECT benefits.record_usage('c1400000-0000-0000-0000-0000000000d3', 'c1400000-0000-0000-0000-0000000000a1', u, NULL, t)
  FROM (VALUES (4, '2025-03-01 10:00:00+00'::timestamptz), (6, '2025-03-01 23:59:59+00'),
               (7, '2025-03-03 00:00:00+00'), (1, '2025-03-05 12:00:00+00')) v(u, t);
SELECT * FROM benefits.meter_usage_history('c1400000-0000-0000-0000-0000000000d3', 'c1400000-0000-0000-0000-0000000000a1',
    '2025-03-01 00:00:00+00', '2025-03-05 00:00:00+00');
SELECT * FROM benefits.meter_usage_history('c1400000-0000-0000-0000-0000000000d3', 'c1400000-0000-0000-0000-0000000000a1',
    '2025-03-01 00:00:00+00', '2025-03-06 00:00:00+00', '2 days');
\set VERBOSITY default
SELECT * FROM benefits.meter_usage_history('c1400000-0000-0000-0000-0000000000d3', 'c1400000-0000-0000-0000-0000000000a1',
    '2031-03-05', '2031-03-01');
SELECT * FROM benefits.meter_usage_history('c1400000-0000-0000-0000-0000000000d3', 'c1400000-0000-0000-0000-0000000000a1',
    '2031-03-01', 'infinity');
SELECT * FROM benefits.meter_usage_history('c1400000-0000-0000-0000-0000000000d3', 'c1400000-0000-0000-0000-0000000000a1',
    '2031-03-01', '2031-04-01', '1 month');
SELECT * FROM benefits.meter_usage_history('c1400000-0000-0000-0000-0000000000d3', 'c1400000-0000-0000-0000-0000000000a1',
    '2031-03-01', '2031-04-01', '1 second');
SELECT * FROM benefits.meter_usage_history('c1400000-0000-0000-0000-0000000000d3', 'c1400000-0000-0000-0000-0000000000a1',
    '2001-03-01', '2031-04-01', '1 hour');
SELECT * FROM benefits.meter_usage_history('c1400000-0000-0000-0000-0000000000d3', NULL, '2031-03-01', '2031-03-02');
SELECT * FROM benefits.meter_usage_history('c1400000-0000-0000-0000-0000000000d3', 'c1400000-0000-0000-0000-0000000000ff',
    '2031-03-01', '2031-03-02');
SELECT * FROM benefits.meter_usage_history('c1400000-0000-0000-0000-0000000000d9', 'c1400000-0000-0000-0000-0000000000a1',
    '2031-03-01', '2031-03-02');
\set VERBOSITY terse

-- 14. The portal's meter: balance, the period's credits and usage, the
--     expiring benefit credits, the last rows and the last 30 days.
INSERT INTO benefits.customers (id, organization_id, external_id) VALUES
    ('c1400000-0000-0000-0000-0000000000d4', 'c1400000-0000-0000-0000-00000000000a', 'lots-4');
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status, current_period_end) VALUES
    ('c1400000-0000-0000-0000-0000000000e4', 'c1400000-0000-0000-0000-0000000000d4',
     'c1400000-0000-0000-0000-0000000000b1', 'active', now() + interval '10 days');
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d4', 'c1400000-0000-0000-0000-0000000000a1',
    10, 'extra');
SELECT benefits.record_usage('c1400000-0000-0000-0000-0000000000d4', 'c1400000-0000-0000-0000-0000000000a1', 30);
SELECT benefits.record_usage('c1400000-0000-0000-0000-0000000000d4', 'c1400000-0000-0000-0000-0000000000a1', 5, NULL,
    now() - interval '2 days');
SELECT benefits.record_usage('c1400000-0000-0000-0000-0000000000d4', 'c1400000-0000-0000-0000-0000000000a1', 1, NULL,
    now() - interval '40 days');
CREATE TEMP TABLE portal_meter AS
SELECT b -> 'meter' AS m
  FROM jsonb_array_elements(benefits.portal_document('c1400000-0000-0000-0000-0000000000d4') -> 'benefits') b
 WHERE b ->> 'type' = 'meter_credits';
-- The expiring credits are what is left of the period's 100 after 36 units of usage.
SELECT m - 'id' - 'daily' - 'recent' - 'period_start' - 'credits_expire_at' AS meter,
       (m ->> 'credits_expire_at')::timestamptz = (SELECT date_trunc('second', current_period_end)
           FROM benefits.subscriptions WHERE id = 'c1400000-0000-0000-0000-0000000000e4') AS expire_at_period_end,
       m ->> 'period_start' IS NOT NULL AS has_period_start
  FROM portal_meter;
-- 30 days, today last; the usage 40 days ago is not among them.
SELECT jsonb_array_length(m -> 'daily') AS days,
       m -> 'daily' -> 29 ->> 'date' = to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS today_last,
       m -> 'daily' -> 29 -> 'used' AS today, m -> 'daily' -> 27 -> 'used' AS two_days_ago,
       (SELECT sum((d ->> 'used')::int) FROM jsonb_array_elements(m -> 'daily') d) AS used_30d
  FROM portal_meter;
SELECT r ->> 'kind' AS kind, r -> 'units' AS units, r -> 'balance_after' AS balance_after
  FROM portal_meter, jsonb_array_elements(m -> 'recent') r;
-- The most recent 20 rows only.
SELECT benefits.record_usage('c1400000-0000-0000-0000-0000000000d4', 'c1400000-0000-0000-0000-0000000000a1', 1)
  FROM generate_series(1, 25);
SELECT jsonb_array_length(b -> 'meter' -> 'recent') AS recent_rows
  FROM jsonb_array_elements(benefits.portal_document('c1400000-0000-0000-0000-0000000000d4') -> 'benefits') b
 WHERE b ->> 'type' = 'meter_credits';
-- The page draws the chart: an accessible inline SVG, one bar per day with
-- usage (today's and two days ago's), sized by the data.
SELECT html ~ '<svg class="usage-chart"[^>]* role="img" aria-labelledby="usage-title-\d+ usage-desc-\d+">' AS svg,
       html ~ '<title id="usage-title-\d+">API calls used per day, last 30 days</title>' AS title,
       html ~ '<desc id="usage-desc-\d+">60 units in 30 days; the most in one day: 55 on ' AS description,
       (SELECT array_agg(h[1]::int ORDER BY h[1]::int) FROM regexp_matches(html, '<rect [^>]*height="(\d+)"', 'g') h) AS bar_heights,
       html ~ '<script' AS script, html ~ '<dt>Expiring</dt><dd>39 on ' AS expiring,
       html ~ '<summary>Recent credits and usage</summary>' AS recent
  FROM (SELECT benefits.portal_html(benefits.portal_document('c1400000-0000-0000-0000-0000000000d4'), NULL) AS html) p;

-- 15. Privileges: the application adjusts and reads history; the public role cannot.
SET ROLE benefits_app;
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d3', 'c1400000-0000-0000-0000-0000000000a1',
    1, 'app top-up', 'app-1');
SELECT count(*) AS buckets FROM benefits.meter_usage_history('c1400000-0000-0000-0000-0000000000d3',
    'c1400000-0000-0000-0000-0000000000a1', '2031-03-01', '2031-03-02');
SELECT count(*) >= 0 AS reads_lots FROM benefits.meter_lots;
RESET ROLE;
SET ROLE benefits_public;
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d3', 'c1400000-0000-0000-0000-0000000000a1', 1, 'x');
SELECT * FROM benefits.meter_usage_history('c1400000-0000-0000-0000-0000000000d3',
    'c1400000-0000-0000-0000-0000000000a1', '2031-03-01', '2031-03-02');
SELECT count(*) FROM benefits.meter_lots;
RESET ROLE;

-- 16. Deleting a customer removes its balances, lots and usage with it.
SELECT (SELECT count(*) FROM benefits.meter_usage WHERE customer_id = 'c1400000-0000-0000-0000-0000000000d3') AS usage_rows,
       (SELECT count(*) FROM benefits.meter_lots WHERE customer_id = 'c1400000-0000-0000-0000-0000000000d3') AS lots;
DELETE FROM benefits.customers WHERE id = 'c1400000-0000-0000-0000-0000000000d3';
SELECT (SELECT count(*) FROM benefits.meter_usage WHERE customer_id = 'c1400000-0000-0000-0000-0000000000d3') AS usage_rows,
       (SELECT count(*) FROM benefits.meter_lots WHERE customer_id = 'c1400000-0000-0000-0000-0000000000d3') AS lots,
       (SELECT count(*) FROM benefits.meter_balances WHERE customer_id = 'c1400000-0000-0000-0000-0000000000d3') AS balances;
-- The cascade's trigger function runs only as that trigger.
SELECT benefits.meter_balance_deleted();
CREATE TABLE public.not_balances (customer_id uuid, meter_id uuid);
CREATE TRIGGER t AFTER DELETE ON public.not_balances FOR EACH ROW EXECUTE FUNCTION benefits.meter_balance_deleted();
INSERT INTO public.not_balances VALUES (NULL, NULL);
DELETE FROM public.not_balances;
DROP TABLE public.not_balances;
SET ROLE benefits_admin;
SELECT has_function_privilege('benefits.meter_balance_deleted()', 'EXECUTE') AS admin_may_execute;
RESET ROLE;

-- 17. A statement activating several subscriptions grants set-based: the
--     same lots, after the usage not yet taken from the lots is settled.
INSERT INTO benefits.customers (id, organization_id, external_id) VALUES
    ('c1400000-0000-0000-0000-0000000000d5', 'c1400000-0000-0000-0000-00000000000a', 'lots-5'),
    ('c1400000-0000-0000-0000-0000000000d6', 'c1400000-0000-0000-0000-00000000000a', 'lots-6');
SELECT benefits.adjust_credits('c1400000-0000-0000-0000-0000000000d5', 'c1400000-0000-0000-0000-0000000000a1',
    10, 'before subscribing');
SELECT benefits.record_usage('c1400000-0000-0000-0000-0000000000d5', 'c1400000-0000-0000-0000-0000000000a1', 4);
SET client_min_messages = debug1;
INSERT INTO benefits.subscriptions (customer_id, product_id, status, current_period_end) VALUES
    ('c1400000-0000-0000-0000-0000000000d5', 'c1400000-0000-0000-0000-0000000000b1', 'active', now() + interval '30 days'),
    ('c1400000-0000-0000-0000-0000000000d6', 'c1400000-0000-0000-0000-0000000000b1', 'active', now() + interval '30 days');
RESET client_min_messages;
SELECT c.external_id, l.source, l.units, l.remaining, l.expires_at = s.current_period_end AS expires_at_period_end
  FROM benefits.meter_lots l JOIN benefits.customers c ON c.id = l.customer_id
  LEFT JOIN benefits.grants g ON g.id = l.grant_id LEFT JOIN benefits.subscriptions s ON s.id = g.subscription_id
 WHERE l.customer_id IN ('c1400000-0000-0000-0000-0000000000d5', 'c1400000-0000-0000-0000-0000000000d6')
 ORDER BY c.external_id, l.id;
SELECT c.external_id, m.balance, m.consumed - m.settled_consumed AS not_yet_taken,
       (SELECT string_agg(reason || ' ' || units, ', ' ORDER BY id) FROM benefits.meter_credits x
         WHERE x.customer_id = c.id) AS ledger
  FROM benefits.meter_balances m JOIN benefits.customers c ON c.id = m.customer_id
 WHERE m.customer_id IN ('c1400000-0000-0000-0000-0000000000d5', 'c1400000-0000-0000-0000-0000000000d6')
 ORDER BY c.external_id;

-- Leave no events for the tests after this one, which count them.
DELETE FROM benefits.outbox WHERE organization_id = 'c1400000-0000-0000-0000-00000000000a';
