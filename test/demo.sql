-- make demo: what `benefits` does, step by step, on a throwaway cluster.
\set VERBOSITY terse
\pset null '-'
CREATE EXTENSION benefits;
\ir demo_wait.sql

\echo
\echo '== 1. Acme sells "MyApp Pro" with five benefits (catalog functions validate every property in C)'
INSERT INTO benefits.organizations (id, name, email_from, support_email, portal_url)
    VALUES ('0a000000-0000-4000-8000-000000000001', 'Acme Software', 'shop@acme.test', 'support@acme.test',
            'https://app.acme.test/account');
INSERT INTO benefits.products (id, organization_id, name, external_id)
    VALUES ('0b000000-0000-4000-8000-000000000001', '0a000000-0000-4000-8000-000000000001', 'MyApp Pro', 'prod_myapp');
INSERT INTO benefits.meters (id, organization_id, name)
    VALUES ('0e000000-0000-4000-8000-000000000001', '0a000000-0000-4000-8000-000000000001', 'API calls');
SELECT id AS license_benefit FROM benefits.create_benefit('license_keys', '0a000000-0000-4000-8000-000000000001',
    'MyApp license', '{"prefix": "MYAPP", "expires": false, "activations": 2, "limit_usage": false}') \gset
SELECT id AS note_benefit FROM benefits.create_benefit('custom', '0a000000-0000-4000-8000-000000000001',
    'Priority support', '{"note": "Write to **support@acme.test** and mention your key."}') \gset
SELECT id AS github_benefit FROM benefits.create_benefit('github_repository', '0a000000-0000-4000-8000-000000000001',
    'Source access', '{"repository_owner": "acme", "repository_name": "myapp", "permission": "pull"}') \gset
SELECT id AS credits_benefit FROM benefits.create_benefit('custom', '0a000000-0000-4000-8000-000000000001',
    'API credits', '{"meter_id": "0e000000-0000-4000-8000-000000000001", "credits": 1000}') \gset
SELECT id AS pdf_benefit FROM benefits.create_benefit('feature_flag', '0a000000-0000-4000-8000-000000000001',
    'Export to PDF', '{}', metadata => '{"feature": "export_pdf"}') \gset
\o /dev/null
SELECT benefits.update_product_benefits('0b000000-0000-4000-8000-000000000001',
    ARRAY[:'license_benefit', :'note_benefit', :'github_benefit', :'credits_benefit', :'pdf_benefit']::uuid[]);
\o
SELECT pb.position, b.type, b.description, b.properties, nullif(b.metadata, '{}') AS metadata
  FROM benefits.product_benefits pb JOIN benefits.benefits b ON b.id = pb.benefit_id ORDER BY pb.position;

\echo '   A bad property is refused, naming the JSON path, and nothing is written:'
\set ON_ERROR_STOP 0
SELECT benefits.create_benefit('license_keys', '0a000000-0000-4000-8000-000000000001', 'Broken', '{"activations": {"limit": 0}}');
\set ON_ERROR_STOP 1

\echo
\echo '== 2. A webhook endpoint receives Standard Webhooks signed events'
SELECT id AS endpoint FROM benefits.create_webhook_endpoint('0a000000-0000-4000-8000-000000000001',
    :'mock' || '/hooks/acme', ARRAY['benefit_grant.created', 'benefit_grant.updated', 'benefit_grant.revoked']) \gset
SELECT url, left(secret, 6) || '…' AS secret, events FROM benefits.webhook_endpoints;
-- The receiver's copy of the secret, for demo.sh to check signatures with.
\pset tuples_only on
\pset format unaligned
\o :secretfile
SELECT secret FROM benefits.webhook_endpoints;
\o
\pset tuples_only off
\pset format aligned

