/*
 * s3.h — AWS Signature Version 4 presigned URLs for S3-compatible storage.
 *
 * The extension never talks to the storage itself: it signs URLs that the
 * customer's browser (downloads) or the application (uploads) uses directly.
 */
#ifndef BENEFITS_S3_H
#define BENEFITS_S3_H

#include "postgres.h"

#include "datatype/timestamp.h"

/* S3 refuses presigned URLs valid for longer than seven days. */
#define S3_MAX_EXPIRES			604800

/* A single PUT may carry at most 5 GiB; larger files use multipart uploads. */
#define S3_MAX_SINGLE_PUT		INT64CONST(5368709120)
#define S3_MAX_PARTS			10000
#define S3_MIN_PART_SIZE		INT64CONST(5242880)

/* One extra query parameter of a presigned request (unencoded). */
typedef struct S3QueryParam
{
	const char *name;
	const char *value;
} S3QueryParam;

/*
 * How the bucket is addressed (benefits.s3_url_style): in the host
 * (bucket.host, "virtual"), in the path (host/bucket, "path"), or chosen per
 * endpoint and bucket ("auto", see S3UsePathStyle).
 */
typedef enum S3UrlStyle
{
	S3_URL_AUTO,
	S3_URL_VIRTUAL,
	S3_URL_PATH
} S3UrlStyle;

/*
 * Where and as whom to sign.  S3ConfigFromSettings fills it from the
 * benefits.s3_* settings; tests may build one directly.
 */
typedef struct S3Config
{
	const char *endpoint;		/* scheme://host[:port][/prefix] */
	const char *region;
	const char *bucket;
	const char *access_key_id;
	const char *secret_access_key;
	S3UrlStyle	url_style;
} S3Config;

extern void S3Init(void);
extern void S3ConfigFromSettings(S3Config *config);
extern bool S3Configured(void);

/*
 * A presigned URL for METHOD on KEY, valid EXPIRES seconds from SIGNED_AT,
 * with the extra query parameters given (signed too).
 */
extern char *S3PresignUrl(const S3Config *config, const char *method,
						  const char *key, int expires, TimestampTz signed_at,
						  const S3QueryParam *params, int nparams);

/* The fields of a browser upload form (S3PresignPost), in form order. */
#define S3_POST_FIELDS			7
typedef struct S3PostForm
{
	char	   *url;			/* where the form posts */
	const char *names[S3_POST_FIELDS];
	char	   *values[S3_POST_FIELDS];
} S3PostForm;

/*
 * A browser upload form for exactly SIZE bytes at KEY, sending the browser
 * to REDIRECT_URL afterwards, valid EXPIRES seconds from SIGNED_AT.
 */
extern S3PostForm *S3PresignPost(const S3Config *config, const char *key, int64 size,
								 const char *redirect_url, int expires, TimestampTz signed_at);

/* A Content-Disposition value naming FILENAME (RFC 6266, RFC 5987). */
extern char *S3ContentDisposition(const char *disposition, const char *filename);

/* Seconds a download URL stays valid (benefits.download_url_ttl). */
extern int	S3DownloadUrlTtl(void);

/* Lower-case hex SHA-256 / HMAC-SHA256 helpers, shared with the sessions. */
extern void S3HexEncode(const unsigned char *bytes, size_t len, char *out);

#endif
