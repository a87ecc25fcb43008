/*
 * track_expr.c — the product_expression of a tracked table.
 *
 * An administrator may give the product of a tracked row as a SQL
 * expression over the row's columns instead of a column
 * (track_subscriptions(..., product_expression =>
 * $$items->'data'->0->'price'->>'product'$$)).  The tracking trigger runs as
 * the extension's owner, a superuser, so the expression is held to rules
 * that leave it nothing to do but compute a value from the row; the reasoning
 * (who could write what, and why each rule is there) is at the top of
 * track.c.  The rules, checked when the table is tracked and again whenever
 * the trigger rebuilds its cached form:
 *
 *   - exactly one expression: the text parses as "SELECT <expr>" with one
 *     unnamed target and no other clause (no FROM, WHERE, second statement);
 *   - before analysis (which itself runs input functions on literals and
 *     typmod input functions), the raw tree may name only allowed types,
 *     columns of allowed types, functions and operators unqualified or in
 *     pg_catalog, and no subquery (so no other table is even looked up);
 *   - no aggregate, window function or set-returning function;
 *   - column references only to user columns of the tracked table, read as
 *     the only range-table entry (no system column, no whole-row reference);
 *   - every function it calls, operators, casts and I/O conversions
 *     included, is a built-in one (schema pg_catalog) and IMMUTABLE, and it
 *     uses no other mutable construct (CURRENT_TIMESTAMP, nextval);
 *   - every type it uses, the columns' included, is a built-in type or an
 *     enum (or an array of those), so no user-defined input, output, cast,
 *     subscripting or domain-constraint code can run, at parse time either;
 *   - it yields text, an integer or a uuid, as a product column must.
 *
 * At track time the caller's own privileges must suffice: the columns it
 * reads are checked for SELECT and the functions for EXECUTE as the caller,
 * as "SELECT (expr) FROM source LIMIT 0" would.  What is stored is the
 * expression as PostgreSQL deparses it (names qualified where pg_catalog
 * does not find them), the calling role and the columns it reads with their
 * types.  The trigger re-parses that text with search_path pinned to
 * pg_catalog, pg_temp, refuses to go on if a column it reads changed type,
 * validates it again, and parses and evaluates it as the role that tracked
 * the table (SECURITY_RESTRICTED_OPERATION), never as the owner; the row's
 * values reach it as the scan tuple of an expression context, as data.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_coerce.h"
#include "parser/parse_collate.h"
#include "parser/parse_expr.h"
#include "parser/parse_node.h"
#include "parser/parse_relation.h"
#include "parser/parse_type.h"
#include "parser/parser.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"

#include "track_expr.h"

/* The expression is parsed as the only target of this statement. */
#define EXPR_PREFIX "SELECT "

bool
TrackIdTypeAccepted(Oid typid)
{
	Oid			base = getBaseType(typid);

	switch (base)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case UUIDOID:
			return true;
		default:
			return TypeCategory(base) == TYPCATEGORY_STRING;
	}
}

/*
 * Errors found while parsing point into the expression the administrator
 * wrote, not into the statement wrapped around it.
 */
static void
ExprErrorCallback(void *arg)
{
	const char *text = arg;
	int			pos = geterrposition();

	if (pos > 0)
	{
		int			inner = pos - (int) strlen(EXPR_PREFIX);

		errposition(0);
		internalerrposition(inner > 0 ? inner : 1);
		internalerrquery(text);
	}
}

static void
Refuse(const char *argname, const char *what)
{
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("%s %s", argname, what));
}

/* What the raw tree may name, checked before analysis (RawCheckWalker). */
typedef struct RawCheckContext
{
	const char *argname;
	Relation	rel;
	Jsonb	   *columns;		/* at run time: the columns read when tracked */
} RawCheckContext;

static bool TypeAllowed(Oid typid);
static bool TrackedColumnType(Jsonb *columns, const char *name, Oid *type);

/* A qualified function or operator name outside pg_catalog. */
static bool
NameOutsideCatalog(List *names)
{
	return list_length(names) > 1 && strcmp(strVal(linitial(names)), "pg_catalog") != 0;
}

/*
 * Parse analysis itself runs code: it applies input functions to literals
 * (cast to a type, or to a column's type through COALESCE, IN, CASE) and
 * typmod input functions to type modifiers.  So before analysis, the raw
 * tree may name only types allowed, columns of types allowed (at run time,
 * only the columns read when tracked, with the same types), functions and
 * operators only unqualified or in pg_catalog, and no subquery.
 */
