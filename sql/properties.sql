-- Validation and normalization of benefits.properties, type by type: every
-- rule on its accepted and its refused side.  Refusals are SQLSTATE 22023 with
-- a message naming the JSON path, and write nothing.
INSERT INTO benefits.organizations (id, name) VALUES
    ('9e09e000-0000-4000-8000-0000000000a1', 'Properties Org'),
    ('9e09e000-0000-4000-8000-0000000000a2', 'Another Org');
INSERT INTO benefits.meters (id, organization_id, name) VALUES
    ('9e09e000-0000-4000-8000-0000000000b1', '9e09e000-0000-4000-8000-0000000000a1', 'api calls'),
    ('9e09e000-0000-4000-8000-0000000000b2', '9e09e000-0000-4000-8000-0000000000a2', 'other calls');
INSERT INTO benefits.files (id, organization_id, name, size) VALUES
    ('9e09e000-0000-4000-8000-0000000000c1', '9e09e000-0000-4000-8000-0000000000a1', 'manual.pdf', 1000),
    ('9e09e000-0000-4000-8000-0000000000c2', '9e09e000-0000-4000-8000-0000000000a1', 'app.zip', 2000),
    ('9e09e000-0000-4000-8000-0000000000c3', '9e09e000-0000-4000-8000-0000000000a2', 'other.zip', 3000);

-- Creates a benefit of the first organization and shows what was stored.
CREATE FUNCTION pt(text, jsonb) RETURNS TABLE (type text, properties jsonb)
LANGUAGE sql AS $$
    SELECT b.type, b.properties
      FROM benefits.create_benefit($1, '9e09e000-0000-4000-8000-0000000000a1', 'test benefit', $2) b
$$;
-- The error a call raises, with its SQLSTATE.
CREATE FUNCTION pt_error(text, jsonb) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pt($1, $2);
    RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- ===== types and aliases
SELECT * FROM pt('coupon', '{}');
SELECT * FROM pt('License_Keys', '{}');
SELECT * FROM pt('license_keys', '[]');
SELECT * FROM pt('license_keys', '"MYAPP"');
SELECT * FROM pt('custom', 'null');
SELECT pt_error('coupon', '{}'), pt_error('custom', '[1]');

