/*
 * license.h — license keys: the key format (license_key.c) and the keys'
 * part in the grant lifecycle.
 */
#ifndef BENEFITS_LICENSE_H
#define BENEFITS_LICENSE_H

#include "postgres.h"

#include "fmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "grants.h"

/*
 * A generated key: an optional upper-cased prefix and a dash, then seven
 * dash-separated groups of four Crockford base32 symbols: 27 random symbols
 * (135 bits from libsodium) and a Luhn mod 32 check symbol.
 */
#define LICENSE_KEY_GROUPS		7
#define LICENSE_KEY_GROUP_LEN	4
#define LICENSE_KEY_MAX_INPUT	256

/*
 * The largest activation limit of a key: activating counts the key's live
 * activations under its lock, and the portal lists them all.
 */
#define LICENSE_ACTIVATIONS_MAX	1000

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
 * grant comes from a subscription), the owning grant (key_per = grant; 0.2.0's
 * schema), and what another grant of an existing key changes
 * (type_license_keys.c).
 */
#define LICENSE_KEY_LIMITS_FROM(props) \
	"(" props "->>'limit_usage')::int, (" props "->'activations'->>'limit')::int"
#define LICENSE_KEY_EXPIRY_FROM(props, via_subscription) \
	"CASE WHEN " via_subscription " OR jsonb_typeof(" props "->'expires') IS DISTINCT FROM 'object' THEN NULL " \
	"ELSE now() + ((" props "->'expires'->>'ttl') || ' ' || (" props "->'expires'->>'timeframe'))::interval END"
#define LICENSE_KEY_GRANT_FROM(props, grant_id) \
	"CASE WHEN " props "->>'key_per' = 'grant' THEN " grant_id " END"
/* The conflict target: 0.1.0's one key per customer and benefit, or 0.2.0's holder. */
#define LICENSE_KEY_CUSTOMER_TARGET "(customer_id, benefit_id)"
#define LICENSE_KEY_HOLDER_TARGET "(customer_id, benefit_id, grant_id)"
#define LICENSE_KEY_ON_CONFLICT(target) \
	"ON CONFLICT " target " DO UPDATE SET " \
	" status = CASE k.status WHEN 'revoked' THEN 'granted' ELSE k.status END, " \
	" limit_usage = CASE k.status WHEN 'revoked' THEN EXCLUDED.limit_usage ELSE k.limit_usage END, " \
	" limit_activations = CASE k.status WHEN 'revoked' THEN EXCLUDED.limit_activations " \
	"  ELSE k.limit_activations END, " \
	" expires_at = CASE WHEN k.status = 'revoked' THEN EXCLUDED.expires_at " \
	"  WHEN k.expires_at IS NULL OR EXCLUDED.expires_at IS NULL THEN NULL " \
	"  ELSE greatest(k.expires_at, EXCLUDED.expires_at) END, " \
	" modified_at = now()"

/*
 * The license-key calls a customer's application makes (license_validate.c),
 * shared with the signed offline licenses (license_checkout.c).
 */
typedef enum LicenseKeyStatus
{
	LICENSE_KEY_GRANTED,
	LICENSE_KEY_REVOKED,
	LICENSE_KEY_DISABLED
} LicenseKeyStatus;

/* A license key row as the checks need it. */
typedef struct LicenseKeyRow
{
	pg_uuid_t	id;
	pg_uuid_t	customer_id;
	bool		has_benefit;
	pg_uuid_t	benefit_id;
	text	   *display_key;
	text	   *status_text;
	LicenseKeyStatus status;
	int32		usage;
	bool		has_limit_usage;
	int32		limit_usage;
	bool		has_limit_activations;
	int32		limit_activations;
	int64		validations;
	bool		has_last_validated;
	TimestampTz last_validated_at;
	bool		has_expires;
	TimestampTz expires_at;
} LicenseKeyRow;

/* A key argument in canonical form, or NULL when it cannot be a key. */
extern text *LicenseKeyArgument(FunctionCallInfo fcinfo, int argno);
/* The organization's key by a direct index scan under the active snapshot. */
extern bool LicenseKeyLookup(const pg_uuid_t *organization_id, text *canonical, LicenseKeyRow *row);
/* The first failed check of revoked, disabled, expired (NULL: none). */
extern const char *LicenseKeyRefusal(const LicenseKeyRow *row, TimestampTz now, const char **message);
/* Whether the activations table keeps history (0.2.0's deactivated_at). */
extern bool LicenseActivationsKeepHistory(void);
/* A fingerprint argument checked for shape (NULL when not given). */
extern text *LicenseFingerprintArgument(FunctionCallInfo fcinfo, int argno);

/*
 * activations.heartbeat as normalized (type_license_keys.c): a count and a
 * unit, the form the release reads as an interval (license_machines.c).
 */
#define LICENSE_HEARTBEAT_PATTERN "^[1-9][0-9]{0,6} (second|minute|hour|day)s?$"
/* run_maintenance's part: release activations that missed their heartbeat window. */
extern int	LicenseReleaseSilentActivations(void);

#endif
