/*
 * portal_document.c — the customer portal document (customer_portal's jsonb).
 *
 * Built in C from kept SPI plans, each a short index lookup: the customer and
 * organization (for customer_portal found through the session token in the
 * same statement), live subscriptions, the held grants with their benefits,
 * the subscriptions and orders that granted them with their products' benefit
 * order, and, only when a shown benefit needs them, the customer's license
 * keys, their activations, the files the downloadable benefits name (each
 * with a download URL signed here), meter balances and linked accounts.
 * Benefit properties and grant errors are read from the jsonb in C, each
 * result row is deformed once, and the jsonb is assembled directly with
 * pushJsonbValue.  Every object's members are pushed in jsonb's own key order
 * (shorter keys first, then bytewise), so closing an object finds it already
 * sorted instead of sorting its pairs.  (Measured per call: joining these lookups into fewer
 * statements, sorting or applying jsonb operators in SQL all cost more than
 * the plain lookups; the document as one query of nested jsonb_build_object
 * subqueries cost several times more.)
 *
 * Shape:
 *   {customer: {id, external_id, email, name}, organization: {id, name},
 *    generated_at, subscriptions: [{id, product: {id, name}, status,
 *    current_period_start, current_period_end, cancel_at_period_end}],
 *    benefits: [{id, grant_id, type, description, state, granted_at} plus
 *      license_keys: license_key {id, key, display_key, status, usage,
 *        limit_usage, limit_activations, validations, last_validated_at,
 *        expires_at, customer_admin, activations: [{id, label, meta, created_at}]}
 *      downloadable: files [{id, name, size, mime_type, checksum_sha256,
 *        download_url, download_expires_at}]
 *      custom: note
 *      meter_credits: meter {id, name, units, rollover, balance}
 *      github_repository: github {repositories, account, delivery, action, message}
 *      discord: discord {guild_id, roles, account, delivery, action, message}]}
 * Times are RFC 3339 in UTC with a Z.  delivery is granted, pending,
 * action_required (with the action the engine recorded, e.g. link_github)
 * or failed.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "portal.h"
#include "s3.h"

static SPIPlanPtr customer_plan = NULL;
static SPIPlanPtr session_plan = NULL;
static SPIPlanPtr subscriptions_plan = NULL;
static SPIPlanPtr held_plan = NULL;
static SPIPlanPtr attached_plan = NULL;
static SPIPlanPtr keys_plan = NULL;
static SPIPlanPtr activations_plan = NULL;
static SPIPlanPtr files_plan = NULL;
static SPIPlanPtr meter_plan = NULL;
static SPIPlanPtr accounts_plan = NULL;

/* The customer row both entry points start from (C_* columns). */
#define CUSTOMER_COLUMNS "SELECT c.id, c.external_id, c.email, c.name, o.id, o.name"

enum
{
	C_ID = 1, C_EXTERNAL_ID, C_EMAIL, C_NAME, C_ORGANIZATION_ID, C_ORGANIZATION_NAME
};

/*
 * The customer's live grants with their benefits.  PortalDocument orders them
 * by attachment (ATTACHED_SQL): the order of the subscriptions/orders that
 * granted them, then each product's benefit order, manual grants last; a
 * benefit held several times appears once, in its first place, showing an
 * active grant when there is one.  (Two plain queries and a sort in C cost
 * less than one query doing it all.)
 */
#define HELD_SQL \
	"SELECT g.id, g.benefit_id, b.type, b.description, g.state, g.granted_at, g.error, b.properties," \
	"       coalesce(g.subscription_id, g.order_id)" \
	"  FROM benefits.grants g" \
	"  JOIN benefits.benefits b ON b.id = g.benefit_id AND b.deleted_at IS NULL" \
	" WHERE g.customer_id = $1 AND g.state <> 'revoked'"

enum
{
	H_GRANT_ID = 1, H_BENEFIT_ID, H_TYPE, H_DESCRIPTION, H_STATE, H_GRANTED_AT,
	H_ERROR, H_PROPERTIES, H_SOURCE_ID
};

/* Every subscription and order of the customer with the benefits of its product. */
#define ATTACHED_SQL \
	"SELECT x.id, x.created_at, pb.benefit_id, pb.position" \
	"  FROM (SELECT s.id, s.created_at, s.product_id FROM benefits.subscriptions s WHERE s.customer_id = $1" \
	"        UNION ALL" \
	"        SELECT o.id, o.created_at, o.product_id FROM benefits.orders o WHERE o.customer_id = $1) x" \
	"  JOIN benefits.product_benefits pb ON pb.product_id = x.product_id"

enum
{
	S_ID = 1, S_PRODUCT_ID, S_PRODUCT_NAME, S_STATUS, S_CURRENT_PERIOD_START, S_CURRENT_PERIOD_END,
	S_CANCEL_AT_PERIOD_END, S_CREATED_AT
};

