/*
 * properties.h — reading and writing benefit properties (properties.c), for
 * the type files that validate and normalize them.
 *
 * A type's normalize function reads the caller's object through the Prop*At
 * and PropField helpers, which raise SQLSTATE 22023 naming the JSON path,
 * and pushes the normalized object's members through the PropPut* helpers.
 */
#ifndef BENEFITS_PROPERTIES_H
#define BENEFITS_PROPERTIES_H

#include "postgres.h"

#include "utils/jsonb.h"
#include "utils/uuid.h"

#define PROPERTY_ERROR	errcode(ERRCODE_INVALID_PARAMETER_VALUE)

/* Largest integer every JSON client reads exactly (2^53 - 1). */
#define MAX_SAFE_INTEGER		INT64CONST(9007199254740991)

/* State of one normalization: whose benefit it is and the output built so far. */
typedef struct PropertiesState
{
	pg_uuid_t	organization_id;
	const char *hint;			/* added to unknown-key errors, or NULL */
	JsonbParseState *out;
} PropertiesState;

/* Parses a uuid without raising: canonical 8-4-4-4-12 form or 32 hex digits. */
extern bool PropParseUuid(const char *s, pg_uuid_t *result);
/* Is s one of the NULL-terminated list; the list as "a, b, c". */
extern bool PropInList(const char *s, const char *const *list);
extern char *PropJoinList(const char *const *list);

/* Reading: NULL for an absent or JSON-null key; the *At forms raise naming path. */
extern JsonbValue *PropField(JsonbContainer *obj, const char *key);
extern JsonbValue *PropRequiredField(JsonbContainer *obj, const char *path, const char *key);
extern void PropCheckKeys(PropertiesState *state, JsonbContainer *obj, const char *path,
						  const char *const *known);
extern bool PropIsObject(JsonbValue *v);
extern bool PropIsArray(JsonbValue *v);
extern JsonbContainer *PropObjectAt(JsonbValue *v, const char *path);
extern JsonbContainer *PropNonEmptyArrayAt(JsonbValue *v, const char *path, int max);
extern char *PropStringOf(JsonbValue *v);
extern bool PropBoolAt(JsonbValue *v, const char *path);
extern bool PropOptionalBool(JsonbContainer *obj, const char *path, const char *key, bool dflt);
extern int64 PropIntegerAt(JsonbValue *v, const char *path, int64 min, int64 max);
extern pg_uuid_t PropUuidAt(JsonbValue *v, const char *path);

/* Writing the normalized object. */
extern void PropPutKey(PropertiesState *state, const char *key);
extern void PropPutString(PropertiesState *state, JsonbIteratorToken token, const char *s);
extern void PropPutNull(PropertiesState *state);
extern void PropPutBool(PropertiesState *state, bool b);
extern void PropPutInteger(PropertiesState *state, int64 i);
extern void PropPutKeyString(PropertiesState *state, const char *key, const char *s);

/* Benefit metadata: an object of short keys and scalar values (22023 otherwise). */
extern void PropCheckMetadata(Jsonb *metadata);

#endif
