/*
 * properties.c — validation and normalization of benefits.properties.
 *
 * Administrators describe each benefit with a JSON object whose keys depend on
 * the benefit type (README, "Catalog").  Every key is
 * checked here, in C, before a benefit is written: anything we do not
 * understand, including an unknown key, raises SQLSTATE 22023 with a message
 * naming the JSON path (properties.repositories[1].permission).  Array
 * indexes in paths count from 0, as in jsonb's own operators.
 *
 * What comes out is the normalized form the grant engine, the worker and the
 * portal rely on, with every optional key present (null when absent):
 *
 *   license_keys       {"prefix": text|null, "expires": null|{"ttl", "timeframe"},
 *                       "activations": null|{"limit", "enable_customer_admin"},
 *                       "limit_usage": int|null}
 *   github_repository  {"repositories": [{"owner", "name", "permission"}, ...]}
 *                      plus repository_owner/repository_name/permission when
 *                      given in the single form
 *   discord            {"guild_id", "roles": [{"role_id", "name"|null}, ...],
 *                       "kick_member": bool} plus role_id in the single form
 *   downloadable       {"files": [file id, ...], "archived": {file id: bool}}
 *   meter_credits      {"meter_id", "units", "rollover"} plus
 *                      low_balance_threshold when given
 *   custom             {"note": text|null}
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "properties.h"
#include "provider_names.h"

/* A downloadable file is at most 10 GB. */
#define MAX_FILE_SIZE			INT64CONST(10737418240)
/* Largest integer every JSON client reads exactly (2^53 - 1). */
#define MAX_SAFE_INTEGER		INT64CONST(9007199254740991)

#define PROPERTY_ERROR	errcode(ERRCODE_INVALID_PARAMETER_VALUE)

/* Type names callers may use, and the name each is stored as. */
static const struct
{
	const char *name;
	const char *canonical;
}			benefit_type_names[] =
{
	{"license_keys", "license_keys"},
	{"github_repository", "github_repository"},
	{"discord", "discord"},
	{"downloadable", "downloadable"},
	{"downloadables", "downloadable"},
	{"meter_credits", "meter_credits"},
	{"meter_credit", "meter_credits"},
	{"custom", "custom"},
};

static const char *const github_permissions[] =
{"pull", "triage", "push", "maintain", "admin", NULL};

static const char *const expires_timeframes[] = {"day", "month", "year", NULL};

/* State of one normalization: whose benefit it is and the output built so far. */
typedef struct PropertiesState
{
	pg_uuid_t	organization_id;
	const char *hint;			/* added to unknown-key errors, or NULL */
	JsonbParseState *out;
} PropertiesState;

/* Plans kept for the life of the backend. */
static SPIPlanPtr meter_plan = NULL;
static SPIPlanPtr file_plan = NULL;
static SPIPlanPtr file_insert_plan = NULL;

/* Parses a uuid without raising: canonical 8-4-4-4-12 form or 32 hex digits. */
static bool
ParseUuid(const char *s, pg_uuid_t *result)
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

static bool
InList(const char *s, const char *const *list)
{
	for (int i = 0; list[i] != NULL; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

static char *
JoinList(const char *const *list)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; list[i] != NULL; i++)
		appendStringInfo(&buf, "%s%s", i > 0 ? ", " : "", list[i]);
	return buf.data;
}

/* ---- Reading the input ---- */

/* The value of key in obj; NULL when the key is absent or JSON null. */
static JsonbValue *
Field(JsonbContainer *obj, const char *key)
{
	JsonbValue *v = getKeyJsonValueFromContainer(obj, key, strlen(key), NULL);

	if (v != NULL && v->type == jbvNull)
		return NULL;
	return v;
}

static JsonbValue *
RequiredField(JsonbContainer *obj, const char *path, const char *key)
{
	JsonbValue *v = Field(obj, key);

	if (v == NULL)
		ereport(ERROR, PROPERTY_ERROR, errmsg("%s.%s is required", path, key));
	return v;
}

/* Refuses any key of obj not in known, naming it: a typo must not pass silently. */
static void
CheckKeys(PropertiesState *state, JsonbContainer *obj, const char *path,
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
		if (!InList(key, known))
			ereport(ERROR,
					PROPERTY_ERROR,
					errmsg("%s.%s is not a recognized key", path, key),
					errdetail("Recognized keys of %s: %s.", path, JoinList(known)),
					state->hint ? errhint("%s", state->hint) : 0);
	}
}

