-- GitHub and Discord benefits: provider jobs in the outbox, linked accounts,
-- access removed only with the last holder, benefit edits diffed into jobs,
-- product benefit-list changes applied to holders.
INSERT INTO benefits.organizations (id, name) VALUES ('9e000000-0000-0000-0000-00000000000a', 'Provider Org');
INSERT INTO benefits.products (id, organization_id, name) VALUES
    ('9e000000-0000-0000-0000-0000000000b1', '9e000000-0000-0000-0000-00000000000a', 'Sponsor'),
    ('9e000000-0000-0000-0000-0000000000b2', '9e000000-0000-0000-0000-00000000000a', 'Sponsor yearly');
INSERT INTO benefits.customers (id, organization_id, external_id) VALUES
    ('9e000000-0000-0000-0000-0000000000d1', '9e000000-0000-0000-0000-00000000000a', 'gh-1'),
    ('9e000000-0000-0000-0000-0000000000d2', '9e000000-0000-0000-0000-00000000000a', 'gh-2');
INSERT INTO benefits.webhook_endpoints (organization_id, url, secret, events) VALUES
    ('9e000000-0000-0000-0000-00000000000a', 'https://hooks.example.com/providers', 'whsec_dGVzdA==',
     ARRAY['benefit_grant.created', 'benefit_grant.updated']);
SELECT id AS github FROM benefits.create_benefit('github_repository', '9e000000-0000-0000-0000-00000000000a', 'Repos',
    '{"repositories": [{"owner": "acme", "name": "engine", "permission": "pull"},
                       {"owner": "acme", "name": "docs", "permission": "triage"}]}') \gset
SELECT id AS discord FROM benefits.create_benefit('discord', '9e000000-0000-0000-0000-00000000000a', 'Chat',
    '{"guild_id": "100000000000000111", "roles": [{"role_id": "100000000000000201", "name": "Sponsor"}, {"role_id": "100000000000000202", "name": "Beta"}]}') \gset
SELECT benefits.update_product_benefits('9e000000-0000-0000-0000-0000000000b1', ARRAY[:'github', :'discord']::uuid[]);
SELECT benefits.update_product_benefits('9e000000-0000-0000-0000-0000000000b2', ARRAY[:'github']::uuid[]);

CREATE VIEW provider_jobs AS
    SELECT kind, action, payload - 'customer_id' AS payload, (payload->>'customer_id') IS NOT NULL AS has_customer
      FROM benefits.outbox
     WHERE organization_id = '9e000000-0000-0000-0000-00000000000a' AND kind <> 'webhook'
     ORDER BY id;
CREATE TABLE jobs_seen (id bigint);
CREATE VIEW new_jobs AS
    SELECT kind, action, payload - 'customer_id' AS payload FROM benefits.outbox
     WHERE organization_id = '9e000000-0000-0000-0000-00000000000a' AND kind <> 'webhook'
       AND id > (SELECT coalesce(max(id), 0) FROM jobs_seen)
     ORDER BY kind DESC, id;  -- jobs of one grant in their order; grants of a change in any order
CREATE PROCEDURE jobs_seen() LANGUAGE sql AS $$ INSERT INTO jobs_seen SELECT max(id) FROM benefits.outbox $$;

-- No linked account: the grants stay created with the action required, and no job is written.
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status) VALUES
    ('9e000000-0000-0000-0000-0000000000e1', '9e000000-0000-0000-0000-0000000000d1', '9e000000-0000-0000-0000-0000000000b1', 'active');
SELECT b.type, g.state, g.error FROM benefits.grants g JOIN benefits.benefits b ON b.id = g.benefit_id
 WHERE g.customer_id = '9e000000-0000-0000-0000-0000000000d1' ORDER BY b.type;
SELECT count(*) AS jobs FROM provider_jobs;

-- Linking GitHub writes one job per repository; the grant records the access and waits for the worker.
SELECT benefits.link_account('9e000000-0000-0000-0000-0000000000d1', 'github', '5001', 'octocat');
SELECT * FROM provider_jobs;
SELECT g.state, g.error, g.properties FROM benefits.grants g
 WHERE g.customer_id = '9e000000-0000-0000-0000-0000000000d1' AND g.benefit_id = :'github';
-- Discord: add_member with every role (the worker reads the OAuth token at send time), then each role.
SELECT benefits.link_account('9e000000-0000-0000-0000-0000000000d1', 'discord', '7001', 'eve#1', 'oauth-token');
SELECT kind, action, payload, has_customer FROM provider_jobs WHERE kind = 'discord';
SELECT count(*) AS tokens_in_outbox FROM benefits.outbox WHERE payload::text LIKE '%oauth-token%';
CALL jobs_seen();
-- Linking again changes nothing for grants that already have their jobs.
SELECT benefits.link_account('9e000000-0000-0000-0000-0000000000d1', 'github', '5001', 'octocat');
SELECT * FROM new_jobs;

