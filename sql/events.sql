-- Webhook events in the outbox: Polar's wire format, one delivery per
-- subscribed endpoint, written in the transaction of the change.
INSERT INTO benefits.organizations (id, name) VALUES ('ee000000-0000-0000-0000-00000000000a', 'Events Org');
INSERT INTO benefits.products (id, organization_id, name) VALUES
    ('ee000000-0000-0000-0000-0000000000b1', 'ee000000-0000-0000-0000-00000000000a', 'Pro');
INSERT INTO benefits.customers (id, organization_id, external_id, email, name) VALUES
    ('ee000000-0000-0000-0000-0000000000d1', 'ee000000-0000-0000-0000-00000000000a', 'ev-1', 'ev@example.com', 'Eve');
INSERT INTO benefits.webhook_endpoints (id, organization_id, url, secret, events, enabled) VALUES
    ('ee000000-0000-0000-0000-0000000000f1', 'ee000000-0000-0000-0000-00000000000a', 'https://a.example.com/hook', 'whsec_dGVzdA==',
     ARRAY['benefit_grant.created', 'benefit_grant.revoked', 'benefit.created', 'benefit.updated'], true),
    ('ee000000-0000-0000-0000-0000000000f2', 'ee000000-0000-0000-0000-00000000000a', 'https://b.example.com/hook', 'whsec_dGVzdA==',
     ARRAY['benefit_grant.created'], true),
    ('ee000000-0000-0000-0000-0000000000f3', 'ee000000-0000-0000-0000-00000000000a', 'https://c.example.com/hook', 'whsec_dGVzdA==',
     ARRAY['benefit_grant.created', 'benefit_grant.revoked'], false);

-- benefit.created from create_benefit, to the one endpoint subscribed.
SELECT id AS benefit_id FROM benefits.create_benefit('license_keys', 'ee000000-0000-0000-0000-00000000000a', 'Pro key',
    '{"prefix": "EV", "expires": false, "activations": 2, "limit_usage": false}') \gset
SELECT right(endpoint_id::text, 2) AS endpoint, event_type, payload->>'type' AS type,
       payload #>> '{data,type}' AS benefit_type, payload #>> '{data,description}' AS description
  FROM benefits.outbox WHERE organization_id = 'ee000000-0000-0000-0000-00000000000a' ORDER BY id;
SELECT benefits.update_product_benefits('ee000000-0000-0000-0000-0000000000b1', ARRAY[:'benefit_id']::uuid[]);

-- A rolled-back transaction leaves no outbox row.
SELECT count(*) AS before FROM benefits.outbox WHERE organization_id = 'ee000000-0000-0000-0000-00000000000a' \gset
BEGIN;
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status) VALUES
    ('ee000000-0000-0000-0000-0000000000e1', 'ee000000-0000-0000-0000-0000000000d1', 'ee000000-0000-0000-0000-0000000000b1', 'active');
SELECT count(*) - :before AS written_in_transaction FROM benefits.outbox WHERE organization_id = 'ee000000-0000-0000-0000-00000000000a';
ROLLBACK;
SELECT count(*) - :before AS left_after_rollback FROM benefits.outbox WHERE organization_id = 'ee000000-0000-0000-0000-00000000000a';
SELECT count(*) AS grants_after_rollback FROM benefits.grants WHERE customer_id = 'ee000000-0000-0000-0000-0000000000d1';

-- Committed: one delivery per enabled, subscribed endpoint, each with its own message id.
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status) VALUES
    ('ee000000-0000-0000-0000-0000000000e1', 'ee000000-0000-0000-0000-0000000000d1', 'ee000000-0000-0000-0000-0000000000b1', 'active');
SELECT right(endpoint_id::text, 2) AS endpoint, kind, action, event_type, message_id ~ '^msg_[0-9a-f]{32}$' AS message_id_ok
  FROM benefits.outbox WHERE organization_id = 'ee000000-0000-0000-0000-00000000000a' AND event_type LIKE 'benefit_grant.%'
 ORDER BY endpoint_id;
SELECT count(DISTINCT message_id) AS distinct_ids, count(DISTINCT payload) AS distinct_bodies
  FROM benefits.outbox WHERE organization_id = 'ee000000-0000-0000-0000-00000000000a' AND event_type = 'benefit_grant.created';

-- The body: envelope, grant, customer and benefit objects with Polar's keys.
SELECT payload AS body FROM benefits.outbox
 WHERE organization_id = 'ee000000-0000-0000-0000-00000000000a' AND event_type = 'benefit_grant.created' LIMIT 1 \gset
