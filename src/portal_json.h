/*
 * portal_json.h — building the customer portal document (portal_json.c):
 * query results deformed once, jsonb members, and the document's values.
 *
 * Every object's members are pushed in jsonb's own key order (shorter keys
 * first, then bytewise), so closing an object finds it already sorted
 * instead of sorting its pairs (PortalKeyBefore compares two keys so).
 */
#ifndef BENEFITS_PORTAL_JSON_H
#define BENEFITS_PORTAL_JSON_H

#include "postgres.h"

#include "access/tupdesc.h"
#include "executor/spi.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

/*
 * The rows of one query, deformed once (column numbers from 1).  The values
 * point into the SPI result, which lives until SPI_finish.
 */
typedef struct Rows
{
	int			n;
	int			natts;
	TupleDesc	desc;
	Datum	   *values;
	bool	   *nulls;
} Rows;

extern Rows RowsFetch(SPIPlanPtr plan, Datum *args);
extern bool RowsIsNull(const Rows *r, int row, int col);
extern Datum RowsGet(const Rows *r, int row, int col);
/* A text column as a C string; a uuid column as text (NULL: null). */
extern char *RowsText(const Rows *r, int row, int col);
extern char *RowsUuidText(const Rows *r, int row, int col);
extern bool RowsSameUuid(const Rows *a, int arow, int acol, const Rows *b, int brow, int bcol);
extern bool RowsIsTrue(const Rows *r, int row, int col);
extern JsonbContainer *RowsJsonb(const Rows *r, int row, int col);

/* OBJECT -> KEY (NULL when absent or not an object); a nested container; ->> as boolean. */
extern JsonbValue *JsonMember(JsonbContainer *object, const char *key);
extern JsonbContainer *JsonContainerOf(JsonbValue *v);
extern bool JsonMemberFlag(JsonbContainer *object, const char *key);

/* The document under construction. */
typedef JsonbParseState *Doc;

extern void DocPush(Doc *doc, JsonbIteratorToken token, JsonbValue *v);
extern void DocBeginObject(Doc *doc);
extern void DocEndObject(Doc *doc);
extern void DocBeginArray(Doc *doc);
extern void DocEndArray(Doc *doc);
extern void DocKey(Doc *doc, const char *key);
extern void DocNull(Doc *doc);
extern void DocStr(Doc *doc, const char *value);
extern void DocBool(Doc *doc, bool value);
extern void DocJson(Doc *doc, JsonbValue *v);
extern void DocEmptyArray(Doc *doc);
/* Column values as document values. */
extern void DocTextCol(Doc *doc, const Rows *r, int row, int col);
extern void DocUuidCol(Doc *doc, const Rows *r, int row, int col);
extern void DocTimeCol(Doc *doc, const Rows *r, int row, int col);
extern void DocIntCol(Doc *doc, const Rows *r, int row, int col);
extern void DocJsonCol(Doc *doc, const Rows *r, int row, int col);

/* RFC 3339 in UTC with a Z, seconds precision (NULL: not finite). */
extern char *PortalTimeText(TimestampTz ts);
extern pg_uuid_t *PortalUuidFromText(const char *text);
/* Does key a come before key b in jsonb's order of object keys? */
extern bool PortalKeyBefore(const char *a, const char *b);

/* Columns of the document's held grants (portal_document.c, HELD_SQL). */
enum
{
	HELD_GRANT_ID = 1, HELD_BENEFIT_ID, HELD_TYPE, HELD_DESCRIPTION, HELD_STATE, HELD_GRANTED_AT,
	HELD_ERROR, HELD_PROPERTIES, HELD_SOURCE_ID, HELD_METADATA
};

/* One benefit shown in the document: its grant row and its type's data. */
typedef struct PortalBenefit
{
	int			first;			/* held row of its first place */
	int			chosen;			/* held row whose grant is shown */
	const char *type;
	JsonbContainer *properties;
	JsonbContainer *metadata;
	void	   *type_state;		/* what its type's portal_collect found for it */
} PortalBenefit;

/* The document being built, as the benefit types' parts see it. */
typedef struct PortalBuild
{
	Doc			doc;
	Datum		customer_id;
	Datum		organization_id;
	TimestampTz now;
	const Rows *held;			/* the customer's live grants (HELD_*) */
	Rows		accounts;		/* linked accounts, once asked for */
	bool		have_accounts;
	Rows		links;			/* link states per platform, once asked for */
	bool		have_links;
} PortalBuild;

/*
 * A provider benefit's delivery as the customer sees it: "granted",
 * "pending", "action_required" (*action says which, e.g. link_github) or
 * "failed" (*message says why).
 */
extern const char *PortalDelivery(const PortalBuild *ctx, const PortalBenefit *b,
								  char **action, char **message);
/* The customer's linked account on a platform as {username, account_id}, or null. */
extern void PortalAccount(PortalBuild *ctx, const char *platform);
/*
 * The customer's link of a platform as {error, status}: status unlinked,
 * pending, linked or failed (account_link_status), error what went wrong.
 */
extern void PortalLink(PortalBuild *ctx, const char *platform);

#endif