-- ===== license_keys
-- The brief's own example.
SELECT * FROM pt('license_keys', '{"prefix": "MYAPP", "expires": false, "activations": 1, "limit_usage": false}');
SELECT * FROM pt('license_keys', '{}');
SELECT * FROM pt('license_keys', '{"prefix": null, "expires": null, "activations": null, "limit_usage": null}');
-- prefix: letters and digits, 1 to 16, upper-cased.
SELECT * FROM pt('license_keys', '{"prefix": "app2"}');
SELECT * FROM pt('license_keys', '{"prefix": "ABCDEFGHIJKLMNOP"}');
SELECT * FROM pt('license_keys', '{"prefix": "ABCDEFGHIJKLMNOPQ"}');
SELECT * FROM pt('license_keys', '{"prefix": "MY-APP"}');
SELECT * FROM pt('license_keys', '{"prefix": "ÄPP"}');
SELECT * FROM pt('license_keys', '{"prefix": ""}');
SELECT * FROM pt('license_keys', '{"prefix": 12}');
-- expires: false or {ttl, timeframe}.
SELECT * FROM pt('license_keys', '{"expires": {"ttl": 30, "timeframe": "day"}}');
SELECT * FROM pt('license_keys', '{"expires": {"ttl": 6, "timeframe": "month"}}');
SELECT * FROM pt('license_keys', '{"expires": {"timeframe": "year", "ttl": 1.0}}');
SELECT * FROM pt('license_keys', '{"expires": true}');
SELECT * FROM pt('license_keys', '{"expires": "never"}');
SELECT * FROM pt('license_keys', '{"expires": {"ttl": 0, "timeframe": "day"}}');
SELECT * FROM pt('license_keys', '{"expires": {"ttl": -3, "timeframe": "day"}}');
SELECT * FROM pt('license_keys', '{"expires": {"ttl": 1.5, "timeframe": "day"}}');
SELECT * FROM pt('license_keys', '{"expires": {"ttl": "30", "timeframe": "day"}}');
SELECT * FROM pt('license_keys', '{"expires": {"ttl": 2147483647, "timeframe": "day"}}');
SELECT * FROM pt('license_keys', '{"expires": {"ttl": 2147483648, "timeframe": "day"}}');
SELECT * FROM pt('license_keys', '{"expires": {"ttl": 30, "timeframe": "week"}}');
SELECT * FROM pt('license_keys', '{"expires": {"ttl": 30, "timeframe": "Day"}}');
SELECT * FROM pt('license_keys', '{"expires": {"ttl": 30}}');
SELECT * FROM pt('license_keys', '{"expires": {"timeframe": "day"}}');
SELECT * FROM pt('license_keys', '{"expires": {"ttl": 30, "timeframe": "day", "from": "now"}}');
-- activations: false, an integer limit, or {limit, enable_customer_admin}.
SELECT * FROM pt('license_keys', '{"activations": 5}');
SELECT * FROM pt('license_keys', '{"activations": {"limit": 3, "enable_customer_admin": true}}');
SELECT * FROM pt('license_keys', '{"activations": {"limit": 3}}');
SELECT * FROM pt('license_keys', '{"activations": false}');
SELECT * FROM pt('license_keys', '{"activations": 0}');
SELECT * FROM pt('license_keys', '{"activations": -1}');
SELECT * FROM pt('license_keys', '{"activations": 2.5}');
SELECT * FROM pt('license_keys', '{"activations": true}');
SELECT * FROM pt('license_keys', '{"activations": "5"}');
SELECT * FROM pt('license_keys', '{"activations": {"limit": 0}}');
SELECT * FROM pt('license_keys', '{"activations": {"limit": "3"}}');
SELECT * FROM pt('license_keys', '{"activations": {"enable_customer_admin": true}}');
SELECT * FROM pt('license_keys', '{"activations": {"limit": 3, "enable_customer_admin": "yes"}}');
SELECT * FROM pt('license_keys', '{"activations": {"limit": 3, "max": 4}}');
-- limit_usage: a positive integer; false or absent is no limit.
SELECT * FROM pt('license_keys', '{"limit_usage": 100}');
SELECT * FROM pt('license_keys', '{"limit_usage": 0}');
SELECT * FROM pt('license_keys', '{"limit_usage": true}');
SELECT * FROM pt('license_keys', '{"limit_usage": 10.5}');
SELECT * FROM pt('license_keys', '{"limit_usage": 99999999999}');
-- Unknown keys are refused, by name.
SELECT * FROM pt('license_keys', '{"prefx": "APP"}');

-- ===== github_repository
SELECT * FROM pt('github_repository', '{"repository_owner": "polarsource", "repository_name": "polar", "permission": "pull"}');
SELECT * FROM pt('github_repository',
    '{"repositories": [{"owner": "acme", "name": "app", "permission": "push"},
                       {"owner": "acme-labs", "name": "my.repo-name_1", "permission": "maintain"},
                       {"owner": "Acme", "name": "docs", "permission": "admin"}]}');
SELECT * FROM pt('github_repository', '{"repositories": [{"owner": "acme", "name": "triage-only", "permission": "triage"}]}');
SELECT * FROM pt('github_repository', '{}');
SELECT * FROM pt('github_repository',
    '{"repository_owner": "acme", "repository_name": "app", "permission": "pull",
      "repositories": [{"owner": "acme", "name": "app", "permission": "pull"}]}');
SELECT * FROM pt('github_repository', '{"repository_owner": "acme", "repository_name": "app"}');
SELECT * FROM pt('github_repository', '{"repository_owner": "acme", "permission": "pull"}');
SELECT * FROM pt('github_repository', '{"repository_name": "app", "permission": "pull"}');
SELECT * FROM pt('github_repository', '{"repository_owner": "acme", "repository_name": "app", "permission": "write"}');
SELECT * FROM pt('github_repository',
    '{"repositories": [{"owner": "acme", "name": "app", "permission": "push"},
                       {"owner": "acme", "name": "docs", "permission": "read"}]}');
