-- The delivery worker's SQL surface: Standard Webhooks signatures, endpoint
-- secrets and validation, endpoint disabling, dead jobs and their retry.

-- The Standard Webhooks specification's test vector.
SELECT benefits.sign_webhook('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek',
                             1614265330, '{"test": 2432232314}')
       = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=' AS spec_vector;
-- Any change of id, timestamp or body changes the signature.
SELECT benefits.sign_webhook('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek',
                             1614265331, '{"test": 2432232314}')
       = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=' AS other_timestamp;
SELECT benefits.sign_webhook('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek',
                             1614265330, '{"test": 2432232315}')
       = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=' AS other_body;
-- A secret that is not base64 is refused.
SELECT benefits.sign_webhook('whsec_not*base64', 'msg_1', 1, '{}');

-- Generated secrets: whsec_ + base64 of 24 random bytes, never the same twice.
SELECT s ~ '^whsec_[A-Za-z0-9+/]{32}$' AS secret_format FROM benefits.generate_webhook_secret() s;
SELECT count(DISTINCT benefits.generate_webhook_secret()) AS distinct_secrets FROM generate_series(1, 100);

INSERT INTO benefits.organizations (name) VALUES ('worker test') RETURNING id AS org \gset

-- Endpoints: valid URL and event names; events are de-duplicated and sorted.
SELECT url, events, enabled, consecutive_failures, secret ~ '^whsec_' AS has_secret
  FROM benefits.create_webhook_endpoint(:'org', 'https://hooks.example.com/benefits',
                                        ARRAY['benefit_grant.revoked', 'benefit_grant.created', 'benefit_grant.created']);