enum
{
	K_BENEFIT_ID = 1, K_ID, K_KEY, K_DISPLAY_KEY, K_STATUS, K_USAGE, K_LIMIT_USAGE,
	K_LIMIT_ACTIVATIONS, K_VALIDATIONS, K_LAST_VALIDATED_AT, K_EXPIRES_AT
};

enum
{
	A_LICENSE_KEY_ID = 1, A_ID, A_LABEL, A_META, A_CREATED_AT
};

enum
{
	F_ID = 1, F_NAME, F_SIZE, F_MIME_TYPE, F_CHECKSUM, F_STORAGE_KEY
};

/*
 * The document's statements, prepared on first use.  Each runs on every
 * call, so always with its generic plan.
 */
static void
PreparePlans(void)
{
	Oid			one_uuid[1] = {UUIDOID};
	Oid			two_uuids[2] = {UUIDOID, UUIDOID};
	Oid			one_bytea[1] = {BYTEAOID};
	Oid			uuid_array[1] = {UUIDARRAYOID};
	Oid			uuid_array_uuid[2] = {UUIDARRAYOID, UUIDOID};

	if (accounts_plan != NULL)
		return;
	BenefitsGenericPlan(&customer_plan,
				 CUSTOMER_COLUMNS
				 "  FROM benefits.customers c JOIN benefits.organizations o ON o.id = c.organization_id"
				 " WHERE c.id = $1", 1, one_uuid);
	BenefitsGenericPlan(&session_plan,
				 CUSTOMER_COLUMNS
				 CUSTOMER_SESSION_JOIN_SQL
				 "  JOIN benefits.organizations o ON o.id = c.organization_id"
				 " WHERE " CUSTOMER_SESSION_LIVE_SQL, 1, one_bytea);
	BenefitsGenericPlan(&subscriptions_plan,
				 "SELECT s.id, p.id, p.name, s.status, s.current_period_start, s.current_period_end,"
				 "       s.cancel_at_period_end, s.created_at"
				 "  FROM benefits.subscriptions s JOIN benefits.products p ON p.id = s.product_id"
				 " WHERE s.customer_id = $1 AND s.status IN ('trialing', 'active', 'past_due', 'unpaid')",
				 1, one_uuid);
	BenefitsGenericPlan(&held_plan, HELD_SQL, 1, one_uuid);
	BenefitsGenericPlan(&attached_plan, ATTACHED_SQL, 1, one_uuid);
	BenefitsGenericPlan(&keys_plan,
				 "SELECT lk.benefit_id, lk.id, lk.key, lk.display_key, lk.status, lk.usage, lk.limit_usage,"
				 "       lk.limit_activations, lk.validations, lk.last_validated_at, lk.expires_at"
				 "  FROM benefits.license_keys lk WHERE lk.customer_id = $1", 1, one_uuid);
	BenefitsGenericPlan(&activations_plan,
				 "SELECT a.license_key_id, a.id, a.label, a.meta, a.created_at"
				 "  FROM benefits.license_key_activations a WHERE a.license_key_id = ANY ($1)",
				 1, uuid_array);
	BenefitsGenericPlan(&files_plan,
				 "SELECT f.id, f.name, f.size, f.mime_type, f.checksum_sha256, f.storage_key"
				 "  FROM benefits.files f"
				 " WHERE f.id = ANY ($1) AND f.organization_id = $2"
				 "   AND f.enabled AND NOT f.archived AND f.uploaded_at IS NOT NULL",
				 2, uuid_array_uuid);
	BenefitsGenericPlan(&meter_plan,
				 "SELECT m.id, m.name, coalesce(mb.balance, 0) FROM benefits.meters m"
				 "  LEFT JOIN benefits.meter_balances mb ON mb.customer_id = $2 AND mb.meter_id = m.id"
				 " WHERE m.id = $1", 2, two_uuids);
	BenefitsGenericPlan(&accounts_plan,
				 "SELECT platform, account_id, username FROM benefits.customer_accounts WHERE customer_id = $1",
				 1, one_uuid);
}

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

/* Runs a kept read-only plan and deforms its rows. */
static Rows
Fetch(SPIPlanPtr plan, Datum *args)
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
static bool
IsNull(const Rows *r, int row, int col)
{
	return r->nulls[row * r->natts + col - 1];
}

static Datum
Get(const Rows *r, int row, int col)
{
	return r->values[row * r->natts + col - 1];
}

/* A text column as a C string (NULL: null). */
static char *
TextOf(const Rows *r, int row, int col)
{
	return IsNull(r, row, col) ? NULL : TextDatumGetCString(Get(r, row, col));
}

