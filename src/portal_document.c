/*
 * portal_document.c — the customer portal document (customer_portal's jsonb).
 *
 * Built in C from a handful of kept SPI plans, all index lookups on the
 * customer: the customer and organization, live subscriptions, the held
 * benefits in attachment order, the customer's license keys with their
 * activations, and, only when needed, linked accounts, the files of the
 * downloadable benefits (each with a download URL signed here) and meter
 * balances.  The jsonb is assembled directly with pushJsonbValue.  (The same
 * document as one SQL query of nested jsonb_build_object subqueries cost
 * several times more per call.)
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

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
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
static SPIPlanPtr subscriptions_plan = NULL;
static SPIPlanPtr held_plan = NULL;
static SPIPlanPtr attached_plan = NULL;
static SPIPlanPtr keys_plan = NULL;
static SPIPlanPtr accounts_plan = NULL;
static SPIPlanPtr files_plan = NULL;
static SPIPlanPtr meter_plan = NULL;

/*
 * The customer's live grants with their benefits.  PortalDocument orders them
 * by attachment (ATTACHED_SQL): the order of the subscriptions/orders that
 * granted them, then each product's benefit order, manual grants last; a
 * benefit held several times appears once, in its first place, showing an
 * active grant when there is one.  (Two plain queries and a sort in C cost
 * less than one query doing it all.)
 */
#define HELD_SQL \
	"SELECT g.id, g.benefit_id, b.type, b.description, g.state, g.granted_at," \
	"       g.error ->> 'action', g.error ->> 'message', g.error IS NOT NULL," \
	"       b.properties -> 'note'," \
	"       coalesce((b.properties #>> '{activations,enable_customer_admin}')::boolean, false)," \
	"       CASE WHEN b.type = 'meter_credits' THEN (b.properties ->> 'meter_id')::uuid END," \
	"       b.properties -> 'units'," \
	"       coalesce((b.properties ->> 'rollover')::boolean, false)," \
	"       coalesce(b.properties -> 'repositories', '[]')," \
	"       b.properties -> 'guild_id'," \
	"       coalesce(b.properties -> 'roles', '[]')," \
	"       coalesce(g.subscription_id, g.order_id)" \
	"  FROM benefits.grants g" \
	"  JOIN benefits.benefits b ON b.id = g.benefit_id AND b.deleted_at IS NULL" \
	" WHERE g.customer_id = $1 AND g.state <> 'revoked'"

/* Every subscription and order of the customer with the benefits of its product. */
#define ATTACHED_SQL \
	"SELECT x.id, x.created_at, pb.benefit_id, pb.position" \
	"  FROM (SELECT s.id, s.created_at, s.product_id FROM benefits.subscriptions s WHERE s.customer_id = $1" \
	"        UNION ALL" \
	"        SELECT o.id, o.created_at, o.product_id FROM benefits.orders o WHERE o.customer_id = $1) x" \
	"  JOIN benefits.product_benefits pb ON pb.product_id = x.product_id"

enum
{
	H_GRANT_ID = 1, H_BENEFIT_ID, H_TYPE, H_DESCRIPTION, H_STATE, H_GRANTED_AT,
	H_ERROR_ACTION, H_ERROR_MESSAGE, H_HAS_ERROR, H_NOTE, H_CUSTOMER_ADMIN,
	H_METER_ID, H_UNITS, H_ROLLOVER, H_REPOSITORIES, H_GUILD_ID, H_ROLES, H_SOURCE_ID
};

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

static void
Int(Doc *doc, int64 value)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(value);
	Push(doc, WJB_VALUE, &v);
}

/* A jsonb datum as the value (its contents are copied in). */
static void
Json(Doc *doc, Datum value, bool isnull)
{
	Jsonb	   *jb;
	JsonbValue	v;

	if (isnull)
	{
		Null(doc);
		return;
	}
	jb = DatumGetJsonbP(value);
	if (JB_ROOT_IS_SCALAR(jb))
	{
		JsonbExtractScalar(&jb->root, &v);
		Push(doc, WJB_VALUE, &v);
		return;
	}
	v.type = jbvBinary;
	v.val.binary.data = &jb->root;
	v.val.binary.len = VARSIZE(jb) - VARHDRSZ;
	Push(doc, WJB_VALUE, &v);
}

