-- make demo: what `benefits` does, step by step, on a throwaway cluster.
\set VERBOSITY terse
\pset null '-'
CREATE EXTENSION benefits;

\echo
\echo '== 1. An organization sells MyApp with a license key benefit'
INSERT INTO benefits.organizations (id, name) VALUES ('0a000000-0000-4000-8000-000000000001', 'Acme Software');
INSERT INTO benefits.products (id, organization_id, name, external_id)
    VALUES ('0b000000-0000-4000-8000-000000000001', '0a000000-0000-4000-8000-000000000001', 'MyApp Pro', 'prod_myapp');
INSERT INTO benefits.benefits (id, organization_id, type, description, properties)
    VALUES ('0c000000-0000-4000-8000-000000000001', '0a000000-0000-4000-8000-000000000001', 'license_keys',
            'MyApp license',
            '{"prefix": "MYAPP", "expires": null, "activations": {"limit": 2, "enable_customer_admin": true}, "limit_usage": null}')
    RETURNING type, description, properties;

\echo '== 2. A customer signs up in the application'
INSERT INTO benefits.customers (id, organization_id, external_id, email, name)
    VALUES ('0d000000-0000-4000-8000-000000000001', '0a000000-0000-4000-8000-000000000001', 'user_42', 'ada@example.com', 'Ada')
    RETURNING external_id, email;

\echo '== 3. Granting the benefit issues a license key in the same transaction'
SELECT state, properties->>'display_key' AS display_key
  FROM benefits.grant_benefit('0d000000-0000-4000-8000-000000000001', '0c000000-0000-4000-8000-000000000001');
SELECT key, status, limit_activations FROM benefits.license_keys;

\echo '== 4. Revoking it revokes the key; granting again restores the same key'
SELECT key AS issued_key FROM benefits.license_keys \gset
SELECT benefits.revoke_benefit('0d000000-0000-4000-8000-000000000001', '0c000000-0000-4000-8000-000000000001');
SELECT status AS after_revoke FROM benefits.license_keys;
SELECT state AS after_regrant FROM benefits.grant_benefit('0d000000-0000-4000-8000-000000000001', '0c000000-0000-4000-8000-000000000001');
SELECT status, key = :'issued_key' AS same_key FROM benefits.license_keys;