/* A uuid column in its canonical text form (NULL: null). */
static char *
UuidOf(const Rows *r, int row, int col)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u;
	char	   *out;
	char	   *p;

	if (IsNull(r, row, col))
		return NULL;
	u = DatumGetUUIDP(Get(r, row, col))->data;
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
static bool
SameUuid(const Rows *a, int arow, int acol, const Rows *b, int brow, int bcol)
{
	return !IsNull(a, arow, acol) && !IsNull(b, brow, bcol) &&
		memcmp(DatumGetUUIDP(Get(a, arow, acol)), DatumGetUUIDP(Get(b, brow, bcol)), UUID_LEN) == 0;
}

/* A boolean column, null as false. */
static bool
IsTrue(const Rows *r, int row, int col)
{
	return !IsNull(r, row, col) && DatumGetBool(Get(r, row, col));
}

/* The top-level container of a jsonb column (NULL: null). */
static JsonbContainer *
JsonbOf(const Rows *r, int row, int col)
{
	return IsNull(r, row, col) ? NULL : &DatumGetJsonbP(Get(r, row, col))->root;
}

/* JSON_OBJECT -> KEY: the member, or NULL when absent or not an object. */
static JsonbValue *
Member(JsonbContainer *object, const char *key)
{
	if (object == NULL || !JsonContainerIsObject(object))
		return NULL;
	return getKeyJsonValueFromContainer(object, key, strlen(key), NULL);
}

/* The container of a nested array or object value, or NULL. */
static JsonbContainer *
ContainerOf(JsonbValue *v)
{
	return v != NULL && v->type == jbvBinary ? v->val.binary.data : NULL;
}


/* coalesce((OBJECT ->> KEY)::boolean, false) */
static bool
MemberFlag(JsonbContainer *object, const char *key)
{
	char	   *text = BenefitsJsonbValueText(Member(object, key));

	return text != NULL && DatumGetBool(DirectFunctionCall1(boolin, CStringGetDatum(text)));
}

/*
 * The document under construction and the pieces it is built from, each a
 * pushJsonbValue call.
 */
typedef JsonbParseState *Doc;

static void
Push(Doc *doc, JsonbIteratorToken token, JsonbValue *v)
{
	pushJsonbValue(doc, token, v);
}

static void
BeginObject(Doc *doc)
{
	Push(doc, WJB_BEGIN_OBJECT, NULL);
}

static void
EndObject(Doc *doc)
{
	Push(doc, WJB_END_OBJECT, NULL);
}

static void
BeginArray(Doc *doc)
{
	Push(doc, WJB_BEGIN_ARRAY, NULL);
}

static void
EndArray(Doc *doc)
{
	Push(doc, WJB_END_ARRAY, NULL);
}

static void
Key(Doc *doc, const char *key)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) key;
	v.val.string.len = strlen(key);
	Push(doc, WJB_KEY, &v);
}

static void
Null(Doc *doc)
{
	JsonbValue	v;

	v.type = jbvNull;
	Push(doc, WJB_VALUE, &v);
}

/* A string value (NULL: null). */
static void
Str(Doc *doc, const char *value)
{
	JsonbValue	v;

	if (value == NULL)
	{
		Null(doc);
		return;
	}
	v.type = jbvString;
	v.val.string.val = (char *) value;
	v.val.string.len = strlen(value);
	Push(doc, WJB_VALUE, &v);
}

static void
Bool(Doc *doc, bool value)
{
	JsonbValue	v;

	v.type = jbvBool;
	v.val.boolean = value;
	Push(doc, WJB_VALUE, &v);
}

/* A JSON value taken from a jsonb (NULL: null; nested containers are copied in). */
static void
Json(Doc *doc, JsonbValue *v)
{
	if (v == NULL)
		Null(doc);
	else
		Push(doc, WJB_VALUE, v);
}

