-- License keys: validate_license (every code, in order), activate_license,
-- deactivate_license, import, rotation, admin updates, the read-only path and
-- its counters, and every error.
\set SHOW_CONTEXT never

INSERT INTO benefits.organizations (name) VALUES ('License Org') RETURNING id AS org \gset
INSERT INTO benefits.organizations (name) VALUES ('Other License Org') RETURNING id AS other_org \gset
INSERT INTO benefits.customers (organization_id, email) VALUES (:'org', 'ada@example.com') RETURNING id AS cust \gset
INSERT INTO benefits.customers (organization_id, email) VALUES (:'org', 'bob@example.com') RETURNING id AS cust2 \gset
INSERT INTO benefits.customers (organization_id, email) VALUES (:'other_org', 'eve@example.com') RETURNING id AS other_cust \gset
INSERT INTO benefits.benefits (organization_id, type, description, properties)
VALUES (:'org', 'license_keys', 'App license',
        '{"prefix": "MYAPP", "expires": null, "activations": {"limit": 2, "enable_customer_admin": false}, "limit_usage": 10}')
RETURNING id AS ben \gset
INSERT INTO benefits.benefits (organization_id, type, description, properties)
VALUES (:'org', 'license_keys', 'Plain license',
        '{"prefix": null, "expires": null, "activations": null, "limit_usage": null}')
RETURNING id AS plain_ben \gset
INSERT INTO benefits.benefits (organization_id, type, description, properties)
VALUES (:'org', 'custom', 'A note', '{"note": "hello"}')
RETURNING id AS custom_ben \gset
INSERT INTO benefits.benefits (organization_id, type, description, properties)
VALUES (:'other_org', 'license_keys', 'Other license', '{"prefix": null, "expires": null, "activations": null, "limit_usage": null}')
RETURNING id AS other_ben \gset

-- Import a key from another system; NULL limits come from the benefit.
SELECT key, display_key, status, usage, limit_usage, limit_activations, expires_at IS NULL AS no_expiry,
       customer_id = :'cust' AS for_cust, organization_id = :'org' AS in_org
  FROM benefits.import_license_key(:'cust', :'ben', '  legacy-key-0001 ');
-- Rotation turns it into a generated key with the benefit's prefix.
SELECT id AS kid, key AS legacy_key FROM benefits.license_keys WHERE customer_id = :'cust' \gset
SELECT k.id = :'kid' AS same_row, k.key ~ '^MYAPP(-[0-9A-HJKMNP-TV-Z]{4}){7}$' AS generated_shape,
       k.display_key = '****-' || right(k.key, 4) AS display, k.key <> :'legacy_key' AS changed
  FROM benefits.rotate_license_key(:'kid') AS k;
SELECT key AS k1 FROM benefits.license_keys WHERE id = :'kid' \gset

-- valid: case, surrounding spaces and ambiguous symbols (O for 0, I/L for 1) do not matter.
SELECT valid, code, message, license_key_id = :'kid' AS kid, customer_id = :'cust' AS cust,
       benefit_id = :'ben' AS ben, display_key = '****-' || right(:'k1', 4) AS display, status,
       usage, limit_usage, limit_activations, activation_id
  FROM benefits.validate_license(:'k1', :'org');
SELECT code FROM benefits.validate_license(E'\t ' || lower(:'k1') || E' \n', :'org');
SELECT code FROM benefits.validate_license(translate(lower(:'k1'), '01', 'ol'), :'org');
SELECT code FROM benefits.validate_license(translate(:'k1', '01', 'OI'), :'org');

-- not_found: unknown, mistyped (check symbol), of another organization, empty,
-- blank, too long, NULL.  Every answer is the same, with no key field set.
SELECT overlay(:'k1' PLACING CASE WHEN right(:'k1', 1) = '0' THEN '1' ELSE '0' END
               FROM length(:'k1')) AS k1_typo \gset
SELECT DISTINCT v::text AS answer, count(*)
  FROM (VALUES ('MYAPP-0000-0000-0000-0000-0000-0000-0000', :'org'::uuid),
               ('no-such-key', :'org'),
               (:'k1_typo', :'org'),
               (:'k1', :'other_org'),
               ('', :'org'),
               ('   ', :'org'),
               (repeat('A', 300), :'org'),
               (NULL, :'org')) AS t(key, org),
       LATERAL benefits.validate_license(t.key, t.org) AS v
 GROUP BY 1;