\echo
\echo '== 3. Ada subscribes: the application inserts one subscription row; grants commit with it'
INSERT INTO benefits.customers (id, organization_id, external_id, email, name)
    VALUES ('0d000000-0000-4000-8000-000000000001', '0a000000-0000-4000-8000-000000000001', 'user_42', 'ada@example.com', 'Ada');
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status, current_period_end)
    VALUES ('05000000-0000-4000-8000-000000000001', '0d000000-0000-4000-8000-000000000001',
            '0b000000-0000-4000-8000-000000000001', 'active', now() + interval '1 month');
SELECT b.description AS benefit, g.state, g.error->>'message' AS error
  FROM benefits.grants g JOIN benefits.product_benefits pb ON pb.benefit_id = g.benefit_id
  JOIN benefits.benefits b ON b.id = g.benefit_id ORDER BY pb.position;
SELECT key AS ada_key FROM benefits.license_keys \gset
SELECT key, status, limit_activations FROM benefits.license_keys;
SELECT benefits.meter_balance('0d000000-0000-4000-8000-000000000001', '0e000000-0000-4000-8000-000000000001') AS api_credits;
\echo '   MyApp gates its PDF export on the feature flag (usable in a Row-Level Security policy too):'
SELECT benefits.has_feature('0d000000-0000-4000-8000-000000000001', 'export_pdf') AS ada_may_export_pdf,
       array(SELECT benefits.customer_features('0d000000-0000-4000-8000-000000000001')) AS ada_features;

\echo
\echo '== 4. MyApp checks the key: validate, then activate up to the limit of 2 and past it'
SELECT valid, code, usage, limit_activations
  FROM benefits.validate_license(:'ada_key', '0a000000-0000-4000-8000-000000000001');
SELECT d.label, a.ok, a.code FROM (VALUES (1, 'laptop'), (2, 'desktop'), (3, 'phone')) AS d(n, label),
       LATERAL benefits.activate_license(:'ada_key', '0a000000-0000-4000-8000-000000000001', d.label) a ORDER BY d.n;
\echo '   Validation is read-only: it works in a READ ONLY transaction (and on a hot standby).'
BEGIN READ ONLY;
SELECT valid, code FROM benefits.validate_license(lower(' ' || :'ada_key' || ' '), '0a000000-0000-4000-8000-000000000001');
COMMIT;
\echo '   A mistyped key is answered not_found by its check symbol, without a lookup:'
SELECT valid, code FROM benefits.validate_license(
    overlay(:'ada_key' placing (CASE WHEN right(:'ada_key', 1) = 'A' THEN 'B' ELSE 'A' END) from length(:'ada_key') for 1),
    '0a000000-0000-4000-8000-000000000001');
\echo '   Validation counters are kept in shared memory and flushed by the worker:'
SELECT pg_temp.wait_until($$SELECT validations >= 2 FROM benefits.license_keys$$) AS flushed;
SELECT validations, last_validated_at IS NOT NULL AS seen FROM benefits.license_keys;
\echo '   A hot standby streaming from this server validates it 3 times; its validation forwarder'
\echo '   sends the counts here (over the standby''s primary_conninfo, in batches applied once):'
\getenv socket_dir PGHOST
\getenv primary_port PGPORT
\getenv standby_port BENEFITS_STANDBY_PORT
SELECT validations AS before_standby, pg_current_wal_lsn() AS lsn FROM benefits.license_keys \gset
SELECT pg_temp.wait_until(format('SELECT coalesce(bool_or(replay_lsn >= %L), false) FROM pg_stat_replication', :'lsn'))
       AS standby_caught_up;
\connect postgres postgres :socket_dir :standby_port
SELECT pg_is_in_recovery() AS on_standby, count(*) FILTER (WHERE v.valid) AS valid
  FROM generate_series(1, 3) g,
       LATERAL benefits.validate_license(:'ada_key' || repeat(' ', g), '0a000000-0000-4000-8000-000000000001') v;
\connect postgres postgres :socket_dir :primary_port
\ir demo_wait.sql
SELECT pg_temp.wait_until(format('SELECT validations >= %s FROM benefits.license_keys', :before_standby + 3))
       AS forwarded;
SELECT validations - :before_standby AS from_the_standby FROM benefits.license_keys;

