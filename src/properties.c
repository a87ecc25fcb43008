/*
 * properties.c — the shared parts of validating and normalizing
 * benefits.properties: reading a JSON object by path, with an error naming
 * the path for anything unexpected, and writing the normalized object.
 *
 * Each benefit type's own rules are in its type file (type_*.c), which the
 * registry (benefit_types.c) calls with a PropertiesState.  Every key is
 * checked before a benefit is written: anything not understood, including an
 * unknown key, raises SQLSTATE 22023 with a message naming the JSON path
 * (properties.repositories[1].permission).  Array indexes in paths count
 * from 0, as in jsonb's own operators.  What comes out is the normalized form
 * the grant engine, the worker and the portal rely on, with every optional
 * key present (null when absent).
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/uuid.h"

#include "properties.h"

/* Parses a uuid without raising: canonical 8-4-4-4-12 form or 32 hex digits. */
bool
PropParseUuid(const char *s, pg_uuid_t *result)
{
	size_t		len = strlen(s);
	int			nibble = 0;

	if (len != 36 && len != 32)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		char		c = s[i];
		int			digit;

		if (len == 36 && (i == 8 || i == 13 || i == 18 || i == 23))
		{
			if (c != '-')
				return false;
			continue;
		}
		if (c >= '0' && c <= '9')
			digit = c - '0';
		else if (c >= 'a' && c <= 'f')
			digit = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			digit = c - 'A' + 10;
		else
			return false;
		if (nibble % 2 == 0)
			result->data[nibble / 2] = (unsigned char) (digit << 4);
		else
			result->data[nibble / 2] |= (unsigned char) digit;
		nibble++;
	}
	return nibble == 32;
}

bool
PropInList(const char *s, const char *const *list)
{
	for (int i = 0; list[i] != NULL; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

char *
PropJoinList(const char *const *list)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; list[i] != NULL; i++)
		appendStringInfo(&buf, "%s%s", i > 0 ? ", " : "", list[i]);
	return buf.data;
}

/* ---- Reading the input ---- */

/* The value of key in obj; NULL when the key is absent or JSON null. */
JsonbValue *
PropField(JsonbContainer *obj, const char *key)
{
	JsonbValue *v = getKeyJsonValueFromContainer(obj, key, strlen(key), NULL);

	if (v != NULL && v->type == jbvNull)
		return NULL;
	return v;
}

JsonbValue *
PropRequiredField(JsonbContainer *obj, const char *path, const char *key)
{
	JsonbValue *v = PropField(obj, key);

	if (v == NULL)
		ereport(ERROR, PROPERTY_ERROR, errmsg("%s.%s is required", path, key));
	return v;
}

/* Refuses any key of obj not in known, naming it: a typo must not pass silently. */
void
PropCheckKeys(PropertiesState *state, JsonbContainer *obj, const char *path,
		  const char *const *known)
{
	JsonbIterator *it = JsonbIteratorInit(obj);
	JsonbValue	v;
	JsonbIteratorToken token;

	while ((token = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;

		if (token != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		if (!PropInList(key, known))
			ereport(ERROR,
					PROPERTY_ERROR,
					errmsg("%s.%s is not a recognized key", path, key),
					errdetail("Recognized keys of %s: %s.", path, PropJoinList(known)),
					state->hint ? errhint("%s", state->hint) : 0);
	}
}

bool
PropIsObject(JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
}

bool
PropIsArray(JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data);
}

JsonbContainer *
PropObjectAt(JsonbValue *v, const char *path)
{
	if (!PropIsObject(v))
		ereport(ERROR, PROPERTY_ERROR, errmsg("%s must be a JSON object", path));
	return v->val.binary.data;
}

/*
 * The elements of a non-empty JSON array at path, of at most max elements:
 * each element becomes work for every grant (jobs, signed URLs), and
 * validating them compares each with the ones before it.
 */
JsonbContainer *
PropNonEmptyArrayAt(JsonbValue *v, const char *path, int max)
{
	if (!PropIsArray(v) || JsonContainerSize(v->val.binary.data) == 0)
		ereport(ERROR, PROPERTY_ERROR, errmsg("%s must be a non-empty JSON array", path));
	if (JsonContainerSize(v->val.binary.data) > (uint32) max)
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("%s must have at most %d elements", path, max),
				errdetail("It has %u.", (unsigned int) JsonContainerSize(v->val.binary.data)));
	return v->val.binary.data;
}

/* A palloc'd copy of a JSON string, or NULL when v is not a string. */
char *
PropStringOf(JsonbValue *v)
{
	if (v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

bool
PropBoolAt(JsonbValue *v, const char *path)
{
	if (v->type != jbvBool)
		ereport(ERROR, PROPERTY_ERROR, errmsg("%s must be a boolean", path));
	return v->val.boolean;
}

bool
PropOptionalBool(JsonbContainer *obj, const char *path, const char *key, bool dflt)
{
	JsonbValue *v = PropField(obj, key);

	return v == NULL ? dflt : PropBoolAt(v, psprintf("%s.%s", path, key));
}

static int
NumericCompare(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp,
											 NumericGetDatum(a),
											 NumericGetDatum(b)));
}