SELECT * FROM pt('github_repository', '{"repositories": [{"owner": "acme", "name": "app"}]}');
SELECT * FROM pt('github_repository', '{"repositories": []}');
SELECT * FROM pt('github_repository', '{"repositories": {"owner": "acme", "name": "app", "permission": "pull"}}');
SELECT * FROM pt('github_repository', '{"repositories": ["acme/app"]}');
SELECT * FROM pt('github_repository', '{"repositories": [{"owner": "acme", "name": "app", "permission": "pull", "branch": "main"}]}');
SELECT * FROM pt('github_repository',
    '{"repositories": [{"owner": "acme", "name": "App", "permission": "pull"},
                       {"owner": "ACME", "name": "app", "permission": "push"}]}');
-- Owner names: letters, digits, hyphens, at most 39, no leading hyphen.
SELECT * FROM pt('github_repository', '{"repository_owner": "a-b-", "repository_name": "x", "permission": "pull"}');
SELECT * FROM pt('github_repository', '{"repository_owner": "-acme", "repository_name": "app", "permission": "pull"}');
SELECT * FROM pt('github_repository', '{"repository_owner": "acme_inc", "repository_name": "app", "permission": "pull"}');
SELECT * FROM pt('github_repository', '{"repository_owner": "", "repository_name": "app", "permission": "pull"}');
SELECT pt_error('github_repository', jsonb_build_object('repository_owner', repeat('a', 39), 'repository_name', 'app', 'permission', 'pull')) AS owner_39,
       pt_error('github_repository', jsonb_build_object('repository_owner', repeat('a', 40), 'repository_name', 'app', 'permission', 'pull')) AS owner_40;
-- Repository names: letters, digits, '.', '-', '_', at most 100, not . or ..
SELECT * FROM pt('github_repository', '{"repository_owner": "acme", "repository_name": "..", "permission": "pull"}');
SELECT * FROM pt('github_repository', '{"repository_owner": "acme", "repository_name": "a/b", "permission": "pull"}');
SELECT * FROM pt('github_repository', '{"repositories": [{"owner": "acme", "name": "my app", "permission": "pull"}]}');
SELECT * FROM pt('github_repository', '{"repository_owner": "acme", "repository_name": 7, "permission": "pull"}');
SELECT pt_error('github_repository', jsonb_build_object('repository_owner', 'acme', 'repository_name', repeat('r', 100), 'permission', 'pull')) AS name_100,
       pt_error('github_repository', jsonb_build_object('repository_owner', 'acme', 'repository_name', repeat('r', 101), 'permission', 'pull')) AS name_101;
SELECT * FROM pt('github_repository', '{"repository_owner": "acme", "repository_name": "app", "permission": "pull", "team": "x"}');

-- ===== discord
SELECT * FROM pt('discord', '{"guild_id": "81384788765712384", "role_id": "1234567890123456789"}');
SELECT * FROM pt('discord',
    '{"guild_id": "1234567890123456789",
      "roles": [{"role_id": "11111111111111111", "name": "Supporter"},
                {"role_id": "22222222222222222"},
                {"role_id": "18446744073709551615", "name": null}],
      "kick_member": true}');
