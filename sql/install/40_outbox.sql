-- The outbox: every provider call and webhook delivery is a row written in the
-- transaction that caused it.  The background worker claims rows with a lease,
-- performs the I/O outside any transaction, and records the result.

CREATE TABLE benefits.webhook_endpoints (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id       uuid NOT NULL REFERENCES benefits.organizations ON DELETE CASCADE,
    url                   text NOT NULL,
    secret                text NOT NULL,
    events                text[] NOT NULL,
    enabled               boolean NOT NULL DEFAULT true,
    consecutive_failures  integer NOT NULL DEFAULT 0,
    disabled_at           timestamptz,
    disabled_reason       text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    modified_at           timestamptz
);
CREATE INDEX ON benefits.webhook_endpoints (organization_id) WHERE enabled;

CREATE TABLE benefits.outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id  uuid NOT NULL,
    -- webhook: a delivery to endpoint_id; github/discord: a provider call;
    -- oauth: linking a customer's account (exchange the code, read the account);
    -- email: a message to the customer over SMTP.
    kind             text NOT NULL CHECK (kind IN ('webhook', 'github', 'discord', 'oauth', 'email')),
    -- Jobs of one grant run in id order: a revoke never overtakes its grant.
    grant_id         uuid,
    endpoint_id      uuid REFERENCES benefits.webhook_endpoints ON DELETE CASCADE,
    -- Webhooks: the event type and the webhook-id header, stable across retries.
    event_type       text,
    message_id       text,
    -- Webhooks: 'deliver'.  GitHub: add_collaborator, remove_collaborator.
    -- Discord: add_member, add_role, remove_role, kick_member.  OAuth: link_account.
    action           text NOT NULL,
    payload          jsonb NOT NULL,
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'done', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    run_after        timestamptz NOT NULL DEFAULT now(),
    leased_until     timestamptz,
    last_status      integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    -- Provider jobs run in id order per access they touch, whatever the
    -- grant: a revoke of one grant never overtakes another grant's add of
    -- the same collaborator or member.  NULL (webhooks, incomplete
    -- payloads): ordered by grant only.
    chain_key        text GENERATED ALWAYS AS (CASE kind
        WHEN 'github' THEN 'github:' || lower(payload->>'owner') || '/' || lower(payload->>'repo')
                           || '/' || lower(payload->>'username')
        WHEN 'discord' THEN 'discord:' || (payload->>'guild_id') || '/' || (payload->>'user_id')
        END) STORED,
    CHECK ((kind = 'webhook') = (endpoint_id IS NOT NULL AND message_id IS NOT NULL))
);
CREATE INDEX outbox_due ON benefits.outbox (run_after, id) WHERE state IN ('pending', 'running');
CREATE INDEX outbox_grant ON benefits.outbox (grant_id, id) WHERE grant_id IS NOT NULL AND state <> 'done';
-- Not "state IN ('pending', 'running')": the claim's checks must not be able
-- to use outbox_due instead (src/outbox_claim.c).
CREATE INDEX outbox_chain ON benefits.outbox (chain_key, id)
    WHERE chain_key IS NOT NULL AND state <> 'done' AND state <> 'dead';
