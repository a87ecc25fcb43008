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
    AS 'MODULE_PATHNAME', 'customer_session_customer' LANGUAGE C VOLATILE
    SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION benefits.html_escape(value text)
    RETURNS text
    AS 'MODULE_PATHNAME', 'html_escape' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

GRANT EXECUTE ON FUNCTION benefits.create_customer_session(uuid, text) TO benefits_app;
GRANT EXECUTE ON FUNCTION benefits.revoke_customer_sessions(uuid) TO benefits_app;
GRANT EXECUTE ON FUNCTION benefits.revoke_customer_session(text) TO benefits_app, benefits_public;

-- Internal: the portal document of one customer (what customer_portal
-- returns; src/portal_document.c describes its shape).  Benefits appear once
-- each, in attachment order (the order of the subscriptions/orders that
-- granted them, then each product's benefit order; manual grants last),
-- revoked ones not at all.
CREATE FUNCTION benefits.portal_document(customer_id uuid)
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 'portal_document' LANGUAGE C STABLE
    SET search_path = pg_catalog, pg_temp;

-- The customer portal: everything the session's customer was granted.
CREATE FUNCTION benefits.customer_portal(token text)
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 'customer_portal' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- Customer self-service: deactivate one activation of one of the customer's
-- own license keys, when the benefit lets customers manage activations (the
-- row stays as history, as deactivate_license keeps it).  The key row is
-- locked as activate_license locks it, so counting stays exact.
CREATE FUNCTION benefits.portal_deactivate_license(token text, activation_id uuid)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cid uuid := benefits.customer_session_customer(token);
    k record;
BEGIN
    SELECT lk.id, coalesce((b.properties #>> '{activations,enable_customer_admin}')::boolean, false) AS customer_admin
      INTO k
      FROM benefits.license_key_activations a
      JOIN benefits.license_keys lk ON lk.id = a.license_key_id
      JOIN benefits.benefits b ON b.id = lk.benefit_id
     WHERE a.id = activation_id AND a.deactivated_at IS NULL AND lk.customer_id = cid AND lk.status = 'granted'
       AND EXISTS (SELECT FROM benefits.grants g
                    WHERE g.customer_id = cid AND g.benefit_id = lk.benefit_id AND g.state = 'active')
       FOR UPDATE OF lk;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'activation_id does not name an activation of your license keys' USING ERRCODE = '22023';
    END IF;
    IF NOT k.customer_admin THEN
        RAISE EXCEPTION 'the activations of this license key are managed by the seller' USING ERRCODE = '42501',
              HINT = 'Ask the seller to remove the activation.';
    END IF;
    UPDATE benefits.license_key_activations a SET deactivated_at = now(), modified_at = now()
     WHERE a.id = activation_id AND a.license_key_id = k.id AND a.deactivated_at IS NULL;
    RETURN FOUND;
END
$$;

-- The portal document as a complete, self-contained HTML page (rendered in C,
-- src/portal_html.c; every value escaped).  With action_url, each activation
-- a customer may remove gets a form posting activation_id there (the
-- application calls portal_deactivate_license with it).
CREATE FUNCTION benefits.portal_html(doc jsonb, action_url text DEFAULT NULL)
    RETURNS text
    AS 'MODULE_PATHNAME', 'portal_html' LANGUAGE C STABLE
    SET search_path = pg_catalog, pg_temp;

-- With link_redirect_uri, each GitHub or Discord benefit waiting for an
-- account links to the provider's authorize URL (portal_link_url), returning
-- there; with action_url, a linked account gets a form to disconnect it.
CREATE FUNCTION benefits.customer_portal_html(token text, action_url text DEFAULT NULL,
                                              link_redirect_uri text DEFAULT NULL)
    RETURNS text
    AS 'MODULE_PATHNAME', 'customer_portal_html' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

GRANT EXECUTE ON FUNCTION benefits.customer_portal(text),
                          benefits.customer_portal_html(text, text, text),
                          benefits.portal_deactivate_license(text, uuid)
    TO benefits_app, benefits_public;
