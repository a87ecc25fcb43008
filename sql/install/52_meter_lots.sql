-- Credit lots (meter_ledger.c, meter_usage.c): every credit on a meter is a
-- lot with its source and, where it has one, the time it expires.  Usage
-- consumes the lots that expire soonest first, then the rest in the order
-- received.  meter_balances keeps the balance (one indexed read) and the
-- units consumed; consumed - settled_consumed is usage not yet taken from
-- the lots, which is taken (settled) under the balance row's lock before any
-- lot changes, so record_usage stays one row update.

CREATE TABLE benefits.meter_lots (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id  uuid NOT NULL,
    customer_id      uuid NOT NULL,
    meter_id         uuid NOT NULL REFERENCES benefits.meters ON DELETE CASCADE,
    -- grant: a benefit's credit at grant time; cycle: at a renewal; pack: a
    -- one-time order's; top_up and adjustment: adjust_credits.
    source           text NOT NULL CHECK (source IN ('grant', 'cycle', 'pack', 'top_up', 'adjustment')),
    -- No foreign key: the handler credits before the grant row is written.
    grant_id         uuid,
    units            bigint NOT NULL CHECK (units > 0),
    remaining        bigint NOT NULL CHECK (remaining >= 0 AND remaining <= units),
    -- The end of the subscription period whose renewal expires the lot
    -- (benefit credits without rollover), or NULL.
    expires_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (customer_id, organization_id) REFERENCES benefits.customers (id, organization_id) ON DELETE CASCADE
);
-- The lots left, in the order usage takes them.
CREATE INDEX meter_lots_consume ON benefits.meter_lots (customer_id, meter_id, expires_at NULLS LAST, id)
    WHERE remaining > 0;
CREATE INDEX meter_lots_grant ON benefits.meter_lots (grant_id, id) WHERE grant_id IS NOT NULL;

-- Usage already taken from the lots (see above).
ALTER TABLE benefits.meter_balances ADD COLUMN settled_consumed bigint NOT NULL DEFAULT 0;

-- Ledger rows of adjust_credits and packs, the lot a credit made, the
-- caller's idempotency key and reason.
ALTER TABLE benefits.meter_credits
    ADD COLUMN lot_id bigint,
    ADD COLUMN idempotency_key text,
    ADD COLUMN note text;