/* An empty array. */
static void
EmptyArray(Doc *doc)
{
	BeginArray(doc);
	EndArray(doc);
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
static char *
TimeText(TimestampTz ts)
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
static void
TextCol(Doc *doc, const Rows *r, int row, int col)
{
	Str(doc, TextOf(r, row, col));
}

static void
UuidCol(Doc *doc, const Rows *r, int row, int col)
{
	Str(doc, UuidOf(r, row, col));
}

static void
TimeCol(Doc *doc, const Rows *r, int row, int col)
{
	Str(doc, IsNull(r, row, col) ? NULL : TimeText(DatumGetTimestampTz(Get(r, row, col))));
}

static void
IntCol(Doc *doc, const Rows *r, int row, int col)
{
	JsonbValue	v;
	Datum		d = Get(r, row, col);

	if (IsNull(r, row, col))
	{
		Null(doc);
		return;
	}
	v.type = jbvNumeric;
	if (TupleDescAttr(r->desc, col - 1)->atttypid == INT8OID)
		v.val.numeric = int64_to_numeric(DatumGetInt64(d));
	else
		v.val.numeric = int64_to_numeric(DatumGetInt32(d));
	Push(doc, WJB_VALUE, &v);
}

static void
JsonCol(Doc *doc, const Rows *r, int row, int col)
{
	Jsonb	   *jb;
	JsonbValue	v;

	if (IsNull(r, row, col))
	{
		Null(doc);
		return;
	}
	jb = DatumGetJsonbP(Get(r, row, col));
	if (JB_ROOT_IS_SCALAR(jb))
		JsonbExtractScalar(&jb->root, &v);
	else
	{
		v.type = jbvBinary;
		v.val.binary.data = &jb->root;
		v.val.binary.len = VARSIZE(jb) - VARHDRSZ;
	}
	Push(doc, WJB_VALUE, &v);
}

/* A uuid from its text, as a cast to uuid reads it. */
static pg_uuid_t *
UuidFromText(const char *text)
{
	return DatumGetUUIDP(DirectFunctionCall1(uuid_in, CStringGetDatum(text)));
}

/* One shown benefit: the held row whose grant is shown, and what its type needs. */
typedef struct Shown
{
	int			first;			/* held row of its first place */
	int			chosen;			/* held row whose grant is shown */
	const char *type;
	JsonbContainer *properties;
	int			nfiles;			/* downloadable: the files named, in order */
	char	  **file_keys;		/* as written (the keys of "archived") */
	pg_uuid_t  *file_ids;
} Shown;

/* The files a downloadable benefit names, in order; null entries are skipped. */
static void
NamedFiles(Shown *s)
{
	JsonbContainer *files = ContainerOf(Member(s->properties, "files"));
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			n;

	s->nfiles = 0;
	if (files == NULL || !JsonContainerIsArray(files))
		return;
	n = JsonContainerSize(files);
	s->file_keys = palloc(sizeof(char *) * (n + 1));
	s->file_ids = palloc(sizeof(pg_uuid_t) * (n + 1));
	it = JsonbIteratorInit(files);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *text;

		if (tok != WJB_ELEM || (text = BenefitsJsonbValueText(&v)) == NULL)
			continue;
		s->file_keys[s->nfiles] = text;
		s->file_ids[s->nfiles++] = *UuidFromText(text);
	}
}

/* The license key of a benefit with its activations (ordered), or null. */
static void
LicenseKey(Doc *doc, const Rows *held, int h, bool customer_admin,
		   const Rows *keys, const Rows *acts, const int *act_order)
{
	for (int k = 0; k < keys->n; k++)
	{
		if (!SameUuid(keys, k, K_BENEFIT_ID, held, h, H_BENEFIT_ID))
			continue;
		BeginObject(doc);
		Key(doc, "id");
		UuidCol(doc, keys, k, K_ID);
		Key(doc, "key");
		TextCol(doc, keys, k, K_KEY);
		Key(doc, "usage");
		IntCol(doc, keys, k, K_USAGE);
		Key(doc, "status");
		TextCol(doc, keys, k, K_STATUS);
		Key(doc, "expires_at");
		TimeCol(doc, keys, k, K_EXPIRES_AT);
		Key(doc, "activations");
		BeginArray(doc);
		for (int i = 0; i < acts->n; i++)
		{
			int			a = act_order[i];

			if (!SameUuid(acts, a, A_LICENSE_KEY_ID, keys, k, K_ID))
				continue;
			BeginObject(doc);
			Key(doc, "id");
			UuidCol(doc, acts, a, A_ID);
			Key(doc, "meta");
			JsonCol(doc, acts, a, A_META);
			Key(doc, "label");
			TextCol(doc, acts, a, A_LABEL);
			Key(doc, "created_at");
			TimeCol(doc, acts, a, A_CREATED_AT);
			EndObject(doc);
		}
		EndArray(doc);
		Key(doc, "display_key");
		TextCol(doc, keys, k, K_DISPLAY_KEY);
		Key(doc, "limit_usage");
		IntCol(doc, keys, k, K_LIMIT_USAGE);
		Key(doc, "validations");
		IntCol(doc, keys, k, K_VALIDATIONS);
		Key(doc, "customer_admin");
		Bool(doc, customer_admin);
		Key(doc, "last_validated_at");
		TimeCol(doc, keys, k, K_LAST_VALIDATED_AT);
		Key(doc, "limit_activations");
		IntCol(doc, keys, k, K_LIMIT_ACTIVATIONS);
		EndObject(doc);
		return;
	}
	Null(doc);
}

/* Activations in the order shown: by key, then created_at, then id. */
static int
ActivationCmp(const void *a, const void *b, void *arg)
{
	const Rows *r = arg;
	int			x = *(const int *) a;
	int			y = *(const int *) b;
	int			c = memcmp(DatumGetUUIDP(Get(r, x, A_LICENSE_KEY_ID)),
						   DatumGetUUIDP(Get(r, y, A_LICENSE_KEY_ID)), UUID_LEN);
	TimestampTz tx = DatumGetTimestampTz(Get(r, x, A_CREATED_AT));
	TimestampTz ty = DatumGetTimestampTz(Get(r, y, A_CREATED_AT));

	if (c != 0)
		return c;
	if (tx != ty)
		return tx < ty ? -1 : 1;
	return memcmp(DatumGetUUIDP(Get(r, x, A_ID)), DatumGetUUIDP(Get(r, y, A_ID)), UUID_LEN);
}

