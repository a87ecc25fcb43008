/*
 * fulfillment.c — manual fulfillment: complete_fulfillment, which the seller
 * calls once a hand-delivered benefit (a custom benefit with "fulfillment":
 * "manual", type_custom.c) has been delivered.
 *
 * A manual grant waits in state created with grant properties
 * {"fulfillment": "pending"} (benefits.pending_fulfillments lists them).
 * Completing it makes it active, stores the seller's note in its properties
 * ({"fulfillment": "completed", "fulfillment_note": ...}) and writes
 * benefit_grant.updated with the previous properties and the customer's
 * email (email.c), in the caller's transaction.
 *
 * Concurrency: the customer's row is locked first (GrantLockCustomer, the
 * order every grant change takes), then the grant row FOR UPDATE; the state
 * is read after both locks, so of two admins completing the same grant one
 * completes it and the other, having waited, finds it active and is refused.
 * A revoke of the same grant takes the same locks, so a grant revoked first
 * cannot be completed, and one completed first is revoked as usual.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "email.h"
#include "engine.h"
#include "grants.h"

/* The longest note the seller may leave on a grant, in bytes. */
#define FULFILLMENT_NOTE_MAX 10000

PG_FUNCTION_INFO_V1(complete_fulfillment);

/*
 * A note is shown to the customer (portal and webhooks): bounded, and free
 * of control characters other than line breaks and tabs (C0, DEL and, in
 * UTF-8, C1).
 */
static void
CheckNote(const char *note)
{
	size_t		len = strlen(note);
	bool		utf8 = GetDatabaseEncoding() == PG_UTF8;

	if (len > FULFILLMENT_NOTE_MAX)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("note must be at most %d bytes", FULFILLMENT_NOTE_MAX),
				errdetail("Got %zu bytes.", len));
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) note[i];
		bool		control = (c < 0x20 && c != '\n' && c != '\r' && c != '\t') || c == 0x7f ||
			(utf8 && c == 0xc2 && i + 1 < len &&
			 (unsigned char) note[i + 1] >= 0x80 && (unsigned char) note[i + 1] <= 0x9f);

		if (control)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("note must not contain control characters other than line breaks and tabs"));
	}
}

/*
 * Locks the grant (after its customer) and returns its state and fulfillment
 * ("pending", "completed" or NULL for a grant that is not fulfilled by
 * hand); *previous receives its properties.
 */
static char *
LockGrant(Datum grant_id, char **fulfillment, Jsonb **previous)
{
	static SPIPlanPtr customer_plan;
	static SPIPlanPtr grant_plan;
	Oid			types[] = {UUIDOID};
	bool		isnull;
	char	   *state;

	BenefitsExec(BenefitsPlan(&customer_plan,
							  "SELECT customer_id FROM benefits.grants WHERE id = $1", 1, types),
				 &grant_id, NULL, false, 1);
	if (SPI_processed == 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("grant_id %s does not exist", BenefitsUuidText(DatumGetUUIDP(grant_id))));
	GrantLockCustomer(BenefitsResultUuid(0, 1));

	BenefitsExec(BenefitsPlan(&grant_plan,
							  "SELECT state, properties ->> 'fulfillment' AS fulfillment, properties"
							  "  FROM benefits.grants WHERE id = $1 FOR UPDATE",
							  1, types),
				 &grant_id, NULL, false, 1);
	if (SPI_processed == 0)
		elog(ERROR, "could not lock grant");
	state = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
						 SPI_fnumber(SPI_tuptable->tupdesc, "state"));
	*fulfillment = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
								SPI_fnumber(SPI_tuptable->tupdesc, "fulfillment"));
	*previous = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
												 SPI_fnumber(SPI_tuptable->tupdesc, "properties"),
												 &isnull));
	return state;
}

/*
 * SQL: benefits.complete_fulfillment(grant_id, note DEFAULT NULL) — the
 * seller delivered a manual grant: it becomes active with the note, and
 * benefit_grant.updated is written.  Returns the grant row.
 */
Datum
complete_fulfillment(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr complete_plan;
	Datum		grant_id;
	char	   *note = NULL;
	char	   *state;
	char	   *fulfillment;
	Jsonb	   *previous;
	Datum		row;
	bool		isnull;

	BenefitsRequireArgument(fcinfo, 0, "grant_id", ERRCODE_NULL_VALUE_NOT_ALLOWED);
	grant_id = PG_GETARG_DATUM(0);
	if (!PG_ARGISNULL(1))
	{
		note = text_to_cstring(PG_GETARG_TEXT_PP(1));
		CheckNote(note);
	}

	BenefitsSpiConnect();
	state = LockGrant(grant_id, &fulfillment, &previous);
	if (fulfillment == NULL)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("grant %s is not fulfilled by hand", BenefitsUuidText(DatumGetUUIDP(grant_id))),
				errhint("Only grants of benefits with \"fulfillment\": \"manual\" wait to be completed."));
	if (strcmp(state, "revoked") == 0)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("grant %s is revoked", BenefitsUuidText(DatumGetUUIDP(grant_id))),
				errdetail("A revoked grant is no longer waiting for fulfillment."));
	if (strcmp(state, "created") != 0)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("grant %s is already fulfilled", BenefitsUuidText(DatumGetUUIDP(grant_id))));

	{
		Oid			types[] = {UUIDOID, TEXTOID};
		Datum		values[] = {grant_id, note ? CStringGetTextDatum(note) : (Datum) 0};
		char		nulls[] = {' ', note ? ' ' : 'n'};

		BenefitsExec(BenefitsPlan(&complete_plan,
								  "UPDATE benefits.grants g SET state = 'active', error = NULL,"
								  "       properties = g.properties || pg_catalog.jsonb_build_object("
								  "           'fulfillment', 'completed', 'fulfillment_note', $2::text)"
								  " WHERE g.id = $1 RETURNING g",
								  2, types),
					 values, nulls, false, 0);
		if (SPI_processed != 1)
			elog(ERROR, "could not complete grant");
		row = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
								false, -1);
	}
	EventsEnqueueGrant(*DatumGetUUIDP(grant_id), EVENT_GRANT_UPDATED, previous);
	EmailsForGrants(DatumGetUUIDP(grant_id), 1, EMAIL_FULFILLMENT_COMPLETED);
	SPI_finish();
	PG_RETURN_DATUM(row);
}
