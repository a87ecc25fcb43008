-- License machines: fingerprints on activate/validate (re-activation, uniqueness
-- among live activations), deactivation history, heartbeats and their release
-- by run_maintenance, and every error of these inputs.
\set SHOW_CONTEXT never

INSERT INTO benefits.organizations (name) VALUES ('Machines Org') RETURNING id AS org \gset
INSERT INTO benefits.organizations (name) VALUES ('Other Machines Org') RETURNING id AS other_org \gset
INSERT INTO benefits.customers (organization_id, email) VALUES (:'org', 'ada@example.com') RETURNING id AS cust \gset
SELECT id AS ben FROM benefits.create_benefit('license_keys', :'org', 'Desktop app',
    '{"prefix": "DESK", "activations": {"limit": 2, "heartbeat": "15 minutes"}}') \gset
SELECT id AS ben2 FROM benefits.create_benefit('license_keys', :'org', 'No heartbeat',
    '{"activations": 1}') \gset
SELECT properties FROM benefits.benefits WHERE id = :'ben';
SELECT state FROM benefits.grant_benefit(:'cust', :'ben');
SELECT state FROM benefits.grant_benefit(:'cust', :'ben2');
SELECT id AS kid, key AS k FROM benefits.license_keys WHERE benefit_id = :'ben' \gset
SELECT id AS kid2, key AS k2 FROM benefits.license_keys WHERE benefit_id = :'ben2' \gset

-- A fingerprint activates once; activating it again returns the same
-- activation (code activated, no new seat) with label and meta updated.
SELECT ok, code, label, meta, activations, limit_activations
  FROM benefits.activate_license(:'k', :'org', 'Ada''s laptop', meta => '{"os": "linux"}', fingerprint => 'fp-laptop');
SELECT activation_id AS a1 FROM benefits.activate_license(:'k', :'org', 'Ada''s laptop', fingerprint => 'fp-laptop') \gset
SELECT ok, code, message, activation_id = :'a1' AS same_id, label, meta, conditions, activations
  FROM benefits.activate_license(:'k', :'org', 'Laptop (reinstalled)', conditions => '{"ignored": true}',
                                 meta => '{"os": "debian"}', fingerprint => 'fp-laptop');
SELECT count(*) AS rows, min(label) AS label, min(meta::text) AS meta, min(conditions::text) AS conditions
  FROM benefits.license_key_activations WHERE license_key_id = :'kid';

-- validate_license by fingerprint: the activation it names, or activation_not_found.
SELECT valid, code, activation_id = :'a1' AS same_id
  FROM benefits.validate_license(:'k', :'org', fingerprint => 'fp-laptop');
SELECT valid, code, activation_id FROM benefits.validate_license(:'k', :'org', fingerprint => 'fp-unknown');
SELECT valid, code FROM benefits.validate_license(:'k', :'org', activation_id => :'a1', fingerprint => 'fp-laptop');
SELECT valid, code FROM benefits.validate_license(:'k', :'org', activation_id => :'a1', fingerprint => 'fp-other');
-- Case matters: a fingerprint is compared byte for byte.
SELECT code FROM benefits.validate_license(:'k', :'org', fingerprint => 'FP-LAPTOP');
-- The fingerprint of another key names nothing here.
SELECT ok, code FROM benefits.activate_license(:'k2', :'org', 'Other key', fingerprint => 'fp-on-k2');
SELECT code FROM benefits.validate_license(:'k', :'org', fingerprint => 'fp-on-k2');
-- Earlier checks come first: an unknown key is not_found whatever the fingerprint.
SELECT code, license_key_id FROM benefits.validate_license('NOPE', :'org', fingerprint => 'fp-laptop');
SELECT code FROM benefits.validate_license(:'k', :'other_org', fingerprint => 'fp-laptop');
-- The validation with a fingerprint is read-only, like the plain one.
BEGIN READ ONLY;
SELECT code FROM benefits.validate_license(:'k', :'org', fingerprint => 'fp-laptop');
COMMIT;

-- At the limit, a new fingerprint is refused and a known one still activates.
SELECT ok, code, activations FROM benefits.activate_license(:'k', :'org', 'Desktop', fingerprint => 'fp-desktop');
SELECT ok, code, activations FROM benefits.activate_license(:'k', :'org', 'Third', fingerprint => 'fp-third');
SELECT ok, code, activation_id = :'a1' AS same_id, activations
  FROM benefits.activate_license(:'k', :'org', 'Laptop', fingerprint => 'fp-laptop');
-- Activations without a fingerprint are counted as before.
SELECT ok, code FROM benefits.activate_license(:'k', :'org', 'No fingerprint');

