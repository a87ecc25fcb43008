-- Customer sessions: random bcs_ tokens, only their SHA-256 stored, expiry,
-- revocation, and one error for every bad token.
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

INSERT INTO benefits.organizations (id, name) VALUES
    ('00000000-0000-0000-0000-0000000005a1', 'Sessions Org'),
    ('00000000-0000-0000-0000-0000000005a2', 'Other Sessions Org');
INSERT INTO benefits.customers (id, organization_id, external_id, email) VALUES
    ('00000000-0000-0000-0000-0000000005c1', '00000000-0000-0000-0000-0000000005a1', 'sess-1', 'one@example.com'),
    ('00000000-0000-0000-0000-0000000005c2', '00000000-0000-0000-0000-0000000005a2', 'sess-1', 'other@example.com');

SELECT benefits.create_customer_session('00000000-0000-0000-0000-0000000005a1', 'sess-1') AS t1 \gset
SELECT benefits.create_customer_session('00000000-0000-0000-0000-0000000005a1', 'sess-1') AS t2 \gset
SELECT :'t1' ~ '^bcs_[A-Za-z0-9_-]{43}$' AS shape_ok, :'t1' <> :'t2' AS distinct_tokens;
-- Only the hash is stored, for the right customer, for an hour.
SELECT customer_id, organization_id, expires_at - created_at = interval '1 hour' AS one_hour, revoked_at IS NULL AS live
  FROM benefits.customer_sessions WHERE token_hash = sha256(convert_to(:'t1', 'UTF8'));
SELECT count(*) AS token_stored FROM benefits.customer_sessions s
 WHERE position(convert_to(:'t1', 'UTF8') IN s.token_hash) > 0 OR s::text LIKE '%' || :'t1' || '%';
SELECT benefits.customer_session_customer(:'t1');

-- The external id is looked up within the organization.
SELECT benefits.create_customer_session('00000000-0000-0000-0000-0000000005a2', 'sess-1') AS other_org \gset
SELECT benefits.customer_session_customer(:'other_org');
SELECT pg_temp.try($$SELECT benefits.create_customer_session('00000000-0000-0000-0000-0000000005a1', 'nobody')$$);
SELECT pg_temp.try($$SELECT benefits.create_customer_session(NULL, 'sess-1')$$);
SELECT pg_temp.try($$SELECT benefits.create_customer_session('00000000-0000-0000-0000-0000000005a1', NULL)$$);

-- The lifetime is a setting.
SET benefits.customer_session_ttl = '10min';
SELECT benefits.create_customer_session('00000000-0000-0000-0000-0000000005a1', 'sess-1') AS short \gset
SELECT expires_at - created_at = interval '10 minutes' AS ten_minutes FROM benefits.customer_sessions
 WHERE token_hash = sha256(convert_to(:'short', 'UTF8'));
RESET benefits.customer_session_ttl;

-- Every bad token gets the same error: malformed, unknown, expired, revoked.
SELECT benefits.customer_portal('nope');
SELECT pg_temp.try($$SELECT benefits.customer_portal(NULL)$$) AS null_token,
       pg_temp.try($$SELECT benefits.customer_portal('bcs_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')$$) AS unknown,
       pg_temp.try($$SELECT benefits.customer_portal('$$ || upper(:'t1') || $$')$$) AS altered;
UPDATE benefits.customer_sessions SET expires_at = now() - interval '1 second'
 WHERE token_hash = sha256(convert_to(:'t2', 'UTF8'));
SELECT pg_temp.try($$SELECT benefits.customer_portal('$$ || :'t2' || $$')$$) AS expired;
SELECT benefits.revoke_customer_session(:'t2') AS revoked_expired;
SELECT pg_temp.try($$SELECT benefits.customer_portal('$$ || :'t1' || $$')$$) AS before_revoke;
SELECT benefits.revoke_customer_session(:'t1') AS revoked, benefits.revoke_customer_session(:'t1') AS again,
       benefits.revoke_customer_session('junk') AS junk;