\echo
\echo '== 4b. Machines: fingerprints, deactivation history, heartbeats; a signed offline license'
\echo '   The desktop is deactivated: its row stays as history and its seat is free.'
SELECT benefits.deactivate_license(:'ada_key', '0a000000-0000-4000-8000-000000000001',
    (SELECT id FROM benefits.license_key_activations WHERE label = 'desktop')) AS desktop_deactivated;
\echo '   The studio PC activates with its fingerprint; a reinstall gets the same activation, no new seat:'
SELECT label, code, activations
  FROM benefits.activate_license(:'ada_key', '0a000000-0000-4000-8000-000000000001', 'studio',
                                 fingerprint => 'fp-7f3a-studio');
SELECT id AS studio_act FROM benefits.license_key_activations WHERE fingerprint = 'fp-7f3a-studio' \gset
SELECT label, code, activations, activation_id = :'studio_act' AS same_activation
  FROM benefits.activate_license(:'ada_key', '0a000000-0000-4000-8000-000000000001', 'studio (reinstalled)',
                                 fingerprint => 'fp-7f3a-studio');
SELECT valid, code, activation_id = :'studio_act' AS studio
  FROM benefits.validate_license(:'ada_key', '0a000000-0000-4000-8000-000000000001', fingerprint => 'fp-7f3a-studio');
SELECT label, fingerprint, deactivated_at IS NOT NULL AS deactivated
  FROM benefits.license_key_activations ORDER BY created_at;
\echo '   Acme now asks every machine for a heartbeat each 15 minutes; the endpoint subscribes to releases.'
\o /dev/null
SELECT benefits.update_benefit(:'license_benefit', properties =>
    '{"prefix": "MYAPP", "expires": false, "activations": {"limit": 2, "heartbeat": "15 minutes"}, "limit_usage": false}');
SELECT benefits.update_webhook_endpoint(:'endpoint', events => ARRAY['benefit_grant.created', 'benefit_grant.updated',
                                        'benefit_grant.revoked', 'license_key.activation_released']);
\o
SELECT valid, code FROM benefits.heartbeat_license(:'ada_key', '0a000000-0000-4000-8000-000000000001', :'studio_act');
\echo '   The laptop stays silent for 31 minutes (simulated): run_maintenance releases it, with an event.'
UPDATE benefits.license_key_activations SET created_at = now() - interval '31 minutes' WHERE label = 'laptop';
SELECT benefits.run_maintenance() >= 0 AS maintenance_ran;
SELECT label, deactivated_at IS NOT NULL AS released FROM benefits.license_key_activations
 WHERE deactivated_at IS NULL OR label = 'laptop' ORDER BY created_at;
SELECT event_type, payload->'data'->>'label' AS label, payload->'data'->>'heartbeat' AS heartbeat
  FROM benefits.outbox WHERE event_type = 'license_key.activation_released';
\echo '   An offline license file for the studio PC, valid 7 days, signed with Acme''s Ed25519 key:'
\pset tuples_only on
\pset format unaligned
\o :licensefile
SELECT benefits.checkout_license(:'ada_key', '0a000000-0000-4000-8000-000000000001', :'studio_act', ttl => '7 days');
\o :keysfile
SELECT json_object_agg(kid, public_key) FROM benefits.license_public_keys('0a000000-0000-4000-8000-000000000001');
\o
\pset tuples_only off
\pset format aligned
SELECT kid, public_key, retired_at FROM benefits.license_public_keys('0a000000-0000-4000-8000-000000000001');
SELECT split_part(f, E'\n', 1) AS first_line, length(f) AS bytes, array_length(string_to_array(rtrim(f, E'\n'), E'\n'), 1) AS lines
  FROM benefits.checkout_license(:'ada_key', '0a000000-0000-4000-8000-000000000001', :'studio_act', ttl => '7 days') AS f;
\echo '   A key that does not validate gets no file (NULL), whatever the reason:'
SELECT benefits.checkout_license('MYAPP-NOT-A-REAL-KEY', '0a000000-0000-4000-8000-000000000001') AS unknown_key;

