-- The core catalog: organizations, products and customers, and their checks.
INSERT INTO benefits.organizations (name) VALUES ('');
SELECT count(*) FROM benefits.organizations;
