/*
 * type_discord.c — the discord benefit type: membership of a Discord server
 * (guild) with one or more roles, and optionally a kick when revoked.
 *
 * Properties: {guild_id, role_id} or {guild_id, roles: [{role_id, name}]},
 * optional kick_member, normalized to {"guild_id", "roles": [{"role_id",
 * "name"|null}], "kick_member": bool} plus role_id in the single form.
 * Optional welcome_channel_id and welcome_message (given together): once
 * the member and roles are added, the worker posts the message, with
 * {username} and {roles} filled in, to that channel, once per grant.  Ids
 * are Discord snowflakes (provider_names.c): they become path segments of the
 * worker's requests.  Grants wait for a linked Discord account with an OAuth
 * token; the access is delivered by outbox jobs (provider_jobs.c).
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "utils/jsonb.h"

#include "benefits.h"
#include "benefit_type.h"
#include "engine.h"
#include "properties.h"
#include "provider_names.h"

/*
 * In webhook payloads Polar's Discord properties always carry role_id (the
 * first role's for a benefit given with several) and guild_token, Polar's
 * signed token of its bot's connection to the guild, which has no
 * counterpart here: an empty string.  roles stays, a documented extension.
 */
#define DISCORD_WEBHOOK_PROPERTIES \
	"%1$s.properties || pg_catalog.jsonb_build_object(" \
	" 'role_id', COALESCE(%1$s.properties->>'role_id', %1$s.properties #>> '{roles,0,role_id}')," \
	" 'guild_token', '')"

/*
 * A Discord id (snowflake): an unsigned 64-bit integer, given as a string of
 * 17 to 20 digits.  JSON numbers are refused: most JSON clients cannot hold
 * one exactly, so a number here has usually lost its last digits already.
 */
static char *
SnowflakeAt(JsonbValue *v, const char *path)
{
	char	   *s = PropStringOf(v);

	if (!DiscordIdValid(s, 17))
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("%s must be a Discord id given as a string of 17 to 20 digits", path));
	return s;
}

/* Roles of one benefit: a Discord guild has at most 250 roles. */
#define MAX_ROLES 250

/* The longest welcome message template, in characters (Discord takes 2000). */
#define WELCOME_MESSAGE_MAX 1000

/*
 * A welcome message template: 1 to WELCOME_MESSAGE_MAX characters, no
 * control character but line breaks, and no placeholder other than
 * {username} and {roles} (a misspelt one would reach the customer as is).
 */
static char *
WelcomeMessageAt(JsonbValue *v)
{
	static const char *const placeholders[] = {"{username}", "{roles}", NULL};
	char	   *s = PropStringOf(v);

	if (s == NULL || s[0] == '\0' || pg_mbstrlen(s) > WELCOME_MESSAGE_MAX)
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("properties.welcome_message must be a string of 1 to %d characters", WELCOME_MESSAGE_MAX));
	for (const char *c = s; *c; c++)
	{
		if (((unsigned char) *c < 0x20 && *c != '\n') || *c == 0x7f)
			ereport(ERROR, PROPERTY_ERROR,
					errmsg("properties.welcome_message must not contain control characters other than line breaks"));
		if (*c == '{')
		{
			const char *end = strchr(c, '}');
			char	   *word = end ? pnstrdup(c, end - c + 1) : pstrdup(c);

			if (end == NULL || !PropInList(word, placeholders))
				ereport(ERROR, PROPERTY_ERROR,
						errmsg("properties.welcome_message has an unknown placeholder \"%s\"", word),
						errhint("The placeholders are {username} and {roles}."));
			c = end;
		}
	}
	return s;
}

