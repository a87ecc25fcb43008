-- Account linking from the portal (OAuth): authorize URLs and their states,
-- the callback and its one error for every unusable state, the worker's
-- answer functions, link_account's token arguments, relinking and unlinking
-- (old access removed first), the portal's link member and connect links,
-- and who may call and read what.  Tokens, states, uuids and timestamps never
-- appear in the output: they are compared, not printed.
\set SHOW_CONTEXT never
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
-- The state of an authorize URL (its last parameter, 32 random bytes in
-- unpadded URL-safe base64); NULL when the URL does not end with one.
CREATE FUNCTION pg_temp.state_of(url text) RETURNS text LANGUAGE sql IMMUTABLE
    RETURN substring(url FROM '[?&]state=([A-Za-z0-9_-]{43})$');
-- The row of benefits.oauth_states a state is stored as.
CREATE FUNCTION pg_temp.state_hash(state text) RETURNS bytea LANGUAGE sql IMMUTABLE
    RETURN sha256(convert_to(state, 'UTF8'));
-- A link attempt that reached the callback: a fresh state for the session's
-- platform, consumed with code; returns the oauth job's id.
CREATE FUNCTION pg_temp.callback_job(token text, platform text, code text) RETURNS bigint
    LANGUAGE plpgsql AS $$
DECLARE
    st text := pg_temp.state_of(benefits.portal_link_url(token, platform, 'https://app.example/oauth/callback'));
    outcome text := benefits.portal_link_callback(token, st, code);
BEGIN
    IF outcome <> 'pending' THEN
        RAISE EXCEPTION 'callback returned %', outcome;
    END IF;
    RETURN (SELECT max(o.id) FROM benefits.outbox o WHERE o.kind = 'oauth');
END
$$;

SET benefits.github_oauth_client_id = 'gh-client id&1';
SET benefits.discord_oauth_client_id = '1200000000000000001';
SET benefits.github_oauth_client_secret = 'gh-secret';
SET benefits.discord_oauth_client_secret = 'dc-secret';
SET benefits.github_oauth_url = 'https://github.example/';
SET benefits.discord_oauth_url = 'https://discord.example';

INSERT INTO benefits.organizations (id, name) VALUES ('12000000-0000-0000-0000-0000000000a1', 'Link Org');
INSERT INTO benefits.customers (id, organization_id, external_id, email) VALUES
    ('12000000-0000-0000-0000-0000000000c1', '12000000-0000-0000-0000-0000000000a1', 'ada', 'ada@example.com'),
    ('12000000-0000-0000-0000-0000000000c2', '12000000-0000-0000-0000-0000000000a1', 'bob', 'bob@example.com');
SELECT id AS github FROM benefits.create_benefit('github_repository', '12000000-0000-0000-0000-0000000000a1', 'Repos',
    '{"repositories": [{"owner": "acme", "name": "engine", "permission": "pull"},
                       {"owner": "acme", "name": "docs", "permission": "triage"}]}') \gset
SELECT id AS discord FROM benefits.create_benefit('discord', '12000000-0000-0000-0000-0000000000a1', 'Chat',
    '{"guild_id": "120000000000000111", "kick_member": true,
      "roles": [{"role_id": "120000000000000201", "name": "Sponsor"}]}') \gset
SELECT state, error FROM benefits.grant_benefit('12000000-0000-0000-0000-0000000000c1', :'github');
SELECT state, error FROM benefits.grant_benefit('12000000-0000-0000-0000-0000000000c1', :'discord');
SELECT state FROM benefits.grant_benefit('12000000-0000-0000-0000-0000000000c2', :'github');

SELECT benefits.create_customer_session('12000000-0000-0000-0000-0000000000a1', 'ada') AS a1 \gset
SELECT benefits.create_customer_session('12000000-0000-0000-0000-0000000000a1', 'ada') AS a2 \gset
SELECT benefits.create_customer_session('12000000-0000-0000-0000-0000000000a1', 'bob') AS b1 \gset

-- Jobs written since the last mark, in id order (the order the worker runs
-- them for one grant); the customer id of a payload is compared, not shown.
CREATE TABLE link_mark (id bigint);
INSERT INTO link_mark VALUES (0);
CREATE VIEW link_jobs AS
    SELECT o.kind, o.action, o.payload - 'customer_id' AS payload,
           o.payload->>'customer_id' = '12000000-0000-0000-0000-0000000000c1' AS for_ada
      FROM benefits.outbox o
     WHERE o.organization_id = '12000000-0000-0000-0000-0000000000a1' AND o.kind <> 'webhook'
       AND o.id > (SELECT max(id) FROM link_mark)
     ORDER BY o.id;
CREATE PROCEDURE link_mark() LANGUAGE sql AS $$ INSERT INTO link_mark SELECT coalesce(max(id), 0) FROM benefits.outbox $$;

--
-- portal_link_url
--

-- GitHub: {github_oauth_url}/login/oauth/authorize (trailing slash of the
-- setting dropped) with the client id and redirect URI percent-encoded and a
-- 43-character state last; Discord: /oauth2/authorize with the scopes.
SELECT benefits.portal_link_url(:'a1', 'github', 'https://app.example/oauth/callback?from=portal&x=1') AS gh_url \gset
SELECT benefits.portal_link_url(:'a1', 'discord', 'http://127.0.0.1:8080/cb') AS dc_url \gset
SELECT regexp_replace(:'gh_url', 'state=[A-Za-z0-9_-]{43}$', 'state=<state>') AS github_url;
SELECT regexp_replace(:'dc_url', 'state=[A-Za-z0-9_-]{43}$', 'state=<state>') AS discord_url;
SELECT pg_temp.state_of(:'gh_url') AS gh_state, pg_temp.state_of(:'dc_url') AS dc_state \gset
SELECT :'gh_state' <> :'dc_state' AS distinct_states;

-- Stored only as its 32-byte SHA-256, bound to the session, the customer and
-- the platform, with the redirect URI, for ten minutes; the state itself is
-- in no column.
SELECT s.platform, s.redirect_uri, octet_length(s.state_hash) AS hash_bytes,
       s.session_id = (SELECT cs.id FROM benefits.customer_sessions cs
                        WHERE cs.token_hash = sha256(convert_to(:'a1', 'UTF8'))) AS bound_to_session,
       s.customer_id, s.expires_at - s.created_at AS lifetime, now() - s.created_at < interval '1 minute' AS issued_just_now
  FROM benefits.oauth_states s
 WHERE s.state_hash IN (pg_temp.state_hash(:'gh_state'), pg_temp.state_hash(:'dc_state'))
 ORDER BY s.platform DESC;
SELECT count(*) AS state_in_clear FROM benefits.oauth_states s
 WHERE s::text LIKE '%' || :'gh_state' || '%' OR s::text LIKE '%' || :'dc_state' || '%'
    OR position(convert_to(:'gh_state', 'UTF8') IN s.state_hash) > 0;

-- Redirect URIs accepted: https with a query, plain http to the loopback
-- host by name or address, exactly 2048 bytes.
SELECT pg_temp.try(format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'github', u)) AS result, u AS redirect_uri
  FROM unnest(ARRAY['https://app.example:8443/cb?a=b&c=%20d', 'http://localhost/cb', 'HTTP://LOCALHOST:9/cb',
                    'http://127.0.0.1/']) u;
SELECT pg_temp.try(format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'github',
                          'https://app.example/' || repeat('a', 2048 - 20))) AS exactly_2048_bytes;

-- A customer holds at most 20 live states: issuing more drops the oldest
-- (each in a transaction of its own, as page loads are), and expired ones go.
CREATE PROCEDURE pg_temp.issue(token text, n int) LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. n LOOP
        PERFORM benefits.portal_link_url(token, 'github', 'https://app.example/cb');
        COMMIT;
    END LOOP;
