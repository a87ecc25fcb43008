/*
 * meter_portal.c — a meter_credits benefit in the customer portal: the
 * document's "meter" member and the page's part of the benefit's card.
 *
 * The member tells the customer what their credits are worth now: the
 * balance, what was credited and used in the current period (since the
 * latest benefit credit, a grant or a renewal), when the benefit credits
 * left expire and how many, the last 20 credit and usage rows, and the
 * usage of each of the last 30 days (UTC days, as meter_usage_history's
 * daily buckets from a midnight, in one query without its checks).  The
 * page draws those 30 days as an inline SVG bar chart: no script, no
 * external asset, a title and description for assistive technology, and
 * each bar titled with its day and units.
 *
 * Concurrency: read-only, in the portal's snapshot; the lots' remaining
 * units are read with the usage not yet taken from them applied, as
 * meter_ledger.c settles it.  A database at 0.1.0's schema has no lots and
 * no usage times: its member has the balance and null or empty the rest.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "access/xact.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/numeric.h"

#include "benefits.h"
#include "meter_ledger.h"
#include "meter_portal.h"

/* How many recent rows and days the portal shows. */
#define RECENT_ROWS "20"
#define CHART_DAYS 30

/* The chart's geometry: bar slots, their bars, the baseline and tallest bar. */
#define CHART_SLOT 10
#define CHART_BAR 8
#define CHART_BASELINE 85
#define CHART_TALLEST 75
#define CHART_FILL "#2f6fdb"

static const char summary_sql[] =
	"SELECT m.id, m.name, coalesce(mb.balance, 0) AS balance, p.created_at AS period_start,"
	"       coalesce(mb.consumed - mb.settled_consumed, 0) AS pending,"
	"       (SELECT coalesce(sum(c.units), 0)::bigint FROM benefits.meter_credits c"
	"         WHERE c.customer_id = $2 AND c.meter_id = m.id AND c.id >= coalesce(p.id, 0)"
	"           AND c.units > 0) AS credited,"
	"       (SELECT coalesce(sum(u.units), 0)::bigint FROM benefits.meter_usage u"
	"         WHERE u.customer_id = $2 AND u.meter_id = m.id"
	"           AND u.occurred_at >= coalesce(p.created_at, '-infinity')) AS used"
	"  FROM benefits.meters m"
	"  LEFT JOIN benefits.meter_balances mb ON mb.customer_id = $2 AND mb.meter_id = m.id"
	"  LEFT JOIN LATERAL (SELECT c.id, c.created_at FROM benefits.meter_credits c"
	"                      WHERE c.customer_id = $2 AND c.meter_id = m.id AND c.reason IN ('grant', 'cycle')"
	"                      ORDER BY c.id DESC LIMIT 1) p ON true"
	" WHERE m.id = $1";

/* The lots left, in the order usage takes them (meter_ledger.c). */
static const char lots_sql[] =
	"SELECT x.expires_at, x.remaining FROM benefits.meter_lots x"
	" WHERE x.customer_id = $2 AND x.meter_id = $1 AND x.remaining > 0"
	" ORDER BY x.expires_at NULLS LAST, x.id";

/* 0.1.0's schema: the balance alone, the same columns. */
static const char summary_sql_0_1[] =
	"SELECT m.id, m.name, coalesce(mb.balance, 0) AS balance, NULL::timestamptz AS period_start,"
	"       0::bigint AS pending, NULL::bigint AS credited, NULL::bigint AS used"
	"  FROM benefits.meters m"
	"  LEFT JOIN benefits.meter_balances mb ON mb.customer_id = $2 AND mb.meter_id = m.id"
	" WHERE m.id = $1";

static const char recent_sql[] =
	"SELECT r.at, r.kind, r.units, r.balance_after FROM ("
	"  (SELECT u.occurred_at AS at, 'usage' AS kind, -u.units AS units, u.balance_after, u.id, 0 AS o"
	"     FROM benefits.meter_usage u WHERE u.customer_id = $2 AND u.meter_id = $1"
	"    ORDER BY u.occurred_at DESC LIMIT " RECENT_ROWS ")"
	"  UNION ALL"
	"  (SELECT c.created_at, c.reason, c.units, c.balance_after, c.id, 1"
	"     FROM benefits.meter_credits c WHERE c.customer_id = $2 AND c.meter_id = $1"
	"    ORDER BY c.id DESC LIMIT " RECENT_ROWS ")) r"
	" ORDER BY r.at DESC, r.o, r.id DESC LIMIT " RECENT_ROWS;

/* The days (UTC) with usage since $3, and their units. */
static const char daily_sql[] =
	"SELECT (x.occurred_at AT TIME ZONE 'UTC')::date AS day, sum(x.units)::bigint AS used"
	"  FROM benefits.meter_usage x"
	" WHERE x.customer_id = $2 AND x.meter_id = $1 AND x.occurred_at >= $3"
	" GROUP BY 1";

