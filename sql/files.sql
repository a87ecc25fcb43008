-- Downloadable files: registration, uploads (single and multipart), and
-- download URLs only for customers holding an active grant of a benefit
-- with the file.
SET benefits.s3_endpoint = 'http://127.0.0.1:4568';
SET benefits.s3_url_style = 'path';
SET benefits.s3_region = 'us-east-1';
SET benefits.s3_bucket = 'downloads';
SET benefits.s3_access_key_id = 'S3RVER';
SET benefits.s3_secret_access_key = 'S3RVER';

-- Errors as SQLSTATE and message, with ids masked.
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}-[0-9a-f-]{27}', '<id>', 'g');
END
$$;

INSERT INTO benefits.organizations (id, name) VALUES
    ('00000000-0000-0000-0000-00000000f0a1', 'Files Org'),
    ('00000000-0000-0000-0000-00000000f0a2', 'Other Files Org');
INSERT INTO benefits.customers (id, organization_id, external_id) VALUES
    ('00000000-0000-0000-0000-00000000f0c1', '00000000-0000-0000-0000-00000000f0a1', 'files-1'),
    ('00000000-0000-0000-0000-00000000f0c2', '00000000-0000-0000-0000-00000000f0a1', 'files-2'),
    ('00000000-0000-0000-0000-00000000f0c3', '00000000-0000-0000-0000-00000000f0a2', 'files-3');

-- A small file: one presigned PUT to its storage key (organization/id/name).
SELECT id AS f1, storage_key AS f1_key, upload_url AS f1_put
  FROM benefits.create_file('00000000-0000-0000-0000-00000000f0a1', 'My Manual (v2).pdf', 1048576, 'application/pdf') \gset
SELECT :'f1_key' = '00000000-0000-0000-0000-00000000f0a1/' || :'f1' || '/My Manual (v2).pdf' AS key_ok;
SELECT name, size, mime_type, upload_method, multipart, part_size, part_count,
       storage_key = organization_id || '/' || id || '/other.bin' AS key_ok,
       upload_expires_at = now() + interval '1 hour' AS expires_in_an_hour
  FROM benefits.create_file('00000000-0000-0000-0000-00000000f0a1', 'other.bin', 10);
SELECT :'f1_put' LIKE 'http://127.0.0.1:4568/downloads/00000000-0000-0000-0000-00000000f0a1/' || :'f1' ||
                      '/My%20Manual%20%28v2%29.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256&%&X-Amz-Expires=3600&%' AS put_url_ok;
SELECT f.name, f.size, f.mime_type, f.enabled, f.archived, f.uploaded_at IS NULL AS pending, f.checksum_sha256
  FROM benefits.files f WHERE f.id = :'f1';
-- A name that is not a safe path segment is kept, its key made safe.
SELECT regexp_replace(storage_key, '^.*/', '') AS key_tail, name
  FROM benefits.create_file('00000000-0000-0000-0000-00000000f0a1', 'a/b/../c', 1);
SELECT regexp_replace(storage_key, '^.*/', '') AS key_tail, name
  FROM benefits.create_file('00000000-0000-0000-0000-00000000f0a1', '..', 1);

-- Over 5 GiB: a multipart upload, 100 MiB parts.
SELECT id AS big, upload_method, multipart, part_size, part_count,
       upload_url ~ '&X-Amz-SignedHeaders=host&uploads=&X-Amz-Signature=' AS create_url_ok
  FROM benefits.create_file('00000000-0000-0000-0000-00000000f0a1', 'big.iso', 6442450944, 'application/x-iso9660-image') \gset
\echo :upload_method :multipart :part_size :part_count :create_url_ok
SELECT pg_temp.try($$SELECT benefits.file_complete_multipart_url('$$ || :'big' || $$')$$);
SELECT count(*), min(part_number), max(part_number), sum(size), max(size), min(size),
       bool_and(url ~ ('&partNumber=' || part_number || '&uploadId=upload%2F1&X-Amz-Signature=')) AS urls_ok
  FROM benefits.file_upload_parts(:'big', 'upload/1');
