/*
 * track.c — grants driven by an application's own subscriptions and orders
 * tables.
 *
 * track_subscriptions(source, organization_id, column names..., status_map)
 * records the table in benefits.tracked_tables and attaches a C trigger
 * (benefits_track) to it.  Each row the application writes is mirrored into
 * benefits.subscriptions (or benefits.orders), keyed by (tracked_table,
 * tracked_id), and the engine's own triggers then grant and revoke as for any
 * other subscription.  Deleting the application's row deletes the mirror,
 * which revokes its grants and keeps them as history (grant_source_deleted,
 * subscriptions.c).
 *
 * Customers and products are matched on external_id within the
 * organization; statuses go through the status map (default: Stripe's).  A
 * row naming an unknown customer, product or status raises 23503/22023 with
 * the value and what to do, or, with on_unknown => 'skip', is recorded in
 * benefits.tracking_skips and reported with a WARNING.  The trigger reads its
 * settings from the registry (not from trigger arguments), so a trigger
 * cannot be pointed at another organization by hand.
 *
 * Columns are checked when the table is tracked: ids, customers, products
 * and subscriptions must be text-like, integers or uuids (a jsonb column is
 * refused, 22023 naming the argument), statuses text-like or an enum (read
 * as its label), period ends a time, a date, integer epoch seconds or text,
 * cancel_at_period_end boolean or text.
 *
 * The product may instead be product_expression, a SQL expression over the
 * row ($$items->'data'->0->'price'->>'product'$$ for a Stripe-synced
 * subscriptions table).  Evaluating administrator-written SQL in this
 * trigger is the dangerous part of tracking, because track_trigger is
 * SECURITY DEFINER and owned by a superuser.  Who could inject what:
 *
 *   - The administrator who tracks the table (benefits_admin, holding the
 *     TRIGGER privilege on it) writes the expression.  Run as the owner, any
 *     function call would be SQL run as a superuser: query_to_xml,
 *     table_to_xml and ts_stat run queries, pg_read_file reads files, a
 *     function of their own could do anything.  So the expression may call
 *     only built-in (pg_catalog) IMMUTABLE functions and operators (none of
 *     which runs a query or touches anything but its arguments), use only
 *     built-in types and enums (no user-defined input, output, cast,
 *     subscripting or domain-constraint code, which could run even at parse
 *     time), read only the tracked table's own columns, and contain no
 *     subquery, aggregate, window or set-returning function.  Their own
 *     privileges must suffice, as for "SELECT (expr) FROM source LIMIT 0":
 *     SELECT on the columns it reads, EXECUTE on what it calls, checked as
 *     them.  And the trigger evaluates it as them, never as the owner: with
 *     their user id under SECURITY_RESTRICTED_OPERATION, so if a rule above
 *     had a hole the expression would still hold no more rights than its
 *     author's own (a superuser who tracks a table gains nothing either
 *     way).  A role that loses SELECT on a column, or is dropped, stops the
 *     trigger with an error until the table is tracked again.
 *
 *   - The application writing the table controls the row's values only.
 *     They reach the expression as the scan tuple of an expression context,
 *     as data, never as SQL text; its other SQL here goes through bound
 *     parameters.
 *
 *   - The stored expression itself: benefits.tracked_tables is written only
 *     by the extension's own functions (benefits_admin may only read it), and
 *     what track_* stores is PostgreSQL's deparse of the validated tree, the
 *     tracking role and the columns read with their types.  The 0.1.0 ->
 *     0.2.0 upgrade removes these keys from rows written when benefits_admin
 *     could still write the registry.  The trigger treats the text as
 *     untrusted anyway and validates it again with the same rules every time
 *     it builds its cached form, the names in its raw parse tree before
 *     analysis (which already runs input functions on literals) and the
 *     analyzed tree after.
 *
 *   - The table's owner could change a column's type, so that the same text
 *     would parse into a call of their own code (an implicit cast, an input
 *     function of their type applied to a literal).  The trigger re-parses
 *     only if every column the expression reads still has the type it had
 *     when tracked, and refuses otherwise.
 *
 *   - Name resolution: parsing happens with search_path pinned to
 *     pg_catalog, pg_temp (both functions set it), so unqualified names
 *     resolve in pg_catalog first, and functions and operators are never
 *     looked up in anyone's pg_temp; a type found only in pg_temp is refused
 *     by the built-in-types rule.
 *
 * A constrained path language (a jsonb path applied to one column) would
 * have been safer by construction; it was not chosen because the rules
 * above leave the expression no way to reach beyond its row, while letting
 * applications use ordinary SQL (coalesce, lower, CASE, #>>) for the shapes
 * their sync tools produce.  Anything the rules refuse, a generated column
 * on the application's table can compute, named as product_column.
 * The checking and evaluation are in track_expr.c.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "lib/stringinfo.h"
#include "parser/parse_coerce.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "engine.h"
#include "track_expr.h"
#include "trigger_guard.h"

PG_FUNCTION_INFO_V1(track_subscriptions);
PG_FUNCTION_INFO_V1(track_orders);
PG_FUNCTION_INFO_V1(untrack);
PG_FUNCTION_INFO_V1(track_trigger);

/* Stripe subscription statuses; paused (trial ended without payment) counts as unpaid. */
static const char *DefaultSubscriptionMap =
"{\"active\": \"active\", \"trialing\": \"trialing\", \"past_due\": \"past_due\", \"unpaid\": \"unpaid\","
" \"canceled\": \"canceled\", \"incomplete\": \"incomplete\", \"incomplete_expired\": \"incomplete_expired\","
" \"paused\": \"unpaid\"}";

