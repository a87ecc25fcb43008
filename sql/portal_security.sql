-- The portal page's action_url: only a same-origin absolute path or an https
-- URL may receive the deactivate forms, and the page's Content-Security-Policy
-- lets forms post nowhere else.
CREATE FUNCTION pg_temp.action_refused(u text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    detail text;
BEGIN
    PERFORM benefits.portal_html('{}', u);
    RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || detail;
END $$;
CREATE FUNCTION pg_temp.csp(html text) RETURNS text LANGUAGE sql AS $$
    SELECT (regexp_match(html, '<meta http-equiv="Content-Security-Policy" content="([^"]*)">'))[1]
$$;
-- A document with one activation the customer may remove, so the page has a form.
\set doc '{"organization": {"name": "Acme"}, "customer": {"name": "Ada"}, "subscriptions": [], "benefits": [{"type": "license_keys", "description": "Pro license", "license_key": {"key": "ACME-1", "status": "granted", "customer_admin": true, "activations": [{"id": "a1", "label": "Laptop", "created_at": "2030-03-04T10:00:00Z"}]}}]}'

-- Refused, each with SQLSTATE 22023 and the reason: backslashes (browsers read
-- them as slashes), white space and control characters (browsers drop tabs and
-- newlines), protocol-relative and scheme-relative forms, any scheme but
-- https, and an https URL whose authority is not a plain host and port.
SELECT replace(replace(replace(u, E'\t', '<TAB>'), E'\n', '<LF>'), chr(127), '<DEL>') AS action_url,
       pg_temp.action_refused(u) AS outcome FROM (VALUES
    ('/\evil.example/x'), ('\/evil.example/x'), ('/portal\deactivate'), ('https://app.example\@evil.example/'),
    ('//evil.example/x'), ('///evil.example/x'), ('/portal /x'), (E'/\t/evil.example/x'), (E'/\n/evil.example/x'),
    ('/x' || chr(127)), ('http://app.example/portal'), ('HTTP://app.example/portal'), ('javascript:alert(1)'),
    ('data:text/html,x'), ('ftp://app.example/'), ('https:evil.example/x'), ('portal/deactivate'), (''),
    ('https:///evil.example/'), ('https://app.example@evil.example/'), ('https://evil.example;script-src/'),
    ('https://app..example/'), ('https://.app.example/'), ('https://app.example./'), ('https://app.example:/x'),
    ('https://app.example:0/x'), ('https://app.example:65536/x'), ('https://app.example?x=1'),
    ('https://[::1]/x')) v(u);
-- The error, as a client sees it.
\set VERBOSITY default
SELECT benefits.portal_html('{}', '/\evil.example/x') IS NOT NULL AS rendered;
-- customer_portal_html judges action_url before the token: a refused one is
-- 22023 whatever the token, an accepted one goes on to the session check.
SELECT benefits.customer_portal_html('bcs_no_such_session', 'http://app.example/portal');
SELECT benefits.customer_portal_html('bcs_no_such_session', '/portal/deactivate');
\set VERBOSITY terse

-- Accepted: a path on the page's own origin, or https://host[:port] with a
-- path.  The form posts there, and the policy allows forms to post to the
-- page's origin and, for an https URL, to that URL's origin only.
SELECT u AS action_url, pg_temp.action_refused(u) AS outcome,
       position('<form method="post" action="' || benefits.html_escape(u) || '">' IN benefits.portal_html(:'doc', u)) > 0 AS form,
       pg_temp.csp(benefits.portal_html(:'doc', u)) AS content_security_policy
  FROM (VALUES ('/portal/deactivate'), ('/'), ('/portal?x=1&y="2"'), ('https://app.example'),
               ('https://app.example/portal/deactivate'), ('HTTPS://App.Example:8443/p?x=1#f'),
               ('https://127.0.0.1:443/portal'), ('https://app-1.example.com:65535/')) v(u);
-- Without action_url the page has no form, and forms may post to its origin only.
SELECT position('<form' IN html) = 0 AS no_form, pg_temp.csp(html) AS content_security_policy
  FROM benefits.portal_html(:'doc') html;
