-- The merchant's dashboard: the figures of an organization as data
-- (admin_overview), a self-contained admin page rendered in C from them
-- (admin_page_html), and browser uploads straight to storage with a SigV4
-- POST policy (s3_presigned_post, file_upload_form).  For benefits_admin
-- only; nothing here is SECURITY DEFINER: an administrator reads every table
-- these read.

-- A browser upload form for exactly SIZE bytes at KEY: {url, fields}.
CREATE FUNCTION benefits.s3_presigned_post(key text, size bigint, redirect_url text,
                                           expires interval DEFAULT NULL, signed_at timestamptz DEFAULT NULL)
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 's3_presigned_post' LANGUAGE C STABLE;
COMMENT ON FUNCTION benefits.s3_presigned_post(text, bigint, text, interval, timestamptz) IS
    'SigV4 POST policy for a browser upload of exactly size bytes at key, redirecting to redirect_url';

-- The upload form of a registered file whose content has not been uploaded:
-- key and size fixed to the file's, valid benefits.upload_url_ttl.  Storage
-- sends the browser to redirect_url afterwards; the application then calls
-- complete_file_upload.
CREATE FUNCTION benefits.file_upload_form(file_id uuid, redirect_url text)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    f benefits.files;
BEGIN
    IF file_id IS NULL OR redirect_url IS NULL THEN
        RAISE EXCEPTION 'file_id and redirect_url must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO f FROM benefits.files WHERE id = file_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'file % does not exist', file_id USING ERRCODE = '22023';
    END IF;
    IF f.uploaded_at IS NOT NULL THEN
        RAISE EXCEPTION 'file % has been uploaded already', file_id USING ERRCODE = '55000',
              HINT = 'Register a new file with benefits.create_file to replace its content.';
    END IF;
    IF f.size > 5368709120 THEN
        RAISE EXCEPTION 'file % is over 5 GiB and must be uploaded in parts', file_id USING ERRCODE = '22023';
    END IF;
    RETURN benefits.s3_presigned_post(f.storage_key, f.size, redirect_url,
                                      current_setting('benefits.upload_url_ttl')::interval, now());
END
$$;

-- Everything the dashboard shows about an organization, as one document:
-- its products with their benefits in order, the benefits with their live
-- grants, the files and their upload state, delivery (jobs by kind and
-- state, dead jobs, disabled endpoints, grants waiting for an account or
-- failing, manual fulfillments waiting when that view exists) and usage
-- (validation counters, activations near their limit, low meter balances).
-- Lists are capped at 200 rows, usage lists at 10.
CREATE FUNCTION benefits.admin_overview(organization_id uuid)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    org benefits.organizations;
    fulfillments jsonb;
    result jsonb;
