-- Signed offline licenses: the file format, the payload's fields, the expiry
-- clamp, NULL instead of a file for every code but valid, signing keys
-- (created on first use, rotated, the secret readable by the owner only),
-- and every error.  The signatures themselves are verified by Node's crypto
-- in test/t/087_license_files.pl.
\set SHOW_CONTEXT never

INSERT INTO benefits.organizations (name) VALUES ('Offline Org') RETURNING id AS org \gset
INSERT INTO benefits.organizations (name) VALUES ('Other Offline Org') RETURNING id AS other_org \gset
INSERT INTO benefits.customers (organization_id, email) VALUES (:'org', 'ada@example.com') RETURNING id AS cust \gset
SELECT id AS ben FROM benefits.create_benefit('license_keys', :'org', 'Desktop app',
    '{"prefix": "OFF", "activations": 3, "limit_usage": 100}') \gset
SELECT id AS flag FROM benefits.create_benefit('feature_flag', :'org', 'PDF export', '{}',
    metadata => '{"feature": "export_pdf"}') \gset
SELECT id AS flag2 FROM benefits.create_benefit('feature_flag', :'org', 'Cloud sync', '{}',
    metadata => '{"feature": "cloud_sync"}') \gset
SELECT state FROM benefits.grant_benefit(:'cust', :'ben');
SELECT state FROM benefits.grant_benefit(:'cust', :'flag');
SELECT state FROM benefits.grant_benefit(:'cust', :'flag2');
SELECT id AS kid, key AS k FROM benefits.license_keys WHERE benefit_id = :'ben' \gset
SELECT activation_id AS act FROM benefits.activate_license(:'k', :'org', 'Laptop', fingerprint => 'fp-1') \gset

