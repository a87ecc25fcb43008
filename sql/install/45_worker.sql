-- The delivery worker's SQL: the commit wake-up trigger, webhook endpoints
-- and signatures, dead jobs and their retry.  The worker itself is C
-- (src/worker.c); it serves the databases in benefits.database_names.

-- Wake the database's worker when a transaction that queued jobs commits.
CREATE FUNCTION benefits.outbox_wake() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'outbox_wake';
CREATE TRIGGER outbox_wake AFTER INSERT ON benefits.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION benefits.outbox_wake();

-- Wake the worker when the calling transaction commits.
CREATE FUNCTION benefits.wake_worker() RETURNS void
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'wake_worker';

-- Pending deliveries of one endpoint (dead-lettered when it is disabled).
CREATE INDEX outbox_endpoint_pending ON benefits.outbox (endpoint_id) WHERE state = 'pending';

-- Standard Webhooks signature header value: v1,<base64 HMAC-SHA256 of
-- "msg_id.timestamp.body" keyed with the decoded whsec_ secret>.
CREATE FUNCTION benefits.sign_webhook(secret text, msg_id text, "timestamp" bigint, body text)
    RETURNS text LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'sign_webhook';

-- A new endpoint secret: whsec_ + base64 of 24 random bytes.
CREATE FUNCTION benefits.generate_webhook_secret() RETURNS text
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'generate_webhook_secret';

-- Raise 22023 unless url is an absolute http(s) URL of an allowed host.
CREATE FUNCTION benefits.check_webhook_url(url text) RETURNS void
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'check_webhook_url';

-- The event types an endpoint can subscribe to.
CREATE FUNCTION benefits.webhook_event_types() RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ARRAY['benefit.created', 'benefit.updated',
                 'benefit_grant.created', 'benefit_grant.updated',
                 'benefit_grant.cycled', 'benefit_grant.revoked',
                 'meter.low_balance', 'license_key.activation_released',
                 'benefit_grant.revocation_scheduled', 'license_key.expiring'];

-- The event types an endpoint subscribes to, checked and sorted (22023 for
-- an empty list or an unknown type, naming its position).
CREATE FUNCTION benefits.checked_webhook_events(events text[]) RETURNS text[]
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    known text[] := benefits.webhook_event_types();
    ev text;
    i integer := 0;
BEGIN
    IF events IS NULL OR cardinality(events) = 0 THEN
        RAISE EXCEPTION 'events must name at least one event type'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Event types: ' || array_to_string(known, ', ') || '.';
    END IF;
    FOREACH ev IN ARRAY events LOOP
        i := i + 1;
        IF ev IS NULL OR NOT ev = ANY (known) THEN
            RAISE EXCEPTION 'events[%] is not a webhook event type: %', i, coalesce(quote_literal(ev), 'null')
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Event types: ' || array_to_string(known, ', ') || '.';
        END IF;
    END LOOP;
    RETURN ARRAY(SELECT DISTINCT e FROM unnest(events) e ORDER BY e);
END
$$;

-- Register a webhook endpoint with a fresh secret.  The returned row is the
-- only time the secret is shown to anyone but benefits_admin.  Endpoints are
-- written only through these functions (SECURITY DEFINER), so every URL the
-- worker calls has passed check_webhook_url.
CREATE FUNCTION benefits.create_webhook_endpoint(organization_id uuid, url text, events text[])
    RETURNS benefits.webhook_endpoints
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    result benefits.webhook_endpoints;
BEGIN
    IF organization_id IS NULL THEN
        RAISE EXCEPTION 'organization_id must not be null' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM benefits.organizations o WHERE o.id = create_webhook_endpoint.organization_id) THEN
        RAISE EXCEPTION 'organization % does not exist', organization_id USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF url IS NULL THEN
        RAISE EXCEPTION 'url must not be null' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM benefits.check_webhook_url(url);
    INSERT INTO benefits.webhook_endpoints (organization_id, url, secret, events)
    VALUES (create_webhook_endpoint.organization_id, create_webhook_endpoint.url,
            benefits.generate_webhook_secret(), benefits.checked_webhook_events(events))
    RETURNING * INTO result;
    RETURN result;
END
$$;

-- Change an endpoint's URL or event types (NULL keeps them), checked as at
-- creation.  Deliveries already queued keep going to the endpoint.
CREATE FUNCTION benefits.update_webhook_endpoint(endpoint_id uuid, url text DEFAULT NULL, events text[] DEFAULT NULL)
    RETURNS benefits.webhook_endpoints
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    result benefits.webhook_endpoints;
BEGIN
    IF url IS NOT NULL THEN
        PERFORM benefits.check_webhook_url(url);
    END IF;
    UPDATE benefits.webhook_endpoints e
       SET url = coalesce(update_webhook_endpoint.url, e.url),
           events = CASE WHEN update_webhook_endpoint.events IS NULL THEN e.events
                         ELSE benefits.checked_webhook_events(update_webhook_endpoint.events) END,
           modified_at = now()
     WHERE e.id = endpoint_id
    RETURNING * INTO result;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'webhook endpoint % does not exist', endpoint_id USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN result;
END
$$;

-- Turn a disabled endpoint back on (failure count cleared).  Deliveries that
-- died while it was disabled are retried with benefits.retry_job().
CREATE FUNCTION benefits.enable_webhook_endpoint(endpoint_id uuid) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE benefits.webhook_endpoints e
       SET enabled = true, consecutive_failures = 0, disabled_at = NULL, disabled_reason = NULL,
           modified_at = now()
     WHERE e.id = endpoint_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'webhook endpoint % does not exist', endpoint_id USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

