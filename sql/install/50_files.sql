-- Downloadable files in S3-compatible storage: presigned URLs (signed in C,
-- src/s3.c), the upload life of a file, and download URLs for customers who
-- hold a grant of a downloadable benefit with the file.

-- Upload state.  A file is downloadable once its upload is complete
-- (uploaded_at set by complete_file_upload); upload_id is the multipart upload
-- in progress, if any.
ALTER TABLE benefits.files
    ADD COLUMN uploaded_at timestamptz,
    ADD COLUMN upload_id text;

-- What create_file answers: the file and how to upload its content.
--   upload_method PUT: send the bytes to upload_url.
--   upload_method POST (multipart, files over 5 GiB or when asked): POST to
--   upload_url to start a multipart upload; give its UploadId to
--   file_upload_parts for one URL per part, then POST the part list to
--   file_complete_multipart_url.  Either way, finish with complete_file_upload.
CREATE TYPE benefits.file_upload AS (
    id                 uuid,
    organization_id    uuid,
    name               text,
    size               bigint,
    mime_type          text,
    storage_key        text,
    upload_method      text,
    upload_url         text,
    multipart          boolean,
    part_size          bigint,
    part_count         integer,
    upload_expires_at  timestamptz
);

CREATE FUNCTION benefits.presign_s3_url(method text, key text, expires interval DEFAULT NULL,
                                        signed_at timestamptz DEFAULT now(), params jsonb DEFAULT '{}')
    RETURNS text
    AS 'MODULE_PATHNAME', 'presign_s3_url' LANGUAGE C STABLE;
COMMENT ON FUNCTION benefits.presign_s3_url(text, text, interval, timestamptz, jsonb) IS
    'AWS Signature V4 presigned URL for a request on the configured bucket (params: extra signed query parameters)';

CREATE FUNCTION benefits.s3_content_disposition(filename text, disposition text DEFAULT 'attachment')
    RETURNS text
    AS 'MODULE_PATHNAME', 's3_content_disposition' LANGUAGE C IMMUTABLE STRICT;

-- Internal: the download URL of a stored object, once access has been checked.
CREATE FUNCTION benefits.file_presigned_get(storage_key text, name text, mime_type text, expires interval DEFAULT NULL)
    RETURNS text
    AS 'MODULE_PATHNAME', 'file_presigned_get' LANGUAGE C STABLE;

-- The storage key of a new file: organization/file id/name, with the name
-- made safe as a path segment (no "/", no "." or ".." that clients collapse).
CREATE FUNCTION benefits.file_storage_key(organization_id uuid, file_id uuid, name text)
    RETURNS text LANGUAGE sql IMMUTABLE STRICT
    SET search_path = pg_catalog, pg_temp AS $$
    SELECT organization_id::text || '/' || file_id::text || '/' ||
           CASE WHEN name ~ '^\.+$' THEN 'file' ELSE regexp_replace(name, '[/[:cntrl:]]', '_', 'g') END
$$;

-- Registers a file and returns where to upload it.
CREATE FUNCTION benefits.create_file(organization_id uuid, name text, size bigint,
                                     mime_type text DEFAULT 'application/octet-stream',
                                     checksum_sha256 text DEFAULT NULL,
                                     storage_key text DEFAULT NULL,
                                     multipart boolean DEFAULT NULL,
                                     part_size bigint DEFAULT NULL)
    RETURNS benefits.file_upload
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    f benefits.files;
    r benefits.file_upload;
    ttl interval := current_setting('benefits.upload_url_ttl')::interval;
    use_multipart boolean;
