/*
 * fuzz_requests.c — the outbound requests built from an outbox job's
 * payload: GitHub and Discord paths and bodies (providers.c, with the name
 * shapes of provider_names.c and libcurl's escaping, http.c) and the
 * webhook signature (webhooks.c).
 *
 * Input: NUL-separated pieces: control bytes (operation, timestamp), then
 * the payload fields owner, repo, username, guild_id, user_id, role_id,
 * channel_id, content, permission (an empty piece is a missing field), then
 * a webhook secret, message id and body.  The payload is read through
 * BenefitsJsonText, which here returns those fields, cut to their valid
 * UTF-8 prefix as jsonb text always is (the Jsonb reader is the server's); payload integers (_step) are absent, so every multi-step
 * operation builds its first step.  Properties:
 *  - a built request's URL is the API base and exactly the operation's
 *    path template with the payload's values, each of the shape its
 *    provider allows; no segment is empty, ".", ".." or holds '/', '?',
 *    '#' or '%'; the only query is GitHub's invitation page;
 *  - a request not built leaves the job dead with an error;
 *  - a JSON body is valid JSON;
 *  - the webhook signature is "v1," and the base64 HMAC-SHA256, computed
 *    here, of id.timestamp.body keyed with the secret's base64 (after
 *    whsec_); a secret that is not base64 gets an error and no signature.
 *
 * Concurrency: one input at a time (libFuzzer).
 */
#include "postgres.h"

#include <sodium.h>

#include "common/jsonapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/jsonb.h"

#include "benefits.h"
#include "fuzz.h"
#include "provider_names.h"
#include "worker.h"

#define GITHUB_API "https://api.github.com/"
#define DISCORD_API "https://discord.com/api/v10"

static const char *const field_names[] = {"owner", "repo", "username", "guild_id", "user_id", "role_id",
"channel_id", "content", "permission"};
static char *fields[lengthof(field_names)];

/* The payload's fields, from the input (the server reads them from the job's jsonb). */
char *
BenefitsJsonText(Jsonb *json, const char *key)
{
	for (size_t i = 0; i < lengthof(field_names); i++)
		if (strcmp(key, field_names[i]) == 0)
			return fields[i];
	return NULL;
}

/* The Jsonb readers of payload integers and arrays: never reached without a payload_json. */
JsonbValue *
getKeyJsonValueFromContainer(JsonbContainer *container, const char *keyVal, int keyLen, JsonbValue *res)
{
	FuzzFail("getKeyJsonValueFromContainer reached without a payload");
}

JsonbValue *
getIthJsonbValueFromContainer(JsonbContainer *sheader, uint32 i)
{
	FuzzFail("getIthJsonbValueFromContainer reached without a payload");
}

Datum
numeric_int4(PG_FUNCTION_ARGS)
{
	FuzzFail("numeric_int4 reached without a payload");
}

Datum
DirectFunctionCall1Coll(PGFunction func, Oid collation, Datum arg1)
{
	FuzzFail("DirectFunctionCall1Coll reached without a payload");
}

static char *
Field(const char *name)
{
	return BenefitsJsonText(NULL, name);
}

typedef bool (*Builder) (OutboxJob *job);

/* An operation, its API, its path template (%s are fields, in order) and which fields and shapes fill it. */
typedef struct Operation
{
	const char *name;
	Builder		build;
	bool		github;			/* else Discord */
	const char *path;
	const char *path_fields[4];
} Operation;

static const Operation operations[] = {
	{"github add_collaborator", GithubAddCollaborator, true, "/repos/%s/%s/collaborators/%s",
	{"owner", "repo", "username"}},
	{"github remove_collaborator", GithubRemoveCollaborator, true, "/repos/%s/%s/invitations?per_page=100&page=1",
	{"owner", "repo"}},
	{"discord add_member", DiscordAddMember, false, "/guilds/%s/members/%s", {"guild_id", "user_id"}},
	{"discord add_role", DiscordAddRole, false, "/guilds/%s/members/%s/roles/%s",
	{"guild_id", "user_id", "role_id"}},
	{"discord remove_role", DiscordRemoveRole, false, "/guilds/%s/members/%s/roles/%s",
	{"guild_id", "user_id", "role_id"}},
	{"discord kick_member", DiscordKickMember, false, "/guilds/%s/members/%s", {"guild_id", "user_id"}},
	{"discord post_welcome", DiscordPostWelcome, false, "/channels/%s/messages", {"channel_id"}},
};

/* Whether a value may fill a path segment of a field (the shapes of provider_names.h). */
static bool
ShapeOf(const char *field, const char *value)
{
	if (strcmp(field, "owner") == 0 || strcmp(field, "username") == 0)
		return GithubLoginValid(value);
	if (strcmp(field, "repo") == 0)
		return GithubRepositoryValid(value);
	return DiscordIdValid(value, 1);
}

static void
CheckJson(const char *what, char *body)
{
	JsonLexContext *lex;

	if (body == NULL)
		return;
	lex = makeJsonLexContextCstringLen(body, strlen(body), PG_UTF8, true);
	FuzzCheck(pg_parse_json(lex, &nullSemAction) == JSON_SUCCESS, "%s: body is not JSON: %s", what, body);
}

