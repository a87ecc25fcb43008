-- Security: hostile input from the application, its administrators and a
-- hostile search_path are refused where they enter, with clean errors, and
-- leave nothing half-written.  (The worker's side is in test/t/015 and 016.)
\set SHOW_CONTEXT never
CREATE ROLE regress_sec_app NOLOGIN IN ROLE benefits_app;
CREATE ROLE regress_sec_admin NOLOGIN IN ROLE benefits_admin;
CREATE SCHEMA regress_sec AUTHORIZATION regress_sec_admin;

INSERT INTO benefits.organizations (name) VALUES ('Security Org') RETURNING id AS org \gset
INSERT INTO benefits.customers (organization_id, external_id, email) VALUES (:'org', 'sec-1', 'sec@example.com')
RETURNING id AS cust \gset
INSERT INTO benefits.products (organization_id, name) VALUES (:'org', 'Security product') RETURNING id AS prod \gset
SELECT id AS lic FROM benefits.create_benefit('license_keys', :'org', 'Security license',
    '{"activations": {"limit": 3, "enable_customer_admin": true}}') \gset
SELECT benefits.update_product_benefits(:'prod', ARRAY[:'lic']::uuid[]);

-- Account names and ids that would become path segments of GitHub and
-- Discord requests are refused, naming the field; nothing is stored.
SELECT benefits.link_account(:'cust', 'github', '1', '..');
SELECT benefits.link_account(:'cust', 'github', '1', 'a/b');
SELECT benefits.link_account(:'cust', 'github', '1', '%2e%2e');
SELECT benefits.link_account(:'cust', 'github', '1', '-leading-hyphen');
SELECT benefits.link_account(:'cust', 'github', '1', repeat('a', 40));
SELECT benefits.link_account(:'cust', 'github', E'1\n2', 'octocat');
SELECT benefits.link_account(:'cust', 'discord', '..', 'eve');
SELECT benefits.link_account(:'cust', 'discord', '12/34', 'eve');
SELECT benefits.link_account(:'cust', 'discord', '0123', 'eve');
SELECT benefits.link_account(:'cust', 'discord', '18446744073709551616', 'eve');
SELECT benefits.link_account(:'cust', 'discord', '80351110224678912', E'eve\r\nX-Injected: 1');
SELECT benefits.link_account(:'cust', 'discord', '80351110224678912', 'eve', '');
SELECT benefits.link_account(:'cust', 'discord', '80351110224678912', 'eve', repeat('t', 2049));
-- C1 control characters too (U+0085 NEXT LINE), as the CHECK constraints see them.
SELECT benefits.link_account(:'cust', 'discord', '80351110224678912', E'eve\u0085');
SELECT benefits.link_account(:'cust', 'github', E'1\u0085', 'octocat');
SELECT benefits.link_account(:'cust', 'discord', '80351110224678912', 'eve', E'tok\u009fen');
SELECT count(*) AS accounts FROM benefits.customer_accounts WHERE customer_id = :'cust';
-- The shapes allowed, at their limits.
SELECT benefits.link_account(:'cust', 'github', '583231', 'Octo-Cat-' || repeat('x', 30));
SELECT benefits.link_account(:'cust', 'discord', '18446744073709551615', 'eve', 'oauth-token');
-- Written directly (a superuser here, so no privilege stops it): the CHECK
-- constraints do.  (Terse: the failing row shows timestamps.)
\set VERBOSITY terse
UPDATE benefits.customer_accounts SET username = '..' WHERE customer_id = :'cust' AND platform = 'github';
UPDATE benefits.customer_accounts SET account_id = '1/../2' WHERE customer_id = :'cust' AND platform = 'discord';
UPDATE benefits.customer_accounts SET access_token = E'a\nb' WHERE customer_id = :'cust' AND platform = 'discord';
\set VERBOSITY default

-- OAuth tokens are readable by the extension's owner only; accounts are
-- written through link_account.
SET ROLE regress_sec_app;
SELECT access_token FROM benefits.customer_accounts;
SELECT * FROM benefits.customer_accounts;
SELECT platform, account_id, username FROM benefits.customer_accounts WHERE customer_id = :'cust' ORDER BY platform;
UPDATE benefits.customer_accounts SET access_token = 'stolen';
INSERT INTO benefits.customer_accounts (customer_id, platform, account_id) VALUES (:'cust', 'github', '2');
SELECT benefits.link_account(:'cust', 'discord', '80351110224678912', 'eve', 'new-token');
RESET ROLE;
SET ROLE regress_sec_admin;
SELECT access_token FROM benefits.customer_accounts;
SELECT platform, account_id FROM benefits.customer_accounts WHERE customer_id = :'cust' ORDER BY platform;
RESET ROLE;
SELECT access_token FROM benefits.customer_accounts WHERE customer_id = :'cust' AND platform = 'discord';

-- A NULL in a NOT NULL column reaches BEFORE triggers before the constraint
-- is checked: each statement ends in a clean error, the server stays up.
SET ROLE regress_sec_app;
INSERT INTO benefits.subscriptions (customer_id, product_id, status) VALUES (:'cust', :'prod', NULL);
INSERT INTO benefits.subscriptions (customer_id, product_id, status) VALUES (:'cust', :'prod', 'active')
RETURNING id AS sub \gset
UPDATE benefits.subscriptions SET status = NULL WHERE id = :'sub';
\set VERBOSITY terse
INSERT INTO benefits.orders (customer_id, product_id, status) VALUES (:'cust', :'prod', NULL);
\set VERBOSITY default
RESET ROLE;
SET ROLE regress_sec_admin;
INSERT INTO benefits.grants (customer_id, benefit_id, state) VALUES (:'cust', :'lic', NULL);
UPDATE benefits.grants SET state = NULL WHERE customer_id = :'cust';
SELECT state FROM benefits.grants WHERE customer_id = :'cust';
RESET ROLE;

-- Trigger functions run for their own tables only.  Nobody but their owner
-- may attach them to a table; a superuser who does gets a clean error.
SET ROLE regress_sec_admin;
CREATE TABLE regress_sec.lookalike (id uuid, customer_id uuid, state text, status text);
CREATE TRIGGER t BEFORE INSERT ON regress_sec.lookalike
    FOR EACH ROW EXECUTE FUNCTION benefits.grants_state_guard();
CREATE TRIGGER t AFTER INSERT ON regress_sec.lookalike
    FOR EACH ROW EXECUTE FUNCTION benefits.subscriptions_after();
RESET ROLE;
CREATE TRIGGER t1 BEFORE INSERT ON regress_sec.lookalike
    FOR EACH ROW EXECUTE FUNCTION benefits.grants_state_guard();
INSERT INTO regress_sec.lookalike (state) VALUES (NULL);
DROP TRIGGER t1 ON regress_sec.lookalike;
CREATE TRIGGER t2 BEFORE INSERT ON regress_sec.lookalike
    FOR EACH ROW EXECUTE FUNCTION benefits.subscriptions_before();
INSERT INTO regress_sec.lookalike (status) VALUES ('active');
DROP TRIGGER t2 ON regress_sec.lookalike;
CREATE TRIGGER t3 BEFORE DELETE ON regress_sec.lookalike
    FOR EACH ROW EXECUTE FUNCTION benefits.grant_source_deleted();
INSERT INTO regress_sec.lookalike (id) VALUES (gen_random_uuid());
DELETE FROM regress_sec.lookalike;
DROP TRIGGER t3 ON regress_sec.lookalike;
CREATE TRIGGER t4 AFTER INSERT ON regress_sec.lookalike
    FOR EACH STATEMENT EXECUTE FUNCTION benefits.outbox_wake();
INSERT INTO regress_sec.lookalike DEFAULT VALUES;
DROP TRIGGER t4 ON regress_sec.lookalike;
CREATE TRIGGER t5 AFTER INSERT ON regress_sec.lookalike
    FOR EACH ROW EXECUTE FUNCTION benefits.subscriptions_after();
INSERT INTO regress_sec.lookalike DEFAULT VALUES;
DROP TRIGGER t5 ON regress_sec.lookalike;

-- What the worker sends is written by the extension's functions only:
-- benefits_admin reads the outbox, endpoints and tracked tables, but cannot
-- write a job, point an endpoint at another URL, or register a table.
SELECT id AS ep FROM benefits.create_webhook_endpoint(:'org', 'https://hooks.example.com/a', ARRAY['benefit.created']) \gset
SET benefits.allow_private_network = off;
SET ROLE regress_sec_admin;
INSERT INTO benefits.outbox (organization_id, kind, action, payload)
VALUES (:'org', 'github', 'add_collaborator', '{"owner": "acme", "repo": "app", "username": "mallory"}');
UPDATE benefits.outbox SET payload = '{}';
UPDATE benefits.webhook_endpoints SET url = 'http://169.254.169.254/latest/meta-data' WHERE id = :'ep';
INSERT INTO benefits.webhook_endpoints (organization_id, url, secret, events)
VALUES (:'org', 'http://10.0.0.1/', 'whsec_AAAA', '{benefit.created}');
INSERT INTO benefits.tracked_tables (source, kind, organization_id, settings)
VALUES ('regress_sec.lookalike', 'orders', :'org', '{}');
SELECT count(*) >= 0 AS reads_outbox FROM benefits.outbox;
-- Properties and metadata stay JSON objects, whoever writes them (C reads
-- them as objects).
\set VERBOSITY terse
UPDATE benefits.benefits SET properties = '["prefix", "prefix"]' WHERE id = :'lic';
UPDATE benefits.benefits SET metadata = '"x"' WHERE id = :'lic';
UPDATE benefits.grants SET properties = '[]' WHERE customer_id = :'cust';
\set VERBOSITY default
-- Through the functions, checked.
SELECT url, events FROM benefits.update_webhook_endpoint(:'ep', url => 'https://hooks.example.com/b',
                                                         events => ARRAY['benefit_grant.revoked', 'benefit.created']);
SELECT url FROM benefits.update_webhook_endpoint(:'ep', url => 'http://169.254.169.254/latest/meta-data');
SELECT url FROM benefits.update_webhook_endpoint(:'ep', events => ARRAY['no.such_event']);
\set VERBOSITY terse
SELECT url FROM benefits.update_webhook_endpoint('00000000-0000-4000-8000-00000000dead', url => 'https://hooks.example.com/c');
\set VERBOSITY default
SELECT url, events FROM benefits.webhook_endpoints WHERE id = :'ep';
SELECT id AS perk FROM benefits.create_benefit('custom', :'org', 'Admin perk', '{"note": "hi"}') \gset
SELECT state FROM benefits.grant_benefit(:'cust', :'perk');
SELECT benefits.revoke_benefit(:'cust', :'perk');
SELECT benefits.track_orders('regress_sec.lookalike', :'org', id_column => 'id', customer_column => 'customer_id',
                             product_column => 'state', status_column => 'status');
SELECT benefits.untrack('regress_sec.lookalike');
-- Tracking needs the TRIGGER privilege on the table, as CREATE TRIGGER does.
RESET ROLE;
RESET benefits.allow_private_network;
CREATE TABLE regress_sec.not_yours (id text, customer text, product text, status text);
SET ROLE regress_sec_admin;
SELECT benefits.track_orders('regress_sec.not_yours', :'org');
SELECT benefits.untrack('regress_sec.not_yours');
RESET ROLE;
SELECT kind, action, event_type FROM benefits.outbox WHERE organization_id = :'org' ORDER BY id;
SELECT count(*) AS tracked FROM benefits.tracked_tables WHERE organization_id = :'org';

-- activate_license stores label, conditions and meta: bounded.
SELECT state FROM benefits.grant_benefit(:'cust', :'lic');
SELECT key FROM benefits.license_keys WHERE customer_id = :'cust' AND benefit_id = :'lic' \gset
SELECT ok, code FROM benefits.activate_license(:'key', :'org', repeat('l', 201));
SELECT ok, code FROM benefits.activate_license(:'key', :'org', 'big conditions',
    conditions => jsonb_build_object('machine', repeat('c', 4100)));
SELECT ok, code FROM benefits.activate_license(:'key', :'org', 'big meta',
    meta => jsonb_build_object('notes', repeat('m', 4100)));
SELECT ok, code, length(label) FROM benefits.activate_license(:'key', :'org', repeat('é', 200),
    conditions => jsonb_build_object('machine', repeat('c', 4000)));
SELECT count(*) AS activations FROM benefits.license_key_activations a
  JOIN benefits.license_keys k ON k.id = a.license_key_id WHERE k.customer_id = :'cust';

-- A hostile search_path captures none of the extension's statements: an
-- operator = on uuid placed before pg_catalog fires if anything resolves it.
SELECT id AS key_id FROM benefits.license_keys WHERE customer_id = :'cust' AND benefit_id = :'lic' \gset
CREATE SCHEMA regress_trap;
CREATE FUNCTION regress_trap.uuid_eq(uuid, uuid) RETURNS boolean
    LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'trap fired as %', current_user; END $$;
CREATE OPERATOR regress_trap.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = regress_trap.uuid_eq);
CREATE TABLE regress_sec.tracked (id text, customer text, product text, status text);
SET search_path = regress_trap, pg_catalog;
SELECT '00000000-0000-0000-0000-000000000000'::uuid = '00000000-0000-0000-0000-000000000000'::uuid;
SELECT display_key IS NOT NULL AS rotated FROM benefits.rotate_license_key(:'key_id');
INSERT INTO benefits.customers (organization_id, external_id) VALUES (:'org', 'sec-2') RETURNING id AS cust2 \gset
SELECT status FROM benefits.import_license_key(:'cust2', :'lic', 'IMPORTED-KEY-1');
SELECT jsonb_typeof(benefits.portal_document(:'cust')) AS portal_document;
SELECT benefits.track_subscriptions('regress_sec.tracked', :'org');
SELECT benefits.untrack('regress_sec.tracked');
SELECT benefits.flush_validation_stats() >= 0 AS flushed;
SELECT pending_keys >= 0 AS stats FROM benefits.validation_stats();
RESET search_path;
-- Every function of the extension pins its search path, but those that run
-- no SQL by name (C code that only computes, and SQL-standard bodies bound
-- when created), validate_license and checkout_license, which pin it in C
-- for their writes (license_offline plants an operator for checkout's), and
-- has_feature, which makes direct index lookups and runs no SQL (the trap
-- above shows both).
SELECT p.proname, l.lanname
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.pronamespace = 'benefits'::regnamespace
   AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)
 ORDER BY 1;
-- And every SECURITY DEFINER function does.
SELECT p.proname FROM pg_proc p
 WHERE p.pronamespace = 'benefits'::regnamespace AND p.prosecdef
   AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false);

DROP SCHEMA regress_trap CASCADE;
DROP SCHEMA regress_sec CASCADE;
DROP OWNED BY regress_sec_admin, regress_sec_app;
DROP ROLE regress_sec_admin;
DROP ROLE regress_sec_app;