SELECT * FROM pt('discord', '{"guild_id": "1234567890123456789", "role_id": "11111111111111111", "kick_member": false}');
SELECT * FROM pt('discord', '{"role_id": "11111111111111111"}');
SELECT * FROM pt('discord', '{"guild_id": "1234567890123456789"}');
SELECT * FROM pt('discord', '{"guild_id": "1234567890123456789", "role_id": "11111111111111111", "roles": [{"role_id": "22222222222222222"}]}');
-- Snowflakes are strings of 17 to 20 digits within 64 bits.
SELECT * FROM pt('discord', '{"guild_id": 1234567890123456789, "role_id": "11111111111111111"}');
SELECT * FROM pt('discord', '{"guild_id": "1234567890123456", "role_id": "11111111111111111"}');
SELECT * FROM pt('discord', '{"guild_id": "123456789012345678901", "role_id": "11111111111111111"}');
SELECT * FROM pt('discord', '{"guild_id": "18446744073709551616", "role_id": "11111111111111111"}');
SELECT * FROM pt('discord', '{"guild_id": "01234567890123456", "role_id": "11111111111111111"}');
SELECT * FROM pt('discord', '{"guild_id": "1234567890123456789", "role_id": "1111111111111111x"}');
SELECT * FROM pt('discord', '{"guild_id": "1234567890123456789", "role_id": "1234567890123456789"}');
SELECT * FROM pt('discord', '{"guild_id": "1234567890123456789", "roles": [{"role_id": "11111111111111111"}, {"role_id": "1234567890123456789"}]}');
-- roles: a non-empty list of {role_id, name}, each role once.
SELECT * FROM pt('discord', '{"guild_id": "1234567890123456789", "roles": []}');
SELECT * FROM pt('discord', '{"guild_id": "1234567890123456789", "roles": ["11111111111111111"]}');
SELECT * FROM pt('discord', '{"guild_id": "1234567890123456789", "roles": [{"name": "Supporter"}]}');
SELECT * FROM pt('discord', '{"guild_id": "1234567890123456789", "roles": [{"role_id": "11111111111111111"}, {"role_id": "11111111111111111", "name": "again"}]}');
SELECT * FROM pt('discord', '{"guild_id": "1234567890123456789", "roles": [{"role_id": "11111111111111111", "name": ""}]}');
SELECT * FROM pt('discord', '{"guild_id": "1234567890123456789", "roles": [{"role_id": "11111111111111111", "name": 5}]}');
SELECT pt_error('discord', jsonb_build_object('guild_id', '1234567890123456789', 'roles', jsonb_build_array(jsonb_build_object('role_id', '11111111111111111', 'name', repeat('é', 100))))) AS name_100,
       pt_error('discord', jsonb_build_object('guild_id', '1234567890123456789', 'roles', jsonb_build_array(jsonb_build_object('role_id', '11111111111111111', 'name', repeat('é', 101))))) AS name_101;
SELECT * FROM pt('discord', '{"guild_id": "1234567890123456789", "roles": [{"role_id": "11111111111111111", "color": "red"}]}');
SELECT * FROM pt('discord', '{"guild_id": "1234567890123456789", "role_id": "11111111111111111", "kick_member": "yes"}');
SELECT * FROM pt('discord', '{"guild_id": "1234567890123456789", "role_id": "11111111111111111", "guild_token": "x"}');

-- ===== downloadable (alias downloadables)
SELECT * FROM pt('downloadable', '{"files": ["9e09e000-0000-4000-8000-0000000000c1", "9e09e000-0000-4000-8000-0000000000c2"]}');
SELECT * FROM pt('downloadables', '{"files": ["9E09E000-0000-4000-8000-0000000000C2"], "archived": {"9e09e000-0000-4000-8000-0000000000c2": true}}');
SELECT * FROM pt('downloadable', '{"files": ["9e09e0000000400080000000000000c1"], "archived": {"9E09E0000000400080000000000000C1": false}}');
SELECT * FROM pt('downloadable', '{"files": ["9e09e000-0000-4000-8000-0000000000c1", "9e09e000-0000-4000-8000-0000000000c2"], "archived": {"9e09e000-0000-4000-8000-0000000000c1": true}}');
-- Files given as {name, size} are registered, up to 10 GB.
SELECT count(*) AS files_before FROM benefits.files \gset
SELECT type, properties->'archived' = jsonb_build_object(properties->'files'->>0, false) AS archived_ok,
       jsonb_array_length(properties->'files') AS nfiles, properties->'files'->>0 AS new_file_id
  FROM pt('downloadables', '{"files": [{"name": "Big Release.iso", "size": 10737418240}]}') \gset
SELECT :'type' AS type, :'archived_ok' AS archived_ok, :nfiles AS nfiles;
SELECT organization_id, name, size, mime_type, storage_key = benefits.file_storage_key(organization_id, id, name) AS storage_key_ok
  FROM benefits.files WHERE id = :'new_file_id';
SELECT properties AS mixed FROM pt('downloadable',
    '{"files": [{"name": "notes.txt", "size": 0, "mime_type": "Text/Plain"},
                "9e09e000-0000-4000-8000-0000000000c1",
                {"name": "guide.epub", "size": 12345}],
      "archived": {"9e09e000-0000-4000-8000-0000000000c1": true}}') \gset
