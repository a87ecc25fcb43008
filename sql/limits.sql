-- Limits at the edges (README, "Limits"): each limit driven to its edge.  At
-- the limit the call works; one past it fails with SQLSTATE 22023 (23514 for
-- a CHECK constraint on a table the application writes) and a message naming
-- the field, and writes nothing.
INSERT INTO benefits.organizations (id, name) VALUES
    ('11a11000-0000-4000-8000-0000000000a1', 'Limits Org');
INSERT INTO benefits.customers (id, organization_id, external_id, email, name) VALUES
    ('11a11000-0000-4000-8000-0000000000c1', '11a11000-0000-4000-8000-0000000000a1', 'limits-1',
     'ada@example.com', 'Ada');
INSERT INTO benefits.products (id, organization_id, name) VALUES
    ('11a11000-0000-4000-8000-0000000000d1', '11a11000-0000-4000-8000-0000000000a1', 'Everything');
INSERT INTO benefits.meters (id, organization_id, name) VALUES
    ('11a11000-0000-4000-8000-0000000000e1', '11a11000-0000-4000-8000-0000000000a1', 'calls');

-- Runs a statement; 'ok' or its SQLSTATE and message.  An error rolls back
-- everything the statement did (the exception block's subtransaction).
CREATE FUNCTION lim(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    detail text;
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    -- a CHECK constraint's detail is the failing row, with its random id
    RETURN SQLSTATE || ': ' || SQLERRM
           || CASE WHEN detail <> '' AND SQLSTATE <> '23514' THEN ' (' || detail || ')' ELSE '' END;
END
$$;
CREATE FUNCTION lim_benefit(type text, properties jsonb, description text DEFAULT 'limits',
                            metadata jsonb DEFAULT NULL) RETURNS text LANGUAGE sql AS $$
    SELECT lim(format('SELECT benefits.create_benefit(%L, %L, %L, %L, %L)', type,
                      '11a11000-0000-4000-8000-0000000000a1', description, properties, metadata))
$$;
CREATE FUNCTION benefit_count() RETURNS bigint LANGUAGE sql AS
    $$ SELECT count(*) FROM benefits.benefits WHERE organization_id = '11a11000-0000-4000-8000-0000000000a1' $$;

-- ===== descriptions: 1,000 characters (counted as characters, not bytes)
SELECT benefit_count() AS before;
SELECT lim_benefit('custom', '{}', repeat('é', 1000)) AS "1000 characters",
       lim_benefit('custom', '{}', repeat('é', 1001)) AS "1001 characters";
SELECT benefit_count() AS after;
SELECT lim(format('SELECT benefits.update_benefit(id, description => %L) FROM benefits.benefits'
                  ' WHERE organization_id = %L', repeat('x', 1001), '11a11000-0000-4000-8000-0000000000a1'))
       AS "update to 1001";

-- ===== a custom note: 10,000 characters
SELECT lim_benefit('custom', jsonb_build_object('note', repeat('ü', 10000))) AS "10000",
       lim_benefit('custom', jsonb_build_object('note', repeat('ü', 10001))) AS "10001";

-- ===== GitHub repositories of one benefit: 100
CREATE FUNCTION repositories(n int) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('repositories', jsonb_agg(jsonb_build_object(
               'owner', 'acme', 'name', 'repo-' || i, 'permission', 'pull')))
      FROM generate_series(1, n) i
$$;
SELECT lim_benefit('github_repository', repositories(100)) AS "100",
       lim_benefit('github_repository', repositories(101)) AS "101";

-- ===== Discord roles of one benefit: 250, a guild's own maximum
CREATE FUNCTION roles(n int) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('guild_id', '100000000000000000', 'roles',
               jsonb_agg(jsonb_build_object('role_id', (200000000000000000 + i)::text,
                                            'name', repeat('r', 100))))
      FROM generate_series(1, n) i
$$;
SELECT lim_benefit('discord', roles(250)) AS "250",
       lim_benefit('discord', roles(251)) AS "251";

-- ===== files of one downloadable benefit: 500; a file: 10 GB, a name of 255
CREATE FUNCTION files(n int, size bigint DEFAULT 1, name_length int DEFAULT 8) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('files', jsonb_agg(jsonb_build_object(
               'name', lpad(i::text, name_length, 'f'), 'size', size)))
      FROM generate_series(1, n) i
$$;
SELECT count(*) AS files_before FROM benefits.files WHERE organization_id = '11a11000-0000-4000-8000-0000000000a1';
SELECT lim_benefit('downloadable', files(501)) AS "501 files";
SELECT count(*) AS "files after 501 (none registered)" FROM benefits.files WHERE organization_id = '11a11000-0000-4000-8000-0000000000a1';
SELECT lim_benefit('downloadable', files(500)) AS "500 files";
SELECT count(*) AS "files after 500" FROM benefits.files WHERE organization_id = '11a11000-0000-4000-8000-0000000000a1';
SELECT lim_benefit('downloadable', files(1, 10737418240)) AS "10737418240 bytes",
       lim_benefit('downloadable', files(1, 10737418241)) AS "10737418241 bytes";
SELECT lim_benefit('downloadable', files(1, 1, 255)) AS "name of 255",
       lim_benefit('downloadable', files(1, 1, 256)) AS "name of 256";
SELECT lim(format('INSERT INTO benefits.files (organization_id, name, size) VALUES (%L, ''big'', 10737418241)',
                  '11a11000-0000-4000-8000-0000000000a1')) AS "files row of 10737418241";

-- ===== license keys: prefix of 16, activation limit of 1,000
SELECT lim_benefit('license_keys', '{"prefix": "ABCDEFGHIJKLMNOP"}') AS "prefix 16",
       lim_benefit('license_keys', '{"prefix": "ABCDEFGHIJKLMNOPQ"}') AS "prefix 17";
SELECT lim_benefit('license_keys', '{"activations": 1000}') AS "activations 1000",
       lim_benefit('license_keys', '{"activations": {"limit": 1001}}') AS "activations.limit 1001";

-- ===== metadata: 50 keys of 1 to 40 characters, strings of 500
CREATE FUNCTION metadata(keys int, key_length int DEFAULT 2, value_length int DEFAULT 1) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_object_agg(lpad(i::text, key_length, 'k'), repeat('v', value_length))
      FROM generate_series(1, keys) i
$$;
SELECT lim_benefit('custom', '{}', metadata => metadata(50)) AS "50 keys",
       lim_benefit('custom', '{}', metadata => metadata(51)) AS "51 keys";
SELECT lim_benefit('custom', '{}', metadata => metadata(1, 40)) AS "key of 40",
       lim_benefit('custom', '{}', metadata => metadata(1, 41)) AS "key of 41";
SELECT lim_benefit('custom', '{}', metadata => metadata(1, 2, 500)) AS "value of 500",
       lim_benefit('custom', '{}', metadata => metadata(1, 2, 501)) AS "value of 501";

-- ===== the largest properties each type accepts, as stored (bytes of jsonb text)
SELECT type, max(octet_length(properties::text)) AS largest_properties_bytes,
       max(octet_length(metadata::text)) AS largest_metadata_bytes
  FROM benefits.benefits WHERE organization_id = '11a11000-0000-4000-8000-0000000000a1'
 GROUP BY type ORDER BY type;

-- ===== benefits of one product: 100
CREATE TEMP TABLE attach AS
SELECT (benefits.create_benefit('feature_flag', '11a11000-0000-4000-8000-0000000000a1', 'flag ' || i, '{}',
                                jsonb_build_object('feature', 'f' || i))).id, i
  FROM generate_series(1, 101) i;
SELECT lim(format('SELECT benefits.update_product_benefits(%L, %L)', '11a11000-0000-4000-8000-0000000000d1',
                  (SELECT array_agg(id ORDER BY i) FROM attach))) AS "101 benefits";
SELECT count(*) AS "attached after 101" FROM benefits.product_benefits WHERE product_id = '11a11000-0000-4000-8000-0000000000d1';
SELECT lim(format('SELECT benefits.update_product_benefits(%L, %L)', '11a11000-0000-4000-8000-0000000000d1',
                  (SELECT array_agg(id ORDER BY i) FROM attach WHERE i <= 100))) AS "100 benefits";
SELECT count(*) AS "attached after 100" FROM benefits.product_benefits WHERE product_id = '11a11000-0000-4000-8000-0000000000d1';

-- ===== grants per customer: not capped.  Ten subscriptions of the product
-- with 100 benefits: 1,000 grants for one customer, written by one statement
INSERT INTO benefits.subscriptions (organization_id, customer_id, product_id, status)
SELECT '11a11000-0000-4000-8000-0000000000a1', '11a11000-0000-4000-8000-0000000000c1',
       '11a11000-0000-4000-8000-0000000000d1', 'active'
  FROM generate_series(1, 10);
SELECT count(*) AS grants, count(*) FILTER (WHERE state = 'active') AS active
  FROM benefits.list_grants('11a11000-0000-4000-8000-0000000000c1');
SELECT count(*) AS features FROM benefits.customer_features('11a11000-0000-4000-8000-0000000000c1');
CREATE TEMP TABLE session AS
SELECT benefits.create_customer_session('11a11000-0000-4000-8000-0000000000a1', 'limits-1') AS token;
SELECT jsonb_array_length(benefits.customer_portal(token) -> 'benefits') AS portal_benefits,
       octet_length(benefits.customer_portal(token)::text) < 200000 AS "portal document under 200 kB"
  FROM session;

-- ===== activations of one key: the limit, then activation_limit_reached
CREATE TEMP TABLE seat AS
SELECT (benefits.create_benefit('license_keys', '11a11000-0000-4000-8000-0000000000a1', 'seats',
                                '{"activations": 1000}')).id AS benefit_id;
SELECT (benefits.grant_benefit('11a11000-0000-4000-8000-0000000000c1', benefit_id)).state FROM seat;
CREATE TEMP TABLE seat_key AS
SELECT k.key FROM benefits.license_keys k JOIN seat USING (benefit_id);
SELECT a.code, count(*)
  FROM seat_key, generate_series(1, 1001) i,
       LATERAL benefits.activate_license(key, '11a11000-0000-4000-8000-0000000000a1', 'machine ' || i) a
 GROUP BY a.code ORDER BY a.code;
SELECT count(*) AS activations FROM benefits.license_key_activations a
  JOIN benefits.license_keys k ON k.id = a.license_key_id JOIN seat USING (benefit_id);
-- import_license_key and update_license_key hold the same limit
SELECT lim(format('SELECT benefits.import_license_key(%L, %L, ''IMPORTED-1'', limit_activations => 1001)',
                  '11a11000-0000-4000-8000-0000000000c1', benefit_id)) AS "import 1001" FROM seat;
SELECT lim(format('SELECT benefits.update_license_key(k.id, limit_activations => %s) FROM benefits.license_keys k'
                  ' WHERE k.benefit_id = %L', n, benefit_id)) AS result, n
  FROM seat, (VALUES (1000), (1001)) v(n) ORDER BY n;

-- ===== one activation: label of 200 characters, conditions and meta of 4096
-- bytes, fingerprint of 256 bytes (checked before the key is looked up)
SELECT lim(format('SELECT benefits.activate_license(''X'', %L, %L)', '11a11000-0000-4000-8000-0000000000a1',
                  repeat('l', n))) AS result, n AS label
  FROM (VALUES (200), (201)) v(n) ORDER BY n;
SELECT lim(format('SELECT benefits.activate_license(''X'', %L, ''l'', meta => %L)',
                  '11a11000-0000-4000-8000-0000000000a1', jsonb_build_object('m', repeat('m', n)))) AS result,
       pg_column_size(jsonb_build_object('m', repeat('m', n))) - 4 AS meta_bytes_as_stored
  FROM (VALUES (4083), (4084)) v(n) ORDER BY n;
SELECT lim(format('SELECT benefits.activate_license(''X'', %L, ''l'', fingerprint => %L)',
                  '11a11000-0000-4000-8000-0000000000a1', repeat('f', n))) AS result, n AS fingerprint
  FROM (VALUES (256), (257)) v(n) ORDER BY n;

-- ===== linked accounts: one per customer and platform (the primary key);
-- GitHub login of 39, account id of 100 bytes, token of 2048 bytes, 20 scopes
SELECT lim(format('SELECT benefits.link_account(%L, ''github'', ''1'', %L)',
                  '11a11000-0000-4000-8000-0000000000c1', repeat('g', n))) AS result, n AS login
  FROM (VALUES (39), (40)) v(n) ORDER BY n;
SELECT lim(format('SELECT benefits.link_account(%L, ''github'', %L, ''ada'')',
                  '11a11000-0000-4000-8000-0000000000c1', repeat('1', n))) AS result, n AS account_id
  FROM (VALUES (100), (101)) v(n) ORDER BY n;
SELECT lim(format('SELECT benefits.link_account(%L, ''discord'', ''18446744073709551615'', ''ada'', %L)',
                  '11a11000-0000-4000-8000-0000000000c1', repeat('t', n))) AS result, n AS access_token
  FROM (VALUES (2048), (2049)) v(n) ORDER BY n;
SELECT lim(format('SELECT benefits.link_account(%L, ''discord'', ''18446744073709551616'', ''ada'', ''t'')',
                  '11a11000-0000-4000-8000-0000000000c1')) AS "discord id 2^64";
SELECT lim(format('SELECT benefits.link_account(%L, ''discord'', ''18446744073709551615'', ''ada'', ''t'','
                  ' scopes => %L)', '11a11000-0000-4000-8000-0000000000c1',
                  (SELECT array_agg('s' || i) FROM generate_series(1, n) i))) AS result, n AS scopes
  FROM (VALUES (20), (21)) v(n) ORDER BY n;
SELECT platform, length(account_id) AS account_id_length, length(access_token) AS token_length,
       cardinality(scopes) AS scopes
  FROM benefits.customer_accounts WHERE customer_id = '11a11000-0000-4000-8000-0000000000c1' ORDER BY platform;

-- ===== what the application writes directly: names, external ids, emails,
-- customer metadata (CHECK constraints, named for the field)
SELECT lim(format('INSERT INTO benefits.customers (organization_id, external_id, name, email) VALUES (%L, %L, %L, %L)',
                  '11a11000-0000-4000-8000-0000000000a1', repeat('x', 256), repeat('ñ', 2048),
                  repeat('e', 242) || '@example.com')) AS "customer at every edge";
SELECT lim(format('INSERT INTO benefits.customers (organization_id, external_id) VALUES (%L, %L)',
                  '11a11000-0000-4000-8000-0000000000a1', repeat('x', 257))) AS "external_id 257";
SELECT lim(format('INSERT INTO benefits.customers (organization_id, name) VALUES (%L, %L)',
                  '11a11000-0000-4000-8000-0000000000a1', repeat('ñ', 2049))) AS "name 2049";
SELECT lim(format('INSERT INTO benefits.customers (organization_id, email) VALUES (%L, %L)',
                  '11a11000-0000-4000-8000-0000000000a1', repeat('e', 243) || '@example.com')) AS "email 255";
SELECT lim(format('UPDATE benefits.customers SET metadata = jsonb_build_object(''m'', repeat(''m'', %s))'
                  ' WHERE id = %L', n, '11a11000-0000-4000-8000-0000000000c1')) AS result,
       octet_length(jsonb_build_object('m', repeat('m', n))::text) AS metadata_text_bytes
  FROM (VALUES (65527), (65528)) v(n) ORDER BY n;
SELECT lim(format('INSERT INTO benefits.products (organization_id, name, external_id) VALUES (%L, %L, %L)',
                  '11a11000-0000-4000-8000-0000000000a1', repeat('p', name_length), repeat('x', external_length)))
       AS result, name_length, external_length
  FROM (VALUES (256, 256), (257, 1), (1, 257)) v(name_length, external_length) ORDER BY 2, 3;
SELECT lim(format('INSERT INTO benefits.organizations (name) VALUES (%L)', repeat('o', n))) AS result, n AS name
  FROM (VALUES (256), (257)) v(n) ORDER BY n;
SELECT lim(format('INSERT INTO benefits.meters (organization_id, name) VALUES (%L, %L)',
                  '11a11000-0000-4000-8000-0000000000a1', repeat('m', n))) AS result, n AS name
  FROM (VALUES (256), (257)) v(n) ORDER BY n;
SELECT count(*) AS customers FROM benefits.customers WHERE organization_id = '11a11000-0000-4000-8000-0000000000a1';

-- ===== meters: units of 2^53 - 1, idempotency keys of 200, 10,000 buckets
SELECT lim(format('SELECT benefits.adjust_credits(%L, %L, %s, ''top-up'')', '11a11000-0000-4000-8000-0000000000c1',
                  '11a11000-0000-4000-8000-0000000000e1', n)) AS result, n AS units
  FROM (VALUES (9007199254740991), (9007199254740992)) v(n) ORDER BY n;
SELECT lim(format('SELECT benefits.record_usage(%L, %L, 1, %L)', '11a11000-0000-4000-8000-0000000000c1',
                  '11a11000-0000-4000-8000-0000000000e1', repeat('k', n))) AS result, n AS idempotency_key
  FROM (VALUES (200), (201)) v(n) ORDER BY n;
SELECT lim(format('SELECT count(*) FROM benefits.meter_usage_history(%L, %L, ''2030-01-01Z'', %L, ''1 minute'')',
                  '11a11000-0000-4000-8000-0000000000c1', '11a11000-0000-4000-8000-0000000000e1',
                  '2030-01-01Z'::timestamptz + n * interval '1 minute')) AS result, n AS buckets
  FROM (VALUES (10000), (10001)) v(n) ORDER BY n;
SELECT benefits.meter_balance('11a11000-0000-4000-8000-0000000000c1', '11a11000-0000-4000-8000-0000000000e1');

-- ===== webhook endpoints: a URL of 2048 characters
SELECT lim(format('SELECT benefits.create_webhook_endpoint(%L, %L, ARRAY[''benefit_grant.created''])',
                  '11a11000-0000-4000-8000-0000000000a1', 'https://example.com/' || repeat('h', n - 20)))
       AS result, n AS url
  FROM (VALUES (2048), (2049)) v(n) ORDER BY n;

DROP FUNCTION lim(text), lim_benefit(text, jsonb, text, jsonb), benefit_count(), repositories(int), roles(int),
              files(int, bigint, int), metadata(int, int, int);
DELETE FROM benefits.subscriptions WHERE organization_id = '11a11000-0000-4000-8000-0000000000a1';
DELETE FROM benefits.organizations WHERE id = '11a11000-0000-4000-8000-0000000000a1';
DELETE FROM benefits.organizations WHERE name = repeat('o', 256);
