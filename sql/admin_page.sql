-- The merchant's dashboard: admin_overview's figures, admin_page_html's
-- sections with hostile names, notes and file names escaped everywhere, its
-- forms, who may call it, bad arguments, and the browser upload form's POST
-- policy (file_upload_form).
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

-- What a hostile value must never be on the page: a raw tag or a raw quote
-- that could close an attribute.  The escaped form must be there instead.
CREATE FUNCTION pg_temp.escaped(html text, raw text) RETURNS text LANGUAGE sql AS $$
    SELECT CASE WHEN position(raw IN html) > 0 THEN 'RAW: ' || raw
                WHEN position(benefits.html_escape(raw) IN html) = 0 THEN 'MISSING: ' || raw
                ELSE 'escaped' END
$$;

INSERT INTO benefits.organizations (id, name) VALUES
    ('00000000-0000-0000-0000-0000000ad0a1', 'Org <b>"Bold"</b> & Co'),
    ('00000000-0000-0000-0000-0000000ad0a2', 'Other org');
INSERT INTO benefits.customers (id, organization_id, external_id, email, name) VALUES
    ('00000000-0000-0000-0000-0000000ad0c1', '00000000-0000-0000-0000-0000000ad0a1', 'adm-1', 'ada@example.com',
     'Ada <img src=x onerror=alert(1)>'),
    ('00000000-0000-0000-0000-0000000ad0c2', '00000000-0000-0000-0000-0000000ad0a2', 'adm-2', 'bob@example.com', 'Bob');
INSERT INTO benefits.products (id, organization_id, name) VALUES
    ('00000000-0000-0000-0000-0000000ad0d1', '00000000-0000-0000-0000-0000000ad0a1', 'Pro <script>alert("p")</script>'),
    ('00000000-0000-0000-0000-0000000ad0d2', '00000000-0000-0000-0000-0000000ad0a2', 'Other product');

SELECT id AS note_id FROM benefits.create_benefit('custom', '00000000-0000-0000-0000-0000000ad0a1',
    'Note <i>"quoted"</i>', '{"note": "Read <script>alert(\"n\")</script> & enjoy"}') \gset
SELECT id AS key_id FROM benefits.create_benefit('license_keys', '00000000-0000-0000-0000-0000000ad0a1',
    'Keys ''single''', '{"prefix": "ADM", "expires": false, "activations": {"limit": 2, "enable_customer_admin": true}, "limit_usage": false}') \gset
SELECT id AS gh_id FROM benefits.create_benefit('github_repository', '00000000-0000-0000-0000-0000000ad0a1',
    'Repo access', '{"repository_owner": "acme", "repository_name": "tool", "permission": "pull"}') \gset
SELECT id AS other_id FROM benefits.create_benefit('custom', '00000000-0000-0000-0000-0000000ad0a2',
    'Other org benefit', '{"note": "secret of the other org"}') \gset
SELECT benefits.update_product_benefits('00000000-0000-0000-0000-0000000ad0d1', ARRAY[:'note_id', :'key_id']::uuid[]);

-- An endpoint that will receive the grants' events.
SELECT id AS ep FROM benefits.create_webhook_endpoint('00000000-0000-0000-0000-0000000ad0a1',
    'https://hooks.example.com/in?a=1&b=<2>', ARRAY['benefit_grant.created']) \gset

-- A subscription grants both; the customer has no GitHub account, so a
-- manual grant of the repository waits with an error.
INSERT INTO benefits.subscriptions (organization_id, customer_id, product_id, status)
VALUES ('00000000-0000-0000-0000-0000000ad0a1', '00000000-0000-0000-0000-0000000ad0c1',
        '00000000-0000-0000-0000-0000000ad0d1', 'active');
