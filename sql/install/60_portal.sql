-- Customer sessions and the customer portal.  A session token (src/portal.c)
-- is shown once; only its SHA-256 is stored.  The portal functions take the
-- token and show the customer what they were granted.

CREATE TABLE benefits.customer_sessions (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  uuid NOT NULL,
    customer_id      uuid NOT NULL,
    token_hash       bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    revoked_at       timestamptz,
    FOREIGN KEY (customer_id, organization_id) REFERENCES benefits.customers (id, organization_id) ON DELETE CASCADE
);
CREATE INDEX ON benefits.customer_sessions (customer_id);

CREATE FUNCTION benefits.create_customer_session(organization_id uuid, external_customer_id text)
    RETURNS text
    AS 'MODULE_PATHNAME', 'create_customer_session' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION benefits.create_customer_session(uuid, text) IS
    'A customer portal session token (bcs_...) for the customer with this external id; valid for benefits.customer_session_ttl';

CREATE FUNCTION benefits.revoke_customer_session(token text)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'revoke_customer_session' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- Ends every live session of a customer (the application logs them out everywhere).
CREATE FUNCTION benefits.revoke_customer_sessions(customer_id uuid)
    RETURNS integer
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
    WITH r AS (
        UPDATE benefits.customer_sessions s SET revoked_at = now()
         WHERE s.customer_id = revoke_customer_sessions.customer_id
           AND s.revoked_at IS NULL AND s.expires_at > now()
        RETURNING 1)
    SELECT count(*)::integer FROM r
$$;

-- Internal: the customer of a live session (SQLSTATE 28000 otherwise).
CREATE FUNCTION benefits.customer_session_customer(token text)
    RETURNS uuid
    AS 'MODULE_PATHNAME', 'customer_session_customer' LANGUAGE C VOLATILE;

CREATE FUNCTION benefits.html_escape(value text)
    RETURNS text
    AS 'MODULE_PATHNAME', 'html_escape' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

GRANT EXECUTE ON FUNCTION benefits.create_customer_session(uuid, text) TO benefits_app;
GRANT EXECUTE ON FUNCTION benefits.revoke_customer_sessions(uuid) TO benefits_app;
GRANT EXECUTE ON FUNCTION benefits.revoke_customer_session(text) TO benefits_app, benefits_public;
