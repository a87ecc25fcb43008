/*
 * xact_queue.c — work a row trigger leaves for the end of its statement.
 *
 * The engine's row triggers queue work (activations, webhook events) that
 * the statement trigger grants_sync_events does for the whole statement at
 * once.  The queues must follow the transaction: what a rolled-back
 * subtransaction queued is dropped with it, and nothing may be left when the
 * transaction commits, which would mean the statement trigger did not run.
 * A statement running inside a subtransaction takes only what its own level
 * (or a deeper one) queued: work of an enclosing statement, done there and
 * then rolled back with the subtransaction, would be lost.
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/memutils.h"

#include "xact_queue.h"

static void
XactQueueXactCallback(XactEvent event, void *arg)
{
	XactQueue  *queue = (XactQueue *) arg;

	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			if (queue->n > 0)
				ereport(ERROR,
						errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						errmsg("%d %s were left unprocessed at commit", queue->n, queue->what),
						errhint("The statement trigger grants_sync_events of benefits.subscriptions and "
								"benefits.orders must stay enabled with grants_sync."));
			break;
		default:
			/* Commit or abort: the entries lived in TopTransactionContext. */
			queue->entries = NULL;
			queue->levels = NULL;
			queue->n = queue->max = 0;
			break;
	}
}

static void
XactQueueSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	XactQueue  *queue = (XactQueue *) arg;
	int			level = GetCurrentTransactionNestLevel();

	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		int			keep = 0;

		for (int i = 0; i < queue->n; i++)
			if (queue->levels[i] < level)
			{
				if (keep != i)
					memcpy(queue->entries + keep * queue->entry_size,
						   queue->entries + i * queue->entry_size, queue->entry_size);
				queue->levels[keep++] = queue->levels[i];
			}
		queue->n = keep;
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		for (int i = 0; i < queue->n; i++)
			if (queue->levels[i] >= level)
				queue->levels[i] = level - 1;
	}
}

void *
XactQueueAppend(XactQueue *queue)
{
	void	   *entry;

	if (!queue->registered)
	{
		RegisterXactCallback(XactQueueXactCallback, queue);
		RegisterSubXactCallback(XactQueueSubXactCallback, queue);
		queue->registered = true;
	}
	if (queue->n == queue->max)
	{
		int			newmax = Max(queue->max * 2, 64);

		if (queue->entries)
		{
			queue->entries = repalloc(queue->entries, queue->entry_size * newmax);
			queue->levels = repalloc(queue->levels, sizeof(int) * newmax);
		}
		else
		{
			queue->entries = MemoryContextAlloc(TopTransactionContext, queue->entry_size * newmax);
			queue->levels = MemoryContextAlloc(TopTransactionContext, sizeof(int) * newmax);
		}
		queue->max = newmax;
	}
	entry = queue->entries + queue->n * queue->entry_size;
	memset(entry, 0, queue->entry_size);
	queue->levels[queue->n++] = GetCurrentTransactionNestLevel();
	return entry;
}

void *
XactQueueTake(XactQueue *queue, int *n)
{
	int			level = GetCurrentTransactionNestLevel();
	char	   *copy = palloc(queue->entry_size * Max(queue->n, 1));
	int			taken = 0,
				keep = 0;

	for (int i = 0; i < queue->n; i++)
	{
		char	   *entry = queue->entries + i * queue->entry_size;

		if (queue->levels[i] >= level)
			memcpy(copy + taken++ * queue->entry_size, entry, queue->entry_size);
		else
		{
			if (keep != i)
				memcpy(queue->entries + keep * queue->entry_size, entry, queue->entry_size);
			queue->levels[keep++] = queue->levels[i];
		}
	}
	queue->n = keep;
	*n = taken;
	return copy;
}