static bool
RawCheckWalker(Node *node, RawCheckContext *ctx)
{
	if (node == NULL)
		return false;
	switch (nodeTag(node))
	{
		case T_SubLink:
			Refuse(ctx->argname, "must not contain a subquery");
			break;
		case T_ColumnRef:
			{
				ListCell   *lc;

				foreach(lc, ((ColumnRef *) node)->fields)
				{
					const char *name;
					AttrNumber	attnum = InvalidAttrNumber;
					TupleDesc	desc = RelationGetDescr(ctx->rel);
					Oid			type;

					if (!IsA(lfirst(lc), String))
						continue;
					name = strVal(lfirst(lc));
					for (int i = 0; i < desc->natts; i++)
						if (!TupleDescAttr(desc, i)->attisdropped &&
							strcmp(NameStr(TupleDescAttr(desc, i)->attname), name) == 0)
							attnum = i + 1;
					if (attnum == InvalidAttrNumber)
						continue;	/* the table's name, or an error of analysis */
					type = TupleDescAttr(desc, attnum - 1)->atttypid;
					if (!TypeAllowed(type))
						ereport(ERROR,
								errcode(ERRCODE_INVALID_PARAMETER_VALUE),
								errmsg("%s may read only columns of built-in types or enums; column \"%s\" has type %s",
									   ctx->argname, name, format_type_be(type)));
					if (ctx->columns != NULL)
					{
						Oid			tracked;

						if (!TrackedColumnType(ctx->columns, name, &tracked) || tracked != type)
							ereport(ERROR,
									errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
									errmsg("column \"%s\" of tracked table %s has changed since its product_expression was checked",
										   name, RelationGetRelationName(ctx->rel)),
									errhint("Call benefits.track_subscriptions or benefits.track_orders again."));
					}
				}
				return false;
			}
		case T_TypeName:
			{
				TypeName   *tn = (TypeName *) node;
				Oid			type;

				if (tn->pct_type)
					Refuse(ctx->argname, "must not use %TYPE");
				type = LookupTypeNameOid(NULL, tn, true);
				if (OidIsValid(type) && !TypeAllowed(type))
					ereport(ERROR,
							errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							errmsg("%s may use only built-in types and enums, not %s",
								   ctx->argname, format_type_be(type)));
				break;
			}
		case T_FuncCall:
		case T_A_Expr:
			{
				List	   *names = IsA(node, FuncCall) ? ((FuncCall *) node)->funcname : ((A_Expr *) node)->name;

				if (NameOutsideCatalog(names))
					ereport(ERROR,
							errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							errmsg("%s may call only built-in immutable functions and operators; %s is not one",
								   ctx->argname, NameListToString(names)));
				break;
			}
		default:
			break;
	}
	return raw_expression_tree_walker(node, RawCheckWalker, (void *) ctx);
}

/* The raw parse tree of the one expression SQL ("SELECT <expr>") holds. */
static Node *
ParseExpression(const char *sql, const char *argname, Relation rel, Jsonb *columns)
{
	RawCheckContext ctx = {argname, rel, columns};
	List	   *stmts = raw_parser(sql, RAW_PARSE_DEFAULT);
	SelectStmt *select;
	ResTarget  *target;

	if (list_length(stmts) != 1 || !IsA(linitial_node(RawStmt, stmts)->stmt, SelectStmt))
		Refuse(argname, "must be a single SQL expression");
	select = (SelectStmt *) linitial_node(RawStmt, stmts)->stmt;
	if (select->op != SETOP_NONE || select->distinctClause || select->intoClause ||
		select->fromClause || select->whereClause || select->groupClause || select->groupDistinct ||
		select->havingClause || select->windowClause || select->valuesLists ||
		select->sortClause || select->limitOffset || select->limitCount ||
		select->lockingClause || select->withClause || list_length(select->targetList) != 1)
		Refuse(argname, "must be a single SQL expression");
	target = linitial_node(ResTarget, select->targetList);
	if (target->name != NULL || target->indirection != NIL || target->val == NULL ||
		(IsA(target->val, ColumnRef) && IsA(llast(((ColumnRef *) target->val)->fields), A_Star)))
		Refuse(argname, "must be a single SQL expression");
	RawCheckWalker(target->val, &ctx);
	return target->val;
}

