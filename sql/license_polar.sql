-- Polar's behaviours, selectable per license benefit: key_per = grant (each
-- grant its own key: two purchases, two keys, each revoked with its own
-- grant) and conditions_match = subset (every stored condition must equal the
-- given one; an activation without conditions accepts any), next to the
-- defaults (key_per = customer, conditions_match = exact).
\set SHOW_CONTEXT never

INSERT INTO benefits.organizations (id, name) VALUES ('2a000000-0000-0000-0000-000000000001', 'Polar Keys Org');
INSERT INTO benefits.customers (id, organization_id, external_id) VALUES
    ('2c000000-0000-0000-0000-000000000001', '2a000000-0000-0000-0000-000000000001', 'buyer'),
    ('2c000000-0000-0000-0000-000000000002', '2a000000-0000-0000-0000-000000000001', 'bulk-1'),
    ('2c000000-0000-0000-0000-000000000003', '2a000000-0000-0000-0000-000000000001', 'bulk-2');
INSERT INTO benefits.products (id, organization_id, name) VALUES
    ('2d000000-0000-0000-0000-000000000001', '2a000000-0000-0000-0000-000000000001', 'Per purchase'),
    ('2d000000-0000-0000-0000-000000000002', '2a000000-0000-0000-0000-000000000001', 'Per customer');
SELECT id AS per_grant, properties FROM benefits.create_benefit('license_keys', '2a000000-0000-0000-0000-000000000001',
    'One key per purchase', '{"prefix": "PG", "activations": 3, "key_per": "grant", "conditions_match": "subset"}') \gset
SELECT :'per_grant' <> '' AS created, :'properties'::jsonb->'key_per' AS key_per,
       :'properties'::jsonb->'conditions_match' AS conditions_match;
SELECT id AS per_customer, properties FROM benefits.create_benefit('license_keys', '2a000000-0000-0000-0000-000000000001',
    'One key per customer', '{"activations": 2, "key_per": "customer", "conditions_match": "exact"}') \gset