/* Payment statuses of Stripe charges, payment intents, checkout sessions and invoices. */
static const char *DefaultOrderMap =
"{\"paid\": \"paid\", \"succeeded\": \"paid\", \"complete\": \"paid\","
" \"pending\": \"pending\", \"open\": \"pending\", \"processing\": \"pending\", \"draft\": \"pending\","
" \"requires_payment_method\": \"pending\", \"requires_action\": \"pending\","
" \"refunded\": \"refunded\", \"partially_refunded\": \"partially_refunded\", \"disputed\": \"disputed\","
" \"failed\": null, \"canceled\": null, \"expired\": null, \"void\": null, \"uncollectible\": null}";

static const char *SubscriptionStatuses[] = {
	"incomplete", "incomplete_expired", "trialing", "active", "past_due", "unpaid", "canceled", "revoked", NULL
};
static const char *OrderStatuses[] = {
	"pending", "paid", "refunded", "partially_refunded", "disputed", NULL
};

static bool
InList(const char *value, const char **list)
{
	for (const char **p = list; *p; p++)
		if (strcmp(*p, value) == 0)
			return true;
	return false;
}

/* A text argument, or NULL. */
static char *
TextArg(FunctionCallInfo fcinfo, int n)
{
	/* 0.1.0's functions have no product_expression (the last argument) */
	if (n >= PG_NARGS() || PG_ARGISNULL(n))
		return NULL;
	return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/* What a tracked column must be able to hold. */
typedef enum ColumnKind
{
	COLUMN_EXTERNAL_ID,			/* an id matched as text: text-like, integer, uuid */
	COLUMN_STATUS,				/* text-like or an enum */
	COLUMN_TIMESTAMP,			/* a time, integer epoch seconds, or text */
	COLUMN_BOOLEAN				/* boolean or text */
} ColumnKind;

static bool
ColumnTypeAccepted(Oid typid, ColumnKind kind)
{
	Oid			base = getBaseType(typid);

	if (TypeCategory(base) == TYPCATEGORY_STRING)
		return true;
	switch (kind)
	{
		case COLUMN_EXTERNAL_ID:
			return TrackIdTypeAccepted(base);
		case COLUMN_STATUS:
			return type_is_enum(base);
		case COLUMN_TIMESTAMP:
			return base == TIMESTAMPTZOID || base == TIMESTAMPOID || base == DATEOID ||
				base == INT2OID || base == INT4OID || base == INT8OID;
		case COLUMN_BOOLEAN:
			return base == BOOLOID;
	}
	return false;
}

/*
 * Raises 22023 unless the column exists in the table and has a type the
 * trigger can read as KIND.
 */
static void
CheckColumn(Oid relid, const char *argument, const char *column, bool required, ColumnKind kind)
{
	AttrNumber	attnum;
	Oid			type;

	if (column == NULL)
	{
		if (required)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("%s must not be null", argument));
		return;
	}
	attnum = get_attnum(relid, column);
	if (attnum == InvalidAttrNumber || attnum < 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("%s \"%s\" is not a column of %s", argument, column, get_rel_name(relid)));
	type = get_atttype(relid, attnum);
	if (!ColumnTypeAccepted(type, kind))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("%s \"%s\" has type %s, which %s", argument, column, format_type_be(type),
					   kind == COLUMN_EXTERNAL_ID ? "cannot hold an external id"
					   : kind == COLUMN_STATUS ? "cannot hold a status"
					   : kind == COLUMN_TIMESTAMP ? "cannot hold a time"
					   : "cannot hold a boolean"),
				kind == COLUMN_EXTERNAL_ID
				? errhint("Use a text, integer or uuid column%s.",
						  strcmp(argument, "product_column") == 0
						  ? ", or product_expression to compute the product from the row"
						  " (for example product_expression => $$items->'data'->0->'price'->>'product'$$)" : "")
				: kind == COLUMN_STATUS ? errhint("Use a text or enum column.")
				: kind == COLUMN_TIMESTAMP ? errhint("Use a timestamp, date, integer (epoch seconds) or text column.")
				: errhint("Use a boolean or text column."));
}

