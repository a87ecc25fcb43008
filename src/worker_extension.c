/*
 * worker_extension.c — what the worker may touch in a database: only the
 * objects of an installed `benefits` extension.
 *
 * The worker runs as the bootstrap superuser.  Before it calls a function or
 * reads or writes a table in a database it serves, it checks that:
 *   - the extension `benefits` is installed there, owned by a superuser;
 *   - the schema named `benefits` is that extension's schema and is owned by
 *     a superuser (so only a role a superuser granted CREATE on it could
 *     have created objects there, and nobody can rename it away and put a
 *     look-alike in its place);
 *   - the relation or function is a member of that extension.
 * A database where anyone can create a schema named `benefits` (the extension
 * not installed, or dropped) therefore cannot make the worker run a planted
 * function or send a planted outbox row.
 *
 * Concurrency: everything here is backend-local.  The extension owner's check
 * is cached for one extension OID (a DROP and CREATE EXTENSION gives a new
 * OID); the schema and membership checks are repeated at every call, from
 * the syscache and pg_depend's index.  Each transaction that asks locks the
 * extension itself in share mode first, so a concurrent DROP EXTENSION waits
 * for it, or it for the DROP, and the two never deadlock on the extension's
 * members; a caller also locks the relations it then uses.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "storage/lmgr.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "worker.h"

#define EXTENSION_NAME "benefits"

/* The extension last found trustworthy, and its schema. */
static Oid	trusted_extension = InvalidOid;
static Oid	trusted_schema = InvalidOid;
/* The extension last warned about, so a refusal is logged once. */
static Oid	warned_extension = InvalidOid;

/* An extension's owner and schema, from pg_extension (no syscache covers it). */
static void
ExtensionOwnerAndSchema(Oid extension, Oid *owner, Oid *schema)
{
	Relation	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;

	*owner = *schema = InvalidOid;
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(extension));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		*owner = ((Form_pg_extension) GETSTRUCT(tuple))->extowner;
		*schema = ((Form_pg_extension) GETSTRUCT(tuple))->extnamespace;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
}

/* The owner of a schema, or InvalidOid when there is none of that OID. */
static Oid
SchemaOwner(Oid schema)
{
	HeapTuple	tuple = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(schema));
	Oid			owner;

	if (!HeapTupleIsValid(tuple))
		return InvalidOid;
	owner = ((Form_pg_namespace) GETSTRUCT(tuple))->nspowner;
	ReleaseSysCache(tuple);
	return owner;
}

/* Log, once per extension, why the worker will not act in this database. */
static bool
Refuse(Oid extension, const char *why)
{
	if (extension != warned_extension)
	{
		ereport(WARNING,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("benefits: the worker will not act in database \"%s\"",
						get_database_name(MyDatabaseId)),
				 errdetail("%s", why),
				 errhint("Install the extension as a superuser into a schema \"benefits\" that a superuser owns.")));
		warned_extension = extension;
	}
	trusted_extension = InvalidOid;
	return false;
}

/*
 * Lock the extension against DROP EXTENSION for the rest of the transaction
 * and tell whether it is still installed.  DROP EXTENSION locks the
 * extension before any of its members, so a worker that holds this lock
 * before it touches a member never waits for a member the DROP has locked
 * while the DROP waits for one the worker has: the DROP waits for the
 * worker's transaction, or the worker for the DROP, and then finds the
 * extension gone.
 */
static bool
ExtensionLocked(Oid extension)
{
	LockDatabaseObject(ExtensionRelationId, extension, 0, AccessShareLock);
	InvalidateCatalogSnapshot();	/* see a DROP we may have waited for */
	return get_extension_oid(EXTENSION_NAME, true) == extension;
}

/*
 * Is the extension installed here, and are it and its schema owned by
 * superusers?  Nothing is logged when it is simply not installed.  It locks
 * the extension (ExtensionLocked; again in one transaction, a local no-op):
 * the worker's units call it before they touch any of the extension's
 * relations.
 */
bool
WorkerExtensionReady(void)
{
	Oid			extension = get_extension_oid(EXTENSION_NAME, true);
	Oid			owner;
	Oid			schema;

	if (!OidIsValid(extension) || !ExtensionLocked(extension))
	{
		trusted_extension = InvalidOid;
		return false;
	}
	if (extension == trusted_extension)
		schema = trusted_schema;
	else
	{
		ExtensionOwnerAndSchema(extension, &owner, &schema);
		if (!superuser_arg(owner))
			return Refuse(extension, "The extension \"benefits\" is not owned by a superuser.");
	}
	if (!OidIsValid(schema) || get_namespace_oid(EXTENSION_NAME, true) != schema)
		return Refuse(extension, "The schema named \"benefits\" is not the extension's schema.");
	if (!superuser_arg(SchemaOwner(schema)))
		return Refuse(extension, "The schema \"benefits\" is not owned by a superuser.");
	trusted_extension = extension;
	trusted_schema = schema;
	return true;
}

/*
 * The OID of the extension's relation of this name, or InvalidOid when the
 * extension is not ready or no member relation has the name.
 */
Oid
WorkerExtensionRelation(const char *name)
{
	Oid			relid;

	if (!WorkerExtensionReady())
		return InvalidOid;
	relid = get_relname_relid(name, trusted_schema);
	if (!OidIsValid(relid) || getExtensionOfObject(RelationRelationId, relid) != trusted_extension)
		return InvalidOid;
	return relid;
}

/*
 * Is benefits.NAME (any arguments, one function of that name) a function of
 * the extension?  Functions added by a later version are simply absent.
 */
bool
WorkerExtensionFunction(const char *name)
{
	Oid			fn;

	if (!WorkerExtensionReady())
		return false;
	fn = LookupFuncName(list_make2(makeString(EXTENSION_NAME), makeString(pstrdup(name))), -1, NULL, true);
	return OidIsValid(fn) && getExtensionOfObject(ProcedureRelationId, fn) == trusted_extension;
}
