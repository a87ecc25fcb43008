-- Manual fulfillment: custom benefits with "fulfillment": "manual" are
-- granted in state created, with grant properties {"fulfillment": "pending"},
-- until the seller calls complete_fulfillment.  SECURITY DEFINER: it writes
-- benefit_grant.updated into the outbox, which benefits_admin may not.

CREATE FUNCTION benefits.complete_fulfillment(grant_id uuid, note text DEFAULT NULL)
    RETURNS benefits.grants
    AS 'MODULE_PATHNAME', 'complete_fulfillment' LANGUAGE C VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION benefits.complete_fulfillment(uuid, text) IS
    'Mark a manually fulfilled grant as delivered: it becomes active, with the seller''s note';

-- What waits for the seller, oldest first.  since: when the grant started
-- waiting (its creation, or the re-grant that made it wait again).
CREATE VIEW benefits.pending_fulfillments AS
SELECT g.id AS grant_id, g.organization_id, g.customer_id, g.benefit_id,
       coalesce(g.modified_at, g.created_at) AS since,
       g.subscription_id, g.order_id,
       c.email AS customer_email, c.name AS customer_name, b.description AS benefit_description
  FROM benefits.grants g
  JOIN benefits.customers c ON c.id = g.customer_id
  JOIN benefits.benefits b ON b.id = g.benefit_id
 WHERE g.state = 'created' AND g.properties ->> 'fulfillment' = 'pending'
 ORDER BY since, g.id;
COMMENT ON VIEW benefits.pending_fulfillments IS
    'Grants of manually fulfilled benefits waiting for the seller, oldest first';
CREATE INDEX grants_pending_fulfillment ON benefits.grants ((coalesce(modified_at, created_at)))
    WHERE state = 'created' AND properties ->> 'fulfillment' = 'pending';
