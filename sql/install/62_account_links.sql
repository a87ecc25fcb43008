-- Linked accounts, and customers linking their own from the portal.
--
-- The OAuth 2.0 authorization code flow, with every network call made by the
-- worker: portal_link_url hands out the provider's authorize URL carrying a
-- fresh state (src/account_links.c); the provider sends the customer back to
-- the application with a code and that state; portal_link_callback checks and
-- consumes the state and queues an 'oauth' job; the worker exchanges the code
-- for tokens, reads the account and links it through link_account
-- (src/oauth_jobs.c and the answer functions below).  Every function that
-- changes links locks the customer row first (FOR NO KEY UPDATE), as every
-- grant change does.

CREATE FUNCTION benefits.link_account(customer_id uuid, platform text, account_id text,
                                      username text DEFAULT NULL, access_token text DEFAULT NULL,
                                      refresh_token text DEFAULT NULL, token_expires_at timestamptz DEFAULT NULL,
                                      scopes text[] DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'link_account'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off;
COMMENT ON FUNCTION benefits.link_account(uuid, text, text, text, text, text, timestamptz, text[]) IS
    'Record a customer''s GitHub or Discord account (and its OAuth tokens), move delivered access to it, and queue the provider jobs of the grants that waited for it';
GRANT EXECUTE ON FUNCTION benefits.link_account(uuid, text, text, text, text, text, timestamptz, text[])
    TO benefits_app;

-- The live grants of a benefit delivered to one GitHub or Discord account,
-- whichever customer holds them (two customers may link the same account):
-- its access is removed only when the last of them goes.
CREATE INDEX grants_live_delivered_account ON benefits.grants (benefit_id, (properties->>'account_id'))
    WHERE state <> 'revoked' AND properties ? 'account_id';

-- The states handed out with authorize URLs, by their SHA-256: single-use
-- (deleted when the callback consumes them), bound to one session, customer
-- and platform, valid for ten minutes.
CREATE TABLE benefits.oauth_states (
    state_hash    bytea PRIMARY KEY CHECK (octet_length(state_hash) = 32),
    session_id    uuid NOT NULL REFERENCES benefits.customer_sessions ON DELETE CASCADE,
    customer_id   uuid NOT NULL REFERENCES benefits.customers ON DELETE CASCADE,
    platform      text NOT NULL CHECK (platform IN ('github', 'discord')),
    redirect_uri  text NOT NULL CHECK (octet_length(redirect_uri) <= 2048),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX ON benefits.oauth_states (customer_id);

-- A link in progress or failed, per customer and platform: the oauth job
-- linking the account (pending while it runs), or the error the customer is
-- shown with the action to connect again.  A link that succeeds leaves no row.
CREATE TABLE benefits.account_links (
    customer_id  uuid NOT NULL REFERENCES benefits.customers ON DELETE CASCADE,
    platform     text NOT NULL CHECK (platform IN ('github', 'discord')),
    job_id       bigint,
    error        text CHECK (octet_length(error) <= 500),
    created_at   timestamptz NOT NULL DEFAULT now(),
    modified_at  timestamptz,
    PRIMARY KEY (customer_id, platform)
);

-- Tokens an oauth job obtained, kept between the exchange and the reading of
-- the account (then they move to customer_accounts).  Owner only.
CREATE TABLE benefits.oauth_exchanges (
    job_id            bigint PRIMARY KEY REFERENCES benefits.outbox ON DELETE CASCADE,
    access_token      text NOT NULL CHECK (access_token <> '' AND octet_length(access_token) <= 2048
                                       AND access_token !~ '[[:cntrl:]]'),
    refresh_token     text CHECK (refresh_token <> '' AND octet_length(refresh_token) <= 2048
                                  AND refresh_token !~ '[[:cntrl:]]'),
    token_expires_at  timestamptz,
    scopes            text[],
    created_at        timestamptz NOT NULL DEFAULT now()
);

-- The provider's authorize URL for the session's customer to link an account
-- of platform, returning to redirect_uri (SQLSTATE 28000 for a bad session).
CREATE FUNCTION benefits.portal_link_url(token text, platform text, redirect_uri text)
    RETURNS text
    AS 'MODULE_PATHNAME', 'portal_link_url' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION benefits.portal_link_url(text, text, text) IS
    'The GitHub or Discord authorize URL, with a fresh single-use state, for the session''s customer to link an account';

-- What the provider sent back to the application's redirect handler: the
-- state is checked (and, with platform, that it was issued for that
-- platform) and consumed, the code queued for the worker.  Returns
-- 'pending', or 'failed' when the customer refused (code NULL).
CREATE FUNCTION benefits.portal_link_callback(token text, state text, code text, platform text DEFAULT NULL)
    RETURNS text
    AS 'MODULE_PATHNAME', 'portal_link_callback' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION benefits.portal_link_callback(text, text, text, text) IS
    'Check and consume an OAuth state and queue the exchange of the code; returns pending, or failed when access was refused';

-- Per platform (n: 1 github, 2 discord): unlinked, pending, linked or
-- failed, the account's name and what went wrong.  Neither SECURITY DEFINER
-- nor with settings, so the planner inlines it into the statement that calls
-- it: the customer portal (running as the extension's owner) plans it once,
-- where a call of account_link_status would plan its body on every call.
-- Not granted to benefits_app or benefits_public: account_link_status is theirs.
CREATE FUNCTION benefits.account_link_states(customer_id uuid)
    RETURNS TABLE (n integer, platform text, status text, username text, error text)
    LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT p.n, p.platform,
           CASE WHEN o.state IN ('pending', 'running') THEN 'pending'
                WHEN l.error IS NOT NULL OR o.state = 'dead' THEN 'failed'
                WHEN a.customer_id IS NOT NULL THEN 'linked'
                ELSE 'unlinked' END,
           a.username,
           CASE WHEN o.state IN ('pending', 'running') THEN NULL
                WHEN l.error IS NOT NULL THEN l.error
                WHEN o.state = 'dead' THEN 'Connecting the account did not complete. Connect it again.' END
      FROM (VALUES (1, 'github'), (2, 'discord')) AS p(n, platform)
      LEFT JOIN benefits.account_links l ON l.customer_id = account_link_states.customer_id AND l.platform = p.platform
      LEFT JOIN benefits.outbox o ON o.id = l.job_id
      LEFT JOIN benefits.customer_accounts a
             ON a.customer_id = account_link_states.customer_id AND a.platform = p.platform;
END;

-- Per platform: unlinked, pending, linked or failed, the account's name and
-- what went wrong.  SECURITY DEFINER: it reads the state of the link's job
-- in the outbox, which benefits_app (to which it is granted) cannot read.
CREATE FUNCTION benefits.account_link_status(customer_id uuid)
    RETURNS TABLE (platform text, status text, username text, error text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT s.platform, s.status, s.username, s.error
      FROM benefits.account_link_states(account_link_status.customer_id) s
     ORDER BY s.n;
END;

CREATE FUNCTION benefits.portal_link_status(token text)
    RETURNS TABLE (platform text, status text, username text, error text)
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT s.platform, s.status, s.username, s.error
      FROM benefits.account_link_status(benefits.customer_session_customer(token)) s;
END;
COMMENT ON FUNCTION benefits.portal_link_status(text) IS
    'Per platform, whether the session''s customer has linked an account (unlinked, pending, linked, failed), its name and the last error';

-- Removes the session customer's account of platform: its access is removed
-- by provider jobs and its grants wait for a link again.  False when there
-- was no account.
CREATE FUNCTION benefits.portal_unlink_account(token text, platform text)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'portal_unlink_account' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off;
COMMENT ON FUNCTION benefits.portal_unlink_account(text, text) IS
    'Remove the session customer''s GitHub or Discord account and the access delivered to it';

GRANT EXECUTE ON FUNCTION benefits.portal_link_url(text, text, text),
                          benefits.portal_link_callback(text, text, text, text),
                          benefits.portal_link_status(text),
                          benefits.portal_unlink_account(text, text)
    TO benefits_app, benefits_public;
GRANT EXECUTE ON FUNCTION benefits.account_link_status(uuid) TO benefits_app;

-- The worker's side.  An answer function reads a provider's answer to one
-- step of a job and returns the verdict the worker records:
-- {"outcome": "step", "patch": {...}} (the next step, with the payload
-- patched), "done", "dead" (with "error") or "retry" (with "error").

-- The tokens of a token response (GitHub's or Discord's JSON), checked;
-- NULL when it carries no usable access token.
CREATE FUNCTION benefits.oauth_token_response(body text)
    RETURNS TABLE (access_token text, refresh_token text, token_expires_at timestamptz, scopes text[])
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    j jsonb;
    expires_in numeric;
BEGIN
    BEGIN
        j := body::jsonb;
    EXCEPTION WHEN OTHERS THEN
        RETURN;
    END;
    IF jsonb_typeof(j) IS DISTINCT FROM 'object' OR jsonb_typeof(j->'access_token') IS DISTINCT FROM 'string'
       OR NOT benefits.oauth_token_usable(j->>'access_token')
       OR (j ? 'refresh_token' AND jsonb_typeof(j->'refresh_token') = 'string'
           AND NOT benefits.oauth_token_usable(j->>'refresh_token')) THEN
        RETURN;
    END IF;
    IF jsonb_typeof(j->'expires_in') = 'number' THEN
        expires_in := (j->>'expires_in')::numeric;
    END IF;
    access_token := j->>'access_token';
    refresh_token := CASE WHEN jsonb_typeof(j->'refresh_token') = 'string' THEN j->>'refresh_token' END;
    token_expires_at := CASE WHEN expires_in > 0 AND expires_in <= 315360000
                             THEN now() + expires_in * interval '1 second' END;
    -- GitHub separates scopes with commas, Discord with spaces.
    scopes := CASE WHEN jsonb_typeof(j->'scope') = 'string' AND octet_length(j->>'scope') <= 1000
                   THEN ARRAY(SELECT s FROM regexp_split_to_table(j->>'scope', '[ ,]+') s WHERE s <> '') END;
    -- what customer_accounts accepts, or none (a stored pair must not fail its checks)
    IF cardinality(scopes) > 20 OR EXISTS (SELECT FROM unnest(scopes) s
                                            WHERE octet_length(s) > 100 OR s ~ '[[:cntrl:]]') THEN
        scopes := NULL;
    END IF;
    RETURN NEXT;
END
$$;

-- Why a token endpoint refused, for the job's last error: its "error" code,
-- never the body (which may hold a token the checks refused).
CREATE FUNCTION benefits.oauth_error_of(body text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN coalesce(left(regexp_replace(body::jsonb->>'error', '[^A-Za-z0-9_.-]', '', 'g'), 100),
                    'no usable access token in the answer');
EXCEPTION WHEN OTHERS THEN
    RETURN 'the answer is not JSON';
END
$$;

-- A token a provider returned: what customer_accounts accepts.
CREATE FUNCTION benefits.oauth_token_usable(token text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
    RETURN token <> '' AND octet_length(token) <= 2048 AND token !~ '[[:cntrl:]]';

-- The error of a link the customer has to start again.
CREATE FUNCTION benefits.oauth_link_failed(job_id bigint, customer_id uuid, platform text, error text)
    RETURNS void
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    UPDATE benefits.account_links l SET error = oauth_link_failed.error, modified_at = now()
     WHERE l.customer_id = oauth_link_failed.customer_id AND l.platform = oauth_link_failed.platform
       AND l.job_id = oauth_link_failed.job_id;
    DELETE FROM benefits.oauth_exchanges x WHERE x.job_id = oauth_link_failed.job_id;
END;

-- Step 0 of an oauth job: the answer to the code exchange.  The code leaves
-- the outbox here, whatever the answer: it is used once.
CREATE FUNCTION benefits.oauth_code_answer(job_id bigint, status integer, body text)
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    job record;
    tokens record;
    platform_name text;
BEGIN
    SELECT o.payload->>'platform' AS platform, (o.payload->>'customer_id')::uuid AS customer_id INTO job
      FROM benefits.outbox o WHERE o.id = oauth_code_answer.job_id;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('outcome', 'done');
    END IF;
    platform_name := CASE job.platform WHEN 'github' THEN 'GitHub' ELSE 'Discord' END;
    PERFORM 1 FROM benefits.customers c WHERE c.id = job.customer_id FOR NO KEY UPDATE;
    UPDATE benefits.outbox o SET payload = o.payload - 'code' WHERE o.id = oauth_code_answer.job_id;
    SELECT * INTO tokens FROM benefits.oauth_token_response(body) LIMIT 1;
    IF status BETWEEN 200 AND 299 AND tokens.access_token IS NOT NULL THEN
        INSERT INTO benefits.oauth_exchanges AS x (job_id, access_token, refresh_token, token_expires_at, scopes)
        VALUES (oauth_code_answer.job_id, tokens.access_token, tokens.refresh_token, tokens.token_expires_at,
                tokens.scopes)
        ON CONFLICT ON CONSTRAINT oauth_exchanges_pkey DO UPDATE
           SET access_token = EXCLUDED.access_token, refresh_token = EXCLUDED.refresh_token,
               token_expires_at = EXCLUDED.token_expires_at, scopes = EXCLUDED.scopes;
        RETURN jsonb_build_object('outcome', 'step', 'patch', jsonb_build_object('_step', 1));
    END IF;
    PERFORM benefits.oauth_link_failed(oauth_code_answer.job_id, job.customer_id, job.platform,
                                       platform_name || ' did not accept the sign-in. Connect your account again.');
    RETURN jsonb_build_object('outcome', 'dead', 'error',
                              format('oauth code exchange refused (HTTP %s): %s', status,
                                     benefits.oauth_error_of(body)));
END
$$;

-- Step 1 of an oauth job: the account read with the new token, linked to the
-- customer the state was bound to, unless a newer link attempt or an unlink
-- replaced this one meanwhile.
CREATE FUNCTION benefits.oauth_account_answer(job_id bigint, status integer, body text)
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    job record;
    tokens benefits.oauth_exchanges;
    j jsonb;
    account text;
    name text;
    platform_name text;
BEGIN
    SELECT o.payload->>'platform' AS platform, (o.payload->>'customer_id')::uuid AS customer_id INTO job
      FROM benefits.outbox o WHERE o.id = oauth_account_answer.job_id;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('outcome', 'done');
    END IF;
    platform_name := CASE job.platform WHEN 'github' THEN 'GitHub' ELSE 'Discord' END;
    PERFORM 1 FROM benefits.customers c WHERE c.id = job.customer_id FOR NO KEY UPDATE;
    PERFORM 1 FROM benefits.account_links l
     WHERE l.customer_id = job.customer_id AND l.platform = job.platform AND l.job_id = oauth_account_answer.job_id;
    IF NOT FOUND THEN
        DELETE FROM benefits.oauth_exchanges x WHERE x.job_id = oauth_account_answer.job_id;
        RETURN jsonb_build_object('outcome', 'done');
    END IF;
    SELECT * INTO tokens FROM benefits.oauth_exchanges x WHERE x.job_id = oauth_account_answer.job_id;
    BEGIN
        j := body::jsonb;
    EXCEPTION WHEN OTHERS THEN
        j := NULL;
    END;
    IF status BETWEEN 200 AND 299 AND jsonb_typeof(j) = 'object' AND tokens.job_id IS NOT NULL THEN
        account := CASE WHEN jsonb_typeof(j->'id') IN ('number', 'string') THEN j->>'id' END;
        name := CASE job.platform WHEN 'github' THEN j->>'login' ELSE j->>'username' END;
    END IF;
    IF account IS NULL THEN
        PERFORM benefits.oauth_link_failed(oauth_account_answer.job_id, job.customer_id, job.platform,
                                           platform_name || ' did not show the account. Connect your account again.');
        RETURN jsonb_build_object('outcome', 'dead', 'error',
                                  format('oauth account lookup failed (HTTP %s): %s', status,
                                         left(coalesce(body, ''), 200)));
    END IF;
    BEGIN
        PERFORM benefits.link_account(job.customer_id, job.platform, account, name, tokens.access_token,
                                      tokens.refresh_token, tokens.token_expires_at, tokens.scopes);
    EXCEPTION WHEN invalid_parameter_value THEN
        PERFORM benefits.oauth_link_failed(oauth_account_answer.job_id, job.customer_id, job.platform,
                                           'This ' || platform_name || ' account cannot be used. Connect another account.');
        RETURN jsonb_build_object('outcome', 'dead', 'error', 'oauth account refused: ' || SQLERRM);
    END;
    DELETE FROM benefits.account_links l
     WHERE l.customer_id = job.customer_id AND l.platform = job.platform AND l.job_id = oauth_account_answer.job_id;
    DELETE FROM benefits.oauth_exchanges x WHERE x.job_id = oauth_account_answer.job_id;
    RETURN jsonb_build_object('outcome', 'done');
END
$$;

-- A Discord add_member job refreshed its customer's token first: the new
-- pair is stored and the job goes on with it.  A refusal marks the link
-- failed, with the action to connect again, unless another job refreshed the
-- token meanwhile (Discord's refresh tokens are single-use), in which case
-- this one goes on with that token.
CREATE FUNCTION benefits.discord_refresh_answer(job_id bigint, status integer, body text)
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    customer uuid;
    tokens record;
BEGIN
    SELECT CASE WHEN o.payload->>'customer_id' ~ '^[0-9a-fA-F-]{36}$' THEN (o.payload->>'customer_id')::uuid END
      INTO customer FROM benefits.outbox o WHERE o.id = discord_refresh_answer.job_id;
    IF customer IS NULL THEN
        RETURN jsonb_build_object('outcome', 'dead', 'error', 'discord add_member: payload.customer_id is missing');
    END IF;
    PERFORM 1 FROM benefits.customers c WHERE c.id = customer FOR NO KEY UPDATE;
    SELECT * INTO tokens FROM benefits.oauth_token_response(body) LIMIT 1;
    IF status BETWEEN 200 AND 299 AND tokens.access_token IS NOT NULL THEN
        UPDATE benefits.customer_accounts a
           SET access_token = tokens.access_token,
               refresh_token = coalesce(tokens.refresh_token, a.refresh_token),
               token_expires_at = tokens.token_expires_at,
               scopes = coalesce(tokens.scopes, a.scopes), modified_at = now()
         WHERE a.customer_id = customer AND a.platform = 'discord';
        RETURN jsonb_build_object('outcome', 'step', 'patch', jsonb_build_object('_renewed', true));
    END IF;
    -- Another job of the customer may be renewing with the same (single-use)
    -- refresh token right now: try again once it is done.
    IF EXISTS (SELECT FROM benefits.outbox o
                WHERE o.kind = 'discord' AND o.action = 'add_member' AND o.state = 'running'
                  AND o.id <> discord_refresh_answer.job_id AND o.payload->>'customer_id' = customer::text) THEN
        RETURN jsonb_build_object('outcome', 'retry', 'error',
                                  'discord token refresh refused while another job renewed the token; trying again');
    END IF;
    IF EXISTS (SELECT FROM benefits.customer_accounts a
                WHERE a.customer_id = customer AND a.platform = 'discord'
                  AND a.token_expires_at > now() + benefits.oauth_refresh_margin()) THEN
        RETURN jsonb_build_object('outcome', 'step', 'patch', jsonb_build_object('_renewed', true));
    END IF;
    INSERT INTO benefits.account_links AS l (customer_id, platform, job_id, error)
    VALUES (customer, 'discord', NULL, 'Discord access expired. Connect your Discord account again.')
    ON CONFLICT ON CONSTRAINT account_links_pkey DO UPDATE
       SET job_id = NULL, error = EXCLUDED.error, modified_at = now();
    RETURN jsonb_build_object('outcome', 'dead', 'error',
                              format('discord token refresh refused (HTTP %s): %s; the customer must connect Discord again',
                                     status, benefits.oauth_error_of(body)));
END
$$;

-- How long before it expires a Discord token is refreshed.
CREATE FUNCTION benefits.oauth_refresh_margin() RETURNS interval
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN interval '10 minutes';

-- What the worker's requests for jobs need besides their payloads: the
-- customer's OAuth tokens, never stored in the outbox.  Per job of ids:
-- the access token to use, and for Discord add_member the refresh token
-- when the access token is about to expire.
CREATE FUNCTION benefits.job_credentials(ids bigint[])
    RETURNS TABLE (job_id bigint, access_token text, refresh_token text)
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT o.id, coalesce(x.access_token, a.access_token),
           CASE WHEN a.token_expires_at < now() + benefits.oauth_refresh_margin() THEN a.refresh_token END
      FROM benefits.outbox o
      LEFT JOIN benefits.oauth_exchanges x ON o.kind = 'oauth' AND x.job_id = o.id
      LEFT JOIN benefits.customer_accounts a
             ON o.kind = 'discord' AND o.action = 'add_member' AND a.platform = 'discord'
            AND a.customer_id = CASE WHEN o.payload->>'customer_id' ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
                                     THEN (o.payload->>'customer_id')::uuid END
     WHERE o.id = ANY (ids) AND (o.kind = 'oauth' OR (o.kind = 'discord' AND o.action = 'add_member'));
END;
