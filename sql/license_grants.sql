-- One license key per customer and benefit, shared by every grant of it:
-- another grant neither shortens its life nor resets limits an administrator
-- set; the last revoke revokes it; a restored key takes fresh limits.
INSERT INTO benefits.organizations (id, name) VALUES ('1a000000-0000-0000-0000-000000000001', 'Shared Keys Org');
INSERT INTO benefits.customers (id, organization_id, external_id)
    VALUES ('1c000000-0000-0000-0000-000000000001', '1a000000-0000-0000-0000-000000000001', 'holder');
INSERT INTO benefits.products (id, organization_id, name) VALUES
    ('1d000000-0000-0000-0000-000000000001', '1a000000-0000-0000-0000-000000000001', 'Lifetime'),
    ('1d000000-0000-0000-0000-000000000002', '1a000000-0000-0000-0000-000000000001', 'Monthly');
INSERT INTO benefits.benefits (id, organization_id, type, description, properties) VALUES
    ('1b000000-0000-0000-0000-000000000001', '1a000000-0000-0000-0000-000000000001', 'license_keys', 'Key',
     '{"prefix": null, "expires": {"ttl": 1, "timeframe": "year"}, "activations": {"limit": 2, "enable_customer_admin": false}, "limit_usage": 10}');
INSERT INTO benefits.product_benefits (product_id, benefit_id, position) VALUES
    ('1d000000-0000-0000-0000-000000000001', '1b000000-0000-0000-0000-000000000001', 0),
    ('1d000000-0000-0000-0000-000000000002', '1b000000-0000-0000-0000-000000000001', 0);
CREATE VIEW shared_key AS
    SELECT status, limit_activations, limit_usage,
           CASE WHEN expires_at IS NULL THEN 'never'
                WHEN expires_at BETWEEN now() + interval '1 year' - interval '1 minute' AND now() + interval '1 year'
                THEN 'in a year' ELSE expires_at::text END AS expires,
           (SELECT count(*) FROM benefits.grants g WHERE g.customer_id = k.customer_id AND g.state = 'active') AS live_grants
      FROM benefits.license_keys k WHERE customer_id = '1c000000-0000-0000-0000-000000000001';

-- A one-time purchase issues the key with the benefit's expiry and limits.
INSERT INTO benefits.orders (id, customer_id, product_id, status)
    VALUES ('1e000000-0000-0000-0000-000000000001', '1c000000-0000-0000-0000-000000000001',
            '1d000000-0000-0000-0000-000000000001', 'paid');
SELECT * FROM shared_key;

-- An administrator raises the activation limit of this key.
SELECT limit_activations FROM benefits.update_license_key(
    (SELECT id FROM benefits.license_keys WHERE customer_id = '1c000000-0000-0000-0000-000000000001'),
    limit_activations => 5);

-- A subscription to another product with the same benefit shares the key:
-- it now never expires, and the administrator's limit stays.
INSERT INTO benefits.subscriptions (id, customer_id, product_id, status)
    VALUES ('1f000000-0000-0000-0000-000000000001', '1c000000-0000-0000-0000-000000000001',
            '1d000000-0000-0000-0000-000000000002', 'active');
SELECT * FROM shared_key;

-- Refunding the one-time purchase leaves the subscription's key as it was.
UPDATE benefits.orders SET status = 'refunded' WHERE id = '1e000000-0000-0000-0000-000000000001';
SELECT * FROM shared_key;

-- A manual grant on top does not bring the expiry back.
SELECT state FROM benefits.grant_benefit('1c000000-0000-0000-0000-000000000001', '1b000000-0000-0000-0000-000000000001');
SELECT * FROM shared_key;

-- The key is revoked only with the last grant.
SELECT benefits.revoke_benefit('1c000000-0000-0000-0000-000000000001', '1b000000-0000-0000-0000-000000000001');
SELECT * FROM shared_key;
UPDATE benefits.subscriptions SET status = 'revoked' WHERE id = '1f000000-0000-0000-0000-000000000001';
SELECT * FROM shared_key;

-- Restored by a new grant: the benefit's limits and a fresh expiry.
SELECT state FROM benefits.grant_benefit('1c000000-0000-0000-0000-000000000001', '1b000000-0000-0000-0000-000000000001');
SELECT * FROM shared_key;

DROP VIEW shared_key;
DELETE FROM benefits.customers WHERE organization_id = '1a000000-0000-0000-0000-000000000001';
DELETE FROM benefits.organizations WHERE id = '1a000000-0000-0000-0000-000000000001';
