-- The customer portal: what a session's customer holds, in attachment order,
-- as JSON and as a page; self-service deactivation; nothing of anyone else.
SET benefits.s3_endpoint = 'https://files.example.com';
SET benefits.s3_url_style = 'path';
SET benefits.s3_region = 'eu-west-1';
SET benefits.s3_bucket = 'portal';
SET benefits.s3_access_key_id = 'AKIDPORTAL';
SET benefits.s3_secret_access_key = 'portal-secret';

CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

INSERT INTO benefits.organizations (id, name) VALUES
    ('00000000-0000-0000-0000-0000000006a1', 'Acme <Tools> & Co'),
    ('00000000-0000-0000-0000-0000000006a2', 'Elsewhere');
INSERT INTO benefits.customers (id, organization_id, external_id, email, name) VALUES
    ('00000000-0000-0000-0000-0000000006c1', '00000000-0000-0000-0000-0000000006a1', 'ada', 'ada@example.com', 'Ada "Countess" <Lovelace>'),
    ('00000000-0000-0000-0000-0000000006c2', '00000000-0000-0000-0000-0000000006a1', 'bob', 'bob@example.com', NULL),
    ('00000000-0000-0000-0000-0000000006c3', '00000000-0000-0000-0000-0000000006a2', 'ada', 'ada@elsewhere.test', 'Other Ada');
INSERT INTO benefits.products (id, organization_id, name) VALUES
    ('00000000-0000-0000-0000-0000000006d1', '00000000-0000-0000-0000-0000000006a1', 'Pro'),
    ('00000000-0000-0000-0000-0000000006d2', '00000000-0000-0000-0000-0000000006a1', 'Basic'),
    ('00000000-0000-0000-0000-0000000006d3', '00000000-0000-0000-0000-0000000006a1', 'Extra pack');
INSERT INTO benefits.meters (id, organization_id, name) VALUES
    ('00000000-0000-0000-0000-0000000006e1', '00000000-0000-0000-0000-0000000006a1', 'API calls');

SELECT id AS f1 FROM benefits.create_file('00000000-0000-0000-0000-0000000006a1', 'Manual & Guide.pdf', 2048, 'application/pdf') \gset
SELECT id AS f2 FROM benefits.create_file('00000000-0000-0000-0000-0000000006a1', 'app "v1".zip', 10485760, 'application/zip') \gset
SELECT id AS f3 FROM benefits.create_file('00000000-0000-0000-0000-0000000006a1', 'old.zip', 10) \gset
SELECT id AS f4 FROM benefits.create_file('00000000-0000-0000-0000-0000000006a1', 'pending.zip', 10) \gset
SELECT count(*) FROM (SELECT benefits.complete_file_upload(f) FROM unnest(ARRAY[:'f1', :'f2', :'f3']::uuid[]) f) x;
SELECT archived FROM benefits.update_file(:'f3', archived => true);