/* welcome_channel_id and welcome_message, both or neither, pushed when given. */
static void
NormalizeWelcome(PropertiesState *state, JsonbContainer *root)
{
	JsonbValue *channel = PropField(root, "welcome_channel_id");
	JsonbValue *message = PropField(root, "welcome_message");

	if (channel == NULL && message == NULL)
		return;
	if (channel == NULL || message == NULL)
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("properties.%s is required with properties.%s",
					   channel ? "welcome_message" : "welcome_channel_id",
					   channel ? "welcome_channel_id" : "welcome_message"));
	PropPutKeyString(state, "welcome_channel_id", SnowflakeAt(channel, "properties.welcome_channel_id"));
	PropPutKeyString(state, "welcome_message", WelcomeMessageAt(message));
}

/*
 * guild_id with one role (role_id) or several (roles: [{role_id, name}]),
 * whether revoking kicks the member from the guild, and the welcome message.
 */
static void
NormalizeDiscord(PropertiesState *state, JsonbContainer *root)
{
	static const char *const keys[] = {"guild_id", "role_id", "roles", "kick_member",
	"welcome_channel_id", "welcome_message", NULL};
	static const char *const role_keys[] = {"role_id", "name", NULL};
	char	   *guild_id;
	JsonbValue *single;
	JsonbValue *list;
	int			n;
	char	  **role_ids;
	char	  **role_names;
	bool		kick_member;

	PropCheckKeys(state, root, "properties", keys);
	guild_id = SnowflakeAt(PropRequiredField(root, "properties", "guild_id"),
						   "properties.guild_id");
	single = PropField(root, "role_id");
	list = PropField(root, "roles");
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
		JsonbContainer *elements = PropNonEmptyArrayAt(list, "properties.roles", MAX_ROLES);

		n = JsonContainerSize(elements);
		role_ids = palloc(n * sizeof(char *));
		role_names = palloc(n * sizeof(char *));
		for (int i = 0; i < n; i++)
		{
			char	   *path = psprintf("properties.roles[%d]", i);
			JsonbContainer *role = PropObjectAt(getIthJsonbValueFromContainer(elements, i), path);
			JsonbValue *name;

			PropCheckKeys(state, role, path, role_keys);
			role_ids[i] = SnowflakeAt(PropRequiredField(role, path, "role_id"),
									  psprintf("%s.role_id", path));
			role_names[i] = NULL;
			if ((name = PropField(role, "name")) != NULL)
			{
				role_names[i] = PropStringOf(name);
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

	kick_member = PropOptionalBool(root, "properties", "kick_member", false);

	PropPutKeyString(state, "guild_id", guild_id);
	if (single != NULL)
		PropPutKeyString(state, "role_id", role_ids[0]);
	PropPutKey(state, "roles");
	pushJsonbValue(&state->out, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < n; i++)
	{
		pushJsonbValue(&state->out, WJB_BEGIN_OBJECT, NULL);
		PropPutKeyString(state, "role_id", role_ids[i]);
		PropPutKeyString(state, "name", role_names[i]);
		pushJsonbValue(&state->out, WJB_END_OBJECT, NULL);
	}
	pushJsonbValue(&state->out, WJB_END_ARRAY, NULL);
	PropPutKey(state, "kick_member");
	PropPutBool(state, kick_member);
	NormalizeWelcome(state, root);
}

static void
DiscordGrant(GrantChange *change)
{
	ProviderJobsGrant(change, PROVIDER_DISCORD);
}

static void
DiscordGrantMany(GrantBatch *batch)
{
	ProviderJobsGrantMany(batch, PROVIDER_DISCORD);
}

static void
DiscordRevoke(GrantChange *change)
{
	ProviderJobsRevoke(change, PROVIDER_DISCORD);
}

static void
DiscordAccountGone(GrantChange *change)
{
	ProviderJobsAccountGone(change, PROVIDER_DISCORD);
}

static Jsonb *
DiscordGrantUpdated(pg_uuid_t grant_id, pg_uuid_t organization_id, pg_uuid_t customer_id,
					Jsonb *benefit_properties, Jsonb *grant_properties, bool first)
{
	return ProviderJobsUpdate(grant_id, organization_id, customer_id, PROVIDER_DISCORD,
							  benefit_properties, grant_properties, first);
}

/*
 * The portal: {link, roles, action, account, message, delivery, guild_id} (in
 * jsonb key order), what the customer needs to see and do.
 */
static void
DiscordPortalMember(PortalBuild *ctx, PortalBenefit *b)
{
	char	   *action;
	char	   *message;
	const char *delivery = PortalDelivery(ctx, b, &action, &message);
	JsonbValue *roles = JsonMember(b->properties, "roles");

	DocBeginObject(&ctx->doc);
	DocKey(&ctx->doc, "link");
	PortalLink(ctx, PROVIDER_DISCORD);
	DocKey(&ctx->doc, "roles");
	if (roles != NULL)
		DocJson(&ctx->doc, roles);
	else
		DocEmptyArray(&ctx->doc);
	DocKey(&ctx->doc, "action");
	DocStr(&ctx->doc, action);
	DocKey(&ctx->doc, "account");
	PortalAccount(ctx, PROVIDER_DISCORD);
	DocKey(&ctx->doc, "message");
	DocStr(&ctx->doc, message);
	DocKey(&ctx->doc, "delivery");
	DocStr(&ctx->doc, delivery);
	DocKey(&ctx->doc, "guild_id");
	DocJson(&ctx->doc, JsonMember(b->properties, "guild_id"));
	DocEndObject(&ctx->doc);
}

/* The server and its roles, and where delivery stands. */
static void
DiscordPortalHtml(PortalPage *page, JsonbContainer *benefit)
{
	JsonbContainer *x = PageContainer(benefit, "discord");
	JsonbContainer *roles = PageContainer(x, "roles");
	int			n = PageArrayLength(roles);

	if (x == NULL)
		return;
	appendStringInfoString(page->buf, "<p>Server <code>");
	PageEsc(page->buf, PageText(x, "guild_id"));
	appendStringInfoString(page->buf, "</code>");
	for (int r = 0; r < n; r++)
	{
		JsonbContainer *role = PageElement(roles, r);
		char	   *name = PageText(role, "name");

		appendStringInfoString(page->buf, r == 0 ? " — roles: " : ", ");
		PageEsc(page->buf, name ? name : PageText(role, "role_id"));
	}
	appendStringInfoString(page->buf, "</p>\n");
	PageAccessStatus(page, x, PROVIDER_DISCORD);
}

/* The server and roles, and what to do: connect a Discord account first. */
static void
DiscordEmail(EmailBody *body, const EmailGrant *grant)
{
	StringInfoData names;
	ListCell   *lc;

	initStringInfo(&names);
	foreach(lc, EmailObjects(grant->benefit_properties, "roles"))
	{
		char	   *name = BenefitsJsonText((Jsonb *) lfirst(lc), "name");

		if (name)
			appendStringInfo(&names, "%s%s", names.len > 0 ? ", " : "", name);
	}
	if (EmailAwaits(grant, "link_discord"))
		EmailPortalLink(body, grant, "Connect your Discord account to join the server");
	else
		EmailLine(body, "You are being added to the Discord server with your linked account.");
	if (names.len > 0)
		EmailLine(body, psprintf("Roles: %s.", names.data));
}

const BenefitType DiscordBenefit = {
	.name = "discord",
	.webhook_name = "discord",
	.webhook_properties_sql = DISCORD_WEBHOOK_PROPERTIES,
	.account_platform = PROVIDER_DISCORD,
	.normalize = NormalizeDiscord,
	.grant = DiscordGrant,
	.grant_many = DiscordGrantMany,
	.revoke = DiscordRevoke,
	.account_gone = DiscordAccountGone,
	.grant_updated = DiscordGrantUpdated,
	.portal_key = "discord",
	.portal_member = DiscordPortalMember,
	.portal_label = "Discord server access",
	.portal_html = DiscordPortalHtml,
	.email_instructions = DiscordEmail,
};