static bool
IsObject(JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
}

static bool
IsArray(JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data);
}

static JsonbContainer *
ObjectAt(JsonbValue *v, const char *path)
{
	if (!IsObject(v))
		ereport(ERROR, PROPERTY_ERROR, errmsg("%s must be a JSON object", path));
	return v->val.binary.data;
}

/* The elements of a non-empty JSON array at path. */
static JsonbContainer *
NonEmptyArrayAt(JsonbValue *v, const char *path)
{
	if (!IsArray(v) || JsonContainerSize(v->val.binary.data) == 0)
		ereport(ERROR, PROPERTY_ERROR, errmsg("%s must be a non-empty JSON array", path));
	return v->val.binary.data;
}

/* A palloc'd copy of a JSON string, or NULL when v is not a string. */
static char *
StringOf(JsonbValue *v)
{
	if (v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static bool
BoolAt(JsonbValue *v, const char *path)
{
	if (v->type != jbvBool)
		ereport(ERROR, PROPERTY_ERROR, errmsg("%s must be a boolean", path));
	return v->val.boolean;
}

static bool
OptionalBool(JsonbContainer *obj, const char *path, const char *key, bool dflt)
{
	JsonbValue *v = Field(obj, key);

	return v == NULL ? dflt : BoolAt(v, psprintf("%s.%s", path, key));
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
static int64
IntegerAt(JsonbValue *v, const char *path, int64 min, int64 max)
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
static pg_uuid_t
UuidAt(JsonbValue *v, const char *path)
{
	char	   *s = StringOf(v);
	pg_uuid_t	uuid;

	if (s == NULL || !ParseUuid(s, &uuid))
		ereport(ERROR, PROPERTY_ERROR, errmsg("%s must be a uuid given as a JSON string", path));
	return uuid;
}

/* ---- Building the output ---- */

static void
PutKey(PropertiesState *state, const char *key)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) key;
	v.val.string.len = strlen(key);
	pushJsonbValue(&state->out, WJB_KEY, &v);
}

/* A string, or null when s is NULL; token is WJB_VALUE or WJB_ELEM. */
static void
PutString(PropertiesState *state, JsonbIteratorToken token, const char *s)
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

static void
PutNull(PropertiesState *state)
{
	JsonbValue	v;

	v.type = jbvNull;
	pushJsonbValue(&state->out, WJB_VALUE, &v);
}

static void
PutBool(PropertiesState *state, bool b)
{
	JsonbValue	v;

	v.type = jbvBool;
	v.val.boolean = b;
	pushJsonbValue(&state->out, WJB_VALUE, &v);
}

static void
PutInteger(PropertiesState *state, int64 i)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(i);
	pushJsonbValue(&state->out, WJB_VALUE, &v);
}

static void
PutKeyString(PropertiesState *state, const char *key, const char *s)
{
	PutKey(state, key);
	PutString(state, WJB_VALUE, s);
}

/* ---- license_keys ---- */

/*
 * {prefix, expires, activations, limit_usage}.  `false` means "none" for
 * expires, activations and limit_usage, and an integer is accepted as the
 * activation limit, so the brief's {prefix: "MYAPP", expires: false,
 * activations: 1, limit_usage: false} is a valid benefit.
 */
