/*
 * license.h — license keys: the key format (license_key.c) and the keys'
 * part in the grant lifecycle.
 */
#ifndef BENEFITS_LICENSE_H
#define BENEFITS_LICENSE_H

#include "postgres.h"

#include "grants.h"

/*
 * A generated key: an optional upper-cased prefix and a dash, then seven
 * dash-separated groups of four Crockford base32 symbols: 27 random symbols
 * (135 bits from libsodium) and a Luhn mod 32 check symbol.
 */
#define LICENSE_KEY_GROUPS		7
#define LICENSE_KEY_GROUP_LEN	4
#define LICENSE_KEY_MAX_INPUT	256

extern char *LicenseKeyGenerate(const char *prefix);

/*
 * Canonical form of a key as a customer typed it: trimmed and upper-cased;
 * for a key of the generated shape, ambiguous symbols are mapped (O to 0, I
 * and L to 1).  Returns NULL when the input cannot be a key: empty, too long,
 * or of the generated shape with a wrong check symbol.  Such input is answered
 * not_found without touching a table.
 */
extern char *LicenseKeyCanonical(const char *input, int len);

/* Whether a canonical key has the generated shape (and so a check symbol). */
extern bool LicenseKeyHasGeneratedShape(const char *canonical);

/* The form shown in webhooks and lists: "****-" and the last four symbols. */
extern char *LicenseKeyDisplay(const char *canonical);

/* license_grants.c: issue, restore and revoke a grant's key. */
extern void LicenseKeyGrant(GrantChange *change);
extern void LicenseKeyRevoke(GrantChange *change);

#endif