-- The list keeps its order; archived has every file of it.
SELECT jsonb_agg(f.name ORDER BY e.n) AS files,
       jsonb_object_agg(f.name, (:'mixed'::jsonb)->'archived'->(e.id)) AS archived,
       (SELECT count(*) FROM jsonb_object_keys((:'mixed'::jsonb)->'archived')) AS archived_keys
  FROM jsonb_array_elements_text((:'mixed'::jsonb)->'files') WITH ORDINALITY e(id, n)
  JOIN benefits.files f ON f.id = e.id::uuid;
SELECT name, size, mime_type FROM benefits.files WHERE name IN ('notes.txt', 'guide.epub') ORDER BY name;
SELECT count(*) - :files_before AS files_registered FROM benefits.files;
-- Refused: sizes, names, media types, keys.
SELECT count(*) AS files_before FROM benefits.files \gset
SELECT * FROM pt('downloadable', '{"files": [{"name": "a.iso", "size": 10737418241}]}');
SELECT * FROM pt('downloadable', '{"files": [{"name": "a.zip", "size": 10}, {"name": "b.zip", "size": -1}]}');
SELECT * FROM pt('downloadable', '{"files": [{"name": "a.zip", "size": "10"}]}');
SELECT * FROM pt('downloadable', '{"files": [{"name": "a.zip", "size": 1.5}]}');
SELECT * FROM pt('downloadable', '{"files": [{"name": "a.zip"}]}');
SELECT * FROM pt('downloadable', '{"files": [{"size": 10}]}');
SELECT * FROM pt('downloadable', '{"files": [{"name": "", "size": 10}]}');
SELECT * FROM pt('downloadable', '{"files": [{"name": "dir/a.zip", "size": 10}]}');
SELECT * FROM pt('downloadable', '{"files": [{"name": "a\nb.zip", "size": 10}]}');
SELECT pt_error('downloadable', jsonb_build_object('files', jsonb_build_array(jsonb_build_object('name', repeat('n', 256), 'size', 1)))) AS name_256;
SELECT * FROM pt('downloadable', '{"files": [{"name": "a.zip", "size": 10, "mime_type": "zip"}]}');
SELECT * FROM pt('downloadable', '{"files": [{"name": "a.zip", "size": 10, "mime_type": "text/plain; charset=utf-8"}]}');
SELECT * FROM pt('downloadable', '{"files": [{"name": "a.zip", "size": 10, "url": "https://example.com/a.zip"}]}');
-- Refused: file ids that are not files of this organization, or repeated.
SELECT * FROM pt('downloadable', '{"files": ["9e09e000-0000-4000-8000-0000000000c3"]}');
SELECT * FROM pt('downloadable', '{"files": [{"name": "a.zip", "size": 10}, "9e09e000-0000-4000-8000-0000000000c9"]}');
SELECT * FROM pt('downloadable', '{"files": ["manual.pdf"]}');
SELECT * FROM pt('downloadable', '{"files": [42]}');
SELECT * FROM pt('downloadable', '{"files": ["9e09e000-0000-4000-8000-0000000000c1", "9E09E000-0000-4000-8000-0000000000C1"]}');
SELECT * FROM pt('downloadable', '{"files": []}');
SELECT * FROM pt('downloadable', '{"files": "9e09e000-0000-4000-8000-0000000000c1"}');
SELECT * FROM pt('downloadable', '{}');
-- Refused: archived entries that are not files of the list, or not booleans.
SELECT * FROM pt('downloadable', '{"files": ["9e09e000-0000-4000-8000-0000000000c1"], "archived": {"9e09e000-0000-4000-8000-0000000000c2": true}}');
SELECT * FROM pt('downloadable', '{"files": ["9e09e000-0000-4000-8000-0000000000c1"], "archived": {"manual.pdf": true}}');
SELECT * FROM pt('downloadable', '{"files": ["9e09e000-0000-4000-8000-0000000000c1"], "archived": {"9e09e000-0000-4000-8000-0000000000c1": 1}}');
SELECT * FROM pt('downloadable', '{"files": ["9e09e000-0000-4000-8000-0000000000c1"], "archived": ["9e09e000-0000-4000-8000-0000000000c1"]}');
SELECT * FROM pt('downloadable', '{"files": ["9e09e000-0000-4000-8000-0000000000c1"], "hidden": []}');
-- None of the refused calls registered a file.
SELECT count(*) - :files_before AS files_registered FROM benefits.files;

