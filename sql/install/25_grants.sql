-- Grants: the state machine trigger, manual grants and revokes, listing.
-- The manual grants and revokes are SECURITY DEFINER: they write provider
-- jobs and webhook events into the outbox, which benefits_admin may not.

CREATE FUNCTION benefits.grants_state_guard() RETURNS trigger
    AS 'MODULE_PATHNAME', 'grants_state_guard' LANGUAGE C;
CREATE TRIGGER state_guard BEFORE INSERT OR UPDATE ON benefits.grants
    FOR EACH ROW EXECUTE FUNCTION benefits.grants_state_guard();

CREATE FUNCTION benefits.grant_benefit(customer_id uuid, benefit_id uuid)
    RETURNS benefits.grants
    AS 'MODULE_PATHNAME', 'grant_benefit' LANGUAGE C VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp SET enable_seqscan = off;
COMMENT ON FUNCTION benefits.grant_benefit(uuid, uuid) IS
    'Grant a benefit to a customer by hand; idempotent, and restores a revoked grant';

CREATE FUNCTION benefits.revoke_benefit(customer_id uuid, benefit_id uuid)
    RETURNS void
    AS 'MODULE_PATHNAME', 'revoke_benefit' LANGUAGE C VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp SET enable_seqscan = off;
COMMENT ON FUNCTION benefits.revoke_benefit(uuid, uuid) IS
    'Revoke a manual grant';

-- is_granted: true lists active grants, false the others (pending or revoked).
CREATE FUNCTION benefits.list_grants(customer_id uuid DEFAULT NULL, benefit_id uuid DEFAULT NULL,
                                     is_granted boolean DEFAULT NULL)
    RETURNS SETOF benefits.grants
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT g.* FROM benefits.grants g
         WHERE ($1 IS NULL OR g.customer_id = $1)
           AND ($2 IS NULL OR g.benefit_id = $2)
           AND ($3 IS NULL OR (g.state = 'active') = $3)
         ORDER BY g.created_at, g.id
    $$;

CREATE FUNCTION benefits.grant_benefit_bulk(customer_ids uuid[], benefit_id uuid)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'grant_benefit_bulk' LANGUAGE C VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION benefits.grant_benefit_bulk(uuid[], uuid) IS
    'Grant a benefit by hand to many customers at once, set-based; returns the grants made or restored';