-- The defaults are left out of the normalized properties (Polar's shape).
SELECT :'properties'::jsonb AS default_properties;
SELECT benefits.update_product_benefits('2d000000-0000-0000-0000-000000000001', ARRAY[:'per_grant']::uuid[]);
SELECT benefits.update_product_benefits('2d000000-0000-0000-0000-000000000002', ARRAY[:'per_customer']::uuid[]);

CREATE VIEW keys_of_buyer AS
    SELECT b.description, k.status, k.grant_id IS NOT NULL AS per_grant, g.state AS grant_state,
           CASE WHEN k.grant_id IS NULL THEN 'shared by the grants' ELSE coalesce(g.order_id::text, 'manual') END AS source,
           g.properties->>'license_key_id' = k.id::text AS grant_names_key
      FROM benefits.license_keys k JOIN benefits.benefits b ON b.id = k.benefit_id
      LEFT JOIN benefits.grants g ON g.id = k.grant_id
     WHERE k.customer_id = '2c000000-0000-0000-0000-000000000001'
     ORDER BY b.description, source;

-- Two purchases of each product: two keys per grant, one shared key per customer.
INSERT INTO benefits.orders (id, customer_id, product_id, status) VALUES
    ('2e000000-0000-0000-0000-000000000001', '2c000000-0000-0000-0000-000000000001', '2d000000-0000-0000-0000-000000000001', 'paid'),
    ('2e000000-0000-0000-0000-000000000002', '2c000000-0000-0000-0000-000000000001', '2d000000-0000-0000-0000-000000000001', 'paid'),
    ('2e000000-0000-0000-0000-000000000003', '2c000000-0000-0000-0000-000000000001', '2d000000-0000-0000-0000-000000000002', 'paid'),
    ('2e000000-0000-0000-0000-000000000004', '2c000000-0000-0000-0000-000000000001', '2d000000-0000-0000-0000-000000000002', 'paid');
SELECT * FROM keys_of_buyer;
-- Each per-purchase grant's properties name its own key; the two keys differ.
SELECT count(DISTINCT g.properties->>'license_key_id') AS distinct_keys, count(*) AS grants
  FROM benefits.grants g WHERE g.benefit_id = :'per_grant' AND g.customer_id = '2c000000-0000-0000-0000-000000000001';
SELECT count(DISTINCT g.properties->>'license_key_id') AS distinct_keys, count(*) AS grants
  FROM benefits.grants g WHERE g.benefit_id = :'per_customer' AND g.customer_id = '2c000000-0000-0000-0000-000000000001';
SELECT k.key AS key1 FROM benefits.license_keys k JOIN benefits.grants g ON g.id = k.grant_id
 WHERE g.order_id = '2e000000-0000-0000-0000-000000000001' \gset
SELECT k.key AS key2 FROM benefits.license_keys k JOIN benefits.grants g ON g.id = k.grant_id
 WHERE g.order_id = '2e000000-0000-0000-0000-000000000002' \gset

-- One refund: only that purchase's key is revoked; the other still validates.
UPDATE benefits.orders SET status = 'refunded' WHERE id = '2e000000-0000-0000-0000-000000000001';
SELECT * FROM keys_of_buyer;
SELECT (benefits.validate_license(:'key1', '2a000000-0000-0000-0000-000000000001')).code AS refunded_key,
       (benefits.validate_license(:'key2', '2a000000-0000-0000-0000-000000000001')).code AS kept_key;
-- The portal shows the live purchase's own key, not the refunded one's.
SELECT benefits.create_customer_session('2a000000-0000-0000-0000-000000000001', 'buyer') AS tok \gset
SELECT b->'license_key'->>'key' = :'key2' AS shows_live_key, b->'license_key'->>'status' AS status
  FROM jsonb_array_elements(benefits.customer_portal(:'tok')->'benefits') b WHERE b->>'id' = :'per_grant';
-- The shared key outlives a refund of one of its two purchases.
UPDATE benefits.orders SET status = 'refunded' WHERE id = '2e000000-0000-0000-0000-000000000003';
SELECT description, status FROM keys_of_buyer WHERE description = 'One key per customer';
-- A manual grant of the per-purchase benefit gets a third key of its own; its
-- revoke revokes it alone, and granting it again restores that same key.
SELECT state FROM benefits.grant_benefit('2c000000-0000-0000-0000-000000000001', :'per_grant');
SELECT k.key AS key3 FROM benefits.license_keys k JOIN benefits.grants g ON g.id = k.grant_id
 WHERE g.benefit_id = :'per_grant' AND g.order_id IS NULL AND g.subscription_id IS NULL \gset
SELECT benefits.revoke_benefit('2c000000-0000-0000-0000-000000000001', :'per_grant');
SELECT (benefits.validate_license(:'key3', '2a000000-0000-0000-0000-000000000001')).code AS manual_revoked,
       (benefits.validate_license(:'key2', '2a000000-0000-0000-0000-000000000001')).code AS order_key;
SELECT state FROM benefits.grant_benefit('2c000000-0000-0000-0000-000000000001', :'per_grant');
SELECT (benefits.validate_license(:'key3', '2a000000-0000-0000-0000-000000000001')).code AS restored_same_key;
SELECT count(*) AS keys FROM benefits.license_keys WHERE benefit_id = :'per_grant'
   AND customer_id = '2c000000-0000-0000-0000-000000000001';
-- The last purchase refunded: its key goes too.
UPDATE benefits.orders SET status = 'refunded' WHERE id = '2e000000-0000-0000-0000-000000000002';
SELECT (benefits.validate_license(:'key2', '2a000000-0000-0000-0000-000000000001')).code AS last_refund;

-- The set-based path (grant_benefit_bulk) issues one key per grant too.
SELECT benefits.grant_benefit_bulk(ARRAY['2c000000-0000-0000-0000-000000000002',
                                         '2c000000-0000-0000-0000-000000000003']::uuid[], :'per_grant');
SELECT c.external_id, count(k.id) AS keys, bool_and(k.grant_id = g.id) AS owned_by_grant,
       bool_and(g.properties->>'license_key_id' = k.id::text) AS grant_names_key
  FROM benefits.customers c JOIN benefits.grants g ON g.customer_id = c.id AND g.benefit_id = :'per_grant'
  JOIN benefits.license_keys k ON k.grant_id = g.id
 WHERE c.external_id LIKE 'bulk-%' GROUP BY 1 ORDER BY 1;

-- Conditions, subset (Polar's rule): an activation without conditions
-- accepts any; one with conditions needs each of them, with the same value,
-- among the given ones (more given ones are fine).
SELECT activation_id AS any_act FROM benefits.activate_license(:'key3', '2a000000-0000-0000-0000-000000000001', 'any') \gset
SELECT activation_id AS m1_act FROM benefits.activate_license(:'key3', '2a000000-0000-0000-0000-000000000001', 'm1',
    conditions => '{"machine": "m1", "major": 2}') \gset
SELECT c AS given,
       (benefits.validate_license(:'key3', '2a000000-0000-0000-0000-000000000001', :'any_act', conditions => c::jsonb)).code AS no_conditions_stored,
       (benefits.validate_license(:'key3', '2a000000-0000-0000-0000-000000000001', :'m1_act', conditions => c::jsonb)).code AS m1_major_2_stored
  FROM unnest(ARRAY['{}', '{"machine": "m1", "major": 2}', '{"major": 2.0, "machine": "m1"}',
                    '{"machine": "m1", "major": 2, "os": "linux"}', '{"machine": "m1"}', '{"machine": "m2", "major": 2}',
                    '{"machine": "m1", "major": "2"}', '{"machine": ["m1"], "major": 2}']) AS c;
-- Nested values compare whole.
SELECT activation_id AS nested_act FROM benefits.activate_license(:'key3', '2a000000-0000-0000-0000-000000000001', 'nested',
    conditions => '{"hw": {"cpu": 4, "gpu": true}}') \gset
SELECT c AS given,
       (benefits.validate_license(:'key3', '2a000000-0000-0000-0000-000000000001', :'nested_act', conditions => c::jsonb)).code
  FROM unnest(ARRAY['{"hw": {"gpu": true, "cpu": 4}, "x": 1}', '{"hw": {"cpu": 4}}', '{"hw": {"cpu": 4, "gpu": true, "ram": 8}}']) AS c;

-- Conditions, exact (the default): both sides must be equal.
INSERT INTO benefits.orders (id, customer_id, product_id, status) VALUES
    ('2e000000-0000-0000-0000-000000000005', '2c000000-0000-0000-0000-000000000001', '2d000000-0000-0000-0000-000000000002', 'paid');
SELECT key AS shared_key FROM benefits.license_keys WHERE benefit_id = :'per_customer' \gset
SELECT activation_id AS exact_any FROM benefits.activate_license(:'shared_key', '2a000000-0000-0000-0000-000000000001', 'any') \gset
SELECT activation_id AS exact_m1 FROM benefits.activate_license(:'shared_key', '2a000000-0000-0000-0000-000000000001', 'm1',
    conditions => '{"machine": "m1"}') \gset
SELECT c AS given,
       (benefits.validate_license(:'shared_key', '2a000000-0000-0000-0000-000000000001', :'exact_any', conditions => c::jsonb)).code AS no_conditions_stored,
       (benefits.validate_license(:'shared_key', '2a000000-0000-0000-0000-000000000001', :'exact_m1', conditions => c::jsonb)).code AS m1_stored
  FROM unnest(ARRAY['{}', '{"machine": "m1"}', '{"machine": "m1", "os": "linux"}']) AS c;

-- Bad values are refused naming the path, and nothing is written.
\set VERBOSITY default
SELECT benefits.create_benefit('license_keys', '2a000000-0000-0000-0000-000000000001', 'bad', '{"key_per": "order"}');
SELECT benefits.create_benefit('license_keys', '2a000000-0000-0000-0000-000000000001', 'bad', '{"key_per": true}');
SELECT benefits.create_benefit('license_keys', '2a000000-0000-0000-0000-000000000001', 'bad', '{"conditions_match": "superset"}');
SELECT benefits.create_benefit('license_keys', '2a000000-0000-0000-0000-000000000001', 'bad', '{"conditions_match": 1}');
SELECT count(*) AS written FROM benefits.benefits WHERE description = 'bad';
-- Switching a benefit to key_per = grant: keys already issued stay shared;
-- grants made after the change get keys of their own.
SELECT properties->'key_per' AS key_per FROM benefits.update_benefit(:'per_customer',
    properties => '{"activations": 2, "key_per": "grant"}');
SELECT count(*) FILTER (WHERE grant_id IS NULL) AS shared, count(*) FILTER (WHERE grant_id IS NOT NULL) AS per_grant
  FROM benefits.license_keys WHERE benefit_id = :'per_customer';
INSERT INTO benefits.orders (id, customer_id, product_id, status) VALUES
    ('2e000000-0000-0000-0000-000000000006', '2c000000-0000-0000-0000-000000000001', '2d000000-0000-0000-0000-000000000002', 'paid');
SELECT count(*) FILTER (WHERE grant_id IS NULL AND status = 'granted') AS shared,
       count(*) FILTER (WHERE grant_id IS NOT NULL AND status = 'granted') AS per_grant
  FROM benefits.license_keys WHERE benefit_id = :'per_customer';