/* Raises 22023 unless the map is an object whose values are statuses or null. */
static void
CheckStatusMap(Jsonb *map, const char **statuses, const char *kind)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *key = NULL;

	if (!JB_ROOT_IS_OBJECT(map))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("status_map must be a JSON object mapping the table's statuses to %s statuses", kind));
	it = JsonbIteratorInit(&map->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			key = pnstrdup(v.val.string.val, v.val.string.len);
		else if (tok == WJB_VALUE)
		{
			if (v.type == jbvNull)
				continue;
			if (v.type != jbvString ||
				!InList(pnstrdup(v.val.string.val, v.val.string.len), statuses))
				ereport(ERROR,
						errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("status_map.%s must be a %s status or null", key, kind));
		}
	}
}

/*
 * Tracking attaches a trigger to the application's table and registers it in
 * benefits.tracked_tables, which only the extension writes: the caller must
 * hold the TRIGGER privilege on the table (as CREATE TRIGGER would ask); the
 * rest runs as the extension's owner.
 */
static void
RequireTriggerPrivilege(Oid relid)
{
	if (pg_class_aclcheck(relid, GetUserId(), ACL_TRIGGER) != ACLCHECK_OK)
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("permission denied to track table %s", get_rel_name(relid)),
				errhint("Tracking attaches a trigger: it needs the TRIGGER privilege on the table."));
}

