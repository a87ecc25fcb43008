/*
 * backend_shim.c — the few backend services the extension's pure functions
 * call, for libFuzzer targets that link those functions without a server.
 *
 * Memory: every palloc is its own malloc, linked into one list, so ASan sees
 * each allocation's bounds and FuzzRun frees all of an input's memory when
 * it ends (a memory context per input).  Errors: ereport(ERROR) formats its
 * message and siglongjmps to PG_exception_stack as the backend does; FuzzRun
 * sets that to itself, so an ERROR ends the input as a clean rejection,
 * unless it is an internal error (elog, XX000), which the code under test
 * must never raise for any input and is reported as a crash.  StringInfo,
 * psprintf, snprintf, UTF-8 helpers and qsort come from libpgcommon and
 * libpgport; what here stands for a backend function behaves as that one
 * does in a UTF-8 database.
 *
 * Concurrency: one thread (libFuzzer's), one input at a time.
 */
#include "postgres.h"

#include <setjmp.h>
#include <time.h>

#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "nodes/pg_list.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "fuzz.h"

/* ---- memory: one list of the input's allocations ---- */

typedef struct Chunk
{
	struct Chunk *prev;
	struct Chunk *next;
	/* the caller's bytes follow, MAXALIGNed */
} Chunk;

#define CHUNK_HEADER MAXALIGN(sizeof(Chunk))

static Chunk arena = {&arena, &arena};

MemoryContext CurrentMemoryContext = NULL;
sigjmp_buf *PG_exception_stack = NULL;
ErrorContextCallback *error_context_stack = NULL;

/* The chunk holding a palloc'd pointer. */
static Chunk *
ChunkOf(void *pointer)
{
	return (Chunk *) ((char *) pointer - CHUNK_HEADER);
}

