-- GitHub and Discord grants and revokes for many linked accounts in one
-- statement: each account's lock is taken up to a bound, then the benefit's
-- lock instead, so a statement for ten thousand accounts does not fill the
-- shared lock table ("out of shared memory").
INSERT INTO benefits.organizations (id, name) VALUES ('9f000000-0000-0000-0000-00000000000a', 'Bulk Provider Org');
INSERT INTO benefits.products (id, organization_id, name) VALUES
    ('9f000000-0000-0000-0000-0000000000b1', '9f000000-0000-0000-0000-00000000000a', 'Sponsor');
SELECT id AS github FROM benefits.create_benefit('github_repository', '9f000000-0000-0000-0000-00000000000a', 'Repo',
    '{"repository_owner": "acme", "repository_name": "engine", "permission": "pull"}') \gset
SELECT benefits.update_product_benefits('9f000000-0000-0000-0000-0000000000b1', ARRAY[:'github']::uuid[]);
INSERT INTO benefits.customers (id, organization_id, external_id)
SELECT ('9f000000-0000-0000-0000-' || lpad(i::text, 12, '0'))::uuid, '9f000000-0000-0000-0000-00000000000a', 'bulk-' || i
  FROM generate_series(1, 12000) i;
INSERT INTO benefits.customer_accounts (customer_id, platform, account_id, username)
SELECT id, 'github', external_id, external_id FROM benefits.customers
 WHERE organization_id = '9f000000-0000-0000-0000-00000000000a';
INSERT INTO benefits.subscriptions (customer_id, product_id, status)
SELECT id, '9f000000-0000-0000-0000-0000000000b1', 'incomplete' FROM benefits.customers
 WHERE organization_id = '9f000000-0000-0000-0000-00000000000a';
CREATE VIEW bulk_advisory_locks AS
    SELECT count(*) FILTER (WHERE mode = 'ExclusiveLock') AS exclusive,
           count(*) FILTER (WHERE mode = 'ShareLock') AS shared
      FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();

-- A few accounts: one lock each, under the benefit's in share mode.
BEGIN;
UPDATE benefits.subscriptions SET status = 'active'
 WHERE customer_id IN ('9f000000-0000-0000-0000-000000000001', '9f000000-0000-0000-0000-000000000002',
                       '9f000000-0000-0000-0000-000000000003');
SELECT * FROM bulk_advisory_locks;
COMMIT;

-- All the others in one statement: the benefit's lock, once.
BEGIN;
UPDATE benefits.subscriptions SET status = 'active'
 WHERE product_id = '9f000000-0000-0000-0000-0000000000b1' AND status = 'incomplete';
SELECT * FROM bulk_advisory_locks;
COMMIT;
SELECT state, count(*) FROM benefits.grants WHERE benefit_id = :'github' GROUP BY state;
SELECT action, count(*) FROM benefits.outbox
 WHERE organization_id = '9f000000-0000-0000-0000-00000000000a' AND kind = 'github' GROUP BY action;

-- Revoking them all in one statement, one grant at a time: a bounded number
-- of account locks, then the benefit's.
BEGIN;
UPDATE benefits.subscriptions SET status = 'revoked' WHERE product_id = '9f000000-0000-0000-0000-0000000000b1';
SELECT exclusive <= 65 AS bounded, shared FROM bulk_advisory_locks;
COMMIT;
SELECT state, count(*) FROM benefits.grants WHERE benefit_id = :'github' GROUP BY state;
SELECT action, count(*) FROM benefits.outbox
 WHERE organization_id = '9f000000-0000-0000-0000-00000000000a' AND kind = 'github' GROUP BY action ORDER BY action;