/* Shared by track_subscriptions and track_orders: registers and attaches. */
static void
Track(FunctionCallInfo fcinfo, bool subscriptions)
{
	Oid			relid;
	pg_uuid_t	organization_id;
	char	   *on_unknown;
	Jsonb	   *map;
	StringInfoData settings;
	StringInfoData sql;
	const char *names[] = {"id_column", "customer_column", "product_column", "status_column"};
	const ColumnKind kinds[] = {COLUMN_EXTERNAL_ID, COLUMN_EXTERNAL_ID, COLUMN_EXTERNAL_ID, COLUMN_STATUS};
	const char *columns[4];
	const char *optional[2];
	char	   *expression = TextArg(fcinfo, 10);
	char	   *deparsed = NULL;
	Jsonb	   *expression_columns = NULL;
	Oid			types[4] = {OIDOID, TEXTOID, UUIDOID, JSONBOID};
	Datum		values[4];
	int			rc;
	OwnerSwitch caller;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("source and organization_id must not be null"));
	relid = PG_GETARG_OID(0);
	organization_id = *PG_GETARG_UUID_P(1);
	if (get_rel_relkind(relid) != RELKIND_RELATION && get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("source must be a table"));
	if (get_rel_namespace(relid) == get_namespace_oid(BENEFITS_SCHEMA, true))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("source must be an application table, not a table of the benefits schema"));
	/* Before anything of the table is looked at, its columns or an expression. */
	RequireTriggerPrivilege(relid);
	for (int i = 0; i < 4; i++)
		columns[i] = TextArg(fcinfo, 2 + i);
	/* The product: a column ("product" unless given), or an expression. */
	if (expression != NULL && columns[2] != NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("product_column and product_expression cannot both be given"));
	if (expression == NULL && columns[2] == NULL)
		columns[2] = "product";
	for (int i = 0; i < 4; i++)
		if (i != 2 || expression == NULL)
			CheckColumn(relid, names[i], columns[i], true, kinds[i]);
	optional[0] = TextArg(fcinfo, 7);
	optional[1] = TextArg(fcinfo, 8);
	CheckColumn(relid, subscriptions ? "current_period_end_column" : "subscription_column", optional[0], false,
				subscriptions ? COLUMN_TIMESTAMP : COLUMN_EXTERNAL_ID);
	CheckColumn(relid, subscriptions ? "cancel_at_period_end_column" : "billing_reason_column", optional[1], false,
				subscriptions ? COLUMN_BOOLEAN : COLUMN_STATUS);
	if (expression != NULL)
	{
		/* Checked with the caller's privileges, before becoming the owner. */
		Relation	rel = table_open(relid, AccessShareLock);

		deparsed = TrackExpressionPrepare(rel, expression, "product_expression", &expression_columns);
		table_close(rel, NoLock);
	}
	on_unknown = PG_ARGISNULL(9) ? "error" : TextArg(fcinfo, 9);
	if (strcmp(on_unknown, "error") != 0 && strcmp(on_unknown, "skip") != 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("on_unknown must be \"error\" or \"skip\""));
	if (PG_ARGISNULL(6))
		map = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
												 CStringGetDatum(subscriptions ? DefaultSubscriptionMap
																 : DefaultOrderMap)));
	else
		map = PG_GETARG_JSONB_P(6);
	CheckStatusMap(map, subscriptions ? SubscriptionStatuses : OrderStatuses,
				   subscriptions ? "subscription" : "order");

	/* Settings as JSON; column names are quoted by the JSON encoder. */
	initStringInfo(&settings);
	appendStringInfoString(&settings, "{");
	for (int i = 0; i < 4; i++)
	{
		appendStringInfo(&settings, "\"%s\": ", names[i]);
		if (columns[i])
			escape_json(&settings, columns[i]);
		else
			appendStringInfoString(&settings, "null");
		appendStringInfoString(&settings, ", ");
	}
	if (deparsed != NULL)
	{
		/* Evaluated by the trigger as this role (track_expr.c). */
		appendStringInfoString(&settings, "\"product_expression\": ");
		escape_json(&settings, deparsed);
		appendStringInfo(&settings, ", \"expression_role\": %u, \"expression_columns\": %s, ",
						 GetUserId(), JsonbToCString(NULL, &expression_columns->root, VARSIZE(expression_columns)));
	}
	for (int i = 0; i < 2; i++)
	{
		const char *name = subscriptions ? (i == 0 ? "current_period_end_column" : "cancel_at_period_end_column")
			: (i == 0 ? "subscription_column" : "billing_reason_column");

		appendStringInfo(&settings, "\"%s\": ", name);
		if (optional[i])
			escape_json(&settings, optional[i]);
		else
			appendStringInfoString(&settings, "null");
		appendStringInfoString(&settings, ", ");
	}
	appendStringInfo(&settings, "\"on_unknown\": \"%s\", \"status_map\": %s}",
					 on_unknown, JsonbToCString(NULL, &map->root, VARSIZE(map)));

	BenefitsBecomeOwner(fcinfo, &caller);
	BenefitsSpiConnect();
	values[0] = ObjectIdGetDatum(relid);
	values[1] = CStringGetTextDatum(subscriptions ? "subscriptions" : "orders");
	values[2] = UuidGetDatum(&organization_id);
	values[3] = DirectFunctionCall1(jsonb_in, CStringGetDatum(settings.data));
	rc = SPI_execute_with_args("INSERT INTO benefits.tracked_tables (source, kind, organization_id, settings)"
							   " SELECT $1, $2, o.id, $4 FROM benefits.organizations o WHERE o.id = $3"
							   " ON CONFLICT (source) DO UPDATE"
							   "    SET kind = EXCLUDED.kind, organization_id = EXCLUDED.organization_id,"
							   "        settings = EXCLUDED.settings",
							   4, types, values, NULL, false, 0);
	if (rc < 0)
		elog(ERROR, "registering the tracked table failed");
	if (SPI_processed == 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("organization_id %s does not exist",
					   DatumGetCString(DirectFunctionCall1(uuid_out, values[2]))));

	/* Tracking again replaces the settings; the trigger is attached once. */
	if (SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = $1 AND tgname = 'benefits_track'",
							  1, types, values, NULL, true, 1) < 0)
		elog(ERROR, "looking up the tracking trigger failed");
	if (SPI_processed == 0)
	{
		initStringInfo(&sql);
		appendStringInfo(&sql,
						 "CREATE TRIGGER benefits_track AFTER INSERT OR UPDATE OR DELETE ON %s"
						 " FOR EACH ROW EXECUTE FUNCTION benefits.track_trigger()",
						 DatumGetCString(DirectFunctionCall1(regclassout, ObjectIdGetDatum(relid))));
		if (SPI_execute(sql.data, false, 0) < 0)
			elog(ERROR, "attaching the tracking trigger failed");
	}
	SPI_finish();
	BenefitsRestoreCaller(&caller);
}

