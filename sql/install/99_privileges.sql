-- Privileges, applied last so they cover every part.  No table is readable by
-- PUBLIC and no function is executable by PUBLIC; each group role gets what
-- DESIGN.md gives it.  Parts grant their own functions to the roles.

REVOKE ALL ON ALL TABLES IN SCHEMA benefits FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA benefits FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA benefits FROM PUBLIC;

-- benefits_admin: the catalog and everything else — data only.  Never
-- TRIGGER, TRUNCATE or REFERENCES: the extension's SECURITY DEFINER functions
-- and the worker write these tables as their superuser owner, so a trigger an
-- administrator could attach would run with superuser rights.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA benefits TO benefits_admin;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA benefits TO benefits_admin;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA benefits TO benefits_admin;

-- benefits_app: the application writes customers, their linked accounts,
-- subscriptions and orders, and reads what they were granted.
GRANT SELECT ON benefits.organizations, benefits.products, benefits.benefits,
                benefits.product_benefits, benefits.grants, benefits.license_keys,
                benefits.license_key_activations, benefits.meters, benefits.files
    TO benefits_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON benefits.customers, benefits.customer_accounts,
                benefits.subscriptions, benefits.orders
    TO benefits_app;
GRANT EXECUTE ON FUNCTION benefits.list_grants(uuid, uuid, boolean) TO benefits_app;
