/*
 * meter_portal.h — a meter_credits benefit in the customer portal
 * (meter_portal.c): its member of the document and its part of the page.
 */
#ifndef BENEFITS_METER_PORTAL_H
#define BENEFITS_METER_PORTAL_H

#include "postgres.h"

#include "utils/jsonb.h"

#include "portal_json.h"
#include "portal_page.h"

/* The benefit's "meter" member: the customer's balance, period, expiry, history and last 30 days. */
extern void MeterPortalMember(Doc *doc, JsonbContainer *properties, Datum customer_id);

/* The meter's part of the benefit's card: balance, facts, usage chart, recent rows. */
extern void MeterPortalHtml(PortalPage *page, JsonbContainer *meter);

#endif