\echo
\echo '== 5. GitHub access waits for a linked account: Ada connects GitHub from the portal (OAuth)'
SELECT benefits.create_customer_session('0a000000-0000-4000-8000-000000000001', 'user_42') AS token \gset
SELECT platform, status FROM benefits.portal_link_status(:'token');
-- test/demo_link.py plays the browser and the application's redirect handler.
\setenv BENEFITS_TOKEN :token
\! /usr/bin/python3 "$BENEFITS_ROOT/test/demo_link.py"
SELECT pg_temp.wait_until(format($$SELECT state = 'active' FROM benefits.grants WHERE benefit_id = %L$$, :'github_benefit')) AS delivered;
SELECT platform, status, username FROM benefits.portal_link_status(:'token') WHERE platform = 'github';
SELECT kind, action, coalesce(payload->>'username', payload->>'platform') AS "for", state, attempts
  FROM benefits.outbox WHERE kind IN ('oauth', 'github') ORDER BY id;
\echo '   The code left the outbox once used; the tokens are readable by the extension''s owner only.'

\echo
\echo '== 6. Usage draws down the credits'
SELECT benefits.record_usage('0d000000-0000-4000-8000-000000000001', '0e000000-0000-4000-8000-000000000001', 120) AS balance_after_120_calls;
\echo '   A usage event retried with its idempotency key is charged once; a late event keeps its own time:'
SELECT benefits.record_usage('0d000000-0000-4000-8000-000000000001', '0e000000-0000-4000-8000-000000000001', 30, 'evt_1') AS first_try,
       benefits.record_usage('0d000000-0000-4000-8000-000000000001', '0e000000-0000-4000-8000-000000000001', 30, 'evt_1') AS retried,
       benefits.record_usage('0d000000-0000-4000-8000-000000000001', '0e000000-0000-4000-8000-000000000001', 50, 'evt_0',
                             now() - interval '2 days') AS late_event;
\echo '   Ada buys 500 more calls (adjust_credits: a credit lot of its own); the shop retries the call, nothing is added twice:'
SELECT benefits.adjust_credits('0d000000-0000-4000-8000-000000000001', '0e000000-0000-4000-8000-000000000001',
                               500, 'order 1001: 500 calls', 'order_1001') AS after_top_up,
       benefits.adjust_credits('0d000000-0000-4000-8000-000000000001', '0e000000-0000-4000-8000-000000000001',
                               500, 'order 1001: 500 calls', 'order_1001') AS retried;
\echo '   Her credit lots, in the order usage takes them: the subscription''s credits expire at its period end, so first:'
SELECT source, units, remaining, expires_at::date AS expires FROM benefits.meter_lots ORDER BY expires_at NULLS LAST, id;
\echo '   The renewal (no rollover) expires what is left of last period''s credits only; the top-up stays:'
INSERT INTO benefits.orders (customer_id, product_id, subscription_id, billing_reason)
    VALUES ('0d000000-0000-4000-8000-000000000001', '0b000000-0000-4000-8000-000000000001',
            '05000000-0000-4000-8000-000000000001', 'subscription_cycle');
SELECT reason, units, balance_after, note FROM benefits.meter_credits ORDER BY id;
\echo '   Credited and used per day, for charts (meter_usage_history; the portal draws the last 30 days):'
SELECT bucket_start::date AS day, credited, used
  FROM benefits.meter_usage_history('0d000000-0000-4000-8000-000000000001', '0e000000-0000-4000-8000-000000000001',
                                    date_trunc('day', now()) - interval '2 days', date_trunc('day', now()) + interval '1 day');