/* SQL: benefits.track_subscriptions(source, organization_id, ...). */
Datum
track_subscriptions(PG_FUNCTION_ARGS)
{
	Track(fcinfo, true);
	PG_RETURN_VOID();
}

/* SQL: benefits.track_orders(source, organization_id, ...). */
Datum
track_orders(PG_FUNCTION_ARGS)
{
	Track(fcinfo, false);
	PG_RETURN_VOID();
}

/* SQL: benefits.untrack(source) — detaches the trigger; true when it was tracked. */
Datum
untrack(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};
	bool		found;
	OwnerSwitch caller;

	RequireTriggerPrivilege(relid);
	BenefitsBecomeOwner(fcinfo, &caller);
	BenefitsSpiConnect();
	if (SPI_execute_with_args("DELETE FROM benefits.tracked_tables WHERE source = $1",
							  1, types, values, NULL, false, 0) < 0)
		elog(ERROR, "unregistering the tracked table failed");
	found = SPI_processed > 0;
	if (found)
	{
		StringInfoData sql;

		initStringInfo(&sql);
		appendStringInfo(&sql, "DROP TRIGGER IF EXISTS benefits_track ON %s",
						 DatumGetCString(DirectFunctionCall1(regclassout, ObjectIdGetDatum(relid))));
		if (SPI_execute(sql.data, false, 0) < 0)
			elog(ERROR, "detaching the tracking trigger failed");
	}
	SPI_finish();
	BenefitsRestoreCaller(&caller);
	PG_RETURN_BOOL(found);
}

/* The tracked table's settings, as the registry holds them. */
typedef struct Tracked
{
	int32		id;
	bool		subscriptions;
	pg_uuid_t	organization_id;
	Jsonb	   *settings;
} Tracked;

/*
 * The tracking of the trigger's table: the table itself, or for a partition
 * the nearest tracked partitioned table above it (the trigger a tracked
 * partitioned table has is cloned onto its partitions, which fire it as
 * themselves).
 */
static void
LoadTracked(Relation rel, Tracked *t)
{
	static SPIPlanPtr plan;
	Oid			relid = RelationGetRelid(rel);
	List	   *candidates = list_make1_oid(relid);
	Datum	   *oids;
	Oid			types[1] = {OIDARRAYOID};
	Datum		values[1];
	bool		isnull;
	HeapTuple	tuple;
	TupleDesc	desc;
	int			n = 0;
	ListCell   *lc;

	if (rel->rd_rel->relispartition)
		candidates = list_concat(candidates, get_partition_ancestors(relid));
	oids = palloc(sizeof(Datum) * list_length(candidates));
	foreach(lc, candidates)
		oids[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	values[0] = PointerGetDatum(construct_array(oids, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
	BenefitsExec(BenefitsPlan(&plan,
							"SELECT id, kind = 'subscriptions', organization_id, settings"
							"  FROM benefits.tracked_tables WHERE source::pg_catalog.oid = ANY ($1)"
							" ORDER BY pg_catalog.array_position($1, source::pg_catalog.oid) LIMIT 1",
							1, types),
			   values, NULL, true, 1);
	if (SPI_processed == 0)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("table %s is not tracked by benefits", get_rel_name(relid)),
				errhint("Call benefits.track_subscriptions or benefits.track_orders, or drop the trigger benefits_track."));
	tuple = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	t->id = DatumGetInt32(SPI_getbinval(tuple, desc, 1, &isnull));
	t->subscriptions = DatumGetBool(SPI_getbinval(tuple, desc, 2, &isnull));
	t->organization_id = *DatumGetUUIDP(SPI_getbinval(tuple, desc, 3, &isnull));
	t->settings = DatumGetJsonbPCopy(SPI_getbinval(tuple, desc, 4, &isnull));
}

/* A column of the application's row as text, by the setting naming it; NULL when unset or null. */
static char *
RowValue(Tracked *t, const char *setting, HeapTuple row, TupleDesc desc)
{
	char	   *column = BenefitsJsonText(t->settings, setting);
	int			attnum;

	if (column == NULL)
		return NULL;
	attnum = SPI_fnumber(desc, column);
	if (attnum <= 0)
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_COLUMN),
				errmsg("tracked column \"%s\" no longer exists", column),
				errhint("Call benefits.track_subscriptions or benefits.track_orders again with the new column names."));
	return SPI_getvalue(row, desc, attnum);
}