/* A column's number in fetched rows, by name. */
static int
Col(const Rows *r, const char *name)
{
	int			col = SPI_fnumber(r->desc, name);

	if (col <= 0)
		elog(ERROR, "portal meter query has no column %s", name);
	return col;
}

/* One member of a row object: its key, the column of the same name, and how it is written. */
typedef struct RowMember
{
	const char *key;
	void		(*write) (Doc *doc, const Rows *r, int row, int col);
} RowMember;

/* The last 20 credit and usage rows, newest first. */
static const RowMember recent_members[] = {
	{"at", DocTimeCol}, {"kind", DocTextCol}, {"units", DocIntCol}, {"balance_after", DocIntCol},
};


/*
 * A query's rows (arguments: meter, customer) as an array of objects whose
 * members are given in key order; empty under 0.1.0's schema.
 */
static void
RowsArray(Doc *doc, SPIPlanPtr *plan, const char *sql, Datum *args, bool lots,
		  const RowMember *members, int nmembers)
{
	Oid			types[2] = {UUIDOID, UUIDOID};
	Rows		r;

	if (!lots)
	{
		DocEmptyArray(doc);
		return;
	}
	r = RowsFetch(BenefitsGenericPlan(plan, sql, 2, types), args);
	DocBeginArray(doc);
	for (int i = 0; i < r.n; i++)
	{
		DocBeginObject(doc);
		for (int m = 0; m < nmembers; m++)
		{
			DocKey(doc, members[m].key);
			members[m].write(doc, &r, i, Col(&r, members[m].key));
		}
		DocEndObject(doc);
	}
	DocEndArray(doc);
}

/* An integer member's value, or null when absent. */
static void
DocOptionalInt(Doc *doc, bool present, int64 value)
{
	JsonbValue	v;

	if (!present)
	{
		DocNull(doc);
		return;
	}
	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(value);
	DocPush(doc, WJB_VALUE, &v);
}

/*
 * The usage of each of the last 30 days (UTC), today last, as [{date,
 * used}]: the days with usage from one query, the others 0.  Empty under
 * 0.1.0's schema.
 */
static void
DailyUsage(Doc *doc, Datum *args, bool lots)
{
	static SPIPlanPtr plan;
	Oid			types[3] = {UUIDOID, UUIDOID, TIMESTAMPTZOID};
	Datum		values[3] = {args[0], args[1], 0};
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	int			first = (int) (now / USECS_PER_DAY) - (CHART_DAYS - 1);	/* days since 2000-01-01 */
	int64		used[CHART_DAYS] = {0};
	Rows		r;

	if (!lots)
	{
		DocEmptyArray(doc);
		return;
	}
	values[2] = TimestampTzGetDatum((TimestampTz) first * USECS_PER_DAY);
	r = RowsFetch(BenefitsGenericPlan(&plan, daily_sql, 3, types), values);
	for (int i = 0; i < r.n; i++)
	{
		int			day = DatumGetDateADT(RowsGet(&r, i, Col(&r, "day"))) - first;

		if (day >= 0 && day < CHART_DAYS)
			used[day] = DatumGetInt64(RowsGet(&r, i, Col(&r, "used")));
	}
	DocBeginArray(doc);
	for (int i = 0; i < CHART_DAYS; i++)
	{
		int			year,
					month,
					mday;

		j2date(first + i + POSTGRES_EPOCH_JDATE, &year, &month, &mday);
		DocBeginObject(doc);
		DocKey(doc, "date");
		DocStr(doc, psprintf("%04d-%02d-%02d", year, month, mday));
		DocKey(doc, "used");
		DocOptionalInt(doc, true, used[i]);
		DocEndObject(doc);
	}
	DocEndArray(doc);
}

/*
 * When the benefit credits left first expire and how many expire then: the
 * lots with the usage not yet taken from them (pending) applied in the
 * order usage takes them.  False when none is left that expires.
 */
static bool
Expiry(Datum *args, int64 pending, TimestampTz *expires_at, int64 *units)
{
	static SPIPlanPtr plan;
	Oid			types[2] = {UUIDOID, UUIDOID};
	Rows		r = RowsFetch(BenefitsGenericPlan(&plan, lots_sql, 2, types), args);
	int64		due = pending;
	bool		found = false;

	*units = 0;
	for (int i = 0; i < r.n; i++)
	{
		int64		remaining = DatumGetInt64(RowsGet(&r, i, Col(&r, "remaining")));
		int64		live = remaining - Min(remaining, Max(due, 0));
		TimestampTz at;

		due -= remaining - live;
		if (live == 0 || RowsIsNull(&r, i, Col(&r, "expires_at")))
			continue;
		at = DatumGetTimestampTz(RowsGet(&r, i, Col(&r, "expires_at")));
		if (found && at != *expires_at)
			break;
		found = true;
		*expires_at = at;
		*units += live;
	}
	return found;
}