\echo
\echo '== 7. Ada opens the customer portal with a session token (only its hash is stored)'
SELECT left(:'token', 4) || '…' AS token, count(*) AS stored_sessions FROM benefits.customer_sessions;
-- The application passes the token as a bind parameter (test/demo_portal.py, run by Debian's python3, which has psycopg).
\! /usr/bin/python3 "$BENEFITS_ROOT/test/demo_portal.py"

\echo
\echo '== 8. Ada cancels and the period ends: every benefit is revoked in that transaction'
UPDATE benefits.subscriptions SET status = 'canceled', ended_at = now(), current_period_end = now()
 WHERE id = '05000000-0000-4000-8000-000000000001';
SELECT b.description AS benefit, g.state FROM benefits.grants g
  JOIN benefits.product_benefits pb ON pb.benefit_id = g.benefit_id
  JOIN benefits.benefits b ON b.id = g.benefit_id ORDER BY pb.position;
SELECT valid, code FROM benefits.validate_license(:'ada_key', '0a000000-0000-4000-8000-000000000001');
SELECT benefits.meter_balance('0d000000-0000-4000-8000-000000000001', '0e000000-0000-4000-8000-000000000001') AS api_credits;
SELECT benefits.has_feature('0d000000-0000-4000-8000-000000000001', 'export_pdf') AS ada_may_export_pdf;
SELECT pg_temp.wait_until($$SELECT count(*) = 0 FROM benefits.outbox WHERE state <> 'done'$$) AS outbox_drained;

\echo
\echo '== 9. A backfill: customers migrated from another system get their keys in one call'
INSERT INTO benefits.customers (organization_id, external_id, email)
    SELECT '0a000000-0000-4000-8000-000000000001', 'legacy_' || i, 'legacy' || i || '@example.com'
      FROM generate_series(1, 1000) i;
SELECT benefits.grant_benefit_bulk(array_agg(id), :'license_benefit') AS keys_issued
  FROM benefits.customers WHERE external_id LIKE 'legacy_%';
SELECT count(*) AS legacy_keys, count(DISTINCT key) AS distinct_keys
  FROM benefits.license_keys k JOIN benefits.customers c ON c.id = k.customer_id
 WHERE c.external_id LIKE 'legacy_%' AND k.status = 'granted';
SELECT pg_temp.wait_until($$SELECT count(*) = 0 FROM benefits.outbox WHERE state <> 'done'$$) AS their_events_delivered;

\echo
\echo '== 10. An import: one UPDATE activates 500 subscriptions; at the end of the statement each'
\echo '       benefit is granted to all of them in one set-based statement (the DEBUG line says so)'
INSERT INTO benefits.subscriptions (customer_id, product_id, status)
    SELECT id, '0b000000-0000-4000-8000-000000000001', 'incomplete' FROM benefits.customers
     WHERE external_id LIKE 'legacy_%' ORDER BY external_id LIMIT 500;
SET client_min_messages = debug1;
UPDATE benefits.subscriptions SET status = 'active' WHERE status = 'incomplete';
RESET client_min_messages;
SELECT b.description AS benefit, g.state, g.error->>'action' AS waiting_for, count(*) AS grants
  FROM benefits.grants g JOIN benefits.subscriptions s ON s.id = g.subscription_id
  JOIN benefits.customers c ON c.id = s.customer_id JOIN benefits.benefits b ON b.id = g.benefit_id
  JOIN benefits.product_benefits pb ON pb.benefit_id = g.benefit_id AND pb.product_id = s.product_id
 WHERE c.external_id LIKE 'legacy_%' GROUP BY pb.position, 1, 2, 3 ORDER BY pb.position;
SELECT pg_temp.wait_until($$SELECT count(*) = 0 FROM benefits.outbox WHERE state <> 'done'$$) AS their_events_delivered;

\echo
\echo '== 11. Telling customers: every grant above was also an email (one per activation); now a'
\echo '       benefit delivered by hand, a Discord welcome message, and a warning before access ends'
INSERT INTO benefits.products (id, organization_id, name)
    VALUES ('0b000000-0000-4000-8000-000000000002', '0a000000-0000-4000-8000-000000000001', 'Coaching');
SELECT id AS call_benefit FROM benefits.create_benefit('custom', '0a000000-0000-4000-8000-000000000001',
    'Onboarding call', '{"note": "We will book a call with you.", "fulfillment": "manual"}') \gset
SELECT id AS discord_benefit FROM benefits.create_benefit('discord', '0a000000-0000-4000-8000-000000000001',
    'Community', '{"guild_id": "100000000000000111", "roles": [{"role_id": "100000000000000201", "name": "Pro"}],
                   "welcome_channel_id": "100000000000000777", "welcome_message": "Welcome {username}! You are now {roles}."}') \gset
\o /dev/null
SELECT benefits.update_product_benefits('0b000000-0000-4000-8000-000000000002', ARRAY[:'call_benefit', :'discord_benefit']::uuid[]);
INSERT INTO benefits.customers (id, organization_id, external_id, email, name)
    VALUES ('0d000000-0000-4000-8000-000000000002', '0a000000-0000-4000-8000-000000000001', 'user_7', 'grace@example.com', 'Grace');
SELECT benefits.link_account('0d000000-0000-4000-8000-000000000002', 'discord', '700000000000000001', 'grace', 'grace-oauth-token');
\o
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status, current_period_end)
    VALUES ('05000000-0000-4000-8000-000000000002', '0d000000-0000-4000-8000-000000000002',
            '0b000000-0000-4000-8000-000000000002', 'active', now() + interval '1 month');
