/*
 * activations.c — subscriptions that gain access, granted together at the
 * end of the statement that changed them.
 *
 * The subscription row trigger does not grant the benefits of a
 * subscription whose new status (or insertion) grants them: it queues the
 * subscription here, and the statement trigger (grants_sync_events,
 * events.c) grants the queue before writing the statement's events.  So do
 * the order triggers and the subscription delete trigger, first.  A statement that activates thousands of
 * subscriptions then writes each benefit's grants for all of them in one
 * set-based statement (grants_batch.c) instead of several statements per
 * grant.  Any other change a row trigger makes (a revoke, a product change)
 * first grants what is queued, so changes still apply in row order.
 *
 * The batch takes the customers' locks in id order, then reads which
 * subscriptions hold no grant yet (only those holding nothing are granted
 * set-based: everything the product attaches is theirs to receive) and the
 * products' benefits.  A subscription with grants already, a customer met
 * twice in the queue, a missing customer and a subscription changed since
 * it was queued take the one-at-a-time path, which re-reads the
 * subscription and gives the same result.  The queue follows the transaction
 * (xact_queue.c).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "benefit_type.h"
#include "engine.h"
#include "trigger_guard.h"
#include "grants.h"
#include "xact_queue.h"

typedef struct Activation
{
	pg_uuid_t	subscription_id;
	pg_uuid_t	customer_id;
	pg_uuid_t	product_id;
} Activation;

static XactQueue queue = XACT_QUEUE_INIT(Activation, "activated subscriptions");

/* Granting in the row trigger once this many are queued bounds the memory. */
#define ACTIVATIONS_FLUSH_AT 50000

/* Queues a subscription whose status now grants its product's benefits. */
void
ActivationsQueue(pg_uuid_t subscription_id, pg_uuid_t customer_id, pg_uuid_t product_id)
{
	Activation *a = XactQueueAppend(&queue);

	a->subscription_id = subscription_id;
	a->customer_id = customer_id;
	a->product_id = product_id;
	if (queue.n >= ACTIVATIONS_FLUSH_AT)
		ActivationsFlush();
}

/* A uuid[] datum of one field of every activation. */
static Datum
ActivationUuids(const Activation *acts, int n, size_t offset)
{
	pg_uuid_t  *uuids = palloc(sizeof(pg_uuid_t) * Max(n, 1));

	for (int i = 0; i < n; i++)
		uuids[i] = *(const pg_uuid_t *) ((const char *) &acts[i] + offset);
	return BenefitsUuidArray(uuids, n);
}

/*
 * Locks the customers, then marks the activations that can be granted
 * set-based: customer present and met first here, the subscription still
 * active or trialing with the customer and product it was queued with (a
 * later statement nested in this one may have changed it), no grant of the
 * subscription in any state.
 */
static bool *
LockAndClassify(const Activation *acts, int n)
{
	static SPIPlanPtr plan;
	Oid			types[3] = {UUIDARRAYOID, UUIDARRAYOID, UUIDARRAYOID};
	Datum		values[3];
	bool	   *fresh = palloc0(sizeof(bool) * n);

	values[0] = ActivationUuids(acts, n, offsetof(Activation, subscription_id));
	values[1] = ActivationUuids(acts, n, offsetof(Activation, customer_id));
	values[2] = ActivationUuids(acts, n, offsetof(Activation, product_id));
	GrantLockCustomers(values[1]);
	BenefitsExec(BenefitsPlan(&plan,
							"WITH q AS (SELECT * FROM ROWS FROM (pg_catalog.unnest($1::uuid[]),"
							"           pg_catalog.unnest($2::uuid[]), pg_catalog.unnest($3::uuid[]))"
							"           WITH ORDINALITY AS q(subscription_id, customer_id, product_id, n))"
							" SELECT q.n::int4, c.id IS NOT NULL"
							"        AND pg_catalog.row_number() OVER (PARTITION BY q.customer_id ORDER BY q.n) = 1"
							"        AND EXISTS (SELECT 1 FROM benefits.subscriptions s WHERE s.id = q.subscription_id"
							"                    AND s.customer_id = q.customer_id AND s.product_id = q.product_id"
							"                    AND s.status IN ('active', 'trialing'))"
							"        AND NOT EXISTS (SELECT 1 FROM benefits.grants g WHERE g.subscription_id = q.subscription_id)"
							"   FROM q LEFT JOIN benefits.customers c ON c.id = q.customer_id AND c.deleted_at IS NULL",
							3, types),
			   values, NULL, false, 0);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int			row = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));

		fresh[row - 1] = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
	}
	return fresh;
}