-- Fingerprints are unique per key among live activations, whoever writes the table.
\set VERBOSITY terse
INSERT INTO benefits.license_key_activations (license_key_id, label, fingerprint)
VALUES (:'kid', 'copy', 'fp-laptop');

-- Bad fingerprints raise 22023, naming the field, and write nothing.
\set VERBOSITY default
SELECT code FROM benefits.activate_license(:'k', :'org', 'x', fingerprint => '');
SELECT code FROM benefits.activate_license(:'k', :'org', 'x', fingerprint => repeat('f', 257));
SELECT code FROM benefits.activate_license(:'k', :'org', 'x', fingerprint => E'fp\n1');
SELECT code FROM benefits.validate_license(:'k', :'org', fingerprint => repeat('é', 129));
SELECT code FROM benefits.validate_license(:'k', :'org', fingerprint => E'\x7f');
SELECT length(repeat('f', 256)) AS longest_accepted,
       code FROM benefits.validate_license(:'k', :'org', fingerprint => repeat('f', 256));
SELECT count(*) FROM benefits.license_key_activations WHERE license_key_id = :'kid';

-- Deactivation keeps the row as history (deactivated_at) and frees the seat;
-- the activation no longer validates, by id or fingerprint, and the same
-- fingerprint may activate again (a new activation).
SELECT activation_id AS a2 FROM benefits.validate_license(:'k', :'org', fingerprint => 'fp-desktop') \gset
SELECT benefits.deactivate_license(:'k', :'org', :'a2') AS deactivated;
SELECT benefits.deactivate_license(:'k', :'org', :'a2') AS again;
SELECT label, fingerprint, deactivated_at IS NOT NULL AS deactivated
  FROM benefits.license_key_activations WHERE id = :'a2';
SELECT code FROM benefits.validate_license(:'k', :'org', activation_id => :'a2');
SELECT code FROM benefits.validate_license(:'k', :'org', fingerprint => 'fp-desktop');
SELECT ok, code, activation_id <> :'a2' AS new_id, activations
  FROM benefits.activate_license(:'k', :'org', 'Desktop again', fingerprint => 'fp-desktop');
SELECT fingerprint, count(*) AS rows, count(*) FILTER (WHERE deactivated_at IS NULL) AS live
  FROM benefits.license_key_activations WHERE license_key_id = :'kid' GROUP BY 1 ORDER BY 1;
-- Another organization's key or another key's activation deactivates nothing.
SELECT benefits.deactivate_license(:'k', :'other_org', :'a1') AS other_org,
       benefits.deactivate_license(:'k2', :'org', :'a1') AS other_key;

-- Heartbeats: a single-row write on the activation.
SELECT valid, code, activation_id = :'a1' AS same_id, license_key_id = :'kid' AS key
  FROM benefits.heartbeat_license(:'k', :'org', :'a1');
SELECT heartbeat_at IS NOT NULL AS beat FROM benefits.license_key_activations WHERE id = :'a1';
SELECT valid, code FROM benefits.heartbeat_license(:'k', :'org', :'a2');
SELECT valid, code, license_key_id FROM benefits.heartbeat_license(:'k', :'other_org', :'a1');
SELECT valid, code FROM benefits.heartbeat_license(:'k2', :'org', :'a1');
SELECT valid, code FROM benefits.heartbeat_license('garbage', :'org', :'a1');
SELECT valid, code FROM benefits.heartbeat_license(:'k', :'org', '00000000-0000-4000-8000-000000000000');
SELECT benefits.heartbeat_license(:'k', :'org', NULL);
SELECT benefits.heartbeat_license(:'k', NULL, :'a1');

-- run_maintenance releases the live activations of a heartbeat benefit that
-- missed their window by more than the interval (silent for twice 15
-- minutes), freeing their seats, with a license_key.activation_released
-- event for the endpoints that asked for it.
SELECT id AS ep FROM benefits.create_webhook_endpoint(:'org', 'https://hooks.example.com/machines',
                                                      ARRAY['license_key.activation_released']) \gset
SELECT id AS ep_other FROM benefits.create_webhook_endpoint(:'org', 'https://hooks.example.com/grants',
                                                            ARRAY['benefit_grant.created']) \gset
SELECT activation_id AS a3 FROM benefits.validate_license(:'k', :'org', fingerprint => 'fp-desktop') \gset
UPDATE benefits.license_key_activations SET heartbeat_at = now() - interval '31 minutes' WHERE id = :'a1';
UPDATE benefits.license_key_activations SET created_at = now() - interval '29 minutes' WHERE id = :'a3';
-- The key without a heartbeat keeps its silent activation.
UPDATE benefits.license_key_activations SET created_at = now() - interval '1 year' WHERE license_key_id = :'kid2';
SELECT benefits.run_maintenance() >= 0 AS ran;
SELECT id = :'a1' AS is_a1, deactivated_at IS NOT NULL AS released
  FROM benefits.license_key_activations WHERE id IN (:'a1', :'a3') ORDER BY 1 DESC;