\echo '   The call waits for the seller (state created), listed for benefits_admin:'
SELECT c.name AS customer, p.benefit_description AS waiting, p.since IS NOT NULL AS since_known
  FROM benefits.pending_fulfillments p JOIN benefits.customers c ON c.id = p.customer_id;
\echo '   The seller books it and completes the grant with a note for the customer:'
SELECT state, properties FROM benefits.complete_fulfillment(
    (SELECT grant_id FROM benefits.pending_fulfillments), 'Booked: Monday 10:00, the invite is in your calendar.');
SELECT count(*) AS still_waiting FROM benefits.pending_fulfillments;
\echo '   The worker adds Grace to the server with her role, then posts the welcome (mentions: her only):'
SELECT pg_temp.wait_until($$SELECT count(*) = 0 FROM benefits.outbox WHERE state <> 'done'$$) AS delivered;
SELECT action, payload->>'content' AS message, state FROM benefits.outbox
 WHERE kind = 'discord' AND payload->>'user_id' = '700000000000000001' ORDER BY id;
\echo '   Grace also buys a yearly key and starter credits; the key will expire in two days and'
\echo '   she uses 45 of her 50 credits (threshold 10): run_maintenance and record_usage tell her'
SELECT id AS yearly_benefit FROM benefits.create_benefit('license_keys', '0a000000-0000-4000-8000-000000000001',
    'Yearly key', '{"prefix": "YEAR", "expires": {"ttl": 1, "timeframe": "year"}}') \gset
SELECT id AS starter_benefit FROM benefits.create_benefit('meter_credits', '0a000000-0000-4000-8000-000000000001',
    'Starter credits', '{"meter_id": "0e000000-0000-4000-8000-000000000001", "units": 50, "low_balance_threshold": 10}') \gset
\o /dev/null
SELECT benefits.grant_benefit('0d000000-0000-4000-8000-000000000002', :'yearly_benefit');
SELECT benefits.grant_benefit('0d000000-0000-4000-8000-000000000002', :'starter_benefit');
UPDATE benefits.license_keys SET expires_at = now() + interval '2 days'
 WHERE customer_id = '0d000000-0000-4000-8000-000000000002';
SELECT benefits.record_usage('0d000000-0000-4000-8000-000000000002', '0e000000-0000-4000-8000-000000000001', 45);
\o
\echo '   Grace sets her subscription to end in two days: run_maintenance warns her once'
\echo '   (benefits.revocation_warning_before, 3 days by default):'
UPDATE benefits.subscriptions SET cancel_at_period_end = true, current_period_end = now() + interval '2 days'
 WHERE id = '05000000-0000-4000-8000-000000000002';