static void
NormalizeLicenseKeys(PropertiesState *state, JsonbContainer *root)
{
	static const char *const keys[] = {"prefix", "expires", "activations", "limit_usage", NULL};
	static const char *const expires_keys[] = {"ttl", "timeframe", NULL};
	static const char *const activations_keys[] = {"limit", "enable_customer_admin", NULL};
	JsonbValue *v;

	CheckKeys(state, root, "properties", keys);

	/* prefix: letters and digits, upper-cased; keys are case-insensitive. */
	PutKey(state, "prefix");
	if ((v = Field(root, "prefix")) != NULL)
	{
		char	   *prefix = StringOf(v);
		size_t		len = prefix ? strlen(prefix) : 0;

		if (len < 1 || len > 16)
			ereport(ERROR, PROPERTY_ERROR,
					errmsg("properties.prefix must be 1 to 16 ASCII letters or digits"));
		for (size_t i = 0; i < len; i++)
		{
			if (!((prefix[i] >= 'A' && prefix[i] <= 'Z') ||
				  (prefix[i] >= 'a' && prefix[i] <= 'z') ||
				  (prefix[i] >= '0' && prefix[i] <= '9')))
				ereport(ERROR, PROPERTY_ERROR,
						errmsg("properties.prefix must be 1 to 16 ASCII letters or digits"));
			if (prefix[i] >= 'a' && prefix[i] <= 'z')
				prefix[i] -= 'a' - 'A';
		}
		PutString(state, WJB_VALUE, prefix);
	}
	else
		PutNull(state);

	PutKey(state, "expires");
	v = Field(root, "expires");
	if (v == NULL || (v->type == jbvBool && !v->val.boolean))
		PutNull(state);
	else if (IsObject(v))
	{
		JsonbContainer *expires = v->val.binary.data;
		char	   *timeframe;

		CheckKeys(state, expires, "properties.expires", expires_keys);
		pushJsonbValue(&state->out, WJB_BEGIN_OBJECT, NULL);
		PutKey(state, "ttl");
		PutInteger(state, IntegerAt(RequiredField(expires, "properties.expires", "ttl"),
									"properties.expires.ttl", 1, PG_INT32_MAX));
		timeframe = StringOf(RequiredField(expires, "properties.expires", "timeframe"));
		if (timeframe == NULL || !InList(timeframe, expires_timeframes))
			ereport(ERROR, PROPERTY_ERROR,
					errmsg("properties.expires.timeframe must be one of %s",
						   JoinList(expires_timeframes)));
		PutKeyString(state, "timeframe", timeframe);
		pushJsonbValue(&state->out, WJB_END_OBJECT, NULL);
	}
	else
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("properties.expires must be false or an object {ttl, timeframe}"));

	PutKey(state, "activations");
	v = Field(root, "activations");
	if (v == NULL || (v->type == jbvBool && !v->val.boolean))
		PutNull(state);
	else if (v->type == jbvNumeric || IsObject(v))
	{
		int64		limit;
		bool		customer_admin = false;

		if (v->type == jbvNumeric)
			limit = IntegerAt(v, "properties.activations", 1, PG_INT32_MAX);
		else
		{
			JsonbContainer *activations = v->val.binary.data;

			CheckKeys(state, activations, "properties.activations", activations_keys);
			limit = IntegerAt(RequiredField(activations, "properties.activations", "limit"),
							  "properties.activations.limit", 1, PG_INT32_MAX);
			customer_admin = OptionalBool(activations, "properties.activations",
										  "enable_customer_admin", false);
		}
		pushJsonbValue(&state->out, WJB_BEGIN_OBJECT, NULL);
		PutKey(state, "limit");
		PutInteger(state, limit);
		PutKey(state, "enable_customer_admin");
		PutBool(state, customer_admin);
		pushJsonbValue(&state->out, WJB_END_OBJECT, NULL);
	}
	else
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("properties.activations must be false, a positive integer or an object {limit, enable_customer_admin}"));

	PutKey(state, "limit_usage");
	v = Field(root, "limit_usage");
	if (v == NULL || (v->type == jbvBool && !v->val.boolean))
		PutNull(state);
	else
		PutInteger(state, IntegerAt(v, "properties.limit_usage", 1, PG_INT32_MAX));
}

/* ---- github_repository ---- */

/* A GitHub user or organization name (provider_names.c). */
static char *
GitHubOwnerAt(JsonbValue *v, const char *path)
{
	char	   *s = StringOf(v);

	if (!GithubLoginValid(s))
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("%s must be a GitHub user or organization name", path),
				errdetail("A GitHub owner is 1 to 39 ASCII letters, digits or hyphens and does not start with a hyphen."));
	return s;
}

/* A GitHub repository name (provider_names.c). */
static char *
GitHubRepositoryAt(JsonbValue *v, const char *path)
{
	char	   *s = StringOf(v);

	if (!GithubRepositoryValid(s))
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("%s must be a GitHub repository name", path),
				errdetail("A GitHub repository name is 1 to 100 ASCII letters, digits, '.', '-' or '_', other than \".\" and \"..\"."));
	return s;
}

static char *
GitHubPermissionAt(JsonbValue *v, const char *path)
{
	char	   *s = StringOf(v);

	if (s == NULL || !InList(s, github_permissions))
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("%s must be one of %s", path, JoinList(github_permissions)));
	return s;
}

/*
 * One repository ({repository_owner, repository_name, permission}) or several
 * (repositories: [{owner, name, permission}]); the output always has the list.
 */