SELECT pg_temp.try($$SELECT benefits.customer_portal('$$ || :'t1' || $$')$$) AS after_revoke;
SELECT pg_temp.try($$SELECT benefits.customer_portal_html('$$ || :'t1' || $$')$$) AS html_after_revoke;
SELECT pg_temp.try($$SELECT benefits.portal_deactivate_license('$$ || :'t1' || $$', gen_random_uuid())$$) AS deactivate_after_revoke;

-- Sessions that ended over a day ago are purged when the customer opens a new one.
UPDATE benefits.customer_sessions SET created_at = now() - interval '2 days', expires_at = now() - interval '25 hours'
 WHERE token_hash = sha256(convert_to(:'t2', 'UTF8'));
SELECT count(*) AS before_purge FROM benefits.customer_sessions WHERE customer_id = '00000000-0000-0000-0000-0000000005c1';
SELECT benefits.create_customer_session('00000000-0000-0000-0000-0000000005a1', 'sess-1') IS NOT NULL AS opened;
SELECT count(*) AS after_purge, count(*) FILTER (WHERE token_hash = sha256(convert_to(:'t2', 'UTF8'))) AS old_one
  FROM benefits.customer_sessions WHERE customer_id = '00000000-0000-0000-0000-0000000005c1';

-- A deleted customer's sessions no longer open anything.
SELECT benefits.create_customer_session('00000000-0000-0000-0000-0000000005a2', 'sess-1') AS t5 \gset
UPDATE benefits.customers SET deleted_at = now() WHERE id = '00000000-0000-0000-0000-0000000005c2';
SELECT pg_temp.try($$SELECT benefits.customer_portal('$$ || :'t5' || $$')$$) AS deleted_customer;
UPDATE benefits.customers SET deleted_at = NULL WHERE id = '00000000-0000-0000-0000-0000000005c2';

-- The application can end all of a customer's sessions.
SELECT benefits.create_customer_session('00000000-0000-0000-0000-0000000005a1', 'sess-1') AS t3 \gset
SELECT benefits.revoke_customer_sessions('00000000-0000-0000-0000-0000000005c1') AS ended;
SELECT pg_temp.try($$SELECT benefits.customer_portal('$$ || :'t3' || $$')$$) AS after_logout;

-- Roles: benefits_public may call the token functions and nothing else.
SELECT p.proname, has_function_privilege('benefits_public', p.oid, 'EXECUTE') AS public_can,
       has_function_privilege('benefits_app', p.oid, 'EXECUTE') AS app_can
  FROM pg_proc p
 WHERE p.pronamespace = 'benefits'::regnamespace
   AND p.proname IN ('create_customer_session', 'revoke_customer_session', 'revoke_customer_sessions',
                     'customer_session_customer', 'customer_portal', 'customer_portal_html',
                     'portal_deactivate_license', 'portal_document', 'portal_html', 'html_escape',
                     'file_download_url', 'file_presigned_get', 'presign_s3_url')
 ORDER BY p.proname;
SELECT has_table_privilege('benefits_public', 'benefits.customer_sessions', 'SELECT') AS public_reads_sessions,
       has_table_privilege('benefits_app', 'benefits.customer_sessions', 'SELECT') AS app_reads_sessions;
-- A login role in benefits_public opens its portal through the token only.
CREATE ROLE portal_visitor LOGIN IN ROLE benefits_public;
SELECT benefits.create_customer_session('00000000-0000-0000-0000-0000000005a1', 'sess-1') AS t4 \gset
SET ROLE portal_visitor;
SELECT benefits.customer_portal(:'t4') #>> '{customer,external_id}' AS visitor_sees;
SELECT pg_temp.try($$SELECT count(*) FROM benefits.customer_sessions$$) AS read_sessions;
SELECT pg_temp.try($$SELECT benefits.create_customer_session('00000000-0000-0000-0000-0000000005a1', 'sess-1')$$) AS create_session;
SELECT pg_temp.try($$SELECT benefits.portal_document('00000000-0000-0000-0000-0000000005c1')$$) AS document_by_id;
RESET ROLE;
DROP ROLE portal_visitor;