/* A built-in type, an enum (not a temporary one), or an array of those. */
static bool
TypeAllowed(Oid typid)
{
	Oid			elem = get_element_type(typid);
	HeapTuple	tuple;
	bool		allowed;

	if (OidIsValid(elem))
		return TypeAllowed(elem);
	tuple = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	if (!HeapTupleIsValid(tuple))
		return false;
	allowed = ((Form_pg_type) GETSTRUCT(tuple))->typnamespace == PG_CATALOG_NAMESPACE ||
		(((Form_pg_type) GETSTRUCT(tuple))->typtype == TYPTYPE_ENUM &&
		 !isAnyTempNamespace(((Form_pg_type) GETSTRUCT(tuple))->typnamespace));
	ReleaseSysCache(tuple);
	return allowed;
}

typedef struct ValidateContext
{
	const char *argname;
	Relation	rel;
	Bitmapset  *attnos;			/* user columns read */
	Oid			refused_function;
} ValidateContext;

/* check_functions_in_node callback: true for a function the expression may not call. */
static bool
FunctionRefused(Oid func_id, void *context)
{
	ValidateContext *ctx = context;

	if (get_func_namespace(func_id) == PG_CATALOG_NAMESPACE &&
		func_volatile(func_id) == PROVOLATILE_IMMUTABLE)
		return false;
	ctx->refused_function = func_id;
	return true;
}

/* Checks the innermost parts first, so the error names what is at fault. */
static bool
ValidateWalker(Node *node, ValidateContext *ctx)
{
	if (node == NULL)
		return false;
	if (!IsA(node, Var) && !IsA(node, SubLink))
		expression_tree_walker(node, ValidateWalker, (void *) ctx);
	switch (nodeTag(node))
	{
		case T_Var:
			{
				Var		   *var = (Var *) node;
				Form_pg_attribute att;

				if (var->varno != 1 || var->varlevelsup != 0 || var->varattno <= 0 ||
					var->varattno > RelationGetDescr(ctx->rel)->natts)
					Refuse(ctx->argname, "may read only the columns of the tracked table (no system column, no whole row)");
				att = TupleDescAttr(RelationGetDescr(ctx->rel), var->varattno - 1);
				if (!TypeAllowed(var->vartype))
					ereport(ERROR,
							errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							errmsg("%s may read only columns of built-in types or enums; column \"%s\" has type %s",
								   ctx->argname, NameStr(att->attname), format_type_be(var->vartype)));
				ctx->attnos = bms_add_member(ctx->attnos, var->varattno);
				return false;
			}
		case T_SubLink:
		case T_SubPlan:
		case T_AlternativeSubPlan:
			Refuse(ctx->argname, "must not contain a subquery");
			break;
		case T_Aggref:
		case T_GroupingFunc:
		case T_WindowFunc:
			Refuse(ctx->argname, "must not use aggregate or window functions");
			break;
		case T_Param:
			Refuse(ctx->argname, "must not use parameters");
			break;
		case T_List:
		case T_CaseWhen:
			break;
		default:
			if (!TypeAllowed(exprType(node)))
				ereport(ERROR,
						errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("%s may use only built-in types and enums, not %s",
							   ctx->argname, format_type_be(exprType(node))));
			break;
	}
	if (check_functions_in_node(node, FunctionRefused, ctx))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("%s may call only built-in immutable functions and operators; %s is not one",
					   ctx->argname, format_procedure(ctx->refused_function)));
	return false;
}

/*
 * Parses and analyzes the expression against REL and checks every rule;
 * returns the analyzed expression, the parse state (for the privilege check)
 * and the user columns it reads.
 */