END
$$;
SELECT pg_temp.state_of(benefits.portal_link_url(:'b1', 'github', 'https://app.example/cb')) AS b_oldest \gset
SELECT pg_temp.state_of(benefits.portal_link_url(:'b1', 'github', 'https://app.example/cb')) AS b_expired \gset
UPDATE benefits.oauth_states SET expires_at = now() - interval '1 second' WHERE state_hash = pg_temp.state_hash(:'b_expired');
CALL pg_temp.issue(:'b1', 1);
SELECT count(*) AS bob_states, count(*) FILTER (WHERE state_hash = pg_temp.state_hash(:'b_expired')) AS expired_kept
  FROM benefits.oauth_states WHERE customer_id = '12000000-0000-0000-0000-0000000000c2';
CALL pg_temp.issue(:'b1', 19);
SELECT count(*) AS bob_states, count(*) FILTER (WHERE state_hash = pg_temp.state_hash(:'b_oldest')) AS oldest_kept
  FROM benefits.oauth_states WHERE customer_id = '12000000-0000-0000-0000-0000000000c2';
CALL pg_temp.issue(:'b1', 5);
SELECT count(*) AS bob_states FROM benefits.oauth_states WHERE customer_id = '12000000-0000-0000-0000-0000000000c2';
-- Within one transaction too, the newest 20 are kept (and so the state just
-- handed out): issued in order, all but the first five survive.
BEGIN;
CREATE TEMP TABLE issued ON COMMIT DROP AS
SELECT i, pg_temp.state_of(benefits.portal_link_url(:'b1', 'github', 'https://app.example/cb')) AS st
  FROM generate_series(1, 25) i;
SELECT count(*) FILTER (WHERE s.state_hash IS NOT NULL) AS kept,
       array_agg(i.i ORDER BY i.i) FILTER (WHERE s.state_hash IS NULL) AS dropped
  FROM issued i LEFT JOIN benefits.oauth_states s ON s.state_hash = pg_temp.state_hash(i.st);
COMMIT;
-- Ada's states are not Bob's to count.
SELECT count(*) FILTER (WHERE state_hash IN (pg_temp.state_hash(:'gh_state'), pg_temp.state_hash(:'dc_state'))) AS ada_states_kept
  FROM benefits.oauth_states WHERE customer_id = '12000000-0000-0000-0000-0000000000c1';
-- The dropped state can no longer be used.
SELECT pg_temp.try(format('SELECT benefits.portal_link_callback(%L, %L, %L)', :'b1', :'b_oldest', 'code1')) AS dropped_state;

-- Every refusal of portal_link_url, with its SQLSTATE and message; none
-- issues a state.
SELECT count(*) AS states_before FROM benefits.oauth_states WHERE customer_id = '12000000-0000-0000-0000-0000000000c1' \gset
SELECT label, pg_temp.try(q) AS result FROM (VALUES
    ('null token',         format('SELECT benefits.portal_link_url(NULL, %L, %L)', 'github', 'https://app.example/cb')),
    ('bad token',          format('SELECT benefits.portal_link_url(%L, %L, %L)', 'bcs_nope', 'github', 'https://app.example/cb')),
    ('null platform',      format('SELECT benefits.portal_link_url(%L, NULL, %L)', :'a1', 'https://app.example/cb')),
    ('unknown platform',   format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'gitlab', 'https://app.example/cb')),
    ('platform case',      format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'GitHub', 'https://app.example/cb')),
    ('null redirect',      format('SELECT benefits.portal_link_url(%L, %L, NULL)', :'a1', 'github')),
    ('2049 bytes',         format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'github', 'https://app.example/' || repeat('a', 2049 - 20))),
    ('space',              format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'github', 'https://app.example/c b')),
    ('control char',       format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'github', E'https://app.example/c\tb')),
    ('newline',            format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'github', E'https://app.example/cb\n')),
    ('DEL',                format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'github', 'https://app.example/c' || chr(127))),
    ('backslash',          format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'github', 'https://app.example\@evil.example/cb')),
    ('fragment',           format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'github', 'https://app.example/cb#x')),
    ('double quote',       format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'github', 'https://app.example/"><x')),
    ('non-ASCII',          format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'github', 'https://app.example/caf' || chr(233))),
    ('http elsewhere',     format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'github', 'http://app.example/cb')),
    ('http localhost.evil', format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'github', 'http://localhost.evil.example/cb')),
    ('http 127.0.0.1.evil', format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'github', 'http://127.0.0.1.evil.example/cb')),
    ('userinfo',           format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'github', 'https://app.example@evil.example/cb')),
    ('http userinfo',      format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'github', 'http://127.0.0.1:80@evil.example/cb')),
    ('relative',           format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'github', '/oauth/callback')),
    ('no scheme',          format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'github', 'app.example/cb')),
    ('javascript',         format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'github', 'javascript:alert(1)')),
    ('no host',            format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'github', 'https:///cb')),
    ('empty',              format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'github', '')),
    ('bad port',           format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'github', 'https://app.example:0/cb'))
) AS t(label, q);
-- The reason is in the detail.
SELECT benefits.portal_link_url(:'a1', 'github', 'http://app.example/cb');
SELECT benefits.portal_link_url(:'a1', 'github', 'https://app.example/c b');
-- No client id configured: 55000, whatever the session (checked first).
RESET benefits.github_oauth_client_id;
SELECT pg_temp.try(format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'github', 'https://app.example/cb')) AS github_unconfigured,
       pg_temp.try(format('SELECT benefits.portal_link_url(%L, %L, %L)', 'bcs_nope', 'github', 'https://app.example/cb')) AS unconfigured_bad_token,
       pg_temp.try(format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'discord', 'https://app.example/cb')) AS discord_still_ok;