/* A linked account as {username, account_id}, or null. */
static void
Account(Doc *doc, const Rows *accounts, const char *platform)
{
	for (int i = 0; i < accounts->n; i++)
	{
		char	   *p = TextOf(accounts, i, 1);

		if (p && strcmp(p, platform) == 0)
		{
			BeginObject(doc);
			Key(doc, "username");
			TextCol(doc, accounts, i, 3);
			Key(doc, "account_id");
			TextCol(doc, accounts, i, 2);
			EndObject(doc);
			return;
		}
	}
	Null(doc);
}

/* A held row with its attachment sort key. */
typedef struct HeldOrder
{
	int			row;
	bool		has_source;
	TimestampTz source_at;
	bool		has_position;
	int32		position;
	TimestampTz granted_at;		/* DT_NOEND when null */
	pg_uuid_t	benefit_id;
} HeldOrder;

/* Attachment order: sourced before manual, then by source time and position. */
static int
HeldOrderCmp(const void *a, const void *b)
{
	const HeldOrder *x = a;
	const HeldOrder *y = b;

	if (x->has_source != y->has_source)
		return x->has_source ? -1 : 1;
	if (x->has_source && x->source_at != y->source_at)
		return x->source_at < y->source_at ? -1 : 1;
	if (x->has_position != y->has_position)
		return x->has_position ? -1 : 1;
	if (x->has_position && x->position != y->position)
		return x->position < y->position ? -1 : 1;
	if (x->granted_at != y->granted_at)
		return x->granted_at < y->granted_at ? -1 : 1;
	return memcmp(x->benefit_id.data, y->benefit_id.data, UUID_LEN);
}

/* The held rows in attachment order. */
static HeldOrder *
OrderHeld(const Rows *held, const Rows *attached)
{
	HeldOrder  *order = palloc0(sizeof(HeldOrder) * (held->n + 1));

	for (int i = 0; i < held->n; i++)
	{
		HeldOrder  *o = &order[i];

		o->row = i;
		o->granted_at = IsNull(held, i, H_GRANTED_AT) ? DT_NOEND
			: DatumGetTimestampTz(Get(held, i, H_GRANTED_AT));
		memcpy(o->benefit_id.data, DatumGetUUIDP(Get(held, i, H_BENEFIT_ID))->data, UUID_LEN);
		for (int a = 0; a < attached->n; a++)
		{
			if (!SameUuid(attached, a, 1, held, i, H_SOURCE_ID))
				continue;
			o->has_source = true;
			o->source_at = DatumGetTimestampTz(Get(attached, a, 2));
			if (SameUuid(attached, a, 3, held, i, H_BENEFIT_ID))
			{
				o->has_position = true;
				o->position = DatumGetInt32(Get(attached, a, 4));
				break;
			}
		}
	}
	qsort(order, held->n, sizeof(HeldOrder), HeldOrderCmp);
	return order;
}

/* The files of a downloadable benefit, each with a fresh download URL. */
static void
Files(Doc *doc, const Shown *s, const Rows *files, TimestampTz now)
{
	JsonbContainer *archived = ContainerOf(Member(s->properties, "archived"));
	int			ttl = S3DownloadUrlTtl();
	bool		configured = S3Configured();
	S3Config	config;
	char	   *expires_at = NULL;

	if (configured)
	{
		S3ConfigFromSettings(&config);
		expires_at = TimeText(now + (int64) ttl * USECS_PER_SEC);
	}
	BeginArray(doc);
	for (int i = 0; i < s->nfiles; i++)
	{
		int			f;
		char	   *name;
		char	   *mime;
		S3QueryParam params[2];

		if (MemberFlag(archived, s->file_keys[i]))
			continue;
		for (f = 0; f < files->n; f++)
			if (memcmp(DatumGetUUIDP(Get(files, f, F_ID)), &s->file_ids[i], UUID_LEN) == 0)
				break;
		if (f == files->n)
			continue;			/* disabled, archived, not uploaded or elsewhere */

		name = TextOf(files, f, F_NAME);
		mime = TextOf(files, f, F_MIME_TYPE);
		params[0].name = "response-content-disposition";
		params[0].value = S3ContentDisposition("attachment", name);
		params[1].name = "response-content-type";
		params[1].value = mime;

		BeginObject(doc);
		Key(doc, "id");
		UuidCol(doc, files, f, F_ID);
		Key(doc, "name");
		Str(doc, name);
		Key(doc, "size");
		IntCol(doc, files, f, F_SIZE);
		Key(doc, "mime_type");
		Str(doc, mime);

		/*
		 * Without storage settings the rest of the portal still serves the
		 * customer; the file says why it has no link.
		 */
		Key(doc, "download_url");
		Str(doc, configured ? S3PresignUrl(&config, "GET", TextOf(files, f, F_STORAGE_KEY),
											ttl, now, params, 2) : NULL);
		Key(doc, "download_error");
		Str(doc, configured ? NULL : "file storage is not configured");
		Key(doc, "checksum_sha256");
		TextCol(doc, files, f, F_CHECKSUM);
		Key(doc, "download_expires_at");
		Str(doc, expires_at);
		EndObject(doc);
	}
	EndArray(doc);
}

