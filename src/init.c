/*
 * init.c — the module's entry point, the top of the layers: it uses every
 * subsystem and nothing uses it.
 *
 * _PG_init asks each subsystem to register its settings, shared memory and
 * background workers, then reserves the "benefits." settings prefix so a
 * misspelt setting is reported instead of silently ignored.  Shared memory
 * and the launcher exist only when the library is preloaded, never during
 * pg_upgrade.
 */
#include "postgres.h"

#include <sodium.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "benefits.h"
#include "email.h"
#include "license_stats.h"
#include "oauth.h"
#include "worker.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	if (sodium_init() < 0)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not initialize libsodium")));

	PortalInit();
	EmailInit();
	LicenseStatsInit();
	WorkerGucInit();
	OAuthInit();
	if (process_shared_preload_libraries_in_progress)
	{
		WorkerShmemInit();
		if (!IsBinaryUpgrade)
		{
			WorkerRegisterLauncher();
			LicenseForwarderRegister();
		}
	}
	MarkGUCPrefixReserved("benefits");
}
