-- Machines and offline licenses (src/license_validate.c, src/license_checkout.c):
-- heartbeats of activations, per-organization Ed25519 signing keys and
-- signed license files an application verifies without calling home.

-- An activation's machine says it is alive.  A single-row write (the
-- activation's heartbeat_at); run_maintenance releases the activations of a
-- benefit with activations.heartbeat that stay silent past their window.
CREATE FUNCTION benefits.heartbeat_license(key text, organization_id uuid, activation_id uuid)
    RETURNS benefits.license_validation
    AS 'MODULE_PATHNAME', 'heartbeat_license'
    LANGUAGE C VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION benefits.heartbeat_license(text, uuid, uuid) IS
    'Record that an activation''s machine is alive; answers like validate_license';

-- Each organization's Ed25519 key pairs: one current (retired_at NULL),
-- created on the first checkout or by rotate_license_signing_key, and the
-- retired ones, whose public keys stay listed so that files they signed
-- verify until they expire.  kid is the first 8 bytes of the SHA-256 of the
-- public key, in hex.  secret_key (libsodium's 64-byte form) is readable by
-- the extension's owner only (99_privileges.sql).
CREATE TABLE benefits.license_signing_keys (
    kid              text PRIMARY KEY CHECK (kid ~ '^[0-9a-f]{16}$'),
    organization_id  uuid NOT NULL REFERENCES benefits.organizations ON DELETE CASCADE,
    public_key       bytea NOT NULL CHECK (length(public_key) = 32),
    secret_key       bytea NOT NULL CHECK (length(secret_key) = 64),
    created_at       timestamptz NOT NULL DEFAULT now(),
    retired_at       timestamptz
);
CREATE UNIQUE INDEX license_signing_keys_current
    ON benefits.license_signing_keys (organization_id) WHERE retired_at IS NULL;
CREATE INDEX ON benefits.license_signing_keys (organization_id, created_at);

-- The public keys an application embeds to verify license files: base64 of
-- the 32 raw Ed25519 bytes, the current one first.  Public by nature, so
-- benefits_public may read them; nothing else of the table.
CREATE FUNCTION benefits.license_public_keys(organization_id uuid)
    RETURNS TABLE (kid text, public_key text, created_at timestamptz, retired_at timestamptz)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF license_public_keys.organization_id IS NULL THEN
        RAISE EXCEPTION 'organization_id must not be null' USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
        SELECT k.kid, encode(k.public_key, 'base64'), k.created_at, k.retired_at
          FROM benefits.license_signing_keys k
         WHERE k.organization_id = license_public_keys.organization_id
         ORDER BY k.retired_at IS NOT NULL, k.created_at DESC, k.kid;
END
$$;
COMMENT ON FUNCTION benefits.license_public_keys(uuid) IS
    'The organization''s Ed25519 public keys for license files (current first, then retired ones)';

-- A new current signing key for the organization (the first one, or the
-- next: the previous one is retired and stays listed).  Returns its kid.
CREATE FUNCTION benefits.rotate_license_signing_key(organization_id uuid)
    RETURNS text
    AS 'MODULE_PATHNAME', 'rotate_license_signing_key'
    LANGUAGE C VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION benefits.rotate_license_signing_key(uuid) IS
    'Create the organization''s next license signing key and retire the current one (still listed)';

-- A signed license file for a valid key (and live activation, when given),
-- valid for ttl but never past the key's own expiry; NULL for a key that
-- does not validate (validate_license says why).
CREATE FUNCTION benefits.checkout_license(key text, organization_id uuid,
                                          activation_id uuid DEFAULT NULL,
                                          ttl interval DEFAULT '30 days')
    RETURNS text
    AS 'MODULE_PATHNAME', 'checkout_license'
    LANGUAGE C VOLATILE;
-- Neither SECURITY DEFINER nor SET search_path, as for validate_license: the
-- two clauses cost about a tenth of a checkout.  Its direct index scans
-- resolve nothing by name and check no privileges; an organization's first
-- key is written as the function's owner under a search path the C code pins
-- (src/license_checkout.c, CurrentSigningKey).
COMMENT ON FUNCTION benefits.checkout_license(text, uuid, uuid, interval) IS
    'A signed offline license file (Ed25519) for a valid key, or NULL';

GRANT EXECUTE ON FUNCTION
    benefits.heartbeat_license(text, uuid, uuid),
    benefits.license_public_keys(uuid),
    benefits.checkout_license(text, uuid, uuid, interval)
    TO benefits_public, benefits_app;
