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

-- Internal: the portal document of one customer (what customer_portal
-- returns; src/portal_document.c describes its shape).  Benefits appear once
-- each, in attachment order (the order of the subscriptions/orders that
-- granted them, then each product's benefit order; manual grants last),
-- revoked ones not at all.
CREATE FUNCTION benefits.portal_document(customer_id uuid)
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 'portal_document' LANGUAGE C STABLE;

-- The customer portal: everything the session's customer was granted.
CREATE FUNCTION benefits.customer_portal(token text)
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 'customer_portal' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- Customer self-service: remove one activation of one of the customer's own
-- license keys, when the benefit lets customers manage activations.  The key
-- row is locked as activate_license locks it, so counting stays exact.
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
     WHERE a.id = activation_id AND lk.customer_id = cid AND lk.status = 'granted'
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
    DELETE FROM benefits.license_key_activations a WHERE a.id = activation_id AND a.license_key_id = k.id;
    RETURN FOUND;
END
$$;

-- Internal: a date of the portal document as shown on the page (UTC).
CREATE FUNCTION benefits.portal_date(value jsonb)
    RETURNS text LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN value IS NULL OR jsonb_typeof(value) <> 'string' THEN NULL
                ELSE to_char((value #>> '{}')::timestamptz AT TIME ZONE 'UTC', 'FMDD Mon YYYY') END
$$;

-- Internal: the portal document as a complete, self-contained HTML page.
-- Every value from the database goes through html_escape.  With action_url,
-- each activation a customer may remove gets a form posting activation_id
-- there (the application calls portal_deactivate_license with it).
CREATE FUNCTION benefits.portal_html(doc jsonb, action_url text DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    out text;
    s jsonb;
    b jsonb;
    x jsonb;
    i integer := 0;
    lk jsonb;
    n integer;
    link_expiry text;
    label text;
BEGIN
    out := '<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex, nofollow">
<meta http-equiv="Content-Security-Policy" content="default-src ''none''; style-src ''unsafe-inline''; base-uri ''none''">
<title>Your purchases · ' || benefits.html_escape(doc #>> '{organization,name}') || '</title>
<style>
:root{color-scheme:light dark;--fg:#1f2328;--muted:#59636e;--bg:#f6f8fa;--card:#fff;--line:#d1d9e0;--accent:#0550ae;--ok:#116329;--warn:#7d4e00;--bad:#a40e26}
@media (prefers-color-scheme:dark){:root{--fg:#f0f6fc;--muted:#9198a1;--bg:#0d1117;--card:#151b23;--line:#3d444d;--accent:#74b9ff;--ok:#56d364;--warn:#e3b341;--bad:#ff7b72}}
*{box-sizing:border-box}
body{margin:0;font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:48rem;margin:0 auto;padding:2rem 1rem 3rem}
h1{font-size:1.75rem;margin:.2rem 0}
h2{font-size:1.25rem;margin:2rem 0 .75rem}
h3{font-size:1.1rem;margin:0 0 .25rem}
a{color:var(--accent)}
a:focus-visible,button:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
.muted,.kind{color:var(--muted)}
.kind{font-size:.875rem;margin:0 0 .75rem}
.org{font-weight:600;color:var(--muted);margin:0}
.card{background:var(--card);border:1px solid var(--line);border-radius:.5rem;padding:1rem 1.25rem;margin:0 0 1rem}
ul.plain{list-style:none;padding:0;margin:0}
ul.plain>li{padding:.35rem 0;border-top:1px solid var(--line)}
ul.plain>li:first-child{border-top:0}
ul.plain.card{padding:.5rem 1.25rem}
.key{display:block;font:1.05rem/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--bg);border:1px solid var(--line);border-radius:.375rem;padding:.5rem .75rem;word-break:break-all;user-select:all}
dl.facts{display:flex;flex-wrap:wrap;gap:.5rem 2rem;margin:.75rem 0}
dl.facts dt{font-size:.8rem;color:var(--muted)}
dl.facts dd{margin:0;font-weight:600}
table{border-collapse:collapse;width:100%;margin-top:.5rem}
caption{text-align:left;font-weight:600;padding:.25rem 0}
th,td{text-align:left;padding:.35rem .5rem .35rem 0;border-top:1px solid var(--line);vertical-align:top}
.note{white-space:pre-wrap;margin:0}
.status{font-weight:600;margin:.5rem 0 0}
.ok{color:var(--ok)}.warn{color:var(--warn)}.bad{color:var(--bad)}
.badge{display:inline-block;font-size:.8rem;border:1px solid var(--line);border-radius:1rem;padding:0 .5rem;margin-left:.25rem}
button{font:inherit;font-size:.875rem;padding:.2rem .6rem;border:1px solid var(--line);border-radius:.375rem;background:var(--bg);color:var(--fg);cursor:pointer}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:var(--card);padding:.5rem}
footer{margin-top:2rem;font-size:.875rem;color:var(--muted)}
</style>
</head>
<body>
<a class="skip" href="#benefits">Skip to your benefits</a>
<main>
<header>
<p class="org">' || benefits.html_escape(doc #>> '{organization,name}') || '</p>
<h1>Your purchases</h1>
<p class="muted">Signed in as ' ||
        benefits.html_escape(coalesce(doc #>> '{customer,name}', doc #>> '{customer,email}', doc #>> '{customer,external_id}', 'customer')) ||
        CASE WHEN doc #>> '{customer,name}' IS NOT NULL AND doc #>> '{customer,email}' IS NOT NULL
             THEN ' (' || benefits.html_escape(doc #>> '{customer,email}') || ')' ELSE '' END || '</p>
</header>
<section aria-labelledby="subscriptions-heading">
<h2 id="subscriptions-heading">Subscriptions</h2>
';
    IF jsonb_array_length(doc -> 'subscriptions') = 0 THEN
        out := out || '<p class="muted">You have no active subscriptions.</p>
';
    ELSE
        out := out || '<ul class="plain card">
';
        FOR s IN SELECT value FROM jsonb_array_elements(doc -> 'subscriptions') LOOP
            out := out || '<li><strong>' || benefits.html_escape(s #>> '{product,name}') || '</strong> <span class="badge">' ||
                   benefits.html_escape(replace(s ->> 'status', '_', ' ')) || '</span>' ||
                   CASE WHEN s ->> 'current_period_end' IS NULL THEN ''
                        WHEN (s ->> 'cancel_at_period_end')::boolean
                        THEN ' <span class="muted">Ends on ' || benefits.html_escape(benefits.portal_date(s -> 'current_period_end')) || '</span>'
                        ELSE ' <span class="muted">Renews on ' || benefits.html_escape(benefits.portal_date(s -> 'current_period_end')) || '</span>' END ||
                   '</li>
';
        END LOOP;
        out := out || '</ul>
';
    END IF;

    out := out || '</section>
<section id="benefits" aria-labelledby="benefits-heading">
<h2 id="benefits-heading">Your benefits</h2>
';
    IF jsonb_array_length(doc -> 'benefits') = 0 THEN
        out := out || '<p class="muted">Nothing has been granted to you yet.</p>
';
    END IF;

    FOR b IN SELECT value FROM jsonb_array_elements(doc -> 'benefits') LOOP
        i := i + 1;
        label := CASE b ->> 'type'
                WHEN 'license_keys' THEN 'License key' WHEN 'downloadable' THEN 'Downloads'
                WHEN 'custom' THEN 'Note from the seller' WHEN 'meter_credits' THEN 'Credits'
                WHEN 'github_repository' THEN 'GitHub repository access' WHEN 'discord' THEN 'Discord server access'
                ELSE b ->> 'type' END;
        out := out || '<article class="card" aria-labelledby="benefit-' || i || '">
<h3 id="benefit-' || i || '">' || benefits.html_escape(b ->> 'description') || '</h3>
' || CASE WHEN lower(label) = lower(b ->> 'description') THEN ''
                ELSE '<p class="kind">' || benefits.html_escape(label) || '</p>
' END;
        CASE b ->> 'type'
        WHEN 'license_keys' THEN
            lk := b -> 'license_key';
            IF lk IS NULL OR jsonb_typeof(lk) <> 'object' THEN
                out := out || '<p class="status warn">Your license key is being prepared.</p>
';
            ELSE
                n := jsonb_array_length(lk -> 'activations');
                out := out || '<p class="visually-hidden" id="key-label-' || i || '">License key</p>
<code class="key" aria-labelledby="key-label-' || i || '">' || benefits.html_escape(lk ->> 'key') || '</code>
<dl class="facts">
<div><dt>Status</dt><dd>' || CASE lk ->> 'status' WHEN 'granted' THEN 'Active' ELSE benefits.html_escape(initcap(lk ->> 'status')) END || '</dd></div>
<div><dt>Expires</dt><dd>' || coalesce(benefits.html_escape(benefits.portal_date(lk -> 'expires_at')), 'Never') || '</dd></div>
' || CASE WHEN lk ->> 'limit_usage' IS NOT NULL
          THEN '<div><dt>Usage</dt><dd>' || (lk ->> 'usage')::bigint || ' of ' || (lk ->> 'limit_usage')::bigint || '</dd></div>
' ELSE '' END
  || CASE WHEN lk ->> 'limit_activations' IS NOT NULL
          THEN '<div><dt>Activations</dt><dd>' || n || ' of ' || (lk ->> 'limit_activations')::bigint || '</dd></div>
' ELSE '' END || '</dl>
';
                IF n > 0 THEN
                    out := out || '<table>
<caption>Activated devices</caption>
<thead><tr><th scope="col">Device</th><th scope="col">Activated on</th>' ||
                           CASE WHEN (lk ->> 'customer_admin')::boolean AND action_url IS NOT NULL
                                THEN '<th scope="col"><span class="visually-hidden">Action</span></th>' ELSE '' END || '</tr></thead>
<tbody>
';
                    FOR x IN SELECT value FROM jsonb_array_elements(lk -> 'activations') LOOP
                        out := out || '<tr><td>' || benefits.html_escape(x ->> 'label') || '</td><td>' ||
                               benefits.html_escape(benefits.portal_date(x -> 'created_at')) || '</td>' ||
                               CASE WHEN (lk ->> 'customer_admin')::boolean AND action_url IS NOT NULL
                                    THEN '<td><form method="post" action="' || benefits.html_escape(action_url) || '">' ||
                                         '<input type="hidden" name="activation_id" value="' || benefits.html_escape(x ->> 'id') || '">' ||
                                         '<button type="submit">Deactivate<span class="visually-hidden"> ' ||
                                         benefits.html_escape(x ->> 'label') || '</span></button></form></td>'
                                    ELSE '' END || '</tr>
';
                    END LOOP;
                    out := out || '</tbody>
</table>
';
                END IF;
            END IF;
        WHEN 'downloadable' THEN
            IF jsonb_array_length(b -> 'files') = 0 THEN
                out := out || '<p class="muted">No files are available right now.</p>
';
            ELSE
                out := out || '<ul class="plain">
';
                FOR x IN SELECT value FROM jsonb_array_elements(b -> 'files') LOOP
                    link_expiry := x ->> 'download_expires_at';
                    out := out || '<li><a href="' || benefits.html_escape(x ->> 'download_url') || '" download="' ||
                           benefits.html_escape(x ->> 'name') || '">' || benefits.html_escape(x ->> 'name') ||
                           '</a> <span class="muted">' || benefits.html_escape(pg_size_pretty((x ->> 'size')::bigint)) ||
                           '</span>' ||
                           CASE WHEN x ->> 'checksum_sha256' IS NOT NULL
                                THEN '<br><small class="muted">SHA-256 <code>' || benefits.html_escape(x ->> 'checksum_sha256') || '</code></small>'
                                ELSE '' END || '</li>
';
                END LOOP;
                out := out || '</ul>
';
            END IF;
        WHEN 'custom' THEN
            IF coalesce(b ->> 'note', '') <> '' THEN
                out := out || '<p class="note">' || benefits.html_escape(b ->> 'note') || '</p>
';
            END IF;
        WHEN 'meter_credits' THEN
            IF jsonb_typeof(b -> 'meter') = 'object' THEN
                out := out || '<p>' || benefits.html_escape(b #>> '{meter,name}') || ' balance: <strong>' ||
                       coalesce((b #>> '{meter,balance}')::bigint::text, '0') || '</strong></p>
';
            END IF;
        WHEN 'github_repository', 'discord' THEN
            x := CASE WHEN b ->> 'type' = 'github_repository' THEN b -> 'github' ELSE b -> 'discord' END;
            IF b ->> 'type' = 'github_repository' THEN
                out := out || '<ul class="plain">
' || coalesce((SELECT string_agg('<li><code>' || benefits.html_escape(r ->> 'owner') || '/' || benefits.html_escape(r ->> 'name') ||
                                  '</code> <span class="muted">' || benefits.html_escape(coalesce(r ->> 'permission', '')) || '</span></li>
', '' ORDER BY pos) FROM jsonb_array_elements(x -> 'repositories') WITH ORDINALITY AS t(r, pos)), '') || '</ul>
';
            ELSE
                out := out || '<p>Server <code>' || benefits.html_escape(x ->> 'guild_id') || '</code>' ||
                       coalesce(' — roles: ' || (SELECT string_agg(benefits.html_escape(coalesce(r ->> 'name', r ->> 'role_id')), ', ' ORDER BY pos)
                                                    FROM jsonb_array_elements(x -> 'roles') WITH ORDINALITY AS t(r, pos)), '') || '</p>
';
            END IF;
            out := out || CASE x ->> 'delivery'
                WHEN 'granted' THEN '<p class="status ok" role="status">Access granted' ||
                     coalesce(' to ' || benefits.html_escape(coalesce(x #>> '{account,username}', x #>> '{account,account_id}')), '') || '.</p>'
                WHEN 'action_required' THEN '<p class="status warn" role="status">Action needed: ' ||
                     benefits.html_escape(coalesce(x ->> 'message', 'link your account to receive access.')) || '</p>'
                WHEN 'failed' THEN '<p class="status bad" role="status">Access could not be delivered yet' ||
                     coalesce(': ' || benefits.html_escape(x ->> 'message'), '') || '. The seller has been notified.</p>'
                ELSE '<p class="status" role="status">Access is being set up' ||
                     coalesce(' for ' || benefits.html_escape(coalesce(x #>> '{account,username}', x #>> '{account,account_id}')), '') || '.</p>'
                END || '
';
        ELSE
            NULL;
        END CASE;
        out := out || '</article>
';
    END LOOP;

    out := out || '</section>
<footer>
<p>' || CASE WHEN link_expiry IS NOT NULL
             THEN 'Download links stay valid until ' ||
                  benefits.html_escape(to_char(link_expiry::timestamptz AT TIME ZONE 'UTC', 'HH24:MI "UTC" FMDD Mon YYYY')) ||
                  '; reload this page for fresh ones.'
             ELSE 'Reload this page to see changes.' END || '</p>
</footer>
</main>
</body>
</html>
';
    RETURN out;
END
$$;

CREATE FUNCTION benefits.customer_portal_html(token text, action_url text DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF action_url IS NOT NULL AND action_url !~ '^(/($|[^/])|https?://)' THEN
        RAISE EXCEPTION 'action_url must be an absolute path or an http(s) URL' USING ERRCODE = '22023';
    END IF;
    RETURN benefits.portal_html(benefits.portal_document(benefits.customer_session_customer(token)), action_url);
END
$$;

GRANT EXECUTE ON FUNCTION benefits.customer_portal(text),
                          benefits.customer_portal_html(text, text),
                          benefits.portal_deactivate_license(text, uuid)
    TO benefits_app, benefits_public;