/* A meter_credits benefit's meter with the customer's balance, or null. */
static void
Meter(Doc *doc, const Shown *s, Datum customer)
{
	char	   *meter_id = BenefitsJsonbValueText(Member(s->properties, "meter_id"));
	Datum		args[2];
	Rows		m;

	if (meter_id == NULL)
	{
		Null(doc);
		return;
	}
	args[0] = UUIDPGetDatum(UuidFromText(meter_id));
	args[1] = customer;
	m = Fetch(meter_plan, args);
	if (m.n != 1)
	{
		Null(doc);
		return;
	}
	BeginObject(doc);
	Key(doc, "id");
	UuidCol(doc, &m, 0, 1);
	Key(doc, "name");
	TextCol(doc, &m, 0, 2);
	Key(doc, "units");
	Json(doc, Member(s->properties, "units"));
	Key(doc, "balance");
	IntCol(doc, &m, 0, 3);
	Key(doc, "rollover");
	Bool(doc, MemberFlag(s->properties, "rollover"));
	EndObject(doc);
}

/* A GitHub or Discord benefit: what it gives, the linked account, delivery. */
static void
Provider(Doc *doc, const Shown *s, const Rows *held, const Rows *accounts)
{
	bool		github = strcmp(s->type, "github_repository") == 0;
	JsonbContainer *error = JsonbOf(held, s->chosen, H_ERROR);
	char	   *action = BenefitsJsonbValueText(Member(error, "action"));
	const char *delivery;
	JsonbValue *v;

	if (strcmp(TextOf(held, s->chosen, H_STATE), "active") == 0)
		delivery = "granted";
	else if (action != NULL)
		delivery = "action_required";
	else if (error != NULL)
		delivery = "failed";
	else
		delivery = "pending";

	Key(doc, github ? "github" : "discord");
	BeginObject(doc);
	if (!github)
	{
		Key(doc, "roles");
		if ((v = Member(s->properties, "roles")) != NULL)
			Json(doc, v);
		else
			EmptyArray(doc);
	}
	Key(doc, "action");
	Str(doc, action);
	Key(doc, "account");
	Account(doc, accounts, github ? "github" : "discord");
	Key(doc, "message");
	Str(doc, BenefitsJsonbValueText(Member(error, "message")));
	Key(doc, "delivery");
	Str(doc, delivery);
	if (github)
	{
		Key(doc, "repositories");
		if ((v = Member(s->properties, "repositories")) != NULL)
			Json(doc, v);
		else
			EmptyArray(doc);
	}
	else
	{
		Key(doc, "guild_id");
		Json(doc, Member(s->properties, "guild_id"));
	}
	EndObject(doc);
}

/* The customer and organization members of the document. */
static void
Customer(Doc *doc, const Rows *customer)
{
	BeginObject(doc);
	Key(doc, "id");
	UuidCol(doc, customer, 0, C_ID);
	Key(doc, "name");
	TextCol(doc, customer, 0, C_NAME);
	Key(doc, "email");
	TextCol(doc, customer, 0, C_EMAIL);
	Key(doc, "external_id");
	TextCol(doc, customer, 0, C_EXTERNAL_ID);
	EndObject(doc);
}

static void
Organization(Doc *doc, const Rows *customer)
{
	BeginObject(doc);
	Key(doc, "id");
	UuidCol(doc, customer, 0, C_ORGANIZATION_ID);
	Key(doc, "name");
	TextCol(doc, customer, 0, C_ORGANIZATION_NAME);
	EndObject(doc);
}

/* Subscriptions in the order shown: by created_at, then id. */
static int
SubscriptionCmp(const void *a, const void *b, void *arg)
{
	const Rows *r = arg;
	int			x = *(const int *) a;
	int			y = *(const int *) b;
	TimestampTz tx = DatumGetTimestampTz(Get(r, x, S_CREATED_AT));
	TimestampTz ty = DatumGetTimestampTz(Get(r, y, S_CREATED_AT));

	if (tx != ty)
		return tx < ty ? -1 : 1;
	return memcmp(DatumGetUUIDP(Get(r, x, S_ID)), DatumGetUUIDP(Get(r, y, S_ID)), UUID_LEN);
}