SELECT array(SELECT jsonb_object_keys(:'body'::jsonb) ORDER BY 1) AS envelope;
SELECT array(SELECT jsonb_object_keys(:'body'::jsonb->'data') ORDER BY 1) AS grant_keys;
SELECT array(SELECT jsonb_object_keys(:'body'::jsonb #> '{data,customer}') ORDER BY 1) AS customer_keys;
SELECT array(SELECT jsonb_object_keys(:'body'::jsonb #> '{data,benefit}') ORDER BY 1) AS benefit_keys;
SELECT :'body'::jsonb->>'type' AS type, :'body'::jsonb #>> '{data,customer,type}' AS customer_type,
       :'body'::jsonb #>> '{data,customer,external_id}' AS external_id,
       :'body'::jsonb #>> '{data,is_granted}' AS is_granted, :'body'::jsonb #>> '{data,is_revoked}' AS is_revoked,
       :'body'::jsonb #>> '{data,benefit,type}' AS benefit_type,
       :'body'::jsonb #>> '{data,properties,display_key}' LIKE '****-%' AS display_key_masked;
-- Times are RFC 3339 in UTC with a Z.
SELECT :'body'::jsonb->>'timestamp' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$' AS timestamp_ok,
       :'body'::jsonb #>> '{data,granted_at}' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$' AS granted_at_ok,
       (:'body'::jsonb #>> '{data,granted_at}')::timestamptz = g.granted_at AS granted_at_exact
  FROM benefits.grants g WHERE g.customer_id = 'ee000000-0000-0000-0000-0000000000d1';
-- Never the full license key, in any payload.
SELECT count(*) AS payloads_with_key FROM benefits.outbox o, benefits.license_keys k
 WHERE k.customer_id = 'ee000000-0000-0000-0000-0000000000d1' AND o.payload::text LIKE '%' || k.key || '%';

-- benefit.updated and benefit_grant.updated with the previous properties.
UPDATE benefits.webhook_endpoints SET events = events || ARRAY['benefit_grant.updated']
 WHERE id = 'ee000000-0000-0000-0000-0000000000f1';
SELECT (benefits.update_benefit(:'benefit_id', NULL, '{"prefix": "EV", "expires": false, "activations": 5, "limit_usage": 100}')).id = :'benefit_id' AS updated;
SELECT event_type, payload #> '{data,previous_properties}' ? 'license_key_id' AS has_previous,
       payload #>> '{data,benefit,properties,activations,limit}' AS new_limit
  FROM benefits.outbox WHERE organization_id = 'ee000000-0000-0000-0000-00000000000a' AND event_type LIKE '%updated' ORDER BY id;
SELECT limit_activations, limit_usage FROM benefits.license_keys WHERE customer_id = 'ee000000-0000-0000-0000-0000000000d1';
SELECT previous_properties IS NOT NULL AS previous_recorded FROM benefits.grants WHERE customer_id = 'ee000000-0000-0000-0000-0000000000d1';
-- A description-only edit leaves the grants alone.
SELECT (benefits.update_benefit(:'benefit_id', 'Pro license key')).description;
SELECT event_type, count(*) FROM benefits.outbox WHERE organization_id = 'ee000000-0000-0000-0000-00000000000a'
 GROUP BY 1 ORDER BY 1;

-- enqueue_grant_event: what the worker calls when a provider confirms.
SELECT id AS grant_id FROM benefits.grants WHERE customer_id = 'ee000000-0000-0000-0000-0000000000d1' \gset
SELECT benefits.enqueue_grant_event(:'grant_id', 'benefit_grant.created');
SELECT benefits.enqueue_grant_event(:'grant_id', 'benefit_grant.cycled', '{"x": 1}');
SELECT benefits.enqueue_grant_event(:'grant_id', 'benefit_grant.deleted');
SELECT benefits.enqueue_grant_event('ee000000-0000-0000-0000-000000000000', 'benefit_grant.created');
SELECT benefits.enqueue_grant_event(NULL, 'benefit_grant.created');
SELECT benefits.enqueue_benefit_event(:'benefit_id', 'benefit.deleted');

-- delete_benefit revokes the live grants.
SELECT benefits.delete_benefit(:'benefit_id');
SELECT state FROM benefits.grants WHERE customer_id = 'ee000000-0000-0000-0000-0000000000d1';
SELECT right(endpoint_id::text, 2) AS endpoint, event_type FROM benefits.outbox
 WHERE organization_id = 'ee000000-0000-0000-0000-00000000000a' AND event_type = 'benefit_grant.revoked';

-- Row triggers queue their events and the statement writes them: a statement
-- that fails half-way (in a savepoint) leaves nothing queued behind.
INSERT INTO benefits.products (id, organization_id, name) VALUES
    ('ee000000-0000-0000-0000-0000000000b2', 'ee000000-0000-0000-0000-00000000000a', 'Basic');
SELECT benefits.update_product_benefits('ee000000-0000-0000-0000-0000000000b2', ARRAY[
    (benefits.create_benefit('custom', 'ee000000-0000-0000-0000-00000000000a', 'Basic note', '{"note": "hi"}')).id]);
INSERT INTO benefits.customers (id, organization_id, external_id, deleted_at) VALUES
    ('ee000000-0000-0000-0000-0000000000d2', 'ee000000-0000-0000-0000-00000000000a', 'ev-2', NULL),
    ('ee000000-0000-0000-0000-0000000000d3', 'ee000000-0000-0000-0000-00000000000a', 'ev-3', now());
SELECT max(id) AS last_id FROM benefits.outbox \gset
BEGIN;
SAVEPOINT s;
INSERT INTO benefits.subscriptions (customer_id, product_id, status) VALUES
    ('ee000000-0000-0000-0000-0000000000d2', 'ee000000-0000-0000-0000-0000000000b2', 'active'),
    ('ee000000-0000-0000-0000-0000000000d3', 'ee000000-0000-0000-0000-0000000000b2', 'active');
ROLLBACK TO SAVEPOINT s;
INSERT INTO benefits.subscriptions (customer_id, product_id, status) VALUES
    ('ee000000-0000-0000-0000-0000000000d2', 'ee000000-0000-0000-0000-0000000000b2', 'trialing');
COMMIT;
-- One delivery per subscribed endpoint (two), for the committed statement only.
SELECT event_type, payload #>> '{data,customer,external_id}' AS customer, count(*)
  FROM benefits.outbox WHERE id > :last_id GROUP BY 1, 2;
-- The statement trigger disabled: the transaction refuses to commit rather than lose events.
ALTER TABLE benefits.subscriptions DISABLE TRIGGER grants_sync_events;
UPDATE benefits.subscriptions SET status = 'canceled' WHERE customer_id = 'ee000000-0000-0000-0000-0000000000d2';
ALTER TABLE benefits.subscriptions ENABLE TRIGGER grants_sync_events;
SELECT state FROM benefits.grants WHERE customer_id = 'ee000000-0000-0000-0000-0000000000d2';

-- One statement changing subscriptions of two organizations: each event goes
-- to its own organization's endpoints only.
INSERT INTO benefits.organizations (id, name) VALUES ('ee000000-0000-0000-0000-00000000001a', 'Events Org 2');
INSERT INTO benefits.products (id, organization_id, name) VALUES
    ('ee000000-0000-0000-0000-0000000001b1', 'ee000000-0000-0000-0000-00000000001a', 'Other');
SELECT benefits.update_product_benefits('ee000000-0000-0000-0000-0000000001b1', ARRAY[
    (benefits.create_benefit('custom', 'ee000000-0000-0000-0000-00000000001a', 'Other note', '{"note": "x"}')).id]);
INSERT INTO benefits.customers (id, organization_id, external_id) VALUES
    ('ee000000-0000-0000-0000-0000000001d1', 'ee000000-0000-0000-0000-00000000001a', 'ev2-1');
INSERT INTO benefits.webhook_endpoints (id, organization_id, url, secret, events) VALUES
    ('ee000000-0000-0000-0000-0000000001f1', 'ee000000-0000-0000-0000-00000000001a', 'https://d.example.com/hook',
     'whsec_dGVzdA==', ARRAY['benefit_grant.created']);
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status) VALUES
    ('ee000000-0000-0000-0000-0000000001e1', 'ee000000-0000-0000-0000-0000000001d1', 'ee000000-0000-0000-0000-0000000001b1', 'incomplete'),
    ('ee000000-0000-0000-0000-0000000000e4', 'ee000000-0000-0000-0000-0000000000d2', 'ee000000-0000-0000-0000-0000000000b2', 'incomplete');
SELECT max(id) AS last_id FROM benefits.outbox \gset
UPDATE benefits.subscriptions SET status = 'active'
 WHERE id IN ('ee000000-0000-0000-0000-0000000001e1', 'ee000000-0000-0000-0000-0000000000e4');
SELECT right(endpoint_id::text, 3) AS endpoint, payload #>> '{data,customer,external_id}' AS customer,
       organization_id = (payload #>> '{data,customer,organization_id}')::uuid AS same_organization
  FROM benefits.outbox WHERE id > :last_id ORDER BY 1, 2;