SELECT benefits.file_complete_multipart_url(:'big') ~ '^http://127.0.0.1:4568/downloads/.*/big.iso\?.*&uploadId=upload%2F1&X-Amz-Signature=' AS complete_url_ok;
-- Multipart on request, with smaller parts.
SELECT multipart, part_size, part_count
  FROM benefits.create_file('00000000-0000-0000-0000-00000000f0a1', 'medium.bin', 12582912, multipart => true, part_size => 5242880);

-- Bad input names the field and writes nothing.
SELECT count(*) AS files_before FROM benefits.files \gset
SELECT pg_temp.try($$SELECT benefits.create_file('00000000-0000-0000-0000-00000000f0a1', 'x', 10737418241)$$);
SELECT pg_temp.try($$SELECT benefits.create_file('00000000-0000-0000-0000-00000000f0a1', 'x', -1)$$);
SELECT pg_temp.try($$SELECT benefits.create_file('00000000-0000-0000-0000-00000000f0a1', ' ', 1)$$);
SELECT pg_temp.try($$SELECT benefits.create_file('00000000-0000-0000-0000-00000000f0a1', E'a\nb', 1)$$);
SELECT pg_temp.try($$SELECT benefits.create_file('00000000-0000-0000-0000-00000000f0a1', 'x', 1, 'pdf')$$);
SELECT pg_temp.try($$SELECT benefits.create_file('00000000-0000-0000-0000-00000000f0a1', 'x', 1, checksum_sha256 => 'abc')$$);
SELECT pg_temp.try($$SELECT benefits.create_file('00000000-0000-0000-0000-0000000000ff', 'x', 1)$$);
SELECT pg_temp.try($$SELECT benefits.create_file('00000000-0000-0000-0000-00000000f0a1', 'x', 6442450944, multipart => false)$$);
SELECT pg_temp.try($$SELECT benefits.create_file('00000000-0000-0000-0000-00000000f0a1', 'x', 1, multipart => true, part_size => 1024)$$);
SELECT pg_temp.try($$SELECT benefits.create_file('00000000-0000-0000-0000-00000000f0a1', 'x', 1, part_size => 5242880)$$);
SELECT pg_temp.try($$SELECT benefits.file_upload_parts('$$ || :'big' || $$', '')$$);
SELECT count(*) = :files_before AS nothing_written FROM benefits.files;

-- A downloadable benefit with two files; customer 1 holds it.
SELECT id AS f2 FROM benefits.create_file('00000000-0000-0000-0000-00000000f0a1', 'Résumé 日本.txt', 5, 'text/plain',
                                          checksum_sha256 => '2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824') \gset
SELECT id AS f3 FROM benefits.create_file('00000000-0000-0000-0000-00000000f0a1', 'not-in-benefit.txt', 5) \gset
INSERT INTO benefits.benefits (id, organization_id, type, description, properties) VALUES
    ('00000000-0000-0000-0000-00000000f0b1', '00000000-0000-0000-0000-00000000f0a1', 'downloadable', 'Downloads',
     jsonb_build_object('files', jsonb_build_array(:'f1', :'f2'), 'archived', '{}'::jsonb));
SELECT state FROM benefits.grant_benefit('00000000-0000-0000-0000-00000000f0c1', '00000000-0000-0000-0000-00000000f0b1');