/* RFC 3339 in UTC with a Z, seconds precision (NULL: null). */
static char *
TimeText(TimestampTz ts)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (TIMESTAMP_NOT_FINITE(ts) || timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
		return NULL;
	return psprintf("%04d-%02d-%02dT%02d:%02d:%02dZ",
					tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void
Time(Doc *doc, Datum value, bool isnull)
{
	Str(doc, isnull ? NULL : TimeText(DatumGetTimestampTz(value)));
}

/* Accessors of a result row. */
typedef struct Row
{
	HeapTuple	tuple;
	TupleDesc	desc;
} Row;

static char *
Text(Row r, int col)
{
	return SPI_getvalue(r.tuple, r.desc, col);
}

static Datum
Val(Row r, int col, bool *isnull)
{
	return SPI_getbinval(r.tuple, r.desc, col, isnull);
}

static bool
IsTrue(Row r, int col)
{
	bool		isnull;
	Datum		d = Val(r, col, &isnull);

	return !isnull && DatumGetBool(d);
}

static void
TimeCol(Doc *doc, Row r, int col)
{
	bool		isnull;
	Datum		d = Val(r, col, &isnull);

	Time(doc, d, isnull);
}

static void
IntCol(Doc *doc, Row r, int col)
{
	bool		isnull;
	Datum		d = Val(r, col, &isnull);

	if (isnull)
		Null(doc);
	else if (TupleDescAttr(r.desc, col - 1)->atttypid == INT8OID)
		Int(doc, DatumGetInt64(d));
	else
		Int(doc, DatumGetInt32(d));
}

static void
JsonCol(Doc *doc, Row r, int col)
{
	bool		isnull;
	Datum		d = Val(r, col, &isnull);

	Json(doc, d, isnull);
}

static bool
SameUuid(Row a, int acol, Row b, int bcol)
{
	bool		anull,
				bnull;
	Datum		x = Val(a, acol, &anull);
	Datum		y = Val(b, bcol, &bnull);

	return !anull && !bnull && memcmp(DatumGetUUIDP(x), DatumGetUUIDP(y), UUID_LEN) == 0;
}

/* Runs a kept read-only plan. */
static SPITupleTable *
Run(SPIPlanPtr plan, Datum *values)
{
	if (SPI_execute_plan(plan, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "portal document query failed");
	return SPI_tuptable;
}

static void
PreparePlans(void)
{
	Oid			one_uuid[1] = {UUIDOID};
	Oid			two_uuids[2] = {UUIDOID, UUIDOID};
	Oid			uuid_array[1] = {UUIDARRAYOID};

	if (meter_plan != NULL)
		return;
	BenefitsPlan(&customer_plan,
				 "SELECT c.id, c.external_id, c.email, c.name, o.id, o.name"
				 "  FROM benefits.customers c JOIN benefits.organizations o ON o.id = c.organization_id"
				 " WHERE c.id = $1", 1, one_uuid);
	BenefitsPlan(&subscriptions_plan,
				 "SELECT s.id, p.id, p.name, s.status, s.current_period_start, s.current_period_end,"
				 "       s.cancel_at_period_end"
				 "  FROM benefits.subscriptions s JOIN benefits.products p ON p.id = s.product_id"
				 " WHERE s.customer_id = $1 AND s.status IN ('trialing', 'active', 'past_due', 'unpaid')"
				 " ORDER BY s.created_at, s.id", 1, one_uuid);
	BenefitsPlan(&held_plan, HELD_SQL, 1, one_uuid);
	BenefitsPlan(&attached_plan, ATTACHED_SQL, 1, one_uuid);
	BenefitsPlan(&keys_plan,
				 "SELECT lk.benefit_id, lk.id, lk.key, lk.display_key, lk.status, lk.usage, lk.limit_usage,"
				 "       lk.limit_activations, lk.validations, lk.last_validated_at, lk.expires_at,"
				 "       a.id, a.label, a.meta, a.created_at"
				 "  FROM benefits.license_keys lk"
				 "  LEFT JOIN benefits.license_key_activations a ON a.license_key_id = lk.id"
				 " WHERE lk.customer_id = $1"
				 " ORDER BY lk.id, a.created_at, a.id", 1, one_uuid);
	BenefitsPlan(&accounts_plan,
				 "SELECT platform, account_id, username FROM benefits.customer_accounts WHERE customer_id = $1",
				 1, one_uuid);
	BenefitsPlan(&files_plan,
				 "SELECT b.id, f.id, f.name, f.size, f.mime_type, f.checksum_sha256, f.storage_key"
				 "  FROM benefits.benefits b"
				 "  CROSS JOIN LATERAL pg_catalog.jsonb_array_elements_text(b.properties -> 'files')"
				 "       WITH ORDINALITY AS e(file_id, n)"
				 "  JOIN benefits.files f ON f.id = e.file_id::uuid AND f.organization_id = b.organization_id"
				 " WHERE b.id = ANY ($1) AND f.enabled AND NOT f.archived AND f.uploaded_at IS NOT NULL"
				 "   AND NOT coalesce((b.properties -> 'archived' ->> e.file_id)::boolean, false)"
				 " ORDER BY b.id, e.n", 1, uuid_array);
	BenefitsPlan(&meter_plan,
				 "SELECT m.id, m.name, benefits.meter_balance($2, m.id) FROM benefits.meters m WHERE m.id = $1",
				 2, two_uuids);
}

/* The license key of a benefit with its activations, or null. */
static void
LicenseKey(Doc *doc, Row held, SPITupleTable *keys)
{
	uint64		k = 0;

	while (keys && k < keys->numvals)
	{
		Row			r = {keys->vals[k], keys->tupdesc};

		if (!SameUuid(r, 1, held, H_BENEFIT_ID))
		{
			k++;
			continue;
		}
		BeginObject(doc);
		Key(doc, "id");
		Str(doc, Text(r, 2));
		Key(doc, "key");
		Str(doc, Text(r, 3));
		Key(doc, "display_key");
		Str(doc, Text(r, 4));
		Key(doc, "status");
		Str(doc, Text(r, 5));
		Key(doc, "usage");
		IntCol(doc, r, 6);
		Key(doc, "limit_usage");
		IntCol(doc, r, 7);
		Key(doc, "limit_activations");
		IntCol(doc, r, 8);
		Key(doc, "validations");
		IntCol(doc, r, 9);
		Key(doc, "last_validated_at");
		TimeCol(doc, r, 10);
		Key(doc, "expires_at");
		TimeCol(doc, r, 11);
		Key(doc, "customer_admin");
		Bool(doc, IsTrue(held, H_CUSTOMER_ADMIN));
		Key(doc, "activations");
		BeginArray(doc);
		/* The key's rows follow each other (ordered by key id). */
		for (uint64 a = k; a < keys->numvals; a++)
		{
			Row			ar = {keys->vals[a], keys->tupdesc};
			bool		isnull;

			if (!SameUuid(ar, 2, r, 2))
				break;
			(void) Val(ar, 12, &isnull);
			if (isnull)
				continue;
			BeginObject(doc);
			Key(doc, "id");
			Str(doc, Text(ar, 12));
			Key(doc, "label");
			Str(doc, Text(ar, 13));
			Key(doc, "meta");
			JsonCol(doc, ar, 14);
			Key(doc, "created_at");
			TimeCol(doc, ar, 15);
			EndObject(doc);
		}
		EndArray(doc);
		EndObject(doc);
		return;
	}
	Null(doc);
}

/* A linked account as {account_id, username}, or null. */
static void
Account(Doc *doc, SPITupleTable *accounts, const char *platform)
{
	for (uint64 i = 0; accounts && i < accounts->numvals; i++)
	{
		Row			r = {accounts->vals[i], accounts->tupdesc};
		char	   *p = Text(r, 1);

		if (p && strcmp(p, platform) == 0)
		{
			BeginObject(doc);
			Key(doc, "account_id");
			Str(doc, Text(r, 2));
			Key(doc, "username");
			Str(doc, Text(r, 3));
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
OrderHeld(SPITupleTable *held, SPITupleTable *attached)
{
	uint64		n = held->numvals;
	HeldOrder  *order = palloc0(sizeof(HeldOrder) * (n + 1));

	for (uint64 i = 0; i < n; i++)
	{
		Row			r = {held->vals[i], held->tupdesc};
		HeldOrder  *o = &order[i];
		bool		isnull;
		Datum		d;

		o->row = i;
		d = Val(r, H_GRANTED_AT, &isnull);
		o->granted_at = isnull ? DT_NOEND : DatumGetTimestampTz(d);
		d = Val(r, H_BENEFIT_ID, &isnull);
		memcpy(o->benefit_id.data, DatumGetUUIDP(d)->data, UUID_LEN);
		for (uint64 a = 0; a < attached->numvals; a++)
		{
			Row			ar = {attached->vals[a], attached->tupdesc};

			if (!SameUuid(ar, 1, r, H_SOURCE_ID))
				continue;
			o->has_source = true;
			o->source_at = DatumGetTimestampTz(Val(ar, 2, &isnull));
			if (SameUuid(ar, 3, r, H_BENEFIT_ID))
			{
				o->has_position = true;
				o->position = DatumGetInt32(Val(ar, 4, &isnull));
				break;
			}
		}
	}
	qsort(order, n, sizeof(HeldOrder), HeldOrderCmp);
	return order;
}

/*
 * The portal document of one customer, or NULL when there is no such
 * customer.  Runs inside the caller's SPI connection; the result is
 * allocated in the caller's (SPI) context.
 */
Jsonb *
PortalDocument(Datum customer)
{
	Doc			doc = NULL;
	JsonbValue *result;
	SPITupleTable *t;
	SPITupleTable *held;
	SPITupleTable *keys;
	SPITupleTable *accounts = NULL;
	SPITupleTable *files = NULL;
	uint64		nheld;
	int		   *first;			/* held rows shown, in order */
	int		   *chosen;			/* the row whose grant is shown */
	HeldOrder  *order;
	int			nshown = 0;
	int			ndownloadable = 0;
	bool		need_accounts = false;
	S3Config	config;
	bool		have_config = false;
	int			ttl = S3DownloadUrlTtl();
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	char	   *download_expires_at = TimeText(now + (int64) ttl * USECS_PER_SEC);
	Datum		args[2];

	PreparePlans();
	args[0] = customer;

	t = Run(customer_plan, args);
	if (SPI_processed != 1)
		return NULL;
	BeginObject(&doc);
	{
		Row			r = {t->vals[0], t->tupdesc};

		Key(&doc, "customer");
		BeginObject(&doc);
		Key(&doc, "id");
		Str(&doc, Text(r, 1));
		Key(&doc, "external_id");
		Str(&doc, Text(r, 2));
		Key(&doc, "email");
		Str(&doc, Text(r, 3));
		Key(&doc, "name");
		Str(&doc, Text(r, 4));
		EndObject(&doc);
		Key(&doc, "organization");
		BeginObject(&doc);
		Key(&doc, "id");
		Str(&doc, Text(r, 5));
		Key(&doc, "name");
		Str(&doc, Text(r, 6));
		EndObject(&doc);
	}
	Key(&doc, "generated_at");
	Str(&doc, TimeText(now));

	/* Live subscriptions. */
	t = Run(subscriptions_plan, args);
	Key(&doc, "subscriptions");
	BeginArray(&doc);
	for (uint64 i = 0; i < t->numvals; i++)
	{
		Row			r = {t->vals[i], t->tupdesc};

		BeginObject(&doc);
		Key(&doc, "id");
		Str(&doc, Text(r, 1));
		Key(&doc, "product");
		BeginObject(&doc);
		Key(&doc, "id");
		Str(&doc, Text(r, 2));
		Key(&doc, "name");
		Str(&doc, Text(r, 3));
		EndObject(&doc);
		Key(&doc, "status");
		Str(&doc, Text(r, 4));
		Key(&doc, "current_period_start");
		TimeCol(&doc, r, 5);
		Key(&doc, "current_period_end");
		TimeCol(&doc, r, 6);
		Key(&doc, "cancel_at_period_end");
		Bool(&doc, IsTrue(r, 7));
		EndObject(&doc);
	}
	EndArray(&doc);

	/* Held benefits, each once: first place, an active grant preferred. */
	held = Run(held_plan, args);
	nheld = held->numvals;
	order = OrderHeld(held, Run(attached_plan, args));
	first = palloc(sizeof(int) * (nheld + 1));
	chosen = palloc(sizeof(int) * (nheld + 1));
	for (uint64 k = 0; k < nheld; k++)
	{
		int			i = order[k].row;
		Row			r = {held->vals[i], held->tupdesc};
		int			j;

		for (j = 0; j < nshown; j++)
		{
			Row			f = {held->vals[first[j]], held->tupdesc};

			if (SameUuid(r, H_BENEFIT_ID, f, H_BENEFIT_ID))
				break;
		}
		if (j < nshown)
		{
			Row			c = {held->vals[chosen[j]], held->tupdesc};
			char	   *state = Text(r, H_STATE);

			if (strcmp(state, "active") == 0 && strcmp(Text(c, H_STATE), "active") != 0)
				chosen[j] = i;
			continue;
		}
		first[nshown] = chosen[nshown] = i;
		nshown++;
		{
			char	   *type = Text(r, H_TYPE);

			if (strcmp(type, "downloadable") == 0)
				ndownloadable++;
			else if (strcmp(type, "github_repository") == 0 || strcmp(type, "discord") == 0)
				need_accounts = true;
		}
	}

	keys = Run(keys_plan, args);
	if (need_accounts)
		accounts = Run(accounts_plan, args);
	if (ndownloadable > 0)
	{
		Datum	   *ids = palloc(sizeof(Datum) * ndownloadable);
		int			n = 0;
		bool		isnull;

		for (int j = 0; j < nshown; j++)
		{
			Row			r = {held->vals[first[j]], held->tupdesc};

			if (strcmp(Text(r, H_TYPE), "downloadable") == 0)
				ids[n++] = Val(r, H_BENEFIT_ID, &isnull);
		}
		args[0] = PointerGetDatum(construct_array(ids, n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
		files = Run(files_plan, args);
		args[0] = customer;
	}

	Key(&doc, "benefits");
	BeginArray(&doc);
	for (int j = 0; j < nshown; j++)
	{
		Row			r = {held->vals[chosen[j]], held->tupdesc};
		char	   *type = Text(r, H_TYPE);
		char	   *state = Text(r, H_STATE);

		BeginObject(&doc);
		Key(&doc, "id");
		Str(&doc, Text(r, H_BENEFIT_ID));
		Key(&doc, "grant_id");
		Str(&doc, Text(r, H_GRANT_ID));
		Key(&doc, "type");
		Str(&doc, type);
		Key(&doc, "description");
		Str(&doc, Text(r, H_DESCRIPTION));
		Key(&doc, "state");
		Str(&doc, state);
		Key(&doc, "granted_at");
		TimeCol(&doc, r, H_GRANTED_AT);

		if (strcmp(type, "license_keys") == 0)
		{
			Key(&doc, "license_key");
			LicenseKey(&doc, r, keys);
		}
		else if (strcmp(type, "downloadable") == 0)
		{
			Key(&doc, "files");
			BeginArray(&doc);
			for (uint64 f = 0; files && f < files->numvals; f++)
			{
				Row			fr = {files->vals[f], files->tupdesc};
				char	   *name;
				char	   *mime;
				S3QueryParam params[2];

				if (!SameUuid(fr, 1, r, H_BENEFIT_ID))
					continue;
				if (!have_config && S3Configured())
				{
					S3ConfigFromSettings(&config);
					have_config = true;
				}
				name = Text(fr, 3);
				mime = Text(fr, 5);
				params[0].name = "response-content-disposition";
				params[0].value = S3ContentDisposition("attachment", name);
				params[1].name = "response-content-type";
				params[1].value = mime;

				BeginObject(&doc);
				Key(&doc, "id");
				Str(&doc, Text(fr, 2));
				Key(&doc, "name");
				Str(&doc, name);
				Key(&doc, "size");
				IntCol(&doc, fr, 4);
				Key(&doc, "mime_type");
				Str(&doc, mime);
				Key(&doc, "checksum_sha256");
				Str(&doc, Text(fr, 6));
				/*
				 * Without storage settings the rest of the portal still
				 * serves the customer; the file says why it has no link.
				 */
				Key(&doc, "download_url");
				Str(&doc, have_config ? S3PresignUrl(&config, "GET", Text(fr, 7), ttl, now, params, 2) : NULL);
				Key(&doc, "download_expires_at");
				Str(&doc, have_config ? download_expires_at : NULL);
				Key(&doc, "download_error");
				Str(&doc, have_config ? NULL : "file storage is not configured");
				EndObject(&doc);
			}
			EndArray(&doc);
		}
		else if (strcmp(type, "custom") == 0)
		{
			Key(&doc, "note");
			JsonCol(&doc, r, H_NOTE);
		}
		else if (strcmp(type, "meter_credits") == 0)
		{
			bool		isnull;
			Datum		meter = Val(r, H_METER_ID, &isnull);
			SPITupleTable *m = NULL;

			Key(&doc, "meter");
			if (!isnull)
			{
				Datum		margs[2] = {meter, customer};

				m = Run(meter_plan, margs);
			}
			if (m == NULL || m->numvals != 1)
				Null(&doc);
			else
			{
				Row			mr = {m->vals[0], m->tupdesc};

				BeginObject(&doc);
				Key(&doc, "id");
				Str(&doc, Text(mr, 1));
				Key(&doc, "name");
				Str(&doc, Text(mr, 2));
				Key(&doc, "units");
				JsonCol(&doc, r, H_UNITS);
				Key(&doc, "rollover");
				Bool(&doc, IsTrue(r, H_ROLLOVER));
				Key(&doc, "balance");
				IntCol(&doc, mr, 3);
				EndObject(&doc);
			}
		}
		else if (strcmp(type, "github_repository") == 0 || strcmp(type, "discord") == 0)
		{
			bool		github = type[0] == 'g';
			char	   *action = Text(r, H_ERROR_ACTION);
			const char *delivery;

			if (strcmp(state, "active") == 0)
				delivery = "granted";
			else if (action != NULL)
				delivery = "action_required";
			else if (IsTrue(r, H_HAS_ERROR))
				delivery = "failed";
			else
				delivery = "pending";

			Key(&doc, github ? "github" : "discord");
			BeginObject(&doc);
			if (github)
			{
				Key(&doc, "repositories");
				JsonCol(&doc, r, H_REPOSITORIES);
			}
			else
			{
				Key(&doc, "guild_id");
				JsonCol(&doc, r, H_GUILD_ID);
				Key(&doc, "roles");
				JsonCol(&doc, r, H_ROLES);
			}
			Key(&doc, "account");
			Account(&doc, accounts, github ? "github" : "discord");
			Key(&doc, "delivery");
			Str(&doc, delivery);
			Key(&doc, "action");
			Str(&doc, action);
			Key(&doc, "message");
			Str(&doc, Text(r, H_ERROR_MESSAGE));
			EndObject(&doc);
		}
		EndObject(&doc);
	}
	EndArray(&doc);
	result = pushJsonbValue(&doc, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(result);
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
	pg_uuid_t  *customer = palloc(sizeof(pg_uuid_t));
	Jsonb	   *doc;

	if (PG_ARGISNULL(0))
		CustomerSessionInvalid();
	SPI_connect();
	*customer = CustomerSessionResolve(PG_GETARG_TEXT_PP(0));
	doc = PortalDocument(UUIDPGetDatum(customer));
	if (doc == NULL)
		CustomerSessionInvalid();	/* the customer was deleted meanwhile */
	{
		Jsonb	   *copy = SPI_palloc(VARSIZE(doc));

		memcpy(copy, doc, VARSIZE(doc));
		doc = copy;
	}
	SPI_finish();
	PG_RETURN_JSONB_P(doc);
}