SELECT state FROM benefits.grant_benefit('00000000-0000-0000-0000-0000000ad0c1', :'gh_id');
SELECT id AS lk, key AS lk_key FROM benefits.license_keys WHERE customer_id = '00000000-0000-0000-0000-0000000ad0c1' \gset
SELECT code FROM benefits.activate_license(:'lk_key', '00000000-0000-0000-0000-0000000ad0a1', 'laptop <1>');
SELECT code FROM benefits.activate_license(:'lk_key', '00000000-0000-0000-0000-0000000ad0a1', 'desktop');
INSERT INTO benefits.meters (id, organization_id, name)
VALUES ('00000000-0000-0000-0000-0000000ad0e1', '00000000-0000-0000-0000-0000000ad0a1', 'API <calls> "v2"');
SELECT id AS meter_benefit FROM benefits.create_benefit('meter_credits', '00000000-0000-0000-0000-0000000ad0a1', 'Credits',
    '{"meter_id": "00000000-0000-0000-0000-0000000ad0e1", "units": 5, "low_balance_threshold": 10}') \gset
SELECT state FROM benefits.grant_benefit('00000000-0000-0000-0000-0000000ad0c1', :'meter_benefit');
UPDATE benefits.license_keys SET validations = 42, last_validated_at = now() WHERE id = :'lk';
-- What flush_validation_stats adds for the day of those validations.
INSERT INTO benefits.license_validations_daily (organization_id, day, validations)
VALUES ('00000000-0000-0000-0000-0000000ad0a1', (now() AT TIME ZONE 'UTC')::date, 42),
       ('00000000-0000-0000-0000-0000000ad0a1', (now() AT TIME ZONE 'UTC')::date - 3, 5);

-- A file with a hostile name, one uploaded, one archived.
SELECT id AS f1 FROM benefits.create_file('00000000-0000-0000-0000-0000000ad0a1', 'evil"><svg onload=alert(1)>.zip', 1500000) \gset
SELECT id AS f2 FROM benefits.create_file('00000000-0000-0000-0000-0000000ad0a1', 'done.pdf', 10) \gset
SELECT id AS f3 FROM benefits.create_file('00000000-0000-0000-0000-0000000ad0a1', 'old.pdf', 10) \gset
SELECT name FROM benefits.complete_file_upload(:'f2');
SELECT name, archived FROM benefits.update_file(:'f3', archived => true);

-- A dead job with a hostile error, a disabled endpoint with a hostile reason
-- (as the worker would record them).
UPDATE benefits.webhook_endpoints SET enabled = false, disabled_at = now(),
       disabled_reason = 'HTTP 410 <gone> "bye"' WHERE id = :'ep';
UPDATE benefits.outbox SET state = 'dead', attempts = 3, last_status = 500,
       last_error = 'boom <script>alert("e")</script>', finished_at = now()
 WHERE id = (SELECT min(id) FROM benefits.outbox WHERE endpoint_id = :'ep') RETURNING kind, action, state;

