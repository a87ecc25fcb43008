-- Manual fulfillment: custom benefits the seller delivers by hand wait in
-- state created until complete_fulfillment, listed by pending_fulfillments.
INSERT INTO benefits.organizations (id, name) VALUES ('f0000000-0000-0000-0000-00000000000a', 'Fulfillment Org');
INSERT INTO benefits.products (id, organization_id, name) VALUES
    ('f0000000-0000-0000-0000-0000000000b1', 'f0000000-0000-0000-0000-00000000000a', 'Coaching');
INSERT INTO benefits.customers (id, organization_id, external_id, email, name) VALUES
    ('f0000000-0000-0000-0000-0000000000c1', 'f0000000-0000-0000-0000-00000000000a', 'ful-1', 'ann@example.com', 'Ann'),
    ('f0000000-0000-0000-0000-0000000000c2', 'f0000000-0000-0000-0000-00000000000a', 'ful-2', 'ben@example.com', 'Ben'),
    ('f0000000-0000-0000-0000-0000000000c3', 'f0000000-0000-0000-0000-00000000000a', 'ful-3', 'cy@example.com', 'Cy');
INSERT INTO benefits.webhook_endpoints (id, organization_id, url, secret, events) VALUES
    ('f0000000-0000-0000-0000-0000000000e1', 'f0000000-0000-0000-0000-00000000000a', 'https://hooks.example.com/f', 'whsec_dGVzdA==',
     ARRAY['benefit_grant.created', 'benefit_grant.updated', 'benefit_grant.revoked']);

-- complete_fulfillment's refusals with their SQLSTATE, the grant's random id masked.
CREATE FUNCTION pg_temp.complete_refused(grant_id uuid, note text DEFAULT NULL) RETURNS text
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM benefits.complete_fulfillment(grant_id, note);
    RETURN 'completed';
EXCEPTION WHEN others THEN
    RETURN SQLSTATE || ': ' || replace(SQLERRM, grant_id::text, '<grant>');
END
$$;

-- fulfillment: "manual" is kept; "automatic" (the default) is left out.
SELECT properties FROM benefits.create_benefit('custom', 'f0000000-0000-0000-0000-00000000000a', 'Auto perk',
    '{"note": "Yours", "fulfillment": "automatic"}');
SELECT id AS manual, properties FROM benefits.create_benefit('custom', 'f0000000-0000-0000-0000-00000000000a', 'Coaching call',
    '{"note": "We will email you a booking link.", "fulfillment": "manual"}') \gset
SELECT :'manual'::uuid IS NOT NULL AS created, properties FROM benefits.benefits WHERE id = :'manual';
-- Bad values name the path and write nothing.
SELECT count(*) AS benefits_before FROM benefits.benefits WHERE organization_id = 'f0000000-0000-0000-0000-00000000000a' \gset
SELECT benefits.create_benefit('custom', 'f0000000-0000-0000-0000-00000000000a', 'Bad', '{"fulfillment": "later"}');
SELECT benefits.create_benefit('custom', 'f0000000-0000-0000-0000-00000000000a', 'Bad', '{"fulfillment": true}');
SELECT benefits.update_benefit(:'manual', NULL, '{"fulfillment": "Manual"}');
SELECT count(*) - :benefits_before AS written FROM benefits.benefits
 WHERE organization_id = 'f0000000-0000-0000-0000-00000000000a';
SELECT properties->>'fulfillment' AS still FROM benefits.benefits WHERE id = :'manual';
-- null is the default, as for note.
SELECT properties FROM benefits.create_benefit('custom', 'f0000000-0000-0000-0000-00000000000a', 'Null perk',
    '{"fulfillment": null}');

-- A manual grant waits: created, not granted, listed.
SELECT id AS ann_grant, state, granted_at IS NULL AS not_granted, properties
  FROM benefits.grant_benefit('f0000000-0000-0000-0000-0000000000c1', :'manual') \gset
SELECT :'state' AS state, :'not_granted' AS not_granted, :'properties' AS properties;
SELECT grant_id = :'ann_grant' AS is_ann, customer_email, benefit_description, since IS NOT NULL AS has_since
  FROM benefits.pending_fulfillments WHERE organization_id = 'f0000000-0000-0000-0000-00000000000a';