BEGIN
    IF organization_id IS NULL OR NOT EXISTS (SELECT FROM benefits.organizations o WHERE o.id = create_file.organization_id) THEN
        RAISE EXCEPTION 'organization_id does not name an organization' USING ERRCODE = '22023';
    END IF;
    IF name IS NULL OR btrim(name) = '' OR length(name) > 255 OR name ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'name must be 1 to 255 characters without control characters' USING ERRCODE = '22023';
    END IF;
    IF size IS NULL OR size < 0 OR size > 10737418240 THEN
        RAISE EXCEPTION 'size must be between 0 and 10 GB (10737418240 bytes)' USING ERRCODE = '22023';
    END IF;
    IF mime_type IS NULL OR mime_type !~ '^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*( *;.*)?$'
       OR mime_type ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'mime_type must be a media type such as application/zip' USING ERRCODE = '22023';
    END IF;
    IF checksum_sha256 IS NOT NULL AND lower(checksum_sha256) !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'checksum_sha256 must be 64 hexadecimal digits' USING ERRCODE = '22023';
    END IF;
    IF storage_key IS NOT NULL AND (storage_key = '' OR octet_length(storage_key) > 1024) THEN
        RAISE EXCEPTION 'storage_key must be 1 to 1024 bytes' USING ERRCODE = '22023';
    END IF;

    use_multipart := coalesce(multipart, size > 5368709120);
    IF NOT use_multipart AND size > 5368709120 THEN
        RAISE EXCEPTION 'a file over 5 GiB must be uploaded in parts' USING ERRCODE = '22023';
    END IF;
    IF use_multipart THEN
        -- At most 10,000 parts of at least 5 MiB; 100 MiB unless the file needs larger.
        part_size := coalesce(part_size, greatest(104857600, ceil(size / 10000.0)::bigint));
        IF part_size < 5242880 OR part_size > 5368709120 THEN
            RAISE EXCEPTION 'part_size must be between 5 MiB and 5 GiB' USING ERRCODE = '22023';
        END IF;
        IF ceil(size::numeric / part_size) > 10000 THEN
            RAISE EXCEPTION 'part_size is too small: at most 10000 parts' USING ERRCODE = '22023';
        END IF;
    ELSIF part_size IS NOT NULL THEN
        RAISE EXCEPTION 'part_size applies to multipart uploads only' USING ERRCODE = '22023';
    END IF;

    f.id := gen_random_uuid();
    INSERT INTO benefits.files (id, organization_id, name, size, mime_type, checksum_sha256, storage_key)
    VALUES (f.id, create_file.organization_id, create_file.name, create_file.size, create_file.mime_type,
            lower(create_file.checksum_sha256),
            coalesce(create_file.storage_key, benefits.file_storage_key(create_file.organization_id, f.id, create_file.name)))
    RETURNING * INTO f;

    r.id := f.id; r.organization_id := f.organization_id; r.name := f.name; r.size := f.size;
    r.mime_type := f.mime_type; r.storage_key := f.storage_key; r.multipart := use_multipart;
    r.upload_expires_at := now() + ttl;
    IF use_multipart THEN
        r.upload_method := 'POST';
        r.upload_url := benefits.presign_s3_url('POST', f.storage_key, ttl, now(), '{"uploads": ""}');
        r.part_size := part_size;
        r.part_count := greatest(1, ceil(size::numeric / part_size))::integer;
    ELSE
        r.upload_method := 'PUT';
        r.upload_url := benefits.presign_s3_url('PUT', f.storage_key, ttl, now(), '{}');
        r.part_size := size;
        r.part_count := 1;
    END IF;
    RETURN r;
END
$$;

-- A fresh PUT URL for a file whose upload has not been completed (the first
-- one expired, or the content is being replaced).
CREATE FUNCTION benefits.file_upload_url(file_id uuid)
    RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    f benefits.files;
BEGIN
    SELECT * INTO f FROM benefits.files WHERE id = file_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'file % does not exist', file_id USING ERRCODE = '22023';
    END IF;
    IF f.size > 5368709120 THEN
        RAISE EXCEPTION 'file % is over 5 GiB and must be uploaded in parts', file_id USING ERRCODE = '22023';
    END IF;
    RETURN benefits.presign_s3_url('PUT', f.storage_key, current_setting('benefits.upload_url_ttl')::interval, now(), '{}');
