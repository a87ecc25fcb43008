-- Customer email, sent by the worker over SMTP (benefits.smtp_url): each
-- message is an outbox row of kind 'email' written in the transaction that
-- caused it.  Organizations name the sender (else benefits.email_from), the
-- support contact and the portal's address used in every message, and the
-- kinds of message they do not send; customers may decline the messages
-- that are not about their access; subscriptions and license keys remember
-- which end of access or expiry their customer was warned about.
ALTER TABLE benefits.organizations
    ADD COLUMN email_from text CONSTRAINT organizations_email_from_check
        CHECK (length(email_from) <= 254 AND email_from ~ '^[!-~]+$'
               AND email_from ~ '^[^@<>()\[\]\\,;:"]+@[^@<>()\[\]\\,;:"]+$'),
    ADD COLUMN support_email text CONSTRAINT organizations_support_email_check
        CHECK (length(support_email) <= 254 AND support_email ~ '^[!-~]+$'
               AND support_email ~ '^[^@<>()\[\]\\,;:"]+@[^@<>()\[\]\\,;:"]+$'),
    ADD COLUMN portal_url text CONSTRAINT organizations_portal_url_check
        CHECK (portal_url ~ '^https?://[!-~]+$' AND length(portal_url) <= 2048),
    ADD COLUMN email_disabled text[] NOT NULL DEFAULT '{}' CONSTRAINT organizations_email_disabled_check
        CHECK (email_disabled <@ ARRAY['benefits_granted', 'benefits_removed', 'fulfillment_completed',
                                       'revocation_warning', 'credits_low', 'license_expiring']::text[]);
ALTER TABLE benefits.customers ADD COLUMN email_opt_out boolean NOT NULL DEFAULT false;
ALTER TABLE benefits.subscriptions ADD COLUMN revocation_warning_for timestamptz;
ALTER TABLE benefits.license_keys ADD COLUMN expiry_warning_for timestamptz;
CREATE INDEX license_keys_expiring ON benefits.license_keys (expires_at)
    WHERE status = 'granted' AND expires_at IS NOT NULL;
COMMENT ON COLUMN benefits.customers.email_opt_out IS
    'No email the customer may decline (credits running low); access changes are still sent';
COMMENT ON COLUMN benefits.subscriptions.revocation_warning_for IS
    'The end of access the customer was last warned about (run_maintenance)';
COMMENT ON COLUMN benefits.license_keys.expiry_warning_for IS
    'The expiry the customer was last warned about (run_maintenance)';