/* Orders activation indexes by product, then queue order (qsort_arg). */
static int
CompareByProduct(const void *a, const void *b, void *arg)
{
	const Activation *acts = arg;
	int			ia = *(const int *) a;
	int			ib = *(const int *) b;
	int			cmp = memcmp(&acts[ia].product_id, &acts[ib].product_id, sizeof(pg_uuid_t));

	return cmp != 0 ? cmp : (ia > ib) - (ia < ib);
}

/*
 * Grants every benefit of one product to the fresh activations idx[0..n),
 * benefit by benefit in attachment order (rows [first, last) of the
 * product benefits result); grants[i] receives activation i's grant ids.
 */
static void
GrantProduct(const Activation *acts, const int *idx, int n, SPITupleTable *benefits,
			 uint64 first, uint64 last, pg_uuid_t **grants)
{
	pg_uuid_t  *customers = palloc(sizeof(pg_uuid_t) * n);
	pg_uuid_t  *subscriptions = palloc(sizeof(pg_uuid_t) * n);
	pg_uuid_t  *ids = palloc(sizeof(pg_uuid_t) * n);

	for (int i = 0; i < n; i++)
	{
		customers[i] = acts[idx[i]].customer_id;
		subscriptions[i] = acts[idx[i]].subscription_id;
		grants[idx[i]] = palloc(sizeof(pg_uuid_t) * (last - first));
	}
	for (uint64 r = first; r < last; r++)
	{
		HeapTuple	t = benefits->vals[r];
		bool		isnull;
		GrantBatch	batch;

		batch.benefit_id = DatumGetUuid(SPI_getbinval(t, benefits->tupdesc, 2, &isnull));
		batch.organization_id = DatumGetUuid(SPI_getbinval(t, benefits->tupdesc, 3, &isnull));
		batch.benefit_type = SPI_getvalue(t, benefits->tupdesc, 4);
		batch.benefit_properties = DatumGetJsonbPCopy(SPI_getbinval(t, benefits->tupdesc, 5, &isnull));
		batch.source = GRANT_SOURCE_SUBSCRIPTION;
		batch.n = n;
		batch.customer_ids = customers;
		batch.source_ids = subscriptions;
		batch.grant_ids = ids;
		GrantBatchFresh(&batch);
		for (int i = 0; i < n; i++)
			grants[idx[i]][r - first] = ids[i];
	}
}

/*
 * Grants every queued activation (inside the caller's SPI connection) and
 * queues their benefit_grant.created events in queue order.
 */
