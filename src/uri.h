/*
 * uri.h — percent-encoding (uri.c).
 */
#ifndef BENEFITS_URI_H
#define BENEFITS_URI_H

#include "postgres.h"

#include "lib/stringinfo.h"

/*
 * Appends s with every byte but RFC 3986's unreserved characters (and '/'
 * when keep_slash) as %XX: SigV4's encoding, and a safe query parameter or
 * form value.
 */
extern void UriEncode(StringInfo buf, const char *s, bool keep_slash);

/*
 * The length of the "scheme://host[:port]" origin url starts with, when it
 * names a plain dotted host name and only a path (or nothing) follows; 0
 * otherwise.  A Content-Security-Policy source, and a redirect URI's origin.
 */
extern size_t UriOriginLength(const char *url, const char *scheme);

/*
 * Why URI cannot be where a browser is sent back to the application (https,
 * or http to the loopback host; at most MAX_LEN bytes), or NULL when it can.
 */
extern const char *UriRedirectProblem(const char *uri, int max_len);

#endif