END
$$;

-- One presigned PUT URL per part of a multipart upload started by POSTing to
-- create_file's upload_url; remembers the upload id.
CREATE FUNCTION benefits.file_upload_parts(file_id uuid, upload_id text, part_size bigint DEFAULT NULL)
    RETURNS TABLE (part_number integer, url text, size bigint)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    f benefits.files;
    ttl interval := current_setting('benefits.upload_url_ttl')::interval;
    n integer;
BEGIN
    IF upload_id IS NULL OR upload_id = '' OR length(upload_id) > 1024 THEN
        RAISE EXCEPTION 'upload_id must be the UploadId the storage returned' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO f FROM benefits.files WHERE id = file_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'file % does not exist', file_id USING ERRCODE = '22023';
    END IF;
    part_size := coalesce(part_size, greatest(104857600, ceil(f.size / 10000.0)::bigint));
    IF part_size < 5242880 OR part_size > 5368709120 OR ceil(f.size::numeric / part_size) > 10000 THEN
        RAISE EXCEPTION 'part_size must be between 5 MiB and 5 GiB, with at most 10000 parts' USING ERRCODE = '22023';
    END IF;
    UPDATE benefits.files SET upload_id = file_upload_parts.upload_id, modified_at = now() WHERE id = file_id;
    n := greatest(1, ceil(f.size::numeric / part_size))::integer;
    RETURN QUERY
        SELECT i, benefits.presign_s3_url('PUT', f.storage_key, ttl, now(),
                                          jsonb_build_object('partNumber', i::text, 'uploadId', file_upload_parts.upload_id)),
               least(part_size, f.size - (i - 1)::bigint * part_size)
          FROM generate_series(1, n) i;
END
$$;

