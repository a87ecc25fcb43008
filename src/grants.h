/*
 * grants.h — the grant lifecycle shared by manual grants, subscriptions,
 * orders and the benefit-type handlers.
 *
 * Every function here runs inside an SPI connection opened by its caller.
 * Grant changes of one customer are serialized by a lock on the customer row
 * (GrantLockCustomer), so "does another live grant of this benefit remain"
 * is answered consistently.
 */
#ifndef BENEFITS_GRANTS_H
#define BENEFITS_GRANTS_H

#include "postgres.h"

#include "utils/jsonb.h"
#include "utils/uuid.h"

/*
 * One grant or revoke being applied: what the benefit-type handlers see and
 * fill in.
 */
typedef struct GrantChange
{
	pg_uuid_t	grant_id;
	pg_uuid_t	organization_id;
	pg_uuid_t	customer_id;
	pg_uuid_t	benefit_id;
	bool		has_subscription;
	pg_uuid_t	subscription_id;
	bool		has_order;
	pg_uuid_t	order_id;
	char	   *benefit_type;		/* benefits.type */
	Jsonb	   *benefit_properties; /* normalized benefits.properties */
	Jsonb	   *grant_properties;	/* the grant's current properties, or NULL */

	/* Revoke only: no other live grant of this benefit for this customer. */
	bool		last_holder;

	/* Filled by the grant handler: the state and data the grant ends in. */
	const char *new_state;			/* "active" or "created" */
	Jsonb	   *new_properties;		/* NULL keeps the current properties */
	Jsonb	   *error;				/* NULL clears the error */
} GrantChange;

/* Where a grant comes from. */
typedef enum GrantSource
{
	GRANT_SOURCE_MANUAL,
	GRANT_SOURCE_SUBSCRIPTION,
	GRANT_SOURCE_ORDER
} GrantSource;

/*
 * One benefit granted to many customers at once (grants_batch.c), each
 * through its own source.  The customers are locked and distinct, and none
 * has a grant of the benefit from that source yet.
 */
typedef struct GrantBatch
{
	pg_uuid_t	organization_id;
	pg_uuid_t	benefit_id;
	char	   *benefit_type;
	Jsonb	   *benefit_properties;
	GrantSource source;
	int			n;
	const pg_uuid_t *customer_ids;
	const pg_uuid_t *source_ids;	/* subscription or order ids; NULL for manual */
	pg_uuid_t  *grant_ids;			/* filled: the new grants, in input order */
} GrantBatch;

/*
 * The shared part of the set-based grant statements.  Parameters: $1
 * organization, $2 benefit, $3 grant ids, $4 customer ids, $5 source ids, $6
 * the source ('s' subscription, 'o' order, 'm' manual); a type's own
 * parameters follow.  GRANT_BATCH_ROWS names them u(id, customer_id,
 * source_id, n); GRANT_BATCH_INSERT writes u's grants with a state,
 * properties and error given as SQL.
 */
#define GRANT_BATCH_ROWS \
	"ROWS FROM (pg_catalog.unnest($3::uuid[]), pg_catalog.unnest($4::uuid[]), " \
	"pg_catalog.unnest($5::uuid[])) WITH ORDINALITY AS u(id, customer_id, source_id, n)"
#define GRANT_BATCH_INSERT(state, properties, error) \
	"INSERT INTO benefits.grants (id, organization_id, customer_id, benefit_id, " \
	"subscription_id, order_id, state, properties, error) " \
	"SELECT u.id, $1, u.customer_id, $2, CASE WHEN $6 = 's' THEN u.source_id END, " \
	"CASE WHEN $6 = 'o' THEN u.source_id END, " state ", " properties ", " error " "
#define GRANT_BATCH_NARGS 6

/*
 * A grant that is not the kept history of a deleted subscription or order
 * (0.2.0's schema; see BenefitsGrantsKeepHistory).
 */
#define GRANT_NOT_KEPT_SQL "source_subscription_id IS NULL AND source_order_id IS NULL "

/* grants_batch.c: a batch's SQL arguments; the grants of types with nothing to deliver */
extern void GrantBatchArgs(const GrantBatch *batch, Oid *types, Datum *values);
extern void GrantLocal(GrantChange *change);
extern void GrantLocalMany(GrantBatch *batch);
extern void GrantLocalManyAs(GrantBatch *batch, const char *state, const char *properties);

/* grants.c */
/*
 * Grant a benefit to a customer through a subscription or an order (NULL for
 * a manual grant).  Idempotent: a live grant is left as it is (*changed is
 * false); a revoked one is granted again.  Returns the grant's id.
 */
extern pg_uuid_t GrantApply(pg_uuid_t customer_id, pg_uuid_t benefit_id,
							const pg_uuid_t *subscription_id,
							const pg_uuid_t *order_id, bool *changed);
/*
 * GrantApply with the target already loaded under the customer's lock:
 * change holds the customer, benefit, source and organization, the benefit's
 * type and properties, and, when the source has a grant of the benefit, its
 * id and properties; state is that grant's state, or NULL when there is none.
 */
extern pg_uuid_t GrantApplyLoaded(GrantChange *change, const char *state, bool *changed);
/* Revoke a grant; false when it was already revoked. */
extern bool GrantRevoke(pg_uuid_t grant_id);
/* Revoke the live grants of one source, in order; returns those revoked (in revoked). */
extern int	GrantRevokeMany(const pg_uuid_t *grant_ids, int n, pg_uuid_t *revoked);
/* GrantRevoke, and benefit_grant.revoked when the grant was live. */
extern void GrantRevokeReported(pg_uuid_t grant_id);
extern pg_uuid_t GrantLockCustomer(pg_uuid_t customer_id);
extern void GrantLockCustomers(Datum customer_ids);

#endif