-- Not uploaded yet: no URL.
SELECT pg_temp.try($$SELECT benefits.file_download_url('00000000-0000-0000-0000-00000000f0c1', '$$ || :'f1' || $$')$$);
SELECT pg_temp.try($$SELECT benefits.complete_file_upload('$$ || :'f2' || $$', repeat('0', 64))$$);
SELECT uploaded_at IS NOT NULL AS uploaded, checksum_sha256 FROM benefits.complete_file_upload(:'f1', repeat('AB', 32));
SELECT uploaded_at IS NOT NULL AS uploaded, checksum_sha256
  FROM benefits.complete_file_upload(:'f2', '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
SELECT uploaded_at IS NOT NULL AS uploaded FROM benefits.complete_file_upload(:'f3');

-- The holder gets a signed GET naming the file; the URL lives download_url_ttl.
SELECT benefits.file_download_url('00000000-0000-0000-0000-00000000f0c1', :'f1') AS url1 \gset
SELECT :'url1' LIKE 'http://127.0.0.1:4568/downloads/00000000-0000-0000-0000-00000000f0a1/' || :'f1' || '/My%20Manual%20%28v2%29.pdf?%' AS path_ok,
       :'url1' LIKE '%&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&response-content-disposition=attachment%3B%20filename%3D%22My%20Manual%20%28v2%29.pdf%22&response-content-type=application%2Fpdf&X-Amz-Signature=%' AS params_ok;
SELECT benefits.file_download_url('00000000-0000-0000-0000-00000000f0c1', :'f2', '5 minutes')
       ~ 'X-Amz-Expires=300&.*filename%2A%3DUTF-8%27%27R%25C3%25A9sum%25C3%25A9%2520%25E6%2597%25A5%25E6%259C%25AC.txt&response-content-type=text%2Fplain&' AS utf8_name_ok;

-- Anyone else, or any other file, is refused.
SELECT pg_temp.try($$SELECT benefits.file_download_url('00000000-0000-0000-0000-00000000f0c2', '$$ || :'f1' || $$')$$);
SELECT pg_temp.try($$SELECT benefits.file_download_url('00000000-0000-0000-0000-00000000f0c3', '$$ || :'f1' || $$')$$);
SELECT pg_temp.try($$SELECT benefits.file_download_url('00000000-0000-0000-0000-00000000f0c1', '$$ || :'f3' || $$')$$);
SELECT pg_temp.try($$SELECT benefits.file_download_url('00000000-0000-0000-0000-00000000f0c1', '00000000-0000-0000-0000-0000000000ff')$$);
SELECT pg_temp.try($$SELECT benefits.file_download_url(NULL, '$$ || :'f1' || $$')$$);

-- Archived or disabled files get no URL; restoring them restores access.
SELECT archived FROM benefits.update_file(:'f1', archived => true);
SELECT pg_temp.try($$SELECT benefits.file_download_url('00000000-0000-0000-0000-00000000f0c1', '$$ || :'f1' || $$')$$);
SELECT enabled, archived FROM benefits.update_file(:'f1', enabled => false, archived => false);
SELECT pg_temp.try($$SELECT benefits.file_download_url('00000000-0000-0000-0000-00000000f0c1', '$$ || :'f1' || $$')$$);
SELECT enabled FROM benefits.update_file(:'f1', enabled => true);
SELECT pg_temp.try($$SELECT benefits.file_download_url('00000000-0000-0000-0000-00000000f0c1', '$$ || :'f1' || $$')$$);
-- Archived in the benefit's archived map.
UPDATE benefits.benefits SET properties = jsonb_set(properties, '{archived}', jsonb_build_object(:'f2', true))
 WHERE id = '00000000-0000-0000-0000-00000000f0b1';
SELECT pg_temp.try($$SELECT benefits.file_download_url('00000000-0000-0000-0000-00000000f0c1', '$$ || :'f2' || $$')$$);
SELECT pg_temp.try($$SELECT benefits.update_file('00000000-0000-0000-0000-0000000000ff', enabled => true)$$);

-- Revoking the grant ends access.
SELECT benefits.revoke_benefit('00000000-0000-0000-0000-00000000f0c1', '00000000-0000-0000-0000-00000000f0b1');
SELECT pg_temp.try($$SELECT benefits.file_download_url('00000000-0000-0000-0000-00000000f0c1', '$$ || :'f1' || $$')$$);

-- Roles: the application may ask for download URLs, not register files.
SELECT has_function_privilege('benefits_app', 'benefits.file_download_url(uuid, uuid, interval)', 'EXECUTE') AS app_download,
       has_function_privilege('benefits_app', 'benefits.create_file(uuid, text, bigint, text, text, text, boolean, bigint)', 'EXECUTE') AS app_create,
       has_function_privilege('benefits_public', 'benefits.file_download_url(uuid, uuid, interval)', 'EXECUTE') AS public_download,
       has_function_privilege('benefits_app', 'benefits.presign_s3_url(text, text, interval, timestamptz, jsonb)', 'EXECUTE') AS app_presign;
