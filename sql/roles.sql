-- Roles: benefits_public may call validate_license, activate_license and
-- deactivate_license and read no table.  activate and deactivate are
-- SECURITY DEFINER; validate_license reads with direct index lookups and
-- becomes its owner only to write usage.
\set SHOW_CONTEXT never
DROP ROLE IF EXISTS regress_benefits_end_user;
CREATE ROLE regress_benefits_end_user NOLOGIN IN ROLE benefits_public;

INSERT INTO benefits.organizations (name) VALUES ('Roles Org') RETURNING id AS org \gset
INSERT INTO benefits.customers (organization_id, email) VALUES (:'org', 'user@example.com') RETURNING id AS cust \gset
INSERT INTO benefits.benefits (organization_id, type, description, properties)
VALUES (:'org', 'license_keys', 'Roles license',
        '{"prefix": "ROLE", "expires": null, "activations": {"limit": 1, "enable_customer_admin": false}, "limit_usage": 5}')
RETURNING id AS ben \gset
SELECT state FROM benefits.grant_benefit(:'cust', :'ben');
SELECT key, id AS kid FROM benefits.license_keys WHERE customer_id = :'cust' \gset

-- A schema of traps: an operator = on uuid that fires when called.
CREATE SCHEMA regress_trap;
CREATE FUNCTION regress_trap.uuid_eq(uuid, uuid) RETURNS boolean
    LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'trap fired as %', current_user; END $$;
CREATE OPERATOR regress_trap.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = regress_trap.uuid_eq);
GRANT USAGE ON SCHEMA regress_trap TO regress_benefits_end_user;

SET ROLE regress_benefits_end_user;
SELECT current_user;
-- validate_license runs without SECURITY DEFINER and without a SET
-- search_path clause; a caller's search_path still cannot capture the
-- statements it runs (here the first ones of this session).
SET search_path = regress_trap, pg_catalog;
SELECT '00000000-0000-0000-0000-000000000000'::uuid = '00000000-0000-0000-0000-000000000000'::uuid;
SELECT valid, code FROM benefits.validate_license(:'key', :'org');
SELECT valid, code, usage FROM benefits.validate_license(:'key', :'org', increment_usage => 2);
-- After the write the caller is the caller again.
SELECT usage, current_user FROM benefits.validate_license(:'key', :'org', increment_usage => 1);
SELECT code, current_user FROM benefits.validate_license(:'key', gen_random_uuid(), increment_usage => 1);
RESET search_path;
SELECT ok, code FROM benefits.activate_license(:'key', :'org', 'laptop', '{"machine": "m1"}');
SELECT ok, code FROM benefits.activate_license(:'key', :'org', 'desktop');
SELECT code FROM benefits.validate_license('ROLE-0000-0000-0000-0000-0000-0000-0000', :'org');
-- No table can be read, not even through the key just validated.
SELECT count(*) FROM benefits.license_keys;
SELECT count(*) FROM benefits.license_key_activations;
SELECT count(*) FROM benefits.customers;
SELECT count(*) FROM benefits.grants;
-- Nor written.
INSERT INTO benefits.license_key_activations (license_key_id, label) VALUES (:'kid', 'sneaky');
-- Administration is refused.
SELECT benefits.flush_validation_stats();
SELECT benefits.update_license_key(:'kid', status => 'disabled');
SELECT benefits.grant_benefit(:'cust', :'ben');
RESET ROLE;

-- The activation id, for deactivation as the end user.
SELECT id AS act FROM benefits.license_key_activations WHERE license_key_id = :'kid' \gset
SET ROLE regress_benefits_end_user;
SELECT benefits.deactivate_license(:'key', :'org', :'act');
SELECT ok, code FROM benefits.activate_license(:'key', :'org', 'desktop');
RESET ROLE;

-- Over the whole schema: no table, view or sequence is readable by
-- benefits_public, and the functions it may execute are the public calls.
SELECT c.relname
  FROM pg_class c
 WHERE c.relnamespace = 'benefits'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'S', 'p')
   AND (has_table_privilege('regress_benefits_end_user', c.oid, 'SELECT')
        OR has_table_privilege('regress_benefits_end_user', c.oid, 'INSERT')
        OR has_table_privilege('regress_benefits_end_user', c.oid, 'UPDATE')
        OR has_table_privilege('regress_benefits_end_user', c.oid, 'DELETE'));
SELECT p.proname, p.prosecdef AS security_definer, p.proconfig
  FROM pg_proc p
 WHERE p.pronamespace = 'benefits'::regnamespace
   AND has_function_privilege('regress_benefits_end_user', p.oid, 'EXECUTE')
 ORDER BY 1;

-- What the end user did is visible to the administrator.
SELECT usage, (SELECT count(*) FROM benefits.license_key_activations a WHERE a.license_key_id = k.id AND a.deactivated_at IS NULL) AS activations
  FROM benefits.license_keys k WHERE k.id = :'kid';
DROP SCHEMA regress_trap CASCADE;
DROP ROLE regress_benefits_end_user;