-- Activations: two allowed by the benefit.
SELECT ok, code, message, label, conditions, meta, activations, limit_activations,
       license_key_id = :'kid' AS kid, activation_id IS NOT NULL AS has_id, created_at IS NOT NULL AS has_created
  FROM benefits.activate_license(:'k1', :'org', 'laptop', '{"machine": "m1", "os": "linux"}', '{"hostname": "ada-laptop"}');
SELECT id AS act1 FROM benefits.license_key_activations WHERE license_key_id = :'kid' AND label = 'laptop' \gset
SELECT ok, code, activations FROM benefits.activate_license(lower(:'k1'), :'org', 'desktop');
SELECT ok, code, message, activation_id, activations, limit_activations
  FROM benefits.activate_license(:'k1', :'org', 'third');
SELECT count(*) FROM benefits.license_key_activations WHERE license_key_id = :'kid';

-- activation_not_found, conditions_mismatch (exact match), then valid.
SELECT code, activation_id FROM benefits.validate_license(:'k1', :'org', activation_id => '00000000-0000-0000-0000-000000000001');
SELECT code FROM benefits.validate_license(:'k1', :'org', activation_id => :'act1');
SELECT code FROM benefits.validate_license(:'k1', :'org', activation_id => :'act1', conditions => '{"machine": "m2", "os": "linux"}');
SELECT code FROM benefits.validate_license(:'k1', :'org', activation_id => :'act1', conditions => '{"machine": "m1"}');
SELECT code FROM benefits.validate_license(:'k1', :'org', activation_id => :'act1', conditions => '{"machine": "m1", "os": "linux", "cpu": 4}');
SELECT code, activation_id = :'act1' AS act
  FROM benefits.validate_license(:'k1', :'org', activation_id => :'act1', conditions => '{"os": "linux", "machine": "m1"}');
-- An activation stored with {} matches only {}; conditions without an activation are not compared.
SELECT id AS act2 FROM benefits.license_key_activations WHERE license_key_id = :'kid' AND label = 'desktop' \gset
SELECT code FROM benefits.validate_license(:'k1', :'org', activation_id => :'act2');
SELECT code FROM benefits.validate_license(:'k1', :'org', activation_id => :'act2', conditions => '{"machine": "m1"}');
SELECT code FROM benefits.validate_license(:'k1', :'org', conditions => '{"anything": true}');

-- benefit_mismatch, customer_mismatch.
SELECT code FROM benefits.validate_license(:'k1', :'org', benefit_id => :'plain_ben');
SELECT code FROM benefits.validate_license(:'k1', :'org', benefit_id => :'ben');
SELECT code FROM benefits.validate_license(:'k1', :'org', customer_id => :'cust2');
SELECT code FROM benefits.validate_license(:'k1', :'org', benefit_id => :'ben', customer_id => :'cust');

-- Usage: limit 10.
SELECT valid, code, usage, limit_usage FROM benefits.validate_license(:'k1', :'org', increment_usage => 4);
SELECT valid, code, message, usage FROM benefits.validate_license(:'k1', :'org', increment_usage => 7);
SELECT valid, code, usage FROM benefits.validate_license(:'k1', :'org', increment_usage => 6);
SELECT valid, code, message, usage FROM benefits.validate_license(:'k1', :'org', increment_usage => 1);
-- Without increment_usage an exhausted key still validates.
SELECT valid, code, usage FROM benefits.validate_license(:'k1', :'org');
SELECT usage FROM benefits.license_keys WHERE id = :'kid';

-- Order: each check wins over every later one.
SELECT code FROM benefits.validate_license(:'k1', :'org', activation_id => '00000000-0000-0000-0000-000000000001',
                                           conditions => '{"x": 1}', benefit_id => :'plain_ben',
                                           customer_id => :'cust2', increment_usage => 100);
SELECT code FROM benefits.validate_license(:'k1', :'org', activation_id => :'act1', conditions => '{"x": 1}',
                                           benefit_id => :'plain_ben', customer_id => :'cust2', increment_usage => 100);
SELECT code FROM benefits.validate_license(:'k1', :'org', activation_id => :'act1', conditions => '{"machine": "m1", "os": "linux"}',
                                           benefit_id => :'plain_ben', customer_id => :'cust2', increment_usage => 100);
