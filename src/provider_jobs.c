/*
 * provider_jobs.c — GitHub and Discord benefits: one outbox job per
 * repository or role to add or remove, and linked accounts.
 *
 * Granting writes the jobs and leaves the grant 'created' until the worker
 * has the provider's confirmation.  A customer without a linked account gets
 * an error on the grant naming the action required ({"message": ...,
 * "action": "link_github" | "link_discord"}); link_account then writes the
 * jobs of every such pending grant (each reports benefit_grant.updated: its
 * error is cleared).  When the customer already holds the
 * benefit through another active grant with the same account, the access
 * exists: the new grant is active at once and no call is made.
 *
 * The grant's properties record what was delivered (account, repositories
 * with their permission, guild and role ids), so a revoke removes exactly
 * that, and only when no other live grant of the benefit remains for the
 * customer (GrantChange.last_holder).  Editing a benefit diffs the recorded
 * access against the new properties and writes only the difference.
 *
 * Payloads (what the worker reads, providers.c): GitHub add_collaborator {owner, repo, username,
 * permission}, remove_collaborator {owner, repo, username}; Discord
 * add_member {guild_id, user_id, role_ids, customer_id} (the worker reads
 * the OAuth token from customer_accounts at send time), add_role /
 * remove_role {guild_id, user_id, role_id}, kick_member {guild_id, user_id}.
 * add_member carries the roles for a user who is not yet in the guild;
 * Discord ignores them for a member, so each role also gets add_role.
 * A benefit with a welcome message adds, after those, post_welcome
 * {guild_id, user_id, channel_id, content}: the message rendered when the
 * job is written ({username} as a mention of the member, {roles} as the role
 * names), once per grant: the grant's properties then carry "welcomed": true,
 * which a revoke keeps, so a grant granted again is not welcomed twice; and
 * not while another live grant of the benefit has welcomed the customer.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "engine.h"

/* Is the platform GitHub (else Discord)? */
static bool
IsGithub(const char *platform)
{
	return strcmp(platform, PROVIDER_GITHUB) == 0;
}

/*
 * SQL shared by the one-at-a-time and the set-based grant: the grant's
 * access properties (see AccessProperties) from the benefit type, the
 * benefit's properties, the grant's current properties, the account id and
 * username; and the job payloads.
 */
#define SQL_ACCESS_PROPERTIES(platform, bprops, gprops, account, username) \
	"COALESCE(" gprops ", '{}') || pg_catalog.jsonb_build_object('account_id', " account ", 'username', " username ")" \
	" || CASE WHEN " platform " = 'github' THEN pg_catalog.jsonb_build_object(" \
	"      'repositories', COALESCE(" bprops "->'repositories', '[]')," \
	"      'repository_owner', " bprops "#>>'{repositories,0,owner}'," \
	"      'repository_name', " bprops "#>>'{repositories,0,name}'," \
	"      'permission', " bprops "#>>'{repositories,0,permission}')" \
	"    ELSE pg_catalog.jsonb_build_object(" \
	"      'guild_id', " bprops "->>'guild_id'," \
	"      'role_ids', pg_catalog.jsonb_path_query_array(COALESCE(" bprops "->'roles', '[]'), '$[*].role_id')," \
	"      'role_id', " bprops "#>>'{roles,0,role_id}') END"
#define SQL_GITHUB_PAYLOAD(repository, username, action) \
	"pg_catalog.jsonb_build_object('owner', " repository "->>'owner', 'repo', " repository "->>'name'," \
	" 'username', " username ")" \
	" || CASE WHEN " action " = 'add_collaborator'" \
	"    THEN pg_catalog.jsonb_build_object('permission', " repository "->>'permission') ELSE '{}' END"
#define SQL_DISCORD_MEMBER_PAYLOAD(guild, user, role_ids, customer) \
	"pg_catalog.jsonb_build_object('guild_id', " guild ", 'user_id', " user ", 'role_ids', " role_ids "," \
	" 'customer_id', " customer ")"