-- Granting again leaves it waiting (idempotent).
SELECT state FROM benefits.grant_benefit('f0000000-0000-0000-0000-0000000000c1', :'manual');

-- Subscriptions activated in one statement (the batch path) wait too.
SELECT benefits.update_product_benefits('f0000000-0000-0000-0000-0000000000b1', ARRAY[:'manual']::uuid[]);
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status) VALUES
    ('f0000000-0000-0000-0000-0000000000d2', 'f0000000-0000-0000-0000-0000000000c2', 'f0000000-0000-0000-0000-0000000000b1', 'active'),
    ('f0000000-0000-0000-0000-0000000000d3', 'f0000000-0000-0000-0000-0000000000c3', 'f0000000-0000-0000-0000-0000000000b1', 'active');
SELECT c.name, g.state, g.properties, g.subscription_id IS NOT NULL AS by_subscription
  FROM benefits.grants g JOIN benefits.customers c ON c.id = g.customer_id
 WHERE g.benefit_id = :'manual' ORDER BY c.name;
-- Oldest first: Ann waited longest (Ben and Cy since the same statement).
SELECT customer_name AS oldest FROM benefits.pending_fulfillments
 WHERE organization_id = 'f0000000-0000-0000-0000-00000000000a' LIMIT 1;
SELECT count(*) AS waiting FROM benefits.pending_fulfillments
 WHERE organization_id = 'f0000000-0000-0000-0000-00000000000a';

-- The portal shows the benefit note and that it is pending.
SELECT benefits.create_customer_session('f0000000-0000-0000-0000-00000000000a', 'ful-1') AS ann_token \gset
SELECT b->'state' AS state, b->'note' AS note, b->'fulfillment' AS fulfillment
  FROM jsonb_array_elements(benefits.customer_portal(:'ann_token')->'benefits') b;
SELECT benefits.customer_portal_html(:'ann_token') ~ 'Pending: the seller is preparing this for you' AS html_pending;

-- Completing: active, granted, the note stored, unlisted, benefit_grant.updated written.
SELECT count(*) AS outbox_before FROM benefits.outbox WHERE organization_id = 'f0000000-0000-0000-0000-00000000000a' \gset
SELECT state, granted_at IS NOT NULL AS granted, properties
  FROM benefits.complete_fulfillment(:'ann_grant', E'Booked for Monday.\nSee you <b>then</b> & bring notes.');
SELECT count(*) AS ann_pending FROM benefits.pending_fulfillments WHERE grant_id = :'ann_grant';
SELECT event_type, payload #>> '{data,properties,fulfillment}' AS fulfillment,
       payload #>> '{data,properties,fulfillment_note}' AS note,
       payload #> '{data,previous_properties}' AS previous, payload #> '{data,is_granted}' AS is_granted
  FROM benefits.outbox WHERE organization_id = 'f0000000-0000-0000-0000-00000000000a' AND id > 0
 ORDER BY id DESC LIMIT 1;
SELECT count(*) - :outbox_before AS events FROM benefits.outbox WHERE organization_id = 'f0000000-0000-0000-0000-00000000000a';
-- The portal shows the note, escaped in the page.
SELECT b->'state' AS state, b->'fulfillment' AS fulfillment
  FROM jsonb_array_elements(benefits.customer_portal(:'ann_token')->'benefits') b;
SELECT benefits.customer_portal_html(:'ann_token') ~ 'Delivered: Booked for Monday' AS html_note,
       benefits.customer_portal_html(:'ann_token') ~ 'See you &lt;b&gt;then&lt;/b&gt; &amp; bring notes' AS escaped,
       benefits.customer_portal_html(:'ann_token') !~ '<b>then' AS no_raw_html,
       benefits.customer_portal_html(:'ann_token') !~ 'Pending:' AS not_pending;

-- Completing twice is refused, and writes nothing.
SELECT pg_temp.complete_refused(:'ann_grant', 'again');
SELECT properties->>'fulfillment_note' AS kept_note FROM benefits.grants WHERE id = :'ann_grant';

-- Without a note: stored as null.
SELECT id AS ben_grant FROM benefits.grants
 WHERE customer_id = 'f0000000-0000-0000-0000-0000000000c2' AND benefit_id = :'manual' \gset
SELECT state, properties FROM benefits.complete_fulfillment(:'ben_grant');

