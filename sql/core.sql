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
