/*
 * provider_names.h — the shapes of GitHub and Discord names and ids that may
 * become path segments of provider requests.
 */
#ifndef BENEFITS_PROVIDER_NAMES_H
#define BENEFITS_PROVIDER_NAMES_H

#include "postgres.h"

/* A GitHub user or organization login: 1 to 39 letters, digits, hyphens. */
extern bool GithubLoginValid(const char *s);
/* A GitHub repository name: 1 to 100 letters, digits, '.', '-', '_'. */
extern bool GithubRepositoryValid(const char *s);
/* A Discord id (snowflake) of at least min_digits digits, at most 2^64 - 1. */
extern bool DiscordIdValid(const char *s, int min_digits);
/* A positive decimal integer of at most 20 digits (GitHub invitation ids). */
extern bool DecimalIdValid(const char *s);

#endif