\o /dev/null
SELECT benefits.run_maintenance();
SELECT benefits.run_maintenance();
\o
SELECT action AS email, count(*) FROM benefits.outbox WHERE kind = 'email' GROUP BY action ORDER BY min(id);
SELECT pg_temp.wait_until($$SELECT count(*) = 0 FROM benefits.outbox WHERE state <> 'done'$$) AS emails_sent;

\echo
\echo '== 12. What the worker sent (every call made after commit, from the outbox)'
SELECT kind, coalesce(event_type, action) AS what, state, count(*) AS jobs, max(attempts) AS max_attempts,
       min(last_status) AS status
  FROM benefits.outbox GROUP BY kind, coalesce(event_type, action), state ORDER BY min(id);

\echo '   A busier shop gives each database more delivery workers; each claims its own share of the'
\echo '   outbox (a hash of the grant), so every grant''s jobs still go out in order:'
ALTER SYSTEM SET benefits.workers_per_database = 3;
SELECT pg_reload_conf() AS reloaded \gset
SELECT pg_temp.wait_until($$SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'benefits worker') = 3
                                FROM (SELECT pg_stat_clear_snapshot()) fresh$$) AS three_workers;
ALTER SYSTEM RESET benefits.workers_per_database;
SELECT pg_reload_conf() AS reloaded \gset
SELECT pg_temp.wait_until($$SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'benefits worker') = 1
                                FROM (SELECT pg_stat_clear_snapshot()) fresh$$) AS back_to_one;

\echo
\echo '== 13. The merchant''s dashboard: admin_overview gives the figures as data, admin_page_html a'
\echo '       self-contained page per section (no script, strict CSP, forms posting to the application)'
SET benefits.s3_endpoint = 'https://s3.example.com';
SET benefits.s3_region = 'eu-west-1';
SET benefits.s3_bucket = 'acme-downloads';
SET benefits.s3_access_key_id = 'AKIDEXAMPLE';
SET benefits.s3_secret_access_key = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
SET ROLE benefits_admin;
WITH d AS (SELECT benefits.admin_overview('0a000000-0000-4000-8000-000000000001') AS d)
SELECT jsonb_array_length(d->'products') AS products, jsonb_array_length(d->'benefits') AS benefits,
       (SELECT sum((b->>'live_grants')::int) FROM jsonb_array_elements(d->'benefits') b) AS live_grants,
       jsonb_array_length(d->'delivery'->'dead_jobs') AS dead_jobs,
       d->'usage'->'top_keys'->0->>'validations' AS top_key_validations
  FROM d;
SELECT (SELECT string_agg(b->>'description', ' > ' ORDER BY ord) FROM jsonb_array_elements(
            benefits.admin_overview('0a000000-0000-4000-8000-000000000001')->'products'->0->'benefits') WITH ORDINALITY x(b, ord))
       AS attachment_order;
SELECT s AS section, length(h) AS bytes, (regexp_match(h, '<title>([^<]*)</title>'))[1] AS title,
       (SELECT count(*) FROM regexp_matches(h, '<form ', 'g')) AS forms,
       (regexp_match(h, 'name="action" value="([a-z_]+)"'))[1] AS first_form_calls
  FROM unnest(ARRAY['overview', 'products', 'benefits', 'files', 'delivery', 'usage']) s,
       LATERAL benefits.admin_page_html('0a000000-0000-4000-8000-000000000001', s, '/admin/actions', 'csrf-123') h;
\echo '   Uploads go from the browser straight to storage, signed as an S3 POST policy:'
SELECT id AS installer FROM benefits.create_file('0a000000-0000-4000-8000-000000000001', 'MyApp installer.dmg', 48000000) \gset
SELECT f->>'url' AS post_to, f->'fields'->>'key' LIKE '%/MyApp installer.dmg' AS key_fixed,
       (convert_from(decode(f->'fields'->>'policy', 'base64'), 'UTF8')::jsonb)->'conditions'->1 AS size_fixed_by_policy
  FROM benefits.file_upload_form(:'installer', 'https://acme.test/admin/uploaded') f;
RESET ROLE;