-- The pieces of a file: the armor lines, the envelope and the payload.
CREATE FUNCTION pg_temp.envelope(file text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT convert_from(decode(string_agg(line, '' ORDER BY n), 'base64'), 'UTF8')::jsonb
      FROM regexp_split_to_table(file, E'\n') WITH ORDINALITY AS t(line, n)
     WHERE line NOT LIKE '-----%' $$;
CREATE FUNCTION pg_temp.payload(file text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT convert_from(decode(pg_temp.envelope(file)->>'payload', 'base64'), 'UTF8')::jsonb $$;

-- No key pair yet: the first checkout creates the organization's.
SELECT count(*) AS keys FROM benefits.license_public_keys(:'org');
SELECT benefits.checkout_license(:'k', :'org') AS file \gset
SELECT count(*) AS keys, bool_and(retired_at IS NULL) AS current FROM benefits.license_public_keys(:'org');

-- The format: BEGIN line, base64 lines of 64 characters (the last one
-- shorter), END line, a final newline.
SELECT split_part(:'file', E'\n', 1) AS first_line,
       (regexp_split_to_array(rtrim(:'file', E'\n'), E'\n'))[array_length(regexp_split_to_array(rtrim(:'file', E'\n'), E'\n'), 1)] AS last_line,
       right(:'file', 1) = E'\n' AS final_newline;
SELECT bool_and(length(line) = 64) FILTER (WHERE n < max_n - 1) AS full_lines,
       bool_and(length(line) BETWEEN 1 AND 64) AS widths,
       bool_and(line ~ '^[A-Za-z0-9+/=]+$') FILTER (WHERE line NOT LIKE '-----%') AS base64_only
  FROM (SELECT line, n, max(n) OVER () AS max_n
          FROM regexp_split_to_table(rtrim(:'file', E'\n'), E'\n') WITH ORDINALITY AS t(line, n)) l
 WHERE line NOT LIKE '-----%';
-- The envelope: exactly alg, kid, payload, sig; the kid is listed; the
-- signature is 64 bytes.
SELECT array(SELECT jsonb_object_keys(pg_temp.envelope(:'file')) ORDER BY 1) AS envelope_keys,
       pg_temp.envelope(:'file')->>'alg' AS alg,
       length(decode(pg_temp.envelope(:'file')->>'sig', 'base64')) AS sig_bytes,
       pg_temp.envelope(:'file')->>'kid' = (SELECT kid FROM benefits.license_public_keys(:'org')) AS kid_listed;
-- The kid is the first 8 bytes of the SHA-256 of the public key; the public
-- key is base64 of 32 raw bytes.
SELECT kid = left(encode(sha256(decode(public_key, 'base64')), 'hex'), 16) AS kid_of_key,
       length(decode(public_key, 'base64')) AS public_key_bytes
  FROM benefits.license_public_keys(:'org');
-- The payload: the key, no activation, the customer's features, the file's times.
SELECT p->'version' AS version, p->>'organization_id' = :'org' AS org,
       p->'license_key'->>'id' = :'kid' AS key_id,
       p->'license_key'->>'display_key' = '****-' || right(:'k', 4) AS display_key,
       p->'license_key'->>'customer_id' = :'cust' AS customer, p->'license_key'->>'benefit_id' = :'ben' AS benefit,
       p->'license_key'->'status' AS status, p->'license_key'->'usage' AS usage,
       p->'license_key'->'limit_usage' AS limit_usage, p->'license_key'->'limit_activations' AS limit_activations,
       p->'license_key'->'expires_at' AS key_expires_at, p->'activation' AS activation, p->'features' AS features,
       (p->>'issued_at')::timestamptz BETWEEN date_trunc('second', now()) - interval '1 minute' AND now() AS issued_now,
       (p->>'expires_at')::timestamptz = (p->>'issued_at')::timestamptz + interval '30 days' AS expires_in_30_days,
       p->>'issued_at' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$' AS rfc3339_utc,
       p::text !~ :'k' AS no_full_key
  FROM pg_temp.payload(:'file') AS p;
SELECT array(SELECT jsonb_object_keys(pg_temp.payload(:'file')) ORDER BY 1) AS payload_keys,
       array(SELECT jsonb_object_keys(pg_temp.payload(:'file')->'license_key') ORDER BY 1) AS license_key_keys;
-- With an activation: its id, fingerprint and label.
SELECT p->'activation'->>'id' = :'act' AS activation_id, p->'activation'->'fingerprint' AS fingerprint,
       p->'activation'->'label' AS label
  FROM pg_temp.payload(benefits.checkout_license(:'k', :'org', :'act')) AS p;
-- The features are customer_features' answer: distinct, in name order, from
-- active grants of live feature_flag benefits only.
BEGIN;
SELECT id AS flag3 FROM benefits.create_benefit('feature_flag', :'org', 'PDF export again', '{}',
    metadata => '{"feature": "export_pdf"}') \gset
SELECT id AS flag4 FROM benefits.create_benefit('feature_flag', :'org', 'Beta', '{}',
    metadata => '{"feature": "Beta"}') \gset
SELECT id AS flag5 FROM benefits.create_benefit('feature_flag', :'org', 'Gone', '{}',
    metadata => '{"feature": "deleted_feature"}') \gset
SELECT id AS flag6 FROM benefits.create_benefit('feature_flag', :'org', 'Taken back', '{}',
    metadata => '{"feature": "revoked_feature"}') \gset
SELECT count(benefits.grant_benefit(:'cust', b)) AS granted FROM unnest(ARRAY[:'flag3', :'flag4', :'flag5', :'flag6']::uuid[]) b;
SELECT benefits.delete_benefit(:'flag5') IS NOT NULL AS deleted;
SELECT benefits.revoke_benefit(:'cust', :'flag6') IS NOT NULL AS revoked;
SELECT p->'features' AS features,
       p->'features' = (SELECT jsonb_agg(f) FROM benefits.customer_features(:'cust') f) AS same_as_customer_features
  FROM pg_temp.payload(benefits.checkout_license(:'k', :'org')) AS p;
ROLLBACK;
-- ttl sets the file's expiry ...
SELECT (p->>'expires_at')::timestamptz = (p->>'issued_at')::timestamptz + interval '1 hour' AS one_hour
  FROM pg_temp.payload(benefits.checkout_license(:'k', :'org', ttl => '1 hour')) AS p;
-- ... never past the key's own expiry.
UPDATE benefits.license_keys SET expires_at = now() + interval '10 days' WHERE id = :'kid';
SELECT (p->>'expires_at')::timestamptz = date_trunc('second', (SELECT expires_at FROM benefits.license_keys WHERE id = :'kid')) AS clamped,
       p->'license_key'->>'expires_at' = p->>'expires_at' AS same_as_key
  FROM pg_temp.payload(benefits.checkout_license(:'k', :'org', ttl => '30 days')) AS p;
SELECT (p->>'expires_at')::timestamptz = (p->>'issued_at')::timestamptz + interval '2 days' AS shorter_ttl_kept
  FROM pg_temp.payload(benefits.checkout_license(:'k', :'org', ttl => '2 days')) AS p;
UPDATE benefits.license_keys SET expires_at = NULL WHERE id = :'kid';
-- Each checkout is a fresh file (its own times), signed the same way.
SELECT count(DISTINCT pg_temp.envelope(benefits.checkout_license(:'k', :'org', ttl => n * interval '1 day'))->>'sig') AS distinct_sigs
  FROM generate_series(1, 5) n;

-- Codes instead of files: every key that does not validate gets NULL, never a
-- file and never an error.
SELECT benefits.checkout_license('NOT-A-KEY', :'org') IS NULL AS malformed,
       benefits.checkout_license(:'k', :'other_org') IS NULL AS other_org,
       benefits.checkout_license(NULL, :'org') IS NULL AS null_key,
       benefits.checkout_license(:'k', :'org', '00000000-0000-4000-8000-000000000000') IS NULL AS unknown_activation;
SELECT benefits.deactivate_license(:'k', :'org', :'act') AS deactivated;
SELECT benefits.checkout_license(:'k', :'org', :'act') IS NULL AS deactivated_activation;
SELECT status FROM benefits.update_license_key(:'kid', status => 'disabled');
SELECT benefits.checkout_license(:'k', :'org') IS NULL AS disabled, (benefits.validate_license(:'k', :'org')).code;
SELECT status, expires_at < now() AS past FROM benefits.update_license_key(:'kid', status => 'granted', expires_at => now() - interval '1 second');
SELECT benefits.checkout_license(:'k', :'org') IS NULL AS expired, (benefits.validate_license(:'k', :'org')).code;
SELECT status, expires_at FROM benefits.update_license_key(:'kid', unset => '{expires_at}');
SELECT benefits.revoke_benefit(:'cust', :'ben');
SELECT benefits.checkout_license(:'k', :'org') IS NULL AS revoked, (benefits.validate_license(:'k', :'org')).code;
SELECT state FROM benefits.grant_benefit(:'cust', :'ben');
SELECT benefits.checkout_license(:'k', :'org') IS NOT NULL AS granted_again;

-- Errors: a NULL organization, a ttl that is not positive or longer than
-- 366 days (22023, naming the field).
\set VERBOSITY default
SELECT benefits.checkout_license(:'k', NULL);
SELECT benefits.checkout_license(:'k', :'org', ttl => NULL);
SELECT benefits.checkout_license(:'k', :'org', ttl => '0');
SELECT benefits.checkout_license(:'k', :'org', ttl => '-1 day');
SELECT benefits.checkout_license(:'k', :'org', ttl => '367 days');
SELECT benefits.checkout_license(:'k', :'org', ttl => '13 months');
SELECT benefits.checkout_license(:'k', :'org', ttl => '1 day -25 hours');
SELECT benefits.checkout_license(:'k', :'org', ttl => '366 days') IS NOT NULL AS longest_accepted;
SELECT benefits.license_public_keys(NULL);
SELECT benefits.rotate_license_signing_key(NULL);
SELECT benefits.rotate_license_signing_key('00000000-0000-4000-8000-000000000000');

-- Rotation: a new current key; the old one is retired and still listed, so
-- files it signed keep their kid's public key.
SELECT pg_temp.envelope(:'file')->>'kid' AS old_kid \gset
SELECT benefits.rotate_license_signing_key(:'org') AS new_kid \gset
SELECT :'new_kid' <> :'old_kid' AS changed, :'new_kid' ~ '^[0-9a-f]{16}$' AS kid_shape;
SELECT kid = :'new_kid' AS is_new, kid = :'old_kid' AS is_old, retired_at IS NOT NULL AS retired
  FROM benefits.license_public_keys(:'org');
SELECT pg_temp.envelope(benefits.checkout_license(:'k', :'org'))->>'kid' = :'new_kid' AS signed_with_new;
SELECT benefits.rotate_license_signing_key(:'org') IS NOT NULL AS rotated_again;
SELECT count(*) AS listed, count(*) FILTER (WHERE retired_at IS NULL) AS current
  FROM benefits.license_public_keys(:'org');
-- Each organization has its own keys.
SELECT count(*) AS other_org_keys FROM benefits.license_public_keys(:'other_org');
-- One current key per organization, whoever writes the table.
\set VERBOSITY terse
UPDATE benefits.license_signing_keys SET retired_at = NULL WHERE organization_id = :'org';
\set VERBOSITY default

-- Secrets: only the extension's owner reads secret_key; benefits_admin sees
-- the other columns; benefits_app and benefits_public see nothing of the
-- table, and read the public keys through license_public_keys.
SELECT r.rolname,
       has_column_privilege(r.rolname, 'benefits.license_signing_keys', 'secret_key', 'SELECT') AS secret,
       has_column_privilege(r.rolname, 'benefits.license_signing_keys', 'public_key', 'SELECT') AS public_key,
       has_table_privilege(r.rolname, 'benefits.license_signing_keys', 'INSERT, UPDATE, DELETE') AS writes,
       has_function_privilege(r.rolname, 'benefits.checkout_license(text, uuid, uuid, interval)', 'EXECUTE') AS checkout,
       has_function_privilege(r.rolname, 'benefits.license_public_keys(uuid)', 'EXECUTE') AS public_keys,
       has_function_privilege(r.rolname, 'benefits.heartbeat_license(text, uuid, uuid)', 'EXECUTE') AS heartbeat,
       has_function_privilege(r.rolname, 'benefits.rotate_license_signing_key(uuid)', 'EXECUTE') AS rotate
  FROM pg_roles r WHERE r.rolname IN ('benefits_admin', 'benefits_app', 'benefits_public') ORDER BY 1;
SELECT count(*) AS public_column_grants
  FROM information_schema.column_privileges
 WHERE table_schema = 'benefits' AND table_name = 'license_signing_keys' AND grantee = 'PUBLIC';
CREATE ROLE regress_offline_admin IN ROLE benefits_admin;
CREATE ROLE regress_offline_user IN ROLE benefits_public;
SET ROLE regress_offline_admin;
SELECT secret_key FROM benefits.license_signing_keys;
SELECT count(*) AS admin_sees_public_columns FROM (SELECT kid, public_key FROM benefits.license_signing_keys) k;
SELECT benefits.rotate_license_signing_key(:'other_org') ~ '^[0-9a-f]{16}$' AS admin_rotates;
RESET ROLE;
SET ROLE regress_offline_user;
SELECT benefits.checkout_license(:'k', :'org') LIKE E'-----BEGIN BENEFITS LICENSE-----\n%' AS end_user_checks_out;
SELECT count(*) AS end_user_lists FROM benefits.license_public_keys(:'org');
SELECT benefits.rotate_license_signing_key(:'org');
SELECT kid FROM benefits.license_signing_keys;
RESET ROLE;
-- checkout_license runs with the caller's rights and search path: an end
-- user's checkout still creates an organization's first key (as the owner),
-- and an operator the user plants ahead of pg_catalog is not the one its
-- statements use.
INSERT INTO benefits.organizations (name) VALUES ('Third Offline Org') RETURNING id AS third_org \gset
INSERT INTO benefits.customers (organization_id, email) VALUES (:'third_org', 'lin@example.com') RETURNING id AS third_cust \gset
SELECT id AS third_ben FROM benefits.create_benefit('license_keys', :'third_org', 'Third app', '{}') \gset
SELECT state FROM benefits.grant_benefit(:'third_cust', :'third_ben');
SELECT key AS third_k FROM benefits.license_keys WHERE benefit_id = :'third_ben' \gset
CREATE SCHEMA regress_offline_trap AUTHORIZATION regress_offline_user;
SET ROLE regress_offline_user;
CREATE FUNCTION regress_offline_trap.uuid_eq(uuid, uuid) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE 'the planted operator ran';
    RETURN $1::text = $2::text;
END $$;
CREATE OPERATOR regress_offline_trap.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = regress_offline_trap.uuid_eq);
SET search_path = regress_offline_trap, pg_catalog;
SELECT benefits.checkout_license(:'third_k', :'third_org') LIKE E'-----BEGIN BENEFITS LICENSE-----\n%' AS end_user_first_checkout;
SELECT benefits.checkout_license(:'third_k', :'third_org') LIKE E'-----BEGIN BENEFITS LICENSE-----\n%' AS end_user_second_checkout;
SELECT current_user AS still_the_caller, current_setting('search_path') AS callers_search_path;
RESET search_path;
RESET ROLE;
SELECT count(*) AS third_org_keys FROM benefits.license_public_keys(:'third_org');
DROP SCHEMA regress_offline_trap CASCADE;
DROP ROLE regress_offline_admin, regress_offline_user;

-- A checkout works in a read-only transaction once the organization has a key.
BEGIN READ ONLY;
SELECT benefits.checkout_license(:'k', :'org') IS NOT NULL AS read_only_checkout;
COMMIT;