SELECT code FROM benefits.validate_license(:'k1', :'org', benefit_id => :'ben', customer_id => :'cust2', increment_usage => 100);
SELECT code FROM benefits.validate_license(:'k1', :'org', benefit_id => :'ben', customer_id => :'cust', increment_usage => 100);

-- expired, then disabled (wins over expired), then revoked (wins over both).
SELECT status, expires_at < now() AS past
  FROM benefits.update_license_key(:'kid', expires_at => now() - interval '1 minute');
SELECT valid, code, message, expires_at < now() AS past FROM benefits.validate_license(:'k1', :'org', activation_id => '00000000-0000-0000-0000-000000000001');
SELECT ok, code, message, activation_id FROM benefits.activate_license(:'k1', :'org', 'late');
SELECT status FROM benefits.update_license_key(:'kid', status => 'disabled');
SELECT valid, code, message, status FROM benefits.validate_license(:'k1', :'org');
SELECT ok, code FROM benefits.activate_license(:'k1', :'org', 'late');
UPDATE benefits.license_keys SET status = 'revoked' WHERE id = :'kid';
SELECT valid, code, message, status FROM benefits.validate_license(:'k1', :'org');
SELECT ok, code FROM benefits.activate_license(:'k1', :'org', 'late');
-- Deactivation works whatever the key's status.
SELECT benefits.deactivate_license(:'k1', :'org', :'act2');
UPDATE benefits.license_keys SET status = 'granted' WHERE id = :'kid';
SELECT code FROM benefits.validate_license(:'k1', :'org');
SELECT expires_at FROM benefits.update_license_key(:'kid', expires_at => 'infinity');
SELECT expires_at FROM benefits.update_license_key(:'kid', unset => '{expires_at}');
SELECT code FROM benefits.validate_license(:'k1', :'org');

-- Deactivate: true once; false for a foreign, unknown or malformed key, or an unknown activation.
SELECT benefits.deactivate_license(:'k1', :'other_org', :'act1');
SELECT benefits.deactivate_license('no-such-key', :'org', :'act1');
SELECT benefits.deactivate_license(:'k1_typo', :'org', :'act1');
SELECT benefits.deactivate_license(NULL, :'org', :'act1');
SELECT benefits.deactivate_license(:'k1', :'org', :'act1');
SELECT benefits.deactivate_license(:'k1', :'org', :'act1');
SELECT code FROM benefits.validate_license(:'k1', :'org', activation_id => :'act1');
SELECT ok, code, activations FROM benefits.activate_license(:'k1', :'org', 'again');
SELECT count(*) FROM benefits.license_key_activations WHERE license_key_id = :'kid' AND deactivated_at IS NULL;

-- activations_unsupported: a key without an activation limit.
SELECT key AS k2, id AS kid2 FROM benefits.import_license_key(:'cust', :'plain_ben', '6F9619FF-8B86-D011-B42D-00C04FC964FF') \gset
SELECT ok, code, message, limit_activations FROM benefits.activate_license(:'k2', :'org', 'laptop');
-- A UUID-shaped imported key validates case-insensitively; it has no prefix or check symbol.
SELECT valid, code, display_key FROM benefits.validate_license('6f9619ff-8b86-d011-b42d-00c04fc964ff', :'org');
SELECT code FROM benefits.validate_license('6f9619ff-8b86-d011-b42d-00c04fc964fe', :'org');

-- The read-only path: no write, so it works in a READ ONLY transaction;
-- increment_usage and activation do write and are refused there.
BEGIN TRANSACTION READ ONLY;
SELECT valid, code FROM benefits.validate_license(:'k1', :'org');
SELECT valid, code FROM benefits.validate_license(:'k1', :'org', activation_id => (SELECT id FROM benefits.license_key_activations WHERE label = 'again'));
SAVEPOINT s;
SELECT code FROM benefits.validate_license(:'k1', :'org', increment_usage => 1);
ROLLBACK TO s;
SELECT ok FROM benefits.activate_license(:'k1', :'org', 'ro');
ROLLBACK;

-- Counters: validations and last_validated_at arrive with a flush.  (The
-- background worker flushes too; after an explicit flush every count is in.)
SELECT benefits.flush_validation_stats() >= 0 AS flushed;
SELECT validations AS v0 FROM benefits.license_keys WHERE id = :'kid2' \gset
SELECT valid FROM benefits.validate_license(:'k2', :'org');
SELECT valid FROM benefits.validate_license(lower(:'k2'), :'org');
SELECT valid FROM benefits.validate_license(:'k2', :'org', customer_id => :'cust2');
BEGIN TRANSACTION READ ONLY;
SELECT valid, validations - :v0 AS seen, last_validated_at IS NOT NULL AS stamped
  FROM benefits.validate_license(:'k2', :'org');