SET benefits.github_oauth_client_id = '';
SELECT pg_temp.try(format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'github', 'https://app.example/cb')) AS github_empty;
SET benefits.github_oauth_client_id = 'gh-client id&1';
RESET benefits.discord_oauth_client_id;
SELECT pg_temp.try(format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'discord', 'https://app.example/cb')) AS discord_unconfigured;
SET benefits.discord_oauth_client_id = '1200000000000000001';
-- The client secret is needed too (the worker's exchange sends it).
RESET benefits.github_oauth_client_secret;
SELECT pg_temp.try(format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a1', 'github', 'https://app.example/cb')) AS github_no_secret;
SET benefits.github_oauth_client_secret = 'gh-secret';
-- (The one new state is the Discord URL that was issued above.)
SELECT count(*) - :states_before AS states_issued_by_refusals
  FROM benefits.oauth_states WHERE customer_id = '12000000-0000-0000-0000-0000000000c1';

--
-- portal_link_callback
--

-- Every unusable state gets the SAME error (28000, one message), whatever
-- the reason: another session of the same customer, another customer's
-- session, another platform (the optional 4th argument), malformed, NULL,
-- reused, expired.  A refused attempt does not consume the state.
SELECT pg_temp.state_of(benefits.portal_link_url(:'a1', 'github', 'https://app.example/cb')) AS st_expired \gset
UPDATE benefits.oauth_states SET expires_at = now() - interval '1 second' WHERE state_hash = pg_temp.state_hash(:'st_expired');
SELECT pg_temp.state_of(benefits.portal_link_url(:'a1', 'github', 'https://app.example/cb')) AS st_reused \gset
SELECT benefits.portal_link_callback(:'a1', :'st_reused', 'first-code', 'github') AS first_use;
SELECT max(id) AS old_job FROM benefits.outbox WHERE kind = 'oauth' \gset
SELECT label, pg_temp.try(q) AS result FROM (VALUES
    ('other session',     format('SELECT benefits.portal_link_callback(%L, %L, %L)', :'a2', :'gh_state', 'c0de')),
    ('other customer',    format('SELECT benefits.portal_link_callback(%L, %L, %L)', :'b1', :'gh_state', 'c0de')),
    ('other platform',    format('SELECT benefits.portal_link_callback(%L, %L, %L, %L)', :'a1', :'gh_state', 'c0de', 'discord')),
    ('discord state as github', format('SELECT benefits.portal_link_callback(%L, %L, %L, %L)', :'a1', :'dc_state', 'c0de', 'github')),
    ('reused',            format('SELECT benefits.portal_link_callback(%L, %L, %L)', :'a1', :'st_reused', 'c0de')),
    ('expired',           format('SELECT benefits.portal_link_callback(%L, %L, %L)', :'a1', :'st_expired', 'c0de')),
    ('unknown',           format('SELECT benefits.portal_link_callback(%L, %L, %L)', :'a1', repeat('A', 43), 'c0de')),
    ('altered',           format('SELECT benefits.portal_link_callback(%L, %L, %L)', :'a1', upper(:'gh_state'), 'c0de')),
    ('hash given',        format('SELECT benefits.portal_link_callback(%L, %L, %L)', :'a1', encode(pg_temp.state_hash(:'gh_state'), 'hex'), 'c0de')),
    ('empty',             format('SELECT benefits.portal_link_callback(%L, %L, %L)', :'a1', '', 'c0de')),
    ('129 bytes',         format('SELECT benefits.portal_link_callback(%L, %L, %L)', :'a1', repeat('A', 129), 'c0de')),
    ('null state',        format('SELECT benefits.portal_link_callback(%L, NULL, %L)', :'a1', 'c0de')),
    ('null state, refusal', format('SELECT benefits.portal_link_callback(%L, NULL, NULL)', :'a1'))
) AS t(label, q);
-- The session checks come first: a bad session is 28000 with the session's
-- message; a bad platform or code 22023 (and consumes nothing).
SELECT label, pg_temp.try(q) AS result FROM (VALUES
    ('null token',        format('SELECT benefits.portal_link_callback(NULL, %L, %L)', :'gh_state', 'c0de')),
    ('bad token',         format('SELECT benefits.portal_link_callback(%L, %L, %L)', 'bcs_nope', :'gh_state', 'c0de')),
    ('unknown platform',  format('SELECT benefits.portal_link_callback(%L, %L, %L, %L)', :'a1', :'gh_state', 'c0de', 'gitlab')),
    ('code 513 bytes',    format('SELECT benefits.portal_link_callback(%L, %L, %L)', :'a1', :'gh_state', repeat('c', 513))),
    ('empty code',        format('SELECT benefits.portal_link_callback(%L, %L, %L)', :'a1', :'gh_state', '')),
    ('code with space',   format('SELECT benefits.portal_link_callback(%L, %L, %L)', :'a1', :'gh_state', 'ab cd')),
    ('code with &',       format('SELECT benefits.portal_link_callback(%L, %L, %L)', :'a1', :'gh_state', 'ab&state=x')),
    ('code with quote',   format('SELECT benefits.portal_link_callback(%L, %L, %L)', :'a1', :'gh_state', 'ab"cd')),
    ('code with newline', format('SELECT benefits.portal_link_callback(%L, %L, %L)', :'a1', :'gh_state', E'ab\ncd')),
    ('code non-ASCII',    format('SELECT benefits.portal_link_callback(%L, %L, %L)', :'a1', :'gh_state', 'caf' || chr(233)))
) AS t(label, q);
-- None of these consumed the state: it is still there, for its session.
SELECT count(*) AS gh_state_live FROM benefits.oauth_states WHERE state_hash = pg_temp.state_hash(:'gh_state');
SELECT count(*) AS oauth_jobs_so_far FROM benefits.outbox WHERE kind = 'oauth';
CALL link_mark();

-- Nothing is linked yet: GitHub pending (st_reused's job), Discord unlinked.
SELECT * FROM benefits.portal_link_status(:'a1');

-- A NULL code is the customer's refusal: the state is consumed, no job is
-- written, the link is 'failed' with the error shown to the customer.
SELECT benefits.portal_link_callback(:'a1', :'dc_state', NULL) AS refused;
SELECT count(*) AS dc_state_live FROM benefits.oauth_states WHERE state_hash = pg_temp.state_hash(:'dc_state');
SELECT * FROM link_jobs;
SELECT platform, job_id = :old_job AS on_first_job, error
  FROM benefits.account_links WHERE customer_id = '12000000-0000-0000-0000-0000000000c1' ORDER BY platform DESC;
SELECT * FROM benefits.portal_link_status(:'a1');

-- A good callback (a code of 512 URL-safe characters, the platform named):
-- 'pending', the state consumed, one oauth job whose payload is the
-- platform, the customer the state was bound to, the redirect URI the state
-- was issued for and the code; the link is pending on that job.
SELECT repeat('Az09-._~+/=', 46) || 'abcdef' AS long_code \gset
SELECT length(:'long_code') AS code_length;
SELECT benefits.portal_link_callback(:'a1', :'gh_state', :'long_code', 'github') AS outcome;
SELECT count(*) AS gh_state_live FROM benefits.oauth_states WHERE state_hash = pg_temp.state_hash(:'gh_state');
SELECT kind, action, payload - 'code' AS payload, payload->>'code' = :'long_code' AS code_kept, for_ada FROM link_jobs;
SELECT o.state, o.grant_id, (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(o.payload) k) AS payload_keys,
       l.job_id = o.id AS link_on_job, l.error
  FROM benefits.outbox o JOIN benefits.account_links l ON l.job_id = o.id
 WHERE o.kind = 'oauth' AND l.customer_id = '12000000-0000-0000-0000-0000000000c1';
SELECT o.id AS gh_job FROM benefits.outbox o WHERE o.kind = 'oauth' ORDER BY o.id DESC LIMIT 1 \gset
-- The same state cannot be used twice: the second callback finds nothing.
SELECT pg_temp.try(format('SELECT benefits.portal_link_callback(%L, %L, %L)', :'a1', :'gh_state', 'c0de')) AS replayed;
SELECT count(*) AS oauth_jobs FROM benefits.outbox WHERE kind = 'oauth' AND id > (SELECT max(id) FROM link_mark);
-- Per platform: GitHub pending, Discord failed with the refusal.
SELECT * FROM benefits.portal_link_status(:'a1');
-- Another customer's status is their own.
SELECT * FROM benefits.portal_link_status(:'b1');
SELECT pg_temp.try(format('SELECT * FROM benefits.portal_link_status(%L)', 'bcs_nope')) AS bad_token,
       pg_temp.try('SELECT * FROM benefits.portal_link_status(NULL)') AS null_token;

-- A session revoked after its state was issued: the callback is refused
-- with the session's error, and the state is not usable from another of the
-- customer's sessions either; every link function refuses the session.
SELECT benefits.create_customer_session('12000000-0000-0000-0000-0000000000a1', 'ada') AS a3 \gset
SELECT pg_temp.state_of(benefits.portal_link_url(:'a3', 'github', 'https://app.example/cb')) AS a3_state \gset
SELECT benefits.revoke_customer_session(:'a3') AS revoked;
SELECT label, pg_temp.try(q) AS result FROM (VALUES
    ('callback, revoked session', format('SELECT benefits.portal_link_callback(%L, %L, %L)', :'a3', :'a3_state', 'c0de')),
    ('callback, live session',    format('SELECT benefits.portal_link_callback(%L, %L, %L)', :'a1', :'a3_state', 'c0de')),
    ('url',                       format('SELECT benefits.portal_link_url(%L, %L, %L)', :'a3', 'github', 'https://app.example/cb')),
    ('status',                    format('SELECT * FROM benefits.portal_link_status(%L)', :'a3')),
    ('unlink',                    format('SELECT benefits.portal_unlink_account(%L, %L)', :'a3', 'github'))
) AS t(label, q);
-- A session's states go with it.
DELETE FROM benefits.customer_sessions WHERE token_hash = sha256(convert_to(:'a3', 'UTF8'));
SELECT count(*) AS a3_state_left FROM benefits.oauth_states WHERE state_hash = pg_temp.state_hash(:'a3_state');

--
-- The worker's answer functions, called as the worker calls them (as the
-- extension's owner) with a provider's status and body.  The worker records
-- the verdict on the job; here that is done by hand where status depends on it.
--
CREATE FUNCTION pg_temp.record(job bigint, verdict jsonb) RETURNS jsonb LANGUAGE sql AS $$
    UPDATE benefits.outbox SET state = CASE verdict->>'outcome' WHEN 'step' THEN 'pending' ELSE verdict->>'outcome' END,
                               last_error = verdict->>'error',
                               payload = payload || coalesce(verdict->'patch', '{}')
     WHERE id = job;
    SELECT verdict;
$$;
-- What an oauth job holds after an answer: the code gone or not, the
-- tokens of the exchange, and the link's row.
CREATE FUNCTION pg_temp.job_after(job bigint)
    RETURNS TABLE (code_in_payload boolean, step text, exchange boolean, link_on_job boolean, link_error text)
    LANGUAGE sql AS $$
    SELECT o.payload ? 'code', o.payload->>'_step',
           EXISTS (SELECT FROM benefits.oauth_exchanges x WHERE x.job_id = o.id),
           EXISTS (SELECT FROM benefits.account_links l WHERE l.job_id = o.id),
           (SELECT l.error FROM benefits.account_links l
             WHERE l.customer_id = (o.payload->>'customer_id')::uuid AND l.platform = o.payload->>'platform')
      FROM benefits.outbox o WHERE o.id = job;
$$;

-- A superseded attempt: st_reused's job was replaced by gh_job's (the link
-- row points at the newer job).  Its code is exchanged, but the account it
-- reads is not linked: 'done', nothing linked, its tokens dropped, the
-- newer attempt still pending.
SELECT benefits.oauth_code_answer(:old_job, 200, '{"access_token": "gho_superseded", "token_type": "bearer", "scope": "read:user"}') AS verdict;
SELECT * FROM pg_temp.job_after(:old_job);
SELECT benefits.oauth_account_answer(:old_job, 200, '{"id": 4001, "login": "wrong-cat"}') AS verdict;
SELECT * FROM pg_temp.job_after(:old_job);
SELECT count(*) AS ada_accounts FROM benefits.customer_accounts WHERE customer_id = '12000000-0000-0000-0000-0000000000c1';
SELECT * FROM link_jobs WHERE kind <> 'oauth';
SELECT * FROM benefits.portal_link_status(:'a1');

-- gh_job: the code exchange answered with a token (GitHub's 200 JSON, its
-- scopes comma-separated): the next step, the code removed from the payload,
-- the tokens kept out of the outbox in oauth_exchanges, which job_credentials
-- hands to the worker for the account request.
SELECT benefits.oauth_code_answer(:gh_job, 200,
    '{"access_token": "gho_16C7e42F292c6912E7710c838347Ae178B4a", "token_type": "bearer", "scope": "read:user,user:email"}') AS verdict \gset
SELECT :'verdict' AS verdict;
SELECT pg_temp.record(:gh_job, :'verdict') IS NOT NULL AS recorded;
SELECT * FROM pg_temp.job_after(:gh_job);
SELECT x.access_token, x.refresh_token, x.token_expires_at, x.scopes FROM benefits.oauth_exchanges x WHERE x.job_id = :gh_job;
SELECT count(*) AS tokens_in_outbox FROM benefits.outbox WHERE payload::text LIKE '%gho_16C7e42F%';
SELECT j.access_token, j.refresh_token FROM benefits.job_credentials(ARRAY[:gh_job]::bigint[]) j;
-- The account read with it is linked to the customer the state was bound
-- to: the GitHub grant gets its two collaborator jobs, the link row and the
-- tokens of the exchange go, the status is linked with the login.
SELECT benefits.oauth_account_answer(:gh_job, 200, '{"id": 5001, "login": "octo-cat", "name": "<Octo>"}') AS verdict \gset
SELECT :'verdict' AS verdict;
SELECT pg_temp.record(:gh_job, :'verdict') IS NOT NULL AS recorded;
SELECT * FROM pg_temp.job_after(:gh_job);
SELECT customer_id, account_id, username, access_token, refresh_token, token_expires_at, scopes
  FROM benefits.customer_accounts WHERE customer_id = '12000000-0000-0000-0000-0000000000c1';
SELECT * FROM link_jobs WHERE kind <> 'oauth';
SELECT g.state, g.error, g.properties->>'username' AS username FROM benefits.grants g
 WHERE g.customer_id = '12000000-0000-0000-0000-0000000000c1' AND g.benefit_id = :'github';
SELECT * FROM benefits.portal_link_status(:'a1');
CALL link_mark();

-- Discord: the token answer carries a refresh token, an expiry (seconds) and
-- space-separated scopes; the account's id is a string.  Linked with both
-- tokens; the Discord grant's add_member job gets the access token from
-- job_credentials, and the refresh token too once the access token is about
-- to expire.
SELECT pg_temp.callback_job(:'a1', 'discord', 'discord-code') AS dc_job \gset
SELECT benefits.oauth_code_answer(:dc_job, 200,
    '{"access_token": "dc-access-1", "token_type": "Bearer", "expires_in": 604800, "refresh_token": "dc-refresh-1", "scope": "identify guilds.join"}') AS verdict \gset
SELECT :'verdict' AS verdict;
SELECT pg_temp.record(:dc_job, :'verdict') IS NOT NULL AS recorded;
SELECT pg_temp.record(:dc_job, benefits.oauth_account_answer(:dc_job, 200, '{"id": "120000000000000901", "username": "nelly", "global_name": "Nelly"}')) AS verdict;
SELECT account_id, username, access_token, refresh_token,
       token_expires_at BETWEEN now() + interval '604790 seconds' AND now() + interval '604800 seconds' AS expires_in_a_week,
       scopes
  FROM benefits.customer_accounts WHERE customer_id = '12000000-0000-0000-0000-0000000000c1' AND platform = 'discord';
SELECT * FROM link_jobs WHERE kind <> 'oauth';
SELECT id AS add_member_job FROM benefits.outbox WHERE kind = 'discord' AND action = 'add_member'
   AND payload->>'customer_id' = '12000000-0000-0000-0000-0000000000c1' ORDER BY id DESC LIMIT 1 \gset
SELECT j.access_token, j.refresh_token FROM benefits.job_credentials(ARRAY[:add_member_job]::bigint[]) j;
UPDATE benefits.customer_accounts SET token_expires_at = now() + interval '5 minutes'
 WHERE customer_id = '12000000-0000-0000-0000-0000000000c1' AND platform = 'discord';
SELECT j.access_token, j.refresh_token FROM benefits.job_credentials(ARRAY[:add_member_job]::bigint[]) j;
-- The refresh answered (discord_refresh_answer, on the add_member job): the
-- new pair is stored and the job goes on.  The refresh tokens are single-use.
SELECT benefits.discord_refresh_answer(:add_member_job, 200,
    '{"access_token": "dc-access-2", "refresh_token": "dc-refresh-2", "expires_in": 604800, "scope": "identify guilds.join"}') AS verdict;
SELECT access_token, refresh_token, token_expires_at > now() + interval '6 days' AS renewed, scopes
  FROM benefits.customer_accounts WHERE customer_id = '12000000-0000-0000-0000-0000000000c1' AND platform = 'discord';
-- A refusal while the stored token is fresh (another job refreshed it
-- meanwhile): the job goes on with that token, nothing is marked.
SELECT benefits.discord_refresh_answer(:add_member_job, 400, '{"error": "invalid_grant"}') AS verdict;
-- A refusal of an expiring token: dead, with the provider's answer but none
-- of the tokens in it, and the customer shown the action to reconnect.
UPDATE benefits.customer_accounts SET token_expires_at = now() + interval '5 minutes'
 WHERE customer_id = '12000000-0000-0000-0000-0000000000c1' AND platform = 'discord';
SELECT benefits.discord_refresh_answer(:add_member_job, 400, '{"error": "invalid_grant", "refresh_token": "dc-refresh-2"}') AS verdict;
SELECT benefits.discord_refresh_answer(:add_member_job, 200, '{"access_token": "dc-x\u0000", "refresh_token": "dc-refresh-3"}') AS verdict;
SELECT * FROM benefits.portal_link_status(:'a1');
-- A job without a customer id in its payload cannot be refreshed.
SELECT benefits.discord_refresh_answer(-1, 200, '{}') AS verdict;
UPDATE benefits.customer_accounts SET token_expires_at = now() + interval '7 days'
 WHERE customer_id = '12000000-0000-0000-0000-0000000000c1' AND platform = 'discord';
DELETE FROM benefits.account_links WHERE customer_id = '12000000-0000-0000-0000-0000000000c1' AND platform = 'discord';
SELECT * FROM benefits.portal_link_status(:'a1');
CALL link_mark();

-- Code exchanges that fail, each on a fresh attempt of Bob's: GitHub's 200
-- {"error": ...}, a 400, a body that is not JSON, an access token with a
-- control character, one over 2048 bytes, and a refresh token with a control
-- character.  Each is dead with the provider's answer, the code leaves the
-- payload all the same (it is used once), no tokens are kept, and the
-- customer sees the action to connect again.
SELECT label, v AS verdict, a.*
  FROM (VALUES
    (1, 'bad_verification_code', 200, '{"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."}'),
    (2, '400', 400, '{"error": "invalid_grant"}'),
    (3, 'not JSON', 200, 'access_token=gho_form&scope=repo'),
    (4, 'JSON not an object', 200, '["gho_array"]'),
    (5, 'control character', 200, '{"access_token": "gho_a\u0001b"}'),
    (6, 'token of 2049 bytes', 200, '{"access_token": "' || repeat('t', 2049) || '"}'),
    (7, 'empty token', 200, '{"access_token": ""}'),
    (8, 'token not a string', 200, '{"access_token": 12345}'),
    (9, 'bad refresh token', 200, '{"access_token": "gho_ok", "refresh_token": "r\u007f"}')
  ) AS t(n, label, status, body),
  LATERAL (SELECT pg_temp.callback_job(:'b1', 'github', 'bob-code-' || t.n) AS job) j,
  LATERAL (SELECT pg_temp.record(j.job, benefits.oauth_code_answer(j.job, t.status, t.body)) AS v) ans,
  LATERAL pg_temp.job_after(j.job) a
 ORDER BY n;
-- No token of these answers reached the outbox (the verdict's error is
-- stored as the job's last_error, which benefits_admin reads).
SELECT count(*) AS tokens_in_outbox FROM benefits.outbox
 WHERE payload::text ~ 'gho_ok|gho_form|tttttttt' OR coalesce(last_error, '') ~ 'gho_ok|gho_form|tttttttt';
-- A token of exactly 2048 bytes is accepted.
SELECT pg_temp.callback_job(:'b1', 'github', 'bob-code-2048') AS bob_job \gset
SELECT benefits.oauth_code_answer(:bob_job, 200, '{"access_token": "' || repeat('t', 2048) || '"}') AS verdict;
SELECT octet_length(access_token) FROM benefits.oauth_exchanges WHERE job_id = :bob_job;
-- The job dying at the next step (its retries exhausted, no answer read):
-- Bob's status is failed, with the generic action to connect again.
SELECT pg_temp.record(:bob_job, '{"outcome": "dead", "error": "retries exhausted"}') IS NOT NULL AS recorded;
SELECT * FROM benefits.portal_link_status(:'b1');

-- Account reads that fail: a login GitHub would not have (link_account
-- refuses it: dead, "cannot be used"), an answer without an id, a 401.
SELECT label, v AS verdict, a.*
  FROM (VALUES
    (1, 'invalid login', 200, '{"id": 6001, "login": "-not-a-login-"}'),
    (2, 'login with a slash', 200, '{"id": 6002, "login": "octo/../cat"}'),
    (3, 'no id', 200, '{"login": "octo-cat"}'),
    (4, 'id an object', 200, '{"id": {"x": 1}, "login": "octo-cat"}'),
    (5, '401', 401, '{"message": "Bad credentials"}'),
    (6, 'not JSON', 200, '<html>')
  ) AS t(n, label, status, body),
  LATERAL (SELECT pg_temp.callback_job(:'b1', 'github', 'bob-acct-' || t.n) AS job) j,
  LATERAL (SELECT pg_temp.record(j.job, benefits.oauth_code_answer(j.job, 200, '{"access_token": "gho_bob"}')) AS step) s,
  LATERAL (SELECT pg_temp.record(j.job, benefits.oauth_account_answer(j.job, t.status, t.body)) AS v) ans,
  LATERAL pg_temp.job_after(j.job) a
 ORDER BY n;
SELECT count(*) AS bob_accounts FROM benefits.customer_accounts WHERE customer_id = '12000000-0000-0000-0000-0000000000c2';
-- Every answer dropped the tokens of its exchange; the one left is the
-- 2048-byte token of the job above that died without an answer being read
-- (nothing drops an exchange then, until the outbox row itself is deleted).
SELECT count(*) AS exchanges_left FROM benefits.oauth_exchanges x
  JOIN benefits.outbox o ON o.id = x.job_id WHERE o.payload->>'customer_id' = '12000000-0000-0000-0000-0000000000c2';
-- A Discord account id that is not a snowflake cannot be used either.
SELECT pg_temp.callback_job(:'b1', 'discord', 'bob-dc') AS bob_job \gset
SELECT pg_temp.record(:bob_job, benefits.oauth_code_answer(:bob_job, 200, '{"access_token": "dc-bob"}')) ->> 'outcome' AS step;
SELECT pg_temp.record(:bob_job, benefits.oauth_account_answer(:bob_job, 200, '{"id": "12ab", "username": "bob"}')) AS verdict;
SELECT * FROM benefits.portal_link_status(:'b1');
SELECT * FROM pg_temp.job_after(:bob_job);
-- A job that is gone (deleted by an administrator) is done, nothing else.
SELECT benefits.oauth_code_answer(-1, 200, '{"access_token": "x"}') AS gone_code,
       benefits.oauth_account_answer(-1, 200, '{"id": 1, "login": "x"}') AS gone_account;
CALL link_mark();

--
-- link_account: the token arguments, and another account replacing one
--

-- refresh_token, token_expires_at and scopes are checked like the access
-- token: 1 to 2048 bytes without control characters; at most 20 scopes of 1
-- to 100 bytes each, none NULL or empty.  Nothing is stored when refused.
SELECT label, pg_temp.try(format(
           'SELECT benefits.link_account(%L, %L, %L, %L, %L, %L, %L, %L)',
           '12000000-0000-0000-0000-0000000000c2', 'github', '7001', 'bob-cat', 'gho_bob', r, e, s)) AS result
  FROM (VALUES
    ('empty refresh_token', '', NULL, NULL),
    ('refresh_token with control', E'r\x01', NULL, NULL),
    ('refresh_token with C1 control', 'r' || chr(133), NULL, NULL),
    ('refresh_token of 2049 bytes', repeat('r', 2049), NULL, NULL),
    ('21 scopes', NULL, NULL, (SELECT array_agg('s' || i) FROM generate_series(1, 21) i)::text),
    ('empty scope', NULL, NULL, '{repo,""}'),
    ('NULL scope', NULL, NULL, '{repo,NULL}'),
    ('scope with control', NULL, NULL, E'{"re\tpo"}'),
    ('scope of 101 bytes', NULL, NULL, ARRAY[repeat('s', 101)]::text),
    ('bad expiry', NULL, 'soon', NULL)
  ) AS t(label, r, e, s);
SELECT count(*) AS bob_accounts FROM benefits.customer_accounts WHERE customer_id = '12000000-0000-0000-0000-0000000000c2';
-- The limits themselves are accepted, and stored as given.
SELECT benefits.link_account('12000000-0000-0000-0000-0000000000c2', 'github', '7001', 'bob-cat', 'gho_bob',
                             repeat('r', 2048), '2031-01-01 00:00:00+00',
                             (SELECT array_agg(CASE WHEN i = 1 THEN repeat('s', 100) ELSE 's' || i END ORDER BY i)
                                FROM generate_series(1, 20) i));
SELECT account_id, username, access_token, octet_length(refresh_token) AS refresh_bytes, token_expires_at,
       cardinality(scopes) AS scopes, octet_length(scopes[1]) AS first_scope_bytes
  FROM benefits.customer_accounts WHERE customer_id = '12000000-0000-0000-0000-0000000000c2';
-- The same account linked again without tokens keeps its tokens; with a new
-- access token it gets exactly the tokens given (the old refresh token goes).
SELECT benefits.link_account('12000000-0000-0000-0000-0000000000c2', 'github', '7001', 'bob-cat');
SELECT access_token, octet_length(refresh_token) AS refresh_bytes, token_expires_at, cardinality(scopes) AS scopes
  FROM benefits.customer_accounts WHERE customer_id = '12000000-0000-0000-0000-0000000000c2';
SELECT benefits.link_account('12000000-0000-0000-0000-0000000000c2', 'github', '7001', 'bob-cat', 'gho_bob_2');
SELECT access_token, refresh_token, token_expires_at, scopes
  FROM benefits.customer_accounts WHERE customer_id = '12000000-0000-0000-0000-0000000000c2';
-- Linking clears the failure Bob was shown.
SELECT * FROM benefits.portal_link_status(:'b1');
-- So does it when the failure was an attempt whose job died without an
-- answer (no error text, the job dead): linked again, the status is linked.
SELECT pg_temp.callback_job(:'b1', 'github', 'dies-unanswered') AS bob_job \gset
SELECT pg_temp.record(:bob_job, '{"outcome": "dead", "error": "retries exhausted"}') IS NOT NULL AS recorded;
SELECT * FROM benefits.portal_link_status(:'b1') WHERE platform = 'github';
SELECT benefits.link_account('12000000-0000-0000-0000-0000000000c2', 'github', '7001', 'bob-cat');
SELECT * FROM benefits.portal_link_status(:'b1') WHERE platform = 'github';
-- A link in progress is left to finish (its answer then links its account).
SELECT pg_temp.callback_job(:'b1', 'github', 'in-progress') AS bob_job \gset
SELECT benefits.link_account('12000000-0000-0000-0000-0000000000c2', 'github', '7001', 'bob-cat');
SELECT * FROM benefits.portal_link_status(:'b1') WHERE platform = 'github';
SELECT pg_temp.record(:bob_job, '{"outcome": "done"}') IS NOT NULL AS recorded;
DELETE FROM benefits.account_links WHERE job_id = :bob_job;
CALL link_mark();

-- Ada's access was delivered (the worker confirmed it).  Linking another
-- GitHub account moves it: the old login's collaborators are removed BEFORE
-- the new login's are added (by outbox id), the grant stays active and
-- records the new login.
UPDATE benefits.grants SET state = 'active'
 WHERE customer_id = '12000000-0000-0000-0000-0000000000c1';
SELECT benefits.link_account('12000000-0000-0000-0000-0000000000c1', 'github', '5002', 'other-cat', 'gho_other');
SELECT kind, action, payload FROM link_jobs;
SELECT bool_and(r.id < a.id) AS every_removal_before_every_add
  FROM benefits.outbox r, benefits.outbox a
 WHERE r.id > (SELECT max(id) FROM link_mark) AND a.id > (SELECT max(id) FROM link_mark)
   AND r.action = 'remove_collaborator' AND a.action = 'add_collaborator';
SELECT g.state, g.error, g.properties->>'username' AS username, g.properties->>'account_id' AS account_id
  FROM benefits.grants g WHERE g.customer_id = '12000000-0000-0000-0000-0000000000c1' AND g.benefit_id = :'github';
SELECT account_id, username, access_token, scopes FROM benefits.customer_accounts
 WHERE customer_id = '12000000-0000-0000-0000-0000000000c1' AND platform = 'github';
CALL link_mark();
-- The same login with another case is the same account: nothing moves.
SELECT benefits.link_account('12000000-0000-0000-0000-0000000000c1', 'github', '5002', 'Other-Cat');
SELECT kind, action, payload FROM link_jobs;
CALL link_mark();

-- Discord, whose benefit kicks members: the old member's roles are removed
-- and it is kicked, then the new member is added with its roles.
SELECT benefits.link_account('12000000-0000-0000-0000-0000000000c1', 'discord', '120000000000000902', 'nelly2', 'dc-access-2');
SELECT kind, action, payload, for_ada FROM link_jobs;
SELECT bool_and(r.id < a.id) AS every_removal_before_every_add
  FROM benefits.outbox r, benefits.outbox a
 WHERE r.id > (SELECT max(id) FROM link_mark) AND a.id > (SELECT max(id) FROM link_mark)
   AND r.action IN ('remove_role', 'kick_member') AND a.action IN ('add_member', 'add_role');
SELECT account_id, username, access_token, refresh_token, token_expires_at, scopes FROM benefits.customer_accounts
 WHERE customer_id = '12000000-0000-0000-0000-0000000000c1' AND platform = 'discord';
SELECT g.state, g.properties->>'account_id' AS account_id FROM benefits.grants g
 WHERE g.customer_id = '12000000-0000-0000-0000-0000000000c1' AND g.benefit_id = :'discord';
CALL link_mark();

--
-- portal_unlink_account
--

-- Refusals: bad session 28000, bad platform 22023.
SELECT pg_temp.try('SELECT benefits.portal_unlink_account(NULL, ''github'')') AS null_token,
       pg_temp.try(format('SELECT benefits.portal_unlink_account(%L, %L)', 'bcs_nope', 'github')) AS bad_token,
       pg_temp.try(format('SELECT benefits.portal_unlink_account(%L, NULL)', :'a1')) AS null_platform,
       pg_temp.try(format('SELECT benefits.portal_unlink_account(%L, %L)', :'a1', 'gitlab')) AS bad_platform;
-- Bob's session unlinks Bob's account only.
SELECT benefits.portal_unlink_account(:'b1', 'discord') AS bob_had_no_discord;
SELECT * FROM link_jobs;
-- Ada unlinks GitHub: the collaborators are removed, the grant keeps its
-- state with no delivered properties and the action to link again; the
-- account is gone; a second unlink finds nothing.
SELECT benefits.portal_unlink_account(:'a2', 'github') AS unlinked;
SELECT kind, action, payload FROM link_jobs;
SELECT g.state, g.properties, g.error FROM benefits.grants g
 WHERE g.customer_id = '12000000-0000-0000-0000-0000000000c1' AND g.benefit_id = :'github';
SELECT count(*) AS github_accounts FROM benefits.customer_accounts
 WHERE customer_id = '12000000-0000-0000-0000-0000000000c1' AND platform = 'github';
CALL link_mark();
SELECT benefits.portal_unlink_account(:'a1', 'github') AS unlinked_again;
SELECT * FROM link_jobs;
-- Discord: roles removed and the member kicked; the grant waits for a link.
SELECT benefits.portal_unlink_account(:'a1', 'discord') AS unlinked;
SELECT kind, action, payload FROM link_jobs;
SELECT g.state, g.properties, g.error FROM benefits.grants g
 WHERE g.customer_id = '12000000-0000-0000-0000-0000000000c1' AND g.benefit_id = :'discord';
SELECT * FROM benefits.portal_link_status(:'a1');
CALL link_mark();
-- Unlinking abandons a link in progress: the attempt's row goes, and its
-- answer links nothing.
SELECT pg_temp.callback_job(:'a1', 'github', 'abandoned') AS gone_job \gset
SELECT benefits.oauth_code_answer(:gone_job, 200, '{"access_token": "gho_gone"}') ->> 'outcome' AS step;
SELECT benefits.portal_unlink_account(:'a1', 'github') AS had_account;
SELECT * FROM pg_temp.job_after(:gone_job);
SELECT benefits.oauth_account_answer(:gone_job, 200, '{"id": 5003, "login": "late-cat"}') AS verdict;
SELECT count(*) AS github_accounts FROM benefits.customer_accounts
 WHERE customer_id = '12000000-0000-0000-0000-0000000000c1' AND platform = 'github';
SELECT * FROM benefits.portal_link_status(:'a1');
SELECT kind, action FROM link_jobs WHERE kind <> 'oauth';
CALL link_mark();

--
-- The portal: the document's link member, the page's Connect links and
-- Disconnect forms, escaped
--

-- The document shows, per GitHub and Discord benefit, the link as
-- {error, status}: unlinked now, for both.
SELECT benefits.customer_portal(:'a1') AS doc \gset
SELECT b->>'type' AS type, coalesce(b->'github'->'link', b->'discord'->'link') AS link,
       coalesce(b->'github'->>'action', b->'discord'->>'action') AS action
  FROM jsonb_array_elements(:'doc'::jsonb->'benefits') b ORDER BY 1;
-- The page with link_redirect_uri: a Connect link per platform to the
-- authorize URL (its & escaped), each with a fresh state bound to the
-- session; without it, no Connect link and no state.
SELECT count(*) AS states_before FROM benefits.oauth_states WHERE customer_id = '12000000-0000-0000-0000-0000000000c1' \gset
SELECT benefits.customer_portal_html(:'a1') AS html \gset
SELECT position('class="connect"' IN :'html') AS connect_links_without_redirect_uri,
       (SELECT count(*) FROM benefits.oauth_states WHERE customer_id = '12000000-0000-0000-0000-0000000000c1') - :states_before AS states_issued;
SELECT benefits.customer_portal_html(:'a1', 'https://app.example/portal', 'https://app.example/oauth/callback?a=1&b=2') AS html \gset
SELECT regexp_replace(m[1], 'state=[A-Za-z0-9_-]{43}$', 'state=<state>') AS connect_href, m[2] AS label
  FROM regexp_matches(:'html', '<a class="connect" href="([^"]*)">([^<]*)</a>', 'g') m ORDER BY 2;
SELECT s.platform, s.redirect_uri, s.session_id = (SELECT cs.id FROM benefits.customer_sessions cs
                                                    WHERE cs.token_hash = sha256(convert_to(:'a1', 'UTF8'))) AS bound_to_session
  FROM regexp_matches(:'html', '<a class="connect" href="[^"]*state=([A-Za-z0-9_-]{43})">', 'g') m
  JOIN benefits.oauth_states s ON s.state_hash = pg_temp.state_hash(m[1]) ORDER BY 1 DESC;
-- A bad link_redirect_uri is refused as by portal_link_url.
SELECT pg_temp.try(format('SELECT benefits.customer_portal_html(%L, NULL, %L)', :'a1', 'http://app.example/cb')) AS bad_redirect;
-- A platform without a client id gets no Connect link (the page still opens).
RESET benefits.discord_oauth_client_id;
SELECT benefits.customer_portal_html(:'a1', NULL, 'https://app.example/cb') AS html \gset
SELECT m[1] AS connect_links FROM regexp_matches(:'html', '<a class="connect" href="[^"]*">([^<]*)</a>', 'g') m ORDER BY 1;
SET benefits.discord_oauth_client_id = '1200000000000000001';

-- Pending: the document says so, the page says it is connecting (no link).
SELECT pg_temp.callback_job(:'a1', 'github', 'page-code') AS page_job \gset
SELECT b->'github'->'link' AS link FROM jsonb_array_elements(benefits.customer_portal(:'a1')->'benefits') b
 WHERE b->>'type' = 'github_repository';
SELECT benefits.customer_portal_html(:'a1', 'https://app.example/portal', 'https://app.example/cb') AS html \gset
SELECT position('Connecting your GitHub account' IN :'html') > 0 AS connecting,
       (SELECT array_agg(m[1] ORDER BY m[1]) FROM regexp_matches(:'html', '<a class="connect" href="[^"]*">([^<]*)</a>', 'g') m) AS connect_links;

-- Failed, with an error text that is hostile HTML: the document carries it
-- as text, the page escapes it, with the Connect link again.
SELECT pg_temp.record(:page_job, benefits.oauth_code_answer(:page_job, 401, '{}')) ->> 'outcome' AS outcome;
UPDATE benefits.account_links SET error = '<script>alert("x")</script> & ''quoted'''
 WHERE customer_id = '12000000-0000-0000-0000-0000000000c1' AND platform = 'github';
SELECT b->'github'->'link' AS link FROM jsonb_array_elements(benefits.customer_portal(:'a1')->'benefits') b
 WHERE b->>'type' = 'github_repository';
SELECT benefits.customer_portal_html(:'a1', 'https://app.example/portal', 'https://app.example/cb?q=''x''') AS html \gset
SELECT substring(:'html' FROM '<p class="status bad">[^\n]*</p>') AS error_line,
       position('<script>alert' IN :'html') = 0 AS no_raw_script,
       (SELECT array_agg(m[1] ORDER BY m[1]) FROM regexp_matches(:'html', '<a class="connect" href="[^"]*">([^<]*)</a>', 'g') m) AS connect_links;
-- The redirect URI reaches the page only percent-encoded inside the
-- authorize URL: its quote never appears raw in the href.
SELECT regexp_replace(substring(:'html' FROM '<a class="connect" href="([^"]*)">Connect GitHub'),
                      'state=[A-Za-z0-9_-]{43}$', 'state=<state>') AS connect_href;

-- Linked (with a hostile Discord name): the page names the account escaped
-- and, with action_url, a Disconnect form posting action=portal_unlink_account
-- and the platform to action_url (escaped); without action_url, no form.
SELECT benefits.link_account('12000000-0000-0000-0000-0000000000c1', 'discord', '120000000000000903', '<b>nelly</b>&co', 'dc-access-3');
UPDATE benefits.grants SET state = 'active' WHERE customer_id = '12000000-0000-0000-0000-0000000000c1';
SELECT b->'discord'->'link' AS link, b->'discord'->'account'->>'username' AS username
  FROM jsonb_array_elements(benefits.customer_portal(:'a1')->'benefits') b WHERE b->>'type' = 'discord';
SELECT benefits.customer_portal_html(:'a1', 'https://app.example/portal?x=1&y="><script>', 'https://app.example/cb') AS html \gset
SELECT substring(:'html' FROM '<form class="account" method="post" action="[^"]*"><input type="hidden" name="action" value="portal_unlink_account"><input type="hidden" name="platform" value="[a-z]*"><button type="submit">[^<]*</button></form>') AS disconnect_form;
SELECT substring(:'html' FROM 'Access granted to [^<]*') AS granted_to,
       position('<b>nelly' IN :'html') = 0 AS no_raw_name,
       position('"><script>' IN :'html') = 0 AS no_raw_action_url;
SELECT benefits.customer_portal_html(:'a1', NULL, 'https://app.example/cb') AS html \gset
SELECT position('portal_unlink_account' IN :'html') AS disconnect_without_action_url;

--
-- Privileges
--
\set VERBOSITY terse
DROP ROLE IF EXISTS regress_link_public;
DROP ROLE IF EXISTS regress_link_app;
DROP ROLE IF EXISTS regress_link_admin;
CREATE ROLE regress_link_public NOLOGIN IN ROLE benefits_public;
CREATE ROLE regress_link_app NOLOGIN IN ROLE benefits_app;
CREATE ROLE regress_link_admin NOLOGIN IN ROLE benefits_admin;

-- benefits_public (the customer's browser, through the application's
-- public role) can run the whole portal flow: the authorize URL, the
-- callback, the status and unlinking...
SET ROLE regress_link_public;
SELECT pg_temp.state_of(benefits.portal_link_url(:'b1', 'discord', 'https://app.example/cb')) AS pub_state \gset
SELECT benefits.portal_link_callback(:'b1', :'pub_state', 'public-code', 'discord') AS outcome;
SELECT * FROM benefits.portal_link_status(:'b1');
SELECT benefits.portal_unlink_account(:'b1', 'github') AS unlinked;
SELECT position('Connect' IN benefits.customer_portal_html(:'b1', 'https://app.example/portal', 'https://app.example/cb')) > 0 AS page_opens;
-- ... and reads no table of it.
SELECT t AS table_name, pg_temp.try('SELECT count(*) FROM benefits.' || t) AS result
  FROM unnest(ARRAY['oauth_states', 'account_links', 'oauth_exchanges', 'customer_accounts', 'outbox',
                    'customer_sessions']) t;
SELECT pg_temp.try(format('SELECT * FROM benefits.account_link_status(%L)', '12000000-0000-0000-0000-0000000000c2')) AS account_link_status,
       pg_temp.try(format('SELECT benefits.link_account(%L, %L, %L)', '12000000-0000-0000-0000-0000000000c2', 'discord', '1')) AS link_account,
       pg_temp.try('SHOW benefits.github_oauth_client_id') AS show_client_id;
RESET ROLE;
-- Over the schema: what benefits_public may read or write of these tables
-- (nothing), and which link functions it may execute.
SELECT c.relname FROM pg_class c
 WHERE c.relnamespace = 'benefits'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'S', 'p')
   AND (has_table_privilege('regress_link_public', c.oid, 'SELECT, INSERT, UPDATE, DELETE')
        OR has_any_column_privilege('regress_link_public', c.oid, 'SELECT, INSERT, UPDATE'));
SELECT p.oid::regprocedure AS function, has_function_privilege('regress_link_public', p.oid, 'EXECUTE') AS public_may,
       has_function_privilege('regress_link_app', p.oid, 'EXECUTE') AS app_may,
       has_function_privilege('regress_link_admin', p.oid, 'EXECUTE') AS admin_may
  FROM pg_proc p
 WHERE p.pronamespace = 'benefits'::regnamespace
   AND (p.proname LIKE '%link%' OR p.proname LIKE 'oauth%' OR p.proname IN ('discord_refresh_answer', 'job_credentials'))
 ORDER BY 1::text;

-- benefits_app reads the links (account_links) and the accounts without
-- their tokens; not the states, not the exchanges' tokens.
SET ROLE regress_link_app;
SELECT platform, job_id IS NOT NULL AS has_job, error IS NOT NULL AS has_error
  FROM benefits.account_links WHERE customer_id = '12000000-0000-0000-0000-0000000000c1' ORDER BY 1 DESC;
SELECT platform, account_id, username, token_expires_at, scopes
  FROM benefits.customer_accounts WHERE customer_id = '12000000-0000-0000-0000-0000000000c1' ORDER BY 1 DESC;
SELECT q AS query, pg_temp.try(q) AS result FROM unnest(ARRAY[
    'SELECT count(*) FROM benefits.oauth_states',
    'SELECT count(*) FROM benefits.oauth_exchanges',
    'SELECT access_token FROM benefits.customer_accounts',
    'SELECT refresh_token FROM benefits.customer_accounts',
    'SELECT count(*) FROM benefits.customer_accounts a WHERE a.access_token IS NOT NULL',
    'SELECT a FROM benefits.customer_accounts a',
    'UPDATE benefits.customer_accounts SET access_token = ''x''',
    'INSERT INTO benefits.account_links (customer_id, platform) VALUES (''12000000-0000-0000-0000-0000000000c2'', ''github'')',
    'SHOW benefits.discord_oauth_client_secret',
    'SELECT * FROM benefits.job_credentials(ARRAY[1]::bigint[])']) q;
-- The status function the application is given works for it.
SELECT * FROM benefits.account_link_status('12000000-0000-0000-0000-0000000000c1');
RESET ROLE;

-- benefits_admin cannot run the worker's answer functions (they write links
-- and tokens) nor read the tokens they hand out.
SET ROLE regress_link_admin;
SELECT q AS query, pg_temp.try(q) AS result FROM unnest(ARRAY[
    'SELECT benefits.oauth_code_answer(1, 200, ''{}'')',
    'SELECT benefits.oauth_account_answer(1, 200, ''{}'')',
    'SELECT benefits.discord_refresh_answer(1, 200, ''{}'')',
    'SELECT benefits.oauth_link_failed(1, ''12000000-0000-0000-0000-0000000000c1'', ''github'', ''x'')',
    'SELECT * FROM benefits.oauth_token_response(''{}'')',
    'SELECT * FROM benefits.job_credentials(ARRAY[1]::bigint[])',
    'SELECT count(*) FROM benefits.oauth_states',
    'SELECT count(*) FROM benefits.oauth_exchanges',
    'SELECT access_token FROM benefits.customer_accounts',
    'SELECT count(*) FROM benefits.account_links']) q;
RESET ROLE;
\set VERBOSITY default

DROP ROLE regress_link_public;
DROP ROLE regress_link_app;
DROP ROLE regress_link_admin;

-- Two customers who linked the same GitHub account share its access: the
-- first one's unlink writes no removal while the other's grant still holds
-- it; the last holder's revoke removes it.
INSERT INTO benefits.customers (id, organization_id, external_id) VALUES
    ('12000000-0000-0000-0000-0000000000c3', '12000000-0000-0000-0000-0000000000a1', 'carl'),
    ('12000000-0000-0000-0000-0000000000c4', '12000000-0000-0000-0000-0000000000a1', 'dora');
SELECT benefits.link_account(c, 'github', '777', 'shared-cat')
  FROM unnest(ARRAY['12000000-0000-0000-0000-0000000000c3', '12000000-0000-0000-0000-0000000000c4']::uuid[]) c;
SELECT state, properties->>'username' AS username
  FROM unnest(ARRAY['12000000-0000-0000-0000-0000000000c3', '12000000-0000-0000-0000-0000000000c4']::uuid[]) c,
       benefits.grant_benefit(c, :'github');
SELECT benefits.create_customer_session('12000000-0000-0000-0000-0000000000a1', 'carl') AS c3 \gset
CALL link_mark();
SELECT benefits.portal_unlink_account(:'c3', 'github') AS carl_unlinked;
SELECT kind, action, payload FROM link_jobs;
SELECT benefits.revoke_benefit('12000000-0000-0000-0000-0000000000c4', :'github');
SELECT kind, action, payload FROM link_jobs;

-- Clean up: the organization and everything of it (customers, sessions,
-- states, links, accounts, jobs).
DROP VIEW link_jobs;
DROP TABLE link_mark;
DROP PROCEDURE link_mark();
DELETE FROM benefits.outbox WHERE organization_id = '12000000-0000-0000-0000-0000000000a1';
DELETE FROM benefits.organizations WHERE id = '12000000-0000-0000-0000-0000000000a1';
SELECT (SELECT count(*) FROM benefits.oauth_states) AS states, (SELECT count(*) FROM benefits.account_links) AS links,
       (SELECT count(*) FROM benefits.oauth_exchanges) AS exchanges,
       (SELECT count(*) FROM benefits.customer_accounts) AS accounts;