static void
NormalizeGitHubRepository(PropertiesState *state, JsonbContainer *root)
{
	static const char *const keys[] =
	{"repository_owner", "repository_name", "permission", "repositories", NULL};
	static const char *const repository_keys[] = {"owner", "name", "permission", NULL};
	bool		single;
	JsonbValue *list;
	int			n;
	char	  **owners;
	char	  **names;
	char	  **permissions;

	CheckKeys(state, root, "properties", keys);
	single = Field(root, "repository_owner") != NULL ||
		Field(root, "repository_name") != NULL ||
		Field(root, "permission") != NULL;
	list = Field(root, "repositories");
	if (single && list != NULL)
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("properties must give either repositories or repository_owner, repository_name and permission, not both"));
	if (!single && list == NULL)
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("properties.repositories is required"),
				errhint("Give repositories: [{owner, name, permission}, ...], or repository_owner, repository_name and permission for a single repository."));

	if (single)
	{
		n = 1;
		owners = palloc(sizeof(char *));
		names = palloc(sizeof(char *));
		permissions = palloc(sizeof(char *));
		owners[0] = GitHubOwnerAt(RequiredField(root, "properties", "repository_owner"),
								  "properties.repository_owner");
		names[0] = GitHubRepositoryAt(RequiredField(root, "properties", "repository_name"),
									  "properties.repository_name");
		permissions[0] = GitHubPermissionAt(RequiredField(root, "properties", "permission"),
											"properties.permission");
	}
	else
	{
		JsonbContainer *elements = NonEmptyArrayAt(list, "properties.repositories");

		n = JsonContainerSize(elements);
		owners = palloc(n * sizeof(char *));
		names = palloc(n * sizeof(char *));
		permissions = palloc(n * sizeof(char *));
		for (int i = 0; i < n; i++)
		{
			char	   *path = psprintf("properties.repositories[%d]", i);
			JsonbContainer *repo = ObjectAt(getIthJsonbValueFromContainer(elements, i), path);

			CheckKeys(state, repo, path, repository_keys);
			owners[i] = GitHubOwnerAt(RequiredField(repo, path, "owner"),
									  psprintf("%s.owner", path));
			names[i] = GitHubRepositoryAt(RequiredField(repo, path, "name"),
										  psprintf("%s.name", path));
			permissions[i] = GitHubPermissionAt(RequiredField(repo, path, "permission"),
												psprintf("%s.permission", path));
			/* GitHub names are case-insensitive. */
			for (int j = 0; j < i; j++)
				if (pg_strcasecmp(owners[i], owners[j]) == 0 &&
					pg_strcasecmp(names[i], names[j]) == 0)
					ereport(ERROR, PROPERTY_ERROR,
							errmsg("%s repeats properties.repositories[%d]", path, j),
							errdetail("Both name the repository %s/%s.", owners[j], names[j]));
		}
	}

	if (single)
	{
		PutKeyString(state, "repository_owner", owners[0]);
		PutKeyString(state, "repository_name", names[0]);
		PutKeyString(state, "permission", permissions[0]);
	}
	PutKey(state, "repositories");
	pushJsonbValue(&state->out, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < n; i++)
	{
		pushJsonbValue(&state->out, WJB_BEGIN_OBJECT, NULL);
		PutKeyString(state, "owner", owners[i]);
		PutKeyString(state, "name", names[i]);
		PutKeyString(state, "permission", permissions[i]);
		pushJsonbValue(&state->out, WJB_END_OBJECT, NULL);
	}
	pushJsonbValue(&state->out, WJB_END_ARRAY, NULL);
}

/* ---- discord ---- */

/*
 * A Discord id (snowflake): an unsigned 64-bit integer, given as a string of
 * 17 to 20 digits.  JSON numbers are refused: most JSON clients cannot hold
 * one exactly, so a number here has usually lost its last digits already.
 */
static char *
SnowflakeAt(JsonbValue *v, const char *path)
{
	char	   *s = StringOf(v);

	if (!DiscordIdValid(s, 17))
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("%s must be a Discord id given as a string of 17 to 20 digits", path));
	return s;
}

/*
 * guild_id with one role (role_id) or several (roles: [{role_id, name}]), and
 * whether revoking kicks the member from the guild.
 */
