-- Inputs found by the random-input campaign (test/fuzz/sql_fuzz.py) that
-- killed a backend or stored invalid data.  Each ends in a clean error or a
-- correct result, and nothing is half-written.
\set SHOW_CONTEXT never
INSERT INTO benefits.organizations (name) VALUES ('Fuzz Org') RETURNING id AS org \gset
INSERT INTO benefits.customers (organization_id, external_id) VALUES (:'org', 'fuzz-1') RETURNING id AS c1 \gset
INSERT INTO benefits.customers (organization_id, external_id) VALUES (:'org', 'fuzz-2') RETURNING id AS c2 \gset
SELECT id AS perk FROM benefits.create_benefit('custom', :'org', 'Fuzz perk', '{"note": "hi"}') \gset
SELECT id AS lic FROM benefits.create_benefit('license_keys', :'org', 'Fuzz license', '{}') \gset

-- grant_benefit_bulk with a NULL among the customer ids dereferenced the NULL
-- id (a segmentation fault); it is refused by position, in the array's own
-- bounds, before anything is locked or written.
SELECT benefits.grant_benefit_bulk(ARRAY[NULL]::uuid[], :'perk');
SELECT benefits.grant_benefit_bulk(ARRAY[:'c1', NULL, :'c2']::uuid[], :'perk');
SELECT benefits.grant_benefit_bulk(('[0:1]={' || :'c1' || ',NULL}')::uuid[], :'perk');
SELECT benefits.grant_benefit_bulk(('{{' || :'c1' || ',NULL},{' || :'c2' || ',' || :'c1' || '}}')::uuid[], :'perk');
SELECT count(*) AS grants FROM benefits.grants WHERE benefit_id = :'perk';
-- Without NULLs it grants, also from an array of other bounds or dimensions.
SELECT benefits.grant_benefit_bulk(('[0:1]={' || :'c1' || ',' || :'c2' || '}')::uuid[], :'perk') AS granted;
SELECT benefits.grant_benefit_bulk(('{{' || :'c1' || '},{' || :'c2' || '}}')::uuid[], :'perk') AS granted_again;

-- An imported key's display form is its last four characters, not bytes: a
-- multibyte character cut in two made display_key invalid UTF-8 (stored,
-- and returned to the caller).  A key shorter than twelve characters shows
-- nothing of itself, however many bytes it has.
SELECT display_key, convert_from(textsend(display_key), 'UTF8') = display_key AS valid_utf8
  FROM benefits.import_license_key(:'c1', :'lic', 'licence-ÄÖÜ€');
SELECT display_key FROM benefits.import_license_key(:'c2', :'lic', 'ÄÖÜÄÖÜ');
SELECT count(*) AS invalid_display_keys FROM benefits.license_keys
 WHERE convert_from(textsend(display_key), 'UTF8') IS DISTINCT FROM display_key;