static Expr *
AnalyzeExpression(Relation rel, const char *text, const char *argname, Jsonb *columns,
				  ParseState **pstate_out, Bitmapset **attnos)
{
	char	   *sql = psprintf(EXPR_PREFIX "%s\n", text);
	ErrorContextCallback errcb;
	ParseState *pstate;
	ParseNamespaceItem *nsitem;
	Node	   *raw;
	Node	   *expr;
	ValidateContext ctx = {argname, rel, NULL, InvalidOid};

	errcb.callback = ExprErrorCallback;
	errcb.arg = (void *) text;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	raw = ParseExpression(sql, argname, rel, columns);
	pstate = make_parsestate(NULL);
	pstate->p_sourcetext = sql;
	nsitem = addRangeTableEntryForRelation(pstate, rel, AccessShareLock, NULL, false, true);
	addNSItemToQuery(pstate, nsitem, true, true, true);
	expr = transformExpr(pstate, raw, EXPR_KIND_SELECT_TARGET);
	if (exprType(expr) == UNKNOWNOID)
		expr = coerce_type(pstate, expr, UNKNOWNOID, TEXTOID, -1,
						   COERCION_IMPLICIT, COERCE_IMPLICIT_CAST, -1);
	assign_expr_collations(pstate, expr);

	error_context_stack = errcb.previous;

	if (pstate->p_hasSubLinks)
		Refuse(argname, "must not contain a subquery");
	if (pstate->p_hasAggs || pstate->p_hasWindowFuncs)
		Refuse(argname, "must not use aggregate or window functions");
	if (pstate->p_hasTargetSRFs || expression_returns_set(expr))
		Refuse(argname, "must not use set-returning functions");
	ValidateWalker(expr, &ctx);
	if (contain_mutable_functions(expr))
		Refuse(argname, "must be immutable: it may not depend on the time, settings or other rows");
	if (!TrackIdTypeAccepted(exprType(expr)))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("%s must yield text, an integer or a uuid, not %s",
					   argname, format_type_be(exprType(expr))),
				errhint("Take a JSON value as text with ->>, for example items->'data'->0->'price'->>'product'."));
	*pstate_out = pstate;
	*attnos = ctx.attnos;
	return (Expr *) expr;
}

char *
TrackExpressionPrepare(Relation rel, const char *text, const char *argname, Jsonb **columns)
{
	ParseState *pstate;
	Bitmapset  *attnos;
	Expr	   *expr = AnalyzeExpression(rel, text, argname, NULL, &pstate, &attnos);
	StringInfoData json;
	int			attno = -1;
	bool		first = true;

	/*
	 * The caller's own privileges must evaluate it, as SELECT (expr) FROM
	 * source LIMIT 0 would: SELECT on the columns, EXECUTE on the functions.
	 */
	ExecCheckRTPerms(pstate->p_rtable, true);
	(void) ExecInitExpr(expression_planner(expr), NULL);

	initStringInfo(&json);
	appendStringInfoChar(&json, '{');
	while ((attno = bms_next_member(attnos, attno)) >= 0)
	{
		Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), attno - 1);

		if (!first)
			appendStringInfoString(&json, ", ");
		escape_json(&json, NameStr(att->attname));
		appendStringInfo(&json, ": %u", att->atttypid);
		first = false;
	}
	appendStringInfoChar(&json, '}');
	*columns = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json.data)));

	return deparse_expression((Node *) expr,
							  deparse_context_for(RelationGetRelationName(rel), RelationGetRelid(rel)),
							  false, false);
}

/*
 * The trigger's cached form of the last expression it evaluated: rebuilt
 * when the expression, the role or the table changes (a relcache callback
 * clears it on any change of the table, its columns or its privileges).
 */
typedef struct ExprCache
{
	bool		valid;
	Oid			relid;
	Oid			role;
	char	   *text;
	Expr	   *planned;
	Oid			result_type;
	MemoryContext context;
} ExprCache;

static ExprCache Cache;

static void
ExprCacheInvalidate(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == Cache.relid)
		Cache.valid = false;
}

/* The type a column read by the expression had when it was tracked, by name. */
static bool
TrackedColumnType(Jsonb *columns, const char *name, Oid *type)
{
	JsonbValue *v = columns && JB_ROOT_IS_OBJECT(columns)
		? getKeyJsonValueFromContainer(&columns->root, name, strlen(name), NULL) : NULL;

	if (v == NULL || v->type != jbvNumeric)
		return false;
	*type = (Oid) DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(v->val.numeric)));
	return true;
}

static void
ColumnChanged(Relation rel, const char *column)
{
	ereport(ERROR,
			errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			errmsg("column \"%s\" of tracked table %s has changed since its product_expression was checked",
				   column, RelationGetRelationName(rel)),
			errhint("Call benefits.track_subscriptions or benefits.track_orders again."));
}

