-- Manual grants, the grant state machine, and license keys through grants.
INSERT INTO benefits.organizations (id, name) VALUES
    ('00000000-0000-0000-0000-0000000000a1', 'Grants Org'),
    ('00000000-0000-0000-0000-0000000000a2', 'Other Org');
INSERT INTO benefits.customers (id, organization_id, external_id, email) VALUES
    ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000a1', 'user-1', 'one@example.com'),
    ('00000000-0000-0000-0000-0000000000c2', '00000000-0000-0000-0000-0000000000a2', 'user-2', 'two@example.com');
INSERT INTO benefits.benefits (id, organization_id, type, description, properties) VALUES
    ('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000a1', 'license_keys', 'Key',
     '{"prefix": "MYAPP", "expires": null, "activations": {"limit": 1, "enable_customer_admin": false}, "limit_usage": null}'),
    ('00000000-0000-0000-0000-0000000000b2', '00000000-0000-0000-0000-0000000000a1', 'custom', 'Note',
     '{"note": "Thanks"}');

-- A license grant is active at once and names its key, which has the
-- generated shape: prefix, seven groups of four Crockford symbols.
SELECT state, granted_at IS NOT NULL AS granted, properties ? 'license_key_id' AS has_key,
       properties->>'display_key' ~ '^\*\*\*\*-[0-9A-HJKMNP-TV-Z]{4}$' AS display_ok
  FROM benefits.grant_benefit('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000b1');
SELECT key ~ '^MYAPP(-[0-9A-HJKMNP-TV-Z]{4}){7}$' AS shape_ok, status, limit_activations, limit_usage, expires_at
  FROM benefits.license_keys WHERE customer_id = '00000000-0000-0000-0000-0000000000c1';
SELECT key AS first_key FROM benefits.license_keys WHERE customer_id = '00000000-0000-0000-0000-0000000000c1' \gset

-- Granting again is idempotent: one grant, one key.
SELECT state FROM benefits.grant_benefit('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000b1');
SELECT count(*) AS grants FROM benefits.grants WHERE customer_id = '00000000-0000-0000-0000-0000000000c1';
SELECT count(*) AS keys FROM benefits.license_keys WHERE customer_id = '00000000-0000-0000-0000-0000000000c1';

-- Revoking revokes the key; granting again restores the same key.
SELECT benefits.revoke_benefit('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000b1');
SELECT state, revoked_at IS NOT NULL AS revoked FROM benefits.grants WHERE benefit_id = '00000000-0000-0000-0000-0000000000b1';
SELECT status FROM benefits.license_keys WHERE customer_id = '00000000-0000-0000-0000-0000000000c1';
SELECT benefits.revoke_benefit('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000b1');
SELECT state, revoked_at IS NULL AS cleared FROM benefits.grant_benefit('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000b1');
SELECT status, key = :'first_key' AS same_key FROM benefits.license_keys WHERE customer_id = '00000000-0000-0000-0000-0000000000c1';

-- A custom benefit is active at once.
SELECT state FROM benefits.grant_benefit('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000b2');

-- list_grants filters.
SELECT count(*) FROM benefits.list_grants(customer_id => '00000000-0000-0000-0000-0000000000c1');
SELECT count(*) FROM benefits.list_grants(benefit_id => '00000000-0000-0000-0000-0000000000b2');
SELECT benefits.revoke_benefit('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000b2');
SELECT count(*) FROM benefits.list_grants('00000000-0000-0000-0000-0000000000c1', is_granted => true);
SELECT count(*) FROM benefits.list_grants('00000000-0000-0000-0000-0000000000c1', is_granted => false);

-- The state machine rejects any other transition, whoever writes the table.
UPDATE benefits.grants SET state = 'created' WHERE benefit_id = '00000000-0000-0000-0000-0000000000b1';
UPDATE benefits.grants SET state = 'bogus' WHERE benefit_id = '00000000-0000-0000-0000-0000000000b1';
INSERT INTO benefits.grants (customer_id, benefit_id, state)
    VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000b2', 'revoked');
-- A grant written directly takes its organization from the customer.
INSERT INTO benefits.benefits (id, organization_id, type, description, properties) VALUES
    ('00000000-0000-0000-0000-0000000000b3', '00000000-0000-0000-0000-0000000000a1', 'custom', 'Direct', '{"note": null}');
INSERT INTO benefits.grants (customer_id, benefit_id, state)
    VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000b3', 'active')
    RETURNING organization_id, granted_at IS NOT NULL AS granted;

-- Errors name the argument and write nothing.
SELECT benefits.grant_benefit(NULL, '00000000-0000-0000-0000-0000000000b1');
SELECT benefits.grant_benefit('00000000-0000-0000-0000-0000000000c1', NULL);
SELECT benefits.grant_benefit('00000000-0000-0000-0000-0000000000ff', '00000000-0000-0000-0000-0000000000b1');
SELECT benefits.grant_benefit('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000ff');
SELECT benefits.grant_benefit('00000000-0000-0000-0000-0000000000c2', '00000000-0000-0000-0000-0000000000b1');
SELECT benefits.revoke_benefit('00000000-0000-0000-0000-0000000000c2', '00000000-0000-0000-0000-0000000000b1');
UPDATE benefits.benefits SET deleted_at = now() WHERE id = '00000000-0000-0000-0000-0000000000b2';
SELECT benefits.grant_benefit('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000b2');
SELECT count(*) AS grants_of_other_customer FROM benefits.grants WHERE customer_id = '00000000-0000-0000-0000-0000000000c2';