static void
NormalizeDiscord(PropertiesState *state, JsonbContainer *root)
{
	static const char *const keys[] = {"guild_id", "role_id", "roles", "kick_member", NULL};
	static const char *const role_keys[] = {"role_id", "name", NULL};
	char	   *guild_id;
	JsonbValue *single;
	JsonbValue *list;
	int			n;
	char	  **role_ids;
	char	  **role_names;
	bool		kick_member;

	CheckKeys(state, root, "properties", keys);
	guild_id = SnowflakeAt(RequiredField(root, "properties", "guild_id"),
						   "properties.guild_id");
	single = Field(root, "role_id");
	list = Field(root, "roles");
	if (single != NULL && list != NULL)
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("properties must give either role_id or roles, not both"));
	if (single == NULL && list == NULL)
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("properties.role_id is required"),
				errhint("Give role_id for one role, or roles: [{role_id, name}, ...] for several."));

	if (single != NULL)
	{
		n = 1;
		role_ids = palloc(sizeof(char *));
		role_names = palloc(sizeof(char *));
		role_ids[0] = SnowflakeAt(single, "properties.role_id");
		role_names[0] = NULL;
	}
	else
	{
		JsonbContainer *elements = NonEmptyArrayAt(list, "properties.roles");

		n = JsonContainerSize(elements);
		role_ids = palloc(n * sizeof(char *));
		role_names = palloc(n * sizeof(char *));
		for (int i = 0; i < n; i++)
		{
			char	   *path = psprintf("properties.roles[%d]", i);
			JsonbContainer *role = ObjectAt(getIthJsonbValueFromContainer(elements, i), path);
			JsonbValue *name;

			CheckKeys(state, role, path, role_keys);
			role_ids[i] = SnowflakeAt(RequiredField(role, path, "role_id"),
									  psprintf("%s.role_id", path));
			role_names[i] = NULL;
			if ((name = Field(role, "name")) != NULL)
			{
				role_names[i] = StringOf(name);
				if (role_names[i] == NULL || role_names[i][0] == '\0' ||
					pg_mbstrlen(role_names[i]) > 100)
					ereport(ERROR, PROPERTY_ERROR,
							errmsg("%s.name must be a string of 1 to 100 characters", path));
			}
			for (int j = 0; j < i; j++)
				if (strcmp(role_ids[i], role_ids[j]) == 0)
					ereport(ERROR, PROPERTY_ERROR,
							errmsg("%s repeats properties.roles[%d]", path, j),
							errdetail("Both name the role %s.", role_ids[j]));
		}
	}

	/* The role whose id is the guild's is @everyone: it cannot be granted. */
	for (int i = 0; i < n; i++)
		if (strcmp(role_ids[i], guild_id) == 0)
			ereport(ERROR, PROPERTY_ERROR,
					errmsg("%s is the guild's @everyone role",
						   single ? "properties.role_id" : psprintf("properties.roles[%d].role_id", i)),
					errdetail("Every member of a guild has its @everyone role; name a role that can be granted."));

	kick_member = OptionalBool(root, "properties", "kick_member", false);

	PutKeyString(state, "guild_id", guild_id);
	if (single != NULL)
		PutKeyString(state, "role_id", role_ids[0]);
	PutKey(state, "roles");
	pushJsonbValue(&state->out, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < n; i++)
	{
		pushJsonbValue(&state->out, WJB_BEGIN_OBJECT, NULL);
		PutKeyString(state, "role_id", role_ids[i]);
		PutKeyString(state, "name", role_names[i]);
		pushJsonbValue(&state->out, WJB_END_OBJECT, NULL);
	}
	pushJsonbValue(&state->out, WJB_END_ARRAY, NULL);
	PutKey(state, "kick_member");
	PutBool(state, kick_member);
}

/* ---- downloadable ---- */

/* A file name: 1 to 255 characters, no control characters and no '/'. */
static char *
FileNameAt(JsonbValue *v, const char *path)
{
	char	   *s = StringOf(v);
	bool		ok = s != NULL && s[0] != '\0' && pg_mbstrlen(s) <= 255;

	for (const char *p = s; ok && *p; p++)
		ok = (unsigned char) *p >= 0x20 && *p != 0x7f && *p != '/';
	if (!ok)
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("%s must be a file name of 1 to 255 characters", path),
				errdetail("A file name holds no '/' and no control characters."));
	return s;
}

/* A media type "type/subtype" (RFC 6838 characters), lower-cased. */
static char *
MimeTypeAt(JsonbValue *v, const char *path)
{
	char	   *s = StringOf(v);
	size_t		len = s ? strlen(s) : 0;
	int			slashes = 0;
	bool		ok = len >= 3 && len <= 255 && s[0] != '/' && s[len - 1] != '/';

	for (size_t i = 0; ok && i < len; i++)
	{
		char		c = s[i];

		if (c == '/')
			slashes++;
		else if (c >= 'A' && c <= 'Z')
			s[i] = c + ('a' - 'A');
		else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
				   strchr("!#$&^_.+-", c) != NULL))
			ok = false;
	}
	if (!ok || slashes != 1)
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("%s must be a media type such as application/zip", path));
	return s;
}