-- The worker confirms the GitHub grant.
UPDATE benefits.grants SET state = 'active'
 WHERE customer_id = '9e000000-0000-0000-0000-0000000000d1' AND benefit_id = :'github';

-- A second purchase of the same repositories: active at once, no new job.
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status) VALUES
    ('9e000000-0000-0000-0000-0000000000e2', '9e000000-0000-0000-0000-0000000000d1', '9e000000-0000-0000-0000-0000000000b2', 'active');
SELECT state, error FROM benefits.grants WHERE subscription_id = '9e000000-0000-0000-0000-0000000000e2';
SELECT * FROM new_jobs;

-- Editing the benefit: docs is dropped, engine gets push, site is added.
SELECT (benefits.update_benefit(:'github', NULL,
    '{"repositories": [{"owner": "acme", "name": "engine", "permission": "push"},
                       {"owner": "acme", "name": "site", "permission": "pull"}]}')).id = :'github' AS updated;
SELECT * FROM new_jobs;
CALL jobs_seen();
SELECT g.properties->'repositories' AS repositories, g.previous_properties->'repositories' AS previous
  FROM benefits.grants g WHERE g.subscription_id = '9e000000-0000-0000-0000-0000000000e1' AND g.benefit_id = :'github';
-- Discord: a role added, a role dropped.
SELECT (benefits.update_benefit(:'discord', NULL,
    '{"guild_id": "100000000000000111", "roles": [{"role_id": "100000000000000201", "name": "Sponsor"}, {"role_id": "100000000000000203", "name": "VIP"}]}')).id = :'discord' AS updated;
SELECT * FROM new_jobs;
CALL jobs_seen();

-- One holder goes: the other keeps the repositories, nothing is removed.
UPDATE benefits.subscriptions SET status = 'revoked' WHERE id = '9e000000-0000-0000-0000-0000000000e2';
SELECT * FROM new_jobs;
-- The last holder goes: the access is removed.
UPDATE benefits.subscriptions SET status = 'revoked' WHERE id = '9e000000-0000-0000-0000-0000000000e1';
SELECT * FROM new_jobs;
CALL jobs_seen();

-- kick_member: revoking removes the member instead of each role.
SELECT (benefits.update_benefit(:'discord', NULL,
    '{"guild_id": "100000000000000111", "role_id": "100000000000000201", "kick_member": true}')).id = :'discord' AS updated;
UPDATE benefits.subscriptions SET status = 'active' WHERE id = '9e000000-0000-0000-0000-0000000000e1';
UPDATE benefits.subscriptions SET status = 'revoked' WHERE id = '9e000000-0000-0000-0000-0000000000e1';
SELECT * FROM new_jobs WHERE kind = 'discord';
CALL jobs_seen();

-- update_product_benefits applies the diff to holders: the yearly product
-- gains the Discord benefit; customer 2 (no account) gets a pending grant.
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status) VALUES
    ('9e000000-0000-0000-0000-0000000000e3', '9e000000-0000-0000-0000-0000000000d2', '9e000000-0000-0000-0000-0000000000b2', 'active');
SELECT benefits.update_product_benefits('9e000000-0000-0000-0000-0000000000b2', ARRAY[:'discord', :'github']::uuid[]);
SELECT b.type, g.state, g.error->>'action' AS action FROM benefits.grants g JOIN benefits.benefits b ON b.id = g.benefit_id
 WHERE g.subscription_id = '9e000000-0000-0000-0000-0000000000e3' ORDER BY b.type;
-- ... and loses GitHub.
SELECT benefits.update_product_benefits('9e000000-0000-0000-0000-0000000000b2', ARRAY[:'discord']::uuid[]);
SELECT b.type, g.state FROM benefits.grants g JOIN benefits.benefits b ON b.id = g.benefit_id
 WHERE g.subscription_id = '9e000000-0000-0000-0000-0000000000e3' ORDER BY b.type;
SELECT * FROM new_jobs;

-- Webhooks: benefit_grant.created when a grant is made (pending for the
-- providers: is_granted false, with the action required), benefit_grant.updated
-- when linking clears the error, and for the benefit edits.
SELECT event_type, payload #>> '{data,benefit,type}' AS type, payload #>> '{data,is_granted}' AS is_granted,
       payload #>> '{data,error,action}' AS action, count(*)
  FROM benefits.outbox WHERE organization_id = '9e000000-0000-0000-0000-00000000000a' AND kind = 'webhook'
 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4;

-- link_account errors.
SELECT benefits.link_account('9e000000-0000-0000-0000-0000000000d2', 'gitlab', '1');
SELECT benefits.link_account('9e000000-0000-0000-0000-0000000000d2', 'github', '1');
SELECT benefits.link_account('9e000000-0000-0000-0000-0000000000d2', 'discord', '');
SELECT benefits.link_account('9e000000-0000-0000-0000-000000000000', 'discord', '1');
SELECT benefits.link_account(NULL, 'discord', '1');