/*
 * An integer in [min, max] at path.  1 and 1.0 are the same number in JSON, so
 * both are accepted; 1.5, "1" and true are not.
 */
int64
PropIntegerAt(JsonbValue *v, const char *path, int64 min, int64 max)
{
	const char *kind = min > 0 ? "a positive integer" : "a non-negative integer";
	Numeric		n;
	Numeric		truncated;

	if (v->type != jbvNumeric)
		ereport(ERROR, PROPERTY_ERROR, errmsg("%s must be %s", path, kind));
	n = v->val.numeric;
	truncated = DatumGetNumeric(DirectFunctionCall2(numeric_trunc,
													NumericGetDatum(n),
													Int32GetDatum(0)));
	if (NumericCompare(n, truncated) != 0 ||
		NumericCompare(n, int64_to_numeric(min)) < 0)
		ereport(ERROR, PROPERTY_ERROR, errmsg("%s must be %s", path, kind));
	if (NumericCompare(n, int64_to_numeric(max)) > 0)
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("%s must be %s", path, kind),
				errdetail("The largest accepted value is " INT64_FORMAT ".", max));
	return DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(n)));
}

/* A JSON string holding a uuid at path. */
pg_uuid_t
PropUuidAt(JsonbValue *v, const char *path)
{
	char	   *s = PropStringOf(v);
	pg_uuid_t	uuid;

	if (s == NULL || !PropParseUuid(s, &uuid))
		ereport(ERROR, PROPERTY_ERROR, errmsg("%s must be a uuid given as a JSON string", path));
	return uuid;
}

/* ---- Building the output ---- */

void
PropPutKey(PropertiesState *state, const char *key)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) key;
	v.val.string.len = strlen(key);
	pushJsonbValue(&state->out, WJB_KEY, &v);
}

/* A string, or null when s is NULL; token is WJB_VALUE or WJB_ELEM. */
void
PropPutString(PropertiesState *state, JsonbIteratorToken token, const char *s)
{
	JsonbValue	v;

	if (s == NULL)
		v.type = jbvNull;
	else
	{
		v.type = jbvString;
		v.val.string.val = (char *) s;
		v.val.string.len = strlen(s);
	}
	pushJsonbValue(&state->out, token, &v);
}

void
PropPutNull(PropertiesState *state)
{
	JsonbValue	v;

	v.type = jbvNull;
	pushJsonbValue(&state->out, WJB_VALUE, &v);
}

void
PropPutBool(PropertiesState *state, bool b)
{
	JsonbValue	v;

	v.type = jbvBool;
	v.val.boolean = b;
	pushJsonbValue(&state->out, WJB_VALUE, &v);
}

void
PropPutInteger(PropertiesState *state, int64 i)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(i);
	pushJsonbValue(&state->out, WJB_VALUE, &v);
}

void
PropPutKeyString(PropertiesState *state, const char *key, const char *s)
{
	PropPutKey(state, key);
	PropPutString(state, WJB_VALUE, s);
}


/*
 * Benefit metadata, as Polar's: an object of at most 50 keys of 1 to 40
 * characters whose values are strings of at most 500 characters, numbers or
 * booleans.
 */
void
PropCheckMetadata(Jsonb *metadata)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken token;
	int			nkeys = 0;
	char	   *key = NULL;

	if (!JB_ROOT_IS_OBJECT(metadata))
		ereport(ERROR, PROPERTY_ERROR, errmsg("metadata must be a JSON object"));
	it = JsonbIteratorInit(&metadata->root);
	while ((token = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (token == WJB_KEY)
		{
			int			len = pg_mbstrlen_with_len(v.val.string.val, v.val.string.len);

			key = pnstrdup(v.val.string.val, v.val.string.len);
			if (++nkeys > 50)
				ereport(ERROR, PROPERTY_ERROR, errmsg("metadata must have at most 50 keys"));
			if (len < 1 || len > 40)
				ereport(ERROR, PROPERTY_ERROR,
						errmsg("metadata keys must be 1 to 40 characters"),
						errdetail("The key \"%s\" has %d.", key, len));
		}
		else if (token == WJB_VALUE)
		{
			if (v.type == jbvString &&
				pg_mbstrlen_with_len(v.val.string.val, v.val.string.len) > 500)
				ereport(ERROR, PROPERTY_ERROR, errmsg("metadata.%s must be at most 500 characters", key));
			if (v.type != jbvString && v.type != jbvNumeric && v.type != jbvBool)
				ereport(ERROR, PROPERTY_ERROR,
						errmsg("metadata.%s must be a string, a number or a boolean", key));
		}
	}
}