/* See meter_portal.h; members in jsonb's key order (portal_json.h). */
void
MeterPortalMember(Doc *doc, JsonbContainer *properties, Datum customer_id)
{
	static SPIPlanPtr plans[2];
	static SPIPlanPtr recent_plan;
	char	   *meter_id = BenefitsJsonbValueText(JsonMember(properties, "meter_id"));
	Oid			types[2] = {UUIDOID, UUIDOID};
	Datum		args[2];
	bool		lots = MeterLotsInstalled();
	JsonbValue *recurring = JsonMember(properties, "recurring");
	Rows		m;
	bool		expires = false;
	TimestampTz expires_at = 0;
	int64		expiring = 0;

	if (meter_id == NULL)
	{
		DocNull(doc);
		return;
	}
	args[0] = UUIDPGetDatum(PortalUuidFromText(meter_id));
	args[1] = customer_id;
	m = RowsFetch(BenefitsGenericPlan(&plans[lots], lots ? summary_sql : summary_sql_0_1, 2, types), args);
	if (m.n != 1)
	{
		DocNull(doc);
		return;
	}
	if (lots)
		expires = Expiry(args, DatumGetInt64(RowsGet(&m, 0, Col(&m, "pending"))), &expires_at, &expiring);
	DocBeginObject(doc);
	DocKey(doc, "id");
	DocUuidCol(doc, &m, 0, Col(&m, "id"));
	DocKey(doc, "name");
	DocTextCol(doc, &m, 0, Col(&m, "name"));
	DocKey(doc, "daily");
	DailyUsage(doc, args, lots);
	DocKey(doc, "units");
	DocJson(doc, JsonMember(properties, "units"));
	DocKey(doc, "recent");
	RowsArray(doc, &recent_plan, recent_sql, args, lots, recent_members, lengthof(recent_members));
	DocKey(doc, "balance");
	DocIntCol(doc, &m, 0, Col(&m, "balance"));
	DocKey(doc, "expiring");
	DocOptionalInt(doc, expires, expiring);
	DocKey(doc, "rollover");
	DocBool(doc, JsonMemberFlag(properties, "rollover"));
	DocKey(doc, "recurring");
	DocBool(doc, recurring == NULL || recurring->type != jbvBool || recurring->val.boolean);
	DocKey(doc, "period_start");
	DocTimeCol(doc, &m, 0, Col(&m, "period_start"));
	DocKey(doc, "used_in_period");
	DocIntCol(doc, &m, 0, Col(&m, "used"));
	DocKey(doc, "credits_expire_at");
	DocStr(doc, expires ? PortalTimeText(expires_at) : NULL);
	DocKey(doc, "credited_in_period");
	DocIntCol(doc, &m, 0, Col(&m, "credited"));
	DocEndObject(doc);
}

/* What a ledger or usage row's kind means to the customer. */
static const char *
KindLabel(const char *kind)
{
	static const char *const labels[][2] = {
		{"usage", "Usage"}, {"grant", "Credited"}, {"cycle", "Renewal credit"}, {"pack", "Credit pack"},
		{"top_up", "Top-up"}, {"adjustment", "Correction"}, {"expire", "Expired"}, {"revoke", "Removed"},
	};

	for (int i = 0; i < (int) lengthof(labels); i++)
		if (kind && strcmp(kind, labels[i][0]) == 0)
			return labels[i][1];
	return kind ? kind : "";
}

/* A number of units from the document, or 0. */
static int64
PageUnits(JsonbContainer *obj, const char *key)
{
	char	   *text = PageText(obj, key);

	return text ? pg_strtoint64(text) : 0;
}

/* A labelled fact of the meter's <dl>. */
static void
Fact(StringInfo buf, const char *label, const char *value)
{
	appendStringInfoString(buf, "<div><dt>");
	PageEsc(buf, label);
	appendStringInfoString(buf, "</dt><dd>");
	PageEsc(buf, value);
	appendStringInfoString(buf, "</dd></div>");
}

/*
 * The last 30 days of usage as an SVG bar chart: one slot per day, each bar
 * as tall as its units against the busiest day, titled with its day.
 */
