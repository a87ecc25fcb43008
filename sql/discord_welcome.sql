-- Discord welcome messages: welcome_channel_id and welcome_message are
-- validated with the benefit, and a grant whose member is added writes one
-- post_welcome job after the member's and roles' jobs, rendered then.
INSERT INTO benefits.organizations (id, name) VALUES ('d0000000-0000-0000-0000-00000000000a', 'Welcome Org');
INSERT INTO benefits.products (id, organization_id, name) VALUES
    ('d0000000-0000-0000-0000-0000000000b1', 'd0000000-0000-0000-0000-00000000000a', 'Community');
INSERT INTO benefits.customers (id, organization_id, external_id, email) VALUES
    ('d0000000-0000-0000-0000-0000000000c1', 'd0000000-0000-0000-0000-00000000000a', 'w-1', 'w1@example.com'),
    ('d0000000-0000-0000-0000-0000000000c2', 'd0000000-0000-0000-0000-00000000000a', 'w-2', 'w2@example.com'),
    ('d0000000-0000-0000-0000-0000000000c3', 'd0000000-0000-0000-0000-00000000000a', 'w-3', 'w3@example.com');
SELECT benefits.link_account(id, 'discord', '9000' || right(external_id, 1), external_id, 'token')
  FROM benefits.customers WHERE organization_id = 'd0000000-0000-0000-0000-00000000000a';

-- The error a create_benefit raises, with its SQLSTATE.
CREATE FUNCTION pg_temp.welcome_error(properties jsonb) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM benefits.create_benefit('discord', 'd0000000-0000-0000-0000-00000000000a', 'Bad', properties);
    RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
SELECT pg_temp.welcome_error(jsonb_build_object('guild_id', '100000000000000111', 'role_id', '100000000000000201') || w) AS error
  FROM (VALUES
    ('{"welcome_channel_id": "100000000000000777"}'::jsonb),
    ('{"welcome_message": "Hi {username}"}'),
    ('{"welcome_channel_id": 100000000000000777, "welcome_message": "Hi"}'),
    ('{"welcome_channel_id": "777", "welcome_message": "Hi"}'),
    ('{"welcome_channel_id": "100000000000000777", "welcome_message": ""}'),
    ('{"welcome_channel_id": "100000000000000777", "welcome_message": 5}'),
    ('{"welcome_channel_id": "100000000000000777", "welcome_message": "Hi {user}"}'),
    ('{"welcome_channel_id": "100000000000000777", "welcome_message": "Hi {username"}'),
    ('{"welcome_channel_id": "100000000000000777", "welcome_message": "Hi\u0007"}'),
    (jsonb_build_object('welcome_channel_id', '100000000000000777', 'welcome_message', repeat('é', 1001))),
    (jsonb_build_object('welcome_channel_id', '100000000000000777', 'welcome_message', repeat('é', 1000)))) v(w);
SELECT count(*) AS written FROM benefits.benefits WHERE organization_id = 'd0000000-0000-0000-0000-00000000000a';

-- Normalized: both kept; line breaks allowed.
SELECT id AS welcome, properties FROM benefits.create_benefit('discord', 'd0000000-0000-0000-0000-00000000000a', 'Chat',
    '{"guild_id": "100000000000000111", "roles": [{"role_id": "100000000000000201", "name": "{username} fan"}, {"role_id": "100000000000000202"}],
      "welcome_channel_id": "100000000000000777", "welcome_message": "Hi {username}!\nRoles: {roles}"}') \gset
SELECT :'properties'::jsonb - 'roles' AS properties;

-- One grant: member, roles, then the welcome, rendered ({roles} after
-- {username}, so a role name cannot inject a mention).
SELECT id AS g1 FROM benefits.grant_benefit('d0000000-0000-0000-0000-0000000000c1', :'welcome') \gset
SELECT action, payload - 'customer_id' AS payload FROM benefits.outbox WHERE grant_id = :'g1' ORDER BY id;
SELECT properties->'welcomed' AS welcomed FROM benefits.grants WHERE id = :'g1';

-- Revoked and granted again: the member's jobs again, no second welcome.
SELECT benefits.revoke_benefit('d0000000-0000-0000-0000-0000000000c1', :'welcome');
SELECT state FROM benefits.grant_benefit('d0000000-0000-0000-0000-0000000000c1', :'welcome');
SELECT action, count(*) FROM benefits.outbox WHERE grant_id = :'g1' GROUP BY action ORDER BY action;

-- Set-based (two subscriptions in one statement): the same jobs per grant, in order.
SELECT benefits.update_product_benefits('d0000000-0000-0000-0000-0000000000b1', ARRAY[:'welcome']::uuid[]);
INSERT INTO benefits.subscriptions (customer_id, product_id, status) VALUES
    ('d0000000-0000-0000-0000-0000000000c2', 'd0000000-0000-0000-0000-0000000000b1', 'active'),
    ('d0000000-0000-0000-0000-0000000000c3', 'd0000000-0000-0000-0000-0000000000b1', 'active');
SELECT c.external_id, string_agg(o.action, ', ' ORDER BY o.id) AS jobs,
       max(o.payload->>'content') FILTER (WHERE o.action = 'post_welcome') AS content,
       bool_and(g.properties->>'welcomed' = 'true') AS welcomed
  FROM benefits.grants g JOIN benefits.customers c ON c.id = g.customer_id
  JOIN benefits.outbox o ON o.grant_id = g.id
 WHERE g.subscription_id IS NOT NULL AND g.benefit_id = :'welcome'
 GROUP BY c.external_id ORDER BY c.external_id;

-- Another grant of the benefit for a member already welcomed (its first
-- grant still waits for Discord): the member's jobs, no second welcome, one
-- at a time or set-based.
SELECT count(*) AS before FROM benefits.outbox WHERE action = 'post_welcome' \gset
INSERT INTO benefits.orders (customer_id, product_id, billing_reason, status)
    VALUES ('d0000000-0000-0000-0000-0000000000c2', 'd0000000-0000-0000-0000-0000000000b1', 'purchase', 'paid');
INSERT INTO benefits.orders (customer_id, product_id, billing_reason, status) VALUES
    ('d0000000-0000-0000-0000-0000000000c2', 'd0000000-0000-0000-0000-0000000000b1', 'purchase', 'paid'),
    ('d0000000-0000-0000-0000-0000000000c3', 'd0000000-0000-0000-0000-0000000000b1', 'purchase', 'paid');
SELECT state AS manual_grant FROM benefits.grant_benefit('d0000000-0000-0000-0000-0000000000c3', :'welcome');
SELECT count(*) FILTER (WHERE action = 'add_member') AS member_jobs_written FROM benefits.outbox o
  JOIN benefits.grants g ON g.id = o.grant_id WHERE g.order_id IS NOT NULL OR (g.subscription_id IS NULL AND g.customer_id = 'd0000000-0000-0000-0000-0000000000c3');
SELECT count(*) - :before AS new_welcomes FROM benefits.outbox WHERE action = 'post_welcome';

-- Removing the welcome from the benefit: the properties lose it.
SELECT properties ? 'welcome_message' AS has_welcome FROM benefits.update_benefit(:'welcome', NULL,
    '{"guild_id": "100000000000000111", "role_id": "100000000000000201"}');