#define SQL_DISCORD_ROLE_PAYLOAD(guild, user, role) \
	"pg_catalog.jsonb_build_object('guild_id', " guild ", 'user_id', " user ", 'role_id', " role " #>> '{}')"

/*
 * A welcome message's payload from the benefit's properties and the member's
 * id: the template with {username} replaced by a mention of the member, then
 * {roles} by the role names (or role mentions for unnamed roles), so a role
 * name cannot inject a placeholder; cut to Discord's 2000 characters.
 */
#define SQL_DISCORD_WELCOMED_ELSEWHERE(customer, benefit, grant) \
	"EXISTS (SELECT 1 FROM benefits.grants w WHERE w.customer_id = " customer " AND w.benefit_id = " benefit \
	"        AND w.id <> " grant " AND w.state <> 'revoked' AND w.properties->>'welcomed' = 'true')"
#define SQL_DISCORD_WELCOME_PAYLOAD(bprops, user) \
	"pg_catalog.jsonb_build_object('guild_id', " bprops "->>'guild_id', 'user_id', " user "," \
	" 'channel_id', " bprops "->>'welcome_channel_id', 'content', pg_catalog.left(pg_catalog.replace(" \
	"   pg_catalog.replace(" bprops "->>'welcome_message', '{username}', '<@' || " user " || '>'), '{roles}'," \
	"   (SELECT COALESCE(pg_catalog.string_agg(COALESCE(r.value->>'name', '<@&' || (r.value->>'role_id') || '>')," \
	"                                          ', ' ORDER BY r.n), '')" \
	"      FROM pg_catalog.jsonb_array_elements(" bprops "->'roles') WITH ORDINALITY AS r(value, n))), 2000))"

/*
 * The SQL of a job list: $5 is the array itself, or (with $6 set) an object
 * whose member $6 is the array.
 */
#define SQL_JOB_LIST "pg_catalog.jsonb_array_elements(CASE WHEN $6 IS NULL THEN $5 ELSE COALESCE($5->$6, '[]') END)"

/*
 * GitHub jobs, one per repository ({owner, name, permission}) of the list:
 * list itself, or its member key.
 */
