-- The benefit catalog: create_benefit, update_benefit, delete_benefit (soft)
-- and update_product_benefits (ordered attachment).  Refusals are SQLSTATE
-- 22023 naming the argument or element, and write nothing.
INSERT INTO benefits.organizations (id, name) VALUES
    ('ca7a1090-0000-4000-8000-00000000ca01', 'Catalog Org'),
    ('ca7a1090-0000-4000-8000-00000000ca02', 'Another Catalog Org');
INSERT INTO benefits.products (id, organization_id, name) VALUES
    ('ca7a1090-0000-4000-8000-00000000cb01', 'ca7a1090-0000-4000-8000-00000000ca01', 'Pro'),
    ('ca7a1090-0000-4000-8000-00000000cb02', 'ca7a1090-0000-4000-8000-00000000ca01', 'Team');
INSERT INTO benefits.meters (id, organization_id, name) VALUES
    ('ca7a1090-0000-4000-8000-00000000cc01', 'ca7a1090-0000-4000-8000-00000000ca01', 'tokens');

-- The error a statement raises, with the given id replaced by a label.
CREATE FUNCTION error_of(statement text, id uuid, label text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    message text;
BEGIN
    EXECUTE statement;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS message = MESSAGE_TEXT;
    RETURN SQLSTATE || ': ' || replace(message, id::text, label);
END
$$;

-- ===== create_benefit
SELECT id AS license_id FROM benefits.create_benefit('license_keys', 'ca7a1090-0000-4000-8000-00000000ca01',
    'License key', '{"prefix": "pro", "activations": 2}') \gset
SELECT organization_id, type, description, properties, metadata,
       created_at IS NOT NULL AS has_created_at, modified_at, deleted_at
  FROM benefits.benefits WHERE id = :'license_id';
-- NULL properties mean {}.
SELECT type, properties FROM benefits.create_benefit('custom', 'ca7a1090-0000-4000-8000-00000000ca01', 'Thanks', NULL);
-- Required arguments.
SELECT count(*) AS benefits_before FROM benefits.benefits \gset
SELECT benefits.create_benefit(NULL, 'ca7a1090-0000-4000-8000-00000000ca01', 'x', '{}');
SELECT benefits.create_benefit('custom', NULL, 'x', '{}');
SELECT benefits.create_benefit('custom', 'ca7a1090-0000-4000-8000-00000000ca01', NULL, '{}');
SELECT benefits.create_benefit('custom', 'ca7a1090-0000-4000-8000-00000000ca01', '', '{}');
SELECT benefits.create_benefit('custom', 'ca7a1090-0000-4000-8000-00000000ca01', E' \t\n', '{}');
SELECT benefits.create_benefit('custom', 'ca7a1090-0000-4000-8000-00000000ca99', 'x', '{}');
SELECT benefits.create_benefit('coupon', 'ca7a1090-0000-4000-8000-00000000ca01', 'x', '{}');
-- A refused file list registers no file.
SELECT count(*) AS files_before FROM benefits.files \gset
SELECT benefits.create_benefit('downloadable', 'ca7a1090-0000-4000-8000-00000000ca01', 'Files',
    '{"files": [{"name": "ok.zip", "size": 1}, {"name": "huge.iso", "size": 20000000000}]}');
SELECT count(*) - :files_before AS files_written FROM benefits.files;
SELECT count(*) - :benefits_before AS benefits_written FROM benefits.benefits;

-- Benefits for the rest of the test.
SELECT id AS github_id FROM benefits.create_benefit('github_repository', 'ca7a1090-0000-4000-8000-00000000ca01',
    'Source access', '{"repository_owner": "acme", "repository_name": "app", "permission": "pull"}') \gset
SELECT id AS discord_id FROM benefits.create_benefit('discord', 'ca7a1090-0000-4000-8000-00000000ca01',
    'Community', '{"guild_id": "1234567890123456789", "role_id": "11111111111111111"}') \gset
SELECT id AS credits_id FROM benefits.create_benefit('meter_credit', 'ca7a1090-0000-4000-8000-00000000ca01',
    'Tokens', '{"meter_id": "ca7a1090-0000-4000-8000-00000000cc01", "credits": 1000}') \gset
SELECT id AS note_id FROM benefits.create_benefit('custom', 'ca7a1090-0000-4000-8000-00000000ca01',
    'Welcome note', '{"note": "Hello"}') \gset
SELECT id AS other_id FROM benefits.create_benefit('custom', 'ca7a1090-0000-4000-8000-00000000ca02',
    'Other org note', '{}') \gset

-- ===== update_benefit
-- Description only: properties are kept, modified_at is set.
SELECT description, properties, modified_at IS NOT NULL AS modified
  FROM benefits.update_benefit(:'license_id', 'License key (Pro)');
-- Properties only, normalized like create_benefit's.
SELECT description, properties
  FROM benefits.update_benefit(:'license_id', properties => '{"prefix": "pro", "activations": {"limit": 5, "enable_customer_admin": true}, "limit_usage": 10}');
SELECT properties FROM benefits.update_benefit(:'github_id', NULL,
    '{"repositories": [{"owner": "acme", "name": "app", "permission": "push"}, {"owner": "acme", "name": "docs", "permission": "pull"}]}');
SELECT properties FROM benefits.update_benefit(:'discord_id', NULL,
    '{"guild_id": "1234567890123456789", "roles": [{"role_id": "11111111111111111", "name": "VIP"}, {"role_id": "22222222222222222", "name": "Beta"}], "kick_member": true}');
-- The credits alias works on update too; the stored type stays meter_credits.
SELECT type, properties FROM benefits.update_benefit(:'credits_id', NULL,
    '{"meter_id": "ca7a1090-0000-4000-8000-00000000cc01", "credits": 2000, "rollover": true}');
-- Both NULL: description and properties are kept.
SELECT description, properties->'units' AS units FROM benefits.update_benefit(:'credits_id');
-- Refused: bad properties, a change of type, bad arguments.  Nothing changes.
SELECT properties AS license_before, modified_at AS license_modified FROM benefits.benefits WHERE id = :'license_id' \gset
SELECT benefits.update_benefit(:'license_id', 'Renamed', '{"activations": {"limit": 0}}');
SELECT benefits.update_benefit(:'license_id', '', NULL);
SELECT benefits.update_benefit(:'note_id', NULL, '{"meter_id": "ca7a1090-0000-4000-8000-00000000cc01", "credits": 5}');
SELECT benefits.update_benefit(:'github_id', NULL, '{"repository_owner": "acme", "repository_name": "app", "permission": "write"}');
SELECT benefits.update_benefit(NULL, 'x', NULL);
SELECT benefits.update_benefit('ca7a1090-0000-4000-8000-00000000cf99', 'x', NULL);
SELECT description, properties = :'license_before' AS properties_kept, modified_at = :'license_modified' AS modified_kept
  FROM benefits.benefits WHERE id = :'license_id';
SELECT type, properties FROM benefits.benefits WHERE id = :'note_id';
-- A refused update registers no file.
SELECT id AS files_benefit_id FROM benefits.create_benefit('downloadable', 'ca7a1090-0000-4000-8000-00000000ca01',
    'Files', '{"files": [{"name": "v1.zip", "size": 100}]}') \gset
SELECT count(*) AS files_before FROM benefits.files \gset
SELECT benefits.update_benefit(:'files_benefit_id', NULL, '{"files": [{"name": "v2.zip", "size": 200}, {"name": "v3.zip"}]}');
SELECT count(*) - :files_before AS files_written FROM benefits.files;
-- An accepted update registers its new files and keeps listed ones.
SELECT properties AS files_props FROM benefits.update_benefit(:'files_benefit_id', NULL,
    jsonb_build_object('files', jsonb_build_array(
        jsonb_build_object('name', 'v2.zip', 'size', 200),
        (SELECT properties->'files'->0 FROM benefits.benefits WHERE id = :'files_benefit_id')))) \gset
SELECT count(*) - :files_before AS files_written FROM benefits.files;
SELECT array_agg(f.name ORDER BY e.n) AS files
  FROM jsonb_array_elements_text((:'files_props'::jsonb)->'files') WITH ORDINALITY e(id, n)
  JOIN benefits.files f ON f.id = e.id::uuid;

-- ===== update_product_benefits
CREATE FUNCTION attached(product uuid) RETURNS TABLE (pos integer, description text)
LANGUAGE sql AS $$
    SELECT pb.position, b.description FROM benefits.product_benefits pb
      JOIN benefits.benefits b ON b.id = pb.benefit_id
     WHERE pb.product_id = product ORDER BY pb.position
$$;
SELECT benefits.update_product_benefits('ca7a1090-0000-4000-8000-00000000cb01',
    ARRAY[:'license_id', :'github_id', :'discord_id']::uuid[]);
SELECT * FROM attached('ca7a1090-0000-4000-8000-00000000cb01');
-- Reordering.
SELECT benefits.update_product_benefits('ca7a1090-0000-4000-8000-00000000cb01',
    ARRAY[:'discord_id', :'license_id', :'github_id']::uuid[]);
SELECT * FROM attached('ca7a1090-0000-4000-8000-00000000cb01');
-- Dropping one and adding another.
SELECT benefits.update_product_benefits('ca7a1090-0000-4000-8000-00000000cb01',
    ARRAY[:'credits_id', :'discord_id', :'github_id']::uuid[]);
SELECT * FROM attached('ca7a1090-0000-4000-8000-00000000cb01');
-- A benefit may belong to several products.
SELECT benefits.update_product_benefits('ca7a1090-0000-4000-8000-00000000cb02',
    ARRAY[:'github_id', :'note_id']::uuid[]);
SELECT * FROM attached('ca7a1090-0000-4000-8000-00000000cb02');
-- Refused, naming the element; the list is unchanged afterwards.
SELECT benefits.update_product_benefits('ca7a1090-0000-4000-8000-00000000cb01',
    ARRAY[:'license_id', :'github_id', :'license_id']::uuid[]);
SELECT benefits.update_product_benefits('ca7a1090-0000-4000-8000-00000000cb01',
    ARRAY[:'license_id', 'ca7a1090-0000-4000-8000-00000000cf99']::uuid[]);
SELECT benefits.update_product_benefits('ca7a1090-0000-4000-8000-00000000cb01',
    ARRAY[:'license_id', :'github_id', :'other_id']::uuid[]);
SELECT benefits.update_product_benefits('ca7a1090-0000-4000-8000-00000000cb01',
    ARRAY[:'license_id', NULL]::uuid[]);
SELECT benefits.update_product_benefits('ca7a1090-0000-4000-8000-00000000cb01',
    ARRAY[[:'license_id'], [:'github_id']]::uuid[]);
SELECT benefits.update_product_benefits('ca7a1090-0000-4000-8000-00000000cb01',
    '[0:1]={ca7a1090-0000-4000-8000-00000000cf98,ca7a1090-0000-4000-8000-00000000cf99}'::uuid[]);
SELECT benefits.update_product_benefits('ca7a1090-0000-4000-8000-00000000cb01', NULL);
SELECT benefits.update_product_benefits(NULL, ARRAY[:'license_id']::uuid[]);
SELECT benefits.update_product_benefits('ca7a1090-0000-4000-8000-00000000cb99', ARRAY[:'license_id']::uuid[]);
SELECT * FROM attached('ca7a1090-0000-4000-8000-00000000cb01');

-- ===== delete_benefit
SELECT benefits.delete_benefit(:'github_id');
-- The row stays, marked deleted, and leaves every product.
SELECT description, deleted_at IS NOT NULL AS deleted, modified_at IS NOT NULL AS modified
  FROM benefits.benefits WHERE id = :'github_id';
SELECT * FROM attached('ca7a1090-0000-4000-8000-00000000cb01');
SELECT * FROM attached('ca7a1090-0000-4000-8000-00000000cb02');
-- A deleted benefit cannot be edited nor attached; deleting it again does nothing.
SELECT deleted_at AS github_deleted_at FROM benefits.benefits WHERE id = :'github_id' \gset
SELECT error_of(format('SELECT benefits.update_benefit(%L, %L)', :'github_id', 'Back'), :'github_id', '<github_id>');
SELECT benefits.update_product_benefits('ca7a1090-0000-4000-8000-00000000cb02',
    ARRAY[:'note_id', :'github_id']::uuid[]);
SELECT benefits.delete_benefit(:'github_id');
SELECT deleted_at = :'github_deleted_at' AS deleted_at_kept FROM benefits.benefits WHERE id = :'github_id';
SELECT benefits.delete_benefit(NULL);
SELECT benefits.delete_benefit('ca7a1090-0000-4000-8000-00000000cf99');
-- An empty list detaches everything.
SELECT benefits.update_product_benefits('ca7a1090-0000-4000-8000-00000000cb02', '{}');
SELECT count(*) AS attached FROM attached('ca7a1090-0000-4000-8000-00000000cb02');

-- ===== privileges: benefits_admin only, nothing for PUBLIC
SELECT p.oid::regprocedure AS function,
       has_function_privilege('benefits_admin', p.oid, 'EXECUTE') AS admin,
       has_function_privilege('benefits_app', p.oid, 'EXECUTE') AS app,
       has_function_privilege('benefits_public', p.oid, 'EXECUTE') AS public_role,
       p.proacl IS NOT NULL AND NOT EXISTS (SELECT FROM aclexplode(p.proacl) a WHERE a.grantee = 0) AS not_public
  FROM pg_proc p
 WHERE p.pronamespace = 'benefits'::regnamespace
   AND p.proname IN ('create_benefit', 'update_benefit', 'delete_benefit', 'update_product_benefits')
 ORDER BY 1::text;
SET ROLE benefits_admin;
SELECT type FROM benefits.create_benefit('custom', 'ca7a1090-0000-4000-8000-00000000ca01', 'By admin', '{"note": "hi"}');
SET ROLE benefits_app;
SELECT benefits.create_benefit('custom', 'ca7a1090-0000-4000-8000-00000000ca01', 'By app', '{}');
RESET ROLE;

DROP FUNCTION attached(uuid);
DROP FUNCTION error_of(text, uuid, text);

-- Leave nothing behind for the other test files.
DELETE FROM benefits.organizations
 WHERE id IN ('ca7a1090-0000-4000-8000-00000000ca01', 'ca7a1090-0000-4000-8000-00000000ca02');