-- ===== meter_credits (alias meter_credit; credits is units)
SELECT * FROM pt('meter_credits', '{"meter_id": "9e09e000-0000-4000-8000-0000000000b1", "units": 100}');
SELECT * FROM pt('meter_credit', '{"meter_id": "9E09E000-0000-4000-8000-0000000000B1", "credits": 50, "rollover": true, "low_balance_threshold": 10}');
SELECT * FROM pt('meter_credits', '{"meter_id": "9e09e000-0000-4000-8000-0000000000b1", "units": 9007199254740991, "low_balance_threshold": 0}');
-- A custom benefit carrying meter_id and credits is stored as meter_credits.
SELECT * FROM pt('custom', '{"meter_id": "9e09e000-0000-4000-8000-0000000000b1", "credits": 1000}');
SELECT * FROM pt('custom', '{"meter_id": "9e09e000-0000-4000-8000-0000000000b1", "credits": 1000, "note": "API credits"}');
SELECT * FROM pt('custom', '{"meter_id": "9e09e000-0000-4000-8000-0000000000b1"}');
SELECT * FROM pt('custom', '{"credits": 10}');
-- Refused meters: of another organization, unknown, not a uuid.
SELECT * FROM pt('meter_credits', '{"meter_id": "9e09e000-0000-4000-8000-0000000000b2", "units": 100}');
SELECT * FROM pt('meter_credits', '{"meter_id": "9e09e000-0000-4000-8000-0000000000b9", "units": 100}');
SELECT * FROM pt('meter_credits', '{"meter_id": "api calls", "units": 100}');
SELECT * FROM pt('meter_credits', '{"meter_id": 1, "units": 100}');
SELECT * FROM pt('meter_credits', '{"units": 100}');
-- Refused amounts and flags.
SELECT * FROM pt('meter_credits', '{"meter_id": "9e09e000-0000-4000-8000-0000000000b1", "units": 0}');
SELECT * FROM pt('meter_credits', '{"meter_id": "9e09e000-0000-4000-8000-0000000000b1", "units": 2.5}');
SELECT * FROM pt('meter_credits', '{"meter_id": "9e09e000-0000-4000-8000-0000000000b1", "credits": "100"}');
SELECT * FROM pt('meter_credits', '{"meter_id": "9e09e000-0000-4000-8000-0000000000b1", "units": 9007199254740992}');
SELECT * FROM pt('meter_credits', '{"meter_id": "9e09e000-0000-4000-8000-0000000000b1", "units": 100, "credits": 100}');
SELECT * FROM pt('meter_credits', '{"meter_id": "9e09e000-0000-4000-8000-0000000000b1"}');
SELECT * FROM pt('meter_credits', '{"meter_id": "9e09e000-0000-4000-8000-0000000000b1", "units": 100, "rollover": "yes"}');
SELECT * FROM pt('meter_credits', '{"meter_id": "9e09e000-0000-4000-8000-0000000000b1", "units": 100, "low_balance_threshold": -1}');
SELECT * FROM pt('meter_credits', '{"meter_id": "9e09e000-0000-4000-8000-0000000000b1", "units": 100, "expires": false}');

-- ===== custom
SELECT * FROM pt('custom', '{"note": "Join us at **https://example.com/vip**"}');
SELECT * FROM pt('custom', '{"note": null}');
SELECT * FROM pt('custom', '{}');
SELECT * FROM pt('custom', '{"note": 5}');
SELECT * FROM pt('custom', '{"note": "x", "url": "https://example.com"}');

-- Only the accepted calls wrote a benefit, each under its canonical type.
SELECT type, count(*) FROM benefits.benefits
 WHERE organization_id = '9e09e000-0000-4000-8000-0000000000a1' GROUP BY type ORDER BY type;

DROP FUNCTION pt_error(text, jsonb);
DROP FUNCTION pt(text, jsonb);

-- Leave nothing behind for the other test files.
DELETE FROM benefits.organizations
 WHERE id IN ('9e09e000-0000-4000-8000-0000000000a1', '9e09e000-0000-4000-8000-0000000000a2');