/* Runs as the tracking role: re-checks and caches the expression. */
static void
BuildCache(Relation rel, const char *text, Oid role, Jsonb *columns)
{
	static bool registered = false;
	TupleDesc	desc = RelationGetDescr(rel);
	ParseState *pstate;
	Bitmapset  *attnos;
	Expr	   *expr;
	Expr	   *planned;
	MemoryContext old;
	int			attno = -1;

	Cache.valid = false;
	Cache.relid = RelationGetRelid(rel);
	if (!registered)
	{
		CacheRegisterRelcacheCallback(ExprCacheInvalidate, (Datum) 0);
		registered = true;
	}

	/*
	 * Every column the expression read when it was checked still has its
	 * type, so the text parses as it did (no user-defined type can come in
	 * through a changed column) ...
	 */
	if (columns == NULL || !JB_ROOT_IS_OBJECT(columns))
		elog(ERROR, "tracked table %s has a product_expression without its columns",
			 RelationGetRelationName(rel));
	{
		JsonbIterator *it = JsonbIteratorInit(&columns->root);
		JsonbValue	v;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			char	   *name;
			Oid			type;
			bool		found = false;

			if (tok != WJB_KEY)
				continue;
			name = pnstrdup(v.val.string.val, v.val.string.len);
			if (!TrackedColumnType(columns, name, &type))
				ColumnChanged(rel, name);
			for (int i = 0; i < desc->natts; i++)
			{
				Form_pg_attribute att = TupleDescAttr(desc, i);

				if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
				{
					found = att->atttypid == type;
					break;
				}
			}
			if (!found)
				ColumnChanged(rel, name);
		}
	}

	/* ... and it reads no other column, and passes every rule again. */
	expr = AnalyzeExpression(rel, text, "product_expression", columns, &pstate, &attnos);
	while ((attno = bms_next_member(attnos, attno)) >= 0)
	{
		Form_pg_attribute att = TupleDescAttr(desc, attno - 1);
		Oid			type;

		if (!TrackedColumnType(columns, NameStr(att->attname), &type) || type != att->atttypid)
			ColumnChanged(rel, NameStr(att->attname));
	}
	ExecCheckRTPerms(pstate->p_rtable, true);
	planned = expression_planner(expr);

	if (Cache.context == NULL)
		Cache.context = AllocSetContextCreate(CacheMemoryContext, "benefits product_expression",
											  ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(Cache.context);
	old = MemoryContextSwitchTo(Cache.context);
	Cache.planned = copyObject(planned);
	Cache.text = pstrdup(text);
	MemoryContextSwitchTo(old);
	Cache.role = role;
	Cache.result_type = exprType((Node *) planned);
	Cache.valid = true;
}

char *
TrackExpressionValue(Relation rel, const char *text, Oid role, Jsonb *columns, HeapTuple row)
{
	Oid			saved_user;
	int			saved_context;
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext work;
	char	   *result = NULL;

	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(role)))
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("the role that tracked table %s with a product_expression no longer exists",
					   RelationGetRelationName(rel)),
				errhint("Call benefits.track_subscriptions or benefits.track_orders again."));

	GetUserIdAndSecContext(&saved_user, &saved_context);
	SetUserIdAndSecContext(role, saved_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);

	if (!Cache.valid || Cache.relid != RelationGetRelid(rel) || Cache.role != role ||
		strcmp(Cache.text, text) != 0)
		BuildCache(rel, text, role, columns);

	work = AllocSetContextCreate(caller, "benefits product_expression evaluation", ALLOCSET_SMALL_SIZES);
	MemoryContextSwitchTo(work);
	{
		ExprState  *state = ExecInitExpr(Cache.planned, NULL);
		ExprContext *econtext = CreateStandaloneExprContext();
		TupleTableSlot *slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsHeapTuple);
		Datum		value;
		bool		isnull;

		ExecStoreHeapTuple(row, slot, false);
		econtext->ecxt_scantuple = slot;
		value = ExecEvalExprSwitchContext(state, econtext, &isnull);
		if (!isnull)
		{
			Oid			output;
			bool		varlena;
			char	   *out;

			getTypeOutputInfo(Cache.result_type, &output, &varlena);
			out = OidOutputFunctionCall(output, value);
			result = MemoryContextStrdup(caller, out);
		}
		ExecDropSingleTupleTableSlot(slot);
		FreeExprContext(econtext, true);
	}
	MemoryContextSwitchTo(caller);
	MemoryContextDelete(work);

	SetUserIdAndSecContext(saved_user, saved_context);
	return result;
}
