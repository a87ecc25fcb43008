/*
 * asan_preload.c — preloaded after libasan into a PostgreSQL server that was
 * not built with AddressSanitizer (test/fuzz/run.sh).
 *
 * A preloaded libasan initialises lazily, on the first malloc.  On Debian 12
 * that first malloc comes from libgpg-error's constructor, inside glibc's
 * bindtextdomain() with the gettext lock (_nl_state_lock) held for writing;
 * ASan's initialisation calls dlerror(), whose dcgettext() takes and releases
 * the same lock again, so bindtextdomain's own unlock then corrupts it and the
 * next bindtextdomain() (postgres' set_pglocale_pgservice) waits forever.
 * This bindtextdomain() makes ASan initialise first, with no lock held, then
 * calls glibc's.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>

char	   *bindtextdomain(const char *domain, const char *dir);

char *
bindtextdomain(const char *domain, const char *dir)
{
	static char *(*real) (const char *, const char *);

	if (real == NULL)
	{
		void	   *volatile p = malloc(1);	/* volatile: not optimised away */

		free(p);
		real = (char *(*) (const char *, const char *)) dlsym(RTLD_NEXT, "bindtextdomain");
	}
	return real(domain, dir);
}
