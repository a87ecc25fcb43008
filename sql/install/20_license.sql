-- License keys and their activations.

CREATE TABLE benefits.license_keys (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id    uuid NOT NULL,
    customer_id        uuid NOT NULL,
    benefit_id         uuid,
    -- Canonical form (see LicenseKeyCanonical): what validate_license looks up.
    -- Compared bytewise: equality is the same under every deterministic
    -- collation, and the unique index's lookups then skip strcoll().
    key                text COLLATE "C" NOT NULL,
    display_key        text NOT NULL,
    status             text NOT NULL DEFAULT 'granted' CHECK (status IN ('granted', 'revoked', 'disabled')),
    usage              integer NOT NULL DEFAULT 0 CHECK (usage >= 0),
    limit_usage        integer CHECK (limit_usage > 0),
    limit_activations  integer CHECK (limit_activations > 0),
    validations        bigint NOT NULL DEFAULT 0,
    last_validated_at  timestamptz,
    expires_at         timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    modified_at        timestamptz,
    -- The grant that owns this key when its benefit has key_per = grant
    -- (Polar's one key per purchase); NULL for a key shared by every grant of
    -- the customer's (key_per = customer).  A plain column: the key is issued
    -- before its grant row is written.
    grant_id           uuid,
    FOREIGN KEY (customer_id, organization_id) REFERENCES benefits.customers (id, organization_id) ON DELETE CASCADE,
    FOREIGN KEY (benefit_id, organization_id) REFERENCES benefits.benefits (id, organization_id) ON DELETE SET NULL (benefit_id),
    UNIQUE (organization_id, key),
    -- One key per customer and benefit (grant_id NULL): every grant of the
    -- benefit shares it, and a re-grant restores it; or one per grant.
    CONSTRAINT license_keys_holder_key UNIQUE NULLS NOT DISTINCT (customer_id, benefit_id, grant_id)
);
CREATE INDEX ON benefits.license_keys (benefit_id);
CREATE INDEX ON benefits.license_keys (grant_id) WHERE grant_id IS NOT NULL;

CREATE TABLE benefits.license_key_activations (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    license_key_id  uuid NOT NULL REFERENCES benefits.license_keys ON DELETE CASCADE,
    label           text NOT NULL CHECK (label <> ''),
    conditions      jsonb NOT NULL DEFAULT '{}',
    meta            jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    modified_at     timestamptz,
    -- The machine's fingerprint as the application computes it; one live
    -- activation per fingerprint and key (activating it again returns it).
    fingerprint     text CHECK (octet_length(fingerprint) BETWEEN 1 AND 256),
    -- Deactivated (by deactivate_license, the portal or a missed heartbeat):
    -- the row stays as history and no longer takes a seat.
    deactivated_at  timestamptz,
    -- The last heartbeat_license of this activation.
    heartbeat_at    timestamptz
);
CREATE INDEX ON benefits.license_key_activations (license_key_id);
CREATE UNIQUE INDEX license_key_activations_live_fingerprint
    ON benefits.license_key_activations (license_key_id, fingerprint) WHERE deactivated_at IS NULL;
