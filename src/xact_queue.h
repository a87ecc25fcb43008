/*
 * xact_queue.h — work a row trigger leaves for the end of its statement,
 * scoped to the transaction (xact_queue.c).
 */
#ifndef BENEFITS_XACT_QUEUE_H
#define BENEFITS_XACT_QUEUE_H

#include "postgres.h"

/*
 * A queue of fixed-size entries in TopTransactionContext.  Each entry
 * remembers the subtransaction level that queued it: a rolled-back
 * subtransaction drops its entries, a committed one hands them to its
 * parent.  Entries left at commit raise an error naming what they are.
 */
typedef struct XactQueue
{
	const char *what;			/* "webhook events of grant changes", ... */
	Size		entry_size;
	char	   *entries;
	int		   *levels;
	int			n;
	int			max;
	bool		registered;
} XactQueue;

#define XACT_QUEUE_INIT(type, what) {(what), sizeof(type), NULL, NULL, 0, 0, false}

/* A new zeroed entry at the end of the queue, to fill in. */
extern void *XactQueueAppend(XactQueue *queue);
/*
 * The entries queued at the current subtransaction level or deeper (a copy
 * in the current memory context), taken off the queue; those of enclosing
 * levels stay for their own statement.
 */
extern void *XactQueueTake(XactQueue *queue, int *n);

#endif