/* Whether file is a file of the organization; locks it against deletion. */
static bool
FileExists(PropertiesState *state, pg_uuid_t *file)
{
	Oid			argtypes[2] = {UUIDOID, UUIDOID};
	Datum		args[2] = {UUIDPGetDatum(file), UUIDPGetDatum(&state->organization_id)};
	SPIPlanPtr	plan = BenefitsPlan(&file_plan,
								"SELECT 1 FROM benefits.files"
								" WHERE id OPERATOR(pg_catalog.=) $1"
								" AND organization_id OPERATOR(pg_catalog.=) $2"
								" FOR KEY SHARE",
								2, argtypes);

	if (SPI_execute_plan(plan, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "looking up a file failed");
	return SPI_processed == 1;
}

/* Registers a file given as {name, size, mime_type} and returns its id. */
static pg_uuid_t
FileRegister(PropertiesState *state, const char *name, int64 size, const char *mime_type)
{
	Oid			argtypes[4] = {UUIDOID, TEXTOID, INT8OID, TEXTOID};
	Datum		args[4] = {UUIDPGetDatum(&state->organization_id),
		CStringGetTextDatum(name), Int64GetDatum(size),
	mime_type ? CStringGetTextDatum(mime_type) : (Datum) 0};
	char		nulls[4] = {' ', ' ', ' ', mime_type ? ' ' : 'n'};
	SPIPlanPtr	plan = BenefitsPlan(&file_insert_plan,
								"INSERT INTO benefits.files (id, organization_id, name, size, mime_type, storage_key)"
								" SELECT f.id, $1, $2, $3, COALESCE($4, 'application/octet-stream'),"
								"        benefits.file_storage_key($1, f.id, $2)"
								" FROM (SELECT pg_catalog.gen_random_uuid() AS id) AS f"
								" RETURNING id",
								4, argtypes);
	bool		isnull;

	if (SPI_execute_plan(plan, args, nulls, false, 0) != SPI_OK_INSERT_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "registering a file failed");
	return *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * files: file ids of the organization, or {name, size[, mime_type]} objects
 * registered in benefits.files here; archived: {file id: bool} for files of
 * the list.  The output lists ids in the given order and archives each one.
 */
static void
NormalizeDownloadable(PropertiesState *state, JsonbContainer *root)
{
	static const char *const keys[] = {"files", "archived", NULL};
	static const char *const file_keys[] = {"name", "size", "mime_type", NULL};
	JsonbContainer *elements;
	JsonbValue *archived_value;
	int			n;
	pg_uuid_t  *ids;
	bool	   *registered;
	char	  **names;
	int64	   *sizes;
	char	  **mime_types;
	bool	   *archived;

	CheckKeys(state, root, "properties", keys);
	elements = NonEmptyArrayAt(RequiredField(root, "properties", "files"), "properties.files");
	n = JsonContainerSize(elements);
	ids = palloc0(n * sizeof(pg_uuid_t));
	registered = palloc0(n * sizeof(bool));
	names = palloc0(n * sizeof(char *));
	sizes = palloc0(n * sizeof(int64));
	mime_types = palloc0(n * sizeof(char *));
	archived = palloc0(n * sizeof(bool));

	for (int i = 0; i < n; i++)
	{
		char	   *path = psprintf("properties.files[%d]", i);
		JsonbValue *element = getIthJsonbValueFromContainer(elements, i);

		if (element->type == jbvString)
		{
			char	   *text = StringOf(element);

			if (!ParseUuid(text, &ids[i]))
				ereport(ERROR, PROPERTY_ERROR,
						errmsg("%s must be a file id (uuid) or an object {name, size}", path));
			if (!FileExists(state, &ids[i]))
				ereport(ERROR, PROPERTY_ERROR,
						errmsg("%s is not a file of this organization", path),
						errdetail("No file %s exists in organization %s.",
								  BenefitsUuidText(&ids[i]), BenefitsUuidText(&state->organization_id)));
			for (int j = 0; j < i; j++)
				if (!registered[j] && memcmp(&ids[i], &ids[j], sizeof(pg_uuid_t)) == 0)
					ereport(ERROR, PROPERTY_ERROR,
							errmsg("%s repeats properties.files[%d]", path, j),
							errdetail("Both name the file %s.", BenefitsUuidText(&ids[i])));
		}
		else if (IsObject(element))
		{
			JsonbContainer *file = element->val.binary.data;
			JsonbValue *mime;

			CheckKeys(state, file, path, file_keys);
			registered[i] = true;
			names[i] = FileNameAt(RequiredField(file, path, "name"), psprintf("%s.name", path));
			sizes[i] = IntegerAt(RequiredField(file, path, "size"), psprintf("%s.size", path),
								 0, MAX_FILE_SIZE);
			if ((mime = Field(file, "mime_type")) != NULL)
				mime_types[i] = MimeTypeAt(mime, psprintf("%s.mime_type", path));
		}
		else
			ereport(ERROR, PROPERTY_ERROR,
					errmsg("%s must be a file id (uuid) or an object {name, size}", path));
	}

	/* archived names files of the list by id. */
	if ((archived_value = Field(root, "archived")) != NULL)
	{
		JsonbContainer *map = ObjectAt(archived_value, "properties.archived");
		JsonbIterator *it = JsonbIteratorInit(map);
		JsonbValue	v;
		JsonbIteratorToken token;
		char	   *key = NULL;

		while ((token = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			if (token == WJB_KEY)
				key = pnstrdup(v.val.string.val, v.val.string.len);
			else if (token == WJB_VALUE)
			{
				char	   *path = psprintf("properties.archived.%s", key);
				pg_uuid_t	id;
				int			found = -1;

				if (ParseUuid(key, &id))
					for (int i = 0; i < n && found < 0; i++)
						if (!registered[i] && memcmp(&id, &ids[i], sizeof(pg_uuid_t)) == 0)
							found = i;
				if (found < 0)
					ereport(ERROR, PROPERTY_ERROR,
							errmsg("%s is not a file id of properties.files", path));
				archived[found] = BoolAt(&v, path);
			}
		}
	}

	/* Everything is valid: register the new files. */
	for (int i = 0; i < n; i++)
		if (registered[i])
			ids[i] = FileRegister(state, names[i], sizes[i], mime_types[i]);

	PutKey(state, "files");
	pushJsonbValue(&state->out, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < n; i++)
		PutString(state, WJB_ELEM, BenefitsUuidText(&ids[i]));
	pushJsonbValue(&state->out, WJB_END_ARRAY, NULL);
	PutKey(state, "archived");
	pushJsonbValue(&state->out, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < n; i++)
	{
		PutKey(state, BenefitsUuidText(&ids[i]));
		PutBool(state, archived[i]);
	}
	pushJsonbValue(&state->out, WJB_END_OBJECT, NULL);
}

/* ---- meter_credits ---- */

/* Whether meter is a meter of the organization; locks it against deletion. */
static bool
MeterExists(PropertiesState *state, pg_uuid_t *meter)
{
	Oid			argtypes[2] = {UUIDOID, UUIDOID};
	Datum		args[2] = {UUIDPGetDatum(meter), UUIDPGetDatum(&state->organization_id)};
	SPIPlanPtr	plan = BenefitsPlan(&meter_plan,
								"SELECT 1 FROM benefits.meters"
								" WHERE id OPERATOR(pg_catalog.=) $1"
								" AND organization_id OPERATOR(pg_catalog.=) $2"
								" FOR KEY SHARE",
								2, argtypes);

	if (SPI_execute_plan(plan, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "looking up a meter failed");
	return SPI_processed == 1;
}

/*
 * {meter_id, units (alias credits), rollover, low_balance_threshold}.  Credit
 * amounts stay below 2^53 so every JSON client reads them exactly.
 */
static void
NormalizeMeterCredits(PropertiesState *state, JsonbContainer *root)
{
	static const char *const keys[] =
	{"meter_id", "units", "credits", "rollover", "low_balance_threshold", NULL};
	pg_uuid_t	meter_id;
	JsonbValue *units;
	JsonbValue *credits;
	JsonbValue *threshold;
	int64		amount;
	bool		rollover;

	CheckKeys(state, root, "properties", keys);
	meter_id = UuidAt(RequiredField(root, "properties", "meter_id"), "properties.meter_id");
	if (!MeterExists(state, &meter_id))
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("properties.meter_id is not a meter of this organization"),
				errdetail("No meter %s exists in organization %s.",
						  BenefitsUuidText(&meter_id), BenefitsUuidText(&state->organization_id)));

	units = Field(root, "units");
	credits = Field(root, "credits");
	if (units != NULL && credits != NULL)
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("properties must give either units or credits, not both"),
				errdetail("credits is another name for units."));
	if (units == NULL && credits == NULL)
		ereport(ERROR, PROPERTY_ERROR, errmsg("properties.units is required"),
				errhint("credits is accepted as another name for units."));
	amount = units ? IntegerAt(units, "properties.units", 1, MAX_SAFE_INTEGER)
		: IntegerAt(credits, "properties.credits", 1, MAX_SAFE_INTEGER);
	rollover = OptionalBool(root, "properties", "rollover", false);

	PutKeyString(state, "meter_id", BenefitsUuidText(&meter_id));
	PutKey(state, "units");
	PutInteger(state, amount);
	PutKey(state, "rollover");
	PutBool(state, rollover);
	if ((threshold = Field(root, "low_balance_threshold")) != NULL)
	{
		PutKey(state, "low_balance_threshold");
		PutInteger(state, IntegerAt(threshold, "properties.low_balance_threshold",
									0, MAX_SAFE_INTEGER));
	}
}

/* ---- custom ---- */

static void
NormalizeCustom(PropertiesState *state, JsonbContainer *root)
{
	static const char *const keys[] = {"note", NULL};
	JsonbValue *note;

	CheckKeys(state, root, "properties", keys);
	PutKey(state, "note");
	if ((note = Field(root, "note")) == NULL)
		PutNull(state);
	else if (note->type == jbvString)
		PutString(state, WJB_VALUE, StringOf(note));
	else
		ereport(ERROR, PROPERTY_ERROR, errmsg("properties.note must be a string"));
}

/* ---- entry points ---- */

const char *
BenefitTypeCanonical(const char *type)
{
	for (size_t i = 0; i < lengthof(benefit_type_names); i++)
		if (strcmp(type, benefit_type_names[i].name) == 0)
			return benefit_type_names[i].canonical;
	return NULL;
}

Jsonb *
BenefitPropertiesNormalize(const char *type, Jsonb *properties,
						   pg_uuid_t organization_id, const char **normalized_type)
{
	MemoryContext caller = CurrentMemoryContext;
	const char *canonical = BenefitTypeCanonical(type);
	PropertiesState state;
	JsonbContainer *root;
	JsonbValue *value;
	Jsonb	   *normalized;
	Jsonb	   *result;

	if (canonical == NULL)
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("type must be one of license_keys, github_repository, discord, downloadable, meter_credits, custom"),
				errdetail("\"%s\" is not a benefit type.", type));
	if (properties != NULL && !JB_ROOT_IS_OBJECT(properties))
		ereport(ERROR, PROPERTY_ERROR, errmsg("properties must be a JSON object"));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	if (properties == NULL)
		properties = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	root = &properties->root;
	state.organization_id = organization_id;
	state.hint = NULL;
	state.out = NULL;

	/* A custom benefit carrying a meter and credits is a meter credit benefit. */
	if (strcmp(canonical, "custom") == 0 &&
		(Field(root, "meter_id") != NULL || Field(root, "credits") != NULL ||
		 Field(root, "units") != NULL))
	{
		canonical = "meter_credits";
		state.hint = "A custom benefit whose properties carry meter_id and credits is a meter_credits benefit.";
	}

	pushJsonbValue(&state.out, WJB_BEGIN_OBJECT, NULL);
	if (strcmp(canonical, "license_keys") == 0)
		NormalizeLicenseKeys(&state, root);
	else if (strcmp(canonical, "github_repository") == 0)
		NormalizeGitHubRepository(&state, root);
	else if (strcmp(canonical, "discord") == 0)
		NormalizeDiscord(&state, root);
	else if (strcmp(canonical, "downloadable") == 0)
		NormalizeDownloadable(&state, root);
	else if (strcmp(canonical, "meter_credits") == 0)
		NormalizeMeterCredits(&state, root);
	else
		NormalizeCustom(&state, root);
	value = pushJsonbValue(&state.out, WJB_END_OBJECT, NULL);
	normalized = JsonbValueToJsonb(value);

	result = MemoryContextAlloc(caller, VARSIZE(normalized));
	memcpy(result, normalized, VARSIZE(normalized));
	SPI_finish();

	*normalized_type = canonical;
	return result;
}