-- An imported key too short to show a part of shows none of it.
INSERT INTO benefits.benefits (id, organization_id, type, description, properties) VALUES
    ('00000000-0000-0000-0000-0000000000b4', '00000000-0000-0000-0000-0000000000a1', 'license_keys', 'Imported',
     '{"prefix": null, "expires": null, "activations": null, "limit_usage": null}');
SELECT display_key FROM benefits.import_license_key('00000000-0000-0000-0000-0000000000c1',
    '00000000-0000-0000-0000-0000000000b4', 'bob-key');

-- Bulk manual grants: one call for many customers gives the same result as
-- one grant_benefit each, keys and events included.
INSERT INTO benefits.customers (id, organization_id, external_id)
    SELECT ('00000000-0000-0000-0000-0000000001' || lpad(i::text, 2, '0'))::uuid,
           '00000000-0000-0000-0000-0000000000a1', 'bulk-' || i
      FROM generate_series(1, 5) i;
INSERT INTO benefits.webhook_endpoints (organization_id, url, secret, events)
    VALUES ('00000000-0000-0000-0000-0000000000a1', 'https://hooks.example.com/bulk', 'whsec_dGVzdA==',
            ARRAY['benefit_grant.created']);
-- Customer 01 already holds a manual grant, 02 a revoked one: 3 new, 1 restored, 1 untouched.
SELECT state FROM benefits.grant_benefit('00000000-0000-0000-0000-000000000101', '00000000-0000-0000-0000-0000000000b1');
SELECT state FROM benefits.grant_benefit('00000000-0000-0000-0000-000000000102', '00000000-0000-0000-0000-0000000000b1');
SELECT benefits.revoke_benefit('00000000-0000-0000-0000-000000000102', '00000000-0000-0000-0000-0000000000b1');
SELECT key AS revoked_key FROM benefits.license_keys WHERE customer_id = '00000000-0000-0000-0000-000000000102' \gset
SELECT count(*) AS events_before FROM benefits.outbox WHERE organization_id = '00000000-0000-0000-0000-0000000000a1' \gset
SELECT benefits.grant_benefit_bulk(ARRAY(SELECT id FROM benefits.customers WHERE external_id LIKE 'bulk-%'),
                                   '00000000-0000-0000-0000-0000000000b1') AS granted;
SELECT c.external_id, g.state, k.status, k.key ~ '^MYAPP(-[0-9A-HJKMNP-TV-Z]{4}){7}$' AS shape_ok,
       g.properties->>'license_key_id' = k.id::text AS grant_names_key,
       k.display_key = '****-' || right(k.key, 4) AS display_ok, k.limit_activations
  FROM benefits.customers c JOIN benefits.grants g ON g.customer_id = c.id
  JOIN benefits.license_keys k ON k.customer_id = c.id AND k.benefit_id = g.benefit_id
 WHERE c.external_id LIKE 'bulk-%' AND g.benefit_id = '00000000-0000-0000-0000-0000000000b1' ORDER BY 1;
SELECT key = :'revoked_key' AS restored_same_key FROM benefits.license_keys WHERE customer_id = '00000000-0000-0000-0000-000000000102';
SELECT count(*) - :events_before AS new_created_events FROM benefits.outbox
 WHERE organization_id = '00000000-0000-0000-0000-0000000000a1' AND event_type = 'benefit_grant.created';
-- Again: nothing changes.
SELECT benefits.grant_benefit_bulk(ARRAY(SELECT id FROM benefits.customers WHERE external_id LIKE 'bulk-%'),
                                   '00000000-0000-0000-0000-0000000000b1') AS granted_again;
-- Errors name the argument, and nothing is written.
SELECT benefits.grant_benefit_bulk(NULL, '00000000-0000-0000-0000-0000000000b1');
SELECT benefits.grant_benefit_bulk(ARRAY['00000000-0000-0000-0000-000000000103']::uuid[], NULL);
SELECT benefits.grant_benefit_bulk(ARRAY['00000000-0000-0000-0000-000000000103', '00000000-0000-0000-0000-0000000000c2']::uuid[],
                                   '00000000-0000-0000-0000-0000000000b4');
SELECT count(*) AS keys_of_bulk_3 FROM benefits.license_keys
 WHERE customer_id = '00000000-0000-0000-0000-000000000103' AND benefit_id = '00000000-0000-0000-0000-0000000000b4';
SELECT benefits.grant_benefit_bulk(ARRAY['00000000-0000-0000-0000-000000000103']::uuid[], '00000000-0000-0000-0000-0000000000ff');
DELETE FROM benefits.webhook_endpoints WHERE organization_id = '00000000-0000-0000-0000-0000000000a1';