-- Endpoint life events (today: webhook_endpoint.disabled), for the admin.
CREATE TABLE benefits.webhook_endpoint_events (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id      uuid NOT NULL REFERENCES benefits.webhook_endpoints ON DELETE CASCADE,
    organization_id  uuid NOT NULL,
    type             text NOT NULL,
    reason           text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON benefits.webhook_endpoint_events (endpoint_id);

-- Called by the worker for each failed delivery attempt.  Disables the
-- endpoint at once on 410 Gone, or after disable_after consecutive failures;
-- then its pending deliveries are dead-lettered (retry_job re-queues them),
-- a webhook_endpoint.disabled event is recorded and notified on channel
-- benefits_webhook_endpoint.  Returns whether it disabled the endpoint.
CREATE FUNCTION benefits.webhook_endpoint_failed(endpoint_id uuid, gone boolean, reason text, disable_after integer)
    RETURNS boolean
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    failures integer;
    org uuid;
    why text;
BEGIN
    UPDATE benefits.webhook_endpoints e
       SET consecutive_failures = e.consecutive_failures + 1
     WHERE e.id = endpoint_id AND e.enabled
    RETURNING e.consecutive_failures, e.organization_id INTO failures, org;
    IF NOT FOUND OR NOT (gone OR failures >= disable_after) THEN
        RETURN false;
    END IF;
    why := CASE WHEN gone THEN 'the endpoint answered 410 Gone'
                ELSE format('%s consecutive failed deliveries; the last: %s', failures, reason) END;
    UPDATE benefits.webhook_endpoints e
       SET enabled = false, disabled_at = now(), disabled_reason = why, modified_at = now()
     WHERE e.id = endpoint_id;
    UPDATE benefits.outbox o
       SET state = 'dead', finished_at = now(), leased_until = NULL,
           last_error = 'webhook endpoint disabled: ' || why
     WHERE o.endpoint_id = webhook_endpoint_failed.endpoint_id AND o.state = 'pending';
    INSERT INTO benefits.webhook_endpoint_events (endpoint_id, organization_id, type, reason)
    VALUES (endpoint_id, org, 'webhook_endpoint.disabled', why);
    PERFORM pg_notify('benefits_webhook_endpoint',
                      json_build_object('type', 'webhook_endpoint.disabled', 'endpoint_id', endpoint_id,
                                        'organization_id', org, 'reason', why)::text);
    RAISE LOG 'benefits: webhook endpoint % disabled: %', endpoint_id, why;
    RETURN true;
END
$$;

-- GitHub revoke, step 0: look for the customer's pending invitation in a
-- page of GET /repos/{owner}/{repo}/invitations.  Returns the payload patch
-- for the next step: delete that invitation, fetch the next page, or remove
-- the collaborator.  NULL when the page is not a readable JSON array (any
-- error reading it, e.g. invalid JSON or a \u0000 escape): the worker then
-- retries the listing, since removing the collaborator without having seen
-- the invitations could leave one pending.  The worker of this version
-- passes has_next false and chooses the next page itself (providers.c,
-- GithubInvitationWalk); the forward walk is kept for 0.1.0's worker.
CREATE FUNCTION benefits.github_invitation_step(body text, username text, has_next boolean, page integer)
    RETURNS jsonb
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    j jsonb;
    invitation text;
BEGIN
    BEGIN
        j := body::jsonb;
        IF jsonb_typeof(j) IS DISTINCT FROM 'array' THEN
            RETURN NULL;
        END IF;
        SELECT e->>'id' INTO invitation
          FROM jsonb_array_elements(j) e
         WHERE jsonb_typeof(e) = 'object' AND jsonb_typeof(e->'invitee') = 'object'
           AND lower(e->'invitee'->>'login') = lower(username)
         LIMIT 1;
    EXCEPTION WHEN OTHERS THEN
        RETURN NULL;
    END;
    IF invitation IS NOT NULL THEN
        RETURN jsonb_build_object('_step', 1, '_invitation_id', invitation);
    ELSIF has_next AND page < 100 THEN
        RETURN jsonb_build_object('_invitation_page', page + 1);
    END IF;
    RETURN jsonb_build_object('_step', 2);
END
$$;

-- Jobs that failed permanently or ran out of attempts, with their last error.
CREATE VIEW benefits.dead_jobs AS
SELECT id, organization_id, kind, action, grant_id, endpoint_id, event_type, message_id,
       attempts, last_status, last_error, created_at, finished_at, payload
  FROM benefits.outbox
 WHERE state = 'dead';

-- Queue a dead job again, with a fresh set of attempts.
CREATE FUNCTION benefits.retry_job(id bigint) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    job_state text;
    endpoint_enabled boolean;
BEGIN
    SELECT o.state, e.enabled INTO job_state, endpoint_enabled
      FROM benefits.outbox o LEFT JOIN benefits.webhook_endpoints e ON e.id = o.endpoint_id
     WHERE o.id = retry_job.id
       FOR UPDATE OF o;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job % does not exist', id USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF job_state <> 'dead' THEN
        RAISE EXCEPTION 'job % is %, not dead', id, job_state USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF endpoint_enabled IS FALSE THEN
        RAISE EXCEPTION 'job % delivers to a disabled webhook endpoint', id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Enable the endpoint first with benefits.enable_webhook_endpoint().';
    END IF;
    UPDATE benefits.outbox o
       SET state = 'pending', attempts = 0, run_after = now(), leased_until = NULL, finished_at = NULL
     WHERE o.id = retry_job.id;
    PERFORM benefits.wake_worker();
END
$$;

-- Done jobs by age, for pruning (benefits.outbox_retention).
CREATE INDEX outbox_done ON benefits.outbox (finished_at) WHERE state = 'done';