-- Pro: note, key (customer admin), downloads, credits, GitHub, Discord; Basic: a key the seller manages.
INSERT INTO benefits.benefits (id, organization_id, type, description, properties) VALUES
    ('00000000-0000-0000-0000-0000000006b1', '00000000-0000-0000-0000-0000000006a1', 'custom', 'Welcome',
     '{"note": "Thanks!\n<script>alert(1)</script>"}'),
    ('00000000-0000-0000-0000-0000000006b2', '00000000-0000-0000-0000-0000000006a1', 'license_keys', 'Pro key',
     '{"prefix": "ACME", "expires": null, "activations": {"limit": 3, "enable_customer_admin": true}, "limit_usage": 100}'),
    ('00000000-0000-0000-0000-0000000006b3', '00000000-0000-0000-0000-0000000006a1', 'downloadable', 'Downloads',
     jsonb_build_object('files', jsonb_build_array(:'f2', :'f1', :'f3', :'f4'), 'archived', '{}'::jsonb)),
    ('00000000-0000-0000-0000-0000000006b4', '00000000-0000-0000-0000-0000000006a1', 'meter_credits', 'Credits',
     '{"meter_id": "00000000-0000-0000-0000-0000000006e1", "units": 500, "rollover": false}'),
    ('00000000-0000-0000-0000-0000000006b5', '00000000-0000-0000-0000-0000000006a1', 'github_repository', 'Source',
     '{"repositories": [{"owner": "acme", "name": "tools", "permission": "pull"}], "repository_owner": "acme", "repository_name": "tools", "permission": "pull"}'),
    ('00000000-0000-0000-0000-0000000006b6', '00000000-0000-0000-0000-0000000006a1', 'discord', 'Community',
     '{"guild_id": "111", "roles": [{"role_id": "222", "name": "Pro <members>"}], "kick_member": false, "role_id": "222"}'),
    ('00000000-0000-0000-0000-0000000006b7', '00000000-0000-0000-0000-0000000006a1', 'license_keys', 'Basic key',
     '{"prefix": null, "expires": null, "activations": {"limit": 1, "enable_customer_admin": false}, "limit_usage": null}'),
    ('00000000-0000-0000-0000-0000000006b8', '00000000-0000-0000-0000-0000000006a1', 'custom', 'Extra note', '{"note": "Extra"}'),
    ('00000000-0000-0000-0000-0000000006b9', '00000000-0000-0000-0000-0000000006a1', 'custom', 'Revoked gift', '{"note": "gone"}');
INSERT INTO benefits.product_benefits (product_id, benefit_id, position) VALUES
    ('00000000-0000-0000-0000-0000000006d1', '00000000-0000-0000-0000-0000000006b3', 3),
    ('00000000-0000-0000-0000-0000000006d1', '00000000-0000-0000-0000-0000000006b1', 1),
    ('00000000-0000-0000-0000-0000000006d1', '00000000-0000-0000-0000-0000000006b6', 6),
    ('00000000-0000-0000-0000-0000000006d1', '00000000-0000-0000-0000-0000000006b2', 2),
    ('00000000-0000-0000-0000-0000000006d1', '00000000-0000-0000-0000-0000000006b5', 5),
    ('00000000-0000-0000-0000-0000000006d1', '00000000-0000-0000-0000-0000000006b4', 4),
    ('00000000-0000-0000-0000-0000000006d2', '00000000-0000-0000-0000-0000000006b7', 1),
    ('00000000-0000-0000-0000-0000000006d3', '00000000-0000-0000-0000-0000000006b8', 1);

-- Ada subscribes to Pro, buys the Extra pack, links Discord; Bob subscribes to Basic.
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status, current_period_end, cancel_at_period_end) VALUES
    ('00000000-0000-0000-0000-0000000006f1', '00000000-0000-0000-0000-0000000006c1', '00000000-0000-0000-0000-0000000006d1',
     'active', '2031-01-15 12:00:00+00', true),
    ('00000000-0000-0000-0000-0000000006f2', '00000000-0000-0000-0000-0000000006c2', '00000000-0000-0000-0000-0000000006d2',
     'active', '2031-02-01 00:00:00+00', false);
INSERT INTO benefits.orders (customer_id, product_id, billing_reason, status, created_at) VALUES
    ('00000000-0000-0000-0000-0000000006c1', '00000000-0000-0000-0000-0000000006d3', 'purchase', 'paid', now() + interval '1 second');
SELECT benefits.link_account('00000000-0000-0000-0000-0000000006c1', 'discord', '333', 'ada#1', 'oauth-token');
SELECT state FROM benefits.grant_benefit('00000000-0000-0000-0000-0000000006c1', '00000000-0000-0000-0000-0000000006b9');
SELECT benefits.revoke_benefit('00000000-0000-0000-0000-0000000006c1', '00000000-0000-0000-0000-0000000006b9');
INSERT INTO benefits.license_key_activations (id, license_key_id, label, created_at)
SELECT '00000000-0000-0000-0000-000000000601'::uuid, id, 'Laptop <1>', '2030-03-04 10:00:00+00'::timestamptz FROM benefits.license_keys
 WHERE customer_id = '00000000-0000-0000-0000-0000000006c1'