-- The presigned POST that completes (with the parts' ETags in the body) the
-- multipart upload recorded by file_upload_parts.
CREATE FUNCTION benefits.file_complete_multipart_url(file_id uuid)
    RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    f benefits.files;
BEGIN
    SELECT * INTO f FROM benefits.files WHERE id = file_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'file % does not exist', file_id USING ERRCODE = '22023';
    END IF;
    IF f.upload_id IS NULL THEN
        RAISE EXCEPTION 'file % has no multipart upload in progress', file_id USING ERRCODE = '55000',
              HINT = 'Call benefits.file_upload_parts with the UploadId first.';
    END IF;
    RETURN benefits.presign_s3_url('POST', f.storage_key, current_setting('benefits.upload_url_ttl')::interval, now(),
                                   jsonb_build_object('uploadId', f.upload_id));
END
$$;

-- Marks the upload done: the file becomes downloadable.  The SHA-256 given
-- is recorded, or must match the one registered at create time.
CREATE FUNCTION benefits.complete_file_upload(file_id uuid, checksum_sha256 text DEFAULT NULL)
    RETURNS benefits.files
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    f benefits.files;
BEGIN
    IF checksum_sha256 IS NOT NULL AND lower(checksum_sha256) !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'checksum_sha256 must be 64 hexadecimal digits' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO f FROM benefits.files WHERE id = file_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'file % does not exist', file_id USING ERRCODE = '22023';
    END IF;
    IF checksum_sha256 IS NOT NULL AND f.checksum_sha256 IS NOT NULL
       AND f.checksum_sha256 <> lower(checksum_sha256) THEN
        RAISE EXCEPTION 'checksum_sha256 does not match the one registered for file %', file_id
              USING ERRCODE = '22023', DETAIL = format('Registered: %s.', f.checksum_sha256);
    END IF;
    UPDATE benefits.files
       SET uploaded_at = now(), upload_id = NULL, modified_at = now(),
           checksum_sha256 = coalesce(lower(complete_file_upload.checksum_sha256), files.checksum_sha256)
     WHERE id = file_id
    RETURNING * INTO f;
    RETURN f;
END
$$;

-- Renames, enables/disables or archives a file.  A disabled or archived file
-- gets no download URL.
CREATE FUNCTION benefits.update_file(file_id uuid, name text DEFAULT NULL,
                                     enabled boolean DEFAULT NULL, archived boolean DEFAULT NULL)
    RETURNS benefits.files
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    f benefits.files;
BEGIN
    IF name IS NOT NULL AND (btrim(name) = '' OR length(name) > 255 OR name ~ '[[:cntrl:]]') THEN
        RAISE EXCEPTION 'name must be 1 to 255 characters without control characters' USING ERRCODE = '22023';
    END IF;
    UPDATE benefits.files
       SET name = coalesce(update_file.name, files.name),
           enabled = coalesce(update_file.enabled, files.enabled),
           archived = coalesce(update_file.archived, files.archived),
           modified_at = now()
     WHERE id = file_id
    RETURNING * INTO f;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'file % does not exist', file_id USING ERRCODE = '22023';
    END IF;
    RETURN f;
END
$$;

-- Internal: why CUSTOMER may not download FILE, or NULL when they may.
-- Checks the grant first, so a customer without access learns nothing about
-- the file's state.
CREATE FUNCTION benefits.file_access_error(customer_id uuid, f benefits.files)
    RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE
        WHEN NOT EXISTS (
            SELECT FROM benefits.grants g
              JOIN benefits.benefits b ON b.id = g.benefit_id
             WHERE g.customer_id = file_access_error.customer_id
               AND g.state = 'active' AND b.deleted_at IS NULL
               AND b.type = 'downloadable' AND b.organization_id = f.organization_id
               AND b.properties -> 'files' ? f.id::text)
            THEN 'no_grant'
        WHEN f.archived OR NOT EXISTS (
            SELECT FROM benefits.grants g
              JOIN benefits.benefits b ON b.id = g.benefit_id
             WHERE g.customer_id = file_access_error.customer_id
               AND g.state = 'active' AND b.deleted_at IS NULL
               AND b.type = 'downloadable' AND b.organization_id = f.organization_id
               AND b.properties -> 'files' ? f.id::text
               AND coalesce((b.properties -> 'archived' ->> f.id::text)::boolean, false) = false)
            THEN 'archived'
        WHEN NOT f.enabled THEN 'disabled'
        WHEN f.uploaded_at IS NULL THEN 'not_uploaded'
    END
$$;

-- A time-limited download URL for a customer holding an active grant of a
-- downloadable benefit with the file.
CREATE FUNCTION benefits.file_download_url(customer_id uuid, file_id uuid, expires interval DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    f benefits.files;
BEGIN
    IF customer_id IS NULL OR file_id IS NULL THEN
        RAISE EXCEPTION 'customer_id and file_id must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO f FROM benefits.files WHERE id = file_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'file % does not exist', file_id USING ERRCODE = '22023';
    END IF;
    CASE benefits.file_access_error(customer_id, f)
        WHEN 'no_grant' THEN
            RAISE EXCEPTION 'customer % has no active grant of a benefit holding file %', customer_id, file_id
                  USING ERRCODE = '42501';
        WHEN 'archived' THEN
            RAISE EXCEPTION 'file % is archived', file_id USING ERRCODE = '55000',
                  DETAIL = 'Archived files are no longer offered for download.';
        WHEN 'disabled' THEN
            RAISE EXCEPTION 'file % is disabled', file_id USING ERRCODE = '55000';
        WHEN 'not_uploaded' THEN
            RAISE EXCEPTION 'file % has not been uploaded', file_id USING ERRCODE = '55000',
                  HINT = 'Upload its content and call benefits.complete_file_upload.';
        ELSE
            RETURN benefits.file_presigned_get(f.storage_key, f.name, f.mime_type, expires);
    END CASE;
END
$$;

GRANT EXECUTE ON FUNCTION benefits.file_download_url(uuid, uuid, interval) TO benefits_app;