-- Revoking before fulfillment removes it from the list; it cannot be completed then.
SELECT id AS cy_grant FROM benefits.grants
 WHERE customer_id = 'f0000000-0000-0000-0000-0000000000c3' AND benefit_id = :'manual' \gset
UPDATE benefits.subscriptions SET status = 'revoked' WHERE id = 'f0000000-0000-0000-0000-0000000000d3';
SELECT state FROM benefits.grants WHERE id = :'cy_grant';
SELECT count(*) AS listed FROM benefits.pending_fulfillments WHERE organization_id = 'f0000000-0000-0000-0000-00000000000a';
SELECT pg_temp.complete_refused(:'cy_grant', 'too late');
-- Granted again, it waits again, since the re-grant.
UPDATE benefits.subscriptions SET status = 'active' WHERE id = 'f0000000-0000-0000-0000-0000000000d3';
SELECT state, properties FROM benefits.grants WHERE id = :'cy_grant';
SELECT grant_id = :'cy_grant' AS is_cy, since > (SELECT created_at FROM benefits.grants WHERE id = :'cy_grant') AS since_regrant
  FROM benefits.pending_fulfillments WHERE organization_id = 'f0000000-0000-0000-0000-00000000000a';

-- A grant that is not manual cannot be completed.
SELECT id AS auto_grant FROM benefits.grant_benefit('f0000000-0000-0000-0000-0000000000c1',
    (SELECT id FROM benefits.benefits WHERE description = 'Auto perk')) \gset
SELECT pg_temp.complete_refused(:'auto_grant');

-- Errors name the argument and write nothing.
SELECT benefits.complete_fulfillment(NULL);
SELECT benefits.complete_fulfillment('f0000000-0000-0000-0000-0000000000ff');
SELECT benefits.complete_fulfillment(:'cy_grant', repeat('x', 10001));
SELECT benefits.complete_fulfillment(:'cy_grant', E'bell\x07');
SELECT benefits.complete_fulfillment(:'cy_grant', E'esc\u001b[31m');
SELECT benefits.complete_fulfillment(:'cy_grant', E'c1 \u0085 control');
SELECT state, properties FROM benefits.grants WHERE id = :'cy_grant';
-- The longest note, with line breaks and tabs, is accepted.
SELECT state, length(properties->>'fulfillment_note') AS note_length
  FROM benefits.complete_fulfillment(:'cy_grant', repeat(E'a\tb\r\n', 2000));

-- Who may: benefits_admin completes and reads the list; benefits_app and
-- benefits_public neither.
CREATE ROLE regress_ful_admin NOLOGIN IN ROLE benefits_admin;
CREATE ROLE regress_ful_app NOLOGIN IN ROLE benefits_app;
CREATE ROLE regress_ful_public NOLOGIN IN ROLE benefits_public;
-- Ann's grant, revoked and granted again, waits again.
SELECT benefits.revoke_benefit('f0000000-0000-0000-0000-0000000000c1', :'manual');
SELECT state, properties FROM benefits.grant_benefit('f0000000-0000-0000-0000-0000000000c1', :'manual');
SET ROLE regress_ful_app;
SELECT benefits.complete_fulfillment(:'ann_grant');
SELECT count(*) FROM benefits.pending_fulfillments;
RESET ROLE;
SET ROLE regress_ful_public;
SELECT benefits.complete_fulfillment(:'ann_grant');
SELECT count(*) FROM benefits.pending_fulfillments;
RESET ROLE;
SET ROLE regress_ful_admin;
SELECT count(*) AS admin_sees FROM benefits.pending_fulfillments WHERE organization_id = 'f0000000-0000-0000-0000-00000000000a';
SELECT state FROM benefits.complete_fulfillment(:'ann_grant', 'Done by the admin');
RESET ROLE;
SELECT has_table_privilege('benefits_admin', 'benefits.pending_fulfillments', 'SELECT') AS admin_select,
       has_table_privilege('benefits_admin', 'benefits.pending_fulfillments', 'UPDATE') AS admin_update,
       has_table_privilege('benefits_app', 'benefits.pending_fulfillments', 'SELECT') AS app_select,
       has_function_privilege('public', 'benefits.complete_fulfillment(uuid, text)', 'EXECUTE') AS public_execute;
DROP ROLE regress_ful_admin, regress_ful_app, regress_ful_public;