UNION ALL
SELECT '00000000-0000-0000-0000-000000000602', id, 'Desktop', '2030-03-05 10:00:00+00' FROM benefits.license_keys
 WHERE customer_id = '00000000-0000-0000-0000-0000000006c1'
UNION ALL
SELECT '00000000-0000-0000-0000-000000000603', id, 'Bob PC', '2030-03-06 10:00:00+00' FROM benefits.license_keys
 WHERE customer_id = '00000000-0000-0000-0000-0000000006c2';

SELECT benefits.create_customer_session('00000000-0000-0000-0000-0000000006a1', 'ada') AS ada \gset
SELECT benefits.create_customer_session('00000000-0000-0000-0000-0000000006a1', 'bob') AS bob \gset
SELECT benefits.customer_portal(:'ada') AS doc \gset

-- The customer and their subscriptions.
SELECT :'doc'::jsonb -> 'customer' AS customer, :'doc'::jsonb -> 'organization' ->> 'name' AS organization;
SELECT s ->> 'status' AS status, s #>> '{product,name}' AS product, s ->> 'current_period_end' AS period_end,
       s ->> 'cancel_at_period_end' AS cancels
  FROM jsonb_array_elements(:'doc'::jsonb -> 'subscriptions') s;

-- Benefits once each, Pro's in attachment order, then the later order's; the revoked one absent.
SELECT b ->> 'description' AS benefit, b ->> 'type' AS type, b ->> 'state' AS state
  FROM jsonb_array_elements(:'doc'::jsonb -> 'benefits') b;

-- The license key in full, with limits, usage and activations.
SELECT lk ->> 'key' = k.key AS full_key, lk ->> 'status' AS status, lk ->> 'usage' AS usage,
       lk ->> 'limit_usage' AS limit_usage, lk ->> 'limit_activations' AS limit_activations,
       lk ->> 'customer_admin' AS customer_admin,
       (SELECT string_agg(a ->> 'label', ', ') FROM jsonb_array_elements(lk -> 'activations') a) AS activations
  FROM jsonb_path_query(:'doc'::jsonb, '$.benefits[*] ? (@.type == "license_keys").license_key') lk
  JOIN benefits.license_keys k ON k.id = (lk ->> 'id')::uuid;

-- Files in the benefit's order with size and a fresh signed URL; archived and
-- not yet uploaded files are left out.
SELECT f ->> 'name' AS name, f ->> 'size' AS size, f ->> 'mime_type' AS mime_type,
       f ->> 'download_url' ~ ('^https://files\.example\.com/portal/00000000-0000-0000-0000-0000000006a1/' || (f ->> 'id') ||
                              '/.*X-Amz-Credential=AKIDPORTAL%2F[0-9]{8}%2Feu-west-1%2Fs3%2Faws4_request.*&X-Amz-Expires=3600&.*response-content-disposition=attachment.*&X-Amz-Signature=[0-9a-f]{64}$') AS url_ok,
       (f ->> 'download_expires_at')::timestamptz - (:'doc'::jsonb ->> 'generated_at')::timestamptz = interval '1 hour' AS expires_ok
  FROM jsonb_path_query(:'doc'::jsonb, '$.benefits[*] ? (@.type == "downloadable").files[*]') f;
-- The URL is the one file_download_url gives.
-- (Signed in the same transaction, so at the same instant.)
SELECT f ->> 'download_url' = benefits.file_download_url('00000000-0000-0000-0000-0000000006c1', (f ->> 'id')::uuid) AS same_url
  FROM jsonb_path_query(benefits.customer_portal(:'ada'), '$.benefits[*] ? (@.type == "downloadable").files[0]') f;

