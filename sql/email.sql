-- Customer email: the settings, the organizations' and customers' columns,
-- and the messages written into the outbox with the change that causes them
-- (the worker renders and sends them: TAP 085_email, 086_email_warnings).
INSERT INTO benefits.organizations (id, name) VALUES ('e1000000-0000-0000-0000-00000000000a', 'Mail Org');

-- Settings: smtp_url must be smtp:// or smtps://; email_from a plain address;
-- the SMTP credentials are hidden from everyone but superusers.
SET benefits.smtp_url = 'http://mail.example.com';
SET benefits.smtp_url = 'smtp://mail.example.com:587';
SET benefits.email_from = 'Shop <shop@example.com>';
SET benefits.email_from = '';
CREATE ROLE regress_mail_admin NOLOGIN IN ROLE benefits_admin;
SET ROLE regress_mail_admin;
SHOW benefits.smtp_password;
SHOW benefits.smtp_username;
SET benefits.smtp_url = 'smtp://attacker.example.com';
SELECT count(*) AS shown FROM pg_settings WHERE name IN ('benefits.smtp_password', 'benefits.smtp_username');
RESET ROLE;

-- The organization's columns are checked (terse: the failing row has a timestamp).
\set VERBOSITY terse
UPDATE benefits.organizations SET email_from = 'shop@example.com' || chr(10) || 'Bcc: x@evil.example' WHERE id = 'e1000000-0000-0000-0000-00000000000a';
UPDATE benefits.organizations SET email_from = 'Shop <shop@example.com>' WHERE id = 'e1000000-0000-0000-0000-00000000000a';
UPDATE benefits.organizations SET email_from = 'shöp@example.com' WHERE id = 'e1000000-0000-0000-0000-00000000000a';
UPDATE benefits.organizations SET support_email = 'no-at-sign' WHERE id = 'e1000000-0000-0000-0000-00000000000a';
UPDATE benefits.organizations SET portal_url = 'javascript:alert(1)' WHERE id = 'e1000000-0000-0000-0000-00000000000a';
UPDATE benefits.organizations SET portal_url = 'https://app.example.com/ portal' WHERE id = 'e1000000-0000-0000-0000-00000000000a';
UPDATE benefits.organizations SET email_disabled = '{newsletter}' WHERE id = 'e1000000-0000-0000-0000-00000000000a';
\set VERBOSITY default
UPDATE benefits.organizations SET email_from = 'shop@example.com', support_email = 'help@example.com',
       portal_url = 'https://app.example.com/portal'
 WHERE id = 'e1000000-0000-0000-0000-00000000000a'
RETURNING email_from, support_email, portal_url, email_disabled;

INSERT INTO benefits.products (id, organization_id, name) VALUES
    ('e1000000-0000-0000-0000-0000000000b1', 'e1000000-0000-0000-0000-00000000000a', 'Pro');
INSERT INTO benefits.customers (id, organization_id, external_id, email, name) VALUES
    ('e1000000-0000-0000-0000-0000000000c1', 'e1000000-0000-0000-0000-00000000000a', 'm-1', 'one@example.com', 'One'),
    ('e1000000-0000-0000-0000-0000000000c2', 'e1000000-0000-0000-0000-00000000000a', 'm-2', 'two@example.com', 'Two'),
    ('e1000000-0000-0000-0000-0000000000c3', 'e1000000-0000-0000-0000-00000000000a', 'm-3', NULL, 'No address');
SELECT id AS key FROM benefits.create_benefit('license_keys', 'e1000000-0000-0000-0000-00000000000a', 'Key',
    '{"expires": false}') \gset
SELECT id AS note FROM benefits.create_benefit('custom', 'e1000000-0000-0000-0000-00000000000a', 'Note',
    '{"note": "hi"}') \gset
SELECT benefits.update_product_benefits('e1000000-0000-0000-0000-0000000000b1', ARRAY[:'note', :'key']::uuid[]);

-- The messages of a change, as the worker will find them.
CREATE FUNCTION pg_temp.emails() RETURNS TABLE (action text, customer text, benefits text, message_id_ok boolean)
    LANGUAGE sql AS $$
    SELECT o.action, c.external_id,
           -- (in a removal the order of revocation, which is not attachment order: sorted here)
           (SELECT string_agg(b.description, ', ' ORDER BY CASE WHEN o.action = 'benefits_removed' THEN b.description END, u.n)
              FROM jsonb_array_elements_text(o.payload->'grant_ids') WITH ORDINALITY u(id, n)
              JOIN benefits.grants g ON g.id = u.id::uuid JOIN benefits.benefits b ON b.id = g.benefit_id),
           o.message_id ~ '^msg_[0-9a-f]{32}$' AND o.endpoint_id IS NULL
      FROM benefits.outbox o JOIN benefits.customers c ON c.id = (o.payload->>'customer_id')::uuid
     WHERE o.kind = 'email' AND o.organization_id = 'e1000000-0000-0000-0000-00000000000a'
     ORDER BY o.id