/* The row's product: its product column, or the product_expression's value. */
static char *
ProductValue(Tracked *t, Relation rel, HeapTuple row)
{
	char	   *expression = BenefitsJsonText(t->settings, "product_expression");
	char	   *role;
	JsonbValue *columns;

	if (expression == NULL)
		return RowValue(t, "product_column", row, RelationGetDescr(rel));
	role = BenefitsJsonText(t->settings, "expression_role");
	columns = getKeyJsonValueFromContainer(&t->settings->root, "expression_columns",
										   strlen("expression_columns"), NULL);
	if (role == NULL || columns == NULL || columns->type != jbvBinary)
		elog(ERROR, "tracked table %s has an incomplete product_expression setting",
			 RelationGetRelationName(rel));
	return TrackExpressionValue(rel, expression, atooid(role), JsonbValueToJsonb(columns), row);
}

/*
 * An unknown customer, product or status: raise, or with on_unknown 'skip'
 * record it and warn.  Returns only when skipping.
 */
static void
Unknown(Tracked *t, const char *row_id, int sqlstate, const char *what, const char *value, const char *hint)
{
	char	   *mode = BenefitsJsonText(t->settings, "on_unknown");
	StringInfoData reason;

	initStringInfo(&reason);
	appendStringInfo(&reason, "%s \"%s\" is unknown", what, value ? value : "(null)");
	if (mode == NULL || strcmp(mode, "skip") != 0)
		ereport(ERROR,
				errcode(sqlstate),
				errmsg("row %s of a tracked table names an unknown %s \"%s\"", row_id, what, value ? value : "(null)"),
				errhint("%s Or track the table with on_unknown => 'skip'.", hint));
	{
		static SPIPlanPtr plan;
		Oid			types[3] = {INT4OID, TEXTOID, TEXTOID};
		Datum		values[3] = {Int32GetDatum(t->id), CStringGetTextDatum(row_id),
		CStringGetTextDatum(reason.data)};

		BenefitsExec(BenefitsPlan(&plan,
								"INSERT INTO benefits.tracking_skips (tracked_table, row_id, reason) VALUES ($1, $2, $3)",
								3, types),
				   values, NULL, false, 0);
	}
	ereport(WARNING,
			errmsg("row %s of a tracked table skipped: %s", row_id, reason.data));
}

/* The id of the organization's customer or product with this external_id. */
static bool
ByExternalId(bool customer, pg_uuid_t organization_id, const char *external_id, pg_uuid_t *id)
{
	static SPIPlanPtr customer_plan;
	static SPIPlanPtr product_plan;
	Oid			types[2] = {UUIDOID, TEXTOID};
	Datum		values[2];
	bool		isnull;

	if (external_id == NULL)
		return false;
	values[0] = UuidGetDatum(&organization_id);
	values[1] = CStringGetTextDatum(external_id);
	BenefitsExec(customer
			   ? BenefitsPlan(&customer_plan,
							  "SELECT id FROM benefits.customers"
							  " WHERE organization_id = $1 AND external_id = $2 AND deleted_at IS NULL",
							  2, types)
			   : BenefitsPlan(&product_plan,
							  "SELECT id FROM benefits.products WHERE organization_id = $1 AND external_id = $2",
							  2, types),
			   values, NULL, true, 1);
	if (SPI_processed == 0)
		return false;
	*id = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	return true;
}

