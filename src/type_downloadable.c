/*
 * type_downloadable.c — the downloadable benefit type (Polar's
 * "downloadables"): files in S3-compatible storage that holders may download.
 *
 * Properties: {files: [file id | {name, size[, mime_type]}], archived?},
 * normalized to {"files": [file id, ...], "archived": {file id: bool}}.  A
 * {name, size} entry registers the file in benefits.files on the spot (at
 * most 10 GB), in the transaction that writes the benefit.  Granting has
 * nothing to deliver: download links are signed when the portal is shown
 * (portal_document.c, s3.c).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "benefit_type.h"
#include "properties.h"
#include "s3.h"

/* A downloadable file is at most 10 GB. */
#define MAX_FILE_SIZE			INT64CONST(10737418240)
/* Files of one benefit: each is a signed URL in every holder's portal document. */
#define MAX_FILES				500

static SPIPlanPtr file_plan = NULL;
static SPIPlanPtr file_insert_plan = NULL;

/* A file name: 1 to 255 characters, no control characters and no '/'. */
static char *
FileNameAt(JsonbValue *v, const char *path)
{
	char	   *s = PropStringOf(v);
	bool		ok = s != NULL && s[0] != '\0' && pg_mbstrlen(s) <= 255;

	for (const char *p = s; ok && *p; p++)
		ok = (unsigned char) *p >= 0x20 && *p != 0x7f && *p != '/';
	if (!ok)
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("%s must be a file name of 1 to 255 characters", path),
				errdetail("A file name holds no '/' and no control characters."));
	return s;
}

/* A media type "type/subtype" (RFC 6838 characters), lower-cased. */
static char *
MimeTypeAt(JsonbValue *v, const char *path)
{
	char	   *s = PropStringOf(v);
	size_t		len = s ? strlen(s) : 0;
	int			slashes = 0;
	bool		ok = len >= 3 && len <= 255 && s[0] != '/' && s[len - 1] != '/';

	for (size_t i = 0; ok && i < len; i++)
	{
		char		c = s[i];

		if (c == '/')
			slashes++;
		else if (c >= 'A' && c <= 'Z')
			s[i] = c + ('a' - 'A');
		else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
				   strchr("!#$&^_.+-", c) != NULL))
			ok = false;
	}
	if (!ok || slashes != 1)
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("%s must be a media type such as application/zip", path));
	return s;
}

