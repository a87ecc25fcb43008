-- The core catalog: organizations, products and customers, and their checks.
set VERBOSITY terse
INSERT INTO benefits.organizations (name) VALUES ('');
SELECT count(*) FROM benefits.organizations;
