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

/* grants.c */
/*
 * Grant a benefit to a customer through a subscription or an order (NULL for
 * a manual grant).  Idempotent: a live grant is left as it is (*changed is
 * false); a revoked one is granted again.  Returns the grant's id.
 */
extern pg_uuid_t GrantApply(pg_uuid_t customer_id, pg_uuid_t benefit_id,
							const pg_uuid_t *subscription_id,
							const pg_uuid_t *order_id, bool *changed);
/* Revoke a grant; false when it was already revoked. */
extern bool GrantRevoke(pg_uuid_t grant_id);
extern pg_uuid_t GrantLockCustomer(pg_uuid_t customer_id);

/* grant_types.c: per-benefit-type effects of granting and revoking */
extern void BenefitTypeGrant(GrantChange *change);
extern void BenefitTypeRevoke(GrantChange *change);


#endif