BEGIN
    IF organization_id IS NULL THEN
        RAISE EXCEPTION 'organization_id must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO org FROM benefits.organizations o WHERE o.id = admin_overview.organization_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'organization % does not exist', organization_id USING ERRCODE = '22023';
    END IF;
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'grant_id', p.grant_id, 'since', benefits.rfc3339(p.since),
               'customer', coalesce(p.customer_name, p.customer_email),
               'benefit', p.benefit_description) ORDER BY p.since, p.grant_id), '[]')
      INTO fulfillments
      FROM (SELECT * FROM benefits.pending_fulfillments p
             WHERE p.organization_id = admin_overview.organization_id ORDER BY p.since, p.grant_id LIMIT 200) p;

    SELECT jsonb_build_object(
        'organization', jsonb_build_object('id', org.id, 'name', org.name),
        'products', (
            SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'id', p.id, 'name', p.name,
                       'benefits', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                                'id', b.id, 'type', b.type, 'description', b.description)
                                            ORDER BY pb.position, b.id), '[]')
                                      FROM benefits.product_benefits pb
                                      JOIN benefits.benefits b ON b.id = pb.benefit_id
                                     WHERE pb.product_id = p.id))
                   ORDER BY p.name, p.id), '[]')
              FROM (SELECT * FROM benefits.products p
                     WHERE p.organization_id = admin_overview.organization_id
                     ORDER BY p.name, p.id LIMIT 200) p),
        'benefits', (
            SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'id', b.id, 'type', b.type, 'description', b.description,
                       'properties', b.properties,
                       'live_grants', (SELECT count(*) FROM benefits.grants g
                                        WHERE g.benefit_id = b.id AND g.state = 'active'),
                       'waiting_grants', (SELECT count(*) FROM benefits.grants g
                                           WHERE g.benefit_id = b.id AND g.state = 'created'))
                   ORDER BY b.created_at, b.id), '[]')
              FROM (SELECT * FROM benefits.benefits b
                     WHERE b.organization_id = admin_overview.organization_id AND b.deleted_at IS NULL
                     ORDER BY b.created_at, b.id LIMIT 200) b),
        'files', (
            SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'id', f.id, 'name', f.name, 'size', f.size, 'mime_type', f.mime_type,
                       'state', CASE WHEN f.archived THEN 'archived'
                                     WHEN NOT f.enabled THEN 'disabled'
                                     WHEN f.uploaded_at IS NULL THEN 'waiting_for_upload'
                                     ELSE 'uploaded' END,
                       'uploaded_at', benefits.rfc3339(f.uploaded_at))
                   ORDER BY f.created_at, f.id), '[]')
              FROM (SELECT * FROM benefits.files f
                     WHERE f.organization_id = admin_overview.organization_id
                     ORDER BY f.created_at, f.id LIMIT 200) f),
        'delivery', jsonb_build_object(
            'jobs', (
                SELECT coalesce(jsonb_agg(jsonb_build_object('kind', j.kind, 'state', j.state, 'count', j.n)
                                          ORDER BY j.kind, j.state), '[]')
                  FROM (SELECT o.kind, o.state, count(*) AS n FROM benefits.outbox o
                         WHERE o.organization_id = admin_overview.organization_id
                         GROUP BY o.kind, o.state) j),
            'dead_jobs', (
                SELECT coalesce(jsonb_agg(jsonb_build_object(
                           'id', d.id, 'kind', d.kind, 'action', d.action, 'event_type', d.event_type,
                           'attempts', d.attempts, 'last_status', d.last_status, 'last_error', d.last_error,
                           'finished_at', benefits.rfc3339(d.finished_at))
                       ORDER BY d.id DESC), '[]')
                  FROM (SELECT * FROM benefits.dead_jobs d
                         WHERE d.organization_id = admin_overview.organization_id
                         ORDER BY d.id DESC LIMIT 200) d),
            'disabled_endpoints', (
                SELECT coalesce(jsonb_agg(jsonb_build_object(
                           'id', e.id, 'url', e.url, 'disabled_at', benefits.rfc3339(e.disabled_at),
                           'reason', e.disabled_reason)
                       ORDER BY e.disabled_at, e.id), '[]')
                  FROM (SELECT * FROM benefits.webhook_endpoints e
                         WHERE e.organization_id = admin_overview.organization_id AND NOT e.enabled
                         ORDER BY e.disabled_at, e.id LIMIT 200) e),
            'attention_grants', (
                SELECT coalesce(jsonb_agg(jsonb_build_object(
                           'id', g.id, 'state', g.state, 'benefit', b.description, 'type', b.type,
                           'customer', coalesce(c.name, c.email, c.external_id), 'error', g.error)
                       ORDER BY g.granted_at NULLS FIRST, g.id), '[]')
                  FROM (SELECT * FROM benefits.grants g
                         WHERE g.organization_id = admin_overview.organization_id
                           AND g.state <> 'revoked' AND g.error IS NOT NULL
                         ORDER BY g.id LIMIT 200) g
                  JOIN benefits.benefits b ON b.id = g.benefit_id
                  JOIN benefits.customers c ON c.id = g.customer_id),
            'pending_fulfillments', fulfillments),
        'usage', jsonb_build_object(
            'validations_by_day', (
                SELECT coalesce(jsonb_agg(jsonb_build_object('day', to_char(d.day, 'YYYY-MM-DD'),
                                                             'keys', coalesce(v.keys, 0),
                                                             'validations', coalesce(h.validations, 0))
                                          ORDER BY d.day), '[]')
                  FROM generate_series((now() AT TIME ZONE 'UTC')::date - 13,
                                       (now() AT TIME ZONE 'UTC')::date, interval '1 day') AS d(day)
                  LEFT JOIN (SELECT (k.last_validated_at AT TIME ZONE 'UTC')::date AS day, count(*) AS keys
                               FROM benefits.license_keys k
                              WHERE k.organization_id = admin_overview.organization_id
                                AND k.last_validated_at >= now() - interval '14 days'
                              GROUP BY 1) v ON v.day = d.day::date
                  LEFT JOIN benefits.license_validations_daily h
                         ON h.organization_id = admin_overview.organization_id AND h.day = d.day::date),
            'top_keys', (
                SELECT coalesce(jsonb_agg(jsonb_build_object(
                           'id', k.id, 'display_key', k.display_key, 'status', k.status,
                           'customer', coalesce(c.name, c.email, c.external_id),
                           'validations', k.validations,
                           'last_validated_at', benefits.rfc3339(k.last_validated_at))
                       ORDER BY k.validations DESC, k.id), '[]')
                  FROM (SELECT * FROM benefits.license_keys k
                         WHERE k.organization_id = admin_overview.organization_id AND k.validations > 0
                         ORDER BY k.validations DESC, k.id LIMIT 10) k
                  JOIN benefits.customers c ON c.id = k.customer_id),
            'activations_near_limit', (
                SELECT coalesce(jsonb_agg(jsonb_build_object(
                           'id', k.id, 'display_key', k.display_key,
                           'customer', coalesce(c.name, c.email, c.external_id),
                           'activations', k.activations, 'limit', k.limit_activations)
                       ORDER BY k.activations::numeric / k.limit_activations DESC, k.id), '[]')
                  FROM (SELECT k.* FROM (
                          SELECT k.*, (SELECT count(*) FROM benefits.license_key_activations a
                                        WHERE a.license_key_id = k.id AND a.deactivated_at IS NULL) AS activations
                            FROM benefits.license_keys k
                           WHERE k.organization_id = admin_overview.organization_id
                             AND k.limit_activations IS NOT NULL AND k.status = 'granted') k
                         WHERE k.activations * 5 >= k.limit_activations * 4
                         ORDER BY k.activations::numeric / k.limit_activations DESC, k.id LIMIT 10) k
                  JOIN benefits.customers c ON c.id = k.customer_id),
            'low_balances', (
                SELECT coalesce(jsonb_agg(jsonb_build_object(
                           'customer', coalesce(c.name, c.email, c.external_id), 'meter', m.name,
                           'balance', mb.balance, 'threshold', mb.low_balance_threshold,
                           'credited', mb.credited)
                       ORDER BY mb.balance, m.name, c.id), '[]')
                  FROM (SELECT * FROM benefits.meter_balances mb
                         WHERE mb.organization_id = admin_overview.organization_id
                           AND mb.low_balance_threshold IS NOT NULL AND mb.balance <= mb.low_balance_threshold
                         ORDER BY mb.balance, mb.meter_id, mb.customer_id LIMIT 10) mb
                  JOIN benefits.meters m ON m.id = mb.meter_id
                  JOIN benefits.customers c ON c.id = mb.customer_id)))
      INTO result;
    RETURN result;
END
$$;

-- The dashboard page of one section: overview, products, benefits, files,
-- delivery or usage.  Forms post to action_url with an action field naming
-- the SQL function and the csrf_token given.  params: upload_redirect_url
-- (where storage sends the browser after an upload; without it the files
-- section shows no upload forms) and notice (a line shown at the top).
CREATE FUNCTION benefits.admin_page_html(organization_id uuid, section text DEFAULT 'overview',
                                         action_url text DEFAULT NULL, csrf_token text DEFAULT NULL,
                                         params jsonb DEFAULT '{}')
    RETURNS text
    AS 'MODULE_PATHNAME', 'admin_page_html' LANGUAGE C STABLE
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION benefits.admin_page_html(uuid, text, text, text, jsonb) IS
    'The merchant dashboard as a complete, self-contained HTML page';

REVOKE EXECUTE ON FUNCTION
    benefits.s3_presigned_post(text, bigint, text, interval, timestamptz),
    benefits.file_upload_form(uuid, text), benefits.admin_overview(uuid),
    benefits.admin_page_html(uuid, text, text, text, jsonb)
    FROM PUBLIC;