/* Whether file is a file of the organization; locks it against deletion. */
static bool
FileExists(PropertiesState *state, pg_uuid_t *file)
{
	Oid			argtypes[2] = {UUIDOID, UUIDOID};
	Datum		args[2] = {UUIDPGetDatum(file), UUIDPGetDatum(&state->organization_id)};
	SPIPlanPtr	plan = BenefitsPlan(&file_plan,
								"SELECT 1 FROM benefits.files"
								" WHERE id OPERATOR(pg_catalog.=) $1"
								" AND organization_id OPERATOR(pg_catalog.=) $2"
								" FOR KEY SHARE",
								2, argtypes);

	if (SPI_execute_plan(plan, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "looking up a file failed");
	return SPI_processed == 1;
}

/* Registers a file given as {name, size, mime_type} and returns its id. */
static pg_uuid_t
FileRegister(PropertiesState *state, const char *name, int64 size, const char *mime_type)
{
	Oid			argtypes[4] = {UUIDOID, TEXTOID, INT8OID, TEXTOID};
	Datum		args[4] = {UUIDPGetDatum(&state->organization_id),
		CStringGetTextDatum(name), Int64GetDatum(size),
	mime_type ? CStringGetTextDatum(mime_type) : (Datum) 0};
	char		nulls[4] = {' ', ' ', ' ', mime_type ? ' ' : 'n'};
	SPIPlanPtr	plan = BenefitsPlan(&file_insert_plan,
								"INSERT INTO benefits.files (id, organization_id, name, size, mime_type, storage_key)"
								" SELECT f.id, $1, $2, $3, COALESCE($4, 'application/octet-stream'),"
								"        benefits.file_storage_key($1, f.id, $2)"
								" FROM (SELECT pg_catalog.gen_random_uuid() AS id) AS f"
								" RETURNING id",
								4, argtypes);
	bool		isnull;

	if (SPI_execute_plan(plan, args, nulls, false, 0) != SPI_OK_INSERT_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "registering a file failed");
	return *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * files: file ids of the organization, or {name, size[, mime_type]} objects
 * registered in benefits.files here; archived: {file id: bool} for files of
 * the list.  The output lists ids in the given order and archives each one.
 */
static void
NormalizeDownloadable(PropertiesState *state, JsonbContainer *root)
{
	static const char *const keys[] = {"files", "archived", NULL};
	static const char *const file_keys[] = {"name", "size", "mime_type", NULL};
	JsonbContainer *elements;
	JsonbValue *archived_value;
	int			n;
	pg_uuid_t  *ids;
	bool	   *registered;
	char	  **names;
	int64	   *sizes;
	char	  **mime_types;
	bool	   *archived;

	PropCheckKeys(state, root, "properties", keys);
	elements = PropNonEmptyArrayAt(PropRequiredField(root, "properties", "files"), "properties.files",
								   MAX_FILES);
	n = JsonContainerSize(elements);
	ids = palloc0(n * sizeof(pg_uuid_t));
	registered = palloc0(n * sizeof(bool));
	names = palloc0(n * sizeof(char *));
	sizes = palloc0(n * sizeof(int64));
	mime_types = palloc0(n * sizeof(char *));
	archived = palloc0(n * sizeof(bool));

	for (int i = 0; i < n; i++)
	{
		char	   *path = psprintf("properties.files[%d]", i);
		JsonbValue *element = getIthJsonbValueFromContainer(elements, i);

		if (element->type == jbvString)
		{
			char	   *text = PropStringOf(element);

			if (!PropParseUuid(text, &ids[i]))
				ereport(ERROR, PROPERTY_ERROR,
						errmsg("%s must be a file id (uuid) or an object {name, size}", path));
			if (!FileExists(state, &ids[i]))
				ereport(ERROR, PROPERTY_ERROR,
						errmsg("%s is not a file of this organization", path),
						errdetail("No file %s exists in organization %s.",
								  BenefitsUuidText(&ids[i]), BenefitsUuidText(&state->organization_id)));
			for (int j = 0; j < i; j++)
				if (!registered[j] && memcmp(&ids[i], &ids[j], sizeof(pg_uuid_t)) == 0)
					ereport(ERROR, PROPERTY_ERROR,
							errmsg("%s repeats properties.files[%d]", path, j),
							errdetail("Both name the file %s.", BenefitsUuidText(&ids[i])));
		}
		else if (PropIsObject(element))
		{
			JsonbContainer *file = element->val.binary.data;
			JsonbValue *mime;

			PropCheckKeys(state, file, path, file_keys);
			registered[i] = true;
			names[i] = FileNameAt(PropRequiredField(file, path, "name"), psprintf("%s.name", path));
			sizes[i] = PropIntegerAt(PropRequiredField(file, path, "size"), psprintf("%s.size", path),
								 0, MAX_FILE_SIZE);
			if ((mime = PropField(file, "mime_type")) != NULL)
				mime_types[i] = MimeTypeAt(mime, psprintf("%s.mime_type", path));
		}
		else
			ereport(ERROR, PROPERTY_ERROR,
					errmsg("%s must be a file id (uuid) or an object {name, size}", path));
	}

	/* archived names files of the list by id. */
	if ((archived_value = PropField(root, "archived")) != NULL)
	{
		JsonbContainer *map = PropObjectAt(archived_value, "properties.archived");
		JsonbIterator *it = JsonbIteratorInit(map);
		JsonbValue	v;
		JsonbIteratorToken token;
		char	   *key = NULL;

		while ((token = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			if (token == WJB_KEY)
				key = pnstrdup(v.val.string.val, v.val.string.len);
			else if (token == WJB_VALUE)
			{
				char	   *path = psprintf("properties.archived.%s", key);
				pg_uuid_t	id;
				int			found = -1;

				if (PropParseUuid(key, &id))
					for (int i = 0; i < n && found < 0; i++)
						if (!registered[i] && memcmp(&id, &ids[i], sizeof(pg_uuid_t)) == 0)
							found = i;
				if (found < 0)
					ereport(ERROR, PROPERTY_ERROR,
							errmsg("%s is not a file id of properties.files", path));
				archived[found] = PropBoolAt(&v, path);
			}
		}
	}

	/* Everything is valid: register the new files. */
	for (int i = 0; i < n; i++)
		if (registered[i])
			ids[i] = FileRegister(state, names[i], sizes[i], mime_types[i]);

	PropPutKey(state, "files");
	pushJsonbValue(&state->out, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < n; i++)
		PropPutString(state, WJB_ELEM, BenefitsUuidText(&ids[i]));
	pushJsonbValue(&state->out, WJB_END_ARRAY, NULL);
	PropPutKey(state, "archived");
	pushJsonbValue(&state->out, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < n; i++)
	{
		PropPutKey(state, BenefitsUuidText(&ids[i]));
		PropPutBool(state, archived[i]);
	}
	pushJsonbValue(&state->out, WJB_END_OBJECT, NULL);
}

/* ---- the customer portal ---- */

enum
{
	F_ID = 1, F_NAME, F_SIZE, F_MIME_TYPE, F_CHECKSUM, F_STORAGE_KEY
};

/* One shown benefit's files, in the order it names them. */
typedef struct PortalFiles
{
	int			nfiles;
	char	  **file_keys;		/* as written (the keys of "archived") */
	pg_uuid_t  *file_ids;
	const Rows *files;			/* every shown file, fetched once */
} PortalFiles;

/* The files a downloadable benefit names, in order; null entries are skipped. */
static void
NamedFiles(PortalFiles *s, JsonbContainer *properties)
{
	JsonbContainer *files = JsonContainerOf(JsonMember(properties, "files"));
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			n;

	s->nfiles = 0;
	if (files == NULL || !JsonContainerIsArray(files))
		return;
	n = JsonContainerSize(files);
	s->file_keys = palloc(sizeof(char *) * (n + 1));
	s->file_ids = palloc(sizeof(pg_uuid_t) * (n + 1));
	it = JsonbIteratorInit(files);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *text;

		if (tok != WJB_ELEM || (text = BenefitsJsonbValueText(&v)) == NULL)
			continue;
		s->file_keys[s->nfiles] = text;
		s->file_ids[s->nfiles++] = *PortalUuidFromText(text);
	}
}

/* The files of a downloadable benefit, each with a fresh download URL. */
static void
Files(Doc *doc, JsonbContainer *properties, const PortalFiles *s, TimestampTz now)
{
	JsonbContainer *archived = JsonContainerOf(JsonMember(properties, "archived"));
	int			ttl = S3DownloadUrlTtl();
	bool		configured = S3Configured();
	S3Config	config;
	char	   *expires_at = NULL;

	if (configured)
	{
		S3ConfigFromSettings(&config);
		expires_at = PortalTimeText(now + (int64) ttl * USECS_PER_SEC);
	}
	DocBeginArray(doc);
	for (int i = 0; i < s->nfiles; i++)
	{
		int			f;
		char	   *name;
		char	   *mime;
		S3QueryParam params[2];

		if (JsonMemberFlag(archived, s->file_keys[i]))
			continue;
		for (f = 0; f < s->files->n; f++)
			if (memcmp(DatumGetUUIDP(RowsGet(s->files, f, F_ID)), &s->file_ids[i], UUID_LEN) == 0)
				break;
		if (f == s->files->n)
			continue;			/* disabled, archived, not uploaded or elsewhere */

		name = RowsText(s->files, f, F_NAME);
		mime = RowsText(s->files, f, F_MIME_TYPE);
		params[0].name = "response-content-disposition";
		params[0].value = S3ContentDisposition("attachment", name);
		params[1].name = "response-content-type";
		params[1].value = mime;

		DocBeginObject(doc);
		DocKey(doc, "id");
		DocUuidCol(doc, s->files, f, F_ID);
		DocKey(doc, "name");
		DocStr(doc, name);
		DocKey(doc, "size");
		DocIntCol(doc, s->files, f, F_SIZE);
		DocKey(doc, "mime_type");
		DocStr(doc, mime);

		/*
		 * Without storage settings the rest of the portal still serves the
		 * customer; the file says why it has no link.
		 */
		DocKey(doc, "download_url");
		DocStr(doc, configured ? S3PresignUrl(&config, "GET", RowsText(s->files, f, F_STORAGE_KEY),
											ttl, now, params, 2) : NULL);
		DocKey(doc, "download_error");
		DocStr(doc, configured ? NULL : "file storage is not configured");
		DocKey(doc, "checksum_sha256");
		DocTextCol(doc, s->files, f, F_CHECKSUM);
		DocKey(doc, "download_expires_at");
		DocStr(doc, expires_at);
		DocEndObject(doc);
	}
	DocEndArray(doc);
}


static void
DownloadablePortalCollect(PortalBuild *ctx, PortalBenefit **benefits, int n)
{
	static SPIPlanPtr files_plan;
	Oid			uuid_array_uuid[2] = {UUIDARRAYOID, UUIDOID};
	Rows	   *files = palloc0(sizeof(Rows));
	pg_uuid_t  *ids;
	int			nids = 0;
	Datum		args[2];

	for (int i = 0; i < n; i++)
	{
		PortalFiles *pf = palloc0(sizeof(PortalFiles));

		NamedFiles(pf, benefits[i]->properties);
		pf->files = files;
		benefits[i]->type_state = pf;
		nids += pf->nfiles;
	}
	if (nids == 0)
		return;
	ids = palloc(sizeof(pg_uuid_t) * nids);
	nids = 0;
	for (int i = 0; i < n; i++)
	{
		PortalFiles *pf = benefits[i]->type_state;

		for (int f = 0; f < pf->nfiles; f++)
			ids[nids++] = pf->file_ids[f];
	}
	BenefitsGenericPlan(&files_plan,
						"SELECT f.id, f.name, f.size, f.mime_type, f.checksum_sha256, f.storage_key"
						"  FROM benefits.files f"
						" WHERE f.id = ANY ($1) AND f.organization_id = $2"
						"   AND f.enabled AND NOT f.archived AND f.uploaded_at IS NOT NULL",
						2, uuid_array_uuid);
	args[0] = BenefitsUuidArray(ids, nids);
	args[1] = ctx->organization_id;
	*files = RowsFetch(files_plan, args);
}

static void
DownloadablePortalMember(PortalBuild *ctx, PortalBenefit *b)
{
	Files(&ctx->doc, b->properties, b->type_state, ctx->now);
}

/* Files with their download links; remembers when the links expire. */
static void
FilesSection(StringInfo buf, JsonbContainer *files, char **link_expiry)
{
	int			n = PageArrayLength(files);

	if (n == 0)
	{
		appendStringInfoString(buf, "<p class=\"muted\">No files are available right now.</p>\n");
		return;
	}
	appendStringInfoString(buf, "<ul class=\"plain\">\n");
	for (int f = 0; f < n; f++)
	{
		JsonbContainer *x = PageElement(files, f);
		char	   *size = PageText(x, "size");
		char	   *checksum = PageText(x, "checksum_sha256");

		char	   *url = PageText(x, "download_url");

		if (url != NULL)
		{
			*link_expiry = PageText(x, "download_expires_at");
			appendStringInfoString(buf, "<li><a href=\"");
			PageEsc(buf, url);
			appendStringInfoString(buf, "\" download=\"");
			PageEsc(buf, PageText(x, "name"));
			appendStringInfoString(buf, "\">");
			PageEsc(buf, PageText(x, "name"));
			appendStringInfoString(buf, "</a> <span class=\"muted\">");
		}
		else
		{
			appendStringInfoString(buf, "<li>");
			PageEsc(buf, PageText(x, "name"));
			appendStringInfoString(buf, " <span class=\"muted\">(cannot be downloaded right now) ");
		}
		if (size)
			PageEsc(buf, text_to_cstring(DatumGetTextPP(DirectFunctionCall1(pg_size_pretty,
																		  Int64GetDatum(strtoll(size, NULL, 10))))));
		appendStringInfoString(buf, "</span>");
		if (checksum)
		{
			appendStringInfoString(buf, "<br><small class=\"muted\">SHA-256 <code>");
			PageEsc(buf, checksum);
			appendStringInfoString(buf, "</code></small>");
		}
		appendStringInfoString(buf, "</li>\n");
	}
	appendStringInfoString(buf, "</ul>\n");
}


static void
DownloadablePortalHtml(PortalPage *page, JsonbContainer *benefit)
{
	FilesSection(page->buf, PageContainer(benefit, "files"), &page->link_expiry);
}

/* Files are downloaded from the portal (its links are signed there, fresh). */
static void
DownloadableEmail(EmailBody *body, const EmailGrant *grant)
{
	EmailPortalLink(body, grant, "Download your files from your portal");
}

const BenefitType DownloadableBenefit = {
	.name = "downloadable",
	.alias = "downloadables",
	.webhook_name = "downloadables",
	.normalize = NormalizeDownloadable,
	.grant = GrantLocal,
	.grant_many = GrantLocalMany,
	.portal_key = "files",
	.portal_collect = DownloadablePortalCollect,
	.portal_member = DownloadablePortalMember,
	.portal_label = "Downloads",
	.portal_html = DownloadablePortalHtml,
	.email_instructions = DownloadableEmail,
};
