-- The benefit catalog (src/catalog.c, src/properties.c): benefits are created,
-- edited and deleted through these functions, which validate and normalize
-- their properties, and attached to products in order.  They are for
-- benefits_admin only (99_privileges.sql); nothing is granted to PUBLIC.
-- They are SECURITY DEFINER because they write webhook events into the
-- outbox, which benefits_admin may not write directly.

CREATE FUNCTION benefits.create_benefit(type text, organization_id uuid, description text, properties jsonb,
                                        metadata jsonb DEFAULT NULL)
RETURNS benefits.benefits
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'create_benefit';
COMMENT ON FUNCTION benefits.create_benefit(text, uuid, text, jsonb, jsonb) IS
'Creates a benefit of the organization after validating its properties and metadata; aliases downloadables, meter_credit and a custom benefit with meter_id and credits are stored under their canonical type';

CREATE FUNCTION benefits.update_benefit(benefit_id uuid, description text DEFAULT NULL, properties jsonb DEFAULT NULL,
                                        metadata jsonb DEFAULT NULL)
RETURNS benefits.benefits
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'update_benefit';
COMMENT ON FUNCTION benefits.update_benefit(uuid, text, jsonb, jsonb) IS
'Replaces the description, the properties and/or the metadata of a benefit (NULL keeps them); the type cannot change';

CREATE FUNCTION benefits.delete_benefit(benefit_id uuid)
RETURNS void
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'delete_benefit';
COMMENT ON FUNCTION benefits.delete_benefit(uuid) IS
'Soft-deletes a benefit (sets deleted_at) and detaches it from every product';

CREATE FUNCTION benefits.update_product_benefits(product_id uuid, benefit_ids uuid[])
RETURNS void
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'update_product_benefits';
COMMENT ON FUNCTION benefits.update_product_benefits(uuid, uuid[]) IS
'Makes benefit_ids, in this order, the benefits of the product';
