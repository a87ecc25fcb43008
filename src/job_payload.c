/*
 * job_payload.c — reading an outbox job's payload and building its URL, for
 * the request builders of every kind of job (providers.c, oauth_jobs.c).
 * Pure functions of the job.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "benefits.h"
#include "worker.h"

/* See worker.h: the payload readers and the URL joiner. */
char *
JobPayloadText(const OutboxJob *job, const char *key)
{
	return BenefitsJsonText(job->payload_json, key);
}

int
JobPayloadInt(const OutboxJob *job, const char *key, int dflt)
{
	JsonbValue *v;

	if (job->payload_json == NULL || !JB_ROOT_IS_OBJECT(job->payload_json))
		return dflt;
	v = getKeyJsonValueFromContainer(&job->payload_json->root, key, strlen(key), NULL);
	if (v == NULL || v->type != jbvNumeric)
		return dflt;
	return DatumGetInt32(DirectFunctionCall1(numeric_int4, NumericGetDatum(v->val.numeric)));
}

char *
JobUrl(const char *base, const char *path)
{
	size_t		n = strlen(base);

	while (n > 0 && base[n - 1] == '/')
		n--;
	return psprintf("%.*s%s", (int) n, base, path);
}