-- The note, the credit balance, and what to do for GitHub and Discord.
SELECT jsonb_path_query(:'doc'::jsonb, '$.benefits[*] ? (@.type == "custom").note') AS notes;
SELECT jsonb_path_query(:'doc'::jsonb, '$.benefits[*] ? (@.type == "meter_credits").meter') - 'id' AS meter;
SELECT jsonb_path_query(:'doc'::jsonb, '$.benefits[*] ? (@.type == "github_repository").github') AS github;
SELECT jsonb_path_query(:'doc'::jsonb, '$.benefits[*] ? (@.type == "discord").discord') AS discord;

-- Bob sees his own and nothing of Ada's.
SELECT benefits.customer_portal(:'bob') AS bob_doc \gset
SELECT :'bob_doc'::jsonb #>> '{customer,external_id}' AS customer,
       (SELECT string_agg(b ->> 'description', ', ') FROM jsonb_array_elements(:'bob_doc'::jsonb -> 'benefits') b) AS benefits,
       (SELECT string_agg(a ->> 'label', ', ')
          FROM jsonb_path_query(:'bob_doc'::jsonb, '$.benefits[*].license_key.activations[*]') a) AS activations,
       position('Laptop' IN :'bob_doc') = 0 AND position('0000000006c1' IN :'bob_doc') = 0 AS nothing_of_ada;

-- Self-service: Ada removes one of her activations; Bob cannot touch hers,
-- and his own key's activations are managed by the seller.
SELECT pg_temp.try($$SELECT benefits.portal_deactivate_license('$$ || :'bob' || $$', '00000000-0000-0000-0000-000000000601')$$) AS bob_on_ada;
SELECT pg_temp.try($$SELECT benefits.portal_deactivate_license('$$ || :'bob' || $$', '00000000-0000-0000-0000-000000000603')$$) AS bob_own;
SELECT pg_temp.try($$SELECT benefits.portal_deactivate_license('$$ || :'ada' || $$', '00000000-0000-0000-0000-000000000603')$$) AS ada_on_bob;
SELECT benefits.portal_deactivate_license(:'ada', '00000000-0000-0000-0000-000000000601') AS ada_own;
SELECT pg_temp.try($$SELECT benefits.portal_deactivate_license('$$ || :'ada' || $$', '00000000-0000-0000-0000-000000000601')$$) AS again;
SELECT label FROM benefits.license_key_activations WHERE id::text LIKE '00000000-0000-0000-0000-00000000060%' AND deactivated_at IS NULL ORDER BY id;

-- Once the subscription is revoked its benefits and itself leave the portal.
UPDATE benefits.subscriptions SET status = 'revoked', ended_at = now() WHERE id = '00000000-0000-0000-0000-0000000006f2';
SELECT benefits.customer_portal(:'bob') - 'generated_at' - 'customer' - 'organization' AS bob_after;

-- The page: complete, escaped everywhere, with the key and the download links.
SELECT benefits.customer_portal_html(:'ada', '/portal/deactivate?x=1&y="2"') AS html \gset
SELECT left(:'html', 15) = '<!DOCTYPE html>' AS doctype,
       :'html' LIKE '%<html lang="en">%</html>%' AS complete,
       position((SELECT key FROM benefits.license_keys WHERE customer_id = '00000000-0000-0000-0000-0000000006c1') IN :'html') > 0 AS shows_key,
       position('Acme &lt;Tools&gt; &amp; Co' IN :'html') > 0 AS org_escaped,
       position('Ada &quot;Countess&quot; &lt;Lovelace&gt;' IN :'html') > 0 AS name_escaped,
       position('&lt;script&gt;alert(1)&lt;/script&gt;' IN :'html') > 0 AND position('<script' IN :'html') = 0 AS note_escaped,
       position('Laptop' IN :'html') = 0 AND position('Desktop' IN :'html') > 0 AS activations,
       position('action="/portal/deactivate?x=1&amp;y=&quot;2&quot;"' IN :'html') > 0 AS form_action_escaped,
       position('name="activation_id" value="00000000-0000-0000-0000-000000000602"' IN :'html') > 0 AS form_field,
       position('Pro &lt;members&gt;' IN :'html') > 0 AS role_escaped,
       position('Action needed: Link a GitHub account' IN :'html') > 0 AS github_action,
       position('http://' IN :'html') = 0 AND position('src=' IN :'html') = 0 AS no_external_assets;