void
ActivationsFlush(void)
{
	static SPIPlanPtr benefits_plan;
	Oid			types[1] = {UUIDARRAYOID};
	Datum		values[1];
	int			n;
	Activation *acts;
	bool	   *fresh;
	int		   *idx;
	int			nfresh = 0;
	int		   *ngrants;
	pg_uuid_t **grants;
	SPITupleTable *benefits;
	uint64		row = 0;

	if (queue.n == 0)
		return;
	acts = XactQueueTake(&queue, &n);

	fresh = n > 1 ? LockAndClassify(acts, n) : palloc0(sizeof(bool));
	idx = palloc(sizeof(int) * n);
	for (int i = 0; i < n; i++)
		if (fresh[i])
			idx[nfresh++] = i;
	ngrants = palloc0(sizeof(int) * n);
	grants = palloc0(sizeof(pg_uuid_t *) * n);

	if (nfresh > 0)
	{
		Activation *fresh_acts = palloc(sizeof(Activation) * nfresh);

		qsort_arg(idx, nfresh, sizeof(int), CompareByProduct, acts);
		for (int i = 0; i < nfresh; i++)
			fresh_acts[i] = acts[idx[i]];
		values[0] = ActivationUuids(fresh_acts, nfresh, offsetof(Activation, product_id));
		BenefitsExec(BenefitsPlan(&benefits_plan,
								"SELECT pb.product_id, pb.benefit_id, b.organization_id, b.type, b.properties"
								"  FROM benefits.product_benefits pb JOIN benefits.benefits b ON b.id = pb.benefit_id"
								" WHERE pb.product_id IN (SELECT pg_catalog.unnest($1::uuid[]))"
								"   AND b.deleted_at IS NULL"
								" ORDER BY pb.product_id, pb.position, pb.benefit_id",
								1, types),
				   values, NULL, false, 0);
		benefits = SPI_tuptable;

		/* Both lists are in product order: walk them together. */
		for (int start = 0; start < nfresh;)
		{
			int			end = start;
			uint64		first;
			bool		isnull;

			while (end < nfresh && memcmp(&acts[idx[end]].product_id, &acts[idx[start]].product_id,
										  sizeof(pg_uuid_t)) == 0)
				end++;
			while (row < benefits->numvals &&
				   memcmp(DatumGetUUIDP(SPI_getbinval(benefits->vals[row], benefits->tupdesc, 1, &isnull)),
						  &acts[idx[start]].product_id, sizeof(pg_uuid_t)) < 0)
				row++;
			first = row;
			while (row < benefits->numvals &&
				   memcmp(DatumGetUUIDP(SPI_getbinval(benefits->vals[row], benefits->tupdesc, 1, &isnull)),
						  &acts[idx[start]].product_id, sizeof(pg_uuid_t)) == 0)
				row++;
			GrantProduct(acts, idx + start, end - start, benefits, first, row, grants);
			for (int i = start; i < end; i++)
				ngrants[idx[i]] = (int) (row - first);
			start = end;
		}
	}

	elog(DEBUG1, "benefits: %d activated subscriptions granted set-based, %d one at a time",
		 nfresh, n - nfresh);

	/* Events in queue order; the others one at a time, in their turn. */
	for (int i = 0; i < n; i++)
	{
		if (fresh[i])
			EventsDeferGrants(grants[i], ngrants[i], EVENT_GRANT_CREATED);
		else
			EngineActivateSubscription(acts[i].subscription_id);
	}
}

/* Whether activations are waiting for the statement's end. */
bool
ActivationsPending(void)
{
	return queue.n > 0;
}

PG_FUNCTION_INFO_V1(grants_sync_events);

/*
 * AFTER INSERT OR UPDATE ... FOR EACH STATEMENT on benefits.subscriptions and
 * benefits.orders: grants the subscriptions the statement's row triggers
 * activated (activations.c), then writes the events they queued.
 */
Datum
grants_sync_events(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = TriggerGuard(fcinfo, "grants_sync_events", FIRES_AFTER_STATEMENT, NULL);

	if (!TriggerOnTable(trigdata, "subscriptions") && !TriggerOnTable(trigdata, "orders"))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("grants_sync_events fires only on benefits.subscriptions and benefits.orders")));
	if (!EventsDeferredPending() && !ActivationsPending())
		return PointerGetDatum(NULL);
	BenefitsSpiConnect();
	ActivationsFlush();
	EventsFlushDeferred();
	SPI_finish();
	return PointerGetDatum(NULL);
}