COMMIT;
SELECT benefits.flush_validation_stats() >= 0 AS flushed;
SELECT validations - :v0 AS counted, last_validated_at > now() - interval '1 hour' AS recent
  FROM benefits.license_keys WHERE id = :'kid2';
SELECT pending_keys, pending_validations, dropped, capacity > 0 AS has_capacity FROM benefits.validation_stats();
-- increment_usage counts in the same transaction.
SELECT validations AS v1 FROM benefits.license_keys WHERE id = :'kid2' \gset
SELECT valid, usage, validations - :v1 AS seen FROM benefits.validate_license(:'k2', :'org', increment_usage => 2);
SELECT usage, validations - :v1 AS counted FROM benefits.license_keys WHERE id = :'kid2';
-- A flush rolled back puts its counts back.
SELECT valid FROM benefits.validate_license(:'k2', :'org');
BEGIN;
SELECT benefits.flush_validation_stats() >= 0 AS flushed;
ROLLBACK;
SELECT benefits.flush_validation_stats() >= 0 AS flushed;
SELECT validations - :v1 AS counted FROM benefits.license_keys WHERE id = :'kid2';

-- Programming errors raise.
SELECT benefits.validate_license(:'k1', NULL);
SELECT benefits.validate_license(:'k1', :'org', conditions => '[1, 2]');
SELECT benefits.validate_license(:'k1', :'org', conditions => '"machine"');
SELECT benefits.validate_license(:'k1', :'org', increment_usage => 0);
SELECT benefits.validate_license(:'k1', :'org', increment_usage => -3);
SELECT benefits.activate_license(:'k1', NULL, 'x');
SELECT benefits.activate_license(:'k1', :'org', NULL);
SELECT benefits.activate_license(:'k1', :'org', '  ');
SELECT benefits.activate_license(:'k1', :'org', 'x', conditions => '[]');
SELECT benefits.activate_license(:'k1', :'org', 'x', meta => '42');
SELECT benefits.deactivate_license(:'k1', NULL, :'act1');
SELECT benefits.deactivate_license(:'k1', :'org', NULL);
-- ... and write nothing.
SELECT count(*) FROM benefits.license_key_activations WHERE license_key_id = :'kid' AND deactivated_at IS NULL;

-- Import errors.
SELECT benefits.import_license_key(NULL, :'ben', 'k');
SELECT benefits.import_license_key(:'cust2', NULL, 'k');
SELECT benefits.import_license_key(:'cust2', :'ben', NULL);
SELECT benefits.import_license_key(:'cust2', :'ben', '   ');
SELECT benefits.import_license_key(:'cust2', :'ben', repeat('x', 300));
SELECT benefits.import_license_key(:'cust2', :'ben', E'abc\x01def');
SELECT benefits.import_license_key(:'cust2', :'ben', :'k1_typo');
SELECT benefits.import_license_key(:'cust2', :'ben', lower(:'k1'));
SELECT benefits.import_license_key(:'cust', :'ben', 'another-key');
SELECT benefits.import_license_key('00000000-0000-0000-0000-000000000001', :'ben', 'k');
SELECT benefits.import_license_key(:'cust2', '00000000-0000-0000-0000-000000000002', 'k');
SELECT benefits.import_license_key(:'cust2', :'custom_ben', 'k');
SELECT benefits.import_license_key(:'cust2', :'other_ben', 'k');
SELECT benefits.import_license_key(:'cust2', :'ben', 'k', limit_usage => 0);
SELECT benefits.import_license_key(:'cust2', :'ben', 'k', limit_activations => -1);
SELECT benefits.import_license_key(:'cust2', :'ben', 'k', usage => -1);
SELECT benefits.import_license_key(:'cust2', :'ben', 'k', status => 'active');
SELECT count(*) FROM benefits.license_keys WHERE customer_id = :'cust2';
-- Explicit limits, usage, expiry and status.
SELECT key, status, usage, limit_usage, limit_activations, expires_at > now() AS future
  FROM benefits.import_license_key(:'cust2', :'ben', 'Bob-Key', limit_usage => 3, limit_activations => 1,
                                   expires_at => now() + interval '1 day', status => 'disabled', usage => 2);