-- Refused: each with SQLSTATE 22023 and the field named.
\set VERBOSITY default
SELECT benefits.create_webhook_endpoint(NULL, 'https://hooks.example.com/', ARRAY['benefit.created']);
SELECT benefits.create_webhook_endpoint('00000000-0000-0000-0000-000000000000', 'https://hooks.example.com/', ARRAY['benefit.created']);
SELECT benefits.create_webhook_endpoint(:'org', NULL, ARRAY['benefit.created']);
SELECT benefits.create_webhook_endpoint(:'org', 'ftp://hooks.example.com/', ARRAY['benefit.created']);
SELECT benefits.create_webhook_endpoint(:'org', 'hooks.example.com/path', ARRAY['benefit.created']);
SELECT benefits.create_webhook_endpoint(:'org', 'https://hooks.example.com/a b', ARRAY['benefit.created']);
SELECT benefits.create_webhook_endpoint(:'org', 'https://hooks.example.com/', ARRAY[]::text[]);
SELECT benefits.create_webhook_endpoint(:'org', 'https://hooks.example.com/', ARRAY['benefit.created', 'benefit.exploded']);
SELECT benefits.create_webhook_endpoint(:'org', 'https://hooks.example.com/', ARRAY['benefit.created', NULL]);
-- Literal private addresses are refused unless benefits.allow_private_network.
SET benefits.allow_private_network = off;
SELECT benefits.create_webhook_endpoint(:'org', 'http://127.0.0.1:8080/hook', ARRAY['benefit.created']);
SELECT benefits.create_webhook_endpoint(:'org', 'http://[::1]/hook', ARRAY['benefit.created']);
SELECT benefits.create_webhook_endpoint(:'org', 'http://10.1.2.3/hook', ARRAY['benefit.created']);
SELECT benefits.create_webhook_endpoint(:'org', 'http://169.254.169.254/latest/meta-data', ARRAY['benefit.created']);
SELECT benefits.create_webhook_endpoint(:'org', 'http://localhost/hook', ARRAY['benefit.created']);
SELECT url FROM benefits.create_webhook_endpoint(:'org', 'http://8.8.8.8/hook', ARRAY['benefit.created']);
-- The address classifier: reserved IPv4 ranges, and IPv6 forms embedding
-- an IPv4 address (mapped, NAT64, 6to4) are judged by that address.
CREATE FUNCTION pg_temp.url_refused(u text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM benefits.check_webhook_url(u);
    RETURN false;
EXCEPTION WHEN invalid_parameter_value THEN
    RETURN true;
END $$;
SELECT u AS url, pg_temp.url_refused(u) AS refused FROM (VALUES
    ('http://0.1.2.3/'), ('http://100.64.0.1/'), ('http://100.127.255.254/'), ('http://100.128.0.1/'),
    ('http://192.0.2.1/'), ('http://198.51.100.7/'), ('http://203.0.113.9/'), ('http://203.0.114.1/'),
    ('http://198.18.0.1/'), ('http://198.19.255.1/'), ('http://198.20.0.1/'), ('http://224.0.0.251/'),
    ('http://255.255.255.255/'), ('http://1.1.1.1/'),
    ('http://[::ffff:10.0.0.1]/'), ('http://[64:ff9b::7f00:1]/'), ('http://[64:ff9b::c000:201]/'),
    ('http://[64:ff9b::808:808]/'), ('http://[64:ff9b:1::1]/'), ('http://[2002:7f00:1::1]/'),
    ('http://[2002:c0a8:101::1]/'), ('http://[2002:808:808::1]/'), ('http://[2001:db8::1]/'),
    ('http://[ff02::1]/'), ('http://[2606:4700::1111]/')) v(u);
-- IPv4-compatible (::/96, with :: and ::1) and IPv4-translated
-- (::ffff:0:0:0/96) addresses are judged by the IPv4 address they carry too.
SELECT u AS url, pg_temp.url_refused(u) AS refused FROM (VALUES
    ('http://[::]/'), ('http://[::1]/'), ('http://[::7f00:1]/'), ('http://[::127.0.0.1]/'),
    ('http://[::a9fe:a9fe]/'), ('http://[::808:808]/'), ('http://[::ffff:0:7f00:1]/'),
    ('http://[::ffff:0:10.0.0.1]/'), ('http://[::ffff:0:a9fe:a9fe]/'), ('http://[::ffff:0:808:808]/')) v(u);
RESET benefits.allow_private_network;
SELECT url FROM benefits.create_webhook_endpoint(:'org', 'http://127.0.0.1:8080/hook', ARRAY['benefit.created']);
SELECT count(*) AS endpoints FROM benefits.webhook_endpoints WHERE organization_id = :'org';
\set VERBOSITY terse

-- Secrets are readable only by the owner role.
SET ROLE benefits_app;
SELECT secret FROM benefits.webhook_endpoints;
SET ROLE benefits_public;
SELECT secret FROM benefits.webhook_endpoints;
SELECT benefits.sign_webhook('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'm', 1, 'b');
SET ROLE benefits_admin;
SELECT count(secret) AS admin_reads_secrets FROM benefits.webhook_endpoints WHERE organization_id = :'org';
RESET ROLE;

SELECT id AS ep FROM benefits.webhook_endpoints
 WHERE organization_id = :'org' AND url = 'https://hooks.example.com/benefits' \gset

-- Consecutive failures disable an endpoint; its pending deliveries die with
-- the reason, and a webhook_endpoint.disabled event is recorded.  (In one
-- transaction, so the regression database's worker never sees these rows.)
BEGIN;
INSERT INTO benefits.outbox (organization_id, kind, endpoint_id, event_type, message_id, action, payload)
SELECT :'org', 'webhook', :'ep', 'benefit_grant.created', 'msg_regress_' || g, 'deliver', '{"type": "x"}'
  FROM generate_series(1, 3) g;
SELECT benefits.webhook_endpoint_failed(:'ep', false, 'webhook: HTTP 500', 3) AS disabled_1;
SELECT benefits.webhook_endpoint_failed(:'ep', false, 'webhook: HTTP 500', 3) AS disabled_2;
SELECT enabled, consecutive_failures FROM benefits.webhook_endpoints WHERE id = :'ep';
SELECT benefits.webhook_endpoint_failed(:'ep', false, 'webhook: HTTP 503', 3) AS disabled_3;
SELECT enabled, consecutive_failures, disabled_reason FROM benefits.webhook_endpoints WHERE id = :'ep';
SELECT count(*) AS dead, min(last_error) AS last_error FROM benefits.dead_jobs WHERE endpoint_id = :'ep';
SELECT type, reason FROM benefits.webhook_endpoint_events WHERE endpoint_id = :'ep';
-- A dead delivery to a disabled endpoint cannot be retried until it is enabled.
-- (Job ids vary between runs, so these errors show their SQLSTATE only.)
SELECT id AS dead_id FROM benefits.dead_jobs WHERE endpoint_id = :'ep' ORDER BY id LIMIT 1 \gset
\set VERBOSITY sqlstate
SELECT benefits.retry_job(:dead_id);
\set VERBOSITY terse
ROLLBACK;

-- 410 Gone disables at once.
BEGIN;
SELECT benefits.webhook_endpoint_failed(:'ep', true, 'webhook: HTTP 410', 100) AS disabled_at_once;
SELECT enabled, disabled_reason FROM benefits.webhook_endpoints WHERE id = :'ep';
SELECT benefits.enable_webhook_endpoint(:'ep');
SELECT enabled, consecutive_failures, disabled_reason FROM benefits.webhook_endpoints WHERE id = :'ep';
ROLLBACK;

-- Dead jobs are listed with their last error and can be queued again.
BEGIN;
INSERT INTO benefits.outbox (organization_id, kind, action, payload, state, attempts, last_status, last_error)
VALUES (:'org', 'github', 'add_collaborator', '{"owner": "o", "repo": "r", "username": "u", "permission": "pull"}',
        'dead', 12, 404, 'github add_collaborator: HTTP 404: {"message": "Not Found"}')
RETURNING id AS job \gset
SELECT kind, action, attempts, last_status, last_error FROM benefits.dead_jobs WHERE id = :job;
SELECT benefits.retry_job(:job);
SELECT state, attempts, leased_until IS NULL AS unleased FROM benefits.outbox WHERE id = :job;
SELECT count(*) AS still_dead FROM benefits.dead_jobs WHERE id = :job;
-- Only dead jobs can be retried (55000), and only existing ones (22023).
SAVEPOINT s;
\set VERBOSITY sqlstate
SELECT benefits.retry_job(:job);
\set VERBOSITY terse
ROLLBACK TO s;
SELECT benefits.retry_job(-1);
ROLLBACK;

-- GitHub revoke: the step after listing invitations.
SELECT benefits.github_invitation_step('[{"id": 42, "invitee": {"login": "Octo"}}]', 'octo', false, 1) AS found;
SELECT benefits.github_invitation_step('[{"id": 42, "invitee": {"login": "other"}}]', 'octo', true, 1) AS next_page;
SELECT benefits.github_invitation_step('[]', 'octo', false, 3) AS no_invitation;
SELECT benefits.github_invitation_step('[1, "x", {"invitee": "octo"}, {"id": 7, "invitee": {"login": "octo"}}]', 'octo', false, 1) AS odd_elements;
-- A page that cannot be read gives NULL (the worker lists it again later).
SELECT benefits.github_invitation_step('not json', 'octo', false, 1) IS NULL AS bad_body;
SELECT benefits.github_invitation_step('{"message": "Server Error"}', 'octo', true, 1) IS NULL AS not_an_array;
SELECT benefits.github_invitation_step('[{"id": 1, "invitee": {"login": "a\u0000"}}]', 'octo', false, 1) IS NULL AS nul_escape;

-- Provider jobs are ordered by the access they touch (chain_key), whatever
-- their grant; webhooks and incomplete payloads have none.
BEGIN;
INSERT INTO benefits.outbox (organization_id, kind, action, payload) VALUES
  (:'org', 'github', 'add_collaborator', '{"owner": "Acme", "repo": "Engine", "username": "OctoCat", "permission": "pull"}'),
  (:'org', 'github', 'remove_collaborator', '{"owner": "acme", "repo": "engine", "username": "octocat"}'),
  (:'org', 'github', 'remove_collaborator', '{"owner": "acme", "repo": "engine"}'),
  (:'org', 'discord', 'add_member', '{"guild_id": "111", "user_id": "222", "role_ids": ["3"], "customer_id": "x"}'),
  (:'org', 'discord', 'remove_role', '{"guild_id": "111", "user_id": "222", "role_id": "3"}');
SELECT kind, action, chain_key FROM benefits.outbox WHERE organization_id = :'org' AND kind <> 'webhook' ORDER BY id;
ROLLBACK;

-- The outbox wakes the worker through an AFTER INSERT statement trigger.
SELECT tgname, tgtype FROM pg_trigger WHERE tgrelid = 'benefits.outbox'::regclass AND NOT tgisinternal;