SELECT count(*) FILTER (WHERE deactivated_at IS NULL) AS live_on_k2 FROM benefits.license_key_activations
 WHERE license_key_id = :'kid2';
SELECT endpoint_id = :'ep' AS to_ep, event_type, payload->>'type' AS type,
       payload->'data'->>'activation_id' = :'a1' AS activation, payload->'data'->>'license_key_id' = :'kid' AS key,
       payload->'data'->>'fingerprint' AS fingerprint, payload->'data'->>'heartbeat' AS heartbeat,
       payload->'data'->>'display_key' ~ '^\*\*\*\*-' AS display_key,
       payload->'data'->>'last_heartbeat_at' ~ 'Z$' AS last_heartbeat_at, payload::text !~ :'k' AS no_full_key
  FROM benefits.outbox WHERE event_type = 'license_key.activation_released';
-- The released machine learns it from its next heartbeat; its seat is free.
SELECT valid, code FROM benefits.heartbeat_license(:'k', :'org', :'a1');
SELECT ok, code, activations FROM benefits.activate_license(:'k', :'org', 'Laptop', fingerprint => 'fp-laptop');
-- A second run releases nothing more.
SELECT benefits.run_maintenance() >= 0 AS ran;
SELECT count(*) AS events FROM benefits.outbox WHERE event_type = 'license_key.activation_released';
-- A heartbeat keeps an activation past its first window.
SELECT code FROM benefits.heartbeat_license(:'k', :'org', :'a3');
UPDATE benefits.license_key_activations SET created_at = now() - interval '2 hours' WHERE id = :'a3';
SELECT benefits.run_maintenance() >= 0 AS ran;
SELECT deactivated_at IS NULL AS kept FROM benefits.license_key_activations WHERE id = :'a3';

-- activations.heartbeat: a count and a unit, from 1 minute to 30 days,
-- normalized; anything else is refused naming the path.
SELECT properties->'activations' AS activations FROM benefits.create_benefit('license_keys', :'org', 'h1',
    '{"activations": {"limit": 1, "heartbeat": "1 minute"}}');
SELECT properties->'activations' AS activations FROM benefits.create_benefit('license_keys', :'org', 'h2',
    '{"activations": {"limit": 1, "heartbeat": "2 hour"}}');
SELECT properties->'activations' AS activations FROM benefits.create_benefit('license_keys', :'org', 'h3',
    '{"activations": {"limit": 1, "heartbeat": "30 days", "enable_customer_admin": true}}');
SELECT properties->'activations' AS activations FROM benefits.create_benefit('license_keys', :'org', 'h4',
    '{"activations": {"limit": 1, "heartbeat": null}}');
SELECT benefits.create_benefit('license_keys', :'org', 'bad', '{"activations": {"limit": 1, "heartbeat": "30 seconds"}}');
SELECT benefits.create_benefit('license_keys', :'org', 'bad', '{"activations": {"limit": 1, "heartbeat": "31 days"}}');
SELECT benefits.create_benefit('license_keys', :'org', 'bad', '{"activations": {"limit": 1, "heartbeat": "15 fortnights"}}');
SELECT benefits.create_benefit('license_keys', :'org', 'bad', '{"activations": {"limit": 1, "heartbeat": "15minutes"}}');
SELECT benefits.create_benefit('license_keys', :'org', 'bad', '{"activations": {"limit": 1, "heartbeat": "-5 minutes"}}');
SELECT benefits.create_benefit('license_keys', :'org', 'bad', '{"activations": {"limit": 1, "heartbeat": "99999999999 days"}}');
SELECT benefits.create_benefit('license_keys', :'org', 'bad', '{"activations": {"limit": 1, "heartbeat": 15}}');
SELECT count(*) AS benefits_written FROM benefits.benefits WHERE description = 'bad';

-- Deactivated rows are history: the portal lists live activations only.
UPDATE benefits.customers SET external_id = 'ada' WHERE id = :'cust';
SELECT benefits.create_customer_session(:'org', 'ada') AS tok \gset
SELECT a->>'label' AS label
  FROM jsonb_array_elements(benefits.customer_portal(:'tok')->'benefits') b,
       jsonb_array_elements(b->'license_key'->'activations') a
 WHERE b->>'id' = :'ben' ORDER BY 1;
