/*
 * asan_preload.c — preloaded after libasan into a PostgreSQL server that was
 * not built with AddressSanitizer (test/tools/sanitizer.sh).
 *
 * A preloaded libasan initialises lazily, on the first malloc.  On Debian 12
 * that first malloc comes from libgpg-error's constructor, inside glibc's
 * bindtextdomain() with the gettext lock (_nl_state_lock) held for writing;
 * ASan's initialisation calls dlerror(), whose dcgettext() takes and releases
 * the same lock again, so bindtextdomain's own unlock then corrupts it and the
 * next bindtextdomain() (postgres' set_pglocale_pgservice) waits forever.
 * This bindtextdomain() makes ASan initialise first, with no lock held, then
 * calls glibc's.
 *
 * UBSan's runtime (libubsan, loaded with the extension) reads UBSAN_OPTIONS
 * from /proc/self/environ at its first report, long after the postmaster has
 * overwritten that memory with its process title, so the options would be
 * lost (no stack trace).  The constructor below keeps a copy of them at
 * exec time and __ubsan_default_options(), which the runtime asks first,
 * returns it.
 *
 * Concurrency: the constructor runs once, before main(), in one thread; the
 * rest only reads what it stored.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

char	   *bindtextdomain(const char *domain, const char *dir);
const char *__ubsan_default_options(void);

/* UBSAN_OPTIONS as they were at exec time; print_stacktrace=1 if unset. */
static char ubsan_options[4096] = "print_stacktrace=1";

/* Makes ASan initialise before glibc's bindtextdomain takes the gettext lock. */
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

/* Copies UBSAN_OPTIONS while the environment is still the one exec gave. */
__attribute__((constructor))
static void
keep_ubsan_options(void)
{
	const char *options = getenv("UBSAN_OPTIONS");

	if (options != NULL && strlen(options) < sizeof(ubsan_options))
		strcpy(ubsan_options, options);
}

/* The options UBSan's runtime starts from (it would read garbage otherwise). */
const char *
__ubsan_default_options(void)
{
	return ubsan_options;
}
