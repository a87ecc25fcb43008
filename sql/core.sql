-- The core catalog: organizations, products and customers, and their checks.
set VERBOSITY terse
INSERT INTO benefits.organizations (name) VALUES ('');
SELECT count(*) FROM benefits.organizations;

-- No role of the extension may attach triggers to, truncate or reference its
-- tables: its SECURITY DEFINER functions and worker write them as superuser.
SELECT c.relname, r.rolname, p.privilege
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
       unnest(ARRAY['benefits_admin', 'benefits_app', 'benefits_public', 'public']) AS r(rolname),
       unnest(ARRAY['TRIGGER', 'TRUNCATE', 'REFERENCES']) AS p(privilege)
 WHERE n.nspname = 'benefits' AND c.relkind IN ('r', 'v')
   AND has_table_privilege(r.rolname, c.oid, p.privilege);
-- Nothing in the schema is readable by PUBLIC.
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'benefits' AND c.relkind IN ('r', 'v', 'S', 'm')
   AND has_table_privilege('public', c.oid, 'SELECT');

-- Provider tokens, storage credentials and where the worker may connect are
-- superuser-only settings: another role can neither set nor read them.
SELECT s.name, s.context
  FROM pg_settings s
 WHERE s.name IN ('benefits.github_api_url', 'benefits.github_token', 'benefits.discord_api_url',
                  'benefits.discord_bot_token', 'benefits.allow_private_network', 'benefits.s3_endpoint',
                  'benefits.s3_access_key_id', 'benefits.s3_secret_access_key')
 ORDER BY 1;
CREATE ROLE core_settings_probe;
GRANT benefits_admin TO core_settings_probe;
SET ROLE core_settings_probe;
SET benefits.github_token = 'stolen';
SET benefits.allow_private_network = on;
SHOW benefits.github_token;
SHOW benefits.discord_bot_token;
SHOW benefits.s3_secret_access_key;
SELECT count(*) AS visible_secrets FROM pg_settings
 WHERE name IN ('benefits.github_token', 'benefits.discord_bot_token', 'benefits.s3_secret_access_key');
RESET ROLE;
DROP ROLE core_settings_probe;