static void
CheckOperation(const Operation *op)
{
	OutboxJob	job;
	char	   *values[4] = {NULL};
	char	   *expected;
	const char *path;
	const char *query;
	const char *base = op->github ? GITHUB_API : DISCORD_API;

	memset(&job, 0, sizeof(job));
	job.kind = (char *) (op->github ? "github" : "discord");
	job.action = (char *) "fuzz";
	job.id = 7;
	job.access_token = Field("content");
	job.outcome = JOB_DONE;
	if (!op->build(&job))
	{
		FuzzCheck(job.outcome == JOB_PERMANENT && job.error != NULL, "%s: not built but not judged", op->name);
		return;
	}
	for (int i = 0; i < 4 && op->path_fields[i]; i++)
	{
		values[i] = Field(op->path_fields[i]);
		FuzzCheck(values[i] != NULL && ShapeOf(op->path_fields[i], values[i]),
				  "%s: built with %s of another shape", op->name, op->path_fields[i]);
	}
	/* JobUrl drops the base's trailing slash */
	FuzzCheck(job.url != NULL && strncmp(job.url, base, strlen(base) - op->github) == 0,
			  "%s: URL %s is not on the API", op->name, job.url);
	path = job.url + strlen(base) - op->github;
	expected = psprintf(op->path, values[0], values[1], values[2], values[3]);
	FuzzCheck(strcmp(path, expected) == 0, "%s: path %s, expected %s", op->name, path, expected);
	query = strchr(path, '?');
	for (const char *seg = path + 1, *end;; seg = end + 1)
	{
		end = strchr(seg, '/');
		if (end == NULL || (query && end > query))
			end = query ? query : seg + strlen(seg);
		FuzzCheck(end > seg && !(end - seg == 1 && seg[0] == '.') && !(end - seg == 2 && strncmp(seg, "..", 2) == 0),
				  "%s: empty or dot segment in %s", op->name, path);
		for (const char *c = seg; c < end; c++)
			FuzzCheck(*c != '?' && *c != '#' && *c != '%', "%s: segment with '%c' in %s", op->name, *c, path);
		if (*end != '/')
			break;
	}
	CheckJson(op->name, job.body);
}

static void
CheckSignature(const char *secret, const char *msg_id, int64 timestamp, const char *body, int bodylen)
{
	const char *error = NULL;
	char	   *signature = WebhookSignature(secret, msg_id, timestamp, body, bodylen, &error);
	const char *encoded = strncmp(secret, "whsec_", 6) == 0 ? secret + 6 : secret;
	unsigned char key[256];
	size_t		keylen;
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	char		b64[sodium_base64_ENCODED_LEN(crypto_auth_hmacsha256_BYTES, sodium_base64_VARIANT_ORIGINAL)];
	crypto_auth_hmacsha256_state st;
	char	   *ts = psprintf(INT64_FORMAT, timestamp);

	if (sodium_base642bin(key, sizeof(key), encoded, strlen(encoded), NULL, &keylen, NULL,
						  sodium_base64_VARIANT_ORIGINAL) != 0 || keylen == 0)
	{
		FuzzCheck(signature == NULL && error != NULL, "a secret that is not base64 signs");
		return;
	}
	FuzzCheck(signature != NULL, "a base64 secret does not sign: %s", error);
	crypto_auth_hmacsha256_init(&st, key, keylen);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *) msg_id, strlen(msg_id));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *) ".", 1);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *) ts, strlen(ts));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *) ".", 1);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *) body, bodylen);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_bin2base64(b64, sizeof(b64), mac, sizeof(mac), sodium_base64_VARIANT_ORIGINAL);
	FuzzCheck(strncmp(signature, "v1,", 3) == 0 && strcmp(signature + 3, b64) == 0,
			  "signature %s is not v1,%s", signature, b64);
}

static void
Body(const uint8_t *data, size_t size)
{
	char	   *p[1 + lengthof(field_names) + 3];
	const unsigned char *ctl;
	int64		timestamp = 0;
	char	   *body;

	FuzzSplit(data, size, p, lengthof(p));
	for (size_t i = 0; i < lengthof(field_names); i++)
	{
		/* jsonb text is valid in the database encoding (UTF-8): the valid prefix */
		p[1 + i][pg_encoding_verifymbstr(PG_UTF8, p[1 + i], strlen(p[1 + i]))] = '\0';
		fields[i] = p[1 + i][0] ? p[1 + i] : NULL;
	}
	ctl = (const unsigned char *) p[0];
	for (size_t i = 1; i < strlen(p[0]) && i < 9; i++)
		timestamp = (int64) ((uint64) timestamp << 8 | ctl[i]);
	CheckOperation(&operations[strlen(p[0]) ? ctl[0] % lengthof(operations) : 0]);

	body = p[lengthof(p) - 1];
	CheckSignature(p[lengthof(p) - 3], p[lengthof(p) - 2], timestamp, body, strlen(body));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	benefits_github_api_url = (char *) GITHUB_API;
	benefits_discord_api_url = (char *) DISCORD_API;
	benefits_github_token = (char *) "ghp_fuzz";
	benefits_discord_bot_token = (char *) "bot-fuzz";
	FuzzRun(Body, data, size);
	return 0;
}
