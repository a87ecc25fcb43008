-- Feature flags (src/type_feature_flag.c): a feature_flag benefit names its
-- feature in metadata.feature; a customer has the feature while they hold an
-- active grant of such a benefit.  Both functions are read-only and run with
-- the caller's rights (benefits_app and benefits_admin read grants and
-- benefits), so a Row-Level Security policy may call them.  has_feature, the
-- one a policy calls for every row, is C making two direct index lookups
-- (benefits_feature below, then grants_live_benefit_customer);
-- customer_features is an SQL-standard body, bound when created.  Neither
-- resolves a name through the caller's search_path.

CREATE INDEX benefits_feature ON benefits.benefits ((metadata ->> 'feature'))
    WHERE type = 'feature_flag' AND deleted_at IS NULL;

CREATE FUNCTION benefits.has_feature(customer_id uuid, feature text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'has_feature' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION benefits.has_feature(uuid, text) IS
    'Whether the customer holds an active grant of a feature_flag benefit whose metadata names this feature';

CREATE FUNCTION benefits.customer_features(customer_id uuid) RETURNS SETOF text
    LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT DISTINCT b.metadata ->> 'feature'
      FROM benefits.grants g JOIN benefits.benefits b ON b.id = g.benefit_id
     WHERE g.customer_id = customer_features.customer_id AND g.state = 'active'
       AND b.type = 'feature_flag' AND b.deleted_at IS NULL AND b.metadata ? 'feature'
     ORDER BY 1;
END;
COMMENT ON FUNCTION benefits.customer_features(uuid) IS
    'The features the customer holds through active grants of feature_flag benefits, in name order';

GRANT EXECUTE ON FUNCTION benefits.has_feature(uuid, text), benefits.customer_features(uuid) TO benefits_app;
