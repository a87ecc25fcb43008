-- feature_flag benefits (Polar's): properties {}, the feature named in the
-- benefit's metadata; has_feature and customer_features follow the grants,
-- also inside a Row-Level Security policy.
\set SHOW_CONTEXT never
INSERT INTO benefits.organizations (name) VALUES ('Flags Org') RETURNING id AS org \gset
INSERT INTO benefits.customers (organization_id, external_id, email) VALUES (:'org', 'flag-1', 'ada@example.com')
RETURNING id AS ada \gset
INSERT INTO benefits.customers (organization_id, external_id, email) VALUES (:'org', 'flag-2', 'bob@example.com')
RETURNING id AS bob \gset
INSERT INTO benefits.products (organization_id, name) VALUES (:'org', 'Pro plan') RETURNING id AS pro \gset
SELECT id AS ep FROM benefits.create_webhook_endpoint(:'org', 'https://hooks.example.com/flags',
                                                      ARRAY['benefit.created', 'benefit.updated']) \gset

-- Created as the issue's example; the metadata is stored and sent.
SELECT id AS pdf, type, properties, metadata
  FROM benefits.create_benefit('feature_flag', :'org', 'Export to PDF', '{}', metadata => '{"feature": "export_pdf"}') \gset
SELECT :'type' AS type, :'properties' AS properties, :'metadata' AS metadata;
SELECT payload->'data'->>'type' AS type, payload->'data'->'metadata' AS metadata, payload->'data'->'properties' AS properties
  FROM benefits.outbox WHERE endpoint_id = :'ep' ORDER BY id DESC LIMIT 1;
SELECT id AS api FROM benefits.create_benefit('feature_flag', :'org', 'API access', '{}',
                                              metadata => '{"feature": "api", "tier": 2, "beta": true}') \gset
-- Any type takes metadata.
SELECT metadata FROM benefits.create_benefit('custom', :'org', 'Support', '{"note": "hi"}', metadata => '{"channel": "email"}');

-- Refused, naming what is wrong; nothing is written.
SELECT count(*) AS benefits_before FROM benefits.benefits WHERE organization_id = :'org';
SELECT benefits.create_benefit('feature_flag', :'org', 'No name', '{}');
SELECT benefits.create_benefit('feature_flag', :'org', 'Empty name', '{}', metadata => '{"feature": ""}');
SELECT benefits.create_benefit('feature_flag', :'org', 'Number name', '{}', metadata => '{"feature": 7}');
SELECT benefits.create_benefit('feature_flag', :'org', 'With properties', '{"feature": "x"}', metadata => '{"feature": "x"}');
SELECT benefits.create_benefit('custom', :'org', 'Nested', '{}', metadata => '{"a": {"b": 1}}');
SELECT benefits.create_benefit('custom', :'org', 'Array', '{}', metadata => '{"a": [1]}');
SELECT benefits.create_benefit('custom', :'org', 'Null', '{}', metadata => '{"a": null}');
SELECT benefits.create_benefit('custom', :'org', 'Not an object', '{}', metadata => '[1]');
SELECT benefits.create_benefit('custom', :'org', 'Long key', '{}', metadata => jsonb_build_object(repeat('k', 41), 1));
SELECT benefits.create_benefit('custom', :'org', 'Empty key', '{}', metadata => '{"": 1}');
SELECT benefits.create_benefit('custom', :'org', 'Long value', '{}', metadata => jsonb_build_object('k', repeat('v', 501)));
SELECT benefits.create_benefit('custom', :'org', 'Many keys', '{}',
                               metadata => (SELECT jsonb_object_agg('k' || n, n) FROM generate_series(1, 51) n));
SELECT count(*) AS benefits_after FROM benefits.benefits WHERE organization_id = :'org';
-- At the limits.
SELECT (benefits.create_benefit('custom', :'org', 'Limits', '{}',
       metadata => (SELECT jsonb_object_agg(repeat('é', 38) || lpad(n::text, 2, '0'), repeat('v', 500))
                      FROM generate_series(1, 50) n))).id IS NOT NULL AS accepted;

-- Nothing held yet.
SELECT benefits.has_feature(:'ada', 'export_pdf') AS ada_pdf, benefits.has_feature(:'ada', 'api') AS ada_api;
SELECT count(*) AS ada_features FROM benefits.customer_features(:'ada');

-- A subscription to a product carrying both flags grants them, active at once.
SELECT benefits.update_product_benefits(:'pro', ARRAY[:'pdf', :'api']::uuid[]);
INSERT INTO benefits.subscriptions (customer_id, product_id, status) VALUES (:'ada', :'pro', 'active')
RETURNING id AS sub \gset
SELECT b.type, g.state FROM benefits.grants g JOIN benefits.benefits b ON b.id = g.benefit_id
 WHERE g.customer_id = :'ada' ORDER BY b.description;
SELECT benefits.has_feature(:'ada', 'export_pdf') AS ada_pdf, benefits.has_feature(:'ada', 'api') AS ada_api,
       benefits.has_feature(:'bob', 'export_pdf') AS bob_pdf, benefits.has_feature(:'ada', 'EXPORT_PDF') AS case_matters;
SELECT * FROM benefits.customer_features(:'ada');
SELECT b->>'type' AS type, b->>'feature' AS feature, b->>'state' AS state
  FROM jsonb_array_elements(benefits.portal_document(:'ada')->'benefits') b ORDER BY 2;

-- Renaming the feature in the metadata moves it at once.
SELECT metadata FROM benefits.update_benefit(:'api', metadata => '{"feature": "api_v2"}');
SELECT benefits.has_feature(:'ada', 'api') AS old_name, benefits.has_feature(:'ada', 'api_v2') AS new_name;
SELECT benefits.update_benefit(:'api', metadata => '{"tier": 3}');
SELECT (benefits.update_benefit(:'api', description => 'API access v2')).metadata AS description_only_keeps_metadata;
SELECT metadata->>'feature' AS feature FROM benefits.benefits WHERE id = :'api';

-- A Row-Level Security policy: a customer reads the reports only while they
-- hold export_pdf.
CREATE TABLE public.reports (customer_id uuid, title text);
INSERT INTO public.reports VALUES (:'ada', 'Ada''s report'), (:'bob', 'Bob''s report');
ALTER TABLE public.reports ENABLE ROW LEVEL SECURITY;
CREATE POLICY reports_need_pdf ON public.reports
    USING (benefits.has_feature(customer_id, 'export_pdf'));
CREATE ROLE regress_flags_app NOLOGIN IN ROLE benefits_app;
GRANT SELECT ON public.reports TO regress_flags_app;
SET ROLE regress_flags_app;
SELECT title FROM public.reports ORDER BY title;
RESET ROLE;
-- Revoked: the rows disappear in the same transaction.
UPDATE benefits.subscriptions SET status = 'revoked' WHERE id = :'sub';
SET ROLE regress_flags_app;
SELECT title FROM public.reports ORDER BY title;
SELECT benefits.has_feature(:'ada', 'export_pdf') AS ada_pdf;
SELECT count(*) AS ada_features FROM benefits.customer_features(:'ada');
RESET ROLE;
-- A manual grant brings Bob's back; a rolled-back one does not.
BEGIN;
SELECT state FROM benefits.grant_benefit(:'bob', :'pdf');
SET LOCAL ROLE regress_flags_app;
SELECT title FROM public.reports ORDER BY title;
ROLLBACK;
SET ROLE regress_flags_app;
SELECT title FROM public.reports ORDER BY title;
RESET ROLE;

-- Deleting the benefit ends the feature.
SELECT state FROM benefits.grant_benefit(:'bob', :'pdf');
SELECT benefits.has_feature(:'bob', 'export_pdf') AS before_delete;
SELECT benefits.delete_benefit(:'pdf');
SELECT benefits.has_feature(:'bob', 'export_pdf') AS after_delete;

-- A hostile search_path captures nothing.
SELECT state FROM benefits.grant_benefit(:'bob', :'api');
CREATE SCHEMA regress_flags_trap;
CREATE FUNCTION regress_flags_trap.text_eq(text, text) RETURNS boolean
    LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'trap fired'; END $$;
CREATE OPERATOR regress_flags_trap.= (LEFTARG = text, RIGHTARG = text, FUNCTION = regress_flags_trap.text_eq);
SET search_path = regress_flags_trap, pg_catalog;
SELECT 'a'::text = 'a'::text;
SELECT benefits.has_feature(:'bob', 'api_v2') AS trapless;
SELECT * FROM benefits.customer_features(:'bob');
RESET search_path;
SELECT benefits.has_feature(NULL, 'api') IS NULL AS strict;

DROP SCHEMA regress_flags_trap CASCADE;
DROP TABLE public.reports;
DROP ROLE regress_flags_app;
