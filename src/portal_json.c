/*
 * portal_json.c — the pieces the customer portal document is built from:
 * query results deformed once (Rows), reading jsonb members, and pushing the
 * document's values (Doc, one pushJsonbValue call each).  Used by the
 * document (portal_document.c) and by each benefit type's part of it
 * (type_*.c); it uses only the bottom helpers.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "portal_json.h"

/* Runs a kept read-only plan and deforms its rows. */
Rows
RowsFetch(SPIPlanPtr plan, Datum *args)
{
	Rows		r;
	SPITupleTable *t;

	if (SPI_execute_plan(plan, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "portal document query failed");
	t = SPI_tuptable;
	r.n = (int) t->numvals;
	r.desc = t->tupdesc;
	r.natts = t->tupdesc->natts;
	r.values = palloc(sizeof(Datum) * r.natts * (r.n + 1));
	r.nulls = palloc(sizeof(bool) * r.natts * (r.n + 1));
	for (int i = 0; i < r.n; i++)
		heap_deform_tuple(t->vals[i], r.desc, &r.values[i * r.natts], &r.nulls[i * r.natts]);
	return r;
}

/* Whether a column of a fetched row is null, and its value. */
bool
RowsIsNull(const Rows *r, int row, int col)
{
	return r->nulls[row * r->natts + col - 1];
}

Datum
RowsGet(const Rows *r, int row, int col)
{
	return r->values[row * r->natts + col - 1];
}

/* A text column as a C string (NULL: null). */
char *
RowsText(const Rows *r, int row, int col)
{
	return RowsIsNull(r, row, col) ? NULL : TextDatumGetCString(RowsGet(r, row, col));
}

/* A uuid column in its canonical text form (NULL: null). */
char *
RowsUuidText(const Rows *r, int row, int col)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u;
	char	   *out;
	char	   *p;

	if (RowsIsNull(r, row, col))
		return NULL;
	u = DatumGetUUIDP(RowsGet(r, row, col))->data;
	out = p = palloc(2 * UUID_LEN + 5);
	for (int i = 0; i < UUID_LEN; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[u[i] >> 4];
		*p++ = hex[u[i] & 0x0f];
	}
	*p = '\0';
	return out;
}

/* Whether two uuid columns hold the same uuid (never when either is null). */
bool
RowsSameUuid(const Rows *a, int arow, int acol, const Rows *b, int brow, int bcol)
{
	return !RowsIsNull(a, arow, acol) && !RowsIsNull(b, brow, bcol) &&
		memcmp(DatumGetUUIDP(RowsGet(a, arow, acol)), DatumGetUUIDP(RowsGet(b, brow, bcol)), UUID_LEN) == 0;
}

/* A boolean column, null as false. */
bool
RowsIsTrue(const Rows *r, int row, int col)
{
	return !RowsIsNull(r, row, col) && DatumGetBool(RowsGet(r, row, col));
}

/* The top-level container of a jsonb column (NULL: null). */
JsonbContainer *
RowsJsonb(const Rows *r, int row, int col)
{
	return RowsIsNull(r, row, col) ? NULL : &DatumGetJsonbP(RowsGet(r, row, col))->root;
}

/* JSON_OBJECT -> KEY: the member, or NULL when absent or not an object. */
JsonbValue *
JsonMember(JsonbContainer *object, const char *key)
{
	if (object == NULL || !JsonContainerIsObject(object))
		return NULL;
	return getKeyJsonValueFromContainer(object, key, strlen(key), NULL);
}

/* The container of a nested array or object value, or NULL. */
JsonbContainer *
JsonContainerOf(JsonbValue *v)
{
	return v != NULL && v->type == jbvBinary ? v->val.binary.data : NULL;
}


/* coalesce((OBJECT ->> KEY)::boolean, false) */
bool
JsonMemberFlag(JsonbContainer *object, const char *key)
{
	char	   *text = BenefitsJsonbValueText(JsonMember(object, key));

	return text != NULL && DatumGetBool(DirectFunctionCall1(boolin, CStringGetDatum(text)));
}

void
DocPush(Doc *doc, JsonbIteratorToken token, JsonbValue *v)
{
	pushJsonbValue(doc, token, v);
}

void
DocBeginObject(Doc *doc)
{
	DocPush(doc, WJB_BEGIN_OBJECT, NULL);
}

void
DocEndObject(Doc *doc)
{
	DocPush(doc, WJB_END_OBJECT, NULL);
}

