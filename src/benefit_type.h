/*
 * benefit_type.h — what a benefit type is: one struct of operations per type,
 * defined in the type's own file (type_*.c) and found through the registry
 * (benefit_types.c).  No other file names a type: it asks the registry.
 *
 * Every operation runs inside an SPI connection opened by its caller, in the
 * caller's transaction; the grant operations run with the customer locked
 * (grants.h).  An operation left NULL means the type has nothing to do there.
 */
#ifndef BENEFITS_BENEFIT_TYPE_H
#define BENEFITS_BENEFIT_TYPE_H

#include "postgres.h"

#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "email.h"
#include "grants.h"
#include "portal_json.h"
#include "portal_page.h"
#include "properties.h"

typedef struct BenefitType BenefitType;

/* A top-level property the merchant's dashboard may edit in place. */
typedef struct BenefitEditableProperty
{
	const char *key;
	const char *label;
	bool		integer;		/* a positive integer; else text */
} BenefitEditableProperty;

struct BenefitType
{
	const char *name;			/* stored in benefits.benefits.type */
	const char *alias;			/* another name create_benefit accepts, or NULL */
	const char *webhook_name;	/* the name in webhook payloads (Polar's spelling) */
	/*
	 * Its properties in webhook payloads, as SQL over the benefit's alias
	 * (written %1$s), where Polar's types ask for more than the normalized
	 * form holds; NULL: the stored properties as they are.
	 */
	const char *webhook_properties_sql;
	const char *account_platform;	/* the linked account it needs ("github"), or NULL */
	const char *metadata_key;	/* a string its metadata must carry, or NULL */

	/* Validate the caller's properties (root) and push the normalized members. */
	void		(*normalize) (PropertiesState *state, JsonbContainer *root);
	/* The type a benefit given as this type is stored as (NULL: this one). */
	const BenefitType *(*stored_as) (JsonbContainer *root, const char **hint);

	/* Grant one: set change->new_state, new_properties, error; side effects. */
	void		(*grant) (GrantChange *change);
	/* The same for a batch of customers, in one statement. */
	void		(*grant_many) (GrantBatch *batch);
	/* Undo what the grant delivered (change->last_holder says if it may). */
	void		(*revoke) (GrantChange *change);
	/*
	 * The customer's account_platform account is gone (unlinked, or replaced
	 * by another): remove what the live grant delivered to it, as revoke
	 * does, and set the properties and error of a grant waiting for a link.
	 */
	void		(*account_gone) (GrantChange *change);
	/* A paid renewal: the grant's new properties. */
	Jsonb	   *(*cycle) (pg_uuid_t grant_id, pg_uuid_t organization_id, pg_uuid_t customer_id,
						  Jsonb *benefit_properties, Jsonb *grant_properties);
	/* The benefit's properties were edited: bring what it owns up to date. */
	void		(*benefit_updated) (pg_uuid_t benefit_id, Jsonb *properties);
	/* The same for one live grant: its new properties (first: its customer's first grant). */
	Jsonb	   *(*grant_updated) (pg_uuid_t grant_id, pg_uuid_t organization_id, pg_uuid_t customer_id,
								  Jsonb *benefit_properties, Jsonb *grant_properties, bool first);

	/*
	 * The customer portal document: the type's member of each benefit object
	 * (NULL: none).  portal_collect runs once per document with every shown
	 * benefit of the type, to fetch what they need (b->type_state);
	 * portal_member pushes the member's value.
	 */
	const char *portal_key;
	void		(*portal_collect) (PortalBuild *ctx, PortalBenefit **benefits, int n);
	void		(*portal_member) (PortalBuild *ctx, PortalBenefit *b);
	/*
	 * Members of the shown grant's own (key and value pushed), after the
	 * others, or NULL: none.
	 */
	void		(*portal_grant) (PortalBuild *ctx, PortalBenefit *b);

	/*
	 * The customer portal page: the label of its cards, and its section of
	 * one benefit's card from the benefit's object in the document.
	 */
	const char *portal_label;
	void		(*portal_html) (PortalPage *page, JsonbContainer *benefit);

	/*
	 * A customer email listing a grant of the type: how to reach what it
	 * gives (email_text.c writes both parts).  NULL: the description alone.
	 */
	void		(*email_instructions) (EmailBody *body, const EmailGrant *grant);

	/*
	 * The properties the dashboard's edit form offers (terminated by an
	 * entry with a NULL key; NULL: none): those whose change update_benefit
	 * applies to live grants without moving anyone's access elsewhere.
	 */
	const BenefitEditableProperty *admin_editable;
};

/* The type of a name or alias, or NULL. */
extern const BenefitType *BenefitTypeFind(const char *name);
/* The type of a name or alias; SQLSTATE 22023 listing the types otherwise. */
extern const BenefitType *BenefitTypeRequire(const char *name);
/* The type of a stored benefits.type value (an error for anything else). */
extern const BenefitType *BenefitTypeOf(const char *name);
/* The type whose grants wait for a linked account of this platform, or NULL. */
extern const BenefitType *BenefitTypeForPlatform(const char *platform);

/*
 * Validates properties (NULL means '{}') for a benefit of the type named
 * `type` (name or alias) and returns the normalized properties in the
 * caller's memory context; *stored_type receives the type it is stored as.
 * Bad input raises SQLSTATE 22023 naming the JSON path.
 */
extern Jsonb *BenefitPropertiesNormalize(const char *type, Jsonb *properties,
										 pg_uuid_t organization_id, const BenefitType **stored_type);

/* A benefit's metadata (NULL: unchanged from existing) checked for its type. */
extern void BenefitMetadataCheck(const BenefitType *bt, Jsonb *metadata, Jsonb *existing);

/*
 * SQL over the benefits alias for the type's name in webhook payloads and its
 * properties there, from every type (*name_sql, *properties_sql).
 */
extern void BenefitTypesWebhookSql(const char *alias, char **name_sql, char **properties_sql);

/* The grant operations of a change's or batch's benefit type. */
extern void BenefitTypeGrant(GrantChange *change);
extern void BenefitTypeGrantMany(GrantBatch *batch);
extern void BenefitTypeRevoke(GrantChange *change);
/* Fresh grant ids for a batch, then its type's batch grant. */
extern void GrantBatchFresh(GrantBatch *batch);

/* Every type, in registry order: *n of them. */
extern const BenefitType *const *BenefitTypeAll(int *n);

/* The types (type_*.c). */
extern const BenefitType LicenseKeysBenefit;
extern const BenefitType GithubRepositoryBenefit;
extern const BenefitType DiscordBenefit;
extern const BenefitType DownloadableBenefit;
extern const BenefitType MeterCreditsBenefit;
extern const BenefitType CustomBenefit;
extern const BenefitType FeatureFlagBenefit;

/* The features a customer holds, distinct, in name order (type_feature_flag.c). */
extern List *FeatureFlagCustomerFeatures(const pg_uuid_t *customer_id);

#endif
