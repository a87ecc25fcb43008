/*
 * worker_guc.c — settings of the delivery worker.
 *
 * Base URLs, tokens and the private-network switch are superuser-only so an
 * application role can neither redirect provider calls nor read the tokens.
 * The rest tune timeouts, concurrency and retry policy.
 */
#include "postgres.h"

#include <limits.h>

#include "miscadmin.h"
#include "utils/guc.h"

#include "benefits.h"
#include "worker.h"

char	   *benefits_database_names = NULL;
char	   *benefits_github_api_url = NULL;
char	   *benefits_github_token = NULL;
char	   *benefits_discord_api_url = NULL;
char	   *benefits_discord_bot_token = NULL;
bool		benefits_allow_private_network = false;
int			benefits_http_connect_timeout = 10000;
int			benefits_http_timeout = 30000;
int			benefits_worker_max_inflight = 256;
int			benefits_http_max_host_connections = 16;
int			benefits_retry_initial_delay = 10000;
int			benefits_retry_max_delay = 3600000;
int			benefits_max_attempts = 12;
int			benefits_webhook_disable_after = 100;
int			benefits_maintenance_interval = 60000;
bool		benefits_worker_delivery = true;
int			benefits_workers_per_database = 1;
int			benefits_outbox_retention = 7 * 86400;

/* Define the worker's settings; called from _PG_init. */
void
WorkerGucInit(void)
{
	DefineCustomStringVariable("benefits.database_names",
							   "Databases whose outbox the background worker serves (comma-separated).",
							   NULL, &benefits_database_names, "postgres",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("benefits.github_api_url",
							   "Base URL of the GitHub REST API.",
							   NULL, &benefits_github_api_url, "https://api.github.com",
							   PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("benefits.github_token",
							   "Token sent to GitHub as \"Authorization: Bearer ...\".",
							   NULL, &benefits_github_token, "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL, NULL, NULL, NULL);
	DefineCustomStringVariable("benefits.discord_api_url",
							   "Base URL of the Discord API.",
							   NULL, &benefits_discord_api_url, "https://discord.com/api/v10",
							   PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("benefits.discord_bot_token",
							   "Bot token sent to Discord as \"Authorization: Bot ...\".",
							   NULL, &benefits_discord_bot_token, "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL, NULL, NULL, NULL);
	DefineCustomBoolVariable("benefits.allow_private_network",
							 "Lets the worker call loopback, private and link-local addresses.",
							 NULL, &benefits_allow_private_network, false,
							 PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("benefits.http_connect_timeout",
							"Connect timeout of the worker's HTTP requests.",
							NULL, &benefits_http_connect_timeout, 10000, 100, 600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("benefits.http_timeout",
							"Total timeout of one HTTP request of the worker.",
							NULL, &benefits_http_timeout, 30000, 100, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("benefits.worker_max_inflight",
							"Most requests one database's worker has in flight at once.",
							NULL, &benefits_worker_max_inflight, 256, 1, 10000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("benefits.http_max_host_connections",
							"Most connections the worker opens to one host.",
							NULL, &benefits_http_max_host_connections, 16, 1, 1000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("benefits.retry_initial_delay",
							"Delay before the first retry of a failed job; doubles with each attempt.",
							NULL, &benefits_retry_initial_delay, 10000, 1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("benefits.retry_max_delay",
							"Longest delay between two attempts of a job.",
							NULL, &benefits_retry_max_delay, 3600000, 1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("benefits.max_attempts",
							"Attempts after which a failing job is dead (listed in benefits.dead_jobs).",
							NULL, &benefits_max_attempts, 12, 1, 1000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("benefits.webhook_disable_after",
							"Consecutive failed deliveries after which a webhook endpoint is disabled.",
							NULL, &benefits_webhook_disable_after, 100, 1, INT_MAX,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("benefits.worker_delivery",
							 "Whether the worker sends the outbox's jobs; off leaves them queued.",
							 "The periodic calls (validation counter flush, maintenance) run either way.",
							 &benefits_worker_delivery, true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("benefits.workers_per_database",
							"Delivery workers per served database, each claiming its own share of the outbox.",
							"Jobs are shared out by a hash of their grant (or chain, or id); each chain stays in order.",
							&benefits_workers_per_database, 1, 1, BENEFITS_MAX_WORKERS_PER_DATABASE,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("benefits.outbox_retention",
							"How long done jobs stay in benefits.outbox; -1 keeps them.",
							"Dead jobs are kept until retried or deleted.",
							&benefits_outbox_retention, 7 * 86400, -1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("benefits.maintenance_interval",
							"How often the worker calls benefits.run_maintenance().",
							NULL, &benefits_maintenance_interval, 60000, 1000, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
}
