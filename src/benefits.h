/*
 * benefits.h — declarations shared by the subsystems of the extension.
 */
#ifndef BENEFITS_H
#define BENEFITS_H

#include "postgres.h"

#define BENEFITS_SCHEMA "benefits"

/* Each subsystem's _PG_init part: settings, shared memory, workers. */
extern void WorkerInit(void);	/* worker_guc.c: the delivery worker */

#endif