SELECT code FROM benefits.validate_license('bob-key', :'org');

-- Rotation keeps usage, counters and activations; the old key is gone.
SELECT usage AS u0, validations AS v2, display_key AS d0 FROM benefits.license_keys WHERE id = :'kid' \gset
SELECT id = :'kid' AS same_row, usage = :u0 AS same_usage, validations = :v2 AS same_validations,
       display_key <> :'d0' AS new_display, key <> :'k1' AS new_key
  FROM benefits.rotate_license_key(:'kid');
SELECT key AS k1b FROM benefits.license_keys WHERE id = :'kid' \gset
SELECT code FROM benefits.validate_license(:'k1', :'org');
SELECT code, usage = :u0 AS same_usage FROM benefits.validate_license(:'k1b', :'org');
SELECT code FROM benefits.validate_license(:'k1b', :'org', activation_id => (SELECT id FROM benefits.license_key_activations WHERE label = 'again'));
SELECT benefits.rotate_license_key(NULL);
SELECT benefits.rotate_license_key('00000000-0000-0000-0000-000000000003');

-- Admin updates.
SELECT status, limit_usage, limit_activations, usage
  FROM benefits.update_license_key(:'kid', limit_usage => 50, limit_activations => 5, usage => 0);
SELECT code, usage FROM benefits.validate_license(:'k1b', :'org', increment_usage => 50);
SELECT limit_usage, limit_activations FROM benefits.update_license_key(:'kid', unset => '{limit_usage,limit_activations}');
SELECT code, usage FROM benefits.validate_license(:'k1b', :'org', increment_usage => 1000);
SELECT ok, code FROM benefits.activate_license(:'k1b', :'org', 'more');
SELECT status FROM benefits.update_license_key(:'kid', status => 'disabled');
SELECT code FROM benefits.validate_license(:'k1b', :'org');
SELECT status FROM benefits.update_license_key(:'kid', status => 'granted');
SELECT code FROM benefits.validate_license(:'k1b', :'org');
SELECT benefits.update_license_key(NULL);
SELECT benefits.update_license_key('00000000-0000-0000-0000-000000000004');
SELECT benefits.update_license_key(:'kid', status => 'revoked');
SELECT benefits.update_license_key(:'kid', status => 'paused');
SELECT benefits.update_license_key(:'kid', limit_usage => 0);
SELECT benefits.update_license_key(:'kid', limit_activations => -2);
SELECT benefits.update_license_key(:'kid', usage => -1);
SELECT benefits.update_license_key(:'kid', unset => '{status}');
SELECT benefits.update_license_key(:'kid', limit_usage => 5, unset => '{limit_usage}');
UPDATE benefits.license_keys SET status = 'revoked' WHERE id = :'kid';
SELECT benefits.update_license_key(:'kid', status => 'granted');
SELECT status, limit_usage FROM benefits.update_license_key(:'kid', limit_usage => 7);

-- Imported keys and grants: granting the benefit adopts the imported key, and
-- rotation updates the key's display form in its grants.
SELECT id AS bob_kid FROM benefits.license_keys WHERE customer_id = :'cust2' AND benefit_id = :'ben' \gset
SELECT status FROM benefits.update_license_key(:'bob_kid', status => 'granted');
SELECT state, properties->>'license_key_id' = :'bob_kid' AS adopted,
       properties->>'display_key' = (SELECT display_key FROM benefits.license_keys WHERE id = :'bob_kid') AS display
  FROM benefits.grant_benefit(:'cust2', :'ben');
SELECT key, status FROM benefits.license_keys WHERE id = :'bob_kid';
SELECT display_key AS bob_display FROM benefits.rotate_license_key(:'bob_kid') \gset
SELECT g.properties->>'display_key' = :'bob_display' AS grant_shows_new_key
  FROM benefits.grants g WHERE g.customer_id = :'cust2' AND g.benefit_id = :'ben';
SELECT code FROM benefits.validate_license('BOB-KEY', :'org');
SELECT 1 AS revoked FROM benefits.revoke_benefit(:'cust2', :'ben');
SELECT status FROM benefits.license_keys WHERE id = :'bob_kid';
SELECT state, properties->>'license_key_id' = :'bob_kid' AS same_key FROM benefits.grant_benefit(:'cust2', :'ben');