$$;

-- Email off (benefits.smtp_url empty): nothing is written.
SET benefits.smtp_url = '';
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status) VALUES
    ('e1000000-0000-0000-0000-0000000000d1', 'e1000000-0000-0000-0000-0000000000c1', 'e1000000-0000-0000-0000-0000000000b1', 'active');
SELECT * FROM pg_temp.emails();
UPDATE benefits.subscriptions SET status = 'revoked' WHERE id = 'e1000000-0000-0000-0000-0000000000d1';

-- Email on: one message per activation (three subscriptions in one
-- statement), listing its benefits in attachment order; none for the
-- customer without an address.
SET benefits.smtp_url = 'smtp://mail.example.com:587';
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status) VALUES
    ('e1000000-0000-0000-0000-0000000000d2', 'e1000000-0000-0000-0000-0000000000c1', 'e1000000-0000-0000-0000-0000000000b1', 'active'),
    ('e1000000-0000-0000-0000-0000000000d3', 'e1000000-0000-0000-0000-0000000000c2', 'e1000000-0000-0000-0000-0000000000b1', 'active'),
    ('e1000000-0000-0000-0000-0000000000d4', 'e1000000-0000-0000-0000-0000000000c3', 'e1000000-0000-0000-0000-0000000000b1', 'active');
SELECT * FROM pg_temp.emails();
-- A manual grant, one at a time; a rolled-back one writes nothing.
BEGIN;
SELECT state FROM benefits.grant_benefit('e1000000-0000-0000-0000-0000000000c2',
    (SELECT id FROM benefits.create_benefit('custom', 'e1000000-0000-0000-0000-00000000000a', 'Gone', '{}')));
ROLLBACK;
SELECT state FROM benefits.grant_benefit('e1000000-0000-0000-0000-0000000000c2',
    (SELECT id FROM benefits.create_benefit('custom', 'e1000000-0000-0000-0000-00000000000a', 'Gift', '{}')));
-- A revocation: the removal message.
UPDATE benefits.subscriptions SET status = 'revoked' WHERE id = 'e1000000-0000-0000-0000-0000000000d3';
SELECT * FROM pg_temp.emails();

-- Turned off by the organization, or no sender at all: nothing.
UPDATE benefits.organizations SET email_disabled = '{benefits_granted}' WHERE id = 'e1000000-0000-0000-0000-00000000000a';
UPDATE benefits.subscriptions SET status = 'active' WHERE id = 'e1000000-0000-0000-0000-0000000000d3';
UPDATE benefits.organizations SET email_disabled = '{}', email_from = NULL WHERE id = 'e1000000-0000-0000-0000-00000000000a';
UPDATE benefits.subscriptions SET status = 'revoked' WHERE id = 'e1000000-0000-0000-0000-0000000000d3';
SELECT count(*) AS messages FROM pg_temp.emails();
-- benefits.email_from is the sender of organizations without their own.
SET benefits.email_from = 'noreply@example.net';
UPDATE benefits.subscriptions SET status = 'active' WHERE id = 'e1000000-0000-0000-0000-0000000000d3';
SELECT action, customer FROM pg_temp.emails() OFFSET 4;

-- benefits_admin reads the messages like every job, and cannot write one.
SET ROLE regress_mail_admin;
SELECT count(*) > 0 AS admin_reads FROM benefits.outbox WHERE kind = 'email';
INSERT INTO benefits.outbox (organization_id, kind, action, message_id, payload)
    VALUES ('e1000000-0000-0000-0000-00000000000a', 'email', 'benefits_granted', 'msg_x', '{}');
RESET ROLE;
-- The outbox takes no other kind.
\set VERBOSITY terse
INSERT INTO benefits.outbox (organization_id, kind, action, payload)
    VALUES ('e1000000-0000-0000-0000-00000000000a', 'sms', 'benefits_granted', '{}');
\set VERBOSITY default
RESET benefits.smtp_url;
RESET benefits.email_from;
DROP ROLE regress_mail_admin;