SELECT (regexp_match(html, 'href="([^"]*Manual[^"]*)"'))[1] =
       benefits.html_escape(jsonb_path_query_first(doc, '$.benefits[*].files[*] ? (@.name == "Manual & Guide.pdf").download_url') #>> '{}')
       AS link_is_escaped_url,
       (SELECT count(*) FROM regexp_matches(html, '<a href="https://files\.example\.com/', 'g')) AS download_links
  FROM (SELECT benefits.customer_portal_html(:'ada') AS html, benefits.customer_portal(:'ada') AS doc) x;
SELECT pg_temp.try($$SELECT benefits.customer_portal_html('$$ || :'ada' || $$', 'javascript:alert(1)')$$) AS script_action,
       pg_temp.try($$SELECT benefits.customer_portal_html('$$ || :'ada' || $$', '//elsewhere.test/x')$$) AS network_path;
-- Without an action URL there are no forms; Bob's page has no deactivate button.
SELECT position('<form' IN benefits.customer_portal_html(:'ada')) = 0 AS no_forms,
       position('<form' IN benefits.customer_portal_html(:'bob', '/x')) = 0 AS bob_no_forms;
-- Without storage settings the portal still opens: files have no link and say why.
RESET benefits.s3_bucket;
SELECT f ->> 'name' AS file, f ->> 'download_url' AS url, f ->> 'download_error' AS download_error
  FROM jsonb_path_query(benefits.customer_portal(:'ada'), '$.benefits[*].files[*]') f ORDER BY 1;
SELECT position('(cannot be downloaded right now)' IN html) > 0 AS says_unavailable,
       position('<a href="https://files.example.com/' IN html) = 0 AS no_links
  FROM benefits.customer_portal_html(:'ada') html;
SET benefits.s3_bucket = 'portal';

-- Several live subscriptions, one benefit held through two of them: every
-- subscription is listed, oldest first, and each benefit once.
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status, current_period_end, created_at) VALUES
    ('00000000-0000-0000-0000-0000000006f3', '00000000-0000-0000-0000-0000000006c1', '00000000-0000-0000-0000-0000000006d2',
     'trialing', '2031-03-01 00:00:00+00', now() + interval '2 seconds'),
    ('00000000-0000-0000-0000-0000000006f4', '00000000-0000-0000-0000-0000000006c1', '00000000-0000-0000-0000-0000000006d1',
     'active', '2031-04-01 00:00:00+00', now() + interval '3 seconds');
SELECT count(*) AS ada_pro_grants FROM benefits.grants
 WHERE customer_id = '00000000-0000-0000-0000-0000000006c1' AND benefit_id = '00000000-0000-0000-0000-0000000006b2'
   AND state <> 'revoked';
SELECT s ->> 'status' AS status, s #>> '{product,name}' AS product, s ->> 'current_period_end' AS period_end
  FROM jsonb_array_elements(benefits.customer_portal(:'ada') -> 'subscriptions') s;
SELECT string_agg(b ->> 'description', ', ') AS benefits_once_each
  FROM jsonb_array_elements(benefits.customer_portal(:'ada') -> 'benefits') b;

-- A provider's refusal is a failed delivery, not an action for the customer,
-- although the recorded error names the job's action.
UPDATE benefits.grants SET error = '{"type": "provider_error", "message": "GitHub answered 403", "action": "add_collaborator", "provider": "github", "status": 403}'
 WHERE customer_id = '00000000-0000-0000-0000-0000000006c1' AND benefit_id = '00000000-0000-0000-0000-0000000006b5';
SELECT b #>> '{github,delivery}' AS delivery, b #>> '{github,action}' AS action, b #>> '{github,message}' AS message
  FROM jsonb_array_elements(benefits.customer_portal(:'ada') -> 'benefits') b WHERE b ->> 'type' = 'github_repository';