/* The customer's live subscriptions (ordered here: a sort node costs more per call). */
static void
Subscriptions(Doc *doc, Datum customer_id)
{
	Rows		subscriptions = Fetch(subscriptions_plan, &customer_id);
	int		   *order = palloc(sizeof(int) * (subscriptions.n + 1));

	for (int i = 0; i < subscriptions.n; i++)
		order[i] = i;
	qsort_arg(order, subscriptions.n, sizeof(int), SubscriptionCmp, &subscriptions);
	BeginArray(doc);
	for (int k = 0; k < subscriptions.n; k++)
	{
		int			i = order[k];

		BeginObject(doc);
		Key(doc, "id");
		UuidCol(doc, &subscriptions, i, S_ID);
		Key(doc, "status");
		TextCol(doc, &subscriptions, i, S_STATUS);
		Key(doc, "product");
		BeginObject(doc);
		Key(doc, "id");
		UuidCol(doc, &subscriptions, i, S_PRODUCT_ID);
		Key(doc, "name");
		TextCol(doc, &subscriptions, i, S_PRODUCT_NAME);
		EndObject(doc);
		Key(doc, "current_period_end");
		TimeCol(doc, &subscriptions, i, S_CURRENT_PERIOD_END);
		Key(doc, "cancel_at_period_end");
		Bool(doc, IsTrue(&subscriptions, i, S_CANCEL_AT_PERIOD_END));
		Key(doc, "current_period_start");
		TimeCol(doc, &subscriptions, i, S_CURRENT_PERIOD_START);
		EndObject(doc);
	}
	EndArray(doc);
}

/*
 * The benefits the customer holds, each once (first place, an active grant
 * preferred), with what each type needs.
 */
static void
Benefits(Doc *doc, const Rows *customer, TimestampTz now)
{
	Datum		customer_id = Get(customer, 0, C_ID);
	Rows		held = Fetch(held_plan, &customer_id);
	Rows		attached = Fetch(attached_plan, &customer_id);
	Rows		keys = {0};
	Rows		acts = {0};
	Rows		files = {0};
	Rows		accounts = {0};
	int		   *act_order = NULL;
	HeldOrder  *order = OrderHeld(&held, &attached);
	Shown	   *shown = palloc0(sizeof(Shown) * (held.n + 1));
	int			nshown = 0;
	int			nfile_ids = 0;
	bool		need_keys = false;
	bool		need_accounts = false;

	for (int k = 0; k < held.n; k++)
	{
		int			i = order[k].row;
		int			j;

		for (j = 0; j < nshown; j++)
			if (SameUuid(&held, i, H_BENEFIT_ID, &held, shown[j].first, H_BENEFIT_ID))
				break;
		if (j < nshown)
		{
			if (strcmp(TextOf(&held, i, H_STATE), "active") == 0 &&
				strcmp(TextOf(&held, shown[j].chosen, H_STATE), "active") != 0)
				shown[j].chosen = i;
			continue;
		}
		shown[nshown].first = shown[nshown].chosen = i;
		shown[nshown].type = TextOf(&held, i, H_TYPE);
		shown[nshown].properties = JsonbOf(&held, i, H_PROPERTIES);
		if (strcmp(shown[nshown].type, "license_keys") == 0)
			need_keys = true;
		else if (strcmp(shown[nshown].type, "downloadable") == 0)
		{
			NamedFiles(&shown[nshown]);
			nfile_ids += shown[nshown].nfiles;
		}
		else if (strcmp(shown[nshown].type, "github_repository") == 0 ||
				 strcmp(shown[nshown].type, "discord") == 0)
			need_accounts = true;
		nshown++;
	}

	/* What the shown benefits need, each fetched once. */
	if (need_keys)
	{
		keys = Fetch(keys_plan, &customer_id);
		if (keys.n > 0)
		{
			pg_uuid_t  *ids = palloc(sizeof(pg_uuid_t) * keys.n);
			Datum		arg;

			for (int k = 0; k < keys.n; k++)
				ids[k] = *DatumGetUUIDP(Get(&keys, k, K_ID));
			arg = BenefitsUuidArray(ids, keys.n);
			acts = Fetch(activations_plan, &arg);
			act_order = palloc(sizeof(int) * (acts.n + 1));
			for (int a = 0; a < acts.n; a++)
				act_order[a] = a;
			qsort_arg(act_order, acts.n, sizeof(int), ActivationCmp, &acts);
		}
	}
	if (nfile_ids > 0)
	{
		pg_uuid_t  *ids = palloc(sizeof(pg_uuid_t) * nfile_ids);
		int			n = 0;
		Datum		args[2];

		for (int j = 0; j < nshown; j++)
			for (int f = 0; f < shown[j].nfiles; f++)
				ids[n++] = shown[j].file_ids[f];
		args[0] = BenefitsUuidArray(ids, n);
		args[1] = Get(customer, 0, C_ORGANIZATION_ID);
		files = Fetch(files_plan, args);
	}
	if (need_accounts)
		accounts = Fetch(accounts_plan, &customer_id);

	BeginArray(doc);
	for (int j = 0; j < nshown; j++)
	{
		Shown	   *s = &shown[j];
		int			r = s->chosen;
		bool		provider = strcmp(s->type, "github_repository") == 0 ||
			strcmp(s->type, "discord") == 0;

		BeginObject(doc);
		Key(doc, "id");
		UuidCol(doc, &held, r, H_BENEFIT_ID);
		if (strcmp(s->type, "custom") == 0)
		{
			Key(doc, "note");
			Json(doc, Member(s->properties, "note"));
		}
		Key(doc, "type");
		Str(doc, s->type);
		if (strcmp(s->type, "downloadable") == 0)
		{
			Key(doc, "files");
			Files(doc, s, &files, now);
		}
		else if (strcmp(s->type, "meter_credits") == 0)
		{
			Key(doc, "meter");
			Meter(doc, s, customer_id);
		}
		Key(doc, "state");
		TextCol(doc, &held, r, H_STATE);
		if (provider)
			Provider(doc, s, &held, &accounts);
		Key(doc, "grant_id");
		UuidCol(doc, &held, r, H_GRANT_ID);
		Key(doc, "granted_at");
		TimeCol(doc, &held, r, H_GRANTED_AT);
		Key(doc, "description");
		TextCol(doc, &held, r, H_DESCRIPTION);
		if (strcmp(s->type, "license_keys") == 0)
		{
			JsonbContainer *activations = ContainerOf(Member(s->properties, "activations"));

			Key(doc, "license_key");
			LicenseKey(doc, &held, r, MemberFlag(activations, "enable_customer_admin"),
					   &keys, &acts, act_order);
		}
		EndObject(doc);
	}
	EndArray(doc);
}