-- The figures as data.
SELECT jsonb_pretty(benefits.admin_overview('00000000-0000-0000-0000-0000000ad0a1')
                    #- '{organization,id}' #- '{usage,validations_by_day}')
       ~ 'secret of the other org' AS leaks_other_org;
WITH d AS (SELECT benefits.admin_overview('00000000-0000-0000-0000-0000000ad0a1') AS d)
SELECT d->'organization'->>'name' AS org,
       jsonb_array_length(d->'products') AS products,
       (SELECT jsonb_agg(b->>'description') FROM jsonb_array_elements(d->'products'->0->'benefits') b) AS product_order,
       (SELECT jsonb_agg(jsonb_build_array(b->>'description', b->'live_grants', b->'waiting_grants'))
          FROM jsonb_array_elements(d->'benefits') b) AS benefits,
       (SELECT jsonb_agg(jsonb_build_array(f->>'name', f->>'state', f->'size')) FROM jsonb_array_elements(d->'files') f) AS files,
       jsonb_array_length(d->'delivery'->'dead_jobs') AS dead,
       d->'delivery'->'dead_jobs'->0->>'last_error' AS dead_error,
       d->'delivery'->'disabled_endpoints'->0->>'reason' AS disabled_reason,
       (SELECT jsonb_agg(g->>'benefit') FROM jsonb_array_elements(d->'delivery'->'attention_grants') g) AS attention,
       d->'usage'->'top_keys'->0->'validations' AS top_validations,
       d->'usage'->'activations_near_limit'->0->'activations' AS near_activations,
       d->'usage'->'activations_near_limit'->0->'limit' AS near_limit,
       jsonb_array_length(d->'usage'->'validations_by_day') AS days,
       (d->'usage'->'validations_by_day'->13->'validations') AS today,
       (d->'usage'->'validations_by_day'->10->'validations') AS three_days_ago
  FROM d;
SELECT pg_temp.try($$SELECT benefits.admin_overview(NULL)$$);
SELECT pg_temp.try($$SELECT benefits.admin_overview('00000000-0000-0000-0000-000000000bad')$$);

-- Every section escapes every hostile value it shows.
CREATE TEMP TABLE pages AS
SELECT s AS section,
       benefits.admin_page_html('00000000-0000-0000-0000-0000000ad0a1', s, '/admin/actions', 'tok"<en>',
                                jsonb_build_object('upload_redirect_url', 'https://app.example/uploaded',
                                                   'notice', 'Saved <b>it</b>')) AS html
  FROM unnest(ARRAY['overview', 'products', 'benefits', 'files', 'delivery', 'usage']) s;
SELECT section, pg_temp.escaped(html, 'Org <b>"Bold"</b> & Co') AS org,
       pg_temp.escaped(html, 'Saved <b>it</b>') AS notice,
       pg_temp.escaped(html, 'tok"<en>') IN ('escaped', 'MISSING: tok"<en>') AS token_never_raw,
       position('<script' IN html) = 0 AS no_script,
       html ~ '^<!DOCTYPE html>' AND html ~ '</html>\n$' AS complete,
       html ~ '<meta http-equiv="Content-Security-Policy" content="default-src ''none''; style-src ''unsafe-inline''; base-uri ''none''; form-action ''self''' AS csp,
       html ~ ('<a href="\?section=' || section || '" aria-current="page">') AS nav
  FROM pages ORDER BY section;
SELECT pg_temp.escaped(html, 'Pro <script>alert("p")</script>') AS product,
       pg_temp.escaped(html, 'Note <i>"quoted"</i>') AS benefit,
       pg_temp.escaped(html, 'Keys ''single''') AS quote,
       (SELECT count(*) FROM regexp_matches(html, '<form method="post" action="/admin/actions"><input type="hidden" name="action" value="update_product_benefits"><input type="hidden" name="csrf_token" value="tok&quot;&lt;en&gt;">', 'g')) AS forms,
       html ~ ('value="' || :'key_id' || '"><input type="hidden" name="benefit_ids" value="' || :'note_id' || '"><button type="submit" aria-label="Move up Keys &#39;single&#39;">') AS move_up_swaps,
       html ~ ('<select id="attach-0" name="benefit_ids"><option value="' || :'gh_id' || '">Repo access') AS attach_offers_unattached,
       position('Other org benefit' IN html) = 0 AS no_other_org
  FROM pages WHERE section = 'products';
SELECT pg_temp.escaped(html, 'Read <script>alert("n")</script> & enjoy') AS note_in_words,
       pg_temp.escaped(html, 'Note <i>"quoted"</i>') AS description_value,
       html ~ 'name="property_integer.units"' AS units_editable,
       html ~ '<li>Note: Read &lt;script&gt;' AS words,
       html ~ '<li>Activations: \(Limit: 2, Enable customer admin: yes\)</li>' AS nested_words,
       html ~ '<li>Limit usage: none</li>' AS unset_words,
       html ~ '<li>Repositories: \(Name: tool, Owner: acme, Permission: pull\)</li>' AS list_words,
       html ~ 'name="property.note" value="Read &lt;script&gt;' AS note_editable,
       html ~ 'name="property.prefix" value="ADM"' AS prefix_editable,
       position('property.repository_name' IN html) = 0 AS repository_not_editable,
       html ~ 'live grants: <strong>1</strong> · waiting: 0</p>' AS counts,
       html ~ 'live grants: <strong>0</strong> · waiting: 1</p>' AS waiting,
       html ~ '<li>Low balance threshold: 10</li>' AS threshold_words
  FROM pages WHERE section = 'benefits';
SELECT pg_temp.escaped(html, 'evil"><svg onload=alert(1)>.zip') AS file_name,
       html ~ '1.5 MB' AS size, html ~ 'waiting for upload' AS waiting, html ~ '<td data-label="State">uploaded</td>' AS uploaded,
       html ~ '<td data-label="State">archived</td>' AS archived,
       (SELECT count(*) FROM regexp_matches(html, 'enctype="multipart/form-data" action="http://127.0.0.1:4568/downloads"', 'g')) AS upload_forms,
       html ~ 'form-action ''self'' http://127.0.0.1:4568">' AS csp_allows_storage,
       html ~ ('name="success_action_redirect" value="https://app.example/uploaded\?file_id=' || :'f1' || '&amp;csrf_token=tok%22%3Cen%3E"') AS redirect,
       html ~ '<input type="file" id="file-[0-9a-f-]+" name="file" required>' AS file_input
  FROM pages WHERE section = 'files';
SELECT pg_temp.escaped(html, 'boom <script>alert("e")</script>') AS dead_error,
       pg_temp.escaped(html, 'HTTP 410 <gone> "bye"') AS reason,
       pg_temp.escaped(html, 'https://hooks.example.com/in?a=1&b=<2>') AS url,
       pg_temp.escaped(html, 'Ada <img src=x onerror=alert(1)>') AS customer,
       html ~ 'name="action" value="retry_job">.*name="job_id" value="[0-9]+"' AS retry_form,
       html ~ ('name="action" value="enable_webhook_endpoint">.*name="endpoint_id" value="' || :'ep' || '"') AS enable_form,
       html ~ '<td data-label="Benefit">Repo access</td><td data-label="State">created</td>' AS waiting_grant,
       html ~ 'webhook</td><td data-label="State">dead</td><td data-label="Jobs">1</td>' AS jobs_table
  FROM pages WHERE section = 'delivery';
SELECT html ~ '<svg role="img" aria-labelledby="days-title"' AS day_chart,
       (SELECT count(*) FROM regexp_matches(html, '<rect class="bar"', 'g')) AS bars,
       pg_temp.escaped(html, 'Ada <img src=x onerror=alert(1)>') AS customer,
       html ~ '<td data-label="Activations">2</td><td data-label="Limit">2</td></tr>' AS near_limit,
       pg_temp.escaped(html, 'API <calls> "v2"') AS meter,
       html ~ '<rect class="low" x="220" y="3" width="321" height="16">' AS low_bar,
       html ~ '<td data-label="Balance">5</td><td data-label="Threshold">10</td></tr>' AS low_balance
  FROM pages WHERE section = 'usage';
SELECT html ~ '<strong>4</strong><a href="\?section=benefits">benefits</a>' AS benefits,
       html ~ '<strong>1</strong><a href="\?section=delivery">dead jobs</a>' AS dead,
       html ~ '<strong>1</strong><a href="\?section=files">files waiting for upload</a>' AS files
  FROM pages WHERE section = 'overview';

-- Manual fulfillments: a custom benefit fulfilled by hand, granted to Ada,
-- waits in benefits.pending_fulfillments; the delivery section lists it with
-- its complete form, the overview counts it, the other organization sees none.
SELECT id AS manual_id FROM benefits.create_benefit('custom', '00000000-0000-0000-0000-0000000ad0a1',
    'Note <i>"quoted"</i>', '{"note": "We will call you", "fulfillment": "manual"}') \gset
SELECT state FROM benefits.grant_benefit('00000000-0000-0000-0000-0000000ad0c1', :'manual_id');
SELECT jsonb_array_length(benefits.admin_overview('00000000-0000-0000-0000-0000000ad0a1')->'delivery'->'pending_fulfillments') AS pending,
       benefits.admin_overview('00000000-0000-0000-0000-0000000ad0a2')->'delivery'->'pending_fulfillments' AS other_org;
WITH p AS (SELECT benefits.admin_page_html('00000000-0000-0000-0000-0000000ad0a1', 'delivery', '/admin/actions', 't') AS html)
SELECT html ~ '<h2>Manual fulfillments</h2>' AS section,
       pg_temp.escaped(html, 'Note <i>"quoted"</i>') AS benefit,
       html ~ '<input type="hidden" name="action" value="complete_fulfillment"><input type="hidden" name="csrf_token" value="t"><input type="hidden" name="grant_id" value="[0-9a-f-]{36}"><label for="note-[0-9a-f-]{36}">Note to the customer</label><textarea id="note-[0-9a-f-]{36}" name="note" rows="2"></textarea>' AS complete_form,
       html ~ 'aria-label="Mark fulfilled Note &lt;i&gt;&quot;quoted&quot;&lt;/i&gt; for Ada &lt;img' AS labelled
  FROM p;
SELECT html ~ '<strong>1</strong><a href="\?section=delivery">manual fulfillments waiting</a>' AS counted
  FROM (SELECT benefits.admin_page_html('00000000-0000-0000-0000-0000000ad0a1') AS html) p;
-- Completed, it leaves the list.
SELECT state FROM benefits.complete_fulfillment(
    (SELECT grant_id FROM benefits.pending_fulfillments WHERE benefit_id = :'manual_id'), 'Booked for Monday');
SELECT jsonb_array_length(benefits.admin_overview('00000000-0000-0000-0000-0000000ad0a1')->'delivery'->'pending_fulfillments') AS pending_after;
SELECT benefits.delete_benefit(:'manual_id');

-- Without action_url the page is read-only: no form at all.
SELECT section, position('<form' IN benefits.admin_page_html('00000000-0000-0000-0000-0000000ad0a1', section)) AS first_form
  FROM unnest(ARRAY['overview', 'products', 'benefits', 'files', 'delivery', 'usage']) section;
-- An https action_url's origin may receive the forms.
SELECT substring(benefits.admin_page_html('00000000-0000-0000-0000-0000000ad0a1', 'products',
                 'https://shop.example:8443/admin/post', 't') FROM 'form-action [^"]*') AS csp;

-- Bad arguments.
SELECT pg_temp.try($$SELECT benefits.admin_page_html(NULL)$$);
SELECT pg_temp.try($$SELECT benefits.admin_page_html('00000000-0000-0000-0000-000000000bad')$$);
SELECT pg_temp.try($$SELECT benefits.admin_page_html('00000000-0000-0000-0000-0000000ad0a1', 'secrets')$$);
SELECT pg_temp.try($$SELECT benefits.admin_page_html('00000000-0000-0000-0000-0000000ad0a1', 'Products')$$);
SELECT pg_temp.try($$SELECT benefits.admin_page_html('00000000-0000-0000-0000-0000000ad0a1', 'products', '//evil.example/x', 't')$$);
SELECT pg_temp.try($$SELECT benefits.admin_page_html('00000000-0000-0000-0000-0000000ad0a1', 'products', 'http://shop.example/x', 't')$$);
SELECT pg_temp.try($$SELECT benefits.admin_page_html('00000000-0000-0000-0000-0000000ad0a1', 'products', '/admin')$$);
SELECT pg_temp.try($$SELECT benefits.admin_page_html('00000000-0000-0000-0000-0000000ad0a1', 'products', '/admin', '')$$);
SELECT pg_temp.try($$SELECT benefits.admin_page_html('00000000-0000-0000-0000-0000000ad0a1', 'files', NULL, NULL, '[]')$$);
SELECT pg_temp.try($$SELECT benefits.admin_page_html('00000000-0000-0000-0000-0000000ad0a1', 'files', NULL, NULL, '"x"')$$);
SELECT pg_temp.try($$SELECT benefits.admin_page_html('00000000-0000-0000-0000-0000000ad0a1', 'files', NULL, NULL, '{"limit": 5}')$$);
SELECT pg_temp.try($$SELECT benefits.admin_page_html('00000000-0000-0000-0000-0000000ad0a1', 'files', NULL, NULL, '{"notice": 5}')$$);
SELECT pg_temp.try($$SELECT benefits.admin_page_html('00000000-0000-0000-0000-0000000ad0a1', 'files', NULL, NULL, '{"upload_redirect_url": "javascript:alert(1)"}')$$);
SELECT pg_temp.try($$SELECT benefits.admin_page_html('00000000-0000-0000-0000-0000000ad0a1', 'files', NULL, NULL, '{"upload_redirect_url": "http://app.example/up"}')$$);
SELECT pg_temp.try($$SELECT benefits.admin_page_html('00000000-0000-0000-0000-0000000ad0a1', 'files', NULL, NULL, '{"upload_redirect_url": "https://app.example/a b"}')$$);
-- A NULL section or params means the defaults.
SELECT benefits.admin_page_html('00000000-0000-0000-0000-0000000ad0a1', NULL, NULL, NULL, NULL) ~ '<h1>Overview</h1>' AS defaults;

-- Only benefits_admin may call the dashboard's functions.
SET ROLE benefits_admin;
SELECT length(benefits.admin_page_html('00000000-0000-0000-0000-0000000ad0a1', 'delivery', '/a', 't')) > 1000 AS admin_page,
       benefits.admin_overview('00000000-0000-0000-0000-0000000ad0a1') ? 'usage' AS admin_overview,
       benefits.file_upload_form(:'f1', 'https://app.example/up') ? 'fields' AS admin_upload_form;
RESET ROLE;
SET ROLE benefits_app;
SELECT pg_temp.try($$SELECT benefits.admin_page_html('00000000-0000-0000-0000-0000000ad0a1')$$);
SELECT pg_temp.try($$SELECT benefits.admin_overview('00000000-0000-0000-0000-0000000ad0a1')$$);
SELECT pg_temp.try(format('SELECT benefits.file_upload_form(%L, %L)', :'f1', 'https://app.example/up'));
RESET ROLE;
SET ROLE benefits_public;
SELECT pg_temp.try($$SELECT benefits.admin_page_html('00000000-0000-0000-0000-0000000ad0a1')$$);
SELECT pg_temp.try($$SELECT benefits.s3_presigned_post('k', 1, 'https://app.example/up')$$);
RESET ROLE;
SELECT p.proname, p.prosecdef, has_function_privilege('benefits_admin', p.oid, 'EXECUTE') AS admin,
       has_function_privilege('benefits_app', p.oid, 'EXECUTE') AS app,
       has_function_privilege('benefits_public', p.oid, 'EXECUTE') AS public
  FROM pg_proc p
 WHERE p.pronamespace = 'benefits'::regnamespace
   AND p.proname IN ('admin_page_html', 'admin_overview', 'file_upload_form', 's3_presigned_post')
 ORDER BY 1;

-- The upload form: key, redirect and size fixed by the policy.
SELECT jsonb_pretty(benefits.s3_presigned_post('dir/ünï "q".bin', 1234, 'https://app.example/up?x=1',
                                               '10 minutes', '2024-01-02 03:04:05.678+00'));
SELECT convert_from(decode(benefits.s3_presigned_post('dir/ünï "q".bin', 1234, 'https://app.example/up?x=1',
                                                      '10 minutes', '2024-01-02 03:04:05.678+00')->'fields'->>'policy', 'base64'), 'UTF8') AS policy;
WITH f AS (SELECT benefits.file_upload_form(:'f1', 'https://app.example/up') AS f)
SELECT f->>'url' AS url,
       f->'fields'->>'key' = (SELECT storage_key FROM benefits.files WHERE id = :'f1') AS key_is_storage_key,
       (convert_from(decode(f->'fields'->>'policy', 'base64'), 'UTF8')::jsonb)->'conditions'->1 AS size_range,
       (convert_from(decode(f->'fields'->>'policy', 'base64'), 'UTF8')::jsonb)->>'expiration'
           = to_char((date_trunc('second', now()) + interval '1 hour') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS expires_in_an_hour
  FROM f;
SELECT pg_temp.try(format('SELECT benefits.file_upload_form(%L, %L)', :'f2', 'https://app.example/up'));
SELECT pg_temp.try($$SELECT benefits.file_upload_form('00000000-0000-0000-0000-000000000bad', 'https://app.example/up')$$);
SELECT pg_temp.try(format('SELECT benefits.file_upload_form(%L, NULL)', :'f1'));
SELECT pg_temp.try(format('SELECT benefits.file_upload_form(%L, %L)', :'f1', 'ftp://app.example/up'));
SELECT pg_temp.try($$SELECT benefits.s3_presigned_post('', 1, 'https://app.example/up')$$);
SELECT pg_temp.try($$SELECT benefits.s3_presigned_post('k', -1, 'https://app.example/up')$$);
SELECT pg_temp.try($$SELECT benefits.s3_presigned_post('k', 5368709121, 'https://app.example/up')$$);
SELECT pg_temp.try($$SELECT benefits.s3_presigned_post('k', 1, 'https://app.example/up', '8 days')$$);
SELECT pg_temp.try($$SELECT benefits.s3_presigned_post('k', NULL, 'https://app.example/up')$$);
-- A key S3 would rewrite with the browser's file name is refused.
SELECT pg_temp.try($$SELECT benefits.s3_presigned_post('org/f/a${filename}', 1, 'https://app.example/up')$$);
RESET benefits.s3_bucket;
SELECT pg_temp.try($$SELECT benefits.s3_presigned_post('k', 1, 'https://app.example/up')$$);
-- Without storage settings the files section still opens, without upload forms.
SELECT position('<form' IN h) = 0 AS no_upload_form, h ~ 'once a superuser has set the benefits.s3_' AS says_why
  FROM benefits.admin_page_html('00000000-0000-0000-0000-0000000ad0a1', 'files', NULL, NULL,
                                '{"upload_redirect_url": "https://app.example/up"}') h;

-- A deactivated activation frees its seat: the key is no longer near its limit.
SELECT benefits.deactivate_license(:'lk_key', '00000000-0000-0000-0000-0000000ad0a1',
    (SELECT a.id FROM benefits.license_key_activations a WHERE a.license_key_id = :'lk' AND a.label = 'desktop'));
SELECT jsonb_array_length(benefits.admin_overview('00000000-0000-0000-0000-0000000ad0a1')->'usage'->'activations_near_limit')
    AS near_limit_after_deactivation;

-- Leave nothing behind for the tests that follow.
DELETE FROM benefits.subscriptions WHERE organization_id IN ('00000000-0000-0000-0000-0000000ad0a1', '00000000-0000-0000-0000-0000000ad0a2');
DELETE FROM benefits.outbox WHERE organization_id IN ('00000000-0000-0000-0000-0000000ad0a1', '00000000-0000-0000-0000-0000000ad0a2');
DELETE FROM benefits.organizations WHERE id IN ('00000000-0000-0000-0000-0000000ad0a1', '00000000-0000-0000-0000-0000000ad0a2');
SELECT (SELECT count(*) FROM benefits.customers) AS customers, (SELECT count(*) FROM benefits.files) AS files,
       (SELECT count(*) FROM benefits.license_keys) AS keys, (SELECT count(*) FROM benefits.grants) AS grants,
       (SELECT count(*) FROM benefits.outbox) AS jobs;