void
DocBeginArray(Doc *doc)
{
	DocPush(doc, WJB_BEGIN_ARRAY, NULL);
}

void
DocEndArray(Doc *doc)
{
	DocPush(doc, WJB_END_ARRAY, NULL);
}

void
DocKey(Doc *doc, const char *key)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) key;
	v.val.string.len = strlen(key);
	DocPush(doc, WJB_KEY, &v);
}

void
DocNull(Doc *doc)
{
	JsonbValue	v;

	v.type = jbvNull;
	DocPush(doc, WJB_VALUE, &v);
}

/* A string value (NULL: null). */
void
DocStr(Doc *doc, const char *value)
{
	JsonbValue	v;

	if (value == NULL)
	{
		DocNull(doc);
		return;
	}
	v.type = jbvString;
	v.val.string.val = (char *) value;
	v.val.string.len = strlen(value);
	DocPush(doc, WJB_VALUE, &v);
}

void
DocBool(Doc *doc, bool value)
{
	JsonbValue	v;

	v.type = jbvBool;
	v.val.boolean = value;
	DocPush(doc, WJB_VALUE, &v);
}

/* A JSON value taken from a jsonb (NULL: null; nested containers are copied in). */
void
DocJson(Doc *doc, JsonbValue *v)
{
	if (v == NULL)
		DocNull(doc);
	else
		DocPush(doc, WJB_VALUE, v);
}

/* An empty array. */
void
DocEmptyArray(Doc *doc)
{
	DocBeginArray(doc);
	DocEndArray(doc);
}

/* Writes VALUE as WIDTH decimal digits at OUT. */
static void
Digits(char *out, int value, int width)
{
	for (int i = width - 1; i >= 0; i--)
	{
		out[i] = '0' + value % 10;
		value /= 10;
	}
}

/*
 * RFC 3339 in UTC with a Z, seconds precision (NULL: null).  The document has
 * a few dozen of them, so the usual four-digit years are written directly
 * rather than through a format string.
 */