static void
UsageChart(PortalPage *page, JsonbContainer *meter)
{
	JsonbContainer *daily = PageContainer(meter, "daily");
	StringInfo	buf = page->buf;
	int			n = daily ? Min(PageArrayLength(daily), CHART_DAYS) : 0;
	int64		max = 0,
				total = 0;
	const char *busiest = NULL;

	if (n == 0)
		return;
	for (int i = 0; i < n; i++)
	{
		int64		used = PageUnits(PageElement(daily, i), "used");

		total += used;
		if (used > max)
		{
			max = used;
			busiest = PageText(PageElement(daily, i), "date");
		}
	}
	appendStringInfo(buf,
					 "<svg class=\"usage-chart\" width=\"%d\" height=\"100\""
					 " viewBox=\"0 0 %d 100\" role=\"img\" aria-labelledby=\"usage-title-%d usage-desc-%d\">"
					 "<title id=\"usage-title-%d\">",
					 n * CHART_SLOT, n * CHART_SLOT, page->index, page->index, page->index);
	PageEsc(buf, PageText(meter, "name"));
	appendStringInfo(buf, " used per day, last %d days</title><desc id=\"usage-desc-%d\">", n, page->index);
	if (busiest)
		appendStringInfo(buf, INT64_FORMAT " units in %d days; the most in one day: " INT64_FORMAT " on %s.",
						 total, n, max, PageDate(busiest));
	else
		appendStringInfo(buf, "No usage in the last %d days.", n);
	appendStringInfo(buf, "</desc><line x1=\"0\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"currentColor\" stroke-opacity=\".4\"/>",
					 CHART_BASELINE, n * CHART_SLOT, CHART_BASELINE);
	for (int i = 0; i < n; i++)
	{
		JsonbContainer *day = PageElement(daily, i);
		int64		used = PageUnits(day, "used");
		int			height;

		if (used <= 0)
			continue;
		height = Max(1, (int) ((double) used * CHART_TALLEST / (double) max + 0.5));
		appendStringInfo(buf, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"" CHART_FILL "\"><title>%s: "
						 INT64_FORMAT " units</title></rect>",
						 i * CHART_SLOT + (CHART_SLOT - CHART_BAR) / 2, CHART_BASELINE - height, CHART_BAR, height,
						 PageDate(PageText(day, "date")), used);
	}
	appendStringInfo(buf, "<text x=\"0\" y=\"98\" font-size=\"10\" fill=\"currentColor\">%s</text>"
					 "<text x=\"%d\" y=\"98\" font-size=\"10\" fill=\"currentColor\" text-anchor=\"end\">%s</text></svg>\n",
					 PageDate(PageText(PageElement(daily, 0), "date")), n * CHART_SLOT,
					 PageDate(PageText(PageElement(daily, n - 1), "date")));
}

/* The last rows of credits and usage, in a table the customer can open. */
static void
RecentTable(StringInfo buf, JsonbContainer *meter)
{
	JsonbContainer *recent = PageContainer(meter, "recent");
	int			n = recent ? PageArrayLength(recent) : 0;

	if (n == 0)
		return;
	appendStringInfoString(buf, "<details><summary>Recent credits and usage</summary><table>"
						   "<tr><th scope=\"col\">When</th><th scope=\"col\">What</th>"
						   "<th scope=\"col\">Units</th><th scope=\"col\">Balance</th></tr>\n");
	for (int i = 0; i < n; i++)
	{
		JsonbContainer *row = PageElement(recent, i);
		int64		units = PageUnits(row, "units");

		appendStringInfoString(buf, "<tr><td>");
		PageEsc(buf, PageDate(PageText(row, "at")));
		appendStringInfoString(buf, "</td><td>");
		PageEsc(buf, KindLabel(PageText(row, "kind")));
		appendStringInfo(buf, "</td><td>%s" INT64_FORMAT "</td><td>", units > 0 ? "+" : "", units);
		PageEsc(buf, PageText(row, "balance_after"));
		appendStringInfoString(buf, "</td></tr>\n");
	}
	appendStringInfoString(buf, "</table></details>\n");
}

/* See meter_portal.h. */
void
MeterPortalHtml(PortalPage *page, JsonbContainer *meter)
{
	StringInfo	buf = page->buf;
	char	   *balance = PageText(meter, "balance");
	char	   *credited = PageText(meter, "credited_in_period");
	char	   *used = PageText(meter, "used_in_period");
	char	   *expiring = PageText(meter, "expiring");

	appendStringInfoString(buf, "<p>");
	PageEsc(buf, PageText(meter, "name"));
	appendStringInfoString(buf, " balance: <strong>");
	PageEsc(buf, balance ? balance : "0");
	appendStringInfoString(buf, "</strong></p>\n");
	if (credited || used || expiring)
	{
		appendStringInfoString(buf, "<dl class=\"facts\">");
		if (credited)
			Fact(buf, "Credited this period", credited);
		if (used)
			Fact(buf, "Used this period", used);
		if (expiring)
			Fact(buf, "Expiring", psprintf("%s on %s", expiring, PageDate(PageText(meter, "credits_expire_at"))));
		appendStringInfoString(buf, "</dl>\n");
	}
	UsageChart(page, meter);
	RecentTable(buf, meter);
}