static void
GithubJobs(pg_uuid_t organization_id, pg_uuid_t grant_id, const char *action,
		   const char *username, Jsonb *list, const char *key)
{
	static SPIPlanPtr plan;
	Oid			types[6] = {UUIDOID, UUIDOID, TEXTOID, TEXTOID, JSONBOID, TEXTOID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = UuidGetDatum(&organization_id);
	values[1] = UuidGetDatum(&grant_id);
	values[2] = CStringGetTextDatum(action);
	values[3] = CStringGetTextDatum(username);
	values[4] = JsonbPGetDatum(list);
	values[5] = key ? CStringGetTextDatum(key) : (Datum) 0;
	nulls[5] = key ? ' ' : 'n';
	BenefitsExec(BenefitsPlan(&plan,
						  "INSERT INTO benefits.outbox (organization_id, kind, grant_id, action, payload)"
						  " SELECT $1, 'github', $2, $3, " SQL_GITHUB_PAYLOAD("r.value", "$4", "$3")
						  "   FROM " SQL_JOB_LIST " WITH ORDINALITY AS r(value, n)"
						  "  ORDER BY r.n",
						  6, types),
			   values, nulls, false, 0);
}

/*
 * Discord jobs.  add_member: one job with every role, then add_role per
 * role; add_role/remove_role: one job per role id of the list (the list
 * itself, or its member key); kick_member: one job.
 */
static void
DiscordJobs(pg_uuid_t organization_id, pg_uuid_t grant_id, const char *action,
			const char *guild_id, const char *user_id, Jsonb *list, const char *key,
			pg_uuid_t customer_id)
{
	static SPIPlanPtr plan;
	Oid			types[8] = {UUIDOID, UUIDOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID, UUIDOID, TEXTOID};
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = UuidGetDatum(&organization_id);
	values[1] = UuidGetDatum(&grant_id);
	values[2] = CStringGetTextDatum(action);
	values[3] = CStringGetTextDatum(guild_id);
	values[4] = CStringGetTextDatum(user_id);
	values[5] = JsonbPGetDatum(list);
	values[6] = UuidGetDatum(&customer_id);
	values[7] = key ? CStringGetTextDatum(key) : (Datum) 0;
	nulls[7] = key ? ' ' : 'n';
	BenefitsExec(BenefitsPlan(&plan,
						  "WITH roles AS ("
						  "  SELECT r.value, r.n FROM pg_catalog.jsonb_array_elements("
						  "         CASE WHEN $8 IS NULL THEN $6 ELSE COALESCE($6->$8, '[]') END)"
						  "         WITH ORDINALITY AS r(value, n))"
						  "INSERT INTO benefits.outbox (organization_id, kind, grant_id, action, payload)"
						  " SELECT $1, 'discord', $2, j.action, j.payload FROM ("
						  "   SELECT 0 AS n, 'add_member' AS action,"
						  "          " SQL_DISCORD_MEMBER_PAYLOAD("$4", "$5",
															  "(SELECT COALESCE(pg_catalog.jsonb_agg(value ORDER BY n), '[]') FROM roles)",
															  "$7") " AS payload"
						  "    WHERE $3 = 'add_member'"
						  "   UNION ALL"
						  "   SELECT 0, 'kick_member', pg_catalog.jsonb_build_object('guild_id', $4, 'user_id', $5)"
						  "    WHERE $3 = 'kick_member'"
						  "   UNION ALL"
						  "   SELECT roles.n, CASE $3 WHEN 'add_member' THEN 'add_role' ELSE $3 END,"
						  "          " SQL_DISCORD_ROLE_PAYLOAD("$4", "$5", "roles.value")
						  "     FROM roles WHERE $3 IN ('add_member', 'add_role', 'remove_role')) j"
						  " ORDER BY j.n",
						  8, types),
			   values, nulls, false, 0);
}

/*
 * The grant's properties for the access a benefit's properties describe:
 * GitHub {account_id, username, repositories, repository_owner,
 * repository_name, permission} (the single form from the first repository),
 * Discord {account_id, username, guild_id, role_ids, role_id}.
 */
static Jsonb *
AccessProperties(const char *platform, Jsonb *benefit_properties, Jsonb *grant_properties,
				 const char *account_id, const char *username)
{
	static SPIPlanPtr plan;
	Oid			types[5] = {TEXTOID, JSONBOID, JSONBOID, TEXTOID, TEXTOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	bool		isnull;

	values[0] = CStringGetTextDatum(platform);
	values[1] = JsonbPGetDatum(benefit_properties);
	if (grant_properties)
		values[2] = JsonbPGetDatum(grant_properties);
	else
		nulls[2] = 'n';
	values[3] = CStringGetTextDatum(account_id);
	if (username)
		values[4] = CStringGetTextDatum(username);
	else
		nulls[4] = 'n';
	BenefitsExec(BenefitsPlan(&plan,
						  "SELECT " SQL_ACCESS_PROPERTIES("$1", "$2", "$3", "$4", "$5"),
						  5, types),
			   values, nulls, true, 1);
	return DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * The customer's linked account on the benefit's platform (false when there
 * is none) and, in the same statement, the properties of another active grant
 * of the benefit delivered to that account (*shared, or NULL).
 */
static bool
LinkedAccount(GrantChange *change, const char *platform, char **account_id, char **username,
			  Jsonb **shared)
{
	static SPIPlanPtr plan;
	Oid			types[4] = {UUIDOID, TEXTOID, UUIDOID, UUIDOID};
	Datum		values[4];
	bool		isnull;
	Datum		d;

	values[0] = UuidGetDatum(&change->customer_id);
	values[1] = CStringGetTextDatum(platform);
	values[2] = UuidGetDatum(&change->benefit_id);
	values[3] = UuidGetDatum(&change->grant_id);
	BenefitsExec(BenefitsPlan(&plan,
						  "SELECT a.account_id, a.username,"
						  "       (SELECT g.properties FROM benefits.grants g"
						  "         WHERE g.customer_id = $1 AND g.benefit_id = $3 AND g.id <> $4"
						  "           AND g.state = 'active' AND g.properties->>'account_id' = a.account_id"
						  "         LIMIT 1)"
						  "  FROM benefits.customer_accounts a"
						  " WHERE a.customer_id = $1 AND a.platform = $2",
						  4, types),
			   values, NULL, false, 1);
	if (SPI_processed == 0)
		return false;
	*account_id = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	*username = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
	*shared = isnull ? NULL : DatumGetJsonbPCopy(d);
	return true;
}

/*
 * The welcome message of a grant whose member was just added, when the
 * benefit has one and the grant was never welcomed: its job (after the
 * member's and roles' jobs) and the grant's properties marked welcomed.
 */
static Jsonb *
DiscordWelcomeJob(GrantChange *change, const char *user_id, Jsonb *props)
{
	static SPIPlanPtr plan;
	Oid			types[6] = {UUIDOID, UUIDOID, JSONBOID, TEXTOID, UUIDOID, UUIDOID};
	Datum		values[6];
	char	   *welcomed = BenefitsJsonText(props, "welcomed");

	if (BenefitsJsonText(change->benefit_properties, "welcome_channel_id") == NULL ||
		(welcomed != NULL && strcmp(welcomed, "true") == 0))
		return props;
	values[0] = UuidGetDatum(&change->organization_id);
	values[1] = UuidGetDatum(&change->grant_id);
	values[2] = JsonbPGetDatum(change->benefit_properties);
	values[3] = CStringGetTextDatum(user_id);
	values[4] = UuidGetDatum(&change->customer_id);
	values[5] = UuidGetDatum(&change->benefit_id);
	BenefitsExec(BenefitsPlan(&plan,
							  "INSERT INTO benefits.outbox (organization_id, kind, grant_id, action, payload)"
							  " SELECT $1, 'discord', $2, 'post_welcome', "
							  SQL_DISCORD_WELCOME_PAYLOAD("$3", "$4")
							  " WHERE NOT " SQL_DISCORD_WELCOMED_ELSEWHERE("$5", "$6", "$2"),
							  6, types),
				 values, NULL, false, 0);
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(props),
											  DirectFunctionCall1(jsonb_in, CStringGetDatum("{\"welcomed\": true}"))));
}

/* The error a grant carries while the customer has no linked account. */
static Jsonb *
LinkError(const char *platform)
{
	const char *json = IsGithub(platform)
		? "{\"message\": \"Link a GitHub account to receive access to the repositories.\", \"action\": \"link_github\"}"
		: "{\"message\": \"Link a Discord account to join the server.\", \"action\": \"link_discord\"}";

	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
}

/*
 * The advisory locks serializing the grants and revokes of one benefit
 * delivered to one account, whichever customers hold them: a revoke then
 * sees another customer's grant committed meanwhile (and does not remove its
 * access), and a grant waits for a revoke that may remove it.
 *
 * Each account has its own lock, taken under the benefit's lock in share
 * mode.  A transaction that has taken DELIVERED_ACCOUNT_LOCKS_MAX account
 * locks takes the benefit's lock in exclusive mode instead of any more: one
 * statement granting or revoking for thousands of linked accounts would
 * otherwise fill the shared lock table (max_locks_per_transaction), and
 * fail.  Past that point the transaction serializes with every grant and
 * revoke of those benefits until it commits; two such transactions that
 * both held the benefit's lock in share mode first can deadlock, and
 * PostgreSQL then aborts one of them.
 */
#define DELIVERED_ACCOUNT_LOCKS_MAX 64
#define SQL_DELIVERED_BENEFIT_LOCK(benefit) \
	"pg_catalog.hashtextextended('benefits delivered ' || " benefit "::text, 0)"
#define SQL_DELIVERED_ACCOUNT_LOCK(benefit, account) \
	"pg_catalog.hashtextextended('benefits delivered ' || " benefit "::text || ' ' || " account ", 0)"

/* Account locks this transaction has taken (delivered_locks_lxid's). */
static int	delivered_locks_taken;
static LocalTransactionId delivered_locks_lxid = InvalidLocalTransactionId;

/*
 * May this transaction take n more account locks?  Counts them if so; the
 * count restarts with each transaction.
 */
static bool
DeliveredAccountLocksAllowed(int n)
{
	if (delivered_locks_lxid != MyProc->lxid)
	{
		delivered_locks_lxid = MyProc->lxid;
		delivered_locks_taken = 0;
	}
	if (delivered_locks_taken + n > DELIVERED_ACCOUNT_LOCKS_MAX)
		return false;
	delivered_locks_taken += n;
	return true;
}

/* Takes the benefit's lock in exclusive mode: every account at once. */
static void
LockDeliveredBenefit(pg_uuid_t benefit_id)
{
	static SPIPlanPtr plan;
	Oid			types[1] = {UUIDOID};
	Datum		values[1];

	values[0] = UuidGetDatum(&benefit_id);
	BenefitsExec(BenefitsPlan(&plan,
							  "SELECT pg_catalog.pg_advisory_xact_lock(" SQL_DELIVERED_BENEFIT_LOCK("$1") ")",
							  1, types),
				 values, NULL, false, 0);
}

/* Takes the lock of the benefit's access delivered to account_id. */
static void
LockDeliveredAccount(pg_uuid_t benefit_id, const char *account_id)
{
	static SPIPlanPtr plan;
	Oid			types[2] = {UUIDOID, TEXTOID};
	Datum		values[2];

	if (!DeliveredAccountLocksAllowed(1))
	{
		LockDeliveredBenefit(benefit_id);
		return;
	}
	values[0] = UuidGetDatum(&benefit_id);
	values[1] = CStringGetTextDatum(account_id);
	BenefitsExec(BenefitsPlan(&plan,
							  "SELECT pg_catalog.pg_advisory_xact_lock_shared(" SQL_DELIVERED_BENEFIT_LOCK("$1") "),"
							  " pg_catalog.pg_advisory_xact_lock(" SQL_DELIVERED_ACCOUNT_LOCK("$1", "$2") ")",
							  2, types),
				 values, NULL, false, 0);
}

/* The same for the linked accounts of a batch's customers, in key order. */
static void
LockDeliveredAccounts(GrantBatch *batch, const char *platform)
{
	static SPIPlanPtr plan;
	Oid			types[3] = {UUIDOID, UUIDARRAYOID, TEXTOID};
	Datum		values[3];

	if (!DeliveredAccountLocksAllowed(batch->n))
	{
		LockDeliveredBenefit(batch->benefit_id);
		return;
	}
	values[0] = UuidGetDatum(&batch->benefit_id);
	values[1] = BenefitsUuidArray(batch->customer_ids, batch->n);
	values[2] = CStringGetTextDatum(platform);
	BenefitsExec(BenefitsPlan(&plan,
							  "SELECT pg_catalog.pg_advisory_xact_lock_shared(" SQL_DELIVERED_BENEFIT_LOCK("$1") ")"
							  " UNION ALL "
							  "(SELECT pg_catalog.pg_advisory_xact_lock(l.k) FROM ("
							  "  SELECT DISTINCT " SQL_DELIVERED_ACCOUNT_LOCK("$1", "a.account_id") " AS k"
							  "    FROM benefits.customer_accounts a"
							  "   WHERE a.customer_id = ANY ($2) AND a.platform = $3) l"
							  " ORDER BY l.k)",
							  3, types),
				 values, NULL, false, 0);
}

/* Grant handler of the provider types: the platform's account, then its jobs. */
void
ProviderJobsGrant(GrantChange *change, const char *platform)
{
	bool		github = IsGithub(platform);
	char	   *account_id,
			   *username;
	Jsonb	   *props;
	Jsonb	   *shared;

	if (!LinkedAccount(change, platform, &account_id, &username, &shared))
	{
		change->new_state = "created";
		change->new_properties = NULL;
		change->error = LinkError(platform);
		return;
	}

	change->error = NULL;
	LockDeliveredAccount(change->benefit_id, account_id);
	if (shared != NULL)
	{
		change->new_state = "active";
		change->new_properties = shared;
		return;
	}

	props = AccessProperties(platform, change->benefit_properties,
							 change->grant_properties, account_id, username);
	if (github)
		GithubJobs(change->organization_id, change->grant_id, "add_collaborator", username,
				   props, "repositories");
	else
	{
		DiscordJobs(change->organization_id, change->grant_id, "add_member",
					BenefitsJsonText(props, "guild_id"), account_id, props, "role_ids",
					change->customer_id);
		props = DiscordWelcomeJob(change, account_id, props);
	}
	change->new_state = "created";
	change->new_properties = props;
}

/*
 * ProviderJobsGrant for a batch (grants_batch.c), in one statement: each
 * customer's linked account and another active grant delivered to it, the
 * access properties, the jobs in grant order, and the grants.
 */
void
ProviderJobsGrantMany(GrantBatch *batch, const char *platform)
{
	static SPIPlanPtr plan;
	Oid			types[GRANT_BATCH_NARGS + 4];
	Datum		values[GRANT_BATCH_NARGS + 4];
	GrantBatchArgs(batch, types, values);
	types[GRANT_BATCH_NARGS] = TEXTOID;
	types[GRANT_BATCH_NARGS + 1] = JSONBOID;
	types[GRANT_BATCH_NARGS + 2] = TEXTOID;
	types[GRANT_BATCH_NARGS + 3] = JSONBOID;
	values[GRANT_BATCH_NARGS] = CStringGetTextDatum(platform);
	values[GRANT_BATCH_NARGS + 1] = JsonbPGetDatum(batch->benefit_properties);
	values[GRANT_BATCH_NARGS + 2] = CStringGetTextDatum(platform);
	values[GRANT_BATCH_NARGS + 3] = JsonbPGetDatum(LinkError(platform));
	LockDeliveredAccounts(batch, platform);
	BenefitsExec(BenefitsPlan(&plan,
							"WITH a AS MATERIALIZED ("
							"  SELECT u.id, u.customer_id, u.source_id, u.n, a.account_id, a.username,"
							"         (SELECT g.properties FROM benefits.grants g"
							"           WHERE g.customer_id = u.customer_id AND g.benefit_id = $2 AND g.id <> u.id"
							"             AND g.state = 'active' AND g.properties->>'account_id' = a.account_id"
							"           LIMIT 1) AS shared"
							"    FROM " GRANT_BATCH_ROWS
							"    LEFT JOIN benefits.customer_accounts a"
							"           ON a.customer_id = u.customer_id AND a.platform = $9),"
							" u AS MATERIALIZED ("
							"  SELECT a.*, CASE WHEN a.account_id IS NOT NULL AND a.shared IS NULL THEN "
							SQL_ACCESS_PROPERTIES("$7", "$8", "NULL::jsonb", "a.account_id", "a.username")
							"         END AS access FROM a),"
							" jobs AS ("
							"  INSERT INTO benefits.outbox (organization_id, kind, grant_id, action, payload)"
							"  SELECT $1, j.kind, j.grant_id, j.action, j.payload FROM ("
							"    SELECT u.n, r.n AS m, 'github' AS kind, u.id AS grant_id, 'add_collaborator' AS action, "
							SQL_GITHUB_PAYLOAD("r.value", "u.username", "'add_collaborator'") " AS payload"
							"      FROM u, pg_catalog.jsonb_array_elements(u.access->'repositories') WITH ORDINALITY r(value, n)"
							"     WHERE $7 = 'github'"
							"    UNION ALL"
							"    SELECT u.n, 0, 'discord', u.id, 'add_member', "
							SQL_DISCORD_MEMBER_PAYLOAD("u.access->>'guild_id'", "u.account_id",
													   "COALESCE(u.access->'role_ids', '[]')", "u.customer_id")
							"      FROM u WHERE $7 = 'discord' AND u.access IS NOT NULL"
							"    UNION ALL"
							"    SELECT u.n, r.n, 'discord', u.id, 'add_role', "
							SQL_DISCORD_ROLE_PAYLOAD("u.access->>'guild_id'", "u.account_id", "r.value")
							"      FROM u, pg_catalog.jsonb_array_elements(u.access->'role_ids') WITH ORDINALITY r(value, n)"
							"     WHERE $7 = 'discord'"
							"    UNION ALL"
							"    SELECT u.n, 2147483647, 'discord', u.id, 'post_welcome', "
							SQL_DISCORD_WELCOME_PAYLOAD("$8", "u.account_id")
							"      FROM u WHERE $7 = 'discord' AND u.access IS NOT NULL AND $8 ? 'welcome_channel_id'"
							"       AND NOT " SQL_DISCORD_WELCOMED_ELSEWHERE("u.customer_id", "$2", "u.id") ") j"
							"  ORDER BY j.n, j.m) "
							GRANT_BATCH_INSERT("CASE WHEN u.account_id IS NOT NULL AND u.shared IS NOT NULL"
											   " THEN 'active' ELSE 'created' END",
											   "COALESCE(u.shared, u.access || CASE WHEN $8 ? 'welcome_channel_id'"
											   " THEN '{\"welcomed\": true}'::jsonb ELSE '{}' END, '{}')",
											   "CASE WHEN u.account_id IS NULL THEN $10 END")
							"FROM u",
							GRANT_BATCH_NARGS + 4, types),
			   values, NULL, false, 0);
	if (SPI_processed != (uint64) batch->n)
		elog(ERROR, "could not write grants");
}

/*
 * Does another customer hold a live grant of the benefit delivered to the
 * same account (two customers linked one GitHub or Discord account)?  Run
 * under LockDeliveredAccount.
 */
static bool
AccountSharedByAnotherCustomer(GrantChange *change, const char *account_id)
{
	static SPIPlanPtr plan;
	Oid			types[3] = {UUIDOID, UUIDOID, TEXTOID};
	Datum		values[3];

	values[0] = UuidGetDatum(&change->benefit_id);
	values[1] = UuidGetDatum(&change->customer_id);
	values[2] = CStringGetTextDatum(account_id);
	BenefitsExec(BenefitsPlan(&plan,
							  "SELECT 1 FROM benefits.grants g"
							  " WHERE g.benefit_id = $1 AND (g.properties->>'account_id') = $3"
							  "   AND g.state <> 'revoked' AND g.properties ? 'account_id' AND g.customer_id <> $2"
							  " LIMIT 1",
							  3, types),
				 values, NULL, false, 1);	/* a fresh snapshot: what other customers committed */
	return SPI_processed > 0;
}

/*
 * Revoke handler: removes the recorded access, only when this is the last
 * live grant of the benefit delivered to that account, the customer's and
 * any other customer's who linked the same account.
 */
void
ProviderJobsRevoke(GrantChange *change, const char *platform)
{
	Jsonb	   *props = change->grant_properties;
	char	   *account_id = BenefitsJsonText(props, "account_id");

	change->new_properties = NULL;
	if (!change->last_holder || account_id == NULL)
		return;
	LockDeliveredAccount(change->benefit_id, account_id);
	if (AccountSharedByAnotherCustomer(change, account_id))
		return;
	if (IsGithub(platform))
		GithubJobs(change->organization_id, change->grant_id, "remove_collaborator",
				   BenefitsJsonText(props, "username"), props, "repositories");
	else
	{
		char	   *kick = BenefitsJsonText(change->benefit_properties, "kick_member");

		if (kick && strcmp(kick, "true") == 0)
			DiscordJobs(change->organization_id, change->grant_id, "kick_member",
						BenefitsJsonText(props, "guild_id"), account_id, props, "role_ids",
						change->customer_id);
		else
			DiscordJobs(change->organization_id, change->grant_id, "remove_role",
						BenefitsJsonText(props, "guild_id"), account_id, props, "role_ids",
						change->customer_id);
	}
}

/*
 * The customer's account is gone (unlinked or replaced): the revoke's jobs
 * remove what was delivered to it, and the grant waits for a link, with no
 * access recorded.
 */
void
ProviderJobsAccountGone(GrantChange *change, const char *platform)
{
	ProviderJobsRevoke(change, platform);
	change->new_properties = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	change->error = LinkError(platform);
}

/*
 * The benefit's properties changed: returns the grant's new properties and,
 * when enqueue is set and the grant has delivered access, writes the jobs
 * for the difference (repositories added or with a new permission, removed;
 * roles added, removed; a new guild).  A grant without a linked account is
 * returned unchanged.
 */
Jsonb *
ProviderJobsUpdate(pg_uuid_t grant_id, pg_uuid_t organization_id, pg_uuid_t customer_id,
				   const char *platform, Jsonb *benefit_properties, Jsonb *grant_properties,
				   bool enqueue)
{
	static SPIPlanPtr diff_plan;
	Oid			types[3] = {JSONBOID, JSONBOID, TEXTOID};
	Datum		values[3];
	char	   *account_id = BenefitsJsonText(grant_properties, "account_id");
	char	   *username = BenefitsJsonText(grant_properties, "username");
	bool		github = IsGithub(platform);
	Jsonb	   *props,
			   *added,
			   *removed;
	bool		isnull;
	char	   *old_guild,
			   *new_guild;

	if (account_id == NULL)
		return grant_properties;
	props = AccessProperties(platform, benefit_properties, grant_properties, account_id, username);
	if (!enqueue)
		return props;

	old_guild = BenefitsJsonText(grant_properties, "guild_id");
	new_guild = BenefitsJsonText(props, "guild_id");
	if (!github && (old_guild == NULL || new_guild == NULL || strcmp(old_guild, new_guild) != 0))
	{
		/* Another server: leave the old one, join the new one. */
		if (old_guild)
			DiscordJobs(organization_id, grant_id, "remove_role", old_guild, account_id,
						grant_properties, "role_ids", customer_id);
		if (new_guild)
			DiscordJobs(organization_id, grant_id, "add_member", new_guild, account_id,
						props, "role_ids", customer_id);
		return props;
	}

	/* Elements of the new list not in the old, and of the old not in the new. */
	values[0] = JsonbPGetDatum(props);
	values[1] = JsonbPGetDatum(grant_properties);
	values[2] = CStringGetTextDatum(github ? "repositories" : "role_ids");
	BenefitsExec(BenefitsPlan(&diff_plan,
						  "WITH n AS (SELECT COALESCE($1->$3, '[]') AS list),"
						  "     o AS (SELECT COALESCE($2->$3, '[]') AS list)"
						  "SELECT (SELECT COALESCE(pg_catalog.jsonb_agg(e.x ORDER BY e.k), '[]')"
						  "          FROM n, pg_catalog.jsonb_array_elements(n.list) WITH ORDINALITY AS e(x, k)"
						  "         WHERE NOT (SELECT list FROM o) @> pg_catalog.jsonb_build_array(e.x)),"
						  "       (SELECT COALESCE(pg_catalog.jsonb_agg(e.x ORDER BY e.k), '[]')"
						  "          FROM o, pg_catalog.jsonb_array_elements(o.list) WITH ORDINALITY AS e(x, k)"
						  "         WHERE NOT (SELECT list FROM n) @> pg_catalog.jsonb_build_array("
						  "                 CASE WHEN pg_catalog.jsonb_typeof(e.x) = 'object'"
						  "                      THEN pg_catalog.jsonb_build_object('owner', e.x->'owner', 'name', e.x->'name')"
						  "                      ELSE e.x END))",
						  3, types),
			   values, NULL, true, 1);
	added = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	removed = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));

	if (github)
	{
		if (JB_ROOT_COUNT(removed) > 0)
			GithubJobs(organization_id, grant_id, "remove_collaborator", username, removed, NULL);
		if (JB_ROOT_COUNT(added) > 0)
			GithubJobs(organization_id, grant_id, "add_collaborator", username, added, NULL);
	}
	else
	{
		if (JB_ROOT_COUNT(removed) > 0)
			DiscordJobs(organization_id, grant_id, "remove_role", new_guild, account_id, removed, NULL, customer_id);
		if (JB_ROOT_COUNT(added) > 0)
			DiscordJobs(organization_id, grant_id, "add_role", new_guild, account_id, added, NULL, customer_id);
	}
	return props;
}
