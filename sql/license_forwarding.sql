-- A hot standby's validation counts arriving at the primary:
-- receive_validation_counts applies each sender's batch once, adds to the
-- daily history, refuses malformed batches with nothing written, and only
-- benefits_replica (and benefits_admin) may call it.
\set SHOW_CONTEXT never

INSERT INTO benefits.organizations (name) VALUES ('Forward Org') RETURNING id AS org \gset
INSERT INTO benefits.customers (organization_id, email) VALUES (:'org', 'fwd@example.com') RETURNING id AS cust \gset
SELECT id AS ben FROM benefits.create_benefit('license_keys', :'org', 'Forwarded license', '{}') \gset
SELECT benefits.grant_benefit(:'cust', :'ben') \g /dev/null
SELECT id AS kid FROM benefits.license_keys WHERE customer_id = :'cust' \gset
\set sender '''6d1a7c1e-0000-4000-8000-000000000001'''
\set other '''6d1a7c1e-0000-4000-8000-000000000002'''

-- The first batch counts; sent again (its acknowledgement lost), it does not.
SELECT benefits.receive_validation_counts(:sender, 1, ARRAY[:'kid']::uuid[], ARRAY[3]::bigint[],
                                          ARRAY['2026-01-02 03:04:05+00']::timestamptz[]) AS updated;
SELECT benefits.receive_validation_counts(:sender, 1, ARRAY[:'kid']::uuid[], ARRAY[3]::bigint[],
                                          ARRAY['2026-01-02 03:04:05+00']::timestamptz[]) AS updated_again;
SELECT validations, last_validated_at AT TIME ZONE 'UTC' AS last FROM benefits.license_keys WHERE id = :'kid';
-- A later batch counts, an earlier one after it does not; another sender has its own numbers.
SELECT benefits.receive_validation_counts(:sender, 2, ARRAY[:'kid']::uuid[], ARRAY[4]::bigint[],
                                          ARRAY['2026-01-01 00:00:00+00']::timestamptz[]) AS batch_2;
SELECT benefits.receive_validation_counts(:sender, 1, ARRAY[:'kid']::uuid[], ARRAY[100]::bigint[],
                                          ARRAY['2026-01-01 00:00:00+00']::timestamptz[]) AS batch_1_late;
SELECT benefits.receive_validation_counts(:other, 1, ARRAY[:'kid', gen_random_uuid()]::uuid[], ARRAY[5, 6]::bigint[],
                                          ARRAY['2026-01-03 00:00:00+00', '2026-01-03 00:00:00+00']::timestamptz[])
       AS other_sender_one_key_unknown;
-- 3 + 4 + 5; the latest time wins.
SELECT validations, last_validated_at AT TIME ZONE 'UTC' AS last FROM benefits.license_keys WHERE id = :'kid';
SELECT day, validations FROM benefits.license_validations_daily WHERE organization_id = :'org' ORDER BY day;
SELECT sender, last_batch FROM benefits.validation_count_senders ORDER BY sender;
-- An empty batch only advances the sender.
SELECT benefits.receive_validation_counts(:sender, 3, '{}', '{}', '{}') AS empty_batch;
SELECT last_batch FROM benefits.validation_count_senders WHERE sender = :sender;

-- Malformed batches: each names its field, and nothing is written.
SELECT benefits.receive_validation_counts(NULL, 9, ARRAY[:'kid']::uuid[], '{1}', ARRAY[now()]);
SELECT benefits.receive_validation_counts(:sender, NULL, ARRAY[:'kid']::uuid[], '{1}', ARRAY[now()]);
SELECT benefits.receive_validation_counts(:sender, 9, NULL, '{1}', ARRAY[now()]);
SELECT benefits.receive_validation_counts(:sender, 9, ARRAY[:'kid']::uuid[], NULL, ARRAY[now()]);
SELECT benefits.receive_validation_counts(:sender, 9, ARRAY[:'kid']::uuid[], '{1}', NULL);
SELECT benefits.receive_validation_counts(:sender, 0, ARRAY[:'kid']::uuid[], '{1}', ARRAY[now()]);
SELECT benefits.receive_validation_counts(:sender, -1, ARRAY[:'kid']::uuid[], '{1}', ARRAY[now()]);
SELECT benefits.receive_validation_counts(:sender, 9, ARRAY[:'kid']::uuid[], '{1, 2}', ARRAY[now()]);
SELECT benefits.receive_validation_counts(:sender, 9, ARRAY[:'kid', NULL]::uuid[], '{1, 2}', ARRAY[now(), now()]);
SELECT benefits.receive_validation_counts(:sender, 9, ARRAY[:'kid']::uuid[], '{NULL}', ARRAY[now()]);
SELECT benefits.receive_validation_counts(:sender, 9, ARRAY[:'kid']::uuid[], '{1}', ARRAY[NULL]::timestamptz[]);
SELECT benefits.receive_validation_counts(:sender, 9, ARRAY[[:'kid']]::uuid[], '{{1}}', ARRAY[[now()]]);
SELECT benefits.receive_validation_counts(:sender, 9, ARRAY[:'kid']::uuid[], '{0}', ARRAY[now()]);
SELECT benefits.receive_validation_counts(:sender, 9, ARRAY[:'kid']::uuid[], '{-5}', ARRAY[now()]);
SELECT benefits.receive_validation_counts(:sender, 9, ARRAY[:'kid']::uuid[], '{1}', ARRAY[now() + interval '2 hours']);
SELECT benefits.receive_validation_counts(:sender, 9, ARRAY[:'kid']::uuid[], '{1}', ARRAY['infinity']::timestamptz[]);
SELECT benefits.receive_validation_counts(:sender, 9, array_fill(:'kid'::uuid, ARRAY[65537]),
                                          array_fill(1::bigint, ARRAY[65537]), array_fill(now(), ARRAY[65537]));
SELECT validations FROM benefits.license_keys WHERE id = :'kid';
SELECT last_batch FROM benefits.validation_count_senders WHERE sender = :sender;

-- Who may call it: benefits_replica and benefits_admin; not the application,
-- nor PUBLIC; and nobody but the function writes the senders' table.
CREATE ROLE forward_standby LOGIN;
GRANT benefits_replica TO forward_standby;
CREATE ROLE forward_app LOGIN;
GRANT benefits_app TO forward_app;
SET ROLE forward_standby;
SELECT benefits.receive_validation_counts(:sender, 10, ARRAY[:'kid']::uuid[], '{1}', ARRAY[now()]) AS as_replica;
SELECT count(*) FROM benefits.validation_count_senders;
SELECT count(*) FROM benefits.license_keys;
RESET ROLE;
SET ROLE forward_app;
SELECT benefits.receive_validation_counts(:sender, 11, ARRAY[:'kid']::uuid[], '{1}', ARRAY[now()]);
RESET ROLE;
SET ROLE benefits_admin;
SELECT count(*) AS admin_reads FROM benefits.validation_count_senders;
UPDATE benefits.validation_count_senders SET last_batch = 1;
RESET ROLE;
SELECT validations FROM benefits.license_keys WHERE id = :'kid';
DROP ROLE forward_standby;
DROP ROLE forward_app;