CREATE UNIQUE INDEX meter_credits_idempotency ON benefits.meter_credits (customer_id, meter_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Usage: when it happened (late events carry their own time) and the
-- caller's idempotency key.  A usage row belongs to its balance row, which
-- goes with its customer and meter, and goes with it (usage_cascade): no
-- foreign key is checked on every usage, which would share-lock the
-- customer and meter rows from every concurrent caller.  Only the
-- extension writes usage, always with its balance row.
ALTER TABLE benefits.meter_usage
    ADD COLUMN idempotency_key text,
    ADD COLUMN occurred_at timestamptz,
    ALTER COLUMN occurred_at SET DEFAULT now(),
    ALTER COLUMN occurred_at SET NOT NULL,
    DROP CONSTRAINT meter_usage_customer_id_fkey,
    DROP CONSTRAINT meter_usage_meter_id_fkey;
CREATE FUNCTION benefits.meter_balance_deleted() RETURNS trigger
AS 'MODULE_PATHNAME', 'meter_balance_deleted'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off;
CREATE TRIGGER usage_cascade AFTER DELETE ON benefits.meter_balances
    FOR EACH ROW EXECUTE FUNCTION benefits.meter_balance_deleted();
CREATE INDEX meter_usage_history ON benefits.meter_usage (customer_id, meter_id, occurred_at);
CREATE UNIQUE INDEX meter_usage_idempotency ON benefits.meter_usage (customer_id, meter_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE FUNCTION benefits.adjust_credits(customer_id uuid, meter_id uuid, units bigint, reason text,
                                        idempotency_key text DEFAULT NULL) RETURNS bigint
AS 'MODULE_PATHNAME', 'adjust_credits'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off;
COMMENT ON FUNCTION benefits.adjust_credits(uuid, uuid, bigint, text, text) IS
    'Top up (positive units) or correct (negative) a customer''s credits on a meter and return the new balance; never below zero unless the meter allows overage (23514 otherwise); a repeated idempotency key returns the first result';

-- Units credited and used per bucket of [since, until), empty buckets
-- included, for charts.  Buckets start at since.
CREATE FUNCTION benefits.meter_usage_history(customer_id uuid, meter_id uuid, since timestamptz, until timestamptz,
                                             bucket interval DEFAULT '1 day')
RETURNS TABLE (bucket_start timestamptz, credited bigint, used bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    buckets double precision;
    step interval;
BEGIN
    IF customer_id IS NULL OR meter_id IS NULL OR since IS NULL OR until IS NULL OR bucket IS NULL THEN
        RAISE EXCEPTION '% must not be null',
            CASE WHEN customer_id IS NULL THEN 'customer_id' WHEN meter_id IS NULL THEN 'meter_id'
                 WHEN since IS NULL THEN 'since' WHEN until IS NULL THEN 'until' ELSE 'bucket' END
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT isfinite(since) OR NOT isfinite(until) OR until <= since THEN
        RAISE EXCEPTION 'until must be a finite time after since'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('since is %s and until is %s.', since, until);
    END IF;
    IF extract(month FROM bucket) <> 0 OR extract(year FROM bucket) <> 0 OR bucket < interval '1 minute'
       OR bucket > interval '366 days' THEN
        RAISE EXCEPTION 'bucket must be between 1 minute and 366 days, without months or years'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('bucket is %s.', bucket);
    END IF;
    -- Buckets of fixed length (a day is 24 hours), as date_bin counts them.
    step := make_interval(secs => extract(epoch FROM bucket));
    buckets := extract(epoch FROM until - since) / extract(epoch FROM step);
    IF buckets > 10000 THEN
        RAISE EXCEPTION 'since to until spans more than 10000 buckets'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('%s buckets of %s.', ceil(buckets), bucket);
    END IF;
    IF NOT EXISTS (SELECT FROM benefits.meters m WHERE m.id = meter_usage_history.meter_id) THEN
        RAISE EXCEPTION 'meter_id % does not exist', meter_id USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM benefits.customers c JOIN benefits.meters m ON m.organization_id = c.organization_id
                    WHERE c.id = meter_usage_history.customer_id AND m.id = meter_usage_history.meter_id) THEN
        RAISE EXCEPTION 'customer_id % does not exist in the meter''s organization', customer_id
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    WITH used AS (
        SELECT date_bin(step, u.occurred_at, since) AS b, sum(u.units)::bigint AS units
          FROM benefits.meter_usage u
         WHERE u.customer_id = meter_usage_history.customer_id AND u.meter_id = meter_usage_history.meter_id
           AND u.occurred_at >= since AND u.occurred_at < until
         GROUP BY 1),
    credited AS (
        SELECT date_bin(step, c.created_at, since) AS b, sum(c.units)::bigint AS units
          FROM benefits.meter_credits c
         WHERE c.customer_id = meter_usage_history.customer_id AND c.meter_id = meter_usage_history.meter_id
           AND c.created_at >= since AND c.created_at < until AND c.units > 0
         GROUP BY 1)
    SELECT s.b, coalesce(credited.units, 0), coalesce(used.units, 0)
      FROM generate_series(since, until - interval '1 microsecond', step) AS s(b)
      LEFT JOIN used ON used.b = s.b
      LEFT JOIN credited ON credited.b = s.b
     ORDER BY s.b;
END
$$;
COMMENT ON FUNCTION benefits.meter_usage_history(uuid, uuid, timestamptz, timestamptz, interval) IS
    'Units credited and used per bucket from since to until (empty buckets included), for charts';

GRANT EXECUTE ON FUNCTION benefits.adjust_credits(uuid, uuid, bigint, text, text),
                          benefits.meter_usage_history(uuid, uuid, timestamptz, timestamptz, interval)
    TO benefits_app;
GRANT SELECT ON benefits.meter_lots TO benefits_app;
