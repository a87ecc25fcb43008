/*
 * track_expr.h — the product_expression of a tracked table: validated when
 * tracked, evaluated per row by the tracking trigger (track_expr.c; the
 * security reasoning is at the top of track.c).
 */
#ifndef BENEFITS_TRACK_EXPR_H
#define BENEFITS_TRACK_EXPR_H

#include "postgres.h"

#include "access/htup.h"
#include "utils/jsonb.h"
#include "utils/relcache.h"

/*
 * Whether a column of this type can hold an external id: text-like (string
 * category, domains over them included), smallint, integer, bigint or uuid.
 */
extern bool TrackIdTypeAccepted(Oid typid);

/*
 * Validates TEXT as the product expression of REL for the calling role
 * (which must be able to read the columns it uses and execute what it
 * calls) and returns it as deparsed, with *columns set to the columns it
 * reads, {"name": type oid, ...}.  Raises 22023 naming ARGNAME otherwise.
 */
extern char *TrackExpressionPrepare(Relation rel, const char *text, const char *argname,
									Jsonb **columns);

/*
 * The product of ROW (a row of REL): the stored expression TEXT, validated
 * again and evaluated as ROLE, as text; NULL when it yields NULL.
 */
extern char *TrackExpressionValue(Relation rel, const char *text, Oid role, Jsonb *columns,
								  HeapTuple row);

#endif
