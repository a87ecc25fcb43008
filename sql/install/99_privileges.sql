-- Privileges, applied last so they cover every part.  No table is readable by
-- PUBLIC and no function is executable by PUBLIC; each group role gets what
-- DESIGN.md gives it.  Parts grant their own functions to the roles.

REVOKE ALL ON ALL TABLES IN SCHEMA benefits FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA benefits FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA benefits FROM PUBLIC;

-- benefits_admin: the catalog and everything else.
GRANT ALL ON ALL TABLES IN SCHEMA benefits TO benefits_admin;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA benefits TO benefits_admin;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA benefits TO benefits_admin;