/* Links a fresh chunk of SIZE caller bytes, failing as palloc does on a bad size. */
static void *
ArenaAlloc(Size size, bool zero)
{
	Chunk	   *c;

	if (!AllocSizeIsValid(size))
		elog(ERROR, "invalid memory alloc request size %zu", size);
	c = zero ? calloc(1, CHUNK_HEADER + size) : malloc(CHUNK_HEADER + size);
	if (c == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	c->next = arena.next;
	c->prev = &arena;
	arena.next->prev = c;
	arena.next = c;
	return (char *) c + CHUNK_HEADER;
}

/* Frees every allocation of the input. */
static void
ArenaReset(void)
{
	while (arena.next != &arena)
	{
		Chunk	   *c = arena.next;

		arena.next = c->next;
		free(c);
	}
	arena.prev = &arena;
}

void *
palloc(Size size)
{
	return ArenaAlloc(size, false);
}

void *
palloc0(Size size)
{
	return ArenaAlloc(size, true);
}

void *
palloc_extended(Size size, int flags)
{
	return ArenaAlloc(size, (flags & MCXT_ALLOC_ZERO) != 0);
}

void *
MemoryContextAlloc(MemoryContext context, Size size)
{
	return ArenaAlloc(size, false);
}

void *
MemoryContextAllocZero(MemoryContext context, Size size)
{
	return ArenaAlloc(size, true);
}

void
pfree(void *pointer)
{
	Chunk	   *c = ChunkOf(pointer);

	c->prev->next = c->next;
	c->next->prev = c->prev;
	free(c);
}

void *
repalloc(void *pointer, Size size)
{
	Chunk	   *old = ChunkOf(pointer);
	Chunk	   *c;

	if (!AllocSizeIsValid(size))
		elog(ERROR, "invalid memory alloc request size %zu", size);
	old->prev->next = old->next;
	old->next->prev = old->prev;
	c = realloc(old, CHUNK_HEADER + size);
	if (c == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	c->next = arena.next;
	c->prev = &arena;
	arena.next->prev = c;
	arena.next = c;
	return (char *) c + CHUNK_HEADER;
}

char *
pnstrdup(const char *in, Size len)
{
	char	   *out;

	len = strnlen(in, len);
	out = palloc(len + 1);
	memcpy(out, in, len);
	out[len] = '\0';
	return out;
}

char *
pstrdup(const char *in)
{
	return pnstrdup(in, strlen(in));
}

char *
MemoryContextStrdup(MemoryContext context, const char *string)
{
	return pstrdup(string);
}

/* ---- errors ---- */

int			FuzzLastErrcode;
const char *FuzzLastMessage;

static int	error_level;
static char error_message[1024];

bool
errstart(int elevel, const char *domain)
{
	/* Lower levels are formatted too (a bad format argument is a finding) and then dropped. */
	error_level = elevel;
	FuzzLastErrcode = elevel >= ERROR ? ERRCODE_INTERNAL_ERROR : 0;
	error_message[0] = '\0';
	return true;
}

bool
errstart_cold(int elevel, const char *domain)
{
	return errstart(elevel, domain);
}

void
errfinish(const char *filename, int lineno, const char *funcname)
{
	if (error_level < ERROR)
		return;
	FuzzLastMessage = error_message;
	if (error_level > ERROR || PG_exception_stack == NULL)
		FuzzFail("%s at %s:%d (%s)", error_message, filename, lineno, funcname);
	siglongjmp(*PG_exception_stack, 1);
}

int
errcode(int sqlerrcode)
{
	FuzzLastErrcode = sqlerrcode;
	return 0;
}

/* Formats an error field as the backend would (the text is kept for the message only). */
static void
FormatField(char *out, size_t outlen, const char *fmt, va_list args)
{
	char		scratch[1024];

	vsnprintf(out ? out : scratch, out ? outlen : sizeof(scratch), fmt, args);
}

int
errmsg(const char *fmt,...)
{
	va_list		args;

	va_start(args, fmt);
	FormatField(error_message, sizeof(error_message), fmt, args);
	va_end(args);
	return 0;
}

int
errmsg_internal(const char *fmt,...)
{
	va_list		args;

	va_start(args, fmt);
	FormatField(error_message, sizeof(error_message), fmt, args);
	va_end(args);
	return 0;
}

int
errdetail(const char *fmt,...)
{
	va_list		args;

	va_start(args, fmt);
	FormatField(NULL, 0, fmt, args);
	va_end(args);
	return 0;
}

int
errdetail_internal(const char *fmt,...)
{
	va_list		args;

	va_start(args, fmt);
	FormatField(NULL, 0, fmt, args);
	va_end(args);
	return 0;
}

int
errhint(const char *fmt,...)
{
	va_list		args;

	va_start(args, fmt);
	FormatField(NULL, 0, fmt, args);
	va_end(args);
	return 0;
}

/* ---- the driver's side ---- */

static uint64 inputs_run;
static uint64 inputs_rejected;

/* At exit: how many inputs ended in a clean rejection (the summary of make fuzz reads it). */
static void
ReportRejections(void)
{
	fprintf(stderr, "==benefits-fuzz== inputs run: " UINT64_FORMAT ", clean rejections (ereport ERROR): "
			UINT64_FORMAT "\n", inputs_run, inputs_rejected);
}

FuzzOutcome
FuzzRun(FuzzBody body, const uint8_t *data, size_t size)
{
	sigjmp_buf	here;
	volatile FuzzOutcome outcome = FUZZ_ACCEPTED;

	if (inputs_run++ == 0)
		atexit(ReportRejections);
	FuzzLastErrcode = 0;
	FuzzLastMessage = NULL;
	if (sigsetjmp(here, 0) == 0)
	{
		PG_exception_stack = &here;
		body(data, size);
	}
	else
	{
		outcome = FUZZ_REJECTED;
		inputs_rejected++;
		FuzzCheck(FuzzLastErrcode != ERRCODE_INTERNAL_ERROR, "internal error (XX000): %s", FuzzLastMessage);
	}
	PG_exception_stack = NULL;
	ArenaReset();
	return outcome;
}

void
FuzzFail(const char *fmt,...)
{
	va_list		args;

	fprintf(stderr, "==benefits-fuzz== property failed: ");
	va_start(args, fmt);
	vfprintf(stderr, fmt, args);
	va_end(args);
	fputc('\n', stderr);
	abort();
}

char *
FuzzString(const uint8_t *data, size_t len)
{
	char	   *s = palloc(len + 1);

	memcpy(s, data, len);
	s[len] = '\0';
	return s;
}

int
FuzzSplit(const uint8_t *data, size_t size, char **pieces, int max)
{
	int			n = 0;
	size_t		start = 0;

	for (size_t i = 0; i <= size && n < max; i++)
	{
		if (i == size || data[i] == '\0')
		{
			pieces[n++] = FuzzString(data + start, i - start);
			start = i + 1;
		}
	}
	for (int i = n; i < max; i++)
		pieces[i] = pstrdup("");
	return n;
}

/* ---- varlena text ---- */

text *
cstring_to_text_with_len(const char *s, int len)
{
	text	   *t = palloc(len + VARHDRSZ);

	SET_VARSIZE(t, len + VARHDRSZ);
	memcpy(VARDATA(t), s, len);
	return t;
}

text *
cstring_to_text(const char *s)
{
	return cstring_to_text_with_len(s, strlen(s));
}

char *
text_to_cstring(const text *t)
{
	return pnstrdup(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

/* Values made here are never toasted nor compressed. */
struct varlena *
pg_detoast_datum_packed(struct varlena *datum)
{
	return datum;
}

struct varlena *
pg_detoast_datum(struct varlena *datum)
{
	return datum;
}

/* ---- the backend's encoders, as in a UTF-8 database ---- */

/* As the backend's escape_json: a JSON string literal. */
void
escape_json(StringInfo buf, const char *str)
{
	appendStringInfoCharMacro(buf, '"');
	for (const char *p = str; *p; p++)
	{
		switch (*p)
		{
			case '\b':
				appendStringInfoString(buf, "\\b");
				break;
			case '\f':
				appendStringInfoString(buf, "\\f");
				break;
			case '\n':
				appendStringInfoString(buf, "\\n");
				break;
			case '\r':
				appendStringInfoString(buf, "\\r");
				break;
			case '\t':
				appendStringInfoString(buf, "\\t");
				break;
			case '"':
				appendStringInfoString(buf, "\\\"");
				break;
			case '\\':
				appendStringInfoString(buf, "\\\\");
				break;
			default:
				if ((unsigned char) *p < ' ')
					appendStringInfo(buf, "\\u%04x", (int) *p);
				else
					appendStringInfoCharMacro(buf, *p);
				break;
		}
	}
	appendStringInfoCharMacro(buf, '"');
}

uint64
hex_encode(const char *src, size_t len, char *dst)
{
	static const char hextbl[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++)
	{
		*dst++ = hextbl[(src[i] >> 4) & 0xF];
		*dst++ = hextbl[src[i] & 0xF];
	}
	return (uint64) len * 2;
}

int
pg_mblen(const char *mbstr)
{
	return pg_utf_mblen((const unsigned char *) mbstr);
}

int
pg_mbstrlen(const char *mbstr)
{
	int			len = 0;

	while (*mbstr)
	{
		mbstr += pg_mblen(mbstr);
		len++;
	}
	return len;
}

bool
pg_verify_mbstr(int encoding, const char *mbstr, int len, bool noError)
{
	if (pg_encoding_verifymbstr(encoding, mbstr, len) == len)
		return true;
	if (noError)
		return false;
	ereport(ERROR,
			(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
			 errmsg("invalid byte sequence for encoding \"%s\"", pg_enc2name_tbl[encoding].name)));
}

/* ---- time ---- */

pg_time_t
timestamptz_to_time_t(TimestampTz t)
{
	return (pg_time_t) (t / USECS_PER_SEC + ((POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY));
}

struct pg_tm *
pg_gmtime(const pg_time_t *timep)
{
	static struct pg_tm result;
	struct tm	tm;
	time_t		t = (time_t) *timep;

	if (gmtime_r(&t, &tm) == NULL)
		return NULL;
	result.tm_sec = tm.tm_sec;
	result.tm_min = tm.tm_min;
	result.tm_hour = tm.tm_hour;
	result.tm_mday = tm.tm_mday;
	result.tm_mon = tm.tm_mon;
	result.tm_year = tm.tm_year;
	result.tm_wday = tm.tm_wday;
	result.tm_yday = tm.tm_yday;
	result.tm_isdst = 0;
	result.tm_gmtoff = 0;
	result.tm_zone = "GMT";
	return &result;
}

/* ---- lists (pointer lists only) ---- */

/* An empty pointer list with room for N cells. */
static List *
NewList(int n)
{
	int			room = Max(n, 8);
	List	   *list = palloc(offsetof(List, initial_elements) + room * sizeof(ListCell));

	list->type = T_List;
	list->length = n;
	list->max_length = room;
	list->elements = list->initial_elements;
	return list;
}

List *
lappend(List *list, void *datum)
{
	if (list == NIL)
		list = NewList(0);
	if (list->length == list->max_length)
	{
		ListCell   *cells = palloc(2 * list->max_length * sizeof(ListCell));

		memcpy(cells, list->elements, list->length * sizeof(ListCell));
		list->elements = cells;
		list->max_length *= 2;
	}
	list->elements[list->length++].ptr_value = datum;
	return list;
}

List *
list_make1_impl(NodeTag t, ListCell datum1)
{
	List	   *list = NewList(1);

	list->elements[0] = datum1;
	return list;
}

List *
list_make2_impl(NodeTag t, ListCell datum1, ListCell datum2)
{
	List	   *list = NewList(2);

	list->elements[0] = datum1;
	list->elements[1] = datum2;
	return list;
}

List *
list_make3_impl(NodeTag t, ListCell datum1, ListCell datum2, ListCell datum3)
{
	List	   *list = NewList(3);

	list->elements[0] = datum1;
	list->elements[1] = datum2;
	list->elements[2] = datum3;
	return list;
}

List *
list_make4_impl(NodeTag t, ListCell datum1, ListCell datum2, ListCell datum3, ListCell datum4)
{
	List	   *list = NewList(4);

	list->elements[0] = datum1;
	list->elements[1] = datum2;
	list->elements[2] = datum3;
	list->elements[3] = datum4;
	return list;
}