/* Mirrors a deleted application row: the mirror goes, revoking its grants. */
static void
DeleteMirror(Tracked *t, const char *row_id)
{
	static SPIPlanPtr subs_plan;
	static SPIPlanPtr orders_plan;
	Oid			types[2] = {INT4OID, TEXTOID};
	Datum		values[2] = {Int32GetDatum(t->id), CStringGetTextDatum(row_id)};

	BenefitsExec(t->subscriptions
			   ? BenefitsPlan(&subs_plan,
							  "DELETE FROM benefits.subscriptions WHERE tracked_table = $1 AND tracked_id = $2",
							  2, types)
			   : BenefitsPlan(&orders_plan,
							  "DELETE FROM benefits.orders WHERE tracked_table = $1 AND tracked_id = $2",
							  2, types),
			   values, NULL, false, 0);
}

/*
 * AFTER INSERT OR UPDATE OR DELETE on a tracked application table: mirrors
 * the row into benefits.subscriptions or benefits.orders.
 */
Datum
track_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = TriggerGuard(fcinfo, "track_trigger", FIRES_AFTER_ROW, NULL);
	TupleDesc	desc;
	HeapTuple	row;
	Tracked		t;
	char	   *row_id,
			   *customer,
			   *product,
			   *status;
	char	   *mapped;
	pg_uuid_t	customer_id,
				product_id;
	JsonbValue *mv;
	Jsonb	   *map;

	desc = trigdata->tg_relation->rd_att;
	row = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? trigdata->tg_newtuple : trigdata->tg_trigtuple;

	BenefitsSpiConnect();
	LoadTracked(trigdata->tg_relation, &t);
	row_id = RowValue(&t, "id_column", row, desc);
	if (row_id == NULL)
		ereport(ERROR,
				errcode(ERRCODE_NOT_NULL_VIOLATION),
				errmsg("a row of tracked table %s has no id", RelationGetRelationName(trigdata->tg_relation)));

	if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
	{
		DeleteMirror(&t, row_id);
		SPI_finish();
		return PointerGetDatum(NULL);
	}
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		char	   *old_id = RowValue(&t, "id_column", trigdata->tg_trigtuple, desc);

		if (old_id && strcmp(old_id, row_id) != 0)
			DeleteMirror(&t, old_id);
	}

	/* Status through the map; a null mapping ignores the row. */
	status = RowValue(&t, "status_column", row, desc);
	map = NULL;
	{
		JsonbValue *m = getKeyJsonValueFromContainer(&t.settings->root, "status_map", strlen("status_map"), NULL);

		if (m && m->type == jbvBinary)
			map = JsonbValueToJsonb(m);
	}
	mv = (status && map) ? getKeyJsonValueFromContainer(&map->root, status, strlen(status), NULL) : NULL;
	if (mv == NULL)
	{
		Unknown(&t, row_id, ERRCODE_INVALID_PARAMETER_VALUE, "status", status,
				"Add the status to the table's status_map.");
		SPI_finish();
		return PointerGetDatum(NULL);
	}
	if (mv->type == jbvNull)
	{
		SPI_finish();
		return PointerGetDatum(NULL);
	}
	mapped = pnstrdup(mv->val.string.val, mv->val.string.len);

	customer = RowValue(&t, "customer_column", row, desc);
	if (!ByExternalId(true, t.organization_id, customer, &customer_id))
	{
		Unknown(&t, row_id, ERRCODE_FOREIGN_KEY_VIOLATION, "customer", customer,
				"Create the customer in benefits.customers with this external_id first.");
		SPI_finish();
		return PointerGetDatum(NULL);
	}
	product = ProductValue(&t, trigdata->tg_relation, row);
	if (!ByExternalId(false, t.organization_id, product, &product_id))
	{
		Unknown(&t, row_id, ERRCODE_FOREIGN_KEY_VIOLATION, "product", product,
				"Create the product in benefits.products with this external_id first.");
		SPI_finish();
		return PointerGetDatum(NULL);
	}

	if (t.subscriptions)
	{
		static SPIPlanPtr plan;
		Oid			types[8] = {UUIDOID, UUIDOID, UUIDOID, TEXTOID, TEXTOID, TEXTOID, INT4OID, TEXTOID};
		Datum		values[8];
		char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
		char	   *period_end = RowValue(&t, "current_period_end_column", row, desc);
		char	   *cancel = RowValue(&t, "cancel_at_period_end_column", row, desc);

		values[0] = UuidGetDatum(&t.organization_id);
		values[1] = UuidGetDatum(&customer_id);
		values[2] = UuidGetDatum(&product_id);
		values[3] = CStringGetTextDatum(mapped);
		values[4] = period_end ? CStringGetTextDatum(period_end) : (Datum) 0;
		nulls[4] = period_end ? ' ' : 'n';
		values[5] = cancel ? CStringGetTextDatum(cancel) : (Datum) 0;
		nulls[5] = cancel ? ' ' : 'n';
		values[6] = Int32GetDatum(t.id);
		values[7] = CStringGetTextDatum(row_id);
		BenefitsExec(BenefitsPlan(&plan,
								"INSERT INTO benefits.subscriptions AS s"
								"  (organization_id, customer_id, product_id, status, current_period_end,"
								"   cancel_at_period_end, tracked_table, tracked_id)"
								" VALUES ($1, $2, $3, $4,"
								"   CASE WHEN $5 ~ '^-?[0-9]+$' THEN pg_catalog.to_timestamp($5::bigint) ELSE $5::timestamptz END,"
								"   COALESCE($6::boolean, false), $7, $8)"
								" ON CONFLICT (tracked_table, tracked_id) DO UPDATE"
								"    SET customer_id = EXCLUDED.customer_id, product_id = EXCLUDED.product_id,"
								"        status = EXCLUDED.status,"
								"        current_period_end = EXCLUDED.current_period_end,"
								"        cancel_at_period_end = EXCLUDED.cancel_at_period_end,"
								"        modified_at = pg_catalog.now()",
								8, types),
				   values, nulls, false, 0);
	}
	else
	{
		static SPIPlanPtr plan;
		Oid			types[8] = {UUIDOID, UUIDOID, UUIDOID, TEXTOID, TEXTOID, TEXTOID, INT4OID, TEXTOID};
		Datum		values[8];
		char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
		char	   *subscription = RowValue(&t, "subscription_column", row, desc);
		char	   *reason = RowValue(&t, "billing_reason_column", row, desc);

		values[0] = UuidGetDatum(&t.organization_id);
		values[1] = UuidGetDatum(&customer_id);
		values[2] = UuidGetDatum(&product_id);
		values[3] = CStringGetTextDatum(mapped);
		values[4] = subscription ? CStringGetTextDatum(subscription) : (Datum) 0;
		nulls[4] = subscription ? ' ' : 'n';
		values[5] = reason ? CStringGetTextDatum(reason) : (Datum) 0;
		nulls[5] = reason ? ' ' : 'n';
		values[6] = Int32GetDatum(t.id);
		values[7] = CStringGetTextDatum(row_id);

		/*
		 * The subscription is the organization's tracked subscription with
		 * that id.  Billing reasons other than the four known ones (and
		 * Stripe's "manual", a purchase) change nothing.
		 */
		BenefitsExec(BenefitsPlan(&plan,
								"WITH sub AS ("
								"  SELECT s.id FROM benefits.subscriptions s"
								"    JOIN benefits.tracked_tables t ON t.id = s.tracked_table"
								"   WHERE t.organization_id = $1 AND s.tracked_id = $5 LIMIT 1)"
								" INSERT INTO benefits.orders AS o"
								"  (organization_id, customer_id, product_id, subscription_id, billing_reason, status,"
								"   tracked_table, tracked_id)"
								" VALUES ($1, $2, $3, (SELECT id FROM sub),"
								"   CASE WHEN $6 IN ('purchase', 'subscription_create', 'subscription_cycle', 'subscription_update')"
								"        THEN $6"
								"        WHEN $6 = 'manual' OR ($6 IS NULL AND $5 IS NULL) THEN 'purchase'"
								"        ELSE 'subscription_update' END,"
								"   $4, $7, $8)"
								" ON CONFLICT (tracked_table, tracked_id) DO UPDATE"
								"    SET customer_id = EXCLUDED.customer_id, product_id = EXCLUDED.product_id,"
								"        subscription_id = EXCLUDED.subscription_id,"
								"        billing_reason = EXCLUDED.billing_reason, status = EXCLUDED.status,"
								"        modified_at = pg_catalog.now()",
								8, types),
				   values, nulls, false, 0);
	}
	SPI_finish();
	return PointerGetDatum(NULL);
}