char *
PortalTimeText(TimestampTz ts)
{
	struct pg_tm tm;
	fsec_t		fsec;
	char	   *out;

	if (TIMESTAMP_NOT_FINITE(ts) || timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
		return NULL;
	if (tm.tm_year < 0 || tm.tm_year > 9999)
		return psprintf("%04d-%02d-%02dT%02d:%02d:%02dZ",
						tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	out = palloc(sizeof("YYYY-MM-DDTHH:MM:SSZ"));
	memcpy(out, "0000-00-00T00:00:00Z", sizeof("YYYY-MM-DDTHH:MM:SSZ"));
	Digits(out, tm.tm_year, 4);
	Digits(out + 5, tm.tm_mon, 2);
	Digits(out + 8, tm.tm_mday, 2);
	Digits(out + 11, tm.tm_hour, 2);
	Digits(out + 14, tm.tm_min, 2);
	Digits(out + 17, tm.tm_sec, 2);
	return out;
}

/* Column values as document values. */
void
DocTextCol(Doc *doc, const Rows *r, int row, int col)
{
	DocStr(doc, RowsText(r, row, col));
}

void
DocUuidCol(Doc *doc, const Rows *r, int row, int col)
{
	DocStr(doc, RowsUuidText(r, row, col));
}

void
DocTimeCol(Doc *doc, const Rows *r, int row, int col)
{
	DocStr(doc, RowsIsNull(r, row, col) ? NULL : PortalTimeText(DatumGetTimestampTz(RowsGet(r, row, col))));
}

void
DocIntCol(Doc *doc, const Rows *r, int row, int col)
{
	JsonbValue	v;
	Datum		d = RowsGet(r, row, col);

	if (RowsIsNull(r, row, col))
	{
		DocNull(doc);
		return;
	}
	v.type = jbvNumeric;
	if (TupleDescAttr(r->desc, col - 1)->atttypid == INT8OID)
		v.val.numeric = int64_to_numeric(DatumGetInt64(d));
	else
		v.val.numeric = int64_to_numeric(DatumGetInt32(d));
	DocPush(doc, WJB_VALUE, &v);
}

void
DocJsonCol(Doc *doc, const Rows *r, int row, int col)
{
	Jsonb	   *jb;
	JsonbValue	v;

	if (RowsIsNull(r, row, col))
	{
		DocNull(doc);
		return;
	}
	jb = DatumGetJsonbP(RowsGet(r, row, col));
	if (JB_ROOT_IS_SCALAR(jb))
		JsonbExtractScalar(&jb->root, &v);
	else
	{
		v.type = jbvBinary;
		v.val.binary.data = &jb->root;
		v.val.binary.len = VARSIZE(jb) - VARHDRSZ;
	}
	DocPush(doc, WJB_VALUE, &v);
}

/* A uuid from its text, as a cast to uuid reads it. */
pg_uuid_t *
PortalUuidFromText(const char *text)
{
	return DatumGetUUIDP(DirectFunctionCall1(uuid_in, CStringGetDatum(text)));
}


/* jsonb's order of object keys: shorter first, then bytewise. */
bool
PortalKeyBefore(const char *a, const char *b)
{
	size_t		la = strlen(a);
	size_t		lb = strlen(b);

	if (la != lb)
		return la < lb;
	return memcmp(a, b, la) < 0;
}

const char *
PortalDelivery(const PortalBuild *ctx, const PortalBenefit *b, char **action, char **message)
{
	JsonbContainer *error = RowsJsonb(ctx->held, b->chosen, HELD_ERROR);

	char	   *type = BenefitsJsonbValueText(JsonMember(error, "type"));

	*action = BenefitsJsonbValueText(JsonMember(error, "action"));
	*message = BenefitsJsonbValueText(JsonMember(error, "message"));
	/* a provider's refusal names the job's action too: that is a failure */
	if (*action != NULL && (type == NULL || strcmp(type, "provider_error") != 0))
		return "action_required";
	*action = NULL;
	if (strcmp(RowsText(ctx->held, b->chosen, HELD_STATE), "active") == 0)
		return "granted";
	if (error != NULL)
		return "failed";
	return "pending";
}

void
PortalAccount(PortalBuild *ctx, const char *platform)
{
	static SPIPlanPtr accounts_plan;

	if (!ctx->have_accounts)
	{
		Oid			one_uuid[1] = {UUIDOID};

		BenefitsGenericPlan(&accounts_plan,
							"SELECT platform, account_id, username FROM benefits.customer_accounts"
							" WHERE customer_id = $1", 1, one_uuid);
		ctx->accounts = RowsFetch(accounts_plan, &ctx->customer_id);
		ctx->have_accounts = true;
	}
	for (int i = 0; i < ctx->accounts.n; i++)
	{
		char	   *p = RowsText(&ctx->accounts, i, 1);

		if (p && strcmp(p, platform) == 0)
		{
			DocBeginObject(&ctx->doc);
			DocKey(&ctx->doc, "username");
			DocTextCol(&ctx->doc, &ctx->accounts, i, 3);
			DocKey(&ctx->doc, "account_id");
			DocTextCol(&ctx->doc, &ctx->accounts, i, 2);
			DocEndObject(&ctx->doc);
			return;
		}
	}
	DocNull(&ctx->doc);
}

/* Columns of benefits.account_link_states as PortalLink reads them. */
enum
{
	LINK_PLATFORM = 1, LINK_STATUS, LINK_ERROR
};

void
PortalLink(PortalBuild *ctx, const char *platform)
{
	static SPIPlanPtr links_plan;

	/* a database still at 0.1.0's schema keeps no link states */
	if (!ctx->have_links && !BenefitsHasRelation("account_links"))
	{
		DocNull(&ctx->doc);
		return;
	}
	if (!ctx->have_links)
	{
		Oid			one_uuid[1] = {UUIDOID};

		/* inlined and planned once (account_link_status plans its body per call) */
		BenefitsGenericPlan(&links_plan,
							"SELECT l.platform, l.status, l.error FROM benefits.account_link_states($1) l",
							1, one_uuid);
		ctx->links = RowsFetch(links_plan, &ctx->customer_id);
		ctx->have_links = true;
	}
	for (int i = 0; i < ctx->links.n; i++)
	{
		char	   *p = RowsText(&ctx->links, i, LINK_PLATFORM);

		if (p && strcmp(p, platform) == 0)
		{
			DocBeginObject(&ctx->doc);
			DocKey(&ctx->doc, "error");
			DocTextCol(&ctx->doc, &ctx->links, i, LINK_ERROR);
			DocKey(&ctx->doc, "status");
			DocTextCol(&ctx->doc, &ctx->links, i, LINK_STATUS);
			DocEndObject(&ctx->doc);
			return;
		}
	}
	DocNull(&ctx->doc);
}
