-- Privileges, applied last so they cover every part.  No table is readable by
-- PUBLIC and no function is executable by PUBLIC; each group role gets what
-- its work needs (README, "Install in your own cluster").  Parts grant their
-- own functions to the roles.

REVOKE ALL ON ALL TABLES IN SCHEMA benefits FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA benefits FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA benefits FROM PUBLIC;

-- benefits_admin: the catalog and everything else — data only.  Never
-- TRIGGER, TRUNCATE or REFERENCES: the extension's SECURITY DEFINER functions
-- and the worker write these tables as their superuser owner, so a trigger an
-- administrator could attach would run with superuser rights.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA benefits TO benefits_admin;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA benefits TO benefits_admin;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA benefits TO benefits_admin;

-- benefits_app: the application writes customers, their linked accounts,
-- subscriptions and orders, and reads what they were granted.
GRANT SELECT ON benefits.organizations, benefits.products, benefits.benefits,
                benefits.product_benefits, benefits.grants, benefits.license_keys,
                benefits.license_key_activations, benefits.meters, benefits.files
    TO benefits_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON benefits.customers, benefits.customer_accounts,
                benefits.subscriptions, benefits.orders
    TO benefits_app;
GRANT EXECUTE ON FUNCTION benefits.list_grants(uuid, uuid, boolean) TO benefits_app;

-- What the worker sends is written only by the extension's functions: the
-- outbox (every provider call and webhook), the webhook endpoints (the URLs
-- it calls, checked by check_webhook_url) and the tracked tables (whose
-- trigger writes subscriptions and orders).  benefits_admin may read them and
-- delete, which sends nothing.
REVOKE INSERT, UPDATE ON benefits.outbox, benefits.webhook_endpoints FROM benefits_admin;
REVOKE INSERT, UPDATE, DELETE ON benefits.tracked_tables FROM benefits_admin;
-- Manual fulfillment: the list is read, and grants complete through
-- complete_fulfillment.
REVOKE INSERT, UPDATE, DELETE ON benefits.pending_fulfillments FROM benefits_admin;
-- A standby's batches are recorded only by receive_validation_counts.
REVOKE INSERT, UPDATE, DELETE ON benefits.validation_count_senders FROM benefits_admin;

-- Linked accounts: the customers' OAuth tokens are readable by the
-- extension's owner only, and accounts are written through link_account,
-- which checks them.
REVOKE ALL ON benefits.customer_accounts FROM benefits_admin, benefits_app;
GRANT SELECT (customer_id, platform, account_id, username, created_at, modified_at,
               token_expires_at, scopes), DELETE
    ON benefits.customer_accounts TO benefits_admin, benefits_app;
-- Link attempts are written by the portal functions and the worker: the
-- states and the tokens of an exchange are the owner's alone.
REVOKE ALL ON benefits.oauth_states, benefits.oauth_exchanges, benefits.account_links
    FROM benefits_admin, benefits_app;
GRANT SELECT, DELETE ON benefits.account_links TO benefits_admin;
GRANT SELECT ON benefits.account_links TO benefits_app;

-- Trigger functions and the worker's own calls are executed by nobody but
-- the owner (a trigger fires without an EXECUTE check; without EXECUTE
-- nobody can attach these functions to a table of their own).
REVOKE EXECUTE ON FUNCTION
    benefits.default_organization_from_customer(), benefits.grants_state_guard(),
    benefits.subscriptions_before(), benefits.subscriptions_after(), benefits.orders_after(),
    benefits.grant_source_deleted(), benefits.grants_sync_events(), benefits.outbox_wake(),
    benefits.track_trigger(), benefits.meter_balance_deleted(),
    benefits.webhook_endpoint_failed(uuid, boolean, text, integer),
    benefits.github_invitation_step(text, text, boolean, integer),
    benefits.enqueue_grant_event(uuid, text, jsonb), benefits.enqueue_benefit_event(uuid, text),
    benefits.oauth_code_answer(bigint, integer, text), benefits.oauth_account_answer(bigint, integer, text),
    benefits.discord_refresh_answer(bigint, integer, text), benefits.oauth_link_failed(bigint, uuid, text, text),
    benefits.job_credentials(bigint[]), benefits.oauth_token_response(text), benefits.oauth_error_of(text)
    FROM benefits_admin;

-- License signing keys: the Ed25519 secret keys are readable by the
-- extension's owner only (checkout_license and rotate_license_signing_key
-- run as the owner); benefits_admin sees the other columns and changes
-- nothing but through rotate_license_signing_key.
REVOKE ALL ON benefits.license_signing_keys FROM benefits_admin;
GRANT SELECT (kid, organization_id, public_key, created_at, retired_at)
    ON benefits.license_signing_keys TO benefits_admin;