/*
 * The document of the customer in row 0 of CUSTOMER (CUSTOMER_COLUMNS).
 * Runs inside the caller's SPI connection.
 */
static Jsonb *
BuildDocument(const Rows *customer)
{
	Doc			doc = NULL;
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	PreparePlans();
	BeginObject(&doc);
	Key(&doc, "benefits");
	Benefits(&doc, customer, now);
	Key(&doc, "customer");
	Customer(&doc, customer);
	Key(&doc, "generated_at");
	Str(&doc, TimeText(now));
	Key(&doc, "organization");
	Organization(&doc, customer);
	Key(&doc, "subscriptions");
	Subscriptions(&doc, Get(customer, 0, C_ID));
	return JsonbValueToJsonb(pushJsonbValue(&doc, WJB_END_OBJECT, NULL));
}

/*
 * The portal document of one customer, or NULL when there is no such
 * customer.  Runs inside the caller's SPI connection; the result is
 * allocated in the caller's (SPI) context.
 */
Jsonb *
PortalDocument(Datum customer_id)
{
	Rows		customer;

	PreparePlans();
	customer = Fetch(customer_plan, &customer_id);
	if (customer.n != 1)
		return NULL;
	return BuildDocument(&customer);
}

/*
 * The portal document of a session token's customer, found in the same
 * statement that checks the session; the one session error (28000) for a
 * bad, expired or revoked token.  Runs inside the caller's SPI connection.
 */
Jsonb *
PortalDocumentForSession(text *token)
{
	Datum		hash = PointerGetDatum(CustomerSessionTokenHash(token));
	Rows		customer;

	PreparePlans();
	customer = Fetch(session_plan, &hash);
	if (customer.n != 1)
		CustomerSessionInvalid();
	return BuildDocument(&customer);
}

PG_FUNCTION_INFO_V1(portal_document);

/*
 * portal_document(customer_id): the portal document of a customer (NULL for
 * an unknown customer).  For administrators; customers reach it through
 * customer_portal with a session token.
 */
Datum
portal_document(PG_FUNCTION_ARGS)
{
	Jsonb	   *doc;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	SPI_connect();
	doc = PortalDocument(PG_GETARG_DATUM(0));
	if (doc != NULL)
	{
		Jsonb	   *copy = SPI_palloc(VARSIZE(doc));

		memcpy(copy, doc, VARSIZE(doc));
		doc = copy;
	}
	SPI_finish();
	if (doc == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(doc);
}

PG_FUNCTION_INFO_V1(customer_portal);

/*
 * customer_portal(token): everything the session's customer holds.  A bad,
 * expired or revoked token gets the one session error (SQLSTATE 28000).
 */
Datum
customer_portal(PG_FUNCTION_ARGS)
{
	Jsonb	   *doc;
	Jsonb	   *copy;

	if (PG_ARGISNULL(0))
		CustomerSessionInvalid();
	SPI_connect();
	doc = PortalDocumentForSession(PG_GETARG_TEXT_PP(0));
	copy = SPI_palloc(VARSIZE(doc));
	memcpy(copy, doc, VARSIZE(doc));
	SPI_finish();
	PG_RETURN_JSONB_P(copy);
}
