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

/* The form shown in webhooks and lists: "****-" and the last four symbols. */
extern char *LicenseKeyDisplay(const char *canonical);

/*
 * SQL pieces of issuing a key from a benefit's normalized properties, shared
 * by the single and the bulk grant: the limits, the expiry (none when the
 * grant comes from a subscription), and what another grant of an existing
 * key changes (type_license_keys.c).
 */
#define LICENSE_KEY_LIMITS_FROM(props) \
	"(" props "->>'limit_usage')::int, (" props "->'activations'->>'limit')::int"
#define LICENSE_KEY_EXPIRY_FROM(props, via_subscription) \
	"CASE WHEN " via_subscription " OR jsonb_typeof(" props "->'expires') IS DISTINCT FROM 'object' THEN NULL " \
	"ELSE now() + ((" props "->'expires'->>'ttl') || ' ' || (" props "->'expires'->>'timeframe'))::interval END"
#define LICENSE_KEY_ON_CONFLICT \
	"ON CONFLICT (customer_id, benefit_id) DO UPDATE SET " \
	" status = CASE k.status WHEN 'revoked' THEN 'granted' ELSE k.status END, " \
	" limit_usage = CASE k.status WHEN 'revoked' THEN EXCLUDED.limit_usage ELSE k.limit_usage END, " \
	" limit_activations = CASE k.status WHEN 'revoked' THEN EXCLUDED.limit_activations " \
	"  ELSE k.limit_activations END, " \
	" expires_at = CASE WHEN k.status = 'revoked' THEN EXCLUDED.expires_at " \
	"  WHEN k.expires_at IS NULL OR EXCLUDED.expires_at IS NULL THEN NULL " \
	"  ELSE greatest(k.expires_at, EXCLUDED.expires_at) END, " \
	" modified_at = now()"

#endif
